//! The floor of one issuance on this machine, measured in the same run as a load test: render
//! and sign a one-page certificate, verify a card login signature and its chain, and one
//! durable commit on the gateway's database. The load benchmark reports its latency and
//! throughput next to these numbers.
//!
//! Usage: `cargo run --release -p kiosk-gateway --example floor -- PKI_DIR DATABASE_URL [N]`

use std::time::Instant;

use card::pin::Pin;
use issuer::document::render::Renderer;
use issuer::document::sign::DocumentSigner;
use kiosk_devkit::softcard::SoftTransport;
use kiosk_devkit::testpki::{DevPki, files};
use kiosk_gateway::cardauth::CardVerifier;
use kiosk_gateway::store::{self, Store};

fn per_op_ms(start: Instant, n: usize) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0 / n as f64
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (pki_dir, url) = match (args.get(1), args.get(2)) {
        (Some(p), Some(u)) => (p.clone(), u.clone()),
        _ => anyhow::bail!("usage: floor PKI_DIR DATABASE_URL [N]"),
    };
    let n: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let pki = DevPki::open(std::path::Path::new(&pki_dir))?;

    // Render + sign (PDF signature, QR payload) of a one-page certificate.
    let signer = DocumentSigner::from_pem(
        &std::fs::read_to_string(pki.key_path("municipality-131016"))?,
        &std::fs::read_to_string(pki.cert_path("municipality-131016"))?,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let renderer = Renderer::new(signer);
    let sample =
        issuer::document::samples::resident_record_items().map_err(|e| anyhow::anyhow!("{e}"))?;
    renderer
        .render(&sample)
        .map_err(|e| anyhow::anyhow!("{e}"))?; // warm the font cache
    let start = Instant::now();
    for _ in 0..n {
        renderer
            .render(&sample)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let render_ms = per_op_ms(start, n);

    // Card login verification: chain, CRL, KeyUsage, policy, RSA signature.
    let verifier = CardVerifier::new(
        vec![pki.cert_der(files::JPKI_AUTH_CA)?],
        &[pki.crl_der()?],
        kiosk_gateway::cardauth::CardPolicies::development(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pin = Pin::parse("1234")?;
    let card = kiosk_devkit::SoftCard::from_file(pki.card_minter()?.mint(424_242, &pin)?)?;
    let context = card::login::context_bytes("gw", "t/s/k", "s-1").unwrap_or_default();
    let challenge = [7u8; 32];
    let proof =
        kiosk_terminal::login::sign_login(SoftTransport::new(card), &pin, &challenge, &context)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let start = Instant::now();
    for _ in 0..n {
        verifier
            .verify(
                &proof.certificate,
                &proof.signature,
                &context,
                &challenge,
                now,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let verify_ms = per_op_ms(start, n);

    // One durable commit with one small row, on the database under test.
    let db = Store::open(&url)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let start = Instant::now();
    for i in 0..n {
        let mut tx = db.begin_write().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        store::set_setting(&mut tx, "floor_probe", &i.to_string())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tx.commit().await?;
    }
    let commit_ms = per_op_ms(start, n);

    let floor = render_ms + verify_ms + commit_ms;
    println!("floor per one-page issuance ({n} iterations each, {url}):");
    println!("  render + sign one page   {render_ms:8.3} ms");
    println!("  card login verification  {verify_ms:8.3} ms");
    println!("  one durable commit       {commit_ms:8.3} ms");
    println!("  floor (sum)              {floor:8.3} ms");
    println!(
        "  CPU-bound ceiling on 2 cores ≈ {:.0} issuances/s (2 / (render + verify))",
        2000.0 / (render_ms + verify_ms)
    );
    Ok(())
}
