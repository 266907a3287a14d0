//! TEST ONLY: writes the test PKI (`card-testpki generate DIR`, `--fixture` for the committed
//! set in devkit/testdata/pki) or mints resident card files under an existing one
//! (`card-testpki mint --pki DIR --out DIR --count N`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kiosk_devkit::testpki::{DevPki, DevPkiSpec};

#[derive(Parser)]
#[command(about = "TEST ONLY: generate the test PKI and software card files")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a PKI into DIR.
    Generate {
        /// Output directory.
        dir: PathBuf,
        /// The committed fixture set (fixed dates) instead of a development set.
        #[arg(long)]
        fixture: bool,
    },
    /// Mint resident card files under an existing PKI.
    Mint {
        /// The PKI directory.
        #[arg(long)]
        pki: PathBuf,
        /// Where the card files go.
        #[arg(long)]
        out: PathBuf,
        /// How many cards.
        #[arg(long, default_value_t = 10)]
        count: u64,
        /// Serial of the first card.
        #[arg(long, default_value_t = 100_000)]
        first_serial: u64,
        /// User-authentication PIN of every minted card.
        #[arg(long, default_value = "1234")]
        pin: String,
    },
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Cmd::Generate { dir, fixture } => {
            let spec = if fixture {
                DevPkiSpec::fixture()
            } else {
                DevPkiSpec::development(time::OffsetDateTime::now_utc())
            };
            DevPki::generate(&dir, &spec)?;
            println!("wrote test PKI to {}", dir.display());
        }
        Cmd::Mint {
            pki,
            out,
            count,
            first_serial,
            pin,
        } => {
            let pin = card::Pin::parse(&pin)?;
            let mut minter = DevPki::open(&pki)?.card_minter()?;
            let start = std::time::Instant::now();
            // One batch: missing keys are generated in parallel, the counter moves once.
            minter.reserve(usize::try_from(count)?)?;
            for serial in first_serial..first_serial.saturating_add(count) {
                minter.mint_to(&out, &format!("card-{serial}"), serial, &pin)?;
            }
            println!(
                "minted {count} cards into {} in {:.3} s",
                out.display(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("card-testpki: {e}");
            ExitCode::FAILURE
        }
    }
}
