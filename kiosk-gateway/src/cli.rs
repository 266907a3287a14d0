//! The command line: `serve`, `config check`, `demo` (feature `embedded`), and operator
//! commands. `main.rs` only parses and calls into here, so every path is testable as a library
//! function.
//!
//! `serve` runs the profile the configuration chooses (`crate::config::Profile`): the
//! production deployment (`crate::deployment`) or the embedded development one
//! (`crate::provision`, TEST ONLY). Both first run `crate::trust::check`'s checks, which
//! `config check` runs alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use audit::event::UnixMillis;
use clap::{Args, Parser, Subcommand};

use crate::admin::{self, AdminError, Attribution, Change, TerminalAction};
use crate::admin_enroll::{self, TerminalTrust};
use crate::config::{Config, ProcessEnvironment, Profile, env_var};
use crate::effective::redact_url;
use crate::trust::Refused;

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
    /// Serve terminals, auditors and verifiers. With --config FILE, the production profile
    /// (the certificates, keys, database and issuers it names; nothing created) unless the
    /// file says profile = "dev"; without a file, or with --dev, the development profile: the
    /// embedded deployment under .kiosk-data/ (SQLite, a development PKI, a synthetic
    /// register; TEST ONLY; feature `embedded`).
    Serve(ConfigSource),
    /// Configuration commands.
    Config {
        /// The command.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run the whole system once in this process and print a report: a gateway and an issuer
    /// on loopback with real TLS, the reference terminal with software cards.
    #[cfg(feature = "embedded")]
    Demo {
        /// Where the issued PDFs go.
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
        /// Residents in the synthetic register.
        #[arg(long, default_value_t = 120)]
        residents: u32,
    },
    /// Print the binding key of a card certificate (PEM or DER): the keyIdentifier of its
    /// authorityKeyIdentifier and its serial, lowercase hex, as a bindings file names them.
    CardKey {
        /// The card certificate.
        #[arg(long)]
        cert: PathBuf,
    },
    /// Operator commands on the gateway database that `serve` uses with the same
    /// configuration. Every change names --reason (and --on-behalf-of under a shared account) and
    /// is recorded in the audit log, with the operating-system account as its actor, in the
    /// same transaction; the running gateway follows it on its next request.
    Admin {
        /// A TOML configuration file; `KIOSK_*` variables override it.
        #[arg(long, env = "KIOSK_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// The command.
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// Where the configuration comes from, and the profile when forced.
#[derive(Debug, Args)]
pub struct ConfigSource {
    /// A TOML configuration file; `KIOSK_*` variables override it. With one, the profile is
    /// production unless it says profile = "dev".
    #[arg(long, env = "KIOSK_CONFIG")]
    pub config: Option<PathBuf>,
    /// The development profile (the embedded deployment, TEST ONLY), whatever the file says.
    #[arg(long)]
    pub dev: bool,
}

/// Configuration commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (every setting, from the file, `KIOSK_*` variables
    /// and defaults, database passwords shown as ***) and check it as `serve` would, without
    /// opening a database or binding: exit 0 if `serve` would start, 64 listing every problem.
    Check(ConfigSource),
}

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List, register, suspend, resume or retire store terminals.
    Terminal {
        /// The command.
        #[command(subcommand)]
        command: TerminalCommand,
    },
    /// Stop or restart issuing everywhere or for one municipality.
    KillSwitch {
        /// The command.
        #[command(subcommand)]
        command: KillSwitchCommand,
    },
    /// Import card bindings, or link a renewed card certificate to its resident.
    CardBinding {
        /// The command.
        #[command(subcommand)]
        command: CardBindingCommand,
    },
    /// Route a municipality to its issuer (`crate::admin_route`).
    Municipality {
        /// The command.
        #[command(subcommand)]
        command: MunicipalityCommand,
    },
}

/// Municipality commands.
#[derive(Debug, Subcommand)]
pub enum MunicipalityCommand {
    /// Add a municipality to the routing, rename it or route it to another issuer, recorded
    /// with its audit event. `serve` never changes a recorded route itself: a configuration
    /// that routes a municipality elsewhere stops it until this command has recorded the change.
    Route {
        /// The municipality code (6 digits with its check digit).
        #[arg(long)]
        code: String,
        /// Its name as kiosks and verifiers show it (required for a new municipality).
        #[arg(long)]
        name: Option<String>,
        /// Its issuer: the `endpoint` of its `[[remote_issuers]]` entry, or `in-process`.
        #[arg(long)]
        endpoint: String,
        /// Who and why.
        #[command(flatten)]
        by: ChangedBy,
    },
}

