//! Card bindings: where a card certificate (its [`CardKey`]: the issuing CA's key identifier
//! and the serial) leads, the resident's municipality and the issuer's opaque reference. A
//! binding an operator replaced by a renewed certificate stays, closed; only open bindings
//! lead anywhere.

use sqlx::{AnyConnection, Row};

use crate::cardauth::CardKey;
use crate::error::GatewayError;

/// Where a card certificate leads: the resident's municipality and opaque reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardBinding {
    /// 6-digit municipality code.
    pub municipality_code: String,
    /// The issuer's opaque resident reference.
    pub resident_ref: String,
}

/// A stored binding, open or closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBinding {
    /// Where it leads.
    pub binding: CardBinding,
    /// When an operator closed it (Unix ms); `None` while open.
    pub closed_at: Option<i64>,
}

/// Binds a card certificate to a resident, or rebinds it (a bindings file imported at start
/// is the issuer's current view). A closed binding stays closed.
pub async fn bind_card(
    conn: &mut AnyConnection,
    key: &CardKey,
    binding: &CardBinding,
) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO card_bindings (issuer_key_id, cert_serial, municipality_code, resident_ref)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (issuer_key_id, cert_serial) DO UPDATE SET
             municipality_code = excluded.municipality_code, resident_ref = excluded.resident_ref",
    )
    .bind(&key.issuer_key_id)
    .bind(&key.serial)
    .bind(&binding.municipality_code)
    .bind(&binding.resident_ref)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The binding of a card certificate, open or closed, if any.
pub async fn card_binding(
    conn: &mut AnyConnection,
    key: &CardKey,
) -> Result<Option<StoredBinding>, GatewayError> {
    let row = sqlx::query(
        "SELECT municipality_code, resident_ref, closed_at FROM card_bindings
         WHERE issuer_key_id = $1 AND cert_serial = $2",
    )
    .bind(&key.issuer_key_id)
    .bind(&key.serial)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => Some(StoredBinding {
            binding: CardBinding {
                municipality_code: row.try_get(0)?,
                resident_ref: row.try_get(1)?,
            },
            closed_at: row.try_get(2)?,
        }),
        None => None,
    })
}

/// Closes the open binding of `old`, naming `renewal` as what replaced it, at `now` (Unix
/// ms). Returns whether an open binding was closed.
pub async fn close_binding(
    conn: &mut AnyConnection,
    old: &CardKey,
    renewal: &CardKey,
    now: i64,
) -> Result<bool, GatewayError> {
    let done = sqlx::query(
        "UPDATE card_bindings SET closed_at = $3, renewed_to = $4
         WHERE issuer_key_id = $1 AND cert_serial = $2 AND closed_at IS NULL",
    )
    .bind(&old.issuer_key_id)
    .bind(&old.serial)
    .bind(now)
    .bind(format!("{}:{}", renewal.issuer_key_id, renewal.serial))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The open binding of a card certificate, if any, and whether its municipality is served
/// here, in one statement.
pub async fn card_binding_served(
    conn: &mut AnyConnection,
    key: &CardKey,
) -> Result<Option<(CardBinding, bool)>, GatewayError> {
    let row = sqlx::query(
        "SELECT b.municipality_code, b.resident_ref, m.code FROM card_bindings b
         LEFT JOIN municipalities m ON m.code = b.municipality_code
         WHERE b.issuer_key_id = $1 AND b.cert_serial = $2 AND b.closed_at IS NULL",
    )
    .bind(&key.issuer_key_id)
    .bind(&key.serial)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => Some((
            CardBinding {
                municipality_code: row.try_get(0)?,
                resident_ref: row.try_get(1)?,
            },
            row.try_get::<Option<String>, _>(2)?.is_some(),
        )),
        None => None,
    })
}
