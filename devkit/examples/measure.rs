//! Measures what other crates lean on: minting card files (the synthetic register generator),
//! loading a software card, and one in-process login (VERIFY + READ cert + sign, the terminal
//! load generator's per-session card cost).
//!
//! `cargo run --release -p kiosk-devkit --example measure`

use std::time::Instant;

use card::{JpkiCard, Pin, login};
use kiosk_devkit::softcard::{SoftCard, SoftTransport};
use kiosk_devkit::testpki::{DevPki, DevPkiSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("card-measure-{}", std::process::id()));
    let start = Instant::now();
    let pki = DevPki::generate(
        &dir,
        &DevPkiSpec::development(time::OffsetDateTime::now_utc()),
    )?;
    println!(
        "generate dev PKI: {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );

    let mut minter = pki.card_minter()?;
    let pin = Pin::parse("1234")?;
    // Every card takes a key of its own from the per-user cache: 2n keys, generated on the
    // first run only (the figure below says which run this was). 400 keys is about what the
    // load benchmark's deployment holds, so the example does not grow the cache past it.
    let n = 200u64;
    let start = Instant::now();
    minter.reserve(2 * n as usize)?;
    let t = start.elapsed().as_secs_f64();
    println!("reserve {} keys from the cache: {t:.3} s", 2 * n);
    let start = Instant::now();
    let mut files = Vec::new();
    for serial in 1..=n {
        files.push(minter.mint(serial, &pin)?);
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "mint in memory: {n} cards in {t:.3} s = {:.0} cards/s",
        n as f64 / t
    );
    let out = dir.join("cards-out");
    let start = Instant::now();
    for serial in 1..=n {
        minter.mint_to(&out, &format!("r{serial}"), serial, &pin)?;
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "mint to files:  {n} cards in {t:.3} s = {:.0} cards/s",
        n as f64 / t
    );

    let loads = 200;
    let start = Instant::now();
    let mut cards = Vec::new();
    for file in files.iter().take(loads) {
        cards.push(SoftCard::from_file(file.clone())?);
    }
    let t = start.elapsed().as_secs_f64();
    println!("load soft card: {:.2} ms each", t * 1e3 / loads as f64);

    let context = login::context_bytes("gw", "a/b/c", "s").ok_or("context")?;
    let logins = 200;
    let start = Instant::now();
    for card in cards.into_iter().take(logins) {
        let mut t = SoftTransport::new(card);
        let mut verified = JpkiCard::open(&mut t)?
            .verify_pin(&pin)
            .map_err(|f| f.into_error())?;
        let proof = login::authenticate(&mut verified, &[1; 32], &context)?;
        assert_eq!(proof.signature.len(), 256);
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "in-process login (select, tries, verify, read cert, sign): {:.2} ms each",
        t * 1e3 / logins as f64
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
