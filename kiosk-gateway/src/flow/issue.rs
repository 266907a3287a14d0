//! Issue: a new order rendered by the issuer, checked, recorded with its events, confirmed at
//! the issuer, and only then released.

use super::*;

/// A new order of an authenticated session, as Issue checked it.
pub(super) struct Order<'a> {
    pub(super) terminal: &'a TerminalIdentity,
    pub(super) session: &'a SessionRow,
    pub(super) session_id: &'a str,
    pub(super) client_request_id: &'a str,
    pub(super) items: &'a [pb::RequestItem],
    pub(super) expected_total_fee_yen: u32,
    /// The order's digest, recorded to tell a retry from a reuse of the key.
    pub(super) digest: Vec<u8>,
    /// The authenticated resident and municipality.
    pub(super) binding: CardBinding,
    pub(super) pseudonym: Pseudonym,
    /// The subjects the session's menu offered.
    pub(super) allowed: BTreeSet<&'a str>,
    pub(super) deadline: Option<Duration>,
}

impl Order<'_> {
    /// The issuance record of this order, released.
    pub(super) fn issuance_row(
        &self,
        issuance_id: &str,
        checked: &Checked,
        now: i64,
        settings: &FlowSettings,
    ) -> IssuanceRow {
        IssuanceRow {
            issuance_id: issuance_id.to_owned(),
            session_id: self.session_id.to_owned(),
            terminal_id: self.terminal.id(),
            client_request_id: self.client_request_id.to_owned(),
            request_digest: self.digest.clone(),
            municipality_code: self.binding.municipality_code.clone(),
            resident_ref: self.binding.resident_ref.clone(),
            state: IssuanceState::Released,
            total_fee_yen: checked.total,
            collected_yen: None,
            refund_due_yen: None,
            print_deadline: now + settings.print_window.as_millis() as i64,
            created_at: now,
        }
    }
}

/// What the gateway found in an issuer's rendering.
#[derive(Default)]
pub(super) struct Checked {
    /// The documents with their records.
    pub(super) documents: Vec<CheckedDocument>,
    /// The record of every document rendered, checked or not (the audit facts count them).
    pub(super) records: Vec<store::DocumentRow>,
    /// Every serial rendered, to void them at the issuer if nothing is released.
    pub(super) serials: Vec<String>,
    /// The total fee, yen.
    pub(super) total: i64,
    /// Why nothing may be released, if anything is wrong.
    pub(super) problem: Option<Reason>,
}

/// Whether a released issuance's record committed.
pub(super) enum Recording {
    /// Recorded.
    Committed,
    /// The commit failed, perhaps because a concurrent retry recorded the same key first.
    LostRace(sqlx::Error),
}

/// SHA-256 of the order, so a retry is told from a reuse of the key.
///
/// It is taken over the domain order (type, copies, options that are set, subjects, in the
/// order given) in a text form of its own, not over protobuf bytes: a change of the wire
/// format (a field added, renumbered or packed) must never turn an honest retry into
/// IDEMPOTENCY_KEY_REUSED. The items are validated before, so every one converts.
pub fn request_digest(
    items: &[pb::RequestItem],
    expected_total_fee_yen: u32,
) -> Result<Vec<u8>, GatewayError> {
    use std::fmt::Write;
    let mut canonical = String::from("kiosk order v1\n");
    for item in items {
        let order = issuer::service::item_from_wire(item)
            .map_err(|e| GatewayError::Internal(format!("order digest: {e}")))?;
        let subjects: Vec<&str> = order.subject_refs.iter().map(|s| s.as_str()).collect();
        let _ = writeln!(
            canonical,
            "item {} copies {} options {} fiscal_year {} subjects {}",
            order.ty.code(),
            order.copies,
            order.options.set_option_names().join(","),
            order.options.fiscal_year.unwrap_or(0),
            subjects.join(","),
        );
    }
    let _ = writeln!(canonical, "total {expected_total_fee_yen}");
    Ok(digest(&SHA256, canonical.as_bytes()).as_ref().to_vec())
}

