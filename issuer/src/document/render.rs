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

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect, Size, Transform};
use krilla::image::Image;
use krilla::metadata::{DateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, FillRule, Pattern, Stroke};
use krilla::surface::Surface;
use krilla::{Document, SerializeSettings};

use crate::document::era::JapaneseDate;
use crate::document::font::{DocFont, FontError};
use crate::document::markers::PageMarker;
use crate::document::model::{Block, Certificate, Section, SubjectRef, Table};
use crate::document::qr;
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
    pub pages: Vec<Vec<SubjectRef>>,
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
        let body = fields.body();
        let sig = self.signer.sign_fixed(&qr::signed_message(&body))?;
        let payload = qr::assemble(&body, &sig);

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
    ) -> Result<(Vec<u8>, Vec<Vec<SubjectRef>>), RenderError> {
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
            let mut subj: Vec<SubjectRef> = page
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

// ---------------------------------------------------------------------------------------
// Layout

type Rgb = (u8, u8, u8);
const BLACK: Rgb = (0, 0, 0);
const RULE: Rgb = (60, 60, 60);
const SHADE: Rgb = (232, 236, 234);
const SEAL_RED: Rgb = (200, 30, 30);

#[derive(Debug, Clone)]
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        fill: Option<Rgb>,
        stroke: bool,
    },
    SealImage {
        x: f32,
        y: f32,
        size: f32,
        index: usize,
    },
}

#[derive(Debug, Clone, Default)]
struct Unit {
    h: f32,
    ops: Vec<Op>,
    subjects: Vec<SubjectRef>,
}

impl Unit {
    fn stack(mut self, other: Unit) -> Unit {
        let dy = self.h;
        for op in other.ops {
            self.ops.push(match op {
                Op::Text { x, y, size, text } => Op::Text {
                    x,
                    y: y + dy,
                    size,
                    text,
                },
                Op::Rect {
                    x,
                    y,
                    w,
                    h,
                    fill,
                    stroke,
                } => Op::Rect {
                    x,
                    y: y + dy,
                    w,
                    h,
                    fill,
                    stroke,
                },
                Op::SealImage { x, y, size, index } => Op::SealImage {
                    x,
                    y: y + dy,
                    size,
                    index,
                },
            });
        }
        self.h += other.h;
        self.subjects.extend(other.subjects);
        self
    }
}

struct PageLayout {
    units: Vec<(Unit, f32)>,
    end_y: f32,
}

struct Layout {
    pages: Vec<PageLayout>,
}

const VALUE_SIZE: f32 = 10.5;
const VALUE_MIN: f32 = 7.5;
const LABEL_SIZE: f32 = 9.0;
const PAD: f32 = 3.0;

fn line_h(size: f32) -> f32 {
    size * 1.35
}

/// Text lines placed in a cell starting at (x, top), vertically centred in `h`.
fn cell_text(ops: &mut Vec<Op>, x: f32, top: f32, h: f32, size: f32, lines: &[String]) {
    let lh = line_h(size);
    let block = lh * lines.len() as f32;
    let mut y = top + (h - block) / 2.0 + size * 0.95;
    for l in lines {
        ops.push(Op::Text {
            x,
            y,
            size,
            text: l.clone(),
        });
        y += lh;
    }
}

fn frame(ops: &mut Vec<Op>, x: f32, y: f32, w: f32, h: f32, fill: Option<Rgb>) {
    ops.push(Op::Rect {
        x,
        y,
        w,
        h,
        fill,
        stroke: true,
    });
}

