//! `kiosk-devkit`, TEST AND DEMO FIXTURES ONLY: writes a deterministic synthetic register
//! (with card bindings, and card files minted with the test PKI) for tests, demos and
//! benchmarks. It was `issuer generate`, with the same flags and output.
//!
//! ```text
//! kiosk-devkit generate --seed 1 --residents 1000000 --municipality 131016 --name 千代田区 \
//!     --db sqlite://register.db --bindings-out bindings.jsonl \
//!     [--pki DIR --cards-out DIR --cards 100] [--as-of 2026-11-24]
//! ```

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use issuer::Register;
use issuer::bindings::{self, CardBinding};
use kiosk_devkit::generator::{Case, GeneratorConfig, generate};

#[derive(Parser)]
#[command(
    name = "kiosk-devkit",
    version,
    about = "TEST AND DEMO FIXTURES ONLY: synthetic registers with card files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a deterministic synthetic register.
    Generate(GenerateArgs),
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// The seed: the same seed, count, municipality and date give the same register.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many residents.
    #[arg(long, default_value_t = 1000)]
    residents: u64,
    /// The 6-digit municipality code (with its JIS X 0402 check digit).
    #[arg(long, default_value = "131016")]
    municipality: String,
    /// The municipality's name.
    #[arg(long, default_value = "千代田区")]
    name: String,
    /// The prefecture.
    #[arg(long, default_value = "東京都")]
    prefecture: String,
    /// The register's "today" (YYYY-MM-DD); default: today in Japan.
    #[arg(long)]
    as_of: Option<String>,
    /// Database URL (sqlite://FILE or postgres://...).
    #[arg(long, env = "KIOSK_ISSUER_DB")]
    db: String,
    /// Where to write the card bindings (JSON Lines).
    #[arg(long, default_value = "card-bindings.jsonl")]
    bindings_out: PathBuf,
    /// The test PKI directory (created if missing); needed for card files and to name the
    /// card issuer in the bindings.
    #[arg(long)]
    pki: Option<PathBuf>,
    /// Where to write card files (needs --pki).
    #[arg(long)]
    cards_out: Option<PathBuf>,
    /// How many card files to mint: every case example first, then residents in order.
    #[arg(long, default_value_t = 50)]
    cards: usize,
    /// Residents per write transaction.
    #[arg(long, default_value_t = 20_000)]
    batch: usize,
}

async fn run_generate(args: GenerateArgs) -> anyhow::Result<()> {
    let as_of = match &args.as_of {
        Some(text) => issuer::calendar::parse_date(text, "as_of")?,
        None => issuer::calendar::in_jst(time::OffsetDateTime::now_utc()).date(),
    };
    let mut cfg = GeneratorConfig::new(
        args.seed,
        args.residents,
        &args.municipality,
        &args.name,
        as_of,
    );
    cfg.municipality.prefecture = args.prefecture.clone();
    cfg.batch_residents = args.batch.max(1);
    let pki = match &args.pki {
        Some(dir) => {
            let pki = kiosk_devkit::testpki::DevPki::ensure(dir)?;
            cfg.card_issuer_key_id = kiosk_devkit::cards::card_issuer_key_id(&pki)?;
            Some(pki)
        }
        None => None,
    };
    let register = Register::open(&args.db).await?;
    let bar = ProgressBar::new(args.residents);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} residents ({per_sec}, eta {eta})",
    )?);
    let mut out = BufWriter::new(std::fs::File::create(&args.bindings_out)?);
    let report = generate(&register, &cfg, &bar, &mut out).await?;
    out.flush()?;
    drop(out);
    println!(
        "{} residents, {} households, {} koseki, {} seals, {} tax records, {} rows in {:.1} s: {:.0} residents/s",
        report.residents,
        report.households,
        report.koseki,
        report.seals,
        report.tax_records,
        report.rows,
        report.elapsed.as_secs_f64(),
        report.residents_per_second()
    );
    for case in Case::ALL {
        if let Some(example) = report.example(case) {
            println!("example {case:?}: {example}");
        }
    }
    if let (Some(pki), Some(cards_out)) = (&pki, &args.cards_out) {
        let mut all = bindings::read_file(&args.bindings_out)?;
        let examples: Vec<String> = report
            .examples
            .values()
            .flatten()
            .map(|r| r.as_str().to_owned())
            .collect();
        // Case examples first, then residents in order, up to --cards.
        let mut chosen: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, b)| examples.contains(&b.resident_ref))
            .map(|(i, _)| i)
            .collect();
        for i in 0..all.len() {
            if chosen.len() >= args.cards.max(examples.len()) {
                break;
            }
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        let mut minted: Vec<CardBinding> = chosen.iter().map(|i| all[*i].clone()).collect();
        let n = kiosk_devkit::cards::mint_cards(pki, cards_out, &mut minted)?;
        for (i, b) in chosen.iter().zip(minted) {
            all[*i] = b;
        }
        let mut out = BufWriter::new(std::fs::File::create(&args.bindings_out)?);
        for b in &all {
            bindings::write_row(&mut out, b)?;
        }
        out.flush()?;
        println!("{n} card files in {}", cards_out.display());
    } else if args.cards_out.is_some() {
        anyhow::bail!("--cards-out needs --pki");
    }
    register.close().await;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Generate(args) => runtime.block_on(run_generate(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiosk-devkit: {e:#}");
            ExitCode::FAILURE
        }
    }
}
