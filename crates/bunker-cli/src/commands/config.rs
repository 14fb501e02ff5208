//! `bunker config check`

use std::path::PathBuf;

use anyhow::Result;
use bunker_ops::config::{default_locations, locate, Between};
use bunker_ops::{Config, ConfigError};
use serde_json::json;

use crate::context::GlobalArgs;
use crate::exit::{self, Usage};

/// Check the config file and show the plans it defines.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Validate the config file and print the effective plans
    Check,
}

/// Finds and reads the config file; a bad one is a usage error (exit 2)
/// naming the file, line and column.
pub fn load(global: &GlobalArgs) -> Result<Config> {
    let env = std::env::var_os("BUNKER_CONFIG").map(PathBuf::from);
    let config_dir = directories::BaseDirs::new().map(|d| d.config_dir().to_path_buf());
    let defaults = default_locations(config_dir.as_deref());
    let path = match locate(global.config.as_deref(), env.as_deref(), &defaults) {
        Ok(Some(path)) => path,
        Ok(None) => {
            let places: Vec<String> = defaults.iter().map(|p| p.display().to_string()).collect();
            return Err(Usage(format!(
                "no config file: give --config FILE or BUNKER_CONFIG, or write {}",
                places.join(" or ")
            ))
            .into());
        }
        Err(e) => return Err(Usage(e.to_string()).into()),
    };
    Config::load(&path).map_err(|e| match e {
        ConfigError::Read { .. } => anyhow::Error::new(e),
        _ => Usage(e.to_string()).into(),
    })
}

/// Runs `config check`.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let Command::Check = args.command;
    let config = load(global)?;
    if global.json {
        let plans: Vec<_> = config
            .plans
            .iter()
            .map(|(name, p)| {
                json!({
                    "name": name,
                    "repository": p.repository.get_ref(),
                    "copy_to": p.copy_to.iter().map(|c| c.get_ref()).collect::<Vec<_>>(),
                    "paths": p.paths,
                    "databases": p.databases,
                    "schedule": p.schedule.as_ref().map(|s| s.to_string()),
                    "next_run": p.schedule.as_ref().and_then(|s| s.next_local()).map(|t| t.to_rfc3339()),
                    "rpo_seconds": p.rpo.map(|i| i.0.as_secs()),
                    "rto_seconds": p.rto.map(|i| i.0.as_secs()),
                    "drill": p.drill.as_ref().map(|d| json!({
                        "schedule": d.schedule.as_ref().map(|s| s.to_string()),
                        "scratch": d.scratch,
                        "sample": d.sample,
                    })),
                })
            })
            .collect();
        crate::outln!(
            "{}",
            json!({"config": config.path, "plans": plans, "listen": config.daemon.listen.to_string()})
        );
        return Ok(exit::OK);
    }
    crate::outln!("{}: ok", config.path.display());
    for (name, repo) in &config.repositories {
        crate::outln!("repository {name}: {}", repo.url);
    }
    for (name, p) in &config.plans {
        crate::outln!("plan {name}:");
        let mut to = p.repository.get_ref().clone();
        for c in &p.copy_to {
            to.push_str(&format!(", copied to {}", c.get_ref()));
        }
        crate::outln!("  repository: {to}");
        for path in &p.paths {
            crate::outln!("  path: {}", path.display());
        }
        for db in &p.databases {
            crate::outln!("  database: {db}");
        }
        match &p.schedule {
            Some(s) => crate::outln!(
                "  schedule: {s} (next: {})",
                s.next_local().map_or("never".into(), |t| t
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string())
            ),
            None => crate::outln!("  schedule: none (runs only with `bunker run {name}`)"),
        }
        let full = p
            .full_every
            .map_or("only the first".into(), |i| format!("at least every {i}"));
        let between = match p.between_full {
            Between::Incremental => "incremental",
            Between::Differential => "differential",
        };
        crate::outln!("  full backups: {full}; otherwise {between}");
        let targets = [("RPO", p.rpo), ("RTO", p.rto)]
            .iter()
            .map(|(n, v)| format!("{n} {}", v.map_or("none".into(), |i| i.to_string())))
            .collect::<Vec<_>>()
            .join(", ");
        crate::outln!("  targets: {targets}");
        if let Some(d) = &p.drill {
            crate::outln!(
                "  drill: {} into {} ({:.0}% of files)",
                d.schedule
                    .as_ref()
                    .map_or("on demand".into(), |s| s.to_string()),
                d.scratch.display(),
                d.sample * 100.0
            );
        }
    }
    Ok(exit::OK)
}
