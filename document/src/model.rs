//! The document model: what one certificate says, independent of how it is drawn.
//!
//! The register side of the issuer maps register rows into a [`Certificate`] and hands it to
//! its renderer (`issuer::document::render::Renderer`); a reader rebuilds one only to compare
//! it with a QR payload ([`crate::qr::VerifiedSummary::check_content`]). The model is deliberately generic: a certificate is a
//! header (type, municipality, serial, issuance id, issue time, certification sentence) plus a
//! list of [`Block`]s, and every form is expressed with four kinds of block:
//!
//! * [`Block::Section`] — a person or record: an optional heading, labelled [`Row`]s and
//!   optional [`Event`]s (戸籍の身分事項). Used for 住民票 (one section per person), the 印鑑
//!   holder, the 課税 taxpayer, the 戸籍 header (本籍・筆頭者) and each 戸籍 member.
//! * [`Block::Table`] — a captioned table with column headings: 課税 amounts, 附票 address
//!   history.
//! * [`Block::Seal`] — a registered seal impression (印影) as PNG bytes.
//! * [`Block::Note`] — a free paragraph (備考, 「以下余白」 is added by the renderer itself).
//!
//! Every block names the residents it is about as opaque [`ResidentRef`]s. The renderer places
//! blocks on pages; the subject marker of a page is the set of subject refs of every block that
//! is (partly) drawn on it, bound to the [`IssuanceId`]. Blocks that are about nobody in
//! particular (a 戸籍 header naming only the 本籍) still should carry the subjects whose data
//! they print (the 筆頭者, if that person is a resident the issuer knows).
//!
//! Optional items (世帯主・続柄, 本籍・筆頭者, 個人番号, 旧氏, foreign residents' items) are
//! simply rows that the mapper adds or leaves out; the model has no per-form types.
//!
//! Text rules, checked by [`Certificate::new`]: no control characters other than `'\n'`
//! inside [`Row::value`] and [`Block::Note`] (an explicit line break), and every character must
//! exist in the embedded font (checked by the issuer's renderer, which returns
//! `RenderError::MissingGlyph` — e.g. for an unregistered 外字).

use crate::certificate_type::CertificateType;
use crate::era::CivilDateTime;
use crate::error::ModelError;
use crate::ids::{IssuanceId, ResidentRef, Serial};
use crate::municipality::MunicipalityCode;

/// The issuing municipality as printed: its code, its name and the certifying mayor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    /// 地方公共団体コード; signed into the QR code.
    pub code: MunicipalityCode,
    /// The name as printed in the header, e.g. 「東京都千代田区」.
    pub name: String,
    /// The mayor's title as printed before the name, e.g. 「千代田区長」.
    pub mayor_title: String,
    /// The mayor's name, e.g. 「山田　一郎」.
    pub mayor_name: String,
}

/// A labelled field: 「氏名」→「山田　太郎」. An empty value prints an empty cell (a form
/// that always shows the label); leave the row out to omit the item altogether.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The label (項目名), e.g. 「住所」, 「旧氏」, 「個人番号」.
    pub label: String,
    /// The value; may contain `'\n'` for an explicit line break. Long values wrap.
    pub value: String,
}

impl Row {
    /// Convenience constructor.
    pub fn new(label: impl Into<String>, value: impl Into<String>) -> Self {
        Row {
            label: label.into(),
            value: value.into(),
        }
    }
}

/// A 身分事項 entry of a 戸籍 member (出生, 婚姻, 養子縁組, ...), printed as
/// 「出生　【出生日】平成２年５月１日 ...」 with one bracketed row per item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event kind, e.g. 「出生」.
    pub title: String,
    /// Its items, labelled by the bare item name (「出生日」, 「出生地」, 「届出人」): the
    /// layout prints each in one pair of brackets, 【出生日】.
    pub rows: Vec<Row>,
}

/// A person or record section: heading, labelled rows, optional 身分事項 events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// An optional heading bar, e.g. 「戸籍に記録されている者」 or 「世帯員１」.
    pub heading: Option<String>,
    /// The labelled fields in print order.
    pub rows: Vec<Row>,
    /// 身分事項 (戸籍 only; empty elsewhere).
    pub events: Vec<Event>,
    /// The residents this section prints data of.
    pub subjects: Vec<ResidentRef>,
}

/// A captioned table: column headings and rows of cells (課税 amounts, 附票 address history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// An optional caption above the table, e.g. 「令和７年度（令和６年分）」.
    pub caption: Option<String>,
    /// Column headings; every row must have exactly this many cells.
    pub columns: Vec<String>,
    /// The cells, row by row. Cells wrap within their column.
    pub rows: Vec<Vec<String>>,
    /// The residents this table prints data of.
    pub subjects: Vec<ResidentRef>,
}

/// A registered seal impression (印影) for the 印鑑登録証明書.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealImpression {
    /// The scanned impression as PNG bytes (any size; drawn into a fixed square frame).
    pub png: Vec<u8>,
    /// The seal holder.
    pub subjects: Vec<ResidentRef>,
}

