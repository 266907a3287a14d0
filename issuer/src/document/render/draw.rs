//! Drawing with krilla: the units the layout placed, the header, the certification with the
//! official seal, the footer with the QR code, and the 地紋 background.

use kiosk_document::era::JapaneseDate;
use kiosk_document::model::{Block, Certificate};
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect, Size, Transform};
use krilla::image::Image;
use krilla::num::NormalizedF32;
use krilla::paint::{Fill, FillRule, Pattern, Stroke};
use krilla::surface::Surface;

use super::layout::{Op, line_h};
use super::{BLACK, BODY_W, ML, MR, PAGE_H, PAGE_W, QR_SIZE, RULE, RenderError, Rgb, SEAL_RED};
use crate::document::font::{DocFont, FontError};

fn fill_of(c: Rgb, opacity: f32) -> Fill {
    Fill {
        paint: rgb::Color::new(c.0, c.1, c.2).into(),
        opacity: NormalizedF32::new(opacity).unwrap_or(NormalizedF32::ONE),
        rule: FillRule::NonZero,
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn text(
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

pub(super) fn draw_ops(
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

pub(super) fn draw_header(
    s: &mut Surface<'_>,
    font: &DocFont,
    cert: &Certificate,
) -> Result<(), RenderError> {
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

pub(super) fn draw_certification(
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

pub(super) fn draw_page_footer(
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
pub(super) fn draw_background(
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
pub(super) struct QrPath {
    runs: Vec<(u16, u16, u16)>,
    side: usize,
}

pub(super) fn qr_image(payload: &str) -> Result<QrPath, RenderError> {
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

pub(super) fn seal_images(cert: &Certificate) -> Result<Vec<Image>, RenderError> {
    cert.blocks()
        .iter()
        .filter_map(|b| match b {
            Block::Seal(s) => Some(s),
            _ => None,
        })
        .map(|s| Image::from_png(s.png.clone().into(), true).map_err(|_| RenderError::SealImage))
        .collect()
}
