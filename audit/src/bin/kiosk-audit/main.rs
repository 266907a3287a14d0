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
//!
//! This file is the command line; `source` reads the log and the auditor's inputs, `check`
//! holds the audit run and inclusion proofs, `reports` the exports, settlement and anomalies,
//! and `online` the AuditService client.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use audit::verify::Tamper;
use clap::{Parser, Subcommand};

mod check;
#[cfg(feature = "online")]
mod online;
mod reports;
mod source;

use reports::{Format, GroupArg, PeriodArg};
use source::{Filters, Key, Source};

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

/// Runs one command; the findings are the tampering it found (none when the log verified).
async fn run(cli: Cli) -> Result<Vec<Tamper>> {
    match cli.command {
        Command::VerifyCheckpoint { key, checkpoint } => {
            check::verify_checkpoint(&key, &checkpoint)
        }
        Command::Check {
            key,
            source,
            checkpoint,
        } => check::check(&cli.state, &key, &source, checkpoint.as_deref()).await,
        Command::Inclusion {
            key,
            source,
            checkpoint,
            index,
        } => check::inclusion(&key, &source, checkpoint.as_deref(), index).await,
        Command::Export {
            source,
            filters,
            format,
            out,
        } => reports::export(&source, &filters, format, out.as_deref()).await,
        Command::Settlement {
            source,
            from,
            to,
            period,
            group,
            format,
        } => reports::settlement(&source, &from, &to, period, group, format).await,
        Command::Anomalies { source, all } => reports::anomalies(&source, all).await,
        Command::Resolve {
            source,
            id,
            reason,
            auditor,
        } => reports::resolve(&source, &id, &reason, &auditor).await,
    }
}