/// Label/value rows; a value taller than `max_h` is split into several units.
fn row_units(
    font: &DocFont,
    label: &str,
    value: &str,
    subjects: &[SubjectRef],
    max_h: f32,
) -> Result<Vec<Unit>, FontError> {
    let (lsize, llines) = font.fit(label, LABEL_SIZE, 7.0, LABEL_W - 2.0 * PAD, 2)?;
    let vw = BODY_W - LABEL_W - 2.0 * PAD;
    let (vsize, vlines) = font.fit(value, VALUE_SIZE, VALUE_MIN, vw, 2)?;
    let per_unit = (((max_h - 2.0 * PAD) / line_h(vsize)).floor() as usize).max(1);
    let mut out = Vec::new();
    for (i, chunk) in vlines.chunks(per_unit).enumerate() {
        let lab: Vec<String> = if i == 0 {
            llines.clone()
        } else {
            vec!["（続き）".to_owned()]
        };
        let h = (line_h(lsize) * lab.len() as f32).max(line_h(vsize) * chunk.len() as f32)
            + 2.0 * PAD
            + 2.0;
        let h = h.max(17.0);
        let mut ops = Vec::new();
        frame(&mut ops, 0.0, 0.0, LABEL_W, h, Some(SHADE));
        frame(&mut ops, LABEL_W, 0.0, BODY_W - LABEL_W, h, None);
        cell_text(&mut ops, PAD, 0.0, h, lsize, &lab);
        cell_text(&mut ops, LABEL_W + PAD, 0.0, h, vsize, chunk);
        out.push(Unit {
            h,
            ops,
            subjects: subjects.to_vec(),
        });
    }
    if out.is_empty() {
        // An empty value still prints its row.
        let h = 20.0;
        let mut ops = Vec::new();
        frame(&mut ops, 0.0, 0.0, LABEL_W, h, Some(SHADE));
        frame(&mut ops, LABEL_W, 0.0, BODY_W - LABEL_W, h, None);
        cell_text(&mut ops, PAD, 0.0, h, lsize, &llines);
        out.push(Unit {
            h,
            ops,
            subjects: subjects.to_vec(),
        });
    }
    Ok(out)
}

fn heading_unit(font: &DocFont, heading: &str, subjects: &[SubjectRef]) -> Result<Unit, FontError> {
    let (size, lines) = font.fit(heading, 10.0, 7.5, BODY_W - 2.0 * PAD, 1)?;
    let h = line_h(size) * lines.len() as f32 + 2.0 * PAD;
    let mut ops = Vec::new();
    frame(&mut ops, 0.0, 0.0, BODY_W, h, Some((214, 222, 218)));
    cell_text(&mut ops, PAD, 0.0, h, size, &lines);
    Ok(Unit {
        h,
        ops,
        subjects: subjects.to_vec(),
    })
}

fn section_units(font: &DocFont, s: &Section, max_h: f32) -> Result<Vec<Unit>, FontError> {
    let mut units = Vec::new();
    for r in &s.rows {
        units.extend(row_units(font, &r.label, &r.value, &s.subjects, max_h)?);
    }
    const EV_TITLE_W: f32 = 56.0;
    for (i, e) in s.events.iter().enumerate() {
        let x3 = LABEL_W + EV_TITLE_W;
        let w3 = BODY_W - x3 - 2.0 * PAD;
        let mut lines = Vec::new();
        let mut size = VALUE_SIZE - 0.5;
        for r in &e.rows {
            let t = format!("【{}】{}", r.label, r.value);
            let (s2, l) = font.fit(&t, VALUE_SIZE - 0.5, VALUE_MIN, w3, 1)?;
            size = size.min(s2);
            lines.extend(l);
        }
        if lines.is_empty() {
            lines.push(String::new());
        }
        let h = (line_h(size) * lines.len() as f32 + 2.0 * PAD + 2.0).max(20.0);
        let mut ops = Vec::new();
        frame(&mut ops, 0.0, 0.0, LABEL_W, h, Some(SHADE));
        frame(&mut ops, LABEL_W, 0.0, EV_TITLE_W, h, None);
        frame(&mut ops, x3, 0.0, BODY_W - x3, h, None);
        if i == 0 {
            cell_text(&mut ops, PAD, 0.0, h, LABEL_SIZE, &["身分事項".to_owned()]);
        }
        let (ts, tl) = font.fit(&e.title, VALUE_SIZE - 0.5, 7.0, EV_TITLE_W - 2.0 * PAD, 1)?;
        cell_text(&mut ops, LABEL_W + PAD, 0.0, h, ts, &tl);
        cell_text(&mut ops, x3 + PAD, 0.0, h, size, &lines);
        units.push(Unit {
            h,
            ops,
            subjects: s.subjects.clone(),
        });
    }
    if units.is_empty() {
        units.push(Unit {
            h: 0.0,
            ops: Vec::new(),
            subjects: s.subjects.clone(),
        });
    }
    if let Some(h) = &s.heading {
        let head = heading_unit(font, h, &s.subjects)?;
        let first = units.remove(0);
        units.insert(0, head.stack(first));
    }
    Ok(units)
}

