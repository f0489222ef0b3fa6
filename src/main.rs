//! The `ceus-edge` command line.
//!
//! `main` maps the outcome to an exit status: 0 on success, 1 on a runtime error (one line
//! on stderr with the whole cause chain), 2 on a usage error (printed by clap).

mod cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "ceus-edge",
    version,
    about = "Contrast-enhanced ultrasound analysis at the edge"
)]
struct Cli {
    /// More diagnostic output on stderr (-v debug, -vv trace); RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);

    match cmd::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ceus-edge: error: {}", one_line(&error));
            ExitCode::from(1)
        }
    }
}

/// Diagnostics go through `log` to stderr: by default ceus-edge's warnings and the
/// dependencies' errors, more with `-v`. A dependency's warning is for developers: tract
/// warns on every start under qemu-user, whose /proc/cpuinfo is the host's.
fn init_logging(verbose: u8) {
    let (own, dependencies) = match verbose {
        0 => (log::LevelFilter::Warn, log::LevelFilter::Error),
        1 => (log::LevelFilter::Debug, log::LevelFilter::Debug),
        _ => (log::LevelFilter::Trace, log::LevelFilter::Trace),
    };
    env_logger::Builder::new()
        .filter_level(dependencies)
        .filter_module("ceus_edge", own)
        .parse_env("RUST_LOG")
        .write_style(if std::io::stderr().is_terminal() {
            env_logger::WriteStyle::Auto
        } else {
            env_logger::WriteStyle::Never
        })
        .init();
}

/// Joins the error and its causes on one line, without repeating a cause that the
/// message above it already quotes.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
