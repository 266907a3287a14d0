//! `kiosk-audit`: the auditor's tool. Verifies signed checkpoints, remembers the last verified
//! one and proves each new one consistent with it, verifies inclusion, re-hashes exports,
//! exports events, computes settlement and lists or resolves anomalies.
//!
//! Sources: an export file (`--export events.jsonl`, offline) or the database directly
//! (`--db sqlite://...` or `--db postgres://...`), or `AuditService` over mutual TLS
//! (`--online https://...`, cargo feature `online`).
//!
//! Exit codes: 0 verified, 1 the log failed verification (tampering named on stderr), 2 usage
//! or input error.

use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use audit::checkpoint::{CheckpointVerifier, SignedCheckpoint};
use audit::event::{Actor, EventType, Ident, MunicipalityCode, ResolutionNote, UnixMillis};
use audit::merkle::{self, Hash};
use audit::settlement::{self, Grouping, Period};
use audit::store::{self, EventFilter};
use audit::verify::{self, ExportRecord, Rehashed, Tamper};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::AnyPool;

#[cfg(feature = "online")]
mod online;

#[derive(Parser)]
#[command(
    name = "kiosk-audit",
    version,
    about = "Verify and read the kiosk audit log"
)]
struct Cli {
    /// Directory keeping the last verified checkpoint and its leaf hashes.
    #[arg(
        long,
        global = true,
        default_value = "kiosk-audit-state",
        env = "KIOSK_AUDIT_STATE"
    )]
    state: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Source {
    /// A JSON Lines export (offline mode).
    #[arg(long, conflicts_with = "db")]
    export: Option<PathBuf>,
    /// The log's database, e.g. sqlite://gateway.db or postgres://host/db (direct mode).
    #[arg(long)]
    db: Option<String>,
    #[cfg(feature = "online")]
    #[command(flatten)]
    online: online::OnlineArgs,
}

impl Source {
    #[cfg(feature = "online")]
    async fn online(&self) -> Result<online::Online> {
        if self.online.online.is_none() {
            bail!("give --export, --db or --online");
        }
        online::Online::connect(&self.online).await
    }

    #[cfg(not(feature = "online"))]
    async fn online(&self) -> Result<std::convert::Infallible> {
        bail!("give --export or --db (this build has no online mode)")
    }
}

#[derive(Args, Clone)]
struct Key {
    /// The log's verifier key `<origin>+<key id>+<base64 key>`, or a file containing it.
    #[arg(long, env = "KIOSK_AUDIT_KEY")]
    key: String,
}