/// Column widths proportional to each column's natural (one-line) width, with every column
/// given at least its natural width or an equal share, whichever is smaller.
fn column_widths(font: &DocFont, t: &Table) -> Result<Vec<f32>, FontError> {
    let n = t.columns.len().max(1);
    let mut natural = vec![0.0f32; n];
    for (i, c) in t.columns.iter().enumerate() {
        natural[i] = natural[i].max(font.width(c, LABEL_SIZE)?);
    }
    for r in &t.rows {
        for (i, c) in r.iter().enumerate().take(n) {
            let w = c
                .split('\n')
                .map(|l| font.width(l, VALUE_SIZE - 0.5))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .fold(0.0f32, f32::max);
            natural[i] = natural[i].max(w);
        }
    }
    let natural: Vec<f32> = natural.iter().map(|w| w + 2.0 * PAD + 2.0).collect();
    let total: f32 = natural.iter().sum();
    if total <= BODY_W {
        // Share the spare width in proportion.
        return Ok(natural.iter().map(|w| w * BODY_W / total).collect());
    }
    let share = BODY_W / n as f32;
    let floor: Vec<f32> = natural.iter().map(|w| w.min(share)).collect();
    let spare = BODY_W - floor.iter().sum::<f32>();
    let want: Vec<f32> = natural.iter().zip(&floor).map(|(n, f)| n - f).collect();
    let want_total: f32 = want.iter().sum::<f32>().max(0.001);
    Ok(floor
        .iter()
        .zip(&want)
        .map(|(f, w)| f + spare * w / want_total)
        .collect())
}

/// Amounts and counts align right, as on tax forms.
fn is_amount(cell: &str) -> bool {
    let body = cell.trim_end_matches('円').trim_end_matches('人');
    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
}

fn table_units(font: &DocFont, t: &Table) -> Result<Vec<Unit>, FontError> {
    let widths = column_widths(font, t)?;
    let row =
        |cells: &[String], fill: Option<Rgb>, size: f32, center: bool| -> Result<Unit, FontError> {
            let mut fitted = Vec::new();
            for (c, cw) in cells.iter().zip(&widths) {
                fitted.push(font.fit(c, size, VALUE_MIN, cw - 2.0 * PAD, 2)?);
            }
            let h = fitted
                .iter()
                .map(|(s, l)| line_h(*s) * l.len() as f32)
                .fold(0.0f32, f32::max)
                + 2.0 * PAD
                + 2.0;
            let h = h.max(18.0);
            let mut ops = Vec::new();
            let mut x = 0.0;
            for (i, (s, l)) in fitted.iter().enumerate() {
                let cw = widths[i];
                frame(&mut ops, x, 0.0, cw, h, fill);
                let lines_w = l
                    .iter()
                    .map(|l| font.width(l, *s).unwrap_or(0.0))
                    .fold(0.0f32, f32::max);
                if center {
                    cell_text(&mut ops, x + (cw - lines_w) / 2.0, 0.0, h, *s, l);
                } else if is_amount(&cells[i]) {
                    cell_text(&mut ops, x + cw - PAD - 2.0 - lines_w, 0.0, h, *s, l);
                } else {
                    cell_text(&mut ops, x + PAD, 0.0, h, *s, l);
                }
                x += cw;
            }
            Ok(Unit {
                h,
                ops,
                subjects: t.subjects.clone(),
            })
        };
    let mut units = Vec::new();
    let mut head = row(&t.columns, Some(SHADE), LABEL_SIZE, true)?;
    if let Some(c) = &t.caption {
        let (size, lines) = font.fit(c, 10.0, 7.5, BODY_W, 1)?;
        let h = line_h(size) * lines.len() as f32 + 6.0;
        let mut ops = Vec::new();
        cell_text(&mut ops, 0.0, 0.0, h, size, &lines);
        head = Unit {
            h,
            ops,
            subjects: t.subjects.clone(),
        }
        .stack(head);
    }
    let mut rows = t.rows.iter();
    match rows.next() {
        Some(first) => units.push(head.stack(row(first, None, VALUE_SIZE - 0.5, false)?)),
        None => units.push(head),
    }
    for r in rows {
        units.push(row(r, None, VALUE_SIZE - 0.5, false)?);
    }
    Ok(units)
}

