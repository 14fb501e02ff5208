//! Writing to stdout. A closed pipe (`bunker ls latest | head`) ends the
//! program quietly instead of panicking; SIGPIPE stays ignored so that
//! network storage sees write errors rather than a killed process.

use std::fmt;
use std::io::Write;

/// Writes one line to stdout.
pub fn line(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(crate::exit::OK);
        }
        eprintln!("bunker: error: cannot write to standard output: {e}");
        std::process::exit(crate::exit::FAILURE);
    }
}

/// `println!` for command output: see [`line`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