impl Flow {
    /// Issues an order: the issuer decides and renders, the gateway checks every page's subject,
    /// records the issuance with its audit events, has the issuer confirm the documents, and
    /// only then returns them. Idempotent by `client_request_id` (the replay step, `flow/replay.rs`).
    pub async fn issue(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        client_request_id: &str,
        items: &[pb::RequestItem],
        expected_total_fee_yen: u32,
        deadline: Option<Duration>,
    ) -> Result<ReleasedIssuance, GatewayError> {
        crate::validate::request_id(client_request_id)?;
        self.validate_items(items)?;
        let digest = request_digest(items, expected_total_fee_yen)?;
        let mut conn = self.store.pool().acquire().await?;
        // The terminal, the session, the kill switches and the idempotency key in one
        // statement.
        let lookup =
            store::issue_lookup(&mut conn, session_id, &terminal.id(), client_request_id).await?;
        check_terminal(lookup.terminal_status)?;
        if let Some(existing) = lookup.existing {
            let retry = Retry {
                terminal,
                session_id,
                digest: &digest,
                items,
                session: lookup.session.as_ref(),
                deadline,
            };
            return self.replay(conn, existing, retry).await;
        }
        drop(conn);
        let session = self.check_owned(terminal, lookup.session)?;
        let (binding, allowed) = authenticated(&session)?;
        let order = Order {
            terminal,
            session: &session,
            session_id,
            client_request_id,
            items,
            expected_total_fee_yen,
            digest,
            pseudonym: self.pseudonym(&binding.resident_ref),
            binding,
            allowed: allowed.iter().map(String::as_str).collect(),
            deadline,
        };
        self.issue_new(&order, lookup.suspended).await
    }

    /// Issues an order no issuance was recorded for yet.
    pub(super) async fn issue_new(
        &self,
        order: &Order<'_>,
        suspended: bool,
    ) -> Result<ReleasedIssuance, GatewayError> {
        self.check_order_gates(order, suspended).await?;
        let issuer = self
            .issuers
            .get(&order.binding.municipality_code)
            .ok_or_else(|| GatewayError::refused(reasons::MUNICIPALITY_NOT_SERVED, "not served"))?;
        let now = self.now_ms();
        self.check_fee(order, issuer.as_ref(), now).await?;
        let Ok(_permit) = self.rendering.try_acquire() else {
            return Err(GatewayError::refused(
                reasons::OVERLOADED,
                "too many issuances at once",
            ));
        };
        let issuance_id = self.random_id("i-")?;
        // Monotonic: the deployment clock may be moved (rehearsals, tests); the time an Issue
        // took may not.
        let started = Instant::now();
        let request = pb::RenderRequest {
            issuance_id: issuance_id.clone(),
            municipality_code: order.binding.municipality_code.clone(),
            requester_ref: order.binding.resident_ref.clone(),
            items: order.items.to_vec(),
            issued_at: Some(timestamp(now)),
        };
        let rendered = match issuer
            .render(request, self.render_budget(order.deadline))
            .await
        {
            Ok(rendered) => rendered,
            Err(status) => {
                let error = issuer_status(status);
                self.refuse(order, error.reason()).await?;
                return Err(error);
            }
        };
        let checked = self.check_rendered(order, &issuance_id, now, rendered);
        let issuance = order.issuance_row(&issuance_id, &checked, now, &self.settings);
        if let Some(reason) = checked.problem {
            return self
                .record_voided_before_release(order, issuance, &checked, reason)
                .await;
        }
        if let Recording::LostRace(error) = self
            .record_released(order, &issuance, &checked, started)
            .await?
        {
            return self.lost_to_concurrent_retry(order, error).await;
        }
        let records = checked.records.clone();
        match self.confirm_at_issuer(&issuance).await {
            Confirmation::Issued => {}
            Confirmation::Unknown(status) => {
                // Recorded within the Issue deadline, so no reconciliation can have judged
                // these documents lost; the next one confirms them.
                tracing::warn!(issuance = %issuance_id, code = ?status.code(), "confirm failed: left to reconciliation");
            }
            Confirmation::Voided => {
                return Err(self
                    .void_recorded(order.terminal, &issuance, &records)
                    .await);
            }
        }
        Ok(ReleasedIssuance::new(issuance, checked.documents, false))
    }

