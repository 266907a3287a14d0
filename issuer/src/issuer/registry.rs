//! The issued-document registry: every document the issuer signed, with its status. A render
//! records its documents `pending` in its own transaction ([`Issuer::record_pending`]); the
//! gateway then confirms them once its own record commits, voids them after a print failure,
//! and reconciliation voids those it never recorded. The registry holds each PDF once, so a
//! retry's copy comes from here.

use std::collections::BTreeMap;

use kiosk_document::{CertificateType, IssuanceId, ResidentRef};
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use super::Issuer;
use crate::calendar::unix_ms;
use crate::error::IssuerError;
use crate::model::RenderedDocument;

/// The status of a document in the issued-document registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentStatus {
    /// Rendered and signed, not yet recorded by the gateway: never released while pending.
    Pending,
    /// Issued and valid.
    Issued,
    /// Voided (print failure, refund, or operator action).
    Voided,
}

/// What [`Issuer::confirm`] found of an issuance's documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmed {
    /// Serials issued (now or before).
    pub issued: Vec<String>,
    /// Serials already void.
    pub voided: Vec<String>,
}

/// An issuance with documents still pending (see [`Issuer::pending_before`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIssuance {
    /// The gateway's issuance id.
    pub issuance_id: String,
    /// Its pending documents: serial and type, in order.
    pub documents: Vec<(String, CertificateType)>,
}

fn to_array(bytes: &[u8]) -> Result<[u8; 32], IssuerError> {
    bytes.try_into().map_err(|_| IssuerError::Corrupt {
        what: "stored digest",
    })
}