fn layout(font: &DocFont, cert: &Certificate) -> Result<Layout, RenderError> {
    // Check every character up front so a 外字 fails before any drawing.
    let m = cert.municipality();
    for t in [&m.name, &m.mayor_title, &m.mayor_name] {
        font.check(t)?;
    }
    font.check(cert.certification())?;
    let capacity = BODY_BOTTOM - BODY_TOP;
    // One group of units per block: a block that fits on a page is never split (a person's
    // record stays on one page, as on 個票式 forms); a longer one flows row by row.
    let mut groups: Vec<Vec<Unit>> = Vec::new();
    let mut seal_index = 0;
    for (bi, block) in cert.blocks().iter().enumerate() {
        let gap = if bi > 0 { 6.0 } else { 0.0 };
        let mut bunits = match block {
            Block::Section(s) => section_units(font, s, capacity * 0.8)?,
            Block::Table(t) => table_units(font, t)?,
            Block::Seal(s) => {
                let h = 132.0;
                let mut ops = Vec::new();
                frame(&mut ops, 0.0, 0.0, LABEL_W, h, Some(SHADE));
                frame(&mut ops, LABEL_W, 0.0, BODY_W - LABEL_W, h, None);
                cell_text(&mut ops, PAD, 0.0, h, LABEL_SIZE, &["印影".to_owned()]);
                let size = 113.0;
                frame(&mut ops, LABEL_W + 24.0, (h - size) / 2.0, size, size, None);
                ops.push(Op::SealImage {
                    x: LABEL_W + 24.0,
                    y: (h - size) / 2.0,
                    size,
                    index: seal_index,
                });
                seal_index += 1;
                vec![Unit {
                    h,
                    ops,
                    subjects: s.subjects.clone(),
                }]
            }
            Block::Note { text, subjects } => {
                row_units(font, "備考", text, subjects, capacity * 0.8)?
            }
        };
        if gap > 0.0
            && let Some(first) = bunits.first_mut()
        {
            let spacer = Unit {
                h: gap,
                ops: Vec::new(),
                subjects: Vec::new(),
            };
            *first = spacer.stack(std::mem::take(first));
        }
        groups.push(bunits);
    }
    // 以下余白 closes the body.
    let mut tail = Unit {
        h: 18.0,
        ..Unit::default()
    };
    let w = font.width("以下余白", 9.0)?;
    tail.ops.push(Op::Text {
        x: BODY_W - w,
        y: 13.0,
        size: 9.0,
        text: "以下余白".to_owned(),
    });

    // 以下余白 and the certification (FOOTER_H) belong with the last block: they are placed
    // together, so the certification never stands on a page of its own.
    match groups.last_mut() {
        Some(g) => g.push(tail),
        None => groups.push(vec![tail]),
    }
    let last_group = groups.len() - 1;
    let mut pages: Vec<Vec<Unit>> = vec![Vec::new()];
    let mut used = 0.0;
    for (gi, group) in groups.into_iter().enumerate() {
        let extra = if gi == last_group { FOOTER_H } else { 0.0 };
        let group_h: f32 = group.iter().map(|u| u.h).sum::<f32>() + extra;
        // Keep a block together when it fits on a page.
        if used + group_h > capacity
            && group_h <= capacity
            && pages.last().is_some_and(|p| !p.is_empty())
        {
            pages.push(Vec::new());
            used = 0.0;
        }
        let n = group.len();
        for (ui, u) in group.into_iter().enumerate() {
            let reserve = if ui + 1 == n { extra } else { 0.0 };
            if used + u.h + reserve > capacity && pages.last().is_some_and(|p| !p.is_empty()) {
                pages.push(Vec::new());
                used = 0.0;
            }
            used += u.h;
            if let Some(p) = pages.last_mut() {
                p.push(u);
            }
        }
    }
    // A long last block can leave 以下余白 alone on the last page: take the unit before it
    // along, so the certification page always shows part of the record it certifies.
    let n = pages.len();
    if n >= 2
        && pages[n - 1].iter().all(|u| u.subjects.is_empty())
        && pages[n - 2].len() > 1
        && let Some(u) = pages[n - 2].pop()
    {
        pages[n - 1].insert(0, u);
    }
    Ok(Layout {
        pages: pages
            .into_iter()
            .map(|units| {
                let mut y = BODY_TOP;
                let placed: Vec<(Unit, f32)> = units
                    .into_iter()
                    .map(|u| {
                        let at = y;
                        y += u.h;
                        (u, at)
                    })
                    .collect();
                PageLayout {
                    units: placed,
                    end_y: y,
                }
            })
            .collect(),
    })
}

// ---------------------------------------------------------------------------------------
// Drawing

