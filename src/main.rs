//! The `l402-mcp` binary: parse flags and configuration, pick a command,
//! print, and exit with a code a program can act on.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
