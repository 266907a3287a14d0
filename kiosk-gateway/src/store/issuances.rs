//! Issuances and their documents in the gateway's database: states, rows, recording, the
//! lookups by idempotency key and id, print-report transitions, the deadline sweep's query,
//! voids, and the document records VerifyService reads.

use sqlx::{AnyConnection, Row};

use crate::error::GatewayError;

/// Where an issuance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuanceState {
    /// Released, awaiting the print report.
    Released,
    /// Printed and confirmed.
    Printed,
    /// Voided.
    Voided,
    /// No report before the deadline.
    Unconfirmed,
}

impl IssuanceState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuanceState::Released => "released",
            IssuanceState::Printed => "printed",
            IssuanceState::Voided => "voided",
            IssuanceState::Unconfirmed => "unconfirmed",
        }
    }

    fn parse(s: &str) -> Result<Self, GatewayError> {
        match s {
            "released" => Ok(IssuanceState::Released),
            "printed" => Ok(IssuanceState::Printed),
            "voided" => Ok(IssuanceState::Voided),
            "unconfirmed" => Ok(IssuanceState::Unconfirmed),
            other => Err(GatewayError::Internal(format!("issuance state {other:?}"))),
        }
    }
}

/// A stored issuance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuanceRow {
    /// The issuance id.
    pub issuance_id: String,
    /// The session it was issued in.
    pub session_id: String,
    /// The terminal.
    pub terminal_id: String,
    /// The terminal's idempotency key.
    pub client_request_id: String,
    /// SHA-256 of the canonical order, to tell a retry from a reuse of the key.
    pub request_digest: Vec<u8>,
    /// The resident's municipality.
    pub municipality_code: String,
    /// The requester.
    pub resident_ref: String,
    /// Where it is.
    pub state: IssuanceState,
    /// The amount due.
    pub total_fee_yen: i64,
    /// Set by the print report.
    pub collected_yen: Option<i64>,
    /// Set by the print report.
    pub refund_due_yen: Option<i64>,
    /// Report before this (unix ms).
    pub print_deadline: i64,
    /// When it was recorded (unix ms).
    pub created_at: i64,
}

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRow {
    /// Serial number.
    pub serial: String,
    /// The issuance.
    pub issuance_id: String,
    /// Position in the issuance.
    pub doc_index: i64,
    /// Certificate type name (kiosk.v1 enum value name).
    pub cert_type: String,
    /// Pages.
    pub page_count: i64,
    /// Fee for this document.
    pub fee_yen: i64,
    /// SHA-256 of the PDF: what an idempotent retry checks the issuer's copy against.
    pub pdf_sha256: Vec<u8>,
    /// SHA-256 of the printed content (as in the QR payload).
    pub content_digest: Vec<u8>,
    /// `issued` or `voided`.
    pub status: String,
    /// When issued (unix ms).
    pub issued_at: i64,
}

pub(super) const ISSUANCE_COLUMNS: &str = "issuance_id, session_id, terminal_id, client_request_id,
    request_digest, municipality_code, resident_ref, state, total_fee_yen, collected_yen,
    refund_due_yen, print_deadline, created_at";

fn issuance_from_row(row: &sqlx::any::AnyRow) -> Result<IssuanceRow, GatewayError> {
    issuance_from_row_at(row, 0)
}

/// The issuance in the 13 columns of `row` from `at` (as selected by [`ISSUANCE_COLUMNS`]).
pub(super) fn issuance_from_row_at(
    row: &sqlx::any::AnyRow,
    at: usize,
) -> Result<IssuanceRow, GatewayError> {
    Ok(IssuanceRow {
        issuance_id: row.try_get(at)?,
        session_id: row.try_get(at + 1)?,
        terminal_id: row.try_get(at + 2)?,
        client_request_id: row.try_get(at + 3)?,
        request_digest: row.try_get(at + 4)?,
        municipality_code: row.try_get(at + 5)?,
        resident_ref: row.try_get(at + 6)?,
        state: IssuanceState::parse(&row.try_get::<String, _>(at + 7)?)?,
        total_fee_yen: row.try_get(at + 8)?,
        collected_yen: row.try_get(at + 9)?,
        refund_due_yen: row.try_get(at + 10)?,
        print_deadline: row.try_get(at + 11)?,
        created_at: row.try_get(at + 12)?,
    })
}