/// Card binding commands (`crate::admin_bindings`).
#[derive(Debug, Subcommand)]
pub enum CardBindingCommand {
    /// Add the bindings of a JSON Lines file (issuer::bindings format); all or nothing.
    Import {
        /// The bindings file.
        file: PathBuf,
        /// Who and why.
        #[command(flatten)]
        by: ChangedBy,
    },
    /// Close the binding of --old and bind --new to the same resident.
    Renew {
        /// The replaced certificate's key, `<issuer_key_id>:<card_serial_hex>` (`card-key`).
        #[arg(long)]
        old: String,
        /// The renewed certificate's key, in the same form.
        #[arg(long)]
        new: String,
        /// Who and why.
        #[command(flatten)]
        by: ChangedBy,
    },
}

/// Terminal commands.
#[derive(Debug, Subcommand)]
pub enum TerminalCommand {
    /// Every registered terminal: id, chain, store, status.
    List,
    /// Register a terminal (active): the id its certificate's SAN URI carries,
    /// `urn:kiosk:terminal:<chain>/<store>/<terminal>`.
    Register(TerminalChange),
    /// Register the terminal a client certificate names (PEM or DER), after checking it as
    /// the TLS handshake will: it chains to trust.terminal_ca, is valid now, allows client
    /// authentication and is on no client CRL. The event records its SHA-256 fingerprint.
    Enroll {
        /// The terminal's client certificate.
        #[arg(long)]
        cert: PathBuf,
        /// Who and why.
        #[command(flatten)]
        by: ChangedBy,
    },
    /// Refuse the terminal's sessions (TERMINAL_SUSPENDED) until resumed.
    Suspend(TerminalChange),
    /// Accept the terminal's sessions again.
    Resume(TerminalChange),
    /// Refuse the terminal for good (TERMINAL_RETIRED); it cannot be resumed.
    Retire(TerminalChange),
}

/// A change to one terminal.
#[derive(Debug, Args)]
pub struct TerminalChange {
    /// `<chain>/<store>/<terminal>`, as `admin terminal list` shows it.
    pub terminal_id: String,
    /// Who and why.
    #[command(flatten)]
    pub by: ChangedBy,
}

/// Kill switch commands.
#[derive(Debug, Subcommand)]
pub enum KillSwitchCommand {
    /// Refuse issuing (SERVICE_SUSPENDED): everywhere, or for --municipality.
    On(KillSwitchChange),
    /// Issue again: everywhere, or for --municipality.
    Off(KillSwitchChange),
    /// The global switch and each configured municipality's.
    Status,
}

/// A change to a kill switch.
#[derive(Debug, Args)]
pub struct KillSwitchChange {
    /// Only this municipality (6-digit code); without it, the global switch.
    #[arg(long)]
    pub municipality: Option<String>,
    /// Who and why.
    #[command(flatten)]
    pub by: ChangedBy,
}

/// Who makes a change and why; both go into the audit event.
#[derive(Debug, Args)]
pub struct ChangedBy {
    /// When the command runs under a shared account: the operator it runs for (an id: letters,
    /// digits and ._:/-, e.g. ops-chiyoda-01). The audit event's actor is always the
    /// operating-system account (`unix:<name>`); this is recorded beside it as `on_behalf_of`.
    /// `--operator` is an older spelling of the same option.
    #[arg(long = "on-behalf-of", alias = "operator")]
    pub on_behalf_of: Option<String>,
    /// Why, in a sentence (no personal data: runs of six or more digits are refused).
    #[arg(long)]
    pub reason: String,
}

/// Exit code for an invalid configuration (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// Runs the parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Serve(source) => serve_command(&source).await,
        Command::Config {
            command: ConfigCommand::Check(source),
        } => config_check(&source),
        Command::Admin { config, command } => admin(config, command).await,
        Command::CardKey { cert } => match crate::admin_bindings::card_key_of_file(&cert) {
            Ok(key) => {
                print!("{}", crate::admin_bindings::card_key_line(&key));
                0
            }
            Err(error) => {
                eprintln!("kiosk-gateway card-key: {error}");
                EXIT_CONFIG
            }
        },
        #[cfg(feature = "embedded")]
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

