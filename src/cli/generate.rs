//! `keypost generate`: the man page and shell completions, written from the same definitions as `--help`, so they
//! never drift from the binary. Packaging calls it (see `.ci/package`); hidden from `--help`.
use std::io::Write;

use anyhow::Context;
use clap::{CommandFactory, ValueEnum};

/// What to print on stdout.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Artifact {
    /// The man page, keypost(1), in roff
    Man,
    /// Completions for bash
    Bash,
    /// Completions for zsh
    Zsh,
    /// Completions for fish
    Fish,
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The man page or a shell's completions
    pub artifact: Artifact,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<std::process::ExitCode> {
    let mut command = super::Cli::command();
    let mut out = Vec::new();
    match args.artifact {
        Artifact::Man => clap_mangen::Man::new(command).render(&mut out).context("Failed to render the man page")?,
        Artifact::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut command, "keypost", &mut out),
        Artifact::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut command, "keypost", &mut out),
        Artifact::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut command, "keypost", &mut out),
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out).and_then(|()| stdout.flush()).context("Failed to write the output")?;
    Ok(std::process::ExitCode::SUCCESS)
}
