//! Where the auditor's tool reads the log (a JSON Lines export, the log's database, or
//! `AuditService` online) and its other inputs: the verifier key, event filters and times.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use audit::checkpoint::CheckpointVerifier;
use audit::event::{EventType, Ident, MunicipalityCode, UnixMillis};
use audit::store::EventFilter;
use audit::verify::{self, Rehashed};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::AnyPool;

#[cfg(feature = "online")]
use crate::online;

#[derive(Args, Clone)]
pub(crate) struct Source {
    /// A JSON Lines export (offline mode).
    #[arg(long, conflicts_with = "db")]
    pub(crate) export: Option<PathBuf>,
    /// The log's database, e.g. sqlite://gateway.db or postgres://host/db (direct mode).
    #[arg(long)]
    pub(crate) db: Option<String>,
    #[cfg(feature = "online")]
    #[command(flatten)]
    pub(crate) online: online::OnlineArgs,
}

impl Source {
    #[cfg(feature = "online")]
    pub(crate) async fn online(&self) -> Result<online::Online> {
        if self.online.online.is_none() {
            bail!("give --export, --db or --online");
        }
        online::Online::connect(&self.online).await
    }

    #[cfg(not(feature = "online"))]
    pub(crate) async fn online(&self) -> Result<std::convert::Infallible> {
        bail!("give --export or --db (this build has no online mode)")
    }
}

#[derive(Args, Clone)]
pub(crate) struct Key {
    /// The log's verifier key `<origin>+<key id>+<base64 key>`, or a file containing it.
    #[arg(long, env = "KIOSK_AUDIT_KEY")]
    pub(crate) key: String,
}

#[derive(Args, Clone, Default)]
pub(crate) struct Filters {
    /// Inclusive start: RFC 3339 time or a JST date `YYYY-MM-DD`.
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Exclusive end: RFC 3339 time or a JST date `YYYY-MM-DD`.
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// Only these event types (repeatable), e.g. PRINT_REPORTED.
    #[arg(long = "type")]
    pub(crate) types: Vec<String>,
    /// Only this terminal.
    #[arg(long)]
    pub(crate) terminal: Option<String>,
    /// Only this municipality code.
    #[arg(long)]
    pub(crate) municipality: Option<String>,
    /// Start at this log index.
    #[arg(long, default_value_t = 0)]
    pub(crate) start_index: u64,
    /// At most this many events.
    #[arg(long)]
    pub(crate) limit: Option<u64>,
}

pub(crate) fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The verifier of `--key`: the key itself, or the file it names.
pub(crate) fn verifier(key: &Key) -> Result<CheckpointVerifier> {
    let text = if Path::new(&key.key).is_file() {
        read_text(Path::new(&key.key))?
    } else {
        key.key.clone()
    };
    Ok(CheckpointVerifier::parse_vkey(text.trim())?)
}

pub(crate) async fn open_db(url: &str) -> Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .context("connecting to the database")?;
    Ok(pool)
}

/// A write transaction; on SQLite `BEGIN IMMEDIATE`, so the write cannot fail on a snapshot
/// another writer moved past.
pub(crate) async fn begin_write(pool: &AnyPool) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
    let conn = pool.acquire().await?;
    let sqlite = conn.backend_name() == "SQLite";
    drop(conn);
    Ok(if sqlite {
        pool.begin_with("BEGIN IMMEDIATE").await?
    } else {
        pool.begin().await?
    })
}

/// Re-hashes an export file from its canonical bytes, with a progress bar.
pub(crate) fn rehash_file(path: &Path) -> Result<Rehashed> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress(len, "re-hashing");
    let reader = BufReader::new(bar.wrap_read(file));
    let re = verify::rehash_export(reader, |_| {})?;
    bar.finish_and_clear();
    Ok(re)
}

pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// An RFC 3339 time, or a date `YYYY-MM-DD` meaning its midnight in Japan.
pub(crate) fn parse_time(s: &str) -> Result<UnixMillis> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(UnixMillis(i64::try_from(
            t.unix_timestamp_nanos() / 1_000_000,
        )?));
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(s, &fmt)
        .map_err(|_| anyhow!("time must be RFC 3339 or YYYY-MM-DD: {s}"))?;
    let jst = time::UtcOffset::from_hms(9, 0, 0)?;
    let t = date.midnight().assume_offset(jst);
    Ok(UnixMillis(i64::try_from(
        t.unix_timestamp_nanos() / 1_000_000,
    )?))
}

pub(crate) fn event_filter(f: &Filters) -> Result<EventFilter> {
    Ok(EventFilter {
        from: f.from.as_deref().map(parse_time).transpose()?,
        to: f.to.as_deref().map(parse_time).transpose()?,
        types: f
            .types
            .iter()
            .map(|t| EventType::parse(t))
            .collect::<Result<_, _>>()?,
        terminal: f.terminal.as_deref().map(Ident::parse).transpose()?,
        municipality: f
            .municipality
            .as_deref()
            .map(MunicipalityCode::parse)
            .transpose()?,
        start_index: f.start_index,
        limit: f.limit,
    })
}
