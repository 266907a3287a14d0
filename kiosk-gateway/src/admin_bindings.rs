//! Operator commands on card bindings: import a bindings file, link a renewed card
//! certificate to its resident, and the binding key of a certificate (`kiosk-gateway
//! card-key`).
//!
//! The file is JSON Lines in the format of `issuer::bindings` (one binding per line: the
//! card certificate's `issuer_key_id` and `card_serial_hex`, the resident's
//! `municipality_code` and `resident_ref`). An import reads and checks the whole file before
//! it opens a transaction, so a bad line (named by number and field) changes nothing; then,
//! in one transaction with one `CARD_BINDING_CHANGED` event, it adds every binding not yet
//! present. Input that conflicts with the database — a certificate bound to another
//! resident, a municipality this gateway has not registered, one certificate twice in the
//! file with different residents — is refused as a whole, each conflict named by line.
//! Re-running a file adds nothing and writes nothing, and says so.
//!
//! A renewal (`renew`) closes the old certificate's binding (kept with the time and the
//! renewal's key, never deleted) and binds the new certificate to the same resident, in one
//! transaction with its event. The event names neither resident nor card: it carries the
//! municipality, the command (`component` fact), the operator's reason and a digest of what
//! changed (`key_id` fact, `sha256:` and 16 hex digits), which an auditor can recompute from
//! the operator's file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use audit::event::{Event, Ident, MunicipalityCode, UnixMillis};
use issuer::bindings::CardBinding as FileBinding;

use crate::admin::{AdminError, Attribution, Change};
use crate::cardauth::{CardKey, CardKeyError};
use crate::store::{self, CardBinding, Store};

/// The binding key of the certificate (PEM or DER) in `path`.
pub fn card_key_of_file(path: &Path) -> Result<CardKey, AdminError> {
    let bytes = std::fs::read(path)
        .map_err(|e| AdminError::BadInput(format!("{}: {e}", path.display())))?;
    let der = kiosk_document::pem::certificate_der(&bytes)
        .map_err(|e| AdminError::BadInput(format!("{}: {e}", path.display())))?;
    CardKey::of_der(&der)
        .map_err(|e: CardKeyError| AdminError::BadInput(format!("{}: {e}", path.display())))
}

/// `<issuer_key_id>:<card_serial_hex>`, as `card-key` prints it, checked as a bindings file
/// checks its fields.
pub fn parse_key(text: &str) -> Result<CardKey, AdminError> {
    let bad = |why: &str| AdminError::BadInput(format!("card key {text:?}: {why}"));
    let (key_id, serial) = text
        .split_once(':')
        .ok_or_else(|| bad("not <issuer_key_id>:<card_serial_hex>"))?;
    let probe = FileBinding {
        issuer_key_id: key_id.to_owned(),
        card_serial_hex: serial.to_owned(),
        card_serial: None,
        municipality_code: "131016".to_owned(),
        resident_ref: "probe".to_owned(),
        card_file: None,
    };
    probe
        .check()
        .map_err(|(field, why)| bad(&format!("{field}: {why}")))?;
    Ok(CardKey {
        issuer_key_id: key_id.to_owned(),
        serial: serial.to_owned(),
    })
}

/// `card-key`'s output: one JSON object with the two fields of a bindings line, and the
/// `key` form that `admin card-binding renew` takes.
pub fn card_key_line(key: &CardKey) -> String {
    format!(
        "{{\"issuer_key_id\":\"{}\",\"card_serial_hex\":\"{}\",\"key\":\"{}:{}\"}}\n",
        key.issuer_key_id, key.serial, key.issuer_key_id, key.serial
    )
}

/// One line of an import file: its number and binding.
#[derive(Debug, Clone)]
pub struct ImportLine {
    /// 1-based line number.
    pub line: usize,
    /// The binding.
    pub binding: FileBinding,
}

