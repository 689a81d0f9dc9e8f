//! `keypost aside`: the set-aside messages, from the command line. Like the order tools, each becomes a
//! [`Request`] carried out by the running daemon over its control socket, or by this process when none runs.
use std::process::ExitCode;

use clap::Subcommand;

use super::Globals;
use super::orders::carry_out;
use crate::control::Request;

#[derive(Debug, Subcommand)]
pub enum AsideCommand {
    /// List the messages set aside (id, when, source, reason)
    List {
        /// One JSON array instead of lines
        #[arg(long)]
        json: bool,
    },
    /// Print why a message was set aside, then the message itself
    Show {
        /// The id `aside list` shows (the message's key; `source/key` where keys repeat)
        id: String,
    },
    /// Put a set-aside message back in the inbox: keypost reads it again (after a template or trust fix)
    Release {
        /// The id `aside list` shows
        id: String,
    },
    /// File a set-aside message as ignored, with the reason (audited; the message moves to the ignored folder)
    Drop {
        /// The id `aside list` shows
        id: String,
        /// Why, for the audit trail
        #[arg(long)]
        reason: String,
    },
}

pub fn run(command: AsideCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    let request = match command {
        AsideCommand::List { json } => Request::AsideList { json },
        AsideCommand::Show { id } => Request::AsideShow { id },
        AsideCommand::Release { id } => Request::AsideRelease { id },
        AsideCommand::Drop { id, reason } => Request::AsideDrop { id, reason },
    };
    carry_out(globals, request)
}
