//! The issuer command line: generate a synthetic register (with card bindings and card
//! files), and serve one municipality's `kiosk.v1.IssuerService` to gateways over mutual TLS
//! (the gateway's `[[remote_issuers]]` points at it; in the all-in-one mode the gateway runs
//! the same service in its own process).
//!
//! ```text
//! issuer generate --seed 1 --residents 1000000 --municipality 131016 --name 千代田区 \
//!     --db sqlite://register.db --bindings-out bindings.jsonl \
//!     [--pki DIR --cards-out DIR --cards 100]
//! issuer serve --db sqlite://register.db --municipality 131016 --listen 0.0.0.0:7444 \
//!     --pki DIR | --tls-cert F --tls-key F --client-ca F --signing-cert F --signing-key F
//! ```

use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use issuer::Register;
use issuer::bindings::{self, CardBinding};
use issuer::generator::{Case, GeneratorConfig, generate};

#[derive(Parser)]
#[command(
    name = "issuer",
    version,
    about = "A municipality's register and issuer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a deterministic synthetic register.
    Generate(GenerateArgs),
    /// Serve one municipality's IssuerService to gateways over mutual TLS until SIGTERM.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The register's database URL (sqlite://FILE or postgres://...).
    #[arg(long, env = "KIOSK_ISSUER_DB")]
    db: String,
    /// The 6-digit municipality code this process issues for.
    #[arg(long)]
    municipality: String,
    /// Where to listen; port 0 picks a free port (the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7444")]
    listen: SocketAddr,
    /// A PKI directory in the development layout (`<stem>.crt.pem`, `<stem>.key.pem`): the
    /// defaults for every file below are `issuer`, `internal-ca` and
    /// `municipality-<code>` in it.
    #[arg(long)]
    pki: Option<PathBuf>,
    /// The server certificate chain (PEM).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The server key (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// The CA of the gateways' client certificates (PEM).
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// The document-signing certificate chain (PEM).
    #[arg(long)]
    signing_cert: Option<PathBuf>,
    /// The document-signing key (PEM).
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// TLS handshake limit, ms.
    #[arg(long, default_value_t = 5_000)]
    handshake_timeout_ms: u64,
    /// How long renders in flight may finish after SIGTERM, ms.
    #[arg(long, default_value_t = 10_000)]
    drain_ms: u64,
}

/// The file given explicitly, or `<pki>/<stem>.<kind>.pem`.
fn pki_file(
    explicit: &Option<PathBuf>,
    pki: &Option<PathBuf>,
    stem: &str,
    kind: &str,
    flag: &str,
) -> anyhow::Result<PathBuf> {
    match (explicit, pki) {
        (Some(path), _) => Ok(path.clone()),
        (None, Some(dir)) => Ok(dir.join(format!("{stem}.{kind}.pem"))),
        (None, None) => anyhow::bail!("{flag} is needed (or --pki DIR)"),
    }
}

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let municipality = kiosk_document::MunicipalityCode::parse(&args.municipality)
        .map_err(|_| anyhow::anyhow!("--municipality: 6 digits with a valid check digit"))?;
    let code = municipality.as_str().to_owned();
    let signing_stem = format!("municipality-{code}");
    let file = |explicit: &Option<PathBuf>, stem: &str, kind: &str, flag: &str| {
        pki_file(explicit, &args.pki, stem, kind, flag).and_then(|p| read_file(&p))
    };
    let options = issuer::serve::ServeOptions {
        database_url: args.db.clone(),
        municipality,
        listen: args.listen,
        tls: issuer::serve::IssuerTls {
            cert_pem: file(&args.tls_cert, "issuer", "crt", "--tls-cert")?,
            key_pem: file(&args.tls_key, "issuer", "key", "--tls-key")?,
            client_ca_pem: file(&args.client_ca, "internal-ca", "crt", "--client-ca")?,
            handshake_timeout: Duration::from_millis(args.handshake_timeout_ms),
        },
        signing_chain_pem: String::from_utf8(file(
            &args.signing_cert,
            &signing_stem,
            "crt",
            "--signing-cert",
        )?)?,
        signing_key_pem: String::from_utf8(file(
            &args.signing_key,
            &signing_stem,
            "key",
            "--signing-key",
        )?)?,
    };
    let server = issuer::serve::start(options).await?;
    println!("issuer {code} listening on https://{}", server.local_addr());
    std::io::stdout().flush()?;
    tracing::info!(municipality = %code, addr = %server.local_addr(), "issuer serving");
    shutdown_signal().await;
    tracing::info!("draining");
    server.shutdown(Duration::from_millis(args.drain_ms)).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// JSON logs on stderr filtered by `RUST_LOG` (default `info`); no personal data is logged
/// by the issuer (its errors name reasons and kinds, never register values).
fn init_logging() {
    // rustls needs one process-wide provider when more than one could be compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
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
    /// The card crate's test PKI directory (created if missing); needed for card files and
    /// to name the card issuer in the bindings.
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
            cfg.card_issuer = issuer::cards::card_issuer_name(&pki)?;
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
        let n = issuer::cards::mint_cards(pki, cards_out, &mut minted)?;
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
        Command::Serve(args) => {
            init_logging();
            runtime.block_on(run_serve(args))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("issuer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
