//! The terminals table: who may open sessions (`active`, `suspended`, `retired`), as the
//! operator commands register and change them.

use sqlx::{AnyConnection, Row};

use crate::error::GatewayError;

/// A terminal's registration status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalStatus {
    /// May open sessions.
    Active,
    /// Temporarily refused.
    Suspended,
    /// Permanently refused.
    Retired,
}

impl TerminalStatus {
    /// The stored (and displayed) name: `active`, `suspended`, `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminalStatus::Active => "active",
            TerminalStatus::Suspended => "suspended",
            TerminalStatus::Retired => "retired",
        }
    }

    pub(super) fn parse(s: &str) -> Result<Self, GatewayError> {
        match s {
            "active" => Ok(TerminalStatus::Active),
            "suspended" => Ok(TerminalStatus::Suspended),
            "retired" => Ok(TerminalStatus::Retired),
            other => Err(GatewayError::Internal(format!("terminal status {other:?}"))),
        }
    }
}

/// Registers or changes a terminal.
pub async fn upsert_terminal(
    conn: &mut AnyConnection,
    terminal_id: &str,
    chain: &str,
    store: &str,
    status: TerminalStatus,
    now_ms: i64,
) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO terminals (terminal_id, chain, store, status, changed_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (terminal_id) DO UPDATE SET status = excluded.status,
             chain = excluded.chain, store = excluded.store, changed_at = excluded.changed_at",
    )
    .bind(terminal_id)
    .bind(chain)
    .bind(store)
    .bind(status.as_str())
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A terminal's status, if registered.
pub async fn terminal_status(
    conn: &mut AnyConnection,
    terminal_id: &str,
) -> Result<Option<TerminalStatus>, GatewayError> {
    let row = sqlx::query("SELECT status FROM terminals WHERE terminal_id = $1")
        .bind(terminal_id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some(TerminalStatus::parse(&row.try_get::<String, _>(0)?)?)),
        None => Ok(None),
    }
}

/// The terminal status in column `at` of `row`, if any.
pub(super) fn terminal_status_at(
    row: &sqlx::any::AnyRow,
    at: usize,
) -> Result<Option<TerminalStatus>, GatewayError> {
    match row.try_get::<Option<String>, _>(at)? {
        Some(status) => Ok(Some(TerminalStatus::parse(&status)?)),
        None => Ok(None),
    }
}

/// A registered terminal, as operators list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalRow {
    /// `<chain>/<store>/<terminal>`.
    pub terminal_id: String,
    /// The store chain.
    pub chain: String,
    /// The store.
    pub store: String,
    /// May it open sessions.
    pub status: TerminalStatus,
    /// When the status last changed (unix ms).
    pub changed_at: i64,
}

/// Every registered terminal, by id (for `kiosk-gateway admin terminal list`).
pub async fn list_terminals(conn: &mut AnyConnection) -> Result<Vec<TerminalRow>, GatewayError> {
    let rows = sqlx::query(
        "SELECT terminal_id, chain, store, status, changed_at FROM terminals ORDER BY terminal_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(TerminalRow {
                terminal_id: row.try_get(0)?,
                chain: row.try_get(1)?,
                store: row.try_get(2)?,
                status: TerminalStatus::parse(&row.try_get::<String, _>(3)?)?,
                changed_at: row.try_get(4)?,
            })
        })
        .collect()
}