#[derive(Args, Clone, Default)]
struct Filters {
    /// Inclusive start: RFC 3339 time or a JST date `YYYY-MM-DD`.
    #[arg(long)]
    from: Option<String>,
    /// Exclusive end: RFC 3339 time or a JST date `YYYY-MM-DD`.
    #[arg(long)]
    to: Option<String>,
    /// Only these event types (repeatable), e.g. PRINT_REPORTED.
    #[arg(long = "type")]
    types: Vec<String>,
    /// Only this terminal.
    #[arg(long)]
    terminal: Option<String>,
    /// Only this municipality code.
    #[arg(long)]
    municipality: Option<String>,
    /// Start at this log index.
    #[arg(long, default_value_t = 0)]
    start_index: u64,
    /// At most this many events.
    #[arg(long)]
    limit: Option<u64>,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a checkpoint's signature and print it.
    VerifyCheckpoint {
        #[command(flatten)]
        key: Key,
        /// The signed note file.
        #[arg(long)]
        checkpoint: PathBuf,
    },
    /// The audit run: verify the new checkpoint, prove it consistent with the last verified
    /// one, re-hash the log, name any tampering, then remember the new checkpoint.
    Check {
        #[command(flatten)]
        key: Key,
        #[command(flatten)]
        source: Source,
        /// The new signed checkpoint (with --export; with --db the latest stored one is used).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Verify that the event at an index is in the checkpointed tree.
    Inclusion {
        #[command(flatten)]
        key: Key,
        #[command(flatten)]
        source: Source,
        /// The signed checkpoint (with --db the latest stored one if omitted).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The event's log index.
        #[arg(long)]
        index: u64,
    },
    /// Export events as CSV or JSON Lines.
    Export {
        #[command(flatten)]
        source: Source,
        #[command(flatten)]
        filters: Filters,
        /// Output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Settlement and statistics (交付実績).
    Settlement {
        #[command(flatten)]
        source: Source,
        /// Inclusive start: RFC 3339 time or JST date.
        #[arg(long)]
        from: String,
        /// Exclusive end: RFC 3339 time or JST date.
        #[arg(long)]
        to: String,
        /// Day or month (JST).
        #[arg(long, value_enum, default_value = "day")]
        period: PeriodArg,
        /// Grouping.
        #[arg(long, value_enum, default_value = "municipality")]
        group: GroupArg,
        /// Output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
    },
    /// List anomalies (open ones unless --all).
    Anomalies {
        #[command(flatten)]
        source: Source,
        /// Include resolved ones.
        #[arg(long)]
        all: bool,
    },
    /// Resolve an anomaly with a reason (direct database mode); the resolution is an event.
    Resolve {
        #[command(flatten)]
        source: Source,
        /// The anomaly id.
        #[arg(long)]
        id: String,
        /// Why it is closed (1-500 characters, no personal data).
        #[arg(long)]
        reason: String,
        /// Your auditor id (direct database mode; online, the server takes it from your
        /// client certificate).
        #[arg(long, default_value = "")]
        auditor: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum)]
enum PeriodArg {
    Day,
    Month,
}

#[derive(Clone, Copy, ValueEnum)]
enum GroupArg {
    Chain,
    Store,
    Terminal,
    Municipality,
    CertificateType,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kiosk-audit: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(findings) if findings.is_empty() => ExitCode::SUCCESS,
        Ok(findings) => {
            for f in &findings {
                eprintln!("TAMPERED: {f}");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("kiosk-audit: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<Vec<Tamper>> {
    match cli.command {
        Command::VerifyCheckpoint { key, checkpoint } => {
            let sc = verifier(&key)?.verify(&read_text(&checkpoint)?)?;
            print_checkpoint(&sc);
            Ok(Vec::new())
        }
        Command::Check {
            key,
            source,
            checkpoint,
        } => check(&cli.state, &key, &source, checkpoint.as_deref()).await,
        Command::Inclusion {
            key,
            source,
            checkpoint,
            index,
        } => inclusion(&key, &source, checkpoint.as_deref(), index).await,
        Command::Export {
            source,
            filters,
            format,
            out,
        } => export(&source, &filters, format, out.as_deref()).await,
        Command::Settlement {
            source,
            from,
            to,
            period,
            group,
            format,
        } => {
            let (from, to) = (parse_time(&from)?, parse_time(&to)?);
            let period = match period {
                PeriodArg::Day => Period::Day,
                PeriodArg::Month => Period::Month,
            };
            let grouping = match group {
                GroupArg::Chain => Grouping::Chain,
                GroupArg::Store => Grouping::Store,
                GroupArg::Terminal => Grouping::Terminal,
                GroupArg::Municipality => Grouping::Municipality,
                GroupArg::CertificateType => Grouping::CertificateType,
            };
            let rows = match (&source.export, &source.db) {
                (Some(path), _) => {
                    let re = rehash_file(path)?;
                    if !re.findings.is_empty() {
                        return Ok(re.findings);
                    }
                    settlement::settlement(
                        re.events.iter().map(|(_, e)| e),
                        from,
                        to,
                        period,
                        grouping,
                    )
                }
                (None, Some(url)) => {
                    let pool = open_db(url).await?;
                    let mut conn = pool.acquire().await?;
                    settlement::settlement_from_store(&mut conn, from, to, period, grouping).await?
                }
                _ => {
                    #[allow(unused_mut, unreachable_code, clippy::diverging_sub_expression)]
                    let mut client = source.online().await?;
                    #[cfg(feature = "online")]
                    {
                        let mut re = Rehashed::default();
                        let filter = EventFilter {
                            from: Some(from),
                            to: Some(to),
                            ..Default::default()
                        };
                        client
                            .events(&filter, |rec| {
                                re.push_record(&rec);
                                Ok(())
                            })
                            .await?;
                        // A filtered stream has index gaps by design; only field and hash checks count.
                        let bad: Vec<Tamper> = re
                            .findings
                            .iter()
                            .filter(|f| !matches!(f, Tamper::IndexGap { .. }))
                            .cloned()
                            .collect();
                        if !bad.is_empty() {
                            return Ok(bad);
                        }
                        settlement::settlement(
                            re.events.iter().map(|(_, e)| e),
                            from,
                            to,
                            period,
                            grouping,
                        )
                    }
                    #[cfg(not(feature = "online"))]
                    match client {}
                }
            };
            let mut out = std::io::stdout().lock();
            match format {
                Format::Csv => {
                    writeln!(out, "period,group,issued,voided,unconfirmed,fees_yen")?;
                    for r in rows {
                        writeln!(
                            out,
                            "{},{},{},{},{},{}",
                            r.period, r.group, r.issued, r.voided, r.unconfirmed, r.fees_yen
                        )?;
                    }
                }
                Format::Jsonl => {
                    for r in rows {
                        writeln!(out, "{}", serde_json::to_string(&r)?)?;
                    }
                }
            }
            Ok(Vec::new())
        }
        Command::Anomalies { source, all } => {
            let list = match (&source.export, &source.db) {
                (Some(path), _) => {
                    let re = rehash_file(path)?;
                    if !re.findings.is_empty() {
                        return Ok(re.findings);
                    }
                    store::anomalies_from_events(re.events.iter().map(|(i, e)| (*i, e)))
                }
                (None, Some(url)) => {
                    let pool = open_db(url).await?;
                    let mut conn = pool.acquire().await?;
                    store::list_anomalies(&mut conn, true).await?
                }
                _ => {
                    #[allow(unused_mut)]
                    let mut client = source.online().await?;
                    #[cfg(feature = "online")]
                    {
                        println!(
                            "anomaly_id,kind,opened_at_ms,opened_event_index,terminal,municipality,issuance,resolution,resolved_by"
                        );
                        for row in client.anomalies(all).await? {
                            println!("{row}");
                        }
                        return Ok(Vec::new());
                    }
                    #[cfg(not(feature = "online"))]
                    match client {}
                }
            };
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "anomaly_id,kind,opened_at_ms,opened_event_index,terminal,municipality,issuance,resolution,resolved_by"
            )?;
            for a in list.iter().filter(|a| all || a.resolution.is_none()) {
                let (res, by) = a
                    .resolution
                    .as_ref()
                    .map_or((String::new(), String::new()), |r| {
                        (r.note.as_str().to_owned(), r.by.clone())
                    });
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},\"{}\",{}",
                    a.id,
                    a.kind,
                    a.opened_at.0,
                    a.opened_event_index,
                    a.terminal.as_ref().map(Ident::as_str).unwrap_or(""),
                    a.municipality
                        .as_ref()
                        .map(MunicipalityCode::as_str)
                        .unwrap_or(""),
                    a.issuance.as_ref().map(Ident::as_str).unwrap_or(""),
                    res.replace('"', "\"\""),
                    by
                )?;
            }
            Ok(Vec::new())
        }
        Command::Resolve {
            source,
            id,
            reason,
            auditor,
        } => {
            let id = Ident::parse(&id)?;
            let note = ResolutionNote::parse(&reason)?;
            let Some(db) = &source.db else {
                #[allow(unused_mut)]
                let mut client = source.online().await?;
                #[cfg(feature = "online")]
                {
                    let resolved = client.resolve(id.as_str(), note.as_str()).await?;
                    println!("resolved {resolved}");
                    return Ok(Vec::new());
                }
                #[cfg(not(feature = "online"))]
                match client {}
            };
            let pool = open_db(db).await?;
            let auditor = Actor::Auditor(Ident::parse(&auditor)?);
            let mut tx = begin_write(&pool).await?;
            let a = store::resolve_anomaly(&mut tx, UnixMillis::now(), &id, auditor, note).await?;
            tx.commit().await?;
            let idx = a.resolution.map(|r| r.event_index).unwrap_or_default();
            println!("resolved {} (event {idx})", a.id);
            Ok(Vec::new())
        }
    }
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn verifier(key: &Key) -> Result<CheckpointVerifier> {
    let text = if Path::new(&key.key).is_file() {
        read_text(Path::new(&key.key))?
    } else {
        key.key.clone()
    };
    Ok(CheckpointVerifier::parse_vkey(text.trim())?)
}

fn print_checkpoint(sc: &SignedCheckpoint) {
    let c = sc.checkpoint();
    println!(
        "origin {}\nsize {}\nroot {}",
        c.origin(),
        c.size(),
        c.root()
    );
}

async fn open_db(url: &str) -> Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .context("connecting to the database")?;
    Ok(pool)
}

async fn begin_write(pool: &AnyPool) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
    let conn = pool.acquire().await?;
    let sqlite = conn.backend_name() == "SQLite";
    drop(conn);
    Ok(if sqlite {
        pool.begin_with("BEGIN IMMEDIATE").await?
    } else {
        pool.begin().await?
    })
}

fn rehash_file(path: &Path) -> Result<Rehashed> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress(len, "re-hashing");
    let reader = BufReader::new(bar.wrap_read(file));
    let re = verify::rehash_export(reader, |_| {})?;
    bar.finish_and_clear();
    Ok(re)
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// The state directory: the last verified note and the leaf hashes behind it.
struct State {
    dir: PathBuf,
}

impl State {
    fn note(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }
    fn leaves(&self) -> PathBuf {
        self.dir.join("leaves.bin")
    }

