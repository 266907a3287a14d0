//! Auditor-side verification: the export format, re-hashing a whole log, naming tampering,
//! and checking a database-resident log against a signed checkpoint.
//!
//! The export is JSON Lines, one [`ExportRecord`] per event in index order. Its `canonical`
//! field (base64) is what is hashed; the readable fields beside it are checked against the
//! decoded canonical bytes, so editing either is detected.

use std::collections::BTreeMap;
use std::io::BufRead;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::event::{Event, Ident, MunicipalityCode};
use crate::merkle::{self, Hash, MemoryTree};

/// Errors reading an export.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Reading failed.
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a valid record.
    #[error("line {line}: {what}")]
    Record {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        what: String,
    },
    /// Reading the store failed.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// One exported event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ExportRecord {
    /// Log index.
    pub index: u64,
    /// Event time, unix milliseconds.
    pub time_ms: i64,
    /// Event type name.
    pub event_type: String,
    /// Actor kind name.
    pub actor_kind: String,
    /// Actor id.
    pub actor_id: String,
    /// Terminal id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    /// Municipality code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub municipality_code: Option<String>,
    /// Session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Issuance id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuance_id: Option<String>,
    /// Resident pseudonym, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_pseudonym: Option<String>,
    /// Reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Attributes, sorted by key.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Canonical bytes, base64.
    pub canonical: String,
    /// Leaf hash, hex.
    pub leaf_hash: String,
}

impl ExportRecord {
    /// The record of an event at `index`.
    pub fn new(index: u64, event: &Event, canonical: &[u8], leaf: &Hash) -> Self {
        Self {
            index,
            time_ms: event.time().0,
            event_type: event.event_type().as_str().to_owned(),
            actor_kind: event.actor().kind().as_str().to_owned(),
            actor_id: event.actor().id(),
            terminal_id: event.terminal().map(|v| v.as_str().to_owned()),
            municipality_code: event.municipality().map(|v| v.as_str().to_owned()),
            session_id: event.session().map(|v| v.as_str().to_owned()),
            issuance_id: event.issuance().map(|v| v.as_str().to_owned()),
            resident_pseudonym: event.resident().map(|v| v.to_hex()),
            reason: event.reason().map(|v| v.as_str().to_owned()),
            attributes: event
                .facts()
                .map(|f| (f.key().to_owned(), f.value()))
                .collect(),
            canonical: B64.encode(canonical),
            leaf_hash: leaf.to_hex(),
        }
    }

    /// The canonical bytes.
    pub fn canonical_bytes(&self) -> Option<Vec<u8>> {
        B64.decode(&self.canonical).ok()
    }

    /// CSV header matching [`ExportRecord::csv_row`].
    pub const CSV_HEADER: &'static str = "index,time_ms,event_type,actor_kind,actor_id,terminal_id,municipality_code,\
session_id,issuance_id,resident_pseudonym,reason,attributes,canonical,leaf_hash";

    /// One CSV row (RFC 4180 quoting); attributes as `key=value` joined by `;`.
    pub fn csv_row(&self) -> String {
        let attrs: Vec<String> = self
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let fields = [
            self.index.to_string(),
            self.time_ms.to_string(),
            self.event_type.clone(),
            self.actor_kind.clone(),
            self.actor_id.clone(),
            self.terminal_id.clone().unwrap_or_default(),
            self.municipality_code.clone().unwrap_or_default(),
            self.session_id.clone().unwrap_or_default(),
            self.issuance_id.clone().unwrap_or_default(),
            self.resident_pseudonym.clone().unwrap_or_default(),
            self.reason.clone().unwrap_or_default(),
            attrs.join(";"),
            self.canonical.clone(),
            self.leaf_hash.clone(),
        ];
        fields
            .iter()
            .map(|f| csv_quote(f))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn csv_quote(f: &str) -> String {
    // Quote fields a spreadsheet would misread, including formula prefixes.
    if f.contains([',', '"', '\n', '\r']) || f.starts_with(['=', '+', '-', '@']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_owned()
    }
}

/// Something wrong with a log, by name and position.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Tamper {
    /// The event at `index` differs from the one previously verified.
    #[error("event {index} was changed")]
    Modified {
        /// First differing index.
        index: u64,
    },
    /// The event at `index` was removed (later ones moved up).
    #[error("event {index} was deleted")]
    Deleted {
        /// Index of the removed event.
        index: u64,
    },
    /// An event was inserted at `index`.
    #[error("an event was inserted at {index}")]
    Inserted {
        /// Index of the inserted event.
        index: u64,
    },
    /// Two events swapped places.
    #[error("events {first} and {second} were reordered")]
    Reordered {
        /// The earlier index.
        first: u64,
        /// The later index.
        second: u64,
    },
    /// The log is shorter than a size already verified.
    #[error(
        "log truncated to {size} events, {expected} were verified (first missing index {size})"
    )]
    Truncated {
        /// Events present.
        size: u64,
        /// Events previously verified or signed.
        expected: u64,
    },
    /// Indices are not contiguous from 0.
    #[error("index gap: expected {expected}, found {found}")]
    IndexGap {
        /// Index expected next.
        expected: u64,
        /// Index found.
        found: u64,
    },
    /// The stored leaf hash is not the hash of the stored canonical bytes.
    #[error("event {index}: canonical bytes do not match its leaf hash")]
    LeafHashMismatch {
        /// Index concerned.
        index: u64,
    },
    /// The readable fields differ from the canonical bytes, or the bytes do not decode.
    #[error("event {index}: readable fields differ from the canonical bytes")]
    FieldMismatch {
        /// Index concerned.
        index: u64,
    },
    /// The re-hashed tree's root differs from a signed checkpoint.
    #[error("root of the first {size} events differs from the signed checkpoint")]
    RootMismatch {
        /// Tree size of the checkpoint.
        size: u64,
    },
    /// A stored interior node differs from the recomputed one (proofs would be wrong).
    #[error("stored node level {level} index {index} differs from the recomputed one")]
    NodeMismatch {
        /// Node level.
        level: u8,
        /// Node index.
        index: u64,
    },
    /// Two validly signed checkpoints are not consistent: the log was forked.
    #[error("fork: signed checkpoints of sizes {old_size} and {new_size} are not consistent")]
    Fork {
        /// The earlier size.
        old_size: u64,
        /// The later size.
        new_size: u64,
    },
}

