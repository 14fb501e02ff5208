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

use clap::Parser;

use crate::context::GlobalArgs;

/// Versioned, deduplicated, compressed and encrypted backups.
#[derive(Parser)]
#[command(name = "bunker", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: commands::Command,
}

/// SIGINT/SIGTERM: the first asks the running operation to stop cleanly
/// (exit 130 once it has), a second one exits at once.
extern "C" fn on_interrupt(_signal: libc::c_int) {
    if bunker_engine::interrupt::requested() {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(exit::INTERRUPTED) };
    }
    bunker_engine::interrupt::request();
}

fn main() {
    // SAFETY: the handler only touches an atomic and calls _exit.
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
    let cli = Cli::parse();
    let code = match commands::run(cli.command, &cli.global) {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    };
    std::process::exit(code);
}