fn fill_of(c: Rgb, opacity: f32) -> Fill {
    Fill {
        paint: rgb::Color::new(c.0, c.1, c.2).into(),
        opacity: NormalizedF32::new(opacity).unwrap_or(NormalizedF32::ONE),
        rule: FillRule::NonZero,
    }
}

#[allow(clippy::too_many_arguments)]
fn text(
    s: &mut Surface<'_>,
    font: &DocFont,
    x: f32,
    y: f32,
    size: f32,
    t: &str,
    color: Rgb,
    tracking: f32,
) -> Result<(), FontError> {
    if t.is_empty() {
        return Ok(());
    }
    let glyphs = font.glyphs(t, tracking)?;
    s.set_fill(Some(fill_of(color, 1.0)));
    s.set_stroke(None);
    s.draw_glyphs(Point::from_xy(x, y), &glyphs, font.krilla(), t, size, false);
    Ok(())
}

fn outlined(
    s: &mut Surface<'_>,
    font: &DocFont,
    x: f32,
    y: f32,
    size: f32,
    t: &str,
    fill: Fill,
) -> Result<(), FontError> {
    let glyphs = font.glyphs(t, 0.0)?;
    s.set_fill(Some(fill));
    s.set_stroke(None);
    s.draw_glyphs(Point::from_xy(x, y), &glyphs, font.krilla(), t, size, true);
    Ok(())
}

fn draw_ops(
    s: &mut Surface<'_>,
    font: &DocFont,
    ops: &[Op],
    ox: f32,
    oy: f32,
    seals: &[Image],
) -> Result<(), RenderError> {
    // Fills first, then strokes, then text, so rules are never hidden by a later fill.
    for op in ops {
        if let Op::Rect {
            x,
            y,
            w,
            h,
            fill: Some(c),
            ..
        } = op
            && let Some(r) = Rect::from_xywh(ox + x, oy + y, *w, *h)
        {
            let mut pb = PathBuilder::new();
            pb.push_rect(r);
            if let Some(p) = pb.finish() {
                s.set_stroke(None);
                s.set_fill(Some(fill_of(*c, 0.85)));
                s.draw_path(&p);
            }
        }
    }
    let mut pb = PathBuilder::new();
    let mut any = false;
    for op in ops {
        if let Op::Rect {
            x,
            y,
            w,
            h,
            stroke: true,
            ..
        } = op
            && let Some(r) = Rect::from_xywh(ox + x, oy + y, *w, *h)
        {
            pb.push_rect(r);
            any = true;
        }
    }
    if any && let Some(p) = pb.finish() {
        s.set_fill(None);
        s.set_stroke(Some(Stroke {
            paint: rgb::Color::new(RULE.0, RULE.1, RULE.2).into(),
            width: 0.6,
            ..Stroke::default()
        }));
        s.draw_path(&p);
        s.set_stroke(None);
    }
    for op in ops {
        match op {
            Op::Text {
                x,
                y,
                size,
                text: t,
            } => text(s, font, ox + x, oy + y, *size, t, BLACK, 0.0)?,
            Op::SealImage { x, y, size, index } => {
                if let Some(img) = seals.get(*index) {
                    let (iw, ih) = img.size();
                    let scale = (size - 8.0) / (iw.max(ih).max(1) as f32);
                    let (w, h) = (iw as f32 * scale, ih as f32 * scale);
                    if let Some(sz) = Size::from_wh(w, h) {
                        s.push_transform(&Transform::from_translate(
                            ox + x + (size - w) / 2.0,
                            oy + y + (size - h) / 2.0,
                        ));
                        s.draw_image(img.clone(), sz);
                        s.pop();
                    }
                }
            }
            Op::Rect { .. } => {}
        }
    }
    Ok(())
}

fn draw_header(s: &mut Surface<'_>, font: &DocFont, cert: &Certificate) -> Result<(), RenderError> {
    let m = cert.municipality();
    let (ns, nl) = font.fit(&m.name, 10.5, 7.0, 240.0, 1)?;
    text(s, font, ML, 52.0, ns, &nl.concat(), BLACK, 0.0)?;
    let serial = format!("交付番号　{}", cert.serial());
    let w = font.width(&serial, 9.5)?;
    text(s, font, PAGE_W - MR - w, 52.0, 9.5, &serial, BLACK, 0.0)?;
    // Title, letter-spaced like printed forms.
    let title = cert.kind().title();
    let size = 20.0;
    let tracking = if title.chars().count() <= 8 {
        0.5
    } else {
        0.25
    };
    let n = title.chars().count() as f32;
    let w = font.width(title, size)? + tracking * size * (n - 1.0);
    text(
        s,
        font,
        (PAGE_W - w) / 2.0,
        96.0,
        size,
        title,
        BLACK,
        tracking,
    )?;
    Ok(())
}