/// Reads and checks every line of a bindings file; the first bad line is refused with its
/// number and field, one certificate bound twice differently with both line numbers.
pub fn read_import_file(path: &Path) -> Result<Vec<ImportLine>, AdminError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| AdminError::BadInput(format!("{}: {e}", path.display())))?;
    let mut lines = Vec::new();
    let mut seen: BTreeMap<CardKey, usize> = BTreeMap::new();
    for (index, text) in text.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let binding = issuer::bindings::parse_line(text, index + 1)
            .map_err(|e| AdminError::BadInput(format!("{}: {e}", path.display())))?;
        let line = ImportLine {
            line: index + 1,
            binding,
        };
        let key = key_of(&line.binding);
        if let Some(earlier) = seen.get(&key).map(|at| &lines[*at]) {
            let earlier: &ImportLine = earlier;
            if target(&earlier.binding) != target(&line.binding) {
                return Err(AdminError::BadInput(format!(
                    "{}: line {}: the certificate of line {} again, bound differently",
                    path.display(),
                    line.line,
                    earlier.line
                )));
            }
            continue;
        }
        seen.insert(key, lines.len());
        lines.push(line);
    }
    if lines.is_empty() {
        return Err(AdminError::BadInput(format!(
            "{}: no card binding in the file",
            path.display()
        )));
    }
    Ok(lines)
}

fn key_of(binding: &FileBinding) -> CardKey {
    CardKey {
        issuer_key_id: binding.issuer_key_id.clone(),
        serial: binding.card_serial_hex.clone(),
    }
}

fn target(binding: &FileBinding) -> CardBinding {
    CardBinding {
        municipality_code: binding.municipality_code.clone(),
        resident_ref: binding.resident_ref.clone(),
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Bindings added.
    pub added: usize,
    /// Bindings already present (open or closed by a renewal), left as they are.
    pub unchanged: usize,
    /// The event's log index, when something was written.
    pub event_index: Option<u64>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.event_index {
            Some(index) => writeln!(
                f,
                "card bindings imported: {} added, {} already present (audit event {index})",
                self.added, self.unchanged
            ),
            None => writeln!(
                f,
                "card bindings unchanged: all {} already present, nothing written",
                self.unchanged
            ),
        }
    }
}

/// Imports `lines` (from [`read_import_file`]) in one transaction with its event at `now`.
pub async fn import_bindings(
    store: &Store,
    lines: &[ImportLine],
    by: &Attribution,
    now: UnixMillis,
) -> Result<ImportReport, AdminError> {
    let event = binding_event(
        now,
        by,
        "card-binding-import",
        lines.iter().map(|l| &l.binding),
    )?;
    let mut tx = store.begin_write().await?;
    // The event first: the append serialises this check and write with every other gateway
    // write (as in `admin::change_terminal`); a refused or empty import rolls back with it.
    let appended = audit::store::append(&mut tx, &event).await?;
    let mut conflicts = Vec::new();
    let mut fresh = Vec::new();
    let mut registered: BTreeMap<String, bool> = BTreeMap::new();
    for line in lines {
        let code = &line.binding.municipality_code;
        if !registered.contains_key(code) {
            let known = store::municipality(&mut tx, code).await?.is_some();
            registered.insert(code.clone(), known);
        }
        if registered.get(code) == Some(&false) {
            conflicts.push(format!(
                "line {}: municipality {code} is not registered in this gateway",
                line.line
            ));
            continue;
        }
        match store::card_binding(&mut tx, &key_of(&line.binding)).await? {
            None => fresh.push(line),
            Some(stored) if stored.binding == target(&line.binding) => {}
            Some(_) => conflicts.push(format!(
                "line {}: the certificate is already bound to another resident",
                line.line
            )),
        }
    }
    if !conflicts.is_empty() {
        tx.rollback().await?;
        return Err(AdminError::Conflict(conflicts));
    }
    let unchanged = lines.len() - fresh.len();
    if fresh.is_empty() {
        tx.rollback().await?;
        return Ok(ImportReport {
            added: 0,
            unchanged,
            event_index: None,
        });
    }
    for line in &fresh {
        store::bind_card(&mut tx, &key_of(&line.binding), &target(&line.binding)).await?;
    }
    tx.commit().await?;
    tracing::info!(added = fresh.len(), operator = %by.operator(), "card bindings imported");
    Ok(ImportReport {
        added: fresh.len(),
        unchanged,
        event_index: Some(appended.index),
    })
}