/// One block of the certificate body, laid out top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A person or record section.
    Section(Section),
    /// A table.
    Table(Table),
    /// A registered seal impression.
    Seal(SealImpression),
    /// A free paragraph (備考); may contain `'\n'`. It is about the given subjects.
    Note {
        /// The text.
        text: String,
        /// The residents it is about (may be empty for a general remark).
        subjects: Vec<ResidentRef>,
    },
}

impl Block {
    /// The subject refs this block prints data of.
    pub fn subjects(&self) -> &[ResidentRef] {
        match self {
            Block::Section(s) => &s.subjects,
            Block::Table(t) => &t.subjects,
            Block::Seal(s) => &s.subjects,
            Block::Note { subjects, .. } => subjects,
        }
    }
}

/// The issue time: a UNIX timestamp printed as a Japanese-era date in JST.
///
/// Invariant: the JST civil date lies in years 1900..=9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IssuedAt(i64);

impl IssuedAt {
    /// From UNIX seconds.
    pub fn from_unix_seconds(secs: i64) -> Result<Self, ModelError> {
        // 1900-01-01T00:00+09:00 .. 9999-12-31T23:59:59+09:00
        const MIN: i64 = -2_208_988_800 - 9 * 3600;
        const MAX: i64 = 253_402_300_799 - 9 * 3600;
        if !(MIN..=MAX).contains(&secs) {
            return Err(ModelError::IssueTime);
        }
        Ok(Self(secs))
    }

    /// UNIX seconds.
    pub fn unix_seconds(self) -> i64 {
        self.0
    }

    /// The civil date and time in Japan Standard Time (UTC+9, no DST).
    pub fn jst(self) -> CivilDateTime {
        CivilDateTime::from_unix_seconds(self.0 + 9 * 3600)
    }
}

/// One certificate, ready to render. Build it with [`Certificate::new`], which validates the
/// text fields; the fields are read through accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    kind: CertificateType,
    municipality: Municipality,
    serial: Serial,
    issuance_id: IssuanceId,
    issued_at: IssuedAt,
    certification: String,
    blocks: Vec<Block>,
}

/// The header fields of a certificate, passed to [`Certificate::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The type (title and layout follow from it).
    pub kind: CertificateType,
    /// The issuing municipality and mayor.
    pub municipality: Municipality,
    /// 交付番号.
    pub serial: Serial,
    /// The gateway's issuance id.
    pub issuance_id: IssuanceId,
    /// When it is issued.
    pub issued_at: IssuedAt,
    /// The certification sentence; `None` takes [`CertificateType::default_certification`].
    pub certification: Option<String>,
}

fn check_text(field: &'static str, s: &str, allow_newline: bool) -> Result<(), ModelError> {
    if s.chars()
        .any(|c| c.is_control() && !(allow_newline && c == '\n'))
    {
        return Err(ModelError::ControlCharacter(field));
    }
    Ok(())
}

fn check_nonempty(field: &'static str, s: &str) -> Result<(), ModelError> {
    check_text(field, s, false)?;
    if s.trim().is_empty() {
        return Err(ModelError::EmptyText(field));
    }
    Ok(())
}

impl Certificate {
    /// Validates and builds a certificate.
    ///
    /// Errors: empty municipality name / mayor title / mayor name / certification sentence,
    /// control characters in any text, no blocks, a block without subjects (except a
    /// [`Block::Note`]), a table row whose cell count differs from its column count, an empty
    /// seal PNG.
    pub fn new(header: Header, blocks: Vec<Block>) -> Result<Self, ModelError> {
        let m = &header.municipality;
        check_nonempty("municipality.name", &m.name)?;
        check_nonempty("municipality.mayor_title", &m.mayor_title)?;
        check_nonempty("municipality.mayor_name", &m.mayor_name)?;
        let certification = header
            .certification
            .unwrap_or_else(|| header.kind.default_certification().to_owned());
        check_nonempty("certification", &certification)?;
        if blocks.is_empty() {
            return Err(ModelError::Structure("no blocks"));
        }
        for block in &blocks {
            match block {
                Block::Section(s) => {
                    if let Some(h) = &s.heading {
                        check_text("section.heading", h, false)?;
                    }
                    for r in s.rows.iter().chain(s.events.iter().flat_map(|e| &e.rows)) {
                        check_nonempty("row.label", &r.label)?;
                        check_text("row.value", &r.value, true)?;
                    }
                    for e in &s.events {
                        check_nonempty("event.title", &e.title)?;
                    }
                    if s.subjects.is_empty() {
                        return Err(ModelError::Structure("section without subjects"));
                    }
                }
                Block::Table(t) => {
                    if let Some(c) = &t.caption {
                        check_text("table.caption", c, false)?;
                    }
                    if t.columns.is_empty() {
                        return Err(ModelError::Structure("table without columns"));
                    }
                    for c in &t.columns {
                        check_text("table.column", c, false)?;
                    }
                    for row in &t.rows {
                        if row.len() != t.columns.len() {
                            return Err(ModelError::Structure("table row width"));
                        }
                        for cell in row {
                            check_text("table.cell", cell, true)?;
                        }
                    }
                    if t.subjects.is_empty() {
                        return Err(ModelError::Structure("table without subjects"));
                    }
                }
                Block::Seal(s) => {
                    if s.png.is_empty() {
                        return Err(ModelError::Structure("empty seal image"));
                    }
                    if s.subjects.is_empty() {
                        return Err(ModelError::Structure("seal without subjects"));
                    }
                }
                Block::Note { text, .. } => check_text("note", text, true)?,
            }
        }
        Ok(Certificate {
            kind: header.kind,
            municipality: header.municipality,
            serial: header.serial,
            issuance_id: header.issuance_id,
            issued_at: header.issued_at,
            certification,
            blocks,
        })
    }