    /// The refusals decided before anything is rendered: a subject outside the menu, and
    /// the kill switches. Each is recorded.
    pub(super) async fn check_order_gates(
        &self,
        order: &Order<'_>,
        suspended: bool,
    ) -> Result<(), GatewayError> {
        for (index, item) in order.items.iter().enumerate() {
            if item
                .subject_refs
                .iter()
                .any(|s| !order.allowed.contains(s.as_str()))
            {
                self.refuse(order, reasons::NOT_PERMITTED_SUBJECT).await?;
                return Err(GatewayError::refused(
                    reasons::NOT_PERMITTED_SUBJECT,
                    format!("items[{index}] names a subject outside the menu"),
                ));
            }
        }
        if suspended {
            self.refuse(order, reasons::SERVICE_SUSPENDED).await?;
            return Err(GatewayError::refused(
                reasons::SERVICE_SUSPENDED,
                "issuing is suspended",
            ));
        }
        Ok(())
    }

    /// The fee the kiosk showed against the issuer's price of the order at `now`, the instant
    /// it is then rendered at (so both read the same fee schedule), before anything is
    /// rendered or recorded: a mismatch is a clean refusal (ISSUANCE_REFUSED, FEE_MISMATCH),
    /// nothing is issued or voided, and the idempotency key stays free, so the same id with
    /// the re-quoted fee issues. An eligibility refusal is answered here as Render would.
    async fn check_fee(
        &self,
        order: &Order<'_>,
        issuer: &dyn IssuerLink,
        now: i64,
    ) -> Result<(), GatewayError> {
        let quoted = issuer
            .quote(pb::IssuerQuoteRequest {
                municipality_code: order.binding.municipality_code.clone(),
                requester_ref: order.binding.resident_ref.clone(),
                items: order.items.to_vec(),
                as_of: Some(timestamp(now)),
            })
            .await;
        let quoted = match quoted {
            Ok(quoted) => quoted,
            Err(status) => {
                let error = issuer_status(status);
                self.refuse(order, error.reason()).await?;
                return Err(error);
            }
        };
        let total: u64 = order
            .items
            .iter()
            .zip(&quoted.fee_yen)
            .map(|(item, fee)| u64::from(*fee) * u64::from(item.copies))
            .sum();
        if quoted.fee_yen.len() != order.items.len() {
            return Err(GatewayError::Internal(
                "issuer priced another number of items".into(),
            ));
        }
        if total != u64::from(order.expected_total_fee_yen) {
            self.refuse(order, reasons::FEE_MISMATCH).await?;
            return Err(GatewayError::refused(
                reasons::FEE_MISMATCH,
                format!(
                    "expected_total_fee_yen {} but the order costs {total} yen: nothing was issued; quote again and retry, with the same client_request_id if you like",
                    order.expected_total_fee_yen
                ),
            ));
        }
        Ok(())
    }

    /// Records an ISSUANCE_REFUSED event for `order`.
    pub(super) async fn refuse(
        &self,
        order: &Order<'_>,
        reason: Reason,
    ) -> Result<(), GatewayError> {
        self.refuse_issuance(
            order.terminal,
            order.session_id,
            order.pseudonym,
            &order.binding.municipality_code,
            reason,
        )
        .await
    }

    /// The time an issuer may take to render: the configured limit, or less when the
    /// client's own deadline is nearer.
    pub(super) fn render_budget(&self, deadline: Option<Duration>) -> Duration {
        deadline
            .map(|d| d.min(self.settings.render_timeout))
            .unwrap_or(self.settings.render_timeout)
    }

