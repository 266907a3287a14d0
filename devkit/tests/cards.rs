//! Card files minted for generated residents carry certificates whose (issuer key id, serial) are
//! exactly the binding the gateway will look up.

// Tests may unwrap: a panic here is a failed assertion with a location.
#![allow(clippy::unwrap_used)]

use issuer::bindings::{CardBinding, serial_hex};
use kiosk_devkit::cards::{card_issuer_key_id, mint_cards};
use x509_parser::extensions::ParsedExtension;

#[test]
fn minted_card_matches_its_binding() {
    // A PKI of its own: minting advances the PKI's card key counter, which must not happen
    // to the committed fixture set.
    let dir = tempfile::tempdir().unwrap();
    let pki = kiosk_devkit::testpki::DevPki::generate(
        &dir.path().join("pki"),
        &kiosk_devkit::testpki::DevPkiSpec::development(time::OffsetDateTime::now_utc()),
    )
    .unwrap();
    let issuer_name = card_issuer_key_id(&pki).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut bindings = vec![
        CardBinding::new(&issuer_name, 131_010_000_000_001, "131016", "rtest0001"),
        CardBinding::new(&issuer_name, 131_010_000_000_002, "131016", "rtest0002"),
    ];
    assert_eq!(mint_cards(&pki, out.path(), &mut bindings).unwrap(), 2);
    for b in &bindings {
        let file = out.path().join(b.card_file.as_ref().unwrap());
        let card = kiosk_devkit::CardFile::load(&file).unwrap();
        let pem = card.auth.unwrap().certificate.unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).unwrap();
        // The gateway keys bindings on the authority key identifier and the trimmed serial
        // hex; the card carries the J-LIS test policy.
        let aki = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.clone(),
                _ => None,
            })
            .unwrap();
        assert_eq!(hex::encode(aki.0), b.issuer_key_id);
        let policies: Vec<String> = cert
            .extensions()
            .iter()
            .filter_map(|e| match e.parsed_extension() {
                ParsedExtension::CertificatePolicies(p) => Some(p),
                _ => None,
            })
            .flatten()
            .map(|p| p.policy_id.to_id_string())
            .collect();
        assert_eq!(policies, ["1.2.392.200149.8.5.1.0.20"]);
        let raw = cert.raw_serial();
        let first = raw.iter().position(|x| *x != 0).unwrap_or(raw.len() - 1);
        assert_eq!(hex::encode(&raw[first..]), b.card_serial_hex);
        assert_eq!(b.card_serial_hex, serial_hex(b.card_serial.unwrap()));
    }
}
