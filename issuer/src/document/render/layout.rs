//! Layout: the certificate's blocks as units of drawing operations, placed on A4 pages.
//!
//! Text never overflows its cell: values shrink (down to a minimum size) and then wrap, using
//! glyph advances of the embedded font ([`DocFont::fit`]). A value too long for one page is
//! split across pages row by row.

use kiosk_document::ResidentRef;
use kiosk_document::model::{Block, Certificate, SealImpression, Section, Table};

use super::{BODY_BOTTOM, BODY_TOP, BODY_W, FOOTER_H, LABEL_W, RenderError, Rgb, SHADE};
use crate::document::font::{DocFont, FontError};

/// One drawing operation, in coordinates relative to its unit's top left corner.
#[derive(Debug, Clone)]
pub(super) enum Op {
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

/// A piece of the body that is never split across pages: its height, what it draws and whom
/// it is about.
#[derive(Debug, Clone, Default)]
pub(super) struct Unit {
    h: f32,
    pub(super) ops: Vec<Op>,
    pub(super) subjects: Vec<ResidentRef>,
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

/// One page's units, each with the y it starts at, and where the body ends.
pub(super) struct PageLayout {
    pub(super) units: Vec<(Unit, f32)>,
    pub(super) end_y: f32,
}

/// The body of every page.
pub(super) struct Layout {
    pub(super) pages: Vec<PageLayout>,
}

const VALUE_SIZE: f32 = 10.5;
const VALUE_MIN: f32 = 7.5;
const LABEL_SIZE: f32 = 9.0;
const PAD: f32 = 3.0;

pub(super) fn line_h(size: f32) -> f32 {
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
    subjects: &[ResidentRef],
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

fn heading_unit(
    font: &DocFont,
    heading: &str,
    subjects: &[ResidentRef],
) -> Result<Unit, FontError> {
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

/// Lays the certificate's body out on pages.
pub(super) fn layout(font: &DocFont, cert: &Certificate) -> Result<Layout, RenderError> {
    // Check every character up front so a 外字 fails before any drawing.
    let m = cert.municipality();
    for t in [&m.name, &m.mayor_title, &m.mayor_name] {
        font.check(t)?;
    }
    font.check(cert.certification())?;
    let capacity = BODY_BOTTOM - BODY_TOP;
    let groups = block_groups(font, cert, capacity)?;
    let pages = paginate(groups, capacity);
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

/// One group of units per block, the last one closed by 「以下余白」: a block that fits on a
/// page is never split (a person's record stays on one page, as on 個票式 forms); a longer one
/// flows row by row.
fn block_groups(
    font: &DocFont,
    cert: &Certificate,
    capacity: f32,
) -> Result<Vec<Vec<Unit>>, RenderError> {
    let mut groups: Vec<Vec<Unit>> = Vec::new();
    let mut seal_index = 0;
    for (bi, block) in cert.blocks().iter().enumerate() {
        let gap = if bi > 0 { 6.0 } else { 0.0 };
        let mut bunits = match block {
            Block::Section(s) => section_units(font, s, capacity * 0.8)?,
            Block::Table(t) => table_units(font, t)?,
            Block::Seal(s) => {
                seal_index += 1;
                vec![seal_unit(s, seal_index - 1)]
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
    match groups.last_mut() {
        Some(g) => g.push(tail),
        None => groups.push(vec![tail]),
    }
    Ok(groups)
}

/// The registered seal impression in its frame; `index` is its place among the seal images.
fn seal_unit(s: &SealImpression, index: usize) -> Unit {
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
        index,
    });
    Unit {
        h,
        ops,
        subjects: s.subjects.clone(),
    }
}

/// Places the groups on pages of `capacity` points.
fn paginate(groups: Vec<Vec<Unit>>, capacity: f32) -> Vec<Vec<Unit>> {
    // 以下余白 (the last group's last unit) and the certification (FOOTER_H) belong with the
    // last block: they are placed together, so the certification never stands on a page of
    // its own.
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
    pages
}