/// A log read back and re-hashed.
#[derive(Debug, Default)]
pub struct Rehashed {
    /// The tree over the recomputed leaf hashes.
    pub tree: MemoryTree,
    /// Problems found in individual records.
    pub findings: Vec<Tamper>,
    /// The events, decoded (records that did not decode are left out).
    pub events: Vec<(u64, Event)>,
}

impl Rehashed {
    /// Adds one record: checks index order, leaf hash and readable fields, and hashes it.
    pub fn push_record(&mut self, rec: &ExportRecord) {
        let expected = self.tree.size();
        if rec.index != expected {
            self.findings.push(Tamper::IndexGap {
                expected,
                found: rec.index,
            });
        }
        let Some(canonical) = rec.canonical_bytes() else {
            self.findings
                .push(Tamper::FieldMismatch { index: rec.index });
            self.tree.push(merkle::leaf_hash(rec.canonical.as_bytes()));
            return;
        };
        let leaf = merkle::leaf_hash(&canonical);
        if Hash::from_hex(&rec.leaf_hash).ok() != Some(leaf) {
            self.findings
                .push(Tamper::LeafHashMismatch { index: rec.index });
        }
        match Event::decode(&canonical) {
            Ok(e)
                if ExportRecord::new(rec.index, &e, &canonical, &leaf)
                    == ExportRecord {
                        leaf_hash: leaf.to_hex(),
                        ..rec.clone()
                    } =>
            {
                self.events.push((rec.index, e));
            }
            _ => self
                .findings
                .push(Tamper::FieldMismatch { index: rec.index }),
        }
        self.tree.push(leaf);
    }

    /// Compares with a signed checkpoint: the export must cover it and the prefix must hash to
    /// its root.
    pub fn check_checkpoint(&self, cp: &Checkpoint) -> Vec<Tamper> {
        if self.tree.size() < cp.size() {
            return vec![Tamper::Truncated {
                size: self.tree.size(),
                expected: cp.size(),
            }];
        }
        match self.tree.root_at(cp.size()) {
            Ok(root) if &root == cp.root() => Vec::new(),
            _ => vec![Tamper::RootMismatch { size: cp.size() }],
        }
    }

    /// The recomputed leaf hashes.
    pub fn leaves(&self) -> Vec<Hash> {
        (0..self.tree.size())
            .filter_map(|i| self.tree.leaf(i))
            .collect()
    }
}

/// Re-hashes a JSON Lines export, calling `progress` with each record's index.
pub fn rehash_export(
    reader: impl BufRead,
    mut progress: impl FnMut(u64),
) -> Result<Rehashed, VerifyError> {
    let mut out = Rehashed::default();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: ExportRecord = serde_json::from_str(&line).map_err(|e| VerifyError::Record {
            line: n as u64 + 1,
            what: e.to_string(),
        })?;
        out.push_record(&rec);
        progress(rec.index);
    }
    Ok(out)
}

/// Names how `observed` leaf hashes differ from `known` ones (from an earlier verified
/// export). Returns `None` when `known` is a prefix of `observed` (the log only grew).
pub fn diagnose(known: &[Hash], observed: &[Hash]) -> Option<Tamper> {
    let common = known.len().min(observed.len());
    let Some(i) = (0..common).find(|&i| known[i] != observed[i]) else {
        return (observed.len() < known.len()).then_some(Tamper::Truncated {
            size: observed.len() as u64,
            expected: known.len() as u64,
        });
    };
    let idx = i as u64;
    // Deleted: everything after i moved up by one.
    if observed.len() + 1 >= known.len()
        && observed[i..]
            .iter()
            .zip(&known[i + 1..])
            .all(|(a, b)| a == b)
    {
        return Some(Tamper::Deleted { index: idx });
    }
    // Reordered: i and some j swapped, everything else equal.
    if let Some(j) = (i + 1..common).find(|&j| observed[i] == known[j] && observed[j] == known[i])
        && (i + 1..common)
            .filter(|&k| k != j)
            .all(|k| known[k] == observed[k])
    {
        return Some(Tamper::Reordered {
            first: idx,
            second: j as u64,
        });
    }
    // Inserted: the known tail continues one later.
    if observed.len() > known.len()
        && known[i..]
            .iter()
            .zip(&observed[i + 1..])
            .all(|(a, b)| a == b)
    {
        return Some(Tamper::Inserted { index: idx });
    }
    Some(Tamper::Modified { index: idx })
}