fn draw_certification(
    s: &mut Surface<'_>,
    font: &DocFont,
    cert: &Certificate,
    date: &JapaneseDate,
    end_y: f32,
) -> Result<(), RenderError> {
    let y0 = end_y + 26.0;
    let lines = font.wrap(cert.certification(), 11.0, BODY_W - 20.0)?;
    let mut y = y0;
    for l in &lines {
        text(s, font, ML + 14.0, y, 11.0, l, BLACK, 0.0)?;
        y += line_h(11.0);
    }
    y += 8.0;
    text(s, font, ML + 14.0, y, 11.0, &date.format(), BLACK, 0.0)?;
    y += 34.0;
    let m = cert.municipality();
    let mayor = format!("{}　{}", m.mayor_title, m.mayor_name);
    let right = PAGE_W - MR - 40.0;
    let (ms, ml) = font.fit(&mayor, 13.0, 8.0, right - ML - 120.0, 1)?;
    let line = ml.concat();
    let w = font.width(&line, ms)?;
    text(s, font, right - w, y, ms, &line, BLACK, 0.0)?;
    draw_official_seal(s, font, &m.mayor_title, right - 6.0, y - 40.0, 58.0)?;
    Ok(())
}

/// The 公印: a red square seal with the mayor's title + 「之印」 in columns, read top to
/// bottom and right to left, drawn as outlines so it is an image, not text.
fn draw_official_seal(
    s: &mut Surface<'_>,
    font: &DocFont,
    mayor_title: &str,
    x: f32,
    y: f32,
    size: f32,
) -> Result<(), RenderError> {
    let chars: Vec<char> = format!("{mayor_title}之印").chars().collect();
    let n = chars.len().max(1);
    let cols = (n as f32).sqrt().ceil() as usize;
    let red = rgb::Color::new(SEAL_RED.0, SEAL_RED.1, SEAL_RED.2);
    let opacity = NormalizedF32::new(0.88).unwrap_or(NormalizedF32::ONE);
    let outer = Rect::from_xywh(x, y, size, size);
    let inner = Rect::from_xywh(x + 3.2, y + 3.2, size - 6.4, size - 6.4);
    for (r, w) in [(outer, 2.2), (inner, 0.7)] {
        if let Some(r) = r {
            let mut pb = PathBuilder::new();
            pb.push_rect(r);
            if let Some(p) = pb.finish() {
                s.set_fill(None);
                s.set_stroke(Some(Stroke {
                    paint: red.into(),
                    width: w,
                    opacity,
                    ..Stroke::default()
                }));
                s.draw_path(&p);
            }
        }
    }
    s.set_stroke(None);
    let area = size - 10.0;
    // Columns right to left; the characters are spread as evenly as possible over the
    // columns and each column's glyphs are stretched to fill its height, as seal carvers do.
    let base = n / cols;
    let extra = n % cols;
    let cell_w = area / cols as f32;
    let fs = cell_w * 0.92;
    let mut idx = 0;
    for col in 0..cols {
        let count = base + usize::from(col < extra);
        if count == 0 {
            continue;
        }
        let cell_h = area / count as f32;
        let sy = cell_h / cell_w;
        for row in 0..count {
            let Some(c) = chars.get(idx) else { break };
            idx += 1;
            let cx = x + 5.0 + area - cell_w * (col as f32 + 1.0) + (cell_w - fs) / 2.0;
            let cy = y + 5.0 + cell_h * row as f32 + (cell_h - fs * sy) / 2.0 + fs * sy * 0.88;
            s.push_transform(&Transform::from_row(1.0, 0.0, 0.0, sy, cx, cy));
            outlined(
                s,
                font,
                0.0,
                0.0,
                fs,
                &c.to_string(),
                Fill {
                    paint: red.into(),
                    opacity,
                    rule: FillRule::NonZero,
                },
            )?;
            s.pop();
        }
    }
    Ok(())
}