/// Links the renewed certificate `new` to the resident `old` is bound to: closes `old`'s
/// binding and binds `new`, with the event at `now`. Done before (the same renewal) is
/// `Unchanged`; `old` unbound, closed by another renewal, or `new` bound elsewhere is refused.
pub async fn renew_binding(
    store: &Store,
    old: &CardKey,
    new: &CardKey,
    by: &Attribution,
    now: UnixMillis,
) -> Result<Change, AdminError> {
    if old == new {
        return Err(AdminError::BadInput(
            "--old and --new are the same certificate".into(),
        ));
    }
    let mut tx = store.begin_write().await?;
    let Some(current) = store::card_binding(&mut tx, old).await? else {
        tx.rollback().await?;
        return Err(AdminError::Conflict(vec![
            "--old: the certificate is not bound".into(),
        ]));
    };
    let pair = FileBinding {
        issuer_key_id: format!("{}:{}", old.issuer_key_id, old.serial),
        card_serial_hex: format!("{}:{}", new.issuer_key_id, new.serial),
        card_serial: None,
        municipality_code: current.binding.municipality_code.clone(),
        resident_ref: current.binding.resident_ref.clone(),
        card_file: None,
    };
    let event = binding_event(now, by, "card-binding-renew", std::iter::once(&pair))?;
    let appended = audit::store::append(&mut tx, &event).await?;
    let renewal = store::card_binding(&mut tx, new).await?;
    let verdict = match (&current.closed_at, &renewal) {
        (Some(_), Some(r)) if r.binding == current.binding && r.closed_at.is_none() => {
            Ok(Change::Unchanged)
        }
        (Some(_), _) => Err(AdminError::Conflict(vec![
            "--old: the certificate's binding was closed by another renewal".into(),
        ])),
        (None, Some(r)) if r.binding != current.binding || r.closed_at.is_some() => {
            Err(AdminError::Conflict(vec![
                "--new: the certificate is already bound to another resident".into(),
            ]))
        }
        (None, _) => Ok(Change::Applied {
            event_index: appended.index,
        }),
    };
    if !matches!(verdict, Ok(Change::Applied { .. })) {
        tx.rollback().await?;
        return verdict;
    }
    store::close_binding(&mut tx, old, new, now.0).await?;
    store::bind_card(&mut tx, new, &current.binding).await?;
    tx.commit().await?;
    tracing::info!(operator = %by.operator(), "card binding renewed");
    verdict
}

/// The `CARD_BINDING_CHANGED` event of `component` over `bindings`: the municipality when
/// they share one, and a digest of their keys and targets.
fn binding_event<'a>(
    now: UnixMillis,
    by: &Attribution,
    component: &str,
    bindings: impl Iterator<Item = &'a FileBinding>,
) -> Result<Event, AdminError> {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut codes = std::collections::BTreeSet::new();
    for b in bindings {
        for field in [
            &b.issuer_key_id,
            &b.card_serial_hex,
            &b.municipality_code,
            &b.resident_ref,
        ] {
            digest.update(field.as_bytes());
            digest.update(b"\n");
        }
        codes.insert(b.municipality_code.clone());
    }
    let audit_error = |e: audit::event::EventError| AdminError::Audit(e.to_string());
    let fingerprint = format!("sha256:{}", &hex::encode(digest.finish())[..16]);
    let mut event = by.annotate(Event::card_binding_changed(
        now,
        by.operator_ident().clone(),
        Ident::parse(component).map_err(audit_error)?,
        Ident::parse(&fingerprint).map_err(audit_error)?,
    ));
    if let [code] = codes.into_iter().collect::<Vec<_>>().as_slice() {
        let code = MunicipalityCode::parse(code)
            .map_err(|_| AdminError::MalformedMunicipality(code.clone()))?;
        event = event.with_municipality(code);
    }
    Ok(event)
}