/// Stores an issuance and its documents' records. The PDF bytes are not stored here: the
/// issuer's registry keeps them (recorded in the transaction that decided them), and an
/// idempotent retry fetches them from there and checks them against `pdf_sha256` (see
/// `Flow::replay`).
pub async fn insert_issuance(
    conn: &mut AnyConnection,
    issuance: &IssuanceRow,
    documents: &[DocumentRow],
) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO issuances (issuance_id, session_id, terminal_id, client_request_id,
             request_digest, municipality_code, resident_ref, state, total_fee_yen,
             collected_yen, refund_due_yen, print_deadline, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&issuance.issuance_id)
    .bind(&issuance.session_id)
    .bind(&issuance.terminal_id)
    .bind(&issuance.client_request_id)
    .bind(&issuance.request_digest)
    .bind(&issuance.municipality_code)
    .bind(&issuance.resident_ref)
    .bind(issuance.state.as_str())
    .bind(issuance.total_fee_yen)
    .bind(issuance.collected_yen)
    .bind(issuance.refund_due_yen)
    .bind(issuance.print_deadline)
    .bind(issuance.created_at)
    .execute(&mut *conn)
    .await?;
    // One multi-row insert per chunk rather than one statement per document. Chunks stay
    // small because SQLite resolves `$N` parameters by a linear search (see
    // `audit::store::append_batch`).
    for chunk in documents.chunks(32) {
        let mut sql = String::from(
            "INSERT INTO documents (serial, issuance_id, doc_index, cert_type, page_count,
                 fee_yen, pdf_sha256, content_digest, status, issued_at) VALUES ",
        );
        audit::store::push_placeholders(&mut sql, chunk.len(), 10);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for d in chunk {
            q = q
                .bind(&d.serial)
                .bind(&d.issuance_id)
                .bind(d.doc_index)
                .bind(&d.cert_type)
                .bind(d.page_count)
                .bind(d.fee_yen)
                .bind(&d.pdf_sha256)
                .bind(&d.content_digest)
                .bind(&d.status)
                .bind(d.issued_at);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The issuance a terminal recorded under an idempotency key, if any.
pub async fn issuance_by_request(
    conn: &mut AnyConnection,
    terminal_id: &str,
    client_request_id: &str,
) -> Result<Option<IssuanceRow>, GatewayError> {
    let sql = format!(
        "SELECT {ISSUANCE_COLUMNS} FROM issuances WHERE terminal_id = $1 AND client_request_id = $2"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(terminal_id)
        .bind(client_request_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(issuance_from_row).transpose()
}

/// An issuance by id.
pub async fn issuance(
    conn: &mut AnyConnection,
    issuance_id: &str,
) -> Result<Option<IssuanceRow>, GatewayError> {
    let sql = format!("SELECT {ISSUANCE_COLUMNS} FROM issuances WHERE issuance_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(issuance_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(issuance_from_row).transpose()
}

/// Released issuances whose print deadline passed before `now_ms`, oldest first.
pub async fn overdue_issuances(
    conn: &mut AnyConnection,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<IssuanceRow>, GatewayError> {
    let sql = format!(
        "SELECT {ISSUANCE_COLUMNS} FROM issuances
         WHERE state = 'released' AND print_deadline < $1 ORDER BY print_deadline LIMIT $2"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(issuance_from_row).collect()
}

/// Moves an issuance from `from` to `to` with the print report's amounts. Returns false when
/// it was not in `from` (a concurrent report or the deadline sweep won).
pub async fn transition_issuance(
    conn: &mut AnyConnection,
    issuance_id: &str,
    from: IssuanceState,
    to: IssuanceState,
    collected_yen: Option<i64>,
    refund_due_yen: Option<i64>,
) -> Result<bool, GatewayError> {
    let done = sqlx::query(
        "UPDATE issuances SET state = $3, collected_yen = COALESCE($4, collected_yen),
             refund_due_yen = COALESCE($5, refund_due_yen)
         WHERE issuance_id = $1 AND state = $2",
    )
    .bind(issuance_id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(collected_yen)
    .bind(refund_due_yen)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves a released issuance of `terminal_id`'s session `session_id` to printed, if its print
/// deadline has not passed at `now_ms`, and returns it as it is now: the common print report
/// in one statement (compare-and-set plus read). `None` when any condition fails; the caller
/// then reads the issuance and decides as before.
pub async fn mark_printed(
    conn: &mut AnyConnection,
    issuance_id: &str,
    terminal_id: &str,
    session_id: &str,
    collected_yen: i64,
    now_ms: i64,
) -> Result<Option<IssuanceRow>, GatewayError> {
    let sql = format!(
        "UPDATE issuances SET state = 'printed', collected_yen = $4,
             refund_due_yen = CASE WHEN $4 > total_fee_yen THEN $4 - total_fee_yen ELSE 0 END
         WHERE issuance_id = $1 AND terminal_id = $2 AND session_id = $3
             AND state = 'released' AND print_deadline >= $5
         RETURNING {ISSUANCE_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(issuance_id)
        .bind(terminal_id)
        .bind(session_id)
        .bind(collected_yen)
        .bind(now_ms)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(issuance_from_row).transpose()
}

/// Voids every document of an issuance; returns their serials.
pub async fn void_documents(
    conn: &mut AnyConnection,
    issuance_id: &str,
) -> Result<Vec<String>, GatewayError> {
    sqlx::query("UPDATE documents SET status = 'voided' WHERE issuance_id = $1")
        .bind(issuance_id)
        .execute(&mut *conn)
        .await?;
    let rows =
        sqlx::query("SELECT serial FROM documents WHERE issuance_id = $1 ORDER BY doc_index")
            .bind(issuance_id)
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).map_err(GatewayError::from))
        .collect()
}

const DOCUMENT_COLUMNS: &str = "serial, issuance_id, doc_index, cert_type, page_count, fee_yen,
    pdf_sha256, content_digest, status, issued_at";

fn document_from_row(row: &sqlx::any::AnyRow) -> Result<DocumentRow, GatewayError> {
    Ok(DocumentRow {
        serial: row.try_get(0)?,
        issuance_id: row.try_get(1)?,
        doc_index: row.try_get(2)?,
        cert_type: row.try_get(3)?,
        page_count: row.try_get(4)?,
        fee_yen: row.try_get(5)?,
        pdf_sha256: row.try_get(6)?,
        content_digest: row.try_get(7)?,
        status: row.try_get(8)?,
        issued_at: row.try_get(9)?,
    })
}

/// The records of an issuance's documents, in order (without the PDFs).
pub async fn documents(
    conn: &mut AnyConnection,
    issuance_id: &str,
) -> Result<Vec<DocumentRow>, GatewayError> {
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE issuance_id = $1 ORDER BY doc_index"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(issuance_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(document_from_row).collect()
}

/// A document by serial (for VerifyService).
pub async fn document(
    conn: &mut AnyConnection,
    serial: &str,
) -> Result<Option<DocumentRow>, GatewayError> {
    let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE serial = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(serial)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(document_from_row).transpose()
}