    /// Checks what the issuer rendered: every document's signature, page markers and digest,
    /// and the total against the fee the kiosk showed.
    pub(super) fn check_rendered(
        &self,
        order: &Order<'_>,
        issuance_id: &str,
        now: i64,
        rendered: pb::RenderResponse,
    ) -> Checked {
        let mut checked = Checked::default();
        for (index, doc) in rendered.documents.into_iter().enumerate() {
            checked.serials.push(doc.serial.clone());
            let cert_type = pb::CertificateType::try_from(doc.r#type)
                .map(|t| t.as_str_name())
                .unwrap_or("CERTIFICATE_TYPE_UNSPECIFIED");
            checked.total += i64::from(doc.fee_yen);
            // The record names the SHA-256 the issuer claims; the check compares it with the
            // bytes, so a claim that does not match them fails it.
            let record = store::DocumentRow {
                serial: doc.serial,
                issuance_id: issuance_id.to_owned(),
                doc_index: index as i64,
                cert_type: cert_type.to_owned(),
                page_count: i64::from(doc.page_count),
                fee_yen: i64::from(doc.fee_yen),
                pdf_sha256: doc.pdf_sha256,
                content_digest: doc.content_digest,
                status: "issued".into(),
                issued_at: now,
            };
            let municipality = &order.binding.municipality_code;
            match self.check_document(municipality, &order.allowed, record, doc.pdf) {
                Ok(document) => {
                    checked.records.push(document.record().clone());
                    checked.documents.push(document);
                }
                Err(record) => {
                    checked.records.push(*record);
                    checked.problem = Some(reasons::SUBJECT_MISMATCH);
                }
            }
        }
        if checked.documents.is_empty() {
            checked.problem = Some(reasons::SUBJECT_MISMATCH);
        }
        // The fee was checked before rendering, at the same instant: a total that differs now
        // is the issuer pricing a render otherwise than its quote, and nothing is released.
        if checked.problem.is_none() && checked.total != i64::from(order.expected_total_fee_yen) {
            checked.problem = Some(reasons::FEE_MISMATCH);
        }
        checked
    }

    /// Nothing is released. The issuance is recorded voided (so a retry with the same key
    /// gets the same answer) with no documents, a mismatch opens an anomaly, and the issuer
    /// voids what it rendered.
    pub(super) async fn record_voided_before_release(
        &self,
        order: &Order<'_>,
        mut issuance: IssuanceRow,
        checked: &Checked,
        reason: Reason,
    ) -> Result<ReleasedIssuance, GatewayError> {
        let mut tx = self.store.begin_write().await?;
        let when = UnixMillis(self.now_ms());
        issuance.state = IssuanceState::Voided;
        store::insert_issuance(&mut tx, &issuance, &[]).await?;
        let facts = self.facts(order.terminal, &issuance, &checked.records)?;
        let mut events = Vec::with_capacity(facts.len());
        for f in &facts {
            events.push(Event::documents_voided(
                when,
                Actor::System,
                order.pseudonym,
                f,
                reason_code(reason.name)?,
            ));
        }
        append_all(&mut tx, &events).await?;
        if reason == reasons::SUBJECT_MISMATCH {
            if let Some(f) = facts.first() {
                let anomaly_id = ident(&self.random_id("a-")?)?;
                let event = audit::store::anomaly_opened_event(
                    when,
                    anomaly_id,
                    AnomalyKind::SubjectMismatch,
                    f,
                );
                audit::store::open_anomaly(&mut tx, &event)
                    .await
                    .map_err(|e| GatewayError::Internal(format!("anomaly: {e}")))?;
            }
            tracing::error!(issuance = %issuance.issuance_id, "subject check failed: nothing released");
        }
        tx.commit().await?;
        self.void_at_issuer(
            &order.binding.municipality_code,
            checked.serials.clone(),
            reason.name,
        )
        .await;
        Err(GatewayError::refused(
            reason,
            "issuance voided before release",
        ))
    }

    /// Records a released issuance with its documents and events, in one transaction, if it
    /// is still within the Issue deadline when it is ready to commit; otherwise voids it at
    /// the issuer and refuses with TIMED_OUT. When the commit fails (a concurrent retry with
    /// the same key may have recorded first), this attempt's documents are voided.
    pub(super) async fn record_released(
        &self,
        order: &Order<'_>,
        issuance: &IssuanceRow,
        checked: &Checked,
        started: Instant,
    ) -> Result<Recording, GatewayError> {
        let mut tx = self.store.begin_write().await?;
        let when = UnixMillis(self.now_ms());
        store::insert_issuance(&mut tx, issuance, &checked.records).await?;
        let mut events = Vec::new();
        for f in self.facts(order.terminal, issuance, &checked.records)? {
            events.push(Event::issuance_rendered(when, order.pseudonym, &f));
            events.push(Event::documents_released(when, order.pseudonym, &f));
        }
        append_all(&mut tx, &events).await?;
        // Past the deadline, reconciliation may already be voiding these documents as lost:
        // an issuance is recorded only within it (a timeout voids the whole issuance).
        if started.elapsed() > self.settings.issue_timeout {
            drop(tx);
            self.void_at_issuer(
                &order.binding.municipality_code,
                checked.serials.clone(),
                "TIMED_OUT",
            )
            .await;
            self.refuse(order, reasons::TIMED_OUT).await?;
            return Err(GatewayError::refused(
                reasons::TIMED_OUT,
                "the issuance took longer than the Issue deadline: nothing was issued",
            ));
        }
        if let Err(error) = tx.commit().await {
            self.void_at_issuer(
                &order.binding.municipality_code,
                checked.serials.clone(),
                "IDEMPOTENCY_KEY_REUSED",
            )
            .await;
            return Ok(Recording::LostRace(error));
        }
        Ok(Recording::Committed)
    }

    /// The answer when this attempt's record did not commit: if a concurrent retry with the
    /// same key recorded the issuance, that issuance answers for both, as a retry would get
    /// it; otherwise the database error stands.
    pub(super) async fn lost_to_concurrent_retry(
        &self,
        order: &Order<'_>,
        error: sqlx::Error,
    ) -> Result<ReleasedIssuance, GatewayError> {
        let mut conn = self.store.pool().acquire().await?;
        let winner =
            store::issuance_by_request(&mut conn, &order.terminal.id(), order.client_request_id)
                .await?;
        let Some(existing) = winner else {
            return Err(error.into());
        };
        let retry = Retry {
            terminal: order.terminal,
            session_id: order.session_id,
            digest: &order.digest,
            items: order.items,
            session: Some(order.session),
            deadline: order.deadline,
        };
        self.replay(conn, existing, retry).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resident_record(copies: u32, subjects: &[&str]) -> pb::RequestItem {
        pb::RequestItem {
            r#type: pb::CertificateType::ResidentRecord as i32,
            options: Some(pb::CertificateOptions {
                include_honseki: true,
                ..Default::default()
            }),
            subject_refs: subjects.iter().map(|s| (*s).to_owned()).collect(),
            copies,
        }
    }

    #[test]
    fn the_order_digest_is_a_fixed_function_of_the_domain_order() {
        let items = [resident_record(2, &["r-0001", "r-0002"])];
        // Pinned: a change of this value breaks every retry in flight during an upgrade, so it
        // must be a decision, never a side effect.
        assert_eq!(
            hex::encode(request_digest(&items, 600).unwrap()),
            hex::encode(digest(
                &SHA256,
                b"kiosk order v1\nitem RESIDENT_RECORD copies 2 options include_honseki \
                  fiscal_year 0 subjects r-0001,r-0002\ntotal 600\n"
            ))
        );
        // Unset options are the same as absent ones; everything else tells orders apart.
        let mut no_options = resident_record(2, &[]);
        no_options.options = None;
        let mut all_false = resident_record(2, &[]);
        all_false.options = Some(pb::CertificateOptions::default());
        assert_eq!(
            request_digest(&[no_options], 0).unwrap(),
            request_digest(&[all_false], 0).unwrap()
        );
        let base = request_digest(&items, 600).unwrap();
        for other in [
            request_digest(&items, 601).unwrap(),
            request_digest(&[resident_record(1, &["r-0001", "r-0002"])], 600).unwrap(),
            request_digest(&[resident_record(2, &["r-0002", "r-0001"])], 600).unwrap(),
            request_digest(&[items[0].clone(), items[0].clone()], 600).unwrap(),
        ] {
            assert_ne!(other, base);
        }
    }
}
