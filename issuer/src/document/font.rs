//! The embedded IPAex Mincho font: glyph lookup, advances and line breaking.
//!
//! The font file ships in `issuer/fonts/` (IPA Font License v1.0) and is compiled into the
//! binary, so rendering never depends on a font installed on the machine. It is parsed once per
//! process ([`DocFont::get`]); krilla embeds only the glyphs a document uses (a subset).
//!
//! We do our own "shaping": one glyph per character from the font's cmap with its horizontal
//! advance. That is exact for Japanese set solid in a Mincho face (no ligatures, no contextual
//! forms) and skips rustybuzz, which is most of krilla's per-page text cost.

use std::collections::HashMap;
use std::sync::OnceLock;

use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::MetadataProvider;
use skrifa::instance::{LocationRef, Size};

/// The IPAex Mincho font file (IPA Font License v1.0, see `issuer/fonts/`).
pub static IPAEX_MINCHO: &[u8] = include_bytes!("../../fonts/ipaexm.ttf");

/// Errors of text measurement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FontError {
    /// The font file could not be parsed (a build defect; the file is compiled in).
    #[error("embedded font cannot be parsed")]
    Parse,
    /// A character has no glyph in the font (e.g. a 外字 not in IPAex). The code point is
    /// reported, never the surrounding text.
    #[error("no glyph for U+{0:04X}")]
    MissingGlyph(u32),
}

/// The parsed font: krilla's handle and a char → (glyph, advance) table.
pub struct DocFont {
    font: Font,
    // advance normalised to 1 em
    glyphs: HashMap<char, (u16, f32)>,
    ascent: f32,
}

impl std::fmt::Debug for DocFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocFont")
            .field("glyphs", &self.glyphs.len())
            .finish()
    }
}

static FONT: OnceLock<Result<DocFont, FontError>> = OnceLock::new();

impl DocFont {
    /// The process-wide parsed font (parsed on first use, a few milliseconds).
    pub fn get() -> Result<&'static DocFont, FontError> {
        FONT.get_or_init(Self::load).as_ref().map_err(Clone::clone)
    }

    fn load() -> Result<DocFont, FontError> {
        let font = Font::new(IPAEX_MINCHO.into(), 0).ok_or(FontError::Parse)?;
        let sk = skrifa::FontRef::new(IPAEX_MINCHO).map_err(|_| FontError::Parse)?;
        let metrics = sk.metrics(Size::unscaled(), LocationRef::default());
        let upem = f32::from(metrics.units_per_em);
        let gm = sk.glyph_metrics(Size::unscaled(), LocationRef::default());
        let mut glyphs = HashMap::new();
        for (cp, gid) in sk.charmap().mappings() {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let Ok(g16) = u16::try_from(gid.to_u32()) else {
                continue;
            };
            if g16 == 0 {
                continue;
            }
            let adv = gm.advance_width(gid).unwrap_or(upem) / upem;
            glyphs.insert(c, (g16, adv));
        }
        Ok(DocFont {
            font,
            glyphs,
            ascent: metrics.ascent / upem,
        })
    }

    /// krilla's font handle (cheap to clone).
    pub fn krilla(&self) -> Font {
        self.font.clone()
    }

    /// Ascent as a fraction of the em.
    pub fn ascent(&self) -> f32 {
        self.ascent
    }

    /// Checks every character has a glyph.
    pub fn check(&self, text: &str) -> Result<(), FontError> {
        for c in text.chars() {
            if c != '\n' && !self.glyphs.contains_key(&c) {
                return Err(FontError::MissingGlyph(u32::from(c)));
            }
        }
        Ok(())
    }

    /// Advance of one character in em, or an error for a missing glyph.
    pub fn advance(&self, c: char) -> Result<f32, FontError> {
        self.glyphs
            .get(&c)
            .map(|g| g.1)
            .ok_or(FontError::MissingGlyph(u32::from(c)))
    }

    /// Width of a single-line text at `size` points.
    pub fn width(&self, text: &str, size: f32) -> Result<f32, FontError> {
        let mut w = 0.0;
        for c in text.chars() {
            w += self.advance(c)?;
        }
        Ok(w * size)
    }

    /// The glyph run for a single line, with `tracking` extra em between characters.
    pub fn glyphs(&self, text: &str, tracking: f32) -> Result<Vec<KrillaGlyph>, FontError> {
        let mut out = Vec::with_capacity(text.len() / 2);
        for (i, c) in text.char_indices() {
            let (gid, adv) = *self
                .glyphs
                .get(&c)
                .ok_or(FontError::MissingGlyph(u32::from(c)))?;
            out.push(KrillaGlyph::new(
                GlyphId::new(u32::from(gid)),
                adv + tracking,
                0.0,
                0.0,
                0.0,
                i..i + c.len_utf8(),
                None,
            ));
        }
        Ok(out)
    }

    /// Breaks `text` into lines no wider than `max_width` points at `size` points.
    ///
    /// Rules: `'\n'` forces a break; a break may fall between any two characters except
    /// inside a run of ASCII letters/digits (kept whole unless it alone is wider than the line,
    /// then it is cut by character); 行頭禁則 — closing brackets and punctuation such as
    /// 「、。）」 never start a line (they stay on the previous line even if that slightly
    /// overshoots by one character, which the caller's cell padding absorbs: we check it with
    /// `max_width` minus one punctuation width); 行末禁則 — opening brackets never end a line.
    /// Leading spaces of a wrapped line are dropped.
    pub fn wrap(&self, text: &str, size: f32, max_width: f32) -> Result<Vec<String>, FontError> {
        let mut lines = Vec::new();
        for para in text.split('\n') {
            self.wrap_para(para, size, max_width.max(size), &mut lines)?;
        }
        Ok(lines)
    }

    fn wrap_para(
        &self,
        para: &str,
        size: f32,
        max_width: f32,
        lines: &mut Vec<String>,
    ) -> Result<(), FontError> {
        let chars: Vec<char> = para.chars().collect();
        let mut adv = Vec::with_capacity(chars.len());
        for &c in &chars {
            adv.push(self.advance(c)? * size);
        }
        let mut start = 0;
        if chars.is_empty() {
            lines.push(String::new());
            return Ok(());
        }
        while start < chars.len() {
            // Skip leading spaces of a continuation line.
            if start > 0 && !lines.is_empty() {
                while start < chars.len() && (chars[start] == ' ' || chars[start] == '　') {
                    start += 1;
                }
                if start >= chars.len() {
                    break;
                }
            }
            // Longest prefix that fits.
            let mut w = 0.0;
            let mut end = start;
            while end < chars.len() && w + adv[end] <= max_width + 0.01 {
                w += adv[end];
                end += 1;
            }
            if end == chars.len() {
                lines.push(chars[start..].iter().collect());
                break;
            }
            if end == start {
                end = start + 1; // a single glyph wider than the line: place it anyway
            }
            // Move the break back to a legal position.
            let mut brk = end;
            while brk > start + 1 && !can_break(&chars, brk) {
                brk -= 1;
            }
            if brk == start + 1 && !can_break(&chars, brk) {
                brk = end; // no legal break in the line: cut hard
            }
            // 行頭禁則: pull a closing mark up if it would start the next line and fits with a
            // small overshoot (ぶら下げ is not done; we break one earlier instead).
            if brk < chars.len() && is_no_start(chars[brk]) && brk > start + 1 {
                brk -= 1;
                while brk > start + 1 && (is_no_start(chars[brk]) || !can_break(&chars, brk)) {
                    brk -= 1;
                }
            }
            lines.push(chars[start..brk].iter().collect());
            start = brk;
        }
        Ok(())
    }

    /// Fits `text` into a box `max_width` wide: shrinks from `size` down to `min_size` (in 0.5
    /// pt steps) until it needs at most `max_lines` lines; below that it wraps at `min_size`
    /// into as many lines as needed. Returns the chosen size and lines. Never returns a line
    /// wider than `max_width` (except a single glyph wider than the whole box).
    pub fn fit(
        &self,
        text: &str,
        size: f32,
        min_size: f32,
        max_width: f32,
        max_lines: usize,
    ) -> Result<(f32, Vec<String>), FontError> {
        let mut s = size;
        loop {
            let lines = self.wrap(text, s, max_width)?;
            if lines.len() <= max_lines || s <= min_size {
                return Ok((s, lines));
            }
            s = (s - 0.5).max(min_size);
        }
    }
}

