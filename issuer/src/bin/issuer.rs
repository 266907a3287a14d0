//! The issuer command line: serve one municipality's `kiosk.v1.IssuerService` to gateways
//! over mutual TLS (the gateway's `[[remote_issuers]]` points at it; in the all-in-one mode
//! the gateway runs the same service in its own process).
//!
//! ```text
//! issuer serve --db sqlite://register.db --municipality 131016 --listen 0.0.0.0:7444 \
//!     --pki DIR | --tls-cert F --tls-key F --client-ca F --signing-cert F --signing-key KEY
//! issuer signing-csr --key KEY --municipality 131016 --out signing.csr.pem
//! ```
//!
//! KEY is a PEM PKCS#8 file or a PKCS#11 URI (`pkcs11:token=...;object=...?module-path=...
//! &pin-source=file:...`, see kiosk-keys): a token key signs on the token and never leaves it.
//!
//! ```text
//! issuer import --db URL [--changes] [--progress] FILE...
//! ```
//!
//! ```text
//! issuer municipality apply --db URL --file municipality.json --reason TEXT
//! issuer municipality show --db URL --code 131016 [--at YYYY-MM-DD]
//! ```
//!
//! A synthetic register for tests, demos and benchmarks is `kiosk-devkit generate` (TEST
//! ONLY, in the kiosk-devkit package).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

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
    /// Serve one municipality's IssuerService to gateways over mutual TLS until SIGTERM.
    Serve(ServeArgs),
    /// Write a PKCS#10 request for a document-signing key, signed by that key, for the
    /// operator's CA to certify.
    SigningCsr(CsrArgs),
    /// Load a register from JSON Lines files (one transaction), or apply change files (異動)
    /// with --changes (one transaction per change); see docs/register-import.md.
    Import(ImportArgs),
    /// Onboard or change a municipality (name, fees by effective date, hours, closures) as an
    /// audited operator command, or show it; see docs/municipality.example.json.
    #[command(subcommand)]
    Municipality(MunicipalityCommand),
}

#[derive(Subcommand)]
enum MunicipalityCommand {
    /// Create the municipality from a JSON file, or apply its differences, in one transaction
    /// recorded with the operating-system account and the reason.
    Apply(ApplyArgs),
    /// Print the municipality, its fees in force and upcoming, hours, closures and history.
    Show(ShowArgs),
}

#[derive(clap::Args)]
struct ApplyArgs {
    /// The register's database URL (sqlite://FILE or postgres://...).
    #[arg(long, env = "KIOSK_ISSUER_DB")]
    db: String,
    /// The municipality file (JSON, docs/municipality.example.json).
    #[arg(long)]
    file: PathBuf,
    /// Why (recorded; no run of six or more digits, so no personal data).
    #[arg(long)]
    reason: String,
}

#[derive(clap::Args)]
struct ShowArgs {
    /// The register's database URL (sqlite://FILE or postgres://...).
    #[arg(long, env = "KIOSK_ISSUER_DB")]
    db: String,
    /// The 6-digit municipality code.
    #[arg(long)]
    code: String,
    /// The date whose fees are shown, YYYY-MM-DD (default: today in Japan time).
    #[arg(long)]
    at: Option<String>,
}

