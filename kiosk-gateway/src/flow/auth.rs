//! Card authentication and what an authenticated session may ask before it issues: the
//! menu and a quote.

use super::*;
use kiosk_proto::locales::localized_text;

pub(super) fn authenticated(
    session: &SessionRow,
) -> Result<(CardBinding, &[String]), GatewayError> {
    match (
        &session.state,
        &session.municipality_code,
        &session.resident_ref,
    ) {
        (SessionState::Authenticated, Some(code), Some(resident)) => Ok((
            CardBinding {
                municipality_code: code.clone(),
                resident_ref: resident.clone(),
            },
            &session.allowed_subjects,
        )),
        _ => Err(GatewayError::refused(
            reasons::SESSION_STATE,
            "session is not authenticated",
        )),
    }
}

impl Flow {
    pub(super) async fn record_auth_failure(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        reason: Reason,
    ) -> Result<(), GatewayError> {
        let mut tx = self.store.begin_write().await?;
        // A failed attempt burns the challenge: one signature check per challenge.
        store::consume_challenge(&mut tx, session_id).await?;
        let event = Event::card_auth_failed(
            UnixMillis(self.now_ms()),
            ident(&terminal.id())?,
            ident(session_id)?,
            reason_code(reason.name)?,
        );
        append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Verifies the card and returns the resident's menu.
    pub async fn authenticate(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        certificate: &[u8],
        signature: &[u8],
    ) -> Result<pb::Menu, GatewayError> {
        let session = self.challenge_session(terminal, session_id).await?;
        let now = self.now_ms();
        let context =
            card::login::context_bytes(&self.settings.gateway_id, &session.terminal_id, session_id)
                .ok_or_else(|| GatewayError::Internal("authentication context".into()))?;
        let verified = match self.cards.verify(
            certificate,
            signature,
            &context,
            &session.challenge,
            u64::try_from(now / 1000).unwrap_or(0),
        ) {
            Ok(verified) => verified,
            Err(error) => {
                self.record_auth_failure(terminal, session_id, error.reason())
                    .await?;
                return Err(error);
            }
        };
        let (binding, issuer) = self.bound_card(terminal, session_id, &verified).await?;
        let menu = issuer
            .get_menu(pb::IssuerMenuRequest {
                municipality_code: binding.municipality_code.clone(),
                resident_ref: binding.resident_ref.clone(),
                as_of: Some(timestamp(self.now_ms())),
            })
            .await
            .map_err(issuer_status)?
            .menu
            .ok_or_else(|| GatewayError::Internal("issuer returned no menu".into()))?;
        let menu = self
            .with_suspension(&binding.municipality_code, menu)
            .await?;
        let mut allowed: Vec<String> = menu.members.iter().map(|m| m.subject_ref.clone()).collect();
        if !allowed.contains(&binding.resident_ref) {
            allowed.push(binding.resident_ref.clone());
        }
        self.record_authenticated(terminal, session_id, &binding, &allowed)
            .await?;
        Ok(menu)
    }

    /// The session whose challenge a login answers: open, its challenge unused and not
    /// expired (an expired one is recorded as a failed login).
    async fn challenge_session(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
    ) -> Result<SessionRow, GatewayError> {
        let mut conn = self.store.pool().acquire().await?;
        let session = self.owned_session(&mut conn, terminal, session_id).await?;
        drop(conn);
        if session.state != SessionState::Open {
            return Err(GatewayError::refused(
                reasons::SESSION_STATE,
                "session already authenticated",
            ));
        }
        if session.challenge_used {
            return Err(GatewayError::refused(
                reasons::CHALLENGE_USED,
                "challenge already used",
            ));
        }
        if self.now_ms() >= session.challenge_expires_at {
            self.record_auth_failure(terminal, session_id, reasons::CHALLENGE_EXPIRED)
                .await?;
            return Err(GatewayError::refused(
                reasons::CHALLENGE_EXPIRED,
                "challenge expired",
            ));
        }
        Ok(session)
    }

    /// The resident a verified card is bound to and their municipality's issuer; an unbound
    /// card or an unserved municipality is recorded as a failed login.
    async fn bound_card(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        verified: &crate::cardauth::VerifiedCard,
    ) -> Result<(CardBinding, Arc<dyn IssuerLink>), GatewayError> {
        let mut conn = self.store.pool().acquire().await?;
        let binding = store::card_binding_served(&mut conn, verified.key()).await?;
        drop(conn);
        let Some((binding, served)) = binding else {
            self.record_auth_failure(terminal, session_id, reasons::CARD_UNKNOWN)
                .await?;
            return Err(GatewayError::refused(
                reasons::CARD_UNKNOWN,
                "card is not bound",
            ));
        };
        let issuer = self
            .issuers
            .get(&binding.municipality_code)
            .filter(|_| served);
        let Some(issuer) = issuer else {
            self.record_auth_failure(terminal, session_id, reasons::MUNICIPALITY_NOT_SERVED)
                .await?;
            return Err(GatewayError::refused(
                reasons::MUNICIPALITY_NOT_SERVED,
                "municipality not served",
            ));
        };
        Ok((binding, issuer))
    }

    /// Records the login: the challenge consumed and the session authenticated in one
    /// compare-and-set, with the CARD_AUTH_PASSED and MENU_SHOWN events.
    async fn record_authenticated(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        binding: &CardBinding,
        allowed: &[String],
    ) -> Result<(), GatewayError> {
        let pseudonym = self.pseudonym(&binding.resident_ref);
        let mut tx = self.store.begin_write().await?;
        // One compare-and-set: the challenge is single-use under concurrent calls, and a
        // session closed meanwhile is not authenticated behind the terminal's back.
        if !store::consume_challenge_and_authenticate(&mut tx, session_id, binding, allowed).await?
        {
            return Err(GatewayError::refused(
                reasons::CHALLENGE_USED,
                "challenge already used",
            ));
        }
        let now = UnixMillis(self.now_ms());
        let terminal_ident = ident(&terminal.id())?;
        let municipality = municipality_code(&binding.municipality_code)?;
        let passed =
            Event::card_auth_passed(now, terminal_ident.clone(), ident(session_id)?, pseudonym)
                .with_municipality(municipality.clone());
        let shown = Event::menu_shown(now, terminal_ident, ident(session_id)?, pseudonym)
            .with_municipality(municipality);
        append_all(&mut tx, &[passed, shown]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The card binding of an authenticated session of `terminal`, and its municipality's
    /// issuer.
    pub(super) async fn session_issuer(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
    ) -> Result<(CardBinding, Arc<dyn IssuerLink>), GatewayError> {
        let mut conn = self.store.pool().acquire().await?;
        let session = self.owned_session(&mut conn, terminal, session_id).await?;
        drop(conn);
        let (binding, _) = authenticated(&session)?;
        let issuer = self
            .issuers
            .get(&binding.municipality_code)
            .ok_or_else(|| GatewayError::refused(reasons::MUNICIPALITY_NOT_SERVED, "not served"))?;
        Ok((binding, issuer))
    }

    /// The menu of an authenticated session, decided now.
    pub async fn menu(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
    ) -> Result<pb::Menu, GatewayError> {
        let (binding, issuer) = self.session_issuer(terminal, session_id).await?;
        let menu = issuer
            .get_menu(pb::IssuerMenuRequest {
                municipality_code: binding.municipality_code.clone(),
                resident_ref: binding.resident_ref.clone(),
                as_of: Some(timestamp(self.now_ms())),
            })
            .await
            .map_err(issuer_status)?
            .menu
            .ok_or_else(|| GatewayError::Internal("issuer returned no menu".into()))?;
        self.with_suspension(&binding.municipality_code, menu).await
    }

    /// `menu` as the kill switches leave it: under the global switch or the municipality's,
    /// every entry is unavailable with SERVICE_SUSPENDED (Issue would refuse it), so the
    /// kiosk shows why instead of offering what fails.
    async fn with_suspension(
        &self,
        municipality_code: &str,
        mut menu: pb::Menu,
    ) -> Result<pb::Menu, GatewayError> {
        let mut conn = self.store.pool().acquire().await?;
        if !store::issuing_suspended(&mut conn, municipality_code).await? {
            return Ok(menu);
        }
        let reason = reasons::SERVICE_SUSPENDED;
        for entry in &mut menu.entries {
            entry.available = false;
            entry.unavailable_reason = reason.name.to_owned();
            // The session's further language, if any, is added at the edge (service::locale).
            entry.unavailable_message = Some(localized_text(&reason, ""));
        }
        Ok(menu)
    }

    /// Prices an order from the current menu.
    pub async fn quote(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        items: &[pb::RequestItem],
    ) -> Result<Vec<(pb::RequestItem, u32)>, GatewayError> {
        self.validate_items(items)?;
        let (binding, issuer) = self.session_issuer(terminal, session_id).await?;
        // The issuer decides the order itself (eligibility, subjects, copies, options) on the
        // current register, as Render will; pricing from a menu decided all seven types for
        // the one or two that were asked for.
        let quoted = issuer
            .quote(pb::IssuerQuoteRequest {
                municipality_code: binding.municipality_code.clone(),
                requester_ref: binding.resident_ref.clone(),
                items: items.to_vec(),
                as_of: Some(timestamp(self.now_ms())),
            })
            .await
            .map_err(issuer_status)?;
        if quoted.fee_yen.len() != items.len() {
            return Err(GatewayError::Internal(
                "issuer priced another number of items".into(),
            ));
        }
        Ok(items.iter().cloned().zip(quoted.fee_yen).collect())
    }

    /// The order's shape (see `validate::order_items`): bounded work and a bounded
    /// answer however many items came.
    pub(super) fn validate_items(&self, items: &[pb::RequestItem]) -> Result<(), GatewayError> {
        crate::validate::order_items(items, self.settings.max_items)
    }
}
