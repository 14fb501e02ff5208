//! `bunker daemon`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::Result;
use bunker_ops::daemon::{run_daemon, DaemonSettings};

use crate::context::{operations, GlobalArgs};
use crate::exit;

/// Run every plan's backups and drills on schedule, and serve the web
/// dashboard, the JSON API, /metrics and /healthz on [daemon] listen
/// (SIGHUP reloads the config, SIGTERM stops cleanly)
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Print the Argon2 hash of a dashboard password, for [daemon]
    /// password-file (the password is asked twice on a terminal, else read
    /// from the first line of standard input)
    HashPassword {
        /// Read the password from this file instead
        #[arg(long)]
        password_file: Option<std::path::PathBuf>,
    },
}

/// The password to hash: from `file`, asked twice, or standard input's first line.
fn new_password(file: Option<&std::path::Path>) -> Result<crate::password::Secret> {
    use std::io::{BufRead, IsTerminal};
    let password = match file {
        Some(f) => crate::password::from_file(f)?,
        None if std::io::stdin().is_terminal() => {
            crate::password::obtain_new(None, None, "--password-file")?
        }
        None => {
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin().lock().read_line(&mut line)?;
            crate::password::Secret::new(line.trim_end_matches(['\r', '\n']).as_bytes().to_vec())
        }
    };
    if password.is_empty() {
        anyhow::bail!("an empty password is not allowed");
    }
    Ok(password)
}

/// Set by SIGHUP: read the config again.
static RELOAD: OnceLock<Arc<AtomicBool>> = OnceLock::new();

extern "C" fn on_hangup(_signal: libc::c_int) {
    if let Some(flag) = RELOAD.get() {
        flag.store(true, Ordering::SeqCst);
    }
}

/// Runs until SIGTERM or SIGINT; exit 0 once what ran has stopped cleanly.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    if let Some(Action::HashPassword { password_file }) = args.action {
        let password = new_password(password_file.as_deref())?;
        let text = std::str::from_utf8(&password)
            .map_err(|_| anyhow::anyhow!("the password is not valid UTF-8"))?;
        crate::outln!("{}", bunker_ops::daemon::hash_password(text)?);
        return Ok(exit::OK);
    }
    let config = super::config::load(global)?;
    let reload = Arc::clone(RELOAD.get_or_init(Arc::default));
    // SAFETY: the handler only stores into an atomic made before it is set.
    unsafe {
        libc::signal(libc::SIGHUP, on_hangup as *const () as libc::sighandler_t);
    }
    let ops = operations(global, &config, Arc::new(bunker_engine::NoProgress));
    let settings = DaemonSettings {
        config_path: config.path.clone(),
        open: ops.open.clone(),
        host: ops.host.clone(),
        log: Arc::new(|m: &str| {
            let now = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%:z");
            crate::errln!("{now} bunker daemon: {m}");
        }),
        shutdown: crate::interrupt().clone(),
        reload,
    };
    run_daemon(settings)?;
    Ok(exit::OK)
}