    /// The type.
    pub fn kind(&self) -> CertificateType {
        self.kind
    }
    /// The issuing municipality.
    pub fn municipality(&self) -> &Municipality {
        &self.municipality
    }
    /// 交付番号.
    pub fn serial(&self) -> &Serial {
        &self.serial
    }
    /// The issuance id bound into every page marker.
    pub fn issuance_id(&self) -> &IssuanceId {
        &self.issuance_id
    }
    /// The issue time.
    pub fn issued_at(&self) -> IssuedAt {
        self.issued_at
    }
    /// The certification sentence.
    pub fn certification(&self) -> &str {
        &self.certification
    }
    /// The body.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Every distinct subject of the certificate, sorted.
    pub fn subjects(&self) -> Vec<ResidentRef> {
        let mut v: Vec<ResidentRef> = self
            .blocks
            .iter()
            .flat_map(|b| b.subjects().iter().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The canonical encoding of the *printed content*: every field that is printed on the
    /// paper, in print order, as a deterministic length-prefixed binary encoding (see
    /// [`crate::qr`] for the digest over it). Subject refs are not printed and not
    /// part of it; the seal image enters by its SHA-256.
    ///
    /// Encoding: a domain tag `KV1-PRINTED-CONTENT\0`, then items as `tag byte, u32 BE
    /// length, bytes`. Strings are UTF-8 as given (no normalisation: what is printed is what
    /// is hashed).
    pub fn canonical_content(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"KV1-PRINTED-CONTENT\0");
        let mut item = |tag: u8, bytes: &[u8]| {
            out.push(tag);
            // Lengths are bounded by memory; a u32 overflow would need a >4 GiB string.
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        item(0x01, &[self.kind.number()]);
        item(0x02, self.municipality.code.as_str().as_bytes());
        item(0x03, self.municipality.name.as_bytes());
        item(0x04, self.municipality.mayor_title.as_bytes());
        item(0x05, self.municipality.mayor_name.as_bytes());
        item(0x06, self.serial.as_str().as_bytes());
        item(0x07, self.issuance_id.as_str().as_bytes());
        item(0x08, &self.issued_at.unix_seconds().to_be_bytes());
        item(0x09, self.certification.as_bytes());
        for block in &self.blocks {
            match block {
                Block::Section(s) => {
                    item(0x10, s.heading.as_deref().unwrap_or("").as_bytes());
                    item(0x11, &(s.rows.len() as u32).to_be_bytes());
                    for r in &s.rows {
                        item(0x12, r.label.as_bytes());
                        item(0x13, r.value.as_bytes());
                    }
                    item(0x14, &(s.events.len() as u32).to_be_bytes());
                    for e in &s.events {
                        item(0x15, e.title.as_bytes());
                        item(0x16, &(e.rows.len() as u32).to_be_bytes());
                        for r in &e.rows {
                            item(0x12, r.label.as_bytes());
                            item(0x13, r.value.as_bytes());
                        }
                    }
                }
                Block::Table(t) => {
                    item(0x20, t.caption.as_deref().unwrap_or("").as_bytes());
                    item(0x21, &(t.columns.len() as u32).to_be_bytes());
                    for c in &t.columns {
                        item(0x22, c.as_bytes());
                    }
                    item(0x23, &(t.rows.len() as u32).to_be_bytes());
                    for row in &t.rows {
                        for cell in row {
                            item(0x24, cell.as_bytes());
                        }
                    }
                }
                Block::Seal(s) => {
                    let d = ring::digest::digest(&ring::digest::SHA256, &s.png);
                    item(0x30, d.as_ref());
                }
                Block::Note { text, .. } => item(0x40, text.as_bytes()),
            }
        }
        out
    }

    /// SHA-256 of [`Certificate::canonical_content`]: the digest signed into the QR code.
    pub fn content_digest(&self) -> [u8; 32] {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.canonical_content());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}
