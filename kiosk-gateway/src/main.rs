//! `kiosk-gateway`: parse the command line, set up logging and the crypto provider, run.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kiosk_gateway::cli::Cli::parse();
    kiosk_gateway::logging::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kiosk-gateway: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    ExitCode::from(runtime.block_on(kiosk_gateway::cli::run(cli)))
}
