//! Operator commands over the gateway's database: list terminals; register, suspend, resume
//! and retire one; turn the kill switch on or off, for every municipality or for one.
//!
//! These are what `kiosk-gateway admin …` runs (the CLI in `cli.rs` only parses and prints),
//! as library functions so tests call them directly. The running gateway reads terminal
//! status and the kill switches from the database on every call, so a change made here takes
//! effect on the next request, with no restart.
//!
//! Every change names its operator and reason and commits in one transaction with its audit
//! event (actor kind OPERATOR). A change that would change nothing says so and writes nothing;
//! a refused one (unknown terminal or municipality, a retired terminal) neither.
//!
//! How the events read:
//! - `TERMINAL_CHANGED` names the terminal, its chain and store; its reason code is the
//!   refusal the terminal meets from now on (`TERMINAL_SUSPENDED`, `TERMINAL_RETIRED`) and is
//!   absent when the terminal is active again.
//! - `KILL_SWITCH_CHANGED` carries the `kill_switch` fact (`on`/`off`) and, when it concerns
//!   one municipality, that municipality's code.
//! - The operator's reason is the `resolution` fact: the audit model's one free-text field, with
//!   its guards against personal data (no control characters, no run of six or more digits).
//!
//! Retirement is final: a retired terminal is never resumed or suspended again; a replacement
//! is registered under a new id.

use std::fmt;

use audit::event::{Event, Fact, Ident, MunicipalityCode, ReasonCode, ResolutionNote, UnixMillis};

use crate::error::GatewayError;
use crate::identity::TerminalIdentity;
use crate::store::{
    self, Backend, KILL_SWITCH_SETTING, Municipality, Store, TerminalRow, TerminalStatus,
};

/// Why an operator command was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `--on-behalf-of` (or a library caller's operator) is not an identifier.
    #[error("--on-behalf-of: {0} (an operator id such as `ops-chiyoda-01`)")]
    InvalidOperator(String),
    /// `--reason` is not an acceptable note.
    #[error("--reason: {0}")]
    InvalidReason(String),
    /// Not of the form `<chain>/<store>/<terminal>`.
    #[error("{0:?} is not a terminal id (<chain>/<store>/<terminal>)")]
    MalformedTerminal(String),
    /// Not a 6-digit municipality code with its check digit.
    #[error("{0:?} is not a municipality code (6 digits with a valid check digit)")]
    MalformedMunicipality(String),
    /// No such terminal is registered.
    #[error("terminal {0} is not registered: nothing written")]
    UnknownTerminal(String),
    /// No such municipality is registered.
    #[error("municipality {0} is not registered in this gateway: nothing written")]
    UnknownMunicipality(String),
    /// The terminal is retired, which is final.
    #[error(
        "terminal {0} is retired and retirement is final: nothing written \
         (register a replacement under a new id)"
    )]
    Retired(String),
    /// The configured SQLite database does not exist.
    #[error("no gateway database at {0}: check the configuration (--config, KIOSK_*)")]
    NoDatabase(String),
    /// The configured database could not be opened (the reason names no URL, so no password).
    #[error("database_url (or KIOSK_DATABASE_URL): {0}")]
    Open(GatewayError),
    /// The database failed.
    #[error("gateway database: {0}")]
    Store(#[from] GatewayError),
    /// The audit log refused the event.
    #[error("audit log: {0}")]
    Audit(String),
    /// An input file or argument is not what the command takes (`admin_bindings`).
    #[error("{0}: nothing written")]
    BadInput(String),
    /// The input conflicts with what the database holds, each conflict named.
    #[error("{}: nothing written", .0.join("; "))]
    Conflict(Vec<String>),
}

impl AdminError {
    /// Whether the command line itself was wrong (the binary exits with 64, EX_USAGE).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            AdminError::InvalidOperator(_)
                | AdminError::InvalidReason(_)
                | AdminError::MalformedTerminal(_)
                | AdminError::MalformedMunicipality(_)
                | AdminError::BadInput(_)
        )
    }
}

impl From<crate::admin_enroll::EnrollError> for AdminError {
    fn from(error: crate::admin_enroll::EnrollError) -> Self {
        AdminError::BadInput(error.to_string())
    }
}

impl From<sqlx::Error> for AdminError {
    fn from(error: sqlx::Error) -> Self {
        AdminError::Store(GatewayError::from(error))
    }
}