    fn load(&self, v: &CheckpointVerifier) -> Result<Option<(SignedCheckpoint, Vec<Hash>)>> {
        if !self.note().exists() {
            return Ok(None);
        }
        let sc = v
            .verify(&read_text(&self.note())?)
            .context("the saved checkpoint no longer verifies")?;
        let raw = fs::read(self.leaves()).unwrap_or_default();
        let leaves: Vec<Hash> = raw
            .chunks_exact(32)
            .filter_map(|c| Hash::from_slice(c).ok())
            .collect();
        Ok(Some((sc, leaves)))
    }

    /// Writes atomically (temp file, then rename) so a crash never leaves half a state.
    fn save(&self, sc: &SignedCheckpoint, leaves: &[Hash]) -> Result<()> {
        fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join("leaves.bin.tmp");
        let mut w = BufWriter::new(fs::File::create(&tmp)?);
        for h in leaves {
            w.write_all(h.as_bytes())?;
        }
        w.into_inner().map_err(|e| anyhow!("{e}"))?.sync_all()?;
        fs::rename(&tmp, self.leaves())?;
        let tmp = self.dir.join("checkpoint.tmp");
        fs::write(&tmp, sc.note())?;
        fs::rename(&tmp, self.note())?;
        Ok(())
    }
}

async fn check(
    state_dir: &Path,
    key: &Key,
    source: &Source,
    checkpoint: Option<&Path>,
) -> Result<Vec<Tamper>> {
    let v = verifier(key)?;
    let state = State {
        dir: state_dir.to_owned(),
    };
    let previous = state.load(&v)?;
    let mut findings = Vec::new();
    let (new_cp, observed) = match (&source.export, &source.db) {
        (Some(path), _) => {
            let note =
                checkpoint.ok_or_else(|| anyhow!("--checkpoint is required with --export"))?;
            let new_cp = v.verify(&read_text(note)?)?;
            let re = rehash_file(path)?;
            findings.extend(re.findings.iter().cloned());
            findings.extend(re.check_checkpoint(new_cp.checkpoint()));
            if let Some((old, _)) = &previous {
                // The export's own tree proves consistency from the old to the new checkpoint.
                let (o, n) = (old.checkpoint(), new_cp.checkpoint());
                if n.size() < o.size() {
                    findings.push(Tamper::Truncated {
                        size: n.size(),
                        expected: o.size(),
                    });
                } else if re.tree.size() >= n.size() {
                    let proof = re
                        .tree
                        .consistency_proof(o.size(), n.size())
                        .unwrap_or_default();
                    if let Err(t) = verify::check_consistency(o, n, &proof) {
                        findings.push(t);
                    }
                }
            }
            (new_cp, re.leaves())
        }
        (None, Some(url)) => {
            let pool = open_db(url).await?;
            let mut conn = pool.acquire().await?;
            let new_cp = match checkpoint {
                Some(p) => v.verify(&read_text(p)?)?,
                None => {
                    let stored = store::latest_checkpoint(&mut conn)
                        .await?
                        .ok_or_else(|| anyhow!("no checkpoint stored yet"))?;
                    v.verify(stored.signed.note())?
                }
            };
            if let Some((old, _)) = &previous {
                let (o, n) = (old.checkpoint(), new_cp.checkpoint());
                if n.size() < o.size() {
                    findings.push(Tamper::Truncated {
                        size: n.size(),
                        expected: o.size(),
                    });
                } else {
                    let proof = store::consistency_proof(&mut conn, o.size(), n.size())
                        .await
                        .unwrap_or_default();
                    if let Err(t) = verify::check_consistency(o, n, &proof) {
                        findings.push(t);
                    }
                }
            }
            let (re, f) = verify::verify_store(&mut conn, new_cp.checkpoint()).await?;
            findings.extend(f);
            (new_cp, re.leaves())
        }
        _ => {
            #[allow(unused_mut)]
            let mut client = source.online().await?;
            #[cfg(feature = "online")]
            {
                let new_cp = match checkpoint {
                    Some(p) => v.verify(&read_text(p)?)?,
                    None => v.verify(&client.checkpoint_note().await?)?,
                };
                if let Some((old, _)) = &previous {
                    let (o, n) = (old.checkpoint(), new_cp.checkpoint());
                    if n.size() < o.size() {
                        findings.push(Tamper::Truncated {
                            size: n.size(),
                            expected: o.size(),
                        });
                    } else {
                        let proof = client
                            .consistency(o.size(), n.size())
                            .await
                            .unwrap_or_default();
                        if let Err(t) = verify::check_consistency(o, n, &proof) {
                            findings.push(t);
                        }
                    }
                }
                let bar = progress(new_cp.checkpoint().size(), "re-hashing");
                let mut re = Rehashed::default();
                client
                    .events(&EventFilter::default(), |rec| {
                        re.push_record(&rec);
                        bar.inc(1);
                        Ok(())
                    })
                    .await?;
                bar.finish_and_clear();
                findings.extend(re.findings.iter().cloned());
                findings.extend(re.check_checkpoint(new_cp.checkpoint()));
                (new_cp, re.leaves())
            }
            #[cfg(not(feature = "online"))]
            match client {}
        }
    };
    if let Some((_, known)) = &previous
        && let Some(t) = verify::diagnose(known, &observed)
    {
        findings.push(t);
    }
    findings.dedup();
    if findings.is_empty() {
        let size = usize::try_from(new_cp.checkpoint().size())?;
        state.save(&new_cp, &observed[..size.min(observed.len())])?;
        let c = new_cp.checkpoint();
        match &previous {
            Some((old, _)) => println!(
                "OK: {} size {} consistent with verified size {}",
                c.origin(),
                c.size(),
                old.checkpoint().size()
            ),
            None => println!(
                "OK: {} size {} verified (first run; remembered)",
                c.origin(),
                c.size()
            ),
        }
        println!("root {}", c.root());
    }
    Ok(findings)
}

async fn inclusion(
    key: &Key,
    source: &Source,
    checkpoint: Option<&Path>,
    index: u64,
) -> Result<Vec<Tamper>> {
    let v = verifier(key)?;
    let (sc, leaf, proof) = match (&source.export, &source.db) {
        (Some(path), _) => {
            let note =
                checkpoint.ok_or_else(|| anyhow!("--checkpoint is required with --export"))?;
            let sc = v.verify(&read_text(note)?)?;
            let re = rehash_file(path)?;
            let leaf = re
                .tree
                .leaf(index)
                .ok_or_else(|| anyhow!("index {index} is not in the export"))?;
            let proof = re.tree.inclusion_proof(index, sc.checkpoint().size())?;
            (sc, leaf, proof)
        }
        (None, Some(url)) => {
            let pool = open_db(url).await?;
            let mut conn = pool.acquire().await?;
            let sc = match checkpoint {
                Some(p) => v.verify(&read_text(p)?)?,
                None => v.verify(
                    store::latest_checkpoint(&mut conn)
                        .await?
                        .ok_or_else(|| anyhow!("no checkpoint"))?
                        .signed
                        .note(),
                )?,
            };
            let (leaf, proof) =
                store::inclusion_proof(&mut conn, index, sc.checkpoint().size()).await?;
            // The leaf must also be the hash of the stored event bytes.
            let ev = store::raw_leaves(&mut conn, index, 1).await?;
            if ev.first().map(|r| merkle::leaf_hash(&r.canonical)) != Some(leaf) {
                return Ok(vec![Tamper::LeafHashMismatch { index }]);
            }
            (sc, leaf, proof)
        }
        _ => {
            #[allow(unused_mut)]
            let mut client = source.online().await?;
            #[cfg(feature = "online")]
            {
                let sc = match checkpoint {
                    Some(p) => v.verify(&read_text(p)?)?,
                    None => v.verify(&client.checkpoint_note().await?)?,
                };
                let (leaf, proof) = client.inclusion(index, sc.checkpoint().size()).await?;
                // The proven leaf must be the hash of the event the server serves at that index.
                let mut served = None;
                let one = EventFilter {
                    start_index: index,
                    limit: Some(1),
                    ..Default::default()
                };
                client
                    .events(&one, |rec| {
                        served = rec.canonical_bytes().map(|b| merkle::leaf_hash(&b));
                        Ok(())
                    })
                    .await?;
                if served != Some(leaf) {
                    return Ok(vec![Tamper::LeafHashMismatch { index }]);
                }
                (sc, leaf, proof)
            }
            #[cfg(not(feature = "online"))]
            match client {}
        }
    };
    let c = sc.checkpoint();
    match merkle::verify_inclusion(&leaf, index, c.size(), &proof, c.root()) {
        Ok(()) => {
            println!(
                "OK: event {index} (leaf {leaf}) is in {} at size {}",
                c.origin(),
                c.size()
            );
            Ok(Vec::new())
        }
        Err(_) => Ok(vec![Tamper::RootMismatch { size: c.size() }]),
    }
}

fn parse_time(s: &str) -> Result<UnixMillis> {
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

fn event_filter(f: &Filters) -> Result<EventFilter> {
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

async fn export(
    source: &Source,
    filters: &Filters,
    format: Format,
    out: Option<&Path>,
) -> Result<Vec<Tamper>> {
    let filter = event_filter(filters)?;
    let sink: Box<dyn Write> = match out {
        Some(p) => {
            Box::new(fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = BufWriter::new(sink);
    if matches!(format, Format::Csv) {
        writeln!(w, "{}", ExportRecord::CSV_HEADER)?;
    }
    let mut write = |rec: &ExportRecord| -> Result<()> {
        match format {
            Format::Csv => writeln!(w, "{}", rec.csv_row())?,
            Format::Jsonl => writeln!(w, "{}", serde_json::to_string(rec)?)?,
        }
        Ok(())
    };
    let mut written = 0u64;
    match (&source.export, &source.db) {
        (Some(path), _) => {
            // Re-filter an earlier export, line by line.
            let file = fs::File::open(path)?;
            for line in BufReader::new(file).lines() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let rec: ExportRecord = serde_json::from_str(&line)?;
                let bytes = rec
                    .canonical_bytes()
                    .ok_or_else(|| anyhow!("event {}: bad canonical", rec.index))?;
                let e = audit::Event::decode(&bytes)?;
                if rec.index >= filter.start_index
                    && filter.matches(&e)
                    && filter.limit.is_none_or(|l| written < l)
                {
                    write(&rec)?;
                    written += 1;
                }
            }
        }
        (None, Some(url)) => {
            let pool = open_db(url).await?;
            let mut conn = pool.acquire().await?;
            let total = store::tree_size(&mut conn).await?;
            let bar = progress(total.saturating_sub(filter.start_index), "exporting");
            let mut next = filter.start_index;
            // Pages by index keep memory flat on a million-event log.
            loop {
                let remaining = filter.limit.map(|l| l.saturating_sub(written));
                if remaining == Some(0) || next >= total {
                    break;
                }
                let page = EventFilter {
                    start_index: next,
                    limit: Some(remaining.unwrap_or(10_000).min(10_000)),
                    ..filter.clone()
                };
                let events = store::list_events(&mut conn, &page).await?;
                let Some(last) = events.last() else { break };
                let last_index = last.index;
                for s in &events {
                    write(&ExportRecord::new(
                        s.index,
                        &s.event,
                        &s.canonical,
                        &s.leaf_hash,
                    ))?;
                    written += 1;
                }
                bar.set_position(last_index + 1 - filter.start_index);
                next = last_index + 1;
            }
            bar.finish_and_clear();
        }
        _ => {
            #[allow(unused_mut)]
            let mut client = source.online().await?;
            #[cfg(feature = "online")]
            {
                let bar = ProgressBar::new_spinner();
                bar.set_message("exporting");
                client
                    .events(&filter, |rec| {
                        write(&rec)?;
                        written += 1;
                        bar.inc(1);
                        Ok(())
                    })
                    .await?;
                bar.finish_and_clear();
            }
            #[cfg(not(feature = "online"))]
            match client {}
        }
    }
    w.flush()?;
    eprintln!("exported {written} events");
    Ok(Vec::new())
}