fn encode_pages(pages: &[Vec<ResidentRef>]) -> String {
    pages
        .iter()
        .map(|page| {
            page.iter()
                .map(ResidentRef::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn decode_pages(text: &str) -> Result<Vec<Vec<ResidentRef>>, IssuerError> {
    text.split(';')
        .map(|page| {
            page.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    ResidentRef::parse(s).map_err(|_| IssuerError::Corrupt {
                        what: "page subjects",
                    })
                })
                .collect()
        })
        .collect()
}

impl Issuer {
    /// Records freshly rendered documents as `pending` in the caller's transaction, in
    /// multi-row inserts (small chunks: SQLite binds `$N` by a linear search, see
    /// `audit::store::append_batch`).
    pub(super) async fn record_pending(
        &self,
        conn: &mut AnyConnection,
        issuance_id: &IssuanceId,
        requester: &ResidentRef,
        issued_at: OffsetDateTime,
        documents: &[RenderedDocument],
    ) -> Result<(), IssuerError> {
        for (chunk_index, chunk) in documents.chunks(16).enumerate() {
            let mut sql = String::from(
                "INSERT INTO issued_documents (serial, issuance_id, position, municipality_code, \
             certificate_type, requester_ref, page_subjects, page_count, content_digest, \
             pdf_sha256, pdf, fee_yen, issued_at, status) VALUES ",
            );
            for row in 0..chunk.len() {
                sql.push_str(if row == 0 { "(" } else { ",(" });
                for col in 0..13 {
                    if col > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!("${}", row * 13 + col + 1));
                }
                // Pending until the gateway records the issuance (`Issuer::confirm`).
                sql.push_str(",'pending')");
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (offset, doc) in chunk.iter().enumerate() {
                let position = chunk_index * 16 + offset;
                query = query
                    .bind(doc.serial.as_str())
                    .bind(issuance_id.as_str())
                    .bind(i64::try_from(position).unwrap_or(i64::MAX))
                    .bind(self.municipality.as_str())
                    .bind(doc.ty.code())
                    .bind(requester.as_str())
                    .bind(encode_pages(&doc.pages))
                    .bind(i64::try_from(doc.pages.len()).unwrap_or(i64::MAX))
                    .bind(doc.content_digest.to_vec())
                    .bind(doc.pdf_sha256.to_vec())
                    .bind(doc.pdf.as_slice())
                    .bind(i64::from(doc.fee_yen))
                    .bind(unix_ms(issued_at));
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// The documents recorded for `issuance_id`, in order.
    pub(super) async fn recorded(
        conn: &mut AnyConnection,
        issuance_id: &IssuanceId,
    ) -> Result<Vec<RenderedDocument>, IssuerError> {
        let rows = sqlx::query(
            "SELECT serial, certificate_type, pdf, page_subjects, pdf_sha256, fee_yen, \
             content_digest FROM issued_documents WHERE issuance_id = $1 ORDER BY position",
        )
        .bind(issuance_id.as_str())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                let code: String = row.try_get("certificate_type")?;
                Ok(RenderedDocument {
                    serial: row.try_get("serial")?,
                    ty: CertificateType::from_code(&code).ok_or(IssuerError::Corrupt {
                        what: "certificate type",
                    })?,
                    pdf: row.try_get("pdf")?,
                    pages: decode_pages(&row.try_get::<String, _>("page_subjects")?)?,
                    pdf_sha256: to_array(&row.try_get::<Vec<u8>, _>("pdf_sha256")?)?,
                    fee_yen: u32::try_from(row.try_get::<i64, _>("fee_yen")?)
                        .map_err(|_| IssuerError::Corrupt { what: "fee" })?,
                    content_digest: to_array(&row.try_get::<Vec<u8>, _>("content_digest")?)?,
                })
            })
            .collect()
    }

    /// Voids documents; idempotent. Returns the serials that are void now (including those
    /// that already were); unknown serials are left out.
    pub async fn void(&self, serials: &[String], reason: &str) -> Result<Vec<String>, IssuerError> {
        let now_ms = unix_ms(OffsetDateTime::now_utc());
        let _turn = self.register.writer_turn().await;
        let mut tx = self.register.pool().begin().await?;
        let mut voided = Vec::new();
        for serial in serials {
            sqlx::query(
                "UPDATE issued_documents SET status = 'voided', voided_at = $2, void_reason = $3 \
                 WHERE serial = $1 AND status IN ('issued', 'pending') AND municipality_code = $4",
            )
            .bind(serial)
            .bind(now_ms)
            .bind(reason)
            .bind(self.municipality.as_str())
            .execute(&mut *tx)
            .await?;
            let exists = sqlx::query(
                "SELECT status FROM issued_documents WHERE serial = $1 AND municipality_code = $2",
            )
            .bind(serial)
            .bind(self.municipality.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if exists.is_some() {
                voided.push(serial.clone());
            }
        }
        tx.commit().await?;
        Ok(voided)
    }

    /// The registry status of `serial`, if the issuer issued it.
    pub async fn document_status(
        &self,
        serial: &str,
    ) -> Result<Option<DocumentStatus>, IssuerError> {
        let row = sqlx::query("SELECT status FROM issued_documents WHERE serial = $1")
            .bind(serial)
            .fetch_optional(self.register.pool())
            .await?;
        match row {
            None => Ok(None),
            Some(row) => match row.try_get::<String, _>("status")?.as_str() {
                "pending" => Ok(Some(DocumentStatus::Pending)),
                "issued" => Ok(Some(DocumentStatus::Issued)),
                "voided" => Ok(Some(DocumentStatus::Voided)),
                _ => Err(IssuerError::Corrupt {
                    what: "document status",
                }),
            },
        }
    }

    /// Marks the pending documents of `issuance_id` issued: the gateway has recorded the
    /// issuance. Idempotent. Returns the serials now issued and those already void (voided
    /// by a reconciliation that judged the issuance lost: they must not be released).
    pub async fn confirm(&self, issuance_id: &IssuanceId) -> Result<Confirmed, IssuerError> {
        let _turn = self.register.writer_turn().await;
        // READ COMMITTED on PostgreSQL: the conditional update waits for a concurrent
        // VoidPending of the same rows and then sees its outcome, instead of failing.
        let mut tx = self.register.pool().begin().await?;
        sqlx::query(
            "UPDATE issued_documents SET status = 'issued' \
             WHERE issuance_id = $1 AND municipality_code = $2 AND status = 'pending'",
        )
        .bind(issuance_id.as_str())
        .bind(self.municipality.as_str())
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT serial, status FROM issued_documents \
             WHERE issuance_id = $1 AND municipality_code = $2 ORDER BY position",
        )
        .bind(issuance_id.as_str())
        .bind(self.municipality.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut confirmed = Confirmed::default();
        for row in &rows {
            let serial: String = row.try_get("serial")?;
            match row.try_get::<String, _>("status")?.as_str() {
                "issued" => confirmed.issued.push(serial),
                _ => confirmed.voided.push(serial),
            }
        }
        Ok(confirmed)
    }

    /// Issuances with documents still pending whose issue time is before `issued_before`,
    /// oldest first, at most `limit` of them.
    pub async fn pending_before(
        &self,
        issued_before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<PendingIssuance>, IssuerError> {
        let rows = sqlx::query(
            "SELECT issuance_id, serial, certificate_type FROM issued_documents \
             WHERE status = 'pending' AND issued_at < $1 AND municipality_code = $2 \
             AND issuance_id IN (SELECT issuance_id FROM issued_documents \
                 WHERE status = 'pending' AND issued_at < $1 AND municipality_code = $2 \
                 GROUP BY issuance_id ORDER BY MIN(issued_at), issuance_id LIMIT $3) \
             ORDER BY issued_at, issuance_id, position",
        )
        .bind(unix_ms(issued_before))
        .bind(self.municipality.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.register.pool())
        .await?;
        let mut pending: Vec<PendingIssuance> = Vec::new();
        for row in &rows {
            let issuance_id: String = row.try_get("issuance_id")?;
            let code: String = row.try_get("certificate_type")?;
            let ty = CertificateType::from_code(&code).ok_or(IssuerError::Corrupt {
                what: "certificate type",
            })?;
            let document = (row.try_get::<String, _>("serial")?, ty);
            match pending.last_mut() {
                Some(last) if last.issuance_id == issuance_id => last.documents.push(document),
                _ => pending.push(PendingIssuance {
                    issuance_id,
                    documents: vec![document],
                }),
            }
        }
        Ok(pending)
    }

    /// Voids the documents of `issuance_id` that are still pending and were issued before
    /// `issued_before`: a conditional update, so an issuance confirmed meanwhile (or one too
    /// young to judge, still in flight on some gateway) is left alone. Returns the serials
    /// this call voided.
    pub async fn void_pending(
        &self,
        issuance_id: &IssuanceId,
        issued_before: OffsetDateTime,
        reason: &str,
    ) -> Result<Vec<String>, IssuerError> {
        let now_ms = unix_ms(OffsetDateTime::now_utc());
        let _turn = self.register.writer_turn().await;
        // READ COMMITTED, as in `confirm`: of the two, whichever commits first decides.
        let mut tx = self.register.pool().begin().await?;
        let rows = sqlx::query(
            "UPDATE issued_documents SET status = 'voided', voided_at = $3, void_reason = $4 \
             WHERE issuance_id = $1 AND municipality_code = $2 AND status = 'pending' \
             AND issued_at < $5 RETURNING serial",
        )
        .bind(issuance_id.as_str())
        .bind(self.municipality.as_str())
        .bind(now_ms)
        .bind(reason)
        .bind(unix_ms(issued_before))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("serial")?))
            .collect()
    }

    /// Counts of documents by status, for operators and tests.
    pub async fn registry_counts(&self) -> Result<BTreeMap<String, i64>, IssuerError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM issued_documents GROUP BY status ORDER BY status",
        )
        .fetch_all(self.register.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("status")?, row.try_get("n")?)))
            .collect()
    }
}