/// The configuration `source` names, with the profile `--dev` forces.
fn load(source: &ConfigSource) -> Result<Config, String> {
    let mut config = Config::load(source.config.as_deref(), &ProcessEnvironment)
        .map_err(|error| error.to_string())?;
    if source.dev {
        config.profile = Some(Profile::Dev);
    }
    Ok(config)
}

/// A refusal as printed: where the configuration came from, then every problem, each with
/// the key it concerns (and the variable that set it, when one did).
fn refusal(config: &Config, refused: &Refused) -> String {
    let origin = match &config.sources.file {
        Some(file) => format!("{} and KIOSK_* variables", file.display()),
        None => "no configuration file; KIOSK_* variables".to_owned(),
    };
    let mut refused = refused.clone();
    for problem in &mut refused.0 {
        let variable = env_var(&problem.key);
        if config.sources.variables.contains(&variable) {
            problem.key = format!("{} ({variable})", problem.key);
        }
    }
    format!(
        "profile {} ({origin}): {refused}",
        config.profile().as_str()
    )
}

/// `serve`: 64 when the configuration or its trust and key files are refused (before
/// anything binds), 1 when serving fails.
async fn serve_command(source: &ConfigSource) -> u8 {
    let config = match load(source) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("kiosk-gateway: {error}");
            return EXIT_CONFIG;
        }
    };
    if let Err(refused) = crate::trust::profile_problems(&config) {
        eprintln!("kiosk-gateway: not started: {}", refusal(&config, &refused));
        return EXIT_CONFIG;
    }
    let Err(error) = serve(&config).await else {
        return 0;
    };
    match error.downcast_ref::<Refused>() {
        Some(refused) => {
            eprintln!("kiosk-gateway: not started: {}", refusal(&config, refused));
            EXIT_CONFIG
        }
        None => {
            eprintln!("kiosk-gateway: {error:#}");
            1
        }
    }
}

/// `config check`: the effective configuration on stdout; 0 when `serve` would start with
/// it, else 64 with every problem on stderr. Opens no database, binds nothing, creates
/// nothing.
fn config_check(source: &ConfigSource) -> u8 {
    let config = match load(source) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("kiosk-gateway config check: {error}");
            return EXIT_CONFIG;
        }
    };
    print!("{}", crate::effective::render(&config, source.dev));
    match crate::trust::check(&config) {
        Ok(()) => {
            eprintln!(
                "kiosk-gateway config check: ok: the {} profile would start",
                config.profile().as_str()
            );
            0
        }
        Err(refused) => {
            eprintln!("kiosk-gateway config check: {}", refusal(&config, &refused));
            EXIT_CONFIG
        }
    }
}

async fn admin(config: Option<PathBuf>, command: AdminCommand) -> u8 {
    let config = match Config::load(config.as_deref(), &ProcessEnvironment) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("kiosk-gateway: {error}");
            return EXIT_CONFIG;
        }
    };
    match run_admin(&config, command).await {
        Ok(report) => {
            print!("{report}");
            0
        }
        Err(error) => {
            eprintln!("kiosk-gateway admin: {error}");
            if error.is_usage() { EXIT_CONFIG } else { 1 }
        }
    }
}

/// Runs one operator command; returns what to print.
async fn run_admin(config: &Config, command: AdminCommand) -> Result<String, AdminError> {
    match command {
        AdminCommand::Terminal { command } => terminal_command(config, command).await,
        AdminCommand::KillSwitch { command } => kill_switch_command(config, command).await,
        AdminCommand::CardBinding { command } => card_binding_command(config, command).await,
        AdminCommand::Municipality { command } => municipality_command(config, command).await,
    }
}

