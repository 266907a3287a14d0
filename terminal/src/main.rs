//! `kiosk-terminal`: the reference terminal (`issue`) and the load generator (`load`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kiosk_terminal::cli::Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kiosk-terminal: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(kiosk_terminal::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kiosk-terminal: {error:#}");
            ExitCode::FAILURE
        }
    }
}