async fn run_municipality(command: MunicipalityCommand) -> anyhow::Result<()> {
    use issuer::municipality::{Operator, Plan, Reason, apply, show};
    match command {
        MunicipalityCommand::Apply(args) => {
            // Everything that needs no database is checked before it is opened.
            let reason = Reason::parse(&args.reason)?;
            let plan = Plan::read(&args.file)?;
            let operator = Operator::current();
            let register = issuer::Register::open_with(&args.db, 1).await?;
            let now = time::OffsetDateTime::now_utc();
            let done = apply(&register, &plan, &operator, &reason, now).await;
            register.close().await;
            let done = done?;
            let code = plan.code().as_str();
            if done.changes.is_empty() {
                println!("municipality {code}: unchanged (the register already matches the file)");
            } else {
                let verb = if done.created { "created" } else { "changed" };
                println!(
                    "municipality {code} {verb} by {}: {} changes",
                    operator.as_str(),
                    done.changes.len()
                );
                for change in &done.changes {
                    println!("  {change}");
                }
            }
        }
        MunicipalityCommand::Show(args) => {
            let code = kiosk_document::MunicipalityCode::parse(&args.code)
                .map_err(|_| anyhow::anyhow!("--code: 6 digits with a valid check digit"))?;
            let at = match &args.at {
                Some(text) => issuer::calendar::parse_date(text, "date")
                    .map_err(|_| anyhow::anyhow!("--at: YYYY-MM-DD"))?,
                None => issuer::calendar::in_jst(time::OffsetDateTime::now_utc()).date(),
            };
            let register = issuer::Register::open_with(&args.db, 1).await?;
            let text = show(&register, &code, at).await;
            register.close().await;
            print!("{}", text?);
        }
    }
    Ok(())
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The register's database URL (sqlite://FILE or postgres://...).
    #[arg(long, env = "KIOSK_ISSUER_DB")]
    db: String,
    /// The files are change files (異動), applied in order and idempotent by change_id.
    #[arg(long)]
    changes: bool,
    /// Show a progress bar on stderr even when stderr is not a terminal.
    #[arg(long)]
    progress: bool,
    /// JSON Lines files, read in the order given.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

async fn run_import(args: ImportArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let register = issuer::Register::open_with(&args.db, 2).await?;
    let bar = if args.progress || std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(issuer::import::total_bytes(&args.files))
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = std::time::Instant::now();
    if args.changes {
        let done = issuer::import::apply_changes(&register, &args.files, &bar).await?;
        println!(
            "applied {} changes, {} already applied",
            done.applied, done.already_applied
        );
    } else {
        let done = issuer::import::load(&register, &args.files, &bar).await?;
        let secs = started.elapsed().as_secs_f64();
        let kinds: Vec<String> = done
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!(
            "imported {} records ({}) in {secs:.1} s, {:.0} records/s",
            done.records,
            kinds.join(", "),
            done.records as f64 / secs.max(0.001)
        );
    }
    register.close().await;
    Ok(())
}

#[derive(clap::Args)]
struct CsrArgs {
    /// The document-signing key: a PEM PKCS#8 file or a PKCS#11 URI.
    #[arg(long)]
    key: String,
    /// The 6-digit municipality code the certificate will name.
    #[arg(long)]
    municipality: String,
    /// The subject's common name (default: `<code> document signing`).
    #[arg(long)]
    common_name: Option<String>,
    /// Where to write the PEM request (an existing file is not overwritten).
    #[arg(long)]
    out: PathBuf,
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
    /// The document-signing key: a PEM PKCS#8 file or a PKCS#11 URI (`pkcs11:...`).
    #[arg(long)]
    signing_key: Option<String>,
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
        signing_key: open_signing_key(&args, &signing_stem)?,
    };
    let server = issuer::serve::start(options).await?;
    // Registered before the announcement: a SIGTERM sent the moment it appears drains.
    let shutdown = shutdown_signal();
    println!("issuer {code} listening on https://{}", server.local_addr());
    std::io::stdout().flush()?;
    tracing::info!(municipality = %code, addr = %server.local_addr(), "issuer serving");
    shutdown.await;
    tracing::info!("draining");
    server.shutdown(Duration::from_millis(args.drain_ms)).await
}

/// The key `--signing-key` names (or the development layout's file under `--pki`).
fn open_signing_key(args: &ServeArgs, stem: &str) -> anyhow::Result<kiosk_keys::Signer> {
    let reference = match (&args.signing_key, &args.pki) {
        (Some(reference), _) => reference.clone(),
        (None, Some(dir)) => dir.join(format!("{stem}.key.pem")).display().to_string(),
        (None, None) => anyhow::bail!("--signing-key is needed (or --pki DIR)"),
    };
    let key = kiosk_keys::Signer::open(&reference, kiosk_keys::Algorithm::EcdsaP256Sha256)
        .map_err(|e| anyhow::anyhow!("--signing-key: {e}"))?;
    tracing::info!(
        key = key.description(),
        token = key.is_token(),
        "document-signing key"
    );
    Ok(key)
}

fn run_signing_csr(args: CsrArgs) -> anyhow::Result<()> {
    let municipality = kiosk_document::MunicipalityCode::parse(&args.municipality)
        .map_err(|_| anyhow::anyhow!("--municipality: 6 digits with a valid check digit"))?;
    let key = kiosk_keys::Signer::open(&args.key, kiosk_keys::Algorithm::EcdsaP256Sha256)
        .map_err(|e| anyhow::anyhow!("--key: {e}"))?;
    let common_name = args
        .common_name
        .unwrap_or_else(|| format!("{} document signing", municipality.as_str()));
    let pem = issuer::document::csr::signing_request(&key, &municipality, &common_name)
        .map_err(|e| anyhow::anyhow!("--key: {e}"))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.out)
        .map_err(|e| anyhow::anyhow!("--out {}: {e}", args.out.display()))?;
    out.write_all(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("--out {}: {e}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// Listens for SIGINT and SIGTERM from this call on (the handlers are registered now, not
/// when the future is first polled), and resolves on the first.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (term, interrupt) {
            (Ok(mut term), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
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
        Command::Serve(args) => {
            init_logging();
            runtime.block_on(run_serve(args))
        }
        Command::SigningCsr(args) => run_signing_csr(args),
        Command::Import(args) => runtime.block_on(run_import(args)),
        Command::Municipality(command) => runtime.block_on(run_municipality(command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("issuer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