fn is_ascii_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | ',' | '-' | '@' | '_' | '/' | ':')
}

fn is_no_start(c: char) -> bool {
    "、。，．・：；？！ー）」』】〕〉》］｝ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々〻‐–—〜,.)]}!?"
        .contains(c)
}

fn is_no_end(c: char) -> bool {
    "（「『【〔〈《［｛([{".contains(c)
}

// May a line break before chars[i]?
fn can_break(chars: &[char], i: usize) -> bool {
    if i == 0 || i >= chars.len() {
        return true;
    }
    let (a, b) = (chars[i - 1], chars[i]);
    if is_ascii_word(a) && is_ascii_word(b) {
        return false;
    }
    if is_no_start(b) || is_no_end(a) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_loads_and_measures() {
        let f = DocFont::get().unwrap();
        // Full-width kanji are one em in IPAex.
        assert!((f.width("東京", 10.0).unwrap() - 20.0).abs() < 0.01);
        assert!(f.width("A", 10.0).unwrap() < 10.0);
        assert_eq!(f.check("𠮷"), Err(FontError::MissingGlyph(0x20BB7)));
        f.check("住民票の写し　令和８年").unwrap();
    }

    #[test]
    fn very_long_address_wraps_within_width() {
        let f = DocFont::get().unwrap();
        let addr = "東京都千代田区千代田一丁目一番一号千代田グランドレジデンス東棟弐千参百四十五号室（管理組合気付、株式会社サンプル不動産管理部御中）ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let lines = f.wrap(addr, 10.0, 200.0).unwrap();
        assert!(lines.len() > 3);
        for l in &lines {
            assert!(f.width(l, 10.0).unwrap() <= 200.01, "{l}");
            let first = l.chars().next().unwrap();
            assert!(!is_no_start(first), "line starts with {first}");
        }
        assert_eq!(lines.concat(), addr);
    }

    #[test]
    fn ascii_words_stay_whole_and_newlines_break() {
        let f = DocFont::get().unwrap();
        let lines = f.wrap("番号 R8-000123 です\n次の行", 10.0, 60.0).unwrap();
        assert!(lines.iter().any(|l| l.contains("R8-000123")), "{lines:?}");
        assert_eq!(lines.last().unwrap(), "次の行");
    }

    #[test]
    fn fit_shrinks_then_wraps() {
        let f = DocFont::get().unwrap();
        let (s, lines) = f.fit("山田太郎左衛門", 12.0, 8.0, 70.0, 1).unwrap();
        assert_eq!(lines.len(), 1);
        assert!((8.0..12.0).contains(&s));
        let (s, lines) = f.fit(&"長".repeat(40), 12.0, 8.0, 70.0, 1).unwrap();
        assert_eq!(s, 8.0);
        assert!(lines.len() > 1);
        for l in lines {
            assert!(f.width(&l, 8.0).unwrap() <= 70.01);
        }
    }
}
