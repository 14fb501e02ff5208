//! `bunker key list|add|remove|passwd`

use std::path::PathBuf;

use anyhow::{bail, Result};
use bunker_engine::repository::short_name;
use serde_json::json;

use crate::context::{kdf_params, GlobalArgs, Target};
use crate::{exit, password};

/// Manage the keys (passwords) that open the repository.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// List keys (a damaged key file is shown as such)
    List,
    /// Add a key with a new password
    Add {
        /// Read the new password from this file
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
        /// A key for clients that may back up, list and restore, but not
        /// forget, prune, remove keys or rewrite (enforced by Bunker; give
        /// such clients storage credentials without delete as well)
        #[arg(long)]
        append_only: bool,
    },
    /// Remove a key, damaged or not (not the one in use)
    Remove {
        /// Key id or unique prefix
        id: String,
    },
    /// Change the password of the key in use
    Passwd {
        /// Read the new password from this file
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
}

/// Runs the key action.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let mut repo = Target::select(global)?.open(global)?;
    match args.action {
        Action::List => list(&repo, global)?,
        Action::Add {
            new_password_file,
            append_only,
        } => {
            let pw = new_password(new_password_file)?;
            let name = repo.add_key(&pw, kdf_params()?, append_only)?;
            match (append_only, global.json) {
                (true, true) => super::print_json(
                    &json!({ "message_type": "added", "id": name, "append_only": true }),
                ),
                (true, false) if !global.quiet => {
                    crate::outln!("added append-only key {}", short_name(&name))
                }
                _ => report(global, "added", &name),
            }
        }
        Action::Remove { id } => {
            let names: Vec<String> = repo
                .key_files()?
                .into_iter()
                .map(|k| k.name)
                .filter(|n| n.starts_with(&id))
                .collect();
            let name = match names.as_slice() {
                [one] => one.clone(),
                [] => bail!("no key matches {id:?}"),
                _ => bail!("key prefix {id:?} is ambiguous; give more digits"),
            };
            repo.remove_key(&name)?;
            report(global, "removed", &name);
        }
        Action::Passwd { new_password_file } => {
            let pw = new_password(new_password_file)?;
            let name = repo.change_password(&pw, kdf_params()?)?;
            report(global, "changed password; new key", &name);
        }
    }
    Ok(exit::OK)
}

fn new_password(file: Option<PathBuf>) -> Result<password::Secret> {
    password::obtain_new(file.as_deref(), None, "--new-password-file FILE")
}

/// Text from a key file, printable: control characters escaped.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(char::escape_default)
        .collect::<String>()
}

fn list(repo: &bunker_engine::Repository, global: &GlobalArgs) -> Result<()> {
    let keys = repo.key_files()?;
    if global.json {
        let list: Vec<_> = keys
            .iter()
            .map(|k| match &k.key {
                Ok(f) => json!({ "id": k.name, "current": k.name == repo.key_name(), "created": f.created, "hostname": f.hostname, "username": f.username, "append_only": f.append_only }),
                Err(e) => json!({ "id": k.name, "current": false, "damaged": e.to_string() }),
            })
            .collect();
        super::print_json(&serde_json::Value::Array(list));
        return Ok(());
    }
    crate::outln!("  {:<10}  {:<12}  {:<16}  Created", "ID", "User", "Host");
    for k in &keys {
        let mark = if k.name == repo.key_name() { "*" } else { " " };
        match &k.key {
            Ok(f) => crate::outln!(
                "{mark} {:<10}  {:<12}  {:<16}  {}{}",
                short_name(&k.name),
                printable(&f.username),
                printable(&f.hostname),
                printable(&f.created),
                if f.append_only { "  append-only" } else { "" }
            ),
            Err(e) => crate::outln!(
                "{mark} {:<10}  damaged: {e} (`bunker key remove {}` removes it)",
                short_name(&k.name),
                short_name(&k.name)
            ),
        }
    }
    Ok(())
}

fn report(global: &GlobalArgs, what: &str, name: &str) {
    if global.json {
        super::print_json(&json!({ "message_type": what, "id": name }));
    } else if !global.quiet {
        crate::outln!("{what} {}", short_name(name));
    }
}
