//! Lays a [`Certificate`] out on A4 pages and draws it with krilla, then signs it.
//!
//! ```text
//! let renderer = Renderer::new(DocumentSigner::from_pem(key_pem, chain_pem)?);
//! let doc = renderer.render(&certificate)?;   // doc.pdf: signed PDF bytes
//! ```
//!
//! # Page layout (modelled on municipal computer-printed forms)
//!
//! * Header: municipality name (left), 交付番号 (right), the title centred and letter-spaced.
//! * Body: a ruled table. Sections are label/value rows (with a grey heading bar), 戸籍
//!   members add 身分事項 rows (event title, then 【項目】値 lines), tables get a grey header
//!   row, a seal impression sits in a square frame. After the last block: 「以下余白」.
//! * Last page: the certification sentence, the date in the Japanese era, the mayor's title
//!   and name with the red official seal (公印, drawn procedurally from the mayor's title).
//! * Every page: the 地紋 background with the warning word 「複写」, the QR code with the
//!   signed payload, the issuance id and 「n/m」.
//!
//! Text never overflows its cell: values shrink (down to a minimum size) and then wrap, using
//! glyph advances of the embedded font ([`DocFont::fit`]). A value too long for one page is
//! split across pages row by row.
//!
//! # The 地紋 (background) — an honest approximation
//!
//! Real kiosk paper prints a fine guilloche whose hidden word (「複写」) is drawn with coarser
//! dots than the surrounding screen: a copier drops the fine dots and keeps the coarse ones,
//! so the word appears only on copies. A PDF cannot know the resolution of the device that
//! will reproduce it, so we cannot make the word appear *only* on copies. We draw a tiled
//! pale wave pattern with the word 「複写」 set in a slightly different pale tone, faint on
//! the original and clearly a copy marker once contrast is lost or raised. It is drawn as
//! outlines (no text), so text extraction never sees it.

use std::sync::Arc;

use kiosk_document::ResidentRef;
use kiosk_document::era::JapaneseDate;
use kiosk_document::markers::PageMarker;
use kiosk_document::model::Certificate;
use kiosk_document::qr;
use krilla::geom::Size;
use krilla::metadata::{DateTime, Metadata};
use krilla::page::PageSettings;
use krilla::paint::Pattern;
use krilla::{Document, SerializeSettings};

use crate::document::font::{DocFont, FontError};
use crate::document::sign::{DocumentSigner, SignError};

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const ML: f32 = 48.0;
const MR: f32 = 48.0;
const BODY_W: f32 = PAGE_W - ML - MR;
const BODY_TOP: f32 = 122.0;
const BODY_BOTTOM: f32 = PAGE_H - 112.0;
const FOOTER_H: f32 = 150.0;
const LABEL_W: f32 = 96.0;
const QR_SIZE: f32 = 78.0;

type Rgb = (u8, u8, u8);
const BLACK: Rgb = (0, 0, 0);
const RULE: Rgb = (60, 60, 60);
const SHADE: Rgb = (232, 236, 234);
const SEAL_RED: Rgb = (200, 30, 30);

mod draw;
mod layout;

use draw::{
    draw_background, draw_certification, draw_header, draw_ops, draw_page_footer, qr_image,
    seal_images, text,
};
use layout::layout;

/// Rendering errors.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A character has no glyph in the embedded font (code point only, never the text).
    #[error("no glyph for U+{0:04X}")]
    MissingGlyph(u32),
    /// The embedded font cannot be parsed.
    #[error("embedded font cannot be parsed")]
    Font,
    /// A seal impression is not a valid PNG.
    #[error("seal image is not a valid PNG")]
    SealImage,
    /// The signer's certificate names another municipality than the certificate's.
    #[error("signing key belongs to another municipality")]
    WrongMunicipality,
    /// The issue date cannot be written in the Japanese era.
    #[error("issue date out of range")]
    Date,
    /// krilla failed to serialise the document.
    #[error("pdf serialisation failed")]
    Pdf,
    /// QR encoding failed (payload too long).
    #[error("qr encoding failed")]
    Qr,
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl From<FontError> for RenderError {
    fn from(e: FontError) -> Self {
        match e {
            FontError::MissingGlyph(c) => RenderError::MissingGlyph(c),
            FontError::Parse => RenderError::Font,
        }
    }
}

/// Renderer options.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    /// Deflate content streams. Off by default: it triples render time for ~2x file size
    /// (see docs/performance.md §4); kiosk PDFs travel over a LAN and are printed at once.
    pub compress: bool,
}

/// A rendered, signed certificate.
#[derive(Debug, Clone)]
pub struct RenderedDocument {
    /// The signed PDF.
    pub pdf: Vec<u8>,
    /// Per page (in order), the subjects written into its marker.
    pub pages: Vec<Vec<ResidentRef>>,
    /// SHA-256 of the canonical printed content, as signed into the QR code.
    pub content_digest: [u8; 32],
    /// The QR payload text printed on every page.
    pub qr_payload: String,
    /// SHA-256 of `pdf`.
    pub pdf_sha256: [u8; 32],
}