fn draw_page_footer(
    s: &mut Surface<'_>,
    font: &DocFont,
    cert: &Certificate,
    qr: &QrPath,
    page: usize,
    pages: usize,
) -> Result<(), RenderError> {
    let top = PAGE_H - 100.0;
    // Rule above the footer band.
    if let Some(r) = Rect::from_xywh(ML, top - 4.0, BODY_W, 0.5) {
        let mut pb = PathBuilder::new();
        pb.push_rect(r);
        if let Some(p) = pb.finish() {
            s.set_fill(Some(fill_of(RULE, 1.0)));
            s.draw_path(&p);
        }
    }
    // White quiet zone behind the QR so the background never touches the modules.
    if let Some(r) = Rect::from_xywh(ML, top + 2.0, QR_SIZE, QR_SIZE) {
        let mut pb = PathBuilder::new();
        pb.push_rect(r);
        if let Some(p) = pb.finish() {
            s.set_fill(Some(fill_of((255, 255, 255), 1.0)));
            s.draw_path(&p);
        }
    }
    draw_qr(s, qr, ML, top + 2.0, QR_SIZE);
    let x = ML + QR_SIZE + 10.0;
    let mut y = top + 16.0;
    for line in [
        "左のQRコードには、交付番号・発行日時・記載内容の要約値と発行自治体の電子署名が記録されています。",
        "この証明書の地紋には、複写を示す「複写」の文字が組み込まれています。",
    ] {
        let (fs, l) = font.fit(line, 7.5, 6.0, PAGE_W - MR - x, 1)?;
        text(s, font, x, y, fs, &l.concat(), (50, 50, 50), 0.0)?;
        y += 12.0;
    }
    let id = format!("発行管理番号　{}", cert.issuance_id());
    let (fs, l) = font.fit(&id, 7.5, 6.0, PAGE_W - MR - x - 60.0, 1)?;
    text(s, font, x, y + 8.0, fs, &l.concat(), (50, 50, 50), 0.0)?;
    let pn = format!("{page}/{pages}");
    let w = font.width(&pn, 10.0)?;
    text(
        s,
        font,
        PAGE_W - MR - w,
        top + QR_SIZE - 4.0,
        10.0,
        &pn,
        BLACK,
        0.0,
    )?;
    Ok(())
}

/// The 地紋: a tiled pale guilloche of crossing waves with the word 「複写」, as one pattern
/// filling the page (built once per document, reused by every page).
fn draw_background(
    s: &mut Surface<'_>,
    font: &DocFont,
    cache: &mut Option<Pattern>,
) -> Result<(), RenderError> {
    const TW: f32 = 132.0;
    const TH: f32 = 88.0;
    if cache.is_none() {
        let mut sb = s.stream_builder();
        let mut ts = sb.surface();
        let wave = rgb::Color::new(178, 214, 200);
        let mut pb = PathBuilder::new();
        // Crossing sine-like waves made of cubic segments, periodic in the tile.
        for k in 0..8 {
            let y = k as f32 * TH / 8.0;
            let a = 3.2;
            for (phase, sign) in [(0.0f32, 1.0f32), (TW / 4.0, -1.0)] {
                let _ = phase;
                pb.move_to(0.0, y);
                let seg = TW / 4.0;
                for i in 0..4 {
                    let x0 = seg * i as f32;
                    let d = if i % 2 == 0 { a } else { -a } * sign;
                    pb.cubic_to(
                        x0 + seg * 0.36,
                        y + d * 1.3,
                        x0 + seg * 0.64,
                        y + d * 1.3,
                        x0 + seg,
                        y,
                    );
                }
            }
        }
        if let Some(p) = pb.finish() {
            ts.set_fill(None);
            ts.set_stroke(Some(Stroke {
                paint: wave.into(),
                width: 0.35,
                ..Stroke::default()
            }));
            ts.draw_path(&p);
            ts.set_stroke(None);
        }
        // The warning word, rotated, in a slightly stronger pale tone.
        ts.push_transform(&Transform::from_row(0.94, -0.34, 0.34, 0.94, 30.0, 62.0));
        outlined(
            &mut ts,
            font,
            0.0,
            0.0,
            30.0,
            "複写",
            Fill {
                paint: rgb::Color::new(216, 233, 226).into(),
                opacity: NormalizedF32::ONE,
                rule: FillRule::NonZero,
            },
        )?;
        ts.pop();
        ts.finish();
        let stream = sb.finish();
        *cache = Some(Pattern {
            stream,
            transform: Transform::identity(),
            width: TW,
            height: TH,
        });
    }
    if let (Some(pattern), Some(r)) = (cache.as_ref(), Rect::from_xywh(0.0, 0.0, PAGE_W, PAGE_H)) {
        let mut pb = PathBuilder::new();
        pb.push_rect(r);
        if let Some(p) = pb.finish() {
            s.set_stroke(None);
            s.set_fill(Some(Fill {
                paint: pattern.clone().into(),
                opacity: NormalizedF32::ONE,
                rule: FillRule::NonZero,
            }));
            s.draw_path(&p);
        }
    }
    Ok(())
}

