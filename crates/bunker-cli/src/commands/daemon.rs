//! `bunker daemon`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::Result;
use bunker_ops::daemon::{run_daemon, DaemonSettings};

use crate::context::{operations, GlobalArgs};
use crate::exit;

/// Run every plan's backups and drills on schedule, and serve the JSON API,
/// /metrics and /healthz on [daemon] listen (SIGHUP reloads the config,
/// SIGTERM stops cleanly)
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Set by SIGHUP: read the config again.
static RELOAD: OnceLock<Arc<AtomicBool>> = OnceLock::new();

extern "C" fn on_hangup(_signal: libc::c_int) {
    if let Some(flag) = RELOAD.get() {
        flag.store(true, Ordering::SeqCst);
    }
}

/// Runs until SIGTERM or SIGINT; exit 0 once what ran has stopped cleanly.
pub fn run(_args: Args, global: &GlobalArgs) -> Result<i32> {
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
