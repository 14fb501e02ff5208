//! Writing to stdout and stderr. A closed stdout (`bunker backup --json |
//! head -1`) never changes what a command does or its exit code: output
//! stops, the work goes on and finishes. SIGPIPE stays ignored, so a closed
//! pipe is an error to notice, not a killed process.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout could not be written: later output is dropped.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes one line to stdout, unless stdout is gone.
pub fn line(args: fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush()) {
        if !STDOUT_CLOSED.swap(true, Ordering::Relaxed)
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            err_line(format_args!(
                "bunker: warning: cannot write to standard output ({e}); the command goes on without it"
            ));
        }
    }
}

/// Writes one line to stderr; a closed stderr is ignored (never a panic).
pub fn err_line(args: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// `println!` for command output: see [`line`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

/// `eprintln!` for messages: see [`err_line`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::err_line(format_args!($($arg)*))
    };
}
