//! The municipalities served here and the settings table: each municipality's kill switch
//! and the global one (`KILL_SWITCH_SETTING`), which suspend issuing.

use sqlx::{AnyConnection, Row};

use crate::error::GatewayError;

/// The setting the flow reads for the global kill switch (`on` refuses issuing everywhere).
pub const KILL_SWITCH_SETTING: &str = "kill_switch";

/// A served municipality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    /// 6-digit code.
    pub code: String,
    /// Name as printed.
    pub name: String,
    /// The municipality's kill switch.
    pub suspended: bool,
    /// Where its issuer is reached: the endpoint URL, `in-process`, or empty when not yet
    /// recorded.
    pub issuer_endpoint: String,
}

/// Registers or changes a municipality.
pub async fn upsert_municipality(
    conn: &mut AnyConnection,
    municipality: &Municipality,
) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO municipalities (code, name, suspended, issuer_endpoint) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (code) DO UPDATE SET name = excluded.name, \
         suspended = excluded.suspended, issuer_endpoint = excluded.issuer_endpoint",
    )
    .bind(&municipality.code)
    .bind(&municipality.name)
    .bind(i64::from(municipality.suspended))
    .bind(&municipality.issuer_endpoint)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A municipality, if served.
pub async fn municipality(
    conn: &mut AnyConnection,
    code: &str,
) -> Result<Option<Municipality>, GatewayError> {
    let row = sqlx::query(
        "SELECT code, name, suspended, issuer_endpoint FROM municipalities WHERE code = $1",
    )
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(Some(Municipality {
            code: row.try_get(0)?,
            name: row.try_get(1)?,
            suspended: row.try_get::<i64, _>(2)? != 0,
            issuer_endpoint: row.try_get(3)?,
        })),
        None => Ok(None),
    }
}

/// Sets a global setting.
pub async fn set_setting(
    conn: &mut AnyConnection,
    name: &str,
    value: &str,
) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A global setting, if set.
pub async fn setting(conn: &mut AnyConnection, name: &str) -> Result<Option<String>, GatewayError> {
    let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    })
}