/// `admin municipality route`: the input is checked before the database is opened.
async fn municipality_command(
    config: &Config,
    command: MunicipalityCommand,
) -> Result<String, AdminError> {
    let MunicipalityCommand::Route {
        code,
        name,
        endpoint,
        by,
    } = command;
    let by = attribution(&by)?;
    let route = crate::admin_route::RouteRequest {
        code: &code,
        name: name.as_deref(),
        endpoint: &endpoint,
    }
    .check()?;
    let store = admin::open_store(&config.database_url()).await?;
    Ok(
        match crate::admin_route::route_municipality(&store, &route, &by, now(config)?).await? {
            Change::Applied { event_index } => {
                format!("municipality {code}: routed to {endpoint} (audit event {event_index})\n")
            }
            Change::Unchanged => {
                format!("municipality {code} is already routed so: nothing written\n")
            }
        },
    )
}

/// `admin card-binding …`: the input is checked before the database is opened.
async fn card_binding_command(
    config: &Config,
    command: CardBindingCommand,
) -> Result<String, AdminError> {
    use crate::admin_bindings as bindings;
    match command {
        CardBindingCommand::Import { file, by } => {
            let by = attribution(&by)?;
            let lines = bindings::read_import_file(&file)?;
            let store = admin::open_store(&config.database_url()).await?;
            let report = bindings::import_bindings(&store, &lines, &by, now(config)?).await?;
            Ok(report.to_string())
        }
        CardBindingCommand::Renew { old, new, by } => {
            let by = attribution(&by)?;
            let (old, new) = (bindings::parse_key(&old)?, bindings::parse_key(&new)?);
            let store = admin::open_store(&config.database_url()).await?;
            Ok(
                match bindings::renew_binding(&store, &old, &new, &by, now(config)?).await? {
                    Change::Applied { event_index } => {
                        format!("card binding renewed (audit event {event_index})\n")
                    }
                    Change::Unchanged => "card binding already renewed: nothing written\n".into(),
                },
            )
        }
    }
}

/// Who makes a change and why, checked before the database is opened: bad input touches
/// nothing.
fn attribution(by: &ChangedBy) -> Result<Attribution, AdminError> {
    Attribution::of_this_process(by.on_behalf_of.as_deref(), &by.reason)
}

/// Now by the deployment's clock, as `serve` builds it from the same configuration.
fn now(config: &Config) -> Result<UnixMillis, AdminError> {
    let clock = config
        .clock()
        .map_err(|e| AdminError::Audit(format!("rehearsal_clock_start: {e}")))?;
    Ok(clock.now())
}

/// `admin terminal …`.
async fn terminal_command(config: &Config, command: TerminalCommand) -> Result<String, AdminError> {
    let (change, action) = match command {
        TerminalCommand::List => {
            let store = admin::open_store(&config.database_url()).await?;
            return Ok(terminal_table(&admin::terminals(&store).await?));
        }
        TerminalCommand::Register(change) => return register(config, &change).await,
        TerminalCommand::Enroll { cert, by } => return enroll(config, &cert, &by).await,
        TerminalCommand::Suspend(change) => (change, TerminalAction::Suspend),
        TerminalCommand::Resume(change) => (change, TerminalAction::Resume),
        TerminalCommand::Retire(change) => (change, TerminalAction::Retire),
    };
    let by = attribution(&change.by)?;
    let store = admin::open_store(&config.database_url()).await?;
    let id = &change.terminal_id;
    let status = action.target().as_str();
    Ok(
        match admin::change_terminal(&store, id, action, &by, now(config)?).await? {
            Change::Applied { event_index } => {
                format!("terminal {id}: {status} (audit event {event_index})\n")
            }
            Change::Unchanged => format!("terminal {id} is already {status}: nothing written\n"),
        },
    )
}

/// `admin terminal register`.
async fn register(config: &Config, change: &TerminalChange) -> Result<String, AdminError> {
    let by = attribution(&change.by)?;
    let store = admin::open_store(&config.database_url()).await?;
    let id = &change.terminal_id;
    Ok(
        match admin::register_terminal(&store, id, &by, now(config)?).await? {
            Change::Applied { event_index } => {
                format!("terminal {id}: registered, active (audit event {event_index})\n")
            }
            Change::Unchanged => format!("terminal {id} is already registered: nothing written\n"),
        },
    )
}

