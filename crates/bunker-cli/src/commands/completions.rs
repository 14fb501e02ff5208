//! `bunker completions SHELL`: completions generated from the command
//! definitions themselves, so they never drift from the binary.

use anyhow::Result;
use clap_complete::Shell;

use crate::context::GlobalArgs;
use crate::exit;

/// Print shell completions (bash, zsh, fish) to standard output
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell
    #[arg(value_enum)]
    shell: CompletionShell,
}

/// The shells completions are made for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the completion script.
pub fn run(args: Args, _global: &GlobalArgs) -> Result<i32> {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut command = crate::cli_command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "bunker", &mut out);
    crate::outln!("{}", String::from_utf8_lossy(&out).trim_end());
    Ok(exit::OK)
}
