//! Render + sign per certificate type, against a floor: a minimal one-page PDF with the same
//! embedded font (one line of Japanese), rendered in the same run.
//!
//! `cargo bench -p issuer --bench render`

// A benchmark aborts on a broken fixture; that is what unwrap says here.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use krilla::geom::{Point, Size};
use krilla::page::PageSettings;
use krilla::{Document, SerializeSettings};

use issuer::document::font::DocFont;
use issuer::document::render::{RenderOptions, Renderer};
use issuer::document::samples;
use issuer::document::sign::DocumentSigner;
use kiosk_document::CertificateType;

fn signer() -> DocumentSigner {
    let pki = Path::new(env!("CARGO_MANIFEST_DIR")).join("../devkit/testdata/pki");
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

/// The same words as the certificate, as plain lines of text in the same font: the floor for
/// "this much text on one page" without rules, background, seal, QR or signature.
fn floor_same_text(lines: &[String]) -> Vec<u8> {
    let font = DocFont::get().unwrap();
    let mut doc = Document::new_with(SerializeSettings {
        compress_content_streams: false,
        enable_tagging: false,
        ..SerializeSettings::default()
    });
    let mut page = doc.start_page_with(PageSettings::new(Size::from_wh(595.28, 841.89).unwrap()));
    let mut s = page.surface();
    for (i, l) in lines.iter().enumerate() {
        let glyphs = font.glyphs(l, 0.0).unwrap();
        let y = 40.0 + (i % 60) as f32 * 13.0;
        s.draw_glyphs(
            Point::from_xy(40.0, y),
            &glyphs,
            font.krilla(),
            l,
            10.0,
            false,
        );
    }
    s.finish();
    page.finish();
    doc.finish().unwrap()
}

fn text_of(cert: &kiosk_document::model::Certificate) -> Vec<String> {
    use kiosk_document::model::Block;
    let mut v = vec![
        cert.kind().title().to_owned(),
        cert.certification().to_owned(),
        cert.municipality().name.clone(),
        format!(
            "{} {}",
            cert.municipality().mayor_title,
            cert.municipality().mayor_name
        ),
    ];
    for b in cert.blocks() {
        match b {
            Block::Section(s) => {
                v.extend(s.heading.clone());
                for r in &s.rows {
                    v.push(format!("{} {}", r.label, r.value));
                }
                for e in &s.events {
                    v.push(e.title.clone());
                    for r in &e.rows {
                        v.push(format!("【{}】{}", r.label, r.value));
                    }
                }
            }
            Block::Table(t) => {
                v.push(t.columns.join(" "));
                for r in &t.rows {
                    v.push(r.join(" "));
                }
            }
            Block::Note { text, .. } => v.push(text.clone()),
            Block::Seal(_) => {}
        }
    }
    v.iter()
        .flat_map(|l| l.split('\n').map(str::to_owned).collect::<Vec<_>>())
        .collect()
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
    {
        // Stages of one single-page certificate.
        let r = Renderer::new(signer());
        let cert = samples::sample(CertificateType::ResidentRecordItems).unwrap();
        let lines = text_of(&cert);
        g.bench_function("floor_same_text_ResidentRecordItems", |b| {
            b.iter(|| black_box(floor_same_text(&lines)))
        });
        let payload = r.render(&cert).unwrap().qr_payload;
        g.bench_function("stage_krilla_only_ResidentRecordItems", |b| {
            b.iter(|| black_box(r.render_unsigned(&cert, &payload).unwrap()))
        });
        g.bench_function("stage_qr_encode_best_mask", |b| {
            b.iter(|| {
                black_box(
                    qrcode::QrCode::with_error_correction_level(
                        payload.as_bytes(),
                        qrcode::EcLevel::M,
                    )
                    .unwrap(),
                )
            })
        });
        let (unsigned, pages) = r.render_unsigned(&cert, &payload).unwrap();
        let markers: Vec<_> =
            kiosk_document::markers::read_page_markers(&r.render(&cert).unwrap().pdf).unwrap();
        assert_eq!(markers.len(), pages.len());
        g.bench_function("stage_sign_only_ResidentRecordItems", |b| {
            b.iter(|| {
                black_box(
                    r.signer()
                        .sign_pdf(&unsigned, &markers, cert.issued_at())
                        .unwrap(),
                )
            })
        });
    }
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