/// `admin terminal enroll`: the certificate is checked before the database is opened.
async fn enroll(config: &Config, cert: &Path, by: &ChangedBy) -> Result<String, AdminError> {
    let by = attribution(by)?;
    let now = now(config)?;
    let trust = TerminalTrust::read(&terminal_ca_file(config)?, &config.client_crl_files)?;
    let enrolled = trust.check(&admin_enroll::read_certificate(cert)?, now)?;
    let store = admin::open_store(&config.database_url()).await?;
    let id = enrolled.terminal.id();
    let fingerprint = enrolled.fingerprint.as_str().to_owned();
    Ok(
        match admin::enroll_terminal(&store, &enrolled, &by, now).await? {
            Change::Applied { event_index } => format!(
                "terminal {id}: enrolled from certificate {fingerprint}, active \
                 (audit event {event_index})\n"
            ),
            Change::Unchanged => format!("terminal {id} is already registered: nothing written\n"),
        },
    )
}

/// The terminal CA file `serve` trusts with the same configuration.
fn terminal_ca_file(config: &Config) -> Result<PathBuf, AdminError> {
    if config.production() {
        return config
            .trust
            .as_ref()
            .and_then(|trust| trust.terminal_ca.clone())
            .ok_or_else(|| AdminError::BadInput("trust.terminal_ca is not set".into()));
    }
    development_terminal_ca(config)
}

#[cfg(feature = "embedded")]
fn development_terminal_ca(config: &Config) -> Result<PathBuf, AdminError> {
    Ok(crate::provision::development_terminal_ca(config))
}

#[cfg(not(feature = "embedded"))]
fn development_terminal_ca(_: &Config) -> Result<PathBuf, AdminError> {
    Err(AdminError::BadInput(
        "the development profile needs the `embedded` feature".into(),
    ))
}

/// `admin kill-switch …`.
async fn kill_switch_command(
    config: &Config,
    command: KillSwitchCommand,
) -> Result<String, AdminError> {
    let (change, on) = match command {
        KillSwitchCommand::Status => {
            let store = admin::open_store(&config.database_url()).await?;
            let codes: Vec<String> = config
                .all_municipalities()
                .into_iter()
                .map(|(code, _)| code)
                .collect();
            let status = admin::kill_switch_status(&store, &codes).await?;
            return Ok(status.to_string());
        }
        KillSwitchCommand::On(change) => (change, true),
        KillSwitchCommand::Off(change) => (change, false),
    };
    let by = attribution(&change.by)?;
    let store = admin::open_store(&config.database_url()).await?;
    let scope = match &change.municipality {
        Some(code) => format!("kill switch of municipality {code}"),
        None => "global kill switch".to_owned(),
    };
    let state = if on { "on" } else { "off" };
    let municipality = change.municipality.as_deref();
    Ok(
        match admin::set_kill_switch(&store, municipality, on, &by, now(config)?).await? {
            Change::Applied { event_index } => {
                format!("{scope}: {state} (audit event {event_index})\n")
            }
            Change::Unchanged => format!("{scope} is already {state}: nothing written\n"),
        },
    )
}