/// Checks two signed checkpoints of one log (their signatures already verified) for
/// consistency with the proof given; a failure is a fork.
pub fn check_consistency(old: &Checkpoint, new: &Checkpoint, proof: &[Hash]) -> Result<(), Tamper> {
    let fork = Tamper::Fork {
        old_size: old.size(),
        new_size: new.size(),
    };
    if new.size() < old.size() {
        return Err(Tamper::Truncated {
            size: new.size(),
            expected: old.size(),
        });
    }
    merkle::verify_consistency(old.size(), new.size(), old.root(), new.root(), proof)
        .map_err(|_| fork)
}

/// Re-hashes every event in a database-resident log and checks it against a checkpoint whose
/// signature the caller has verified; also checks the stored interior nodes and the head, so
/// proofs served from this database can be trusted. Returns every problem found.
pub async fn verify_store(
    conn: &mut sqlx::AnyConnection,
    cp: &Checkpoint,
) -> Result<(Rehashed, Vec<Tamper>), VerifyError> {
    use sqlx::Row as _;
    let mut re = Rehashed::default();
    let mut start = 0u64;
    loop {
        let page = crate::store::raw_leaves(conn, start, 10_000).await?;
        let Some(last) = page.last() else { break };
        start = last.index + 1;
        for raw in &page {
            let expected = re.tree.size();
            if raw.index != expected {
                re.findings.push(Tamper::IndexGap {
                    expected,
                    found: raw.index,
                });
            }
            let leaf = merkle::leaf_hash(&raw.canonical);
            if raw.leaf_hash.as_slice() != leaf.as_bytes() {
                re.findings
                    .push(Tamper::LeafHashMismatch { index: raw.index });
            }
            match Event::decode(&raw.canonical) {
                Ok(e) => re.events.push((raw.index, e)),
                Err(_) => re.findings.push(Tamper::FieldMismatch { index: raw.index }),
            }
            re.tree.push(leaf);
        }
    }
    // Readable columns must agree with the canonical bytes.
    let rows = sqlx::query(
        "SELECT idx, event_type, terminal_id, municipality_code FROM audit_event ORDER BY idx",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(crate::store::StoreError::from)?;
    let by_index: std::collections::HashMap<u64, &Event> =
        re.events.iter().map(|(i, e)| (*i, e)).collect();
    let mut findings = std::mem::take(&mut re.findings);
    for row in rows {
        let idx: i64 = row.try_get(0).map_err(crate::store::StoreError::from)?;
        let idx = idx as u64;
        let ty: String = row.try_get(1).map_err(crate::store::StoreError::from)?;
        let t: Option<String> = row.try_get(2).map_err(crate::store::StoreError::from)?;
        let m: Option<String> = row.try_get(3).map_err(crate::store::StoreError::from)?;
        if let Some(e) = by_index.get(&idx)
            && (ty != e.event_type().as_str()
                || t.as_deref() != e.terminal().map(Ident::as_str)
                || m.as_deref() != e.municipality().map(MunicipalityCode::as_str))
        {
            findings.push(Tamper::FieldMismatch { index: idx });
        }
    }
    // Interior nodes.
    let mut after: (i64, i64) = (0, -1);
    loop {
        let rows = sqlx::query(
            "SELECT lvl, idx, hash FROM audit_node WHERE lvl > $1 OR (lvl = $1 AND idx > $2) ORDER BY lvl, idx LIMIT 10000",
        )
        .bind(after.0)
        .bind(after.1)
        .fetch_all(&mut *conn)
        .await
        .map_err(crate::store::StoreError::from)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let lvl: i64 = row.try_get(0).map_err(crate::store::StoreError::from)?;
            let idx: i64 = row.try_get(1).map_err(crate::store::StoreError::from)?;
            let h: Vec<u8> = row.try_get(2).map_err(crate::store::StoreError::from)?;
            after = (lvl, idx);
            let level = u8::try_from(lvl).unwrap_or(u8::MAX);
            let index = idx as u64;
            if re.tree.node(level, index) != Hash::from_slice(&h).ok() {
                findings.push(Tamper::NodeMismatch { level, index });
            }
        }
    }
    // The head must describe the recomputed tree.
    let (size, root) = crate::store::tree_head(conn).await?;
    if size != re.tree.size() {
        findings.push(Tamper::Truncated {
            size: re.tree.size(),
            expected: size,
        });
    } else if root != re.tree.root() {
        findings.push(Tamper::RootMismatch { size });
    }
    findings.extend(re.check_checkpoint(cp));
    findings.dedup();
    Ok((re, findings))
}
