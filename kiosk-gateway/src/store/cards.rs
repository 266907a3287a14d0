//! Card bindings: where a card certificate (its issuer's name and serial) leads, the
//! resident's municipality and the issuer's opaque reference.

use sqlx::{AnyConnection, Row};

use crate::error::GatewayError;

/// Where a card certificate leads: the resident's municipality and opaque reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardBinding {
    /// 6-digit municipality code.
    pub municipality_code: String,
    /// The issuer's opaque resident reference.
    pub resident_ref: String,
}

/// Binds a card certificate (issuer name, serial hex) to a resident.
pub async fn bind_card(
    conn: &mut AnyConnection,
    cert_issuer: &str,
    cert_serial: &str,
    binding: &CardBinding,
) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO card_bindings (cert_issuer, cert_serial, municipality_code, resident_ref)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (cert_issuer, cert_serial) DO UPDATE SET
             municipality_code = excluded.municipality_code, resident_ref = excluded.resident_ref",
    )
    .bind(cert_issuer)
    .bind(cert_serial)
    .bind(&binding.municipality_code)
    .bind(&binding.resident_ref)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The binding of a card certificate, if any.
pub async fn card_binding(
    conn: &mut AnyConnection,
    cert_issuer: &str,
    cert_serial: &str,
) -> Result<Option<CardBinding>, GatewayError> {
    let row = sqlx::query(
        "SELECT municipality_code, resident_ref FROM card_bindings
         WHERE cert_issuer = $1 AND cert_serial = $2",
    )
    .bind(cert_issuer)
    .bind(cert_serial)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => Some(CardBinding {
            municipality_code: row.try_get(0)?,
            resident_ref: row.try_get(1)?,
        }),
        None => None,
    })
}

/// The binding of a card certificate, if any, and whether its municipality is served here,
/// in one statement.
pub async fn card_binding_served(
    conn: &mut AnyConnection,
    cert_issuer: &str,
    cert_serial: &str,
) -> Result<Option<(CardBinding, bool)>, GatewayError> {
    let row = sqlx::query(
        "SELECT b.municipality_code, b.resident_ref, m.code FROM card_bindings b
         LEFT JOIN municipalities m ON m.code = b.municipality_code
         WHERE b.cert_issuer = $1 AND b.cert_serial = $2",
    )
    .bind(cert_issuer)
    .bind(cert_serial)
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