/// The QR modules as a vector path (one rectangle per horizontal run of dark modules):
/// crisp at any print or raster resolution, where a tiny upscaled image would be smoothed.
#[derive(Debug)]
struct QrPath {
    runs: Vec<(u16, u16, u16)>,
    side: usize,
}

fn qr_image(payload: &str) -> Result<QrPath, RenderError> {
    use qrcode::canvas::{Canvas, MaskPattern};
    // qrcode's `apply_best_mask` scores all four penalty rules for all eight masks: 2.2 ms,
    // most of a page's budget. We pick the mask by the cheapest rule only (dark/light balance,
    // rule 4), which every decoder accepts: the mask choice is an optimisation of the symbol,
    // not part of its meaning.
    let ec = qrcode::EcLevel::M;
    let bits = qrcode::bits::encode_auto(payload.as_bytes(), ec).map_err(|_| RenderError::Qr)?;
    let version = bits.version();
    let data = bits.into_bytes();
    let (encoded, ec_data) =
        qrcode::ec::construct_codewords(&data, version, ec).map_err(|_| RenderError::Qr)?;
    let mut canvas = Canvas::new(version, ec);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&encoded, &ec_data);
    let mut best: Option<(usize, Vec<qrcode::Color>)> = None;
    for mask in [
        MaskPattern::Checkerboard,
        MaskPattern::HorizontalLines,
        MaskPattern::VerticalLines,
        MaskPattern::DiagonalLines,
        MaskPattern::LargeCheckerboard,
        MaskPattern::Fields,
        MaskPattern::Diamonds,
        MaskPattern::Meadow,
    ] {
        let mut c = canvas.clone();
        c.apply_mask(mask);
        let colors = c.into_colors();
        let dark = colors.iter().filter(|c| **c == qrcode::Color::Dark).count();
        let imbalance = (dark * 20).abs_diff(colors.len() * 10);
        if best.as_ref().is_none_or(|(b, _)| imbalance < *b) {
            best = Some((imbalance, colors));
        }
    }
    let colors = best.map(|b| b.1).ok_or(RenderError::Qr)?;
    let w = version.width() as usize;
    if colors.len() != w * w {
        return Err(RenderError::Qr);
    }
    let mut runs = Vec::new();
    for y in 0..w {
        let mut x = 0;
        while x < w {
            if colors[y * w + x] == qrcode::Color::Dark {
                let start = x;
                while x < w && colors[y * w + x] == qrcode::Color::Dark {
                    x += 1;
                }
                runs.push((y as u16, start as u16, (x - start) as u16));
            } else {
                x += 1;
            }
        }
    }
    Ok(QrPath { runs, side: w })
}

fn draw_qr(s: &mut Surface<'_>, qr: &QrPath, x: f32, y: f32, size: f32) {
    // 4-module quiet zone inside `size`.
    let m = size / (qr.side + 8) as f32;
    let mut pb = PathBuilder::new();
    for &(row, start, len) in &qr.runs {
        if let Some(r) = Rect::from_xywh(
            x + (f32::from(start) + 4.0) * m,
            y + (f32::from(row) + 4.0) * m,
            f32::from(len) * m,
            m,
        ) {
            pb.push_rect(r);
        }
    }
    if let Some(p) = pb.finish() {
        s.set_stroke(None);
        s.set_fill(Some(fill_of(BLACK, 1.0)));
        s.draw_path(&p);
    }
}

fn seal_images(cert: &Certificate) -> Result<Vec<Image>, RenderError> {
    cert.blocks()
        .iter()
        .filter_map(|b| match b {
            Block::Seal(s) => Some(s),
            _ => None,
        })
        .map(|s| Image::from_png(s.png.clone().into(), true).map_err(|_| RenderError::SealImage))
        .collect()
}
