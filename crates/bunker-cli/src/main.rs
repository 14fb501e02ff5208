//! `bunker`: disaster-recovery backups. A thin layer over `bunker-engine`:
//! parse arguments, pick the repository and password, render output, map
//! errors to exit codes.

mod commands;
mod context;
mod exit;
mod format;
mod output;
mod password;
mod progress;

use std::sync::{Mutex, OnceLock};

use bunker_engine::Cancel;

use clap::{CommandFactory, Parser};

use crate::context::GlobalArgs;

/// Versioned, deduplicated, compressed and encrypted backups.
#[derive(Parser)]
#[command(name = "bunker", version, long_version = commands::version::long_version(), about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: commands::Command,
}

/// The command line's definition, for completions and man pages.
pub fn cli_command() -> clap::Command {
    Cli::command()
}

/// The cancellation every operation of this process gets (see [`interrupt`]).
static INTERRUPT: OnceLock<Cancel> = OnceLock::new();

/// The token SIGINT and SIGTERM set; every repository this process opens
/// carries it.
pub fn interrupt() -> &'static Cancel {
    INTERRUPT.get_or_init(Cancel::new)
}

/// SIGINT/SIGTERM: the first asks the running operation to stop cleanly
/// (exit 130 once it has), a second one exits at once.
extern "C" fn on_interrupt(_signal: libc::c_int) {
    // `get` is one atomic load: the token was made before the handler was set.
    let Some(token) = INTERRUPT.get() else { return };
    if token.is_cancelled() {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(exit::INTERRUPTED) };
    }
    token.cancel();
}

/// The last panic's message and place, for the one line printed about it.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

fn main() {
    password::take_environment();
    interrupt();
    // SAFETY: the handler only touches atomics and calls _exit.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
    // A panic is a bug: one line says so, never a stack trace. Panics in
    // worker threads become errors of the operation that ran them.
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        *PANIC.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{message}{place}"));
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(usage_error(e)),
    };
    let outcome = std::panic::catch_unwind(|| commands::run(cli.command, &cli.global));
    let code = match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => exit::report(&e),
        Err(_) => {
            let what = PANIC.lock().unwrap_or_else(|p| p.into_inner()).take();
            errln!(
                "bunker: internal error: {}; please report this bug",
                what.unwrap_or_default()
            );
            exit::FAILURE
        }
    };
    std::process::exit(code);
}

/// Prints help and version as asked; any other argument error as one line
/// (clap's own first line, without its tips), exit 2.
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    {
        let _ = e.print();
        return match e.kind() {
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => exit::USAGE,
            _ => exit::OK,
        };
    }
    // The first paragraph: the error itself (with the arguments it names).
    let text = e.render().to_string();
    let first: Vec<&str> = text
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let first = first.join(" ");
    let first = first.trim_start_matches("error: ");
    errln!("bunker: usage error: {first} (see `bunker --help`)");
    exit::USAGE
}