impl From<audit::store::StoreError> for AdminError {
    fn from(error: audit::store::StoreError) -> Self {
        AdminError::Audit(error.to_string())
    }
}

/// Who makes a change and why, checked before anything is read or written.
///
/// The operator, the event's actor, is an account something vouches for: on the command
/// line the operating-system account the command runs under ([`audit::operator::os_account`],
/// `unix:<name>`), never a name typed on the command line. A shared service account may say
/// on whose behalf it acts; that claim is recorded beside the account (`on_behalf_of`), not in
/// its place.
///
/// Invariant: the operator and the person acted for are audit identifiers
/// (`[A-Za-z0-9._:/-]{1,64}`: an account id, not a name with spaces) and the reason a valid
/// resolution note (1 to 500 characters, no control characters, no run of six or more digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    operator: Ident,
    on_behalf_of: Option<Ident>,
    reason: ResolutionNote,
}

impl Attribution {
    /// The command line's attribution: this process's operating-system account, acting on
    /// behalf of `on_behalf_of` when given, for `reason`.
    pub fn of_this_process(on_behalf_of: Option<&str>, reason: &str) -> Result<Self, AdminError> {
        let mut by = Attribution {
            operator: audit::operator::os_account(),
            on_behalf_of: None,
            reason: parse_reason(reason)?,
        };
        if let Some(name) = on_behalf_of {
            by.on_behalf_of = Some(parse_operator(name)?);
        }
        Ok(by)
    }

    /// An attribution to an operator account the caller has authenticated itself (a library
    /// caller; the command line uses [`Attribution::of_this_process`]).
    pub fn parse(operator: &str, reason: &str) -> Result<Self, AdminError> {
        Ok(Attribution {
            operator: parse_operator(operator)?,
            on_behalf_of: None,
            reason: parse_reason(reason)?,
        })
    }

    /// The operator account.
    pub fn operator(&self) -> &str {
        self.operator.as_str()
    }

    /// The operator, as audit events name them.
    pub fn operator_ident(&self) -> &Ident {
        &self.operator
    }

    /// Whom a shared account said it acted for.
    pub fn on_behalf_of(&self) -> Option<&Ident> {
        self.on_behalf_of.as_ref()
    }

    /// Why.
    pub fn reason(&self) -> &ResolutionNote {
        &self.reason
    }

    /// `event` with the reason (`resolution`) and, when given, `on_behalf_of`.
    pub fn annotate(&self, event: Event) -> Event {
        let event = event.with_fact(Fact::Resolution(self.reason.clone()));
        match &self.on_behalf_of {
            Some(person) => event.with_fact(Fact::OnBehalfOf(person.clone())),
            None => event,
        }
    }
}

fn parse_operator(operator: &str) -> Result<Ident, AdminError> {
    Ident::parse(operator).map_err(|e| AdminError::InvalidOperator(e.to_string()))
}

fn parse_reason(reason: &str) -> Result<ResolutionNote, AdminError> {
    ResolutionNote::parse(reason).map_err(|e| AdminError::InvalidReason(e.to_string()))
}

/// What an operator does to a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalAction {
    /// Refuse its sessions until resumed.
    Suspend,
    /// Accept its sessions again.
    Resume,
    /// Refuse it for good.
    Retire,
}