/// Renders and signs certificates with one municipality's document-signing key. Cheap to
/// share (`&self`), thread-safe.
#[derive(Debug)]
pub struct Renderer {
    signer: Arc<DocumentSigner>,
    options: RenderOptions,
}

impl Renderer {
    /// A renderer with default options. Parses the embedded font on first use.
    pub fn new(signer: DocumentSigner) -> Self {
        Renderer {
            signer: Arc::new(signer),
            options: RenderOptions::default(),
        }
    }

    /// A renderer with explicit options.
    pub fn with_options(signer: DocumentSigner, options: RenderOptions) -> Self {
        Renderer {
            signer: Arc::new(signer),
            options,
        }
    }

    /// The signer (e.g. to publish its certificate).
    pub fn signer(&self) -> &DocumentSigner {
        &self.signer
    }

    /// Renders, signs (QR payload and PAdES signature) and marks a certificate.
    pub fn render(&self, cert: &Certificate) -> Result<RenderedDocument, RenderError> {
        if let Some(code) = self.signer.municipality()
            && *code != cert.municipality().code
        {
            return Err(RenderError::WrongMunicipality);
        }
        let fields = qr::PayloadFields::for_certificate(cert, self.signer.key_id());
        let payload = self.signer.sign_qr_payload(&fields)?;

        let (unsigned, pages) = self.render_unsigned(cert, &payload)?;
        let n = pages.len() as u32;
        let markers: Vec<PageMarker> = pages
            .iter()
            .enumerate()
            .map(|(i, subjects)| PageMarker {
                page: i as u32 + 1,
                pages: n,
                issuance_id: cert.issuance_id().clone(),
                serial: cert.serial().clone(),
                subjects: subjects.clone(),
                qr_payload: payload.clone(),
            })
            .collect();
        let pdf = self
            .signer
            .sign_pdf(&unsigned, &markers, cert.issued_at())?;
        let mut pdf_sha256 = [0u8; 32];
        pdf_sha256.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &pdf).as_ref());
        Ok(RenderedDocument {
            pdf,
            pages,
            content_digest: fields.content_digest,
            qr_payload: payload,
            pdf_sha256,
        })
    }

    /// Lays out and draws the certificate with krilla without signing it; returns the PDF
    /// and the subjects of each page. Public for benchmarks and tests.
    pub fn render_unsigned(
        &self,
        cert: &Certificate,
        qr_payload: &str,
    ) -> Result<(Vec<u8>, Vec<Vec<ResidentRef>>), RenderError> {
        let font = DocFont::get()?;
        let layout = layout(font, cert)?;
        let date = {
            let jst = cert.issued_at().jst();
            JapaneseDate::from_civil(&jst).map_err(|_| RenderError::Date)?
        };
        let qr_image = qr_image(qr_payload)?;
        let seal_images = seal_images(cert)?;

        let settings = SerializeSettings {
            compress_content_streams: self.options.compress,
            enable_tagging: false,
            ..SerializeSettings::default()
        };
        let mut doc = Document::new_with(settings);
        let jst = cert.issued_at().jst();
        doc.set_metadata(
            Metadata::new()
                .title(format!("{} {}", cert.kind().title(), cert.serial()))
                .language("ja".to_owned())
                .creator(cert.municipality().name.clone())
                .producer("kiosk issuer".to_owned())
                .creation_date(
                    DateTime::new(jst.year as u16)
                        .month(jst.month)
                        .day(jst.day)
                        .hour(jst.hour)
                        .minute(jst.minute)
                        .second(jst.second)
                        .utc_offset_hour(9),
                ),
        );
        let page_count = layout.pages.len();
        let mut background: Option<Pattern> = None;
        let mut subjects = Vec::with_capacity(page_count);
        for (pi, page) in layout.pages.iter().enumerate() {
            let size = Size::from_wh(PAGE_W, PAGE_H).ok_or(RenderError::Pdf)?;
            let mut p = doc.start_page_with(PageSettings::new(size));
            let mut s = p.surface();
            draw_background(&mut s, font, &mut background)?;
            draw_header(&mut s, font, cert)?;
            for (unit, y) in &page.units {
                draw_ops(&mut s, font, &unit.ops, ML, *y, &seal_images)?;
            }
            let last = pi + 1 == page_count;
            if last {
                draw_certification(&mut s, font, cert, &date, page.end_y)?;
            } else {
                let t = "（次頁に続く）";
                let w = font.width(t, 9.0)?;
                text(
                    &mut s,
                    font,
                    PAGE_W - MR - w,
                    page.end_y + 14.0,
                    9.0,
                    t,
                    BLACK,
                    0.0,
                )?;
            }
            draw_page_footer(&mut s, font, cert, &qr_image, pi + 1, page_count)?;
            s.finish();
            p.finish();
            let mut subj: Vec<ResidentRef> = page
                .units
                .iter()
                .flat_map(|(u, _)| u.subjects.iter().cloned())
                .collect();
            subj.sort();
            subj.dedup();
            subjects.push(subj);
        }
        let pdf = doc.finish().map_err(|_| RenderError::Pdf)?;
        Ok((pdf, subjects))
    }
}
