//! Render + sign per certificate type, against a floor: a minimal one-page PDF with the same
//! embedded font (one line of Japanese), rendered in the same run.
//!
//! `cargo bench -p issuer --bench render`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use krilla::geom::{Point, Size};
use krilla::page::PageSettings;
use krilla::{Document, SerializeSettings};

use issuer::document::font::DocFont;
use issuer::document::model::CertificateType;
use issuer::document::render::{RenderOptions, Renderer};
use issuer::document::samples;
use issuer::document::sign::DocumentSigner;

fn signer() -> DocumentSigner {
    let pki = Path::new(env!("CARGO_MANIFEST_DIR")).join("../card/testdata/pki");
    let key = std::fs::read_to_string(pki.join("municipality-131016.key.pem")).unwrap();
    let crt = std::fs::read_to_string(pki.join("municipality-131016.crt.pem")).unwrap();
    DocumentSigner::from_pem(&key, &crt).unwrap()
}

fn floor(compress: bool) -> Vec<u8> {
    let font = DocFont::get().unwrap();
    let mut doc = Document::new_with(SerializeSettings {
        compress_content_streams: compress,
        enable_tagging: false,
        ..SerializeSettings::default()
    });
    let mut page = doc.start_page_with(PageSettings::new(Size::from_wh(595.28, 841.89).unwrap()));
    let mut s = page.surface();
    let text = "住民票の写し";
    let glyphs = font.glyphs(text, 0.0).unwrap();
    s.draw_glyphs(
        Point::from_xy(72.0, 72.0),
        &glyphs,
        font.krilla(),
        text,
        20.0,
        false,
    );
    s.finish();
    page.finish();
    doc.finish().unwrap()
}

fn bench(c: &mut Criterion) {
    DocFont::get().unwrap();
    let mut g = c.benchmark_group("render");
    g.bench_function("floor_one_page_same_font", |b| {
        b.iter(|| black_box(floor(false)))
    });
    g.bench_function("floor_one_page_same_font_deflate", |b| {
        b.iter(|| black_box(floor(true)))
    });
    for (compress, suffix) in [(false, ""), (true, "_deflate")] {
        let r = Renderer::with_options(signer(), RenderOptions { compress });
        for kind in CertificateType::ALL {
            let cert = samples::sample(kind).unwrap();
            let pages = r.render(&cert).unwrap().pages.len();
            g.bench_function(format!("{kind:?}_{pages}p_render_sign{suffix}"), |b| {
                b.iter(|| black_box(r.render(&cert).unwrap()))
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
