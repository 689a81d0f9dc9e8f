//! The `keypost` binary: parse the command line, set up logging, run, and turn the outcome into an exit code.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = keypost::cli::Cli::parse();
    keypost::cli::init_tracing(&cli);
    match keypost::cli::run(cli) {
        Ok(code) => code,
        // A reader that went away (`keypost export | head`) is not an error: stop quietly, as ripgrep does.
        Err(err) if keypost::cli::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(keypost::cli::EXIT_ERROR)
        }
    }
}