/// Terminals as aligned columns with a header line.
fn terminal_table(rows: &[crate::store::TerminalRow]) -> String {
    let mut lines = vec![["TERMINAL", "CHAIN", "STORE", "STATUS"].map(str::to_owned)];
    for row in rows {
        lines.push([
            row.terminal_id.clone(),
            row.chain.clone(),
            row.store.clone(),
            row.status.as_str().to_owned(),
        ]);
    }
    let mut widths = [0usize; 4];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A deployment ready to start, with what to print about it once it listens.
struct Prepared {
    store: crate::store::Store,
    parts: crate::server::ServerParts,
    summary: Vec<String>,
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    // Every connection is a descriptor: the soft limit (often 1,024) goes up to the hard one
    // before the connection cap is derived from it.
    match crate::limits::raise_nofile_limit() {
        Ok(soft) => tracing::info!(soft, "RLIMIT_NOFILE"),
        Err(error) => tracing::warn!(%error, "RLIMIT_NOFILE not raised"),
    }
    let clock = config.clock()?;
    if let Some(start) = config.rehearsal_clock_start()? {
        println!("WARNING: rehearsal clock from {start} ms: not for production");
    }
    #[cfg(feature = "embedded")]
    let prepared = if config.production() {
        prepare_production(config, clock.clone()).await?
    } else {
        prepare_embedded(config, clock.clone()).await?
    };
    // `trust::profile_problems` refused the dev profile in this build.
    #[cfg(not(feature = "embedded"))]
    let prepared = prepare_production(config, clock.clone()).await?;
    let Prepared {
        store,
        mut parts,
        summary,
    } = prepared;
    parts.revocation_refresh = Some(Duration::from_secs(config.crl_refresh_secs));
    crate::deployment::record_start(&store, clock.as_ref()).await?;
    let server = crate::server::start(parts, config.listen).await?;
    let shutdown = shutdown_signal();
    println!("kiosk-gateway listening on https://{}", server.local_addr());
    println!("  profile:          {}", profile_banner(config.profile()));
    println!("  gateway database: {}", redact_url(&config.database_url()));
    for remote in &config.remote_issuers {
        println!(
            "  issuer of {}:   {} (separate process, mutual TLS)",
            remote.municipality, remote.endpoint
        );
    }
    println!(
        "  connections:      at most {} ({} without a client certificate, {} per address)",
        config.limits().connection_cap(),
        config.max_anonymous_connections,
        config.max_anonymous_connections_per_ip
    );
    for line in summary {
        println!("  {line}");
    }
    shutdown.await;
    println!("draining");
    server
        .shutdown(
            Duration::from_millis(config.drain_ms),
            Duration::from_millis(config.grace_ms),
        )
        .await;
    Ok(())
}

/// The production deployment: the configured files, remote issuers only.
async fn prepare_production(
    config: &Config,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
) -> anyhow::Result<Prepared> {
    println!("preparing the production profile ([trust], [keys], database_url, remote issuers)");
    let production = crate::deployment::prepare(config, clock).await?;
    let files = &production.files;
    let mut summary = vec![format!(
        "server certificate: {}",
        files.server_cert.display()
    )];
    for file in &files.client_crls {
        summary.push(format!("client CRL:       {}", file.display()));
    }
    summary.push(format!(
        "card CRL:         {} (re-read every {} s and on SIGHUP)",
        files.card_crl.display(),
        config.crl_refresh_secs
    ));
    summary.push("terminals:        as registered (kiosk-gateway admin terminal)".to_owned());
    Ok(Prepared {
        store: production.store,
        parts: production.parts,
        summary,
    })
}

/// The embedded development deployment, created on first start under the data directory.
#[cfg(feature = "embedded")]
async fn prepare_embedded(
    config: &Config,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
) -> anyhow::Result<Prepared> {
    println!(
        "preparing the dev profile (TEST ONLY) under {}",
        config.data_dir.display()
    );
    let embedded = crate::provision::prepare(config, clock.as_ref()).await?;
    let directory = embedded.issuer_directory(config)?;
    let parts = embedded.server_parts(config, clock, directory)?;
    let mut summary = vec![
        format!("register:         {}", redact_url(&config.register_url())),
        format!("PKI (TEST ONLY):  {}", config.pki_dir().display()),
        format!(
            "resident cards:   {}",
            config.data_dir.join("cards").display()
        ),
        "terminals:        seven/131016-0042/k1, seven/131016-0042/k2, lawson/271004-0007/k1"
            .to_owned(),
    ];
    if config.client_crl_files.is_empty() {
        summary.push("client CRLs:      minted from the development PKI (TEST ONLY)".to_owned());
    }
    for file in &config.client_crl_files {
        summary.push(format!("client CRL:       {}", file.display()));
    }
    summary.push(format!(
        "card CRL:         {} (re-read every {} s and on SIGHUP)",
        crate::provision::card_crl_file(config).display(),
        config.crl_refresh_secs
    ));
    Ok(Prepared {
        store: embedded.store,
        parts,
        summary,
    })
}

/// How `serve` names its profile once it listens.
fn profile_banner(profile: Profile) -> &'static str {
    match profile {
        Profile::Production => "production",
        Profile::Dev => "dev: the embedded development deployment, TEST ONLY",
    }
}

/// Listens for SIGINT and SIGTERM from this call on, and resolves on the first. The handlers
/// are registered when this is called, not when the future is first polled: `serve` calls it
/// before it prints that it listens, so a SIGTERM sent the moment it does (systemd stopping a
/// fresh start, a test) drains the server instead of killing it by the default action.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
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
