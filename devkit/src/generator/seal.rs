//! Generated seal impressions (印影): a red ring with the surname written top to bottom, the
//! way a personal 実印 looks, rasterised in pure Rust (ab_glyph over the bundled IPAex Mincho)
//! and encoded as PNG.

use ab_glyph::{Font, FontRef, PxScale, point};
use image::{ImageBuffer, ImageFormat, Rgba};

use issuer::error::IssuerError;

/// The issuer's bundled IPAex Mincho (IPA Font License v1.0, see `issuer/fonts/`).
const FONT: &[u8] = issuer::document::font::IPAEX_MINCHO;
const SIZE: u32 = 128;
const RED: [u8; 3] = [200, 30, 30];

/// Draws the impression of a seal engraved with `surname` as PNG bytes.
pub fn seal_png(surname: &str) -> Result<Vec<u8>, IssuerError> {
    let font =
        FontRef::try_from_slice(FONT).map_err(|_| IssuerError::Corrupt { what: "seal font" })?;
    let mut img: ImageBuffer<Rgba<u8>, Vec<u8>> = ImageBuffer::new(SIZE, SIZE);
    let centre = SIZE as f32 / 2.0;
    let (outer, inner) = (centre - 3.0, centre - 9.0);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let dx = x as f32 + 0.5 - centre;
        let dy = y as f32 + 0.5 - centre;
        let r = (dx * dx + dy * dy).sqrt();
        // Anti-aliased ring: coverage falls off over one pixel at each edge.
        let coverage = (outer - r + 0.5).clamp(0.0, 1.0) * (r - inner + 0.5).clamp(0.0, 1.0);
        if coverage > 0.0 {
            *px = Rgba([RED[0], RED[1], RED[2], (coverage * 255.0) as u8]);
        }
    }
    let chars: Vec<char> = surname.chars().collect();
    let count = chars.len().max(1) as f32;
    // Characters are stacked vertically inside the ring; the size shrinks with their number.
    let cell = ((inner * 2.0 - 14.0) / count).min(inner * 1.2);
    let scale = PxScale::from(cell);
    let top = centre - cell * count / 2.0;
    for (i, c) in chars.iter().enumerate() {
        let glyph = font
            .glyph_id(*c)
            .with_scale_and_position(scale, point(0.0, 0.0));
        let Some(outlined) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outlined.px_bounds();
        let x0 = centre - bounds.width() / 2.0;
        let y0 = top + cell * i as f32 + (cell - bounds.height()) / 2.0;
        outlined.draw(|gx, gy, v| {
            let x = (x0 + gx as f32) as i64;
            let y = (y0 + gy as f32) as i64;
            if (0..i64::from(SIZE)).contains(&x) && (0..i64::from(SIZE)).contains(&y) {
                let (x, y) = (x as u32, y as u32);
                let px = img.get_pixel_mut(x, y);
                let alpha = (v.clamp(0.0, 1.0) * 255.0) as u8;
                if alpha > px[3] {
                    *px = Rgba([RED[0], RED[1], RED[2], alpha]);
                }
            }
        });
    }
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .map_err(|_| IssuerError::Corrupt { what: "seal png" })?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_is_a_png_with_red_ink_inside_the_ring() {
        let png = seal_png("山田").unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgba8();
        assert_eq!(img.dimensions(), (SIZE, SIZE));
        // The ring is inked at the left edge of the middle row, the corner is empty.
        assert!(img.get_pixel(4, SIZE / 2)[3] > 200);
        assert_eq!(img.get_pixel(0, 0)[3], 0);
        // The surname put ink near the centre column, inside the ring.
        let inked_inside = (20..SIZE - 20)
            .filter(|y| img.get_pixel(SIZE / 2, *y)[3] > 128)
            .count();
        assert!(inked_inside > 5, "no glyph ink inside the ring");
        // Different surnames give different impressions.
        assert_ne!(png, seal_png("佐藤").unwrap());
    }
}