impl TerminalAction {
    /// The status the terminal has afterwards.
    pub fn target(self) -> TerminalStatus {
        match self {
            TerminalAction::Suspend => TerminalStatus::Suspended,
            TerminalAction::Resume => TerminalStatus::Active,
            TerminalAction::Retire => TerminalStatus::Retired,
        }
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Committed with its audit event at this log index.
    Applied {
        /// The event's index in the audit log.
        event_index: u64,
    },
    /// It was already so: nothing written.
    Unchanged,
}

/// Opens the gateway database of a configuration for operator commands. Unlike
/// [`Store::open`] it never creates a SQLite file: a command run against a mistyped path
/// would otherwise report success on a fresh, empty database while the gateway runs on.
pub async fn open_store(url: &str) -> Result<Store, AdminError> {
    let backend = Backend::of_url(url)
        .map_err(|e| AdminError::Store(GatewayError::Internal(e.to_string())))?;
    if backend == Backend::Sqlite {
        let path = url
            .trim_start_matches("sqlite:")
            .trim_start_matches("//")
            .split('?')
            .next()
            .unwrap_or_default();
        if path != ":memory:" && !std::path::Path::new(path).is_file() {
            return Err(AdminError::NoDatabase(path.to_owned()));
        }
    }
    Store::open(url).await.map_err(AdminError::Open)
}

/// Every registered terminal, by id.
pub async fn terminals(store: &Store) -> Result<Vec<TerminalRow>, AdminError> {
    let mut conn = store.pool().acquire().await?;
    Ok(store::list_terminals(&mut conn).await?)
}

/// Registers `terminal_id` as active, with its `TERMINAL_CHANGED` event at `now`: how a
/// production gateway learns its terminals (the embedded deployment registers the development
/// PKI's itself). A registered terminal is left as it is (`Unchanged`); a retired id is never
/// registered again.
pub async fn register_terminal(
    store: &Store,
    terminal_id: &str,
    by: &Attribution,
    now: UnixMillis,
) -> Result<Change, AdminError> {
    let terminal = TerminalIdentity::parse(terminal_id)
        .ok_or_else(|| AdminError::MalformedTerminal(terminal_id.to_owned()))?;
    register(store, &terminal, None, by, now).await
}

/// Registers the terminal a checked certificate names (`admin terminal enroll`), as
/// [`register_terminal`] does, its event carrying the certificate's fingerprint as `key_id`.
pub async fn enroll_terminal(
    store: &Store,
    certificate: &crate::admin_enroll::EnrolledCertificate,
    by: &Attribution,
    now: UnixMillis,
) -> Result<Change, AdminError> {
    register(
        store,
        &certificate.terminal,
        Some(&certificate.fingerprint),
        by,
        now,
    )
    .await
}

async fn register(
    store: &Store,
    terminal: &TerminalIdentity,
    fingerprint: Option<&Ident>,
    by: &Attribution,
    now: UnixMillis,
) -> Result<Change, AdminError> {
    let id = terminal.id();
    let mut event = by.annotate(Event::terminal_changed(
        now,
        by.operator.clone(),
        ident(&id)?,
        ident(terminal.store())?,
        ident(terminal.chain())?,
    ));
    if let Some(fingerprint) = fingerprint {
        event = event.with_fact(Fact::KeyId(fingerprint.clone()));
    }
    let mut tx = store.begin_write().await?;
    // The event first, as in `change_terminal`: the append serialises this check and write
    // with every other gateway write.
    let appended = audit::store::append(&mut tx, &event).await?;
    let verdict = match store::terminal_status(&mut tx, &id).await? {
        None => Ok(Change::Applied {
            event_index: appended.index,
        }),
        Some(TerminalStatus::Retired) => Err(AdminError::Retired(id.clone())),
        Some(_) => Ok(Change::Unchanged),
    };
    if !matches!(verdict, Ok(Change::Applied { .. })) {
        tx.rollback().await?;
        return verdict;
    }
    store::upsert_terminal(
        &mut tx,
        &id,
        terminal.chain(),
        terminal.store(),
        TerminalStatus::Active,
        now.0,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(terminal = %id, operator = %by.operator, "terminal registered");
    verdict
}

/// Suspends, resumes or retires `terminal_id`, with its `TERMINAL_CHANGED` event at `now`.
pub async fn change_terminal(
    store: &Store,
    terminal_id: &str,
    action: TerminalAction,
    by: &Attribution,
    now: UnixMillis,
) -> Result<Change, AdminError> {
    let terminal = TerminalIdentity::parse(terminal_id)
        .ok_or_else(|| AdminError::MalformedTerminal(terminal_id.to_owned()))?;
    let id = terminal.id();
    let target = action.target();
    let mut event = by.annotate(Event::terminal_changed(
        now,
        by.operator.clone(),
        ident(&id)?,
        ident(terminal.store())?,
        ident(terminal.chain())?,
    ));
    let refusal = match target {
        TerminalStatus::Active => None,
        TerminalStatus::Suspended => Some("TERMINAL_SUSPENDED"),
        TerminalStatus::Retired => Some("TERMINAL_RETIRED"),
    };
    if let Some(reason) = refusal {
        event = event
            .with_reason(ReasonCode::parse(reason).map_err(|e| AdminError::Audit(e.to_string()))?);
    }

    let mut tx = store.begin_write().await?;
    // The event goes first: the append locks the log's head row, on which every gateway
    // write serialises, so the status read next is the latest committed one and no other
    // operator's change can land between this check and the write (a retired terminal stays
    // retired). A refused or no-op change rolls back with its event.
    let appended = audit::store::append(&mut tx, &event).await?;
    let current = store::terminal_status(&mut tx, &id).await?;
    let verdict = match current {
        None => Err(AdminError::UnknownTerminal(id.clone())),
        Some(TerminalStatus::Retired) if target != TerminalStatus::Retired => {
            Err(AdminError::Retired(id.clone()))
        }
        Some(status) if status == target => Ok(Change::Unchanged),
        Some(_) => Ok(Change::Applied {
            event_index: appended.index,
        }),
    };
    if !matches!(verdict, Ok(Change::Applied { .. })) {
        tx.rollback().await?;
        return verdict;
    }
    store::upsert_terminal(
        &mut tx,
        &id,
        terminal.chain(),
        terminal.store(),
        target,
        now.0,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(terminal = %id, status = target.as_str(), operator = %by.operator, "terminal changed");
    verdict
}

/// Turns the kill switch on or off: the global one, or `municipality`'s. Writes its
/// `KILL_SWITCH_CHANGED` event at `now`.
pub async fn set_kill_switch(
    store: &Store,
    municipality: Option<&str>,
    on: bool,
    by: &Attribution,
    now: UnixMillis,
) -> Result<Change, AdminError> {
    let code = municipality
        .map(|code| {
            MunicipalityCode::parse(code)
                .map_err(|_| AdminError::MalformedMunicipality(code.to_owned()))
        })
        .transpose()?;
    let mut event = by.annotate(Event::kill_switch_changed(now, by.operator.clone(), on));
    if let Some(code) = &code {
        event = event.with_municipality(code.clone());
    }

    let mut tx = store.begin_write().await?;
    // First, for the same reason as in `change_terminal`: the append serialises the check
    // and the write with every other gateway write.
    let appended = audit::store::append(&mut tx, &event).await?;
    let verdict = match &code {
        None => {
            let current = store::setting(&mut tx, KILL_SWITCH_SETTING).await?;
            if (current.as_deref() == Some("on")) == on {
                Ok(Change::Unchanged)
            } else {
                store::set_setting(&mut tx, KILL_SWITCH_SETTING, if on { "on" } else { "off" })
                    .await?;
                Ok(Change::Applied {
                    event_index: appended.index,
                })
            }
        }
        Some(code) => match store::municipality(&mut tx, code.as_str()).await? {
            None => Err(AdminError::UnknownMunicipality(code.as_str().to_owned())),
            Some(current) if current.suspended == on => Ok(Change::Unchanged),
            Some(current) => {
                store::upsert_municipality(
                    &mut tx,
                    &Municipality {
                        suspended: on,
                        ..current
                    },
                )
                .await?;
                Ok(Change::Applied {
                    event_index: appended.index,
                })
            }
        },
    };
    if !matches!(verdict, Ok(Change::Applied { .. })) {
        tx.rollback().await?;
        return verdict;
    }
    tx.commit().await?;
    tracing::info!(
        municipality = code.as_ref().map_or("all", |c| c.as_str()),
        on,
        operator = %by.operator,
        "kill switch changed"
    );
    verdict
}

/// The kill switches: the global one and each municipality's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillSwitchStatus {
    /// On: no municipality issues.
    pub global: bool,
    /// Each asked-for municipality, with its row when registered.
    pub municipalities: Vec<(String, Option<Municipality>)>,
}

/// The global kill switch and that of each of `municipalities` (the configured ones).
pub async fn kill_switch_status(
    store: &Store,
    municipalities: &[String],
) -> Result<KillSwitchStatus, AdminError> {
    let mut conn = store.pool().acquire().await?;
    let global = store::setting(&mut conn, KILL_SWITCH_SETTING)
        .await?
        .as_deref()
        == Some("on");
    let mut rows = Vec::new();
    for code in municipalities {
        rows.push((code.clone(), store::municipality(&mut conn, code).await?));
    }
    Ok(KillSwitchStatus {
        global,
        municipalities: rows,
    })
}

impl fmt::Display for KillSwitchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = |on: bool| if on { "on" } else { "off" };
        writeln!(f, "global: {}", state(self.global))?;
        for (code, row) in &self.municipalities {
            match row {
                Some(m) => writeln!(f, "{code} {}: {}", m.name, state(m.suspended))?,
                None => writeln!(f, "{code}: not registered in the gateway database")?,
            }
        }
        Ok(())
    }
}

fn ident(text: &str) -> Result<Ident, AdminError> {
    Ident::parse(text).map_err(|e| AdminError::Audit(format!("identifier {text:?}: {e}")))
}
