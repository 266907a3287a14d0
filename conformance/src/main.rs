//! `kiosk-conformance`: runs a terminal build through the conformance scenarios and reports
//! rule by rule. Exit 0 when no rule failed, 1 when one did, 2 when the kit could not run.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kiosk_conformance::runner::{self, RunOptions};
use kiosk_conformance::{ConformanceError, report, scenario};

/// The conformance kit for kiosk.v1 terminals (TEST ONLY: development gateway and PKI).
#[derive(Debug, Parser)]
#[command(name = "kiosk-conformance", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the terminal command through the scenarios.
    Run {
        /// The terminal under test, run with `sh -c` once per scenario; it reads the
        /// KIOSK_CONFORMANCE_* variables (docs/conformance.md).
        #[arg(long)]
        terminal_cmd: String,
        /// Only these scenarios (repeatable); default: all.
        #[arg(long = "scenario")]
        scenarios: Vec<String>,
        /// Seconds one terminal run may take before it is killed and judged as it stands.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
        /// Residents in the development register.
        #[arg(long, default_value_t = 40)]
        residents: u32,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Present the card in the kit's own PC/SC reader (named in KIOSK_CONFORMANCE_READER)
        /// and judge card-reset; needs the kit built with `--features pcsc`, pcscd and vpcd.
        #[arg(long)]
        pcsc: bool,
    },
    /// Lists the scenarios and rules.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::List => {
            print!("{}", report::list());
            ExitCode::SUCCESS
        }
        Command::Run {
            terminal_cmd,
            scenarios,
            timeout_secs,
            residents,
            json,
            pcsc,
        } => {
            let options = |scenarios| RunOptions {
                terminal_cmd,
                scenarios,
                timeout: Duration::from_secs(timeout_secs),
                residents,
                pcsc,
            };
            match run(options, &scenarios, json) {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("kiosk-conformance: {error}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn run(
    options: impl FnOnce(Vec<&'static scenario::Scenario>) -> RunOptions,
    names: &[String],
    json: bool,
) -> Result<ExitCode, ConformanceError> {
    let scenarios = if names.is_empty() {
        scenario::SCENARIOS.iter().collect()
    } else {
        names
            .iter()
            .map(|name| {
                scenario::find(name).ok_or_else(|| ConformanceError::UnknownScenario(name.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let options = options(scenarios);
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| ConformanceError::Front(format!("cannot start the runtime: {e}")))?;
    let results = runtime.block_on(runner::run(&options))?;
    if json {
        println!("{}", report::json(&results));
    } else {
        print!("{}", report::text(&results));
    }
    let failed = report::Totals::of(&results).failed;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
