//! `card-emulator --vpcd HOST:PORT --card FILE`: puts the software JPKI card described by
//! FILE behind pcscd's vpcd virtual reader. Exits 0 on SIGINT/SIGTERM, 64 on bad arguments,
//! 1 on a card-file error. The work is in `kiosk_devkit::vpcd`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Software JPKI card behind pcscd's vpcd (TEST ONLY)")]
struct Cli {
    /// vpcd's address, e.g. 127.0.0.1:35963 (slot 0).
    #[arg(long)]
    vpcd: String,
    /// The card file (TOML); retry counters are written back to it.
    #[arg(long)]
    card: PathBuf,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(64);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            tracing::error!(error = %e, "cannot install signal handler");
            return ExitCode::FAILURE;
        }
    }
    let result =
        kiosk_devkit::vpcd::Emulator::new(&cli.vpcd, &cli.card).and_then(|mut e| e.run(&stop));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "card emulator failed");
            ExitCode::FAILURE
        }
    }
}
