//! `bunker key list|add|remove|passwd`

use std::path::PathBuf;

use anyhow::{bail, Result};
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
    /// List keys
    List,
    /// Add a key with a new password
    Add {
        /// Read the new password from this file
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// Remove a key (not the one in use)
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
    let repo = Target::select(global)?.open(global)?;
    match args.action {
        Action::List => {
            let keys = repo.key_files()?;
            if global.json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|(name, k)| {
                        json!({ "id": name, "current": name == repo.key_name(), "created": k.created, "hostname": k.hostname, "username": k.username })
                    })
                    .collect();
                super::print_json(&serde_json::Value::Array(list));
            } else {
                crate::outln!("  {:<10}  {:<12}  {:<16}  Created", "ID", "User", "Host");
                for (name, k) in &keys {
                    let mark = if name == repo.key_name() { "*" } else { " " };
                    crate::outln!(
                        "{mark} {:<10}  {:<12}  {:<16}  {}",
                        &name[..8],
                        k.username,
                        k.hostname,
                        k.created
                    );
                }
            }
        }
        Action::Add { new_password_file } => {
            let pw = password::obtain_new(new_password_file.as_deref(), None)?;
            let name = repo.add_key(&pw, kdf_params()?)?;
            report(global, "added", &name);
        }
        Action::Remove { id } => {
            let names: Vec<String> = repo
                .key_files()?
                .into_iter()
                .map(|(n, _)| n)
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
            let pw = password::obtain_new(new_password_file.as_deref(), None)?;
            let name = repo.add_key(&pw, kdf_params()?)?;
            repo.backend()
                .remove(bunker_engine::backend::FileKind::Key, repo.key_name())?;
            report(global, "changed password; new key", &name);
        }
    }
    Ok(exit::OK)
}

fn report(global: &GlobalArgs, what: &str, name: &str) {
    if global.json {
        super::print_json(&json!({ "message_type": what, "id": name }));
    } else if !global.quiet {
        crate::outln!("{what} {}", &name[..8]);
    }
}
