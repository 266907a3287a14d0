//! The command line: `serve`, `demo`, and operator commands. `main.rs` only parses and calls
//! into here, so every path is testable as a library function.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{Config, ProcessEnvironment};
use crate::flow::SystemClock;

/// The certificate-issuance gateway for convenience-store kiosks.
#[derive(Debug, Parser)]
#[command(name = "kiosk-gateway", version)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve terminals, auditors and verifiers. With no configuration: the embedded default
    /// under .kiosk-data/ (SQLite, a development PKI, a synthetic register).
    Serve {
        /// A TOML configuration file; `KIOSK_*` variables override it.
        #[arg(long, env = "KIOSK_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the whole system once in this process and print a report: a gateway and an issuer
    /// on loopback with real TLS, the reference terminal with software cards.
    Demo {
        /// Where the issued PDFs go.
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
        /// Residents in the synthetic register.
        #[arg(long, default_value_t = 120)]
        residents: u32,
    },
}

/// Exit code for an invalid configuration (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// Runs the parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Serve { config } => {
            let config = match Config::load(config.as_deref(), &ProcessEnvironment) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("kiosk-gateway: {error}");
                    return EXIT_CONFIG;
                }
            };
            match serve(config).await {
                Ok(()) => 0,
                Err(error) => {
                    eprintln!("kiosk-gateway: {error:#}");
                    1
                }
            }
        }
        Command::Demo { out, residents } => match crate::demo::run(&out, residents).await {
            Ok(report) => {
                println!("{report}");
                0
            }
            Err(error) => {
                eprintln!("kiosk-gateway demo: {error:#}");
                1
            }
        },
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    println!(
        "preparing the deployment under {}",
        config.data_dir.display()
    );
    let embedded = crate::provision::prepare(&config).await?;
    let directory = embedded.in_process_directory(&config);
    let clock: Arc<dyn crate::flow::Clock> = match config.rehearsal_clock_start()? {
        Some(start) => {
            println!("WARNING: rehearsal clock from {start} ms: not for production");
            Arc::new(crate::demo::OffsetClock::starting_at(start))
        }
        None => Arc::new(SystemClock),
    };
    let parts = embedded.server_parts(&config, clock, directory)?;
    crate::provision::record_start(&embedded.store).await?;
    let server = crate::server::start(parts, config.listen).await?;
    println!("kiosk-gateway listening on https://{}", server.local_addr());
    println!("  gateway database: {}", config.database_url());
    println!("  register:         {}", config.register_url());
    println!("  PKI (TEST ONLY):  {}", config.pki_dir().display());
    println!(
        "  resident cards:   {}",
        config.data_dir.join("cards").display()
    );
    println!(
        "  terminals:        seven/131016-0042/k1, seven/131016-0042/k2, lawson/271004-0007/k1"
    );
    shutdown_signal().await;
    println!("draining");
    server
        .shutdown(
            Duration::from_millis(config.drain_ms),
            Duration::from_millis(config.grace_ms),
        )
        .await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
