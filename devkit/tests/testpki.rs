//! The committed test PKI (devkit/testdata/pki) is valid and is exactly what the generator
//! describes; a freshly generated one passes the same checks; minted cards chain and sign;
//! no two cards of a PKI share a key, however many processes mint them (issue 10); private
//! files are their owner's alone; the card key cache fills once under concurrent use.
// Helpers outside #[test] functions panic on purpose: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use card::{JpkiCard, Pin, login};
use kiosk_devkit::softcard::{CardFile, CardKind, SoftCard, SoftTransport};
use kiosk_devkit::testpki::{
    CertDescription, DevPki, DevPkiSpec, Eku, KEY_CACHE_ENV, KeyCache, KeyUse, Name, PkiError,
    TerminalName, files,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::*;

fn pem_der(text: &str) -> Vec<u8> {
    kiosk_document::pem::certificate_der(text.as_bytes()).unwrap()
}

/// The certificate and the PEM of its private key, wherever the generator put them.
fn load(dir: &Path, d: &CertDescription) -> (Vec<u8>, String, bool) {
    if let Some(name) = d.stem.strip_prefix("cards/") {
        let file = CardFile::load(&dir.join("cards").join(format!("{name}.toml"))).unwrap();
        let side = match file.kind {
            CardKind::MyNumber => file.auth.unwrap(),
            CardKind::Juki => file.sign,
        };
        (
            pem_der(side.certificate.as_ref().unwrap()),
            side.key.unwrap(),
            true,
        )
    } else {
        let cert = std::fs::read_to_string(dir.join(format!("{}.crt.pem", d.stem))).unwrap();
        let key = std::fs::read_to_string(dir.join(format!("{}.key.pem", d.stem))).unwrap();
        (pem_der(&cert), key, false)
    }
}

fn serial_u64(cert: &X509Certificate<'_>) -> u64 {
    let bytes = cert.raw_serial();
    assert!(bytes.len() <= 9, "serial too long");
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

fn check_description(cert: &X509Certificate<'_>, d: &CertDescription) {
    let subject = cert.subject();
    let first = |it: &mut dyn Iterator<Item = &AttributeTypeAndValue<'_>>| {
        it.next().map(|a| a.as_str().unwrap().to_owned())
    };
    assert_eq!(
        first(&mut subject.iter_country()).as_deref(),
        Some("JP"),
        "{}",
        d.stem
    );
    assert_eq!(
        first(&mut subject.iter_common_name()),
        Some(d.common_name.clone()),
        "{}",
        d.stem
    );
    assert_eq!(
        first(&mut subject.iter_organization()),
        d.organization,
        "{}",
        d.stem
    );
    assert_eq!(
        first(&mut subject.iter_organizational_unit()),
        d.org_unit,
        "{}",
        d.stem
    );
    assert_eq!(serial_u64(cert), d.serial, "{}", d.stem);
    assert_eq!(cert.is_ca(), d.is_ca, "{}", d.stem);
    match cert.public_key().parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(rsa) => {
            assert!(d.rsa, "{}", d.stem);
            assert_eq!(rsa.key_size(), 2048, "{}", d.stem);
        }
        x509_parser::public_key::PublicKey::EC(ec) => {
            assert!(!d.rsa, "{}", d.stem);
            assert_eq!(ec.key_size(), 256, "{}", d.stem);
        }
        other => panic!("{}: unexpected key {other:?}", d.stem),
    }
    let ku = cert.key_usage().unwrap().expect("key usage present").value;
    let got: Vec<KeyUse> = [
        (ku.digital_signature(), KeyUse::DigitalSignature),
        (ku.non_repudiation(), KeyUse::ContentCommitment),
        (ku.key_cert_sign(), KeyUse::KeyCertSign),
        (ku.crl_sign(), KeyUse::CrlSign),
    ]
    .into_iter()
    .filter_map(|(on, k)| on.then_some(k))
    .collect();
    assert_eq!(got, d.key_usages, "{}", d.stem);
    assert!(!ku.key_encipherment() && !ku.data_encipherment() && !ku.key_agreement());
    let eku: Vec<Eku> = match cert.extended_key_usage().unwrap() {
        None => vec![],
        Some(e) => {
            assert!(e.value.other.is_empty() && !e.value.any, "{}", d.stem);
            [
                (e.value.server_auth, Eku::ServerAuth),
                (e.value.client_auth, Eku::ClientAuth),
            ]
            .into_iter()
            .filter_map(|(on, k)| on.then_some(k))
            .collect()
        }
    };
    assert_eq!(eku, d.eku, "{}", d.stem);
    let sans: Vec<Name> = match cert.subject_alternative_name().unwrap() {
        None => vec![],
        Some(s) => s
            .value
            .general_names
            .iter()
            .map(|g| match g {
                GeneralName::DNSName(n) => Name::Dns((*n).to_owned()),
                GeneralName::URI(u) => Name::Uri((*u).to_owned()),
                GeneralName::IPAddress(ip) => Name::Ip((*ip).try_into().unwrap()),
                other => panic!("{}: unexpected SAN {other:?}", d.stem),
            })
            .collect(),
    };
    assert_eq!(sans, d.sans, "{}", d.stem);
}

fn key_matches(cert: &X509Certificate<'_>, key_pem: &str, rsa: bool) {
    let key = if rsa {
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(key_pem, &rcgen::PKCS_RSA_SHA256).unwrap()
    } else {
        rcgen::KeyPair::from_pem(key_pem).unwrap()
    };
    assert_eq!(
        key.public_key_raw(),
        cert.public_key().subject_public_key.data.as_ref(),
        "private key does not match"
    );
}

fn verify(
    dir: &Path,
    cert: &[u8],
    d: &CertDescription,
    crl: Option<&[u8]>,
    now: UnixTime,
) -> Result<(), webpki::Error> {
    let ca = pem_der(&std::fs::read_to_string(dir.join(format!("{}.crt.pem", d.issuer))).unwrap());
    let ca = CertificateDer::from(ca);
    let anchors = [webpki::anchor_from_trusted_cert(&ca).unwrap().to_owned()];
    let der = CertificateDer::from(cert.to_vec());
    let ee = webpki::EndEntityCert::try_from(&der)?;
    let usage = if d.eku.contains(&Eku::ServerAuth) {
        webpki::KeyUsage::server_auth()
    } else {
        webpki::KeyUsage::client_auth()
    };
    let crl = crl.map(|c| {
        webpki::CertRevocationList::Owned(webpki::OwnedCertRevocationList::from_der(c).unwrap())
    });
    let crls: Vec<&webpki::CertRevocationList<'_>> = crl.iter().collect();
    let revocation = (!crls.is_empty()).then(|| {
        webpki::RevocationOptionsBuilder::new(&crls)
            .unwrap()
            .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
            .build()
    });
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &[],
        now,
        usage,
        revocation,
        None,
    )
    .map(|_| ())
}

/// Every check the committed set must pass; also run on a freshly generated set.
fn check_pki(dir: &Path, spec: &DevPkiSpec, now: UnixTime) {
    let readme = std::fs::read_to_string(dir.join(files::README)).unwrap();
    assert!(readme.contains("TEST ONLY"));
    let descriptions = spec.describe();
    let crl_der = std::fs::read(dir.join(files::JPKI_AUTH_CRL_DER)).unwrap();
    let crl_pem = std::fs::read_to_string(dir.join(files::JPKI_AUTH_CRL_PEM)).unwrap();
    assert_eq!(
        kiosk_document::pem::crl_der(crl_pem.as_bytes()).unwrap(),
        crl_der
    );
    // The CRL lists exactly the revoked cards.
    let (_, crl) = parse_x509_crl(&crl_der).unwrap();
    let listed: BTreeSet<u64> = crl
        .iter_revoked_certificates()
        .map(|r| {
            r.raw_serial()
                .iter()
                .fold(0u64, |a, b| (a << 8) | u64::from(*b))
        })
        .collect();
    assert_eq!(listed, spec.revoked_serials().into_iter().collect());
    assert!(!listed.is_empty());
    let mut expected_files: BTreeSet<String> = [
        files::README,
        files::JPKI_AUTH_CRL_DER,
        files::JPKI_AUTH_CRL_PEM,
        files::CARD_KEYS_NEXT,
        files::CARD_KEYS_LOCK,
    ]
    .map(str::to_owned)
    .into();
    for d in &descriptions {
        let (der, key, rsa) = load(dir, d);
        if let Some(name) = d.stem.strip_prefix("cards/") {
            expected_files.insert(format!("cards/{name}.toml"));
        } else {
            expected_files.insert(format!("{}.crt.pem", d.stem));
            expected_files.insert(format!("{}.key.pem", d.stem));
        }
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        check_description(&cert, d);
        key_matches(&cert, &key, rsa);
        let issuer_der =
            pem_der(&std::fs::read_to_string(dir.join(format!("{}.crt.pem", d.issuer))).unwrap());
        let (_, issuer) = parse_x509_certificate(&issuer_der).unwrap();
        assert_eq!(cert.issuer(), issuer.subject(), "{}", d.stem);
        if d.is_ca {
            assert_eq!(cert.subject(), cert.issuer());
            cert.verify_signature(None).unwrap();
            continue;
        }
        let under_auth_ca = d.issuer == files::JPKI_AUTH_CA;
        let result = verify(dir, &der, d, under_auth_ca.then_some(&crl_der[..]), now);
        if under_auth_ca && listed.contains(&d.serial) {
            assert_eq!(result, Err(webpki::Error::CertRevoked), "{}", d.stem);
        } else {
            result.unwrap_or_else(|e| panic!("{}: {e:?}", d.stem));
        }
        if d.stem.starts_with("terminal-") {
            let Name::Uri(uri) = &d.sans[0] else { panic!() };
            let name = TerminalName::from_uri(uri).unwrap();
            assert!(spec.terminals.contains(&name));
        }
    }
    // Nothing more, nothing less.
    let mut actual = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_dir() {
            for card in std::fs::read_dir(entry.path()).unwrap() {
                actual.insert(format!(
                    "{name}/{}",
                    card.unwrap().file_name().into_string().unwrap()
                ));
            }
        } else {
            actual.insert(name);
        }
    }
    assert_eq!(actual, expected_files);
    assert_distinct_keys(&card_files(&dir.join(files::CARDS_DIR)));
}

/// The card files in `dir`.
fn card_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Both sides of every card in `paths` have public keys no other side has: a signature key
/// equal to another card's authentication key would also let one card pass for another.
fn assert_distinct_keys(paths: &[PathBuf]) {
    let mut owner: HashMap<Vec<u8>, String> = HashMap::new();
    for path in paths {
        let file = CardFile::load(path).unwrap();
        for (side, s) in [("auth", file.auth.as_ref()), ("sign", Some(&file.sign))] {
            let Some(certificate) = s.and_then(|s| s.certificate.as_ref()) else {
                continue;
            };
            let der = pem_der(certificate);
            let (_, cert) = parse_x509_certificate(&der).unwrap();
            let name = format!("{} ({side})", path.display());
            if let Some(first) = owner.insert(cert.public_key().raw.to_vec(), name.clone()) {
                panic!("{name} has the key of {first}");
            }
        }
    }
}

fn fixture_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pki")
}

#[test]
fn committed_fixtures_are_valid_and_match_the_generator() {
    check_pki(&fixture_dir(), &DevPkiSpec::fixture(), UnixTime::now());
    DevPki::open(&fixture_dir()).unwrap();
}

#[test]
fn a_fresh_development_pki_passes_the_same_checks() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::ensure(dir.path()).unwrap();
    let now = ::time::OffsetDateTime::now_utc();
    // Same names as development(now) at generation time; dates are not part of describe().
    check_pki(pki.dir(), &DevPkiSpec::development(now), UnixTime::now());
    // A second ensure opens what is there instead of regenerating.
    let before = std::fs::read(pki.cert_path(files::JPKI_AUTH_CA)).unwrap();
    DevPki::ensure(dir.path()).unwrap();
    assert_eq!(
        std::fs::read(pki.cert_path(files::JPKI_AUTH_CA)).unwrap(),
        before
    );
}

#[test]
fn terminal_names_parse_and_refuse_ambiguity() {
    let t = TerminalName::parse("seven/131016-0042/k1").unwrap();
    assert_eq!(
        (t.chain(), t.store(), t.terminal()),
        ("seven", "131016-0042", "k1")
    );
    assert_eq!(t.uri(), "urn:kiosk:terminal:seven/131016-0042/k1");
    assert_eq!(TerminalName::from_uri(&t.uri()).unwrap(), t);
    for bad in ["a/b", "a/b/c/d", "A/b/c", "a//c", "a/b/c d", "urn:x"] {
        assert!(TerminalName::parse(bad).is_err(), "{bad}");
    }
    assert!(TerminalName::from_uri("urn:kiosk:auditor:a/b/c").is_err());
}

#[test]
fn minted_cards_chain_log_in_and_can_be_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(
        dir.path(),
        &DevPkiSpec::development(::time::OffsetDateTime::now_utc()),
    )
    .unwrap();
    let mut minter = pki.card_minter().unwrap();
    let cards = dir.path().join("residents");
    let pin = Pin::parse("4321").unwrap();
    let n = 60u64;
    minter.reserve(n as usize).unwrap();
    let start = std::time::Instant::now();
    for serial in 10_000..10_000 + n {
        minter
            .mint_to(&cards, &format!("r{serial}"), serial, &pin)
            .unwrap();
    }
    let elapsed = start.elapsed();
    println!(
        "minted {n} card files in {elapsed:?} ({:.0}/s, debug build)",
        n as f64 / elapsed.as_secs_f64()
    );
    assert!(minter.mint_to(&cards, "../escape", 1, &pin).is_err());
    let crl = minter
        .crl(
            ::time::OffsetDateTime::now_utc() - ::time::Duration::hours(1),
            ::time::OffsetDateTime::now_utc() + ::time::Duration::days(1),
            7,
            &[10_001],
        )
        .unwrap();
    let desc = |serial| CertDescription {
        stem: format!("r{serial}"),
        issuer: files::JPKI_AUTH_CA.into(),
        common_name: format!("TEST CARD {serial:016}"),
        organization: Some("JPKI TEST".into()),
        org_unit: None,
        serial,
        is_ca: false,
        rsa: true,
        key_usages: vec![KeyUse::DigitalSignature],
        eku: vec![],
        sans: vec![],
    };
    let mut all = card_files(&cards);
    all.extend(card_files(&pki.dir().join(files::CARDS_DIR)));
    assert_eq!(all.len(), n as usize + 4);
    assert_distinct_keys(&all);
    for serial in [10_000u64, 10_001, 10_000 + n - 1] {
        let file = CardFile::load(&cards.join(format!("r{serial}.toml"))).unwrap();
        let cert = pem_der(file.auth.as_ref().unwrap().certificate.as_ref().unwrap());
        let (_, parsed) = parse_x509_certificate(&cert).unwrap();
        check_description(&parsed, &desc(serial));
        let result = verify(pki.dir(), &cert, &desc(serial), Some(&crl), UnixTime::now());
        if serial == 10_001 {
            assert_eq!(result, Err(webpki::Error::CertRevoked));
        } else {
            result.unwrap();
        }
        let mut t = SoftTransport::new(SoftCard::from_file(file).unwrap());
        let mut verified = JpkiCard::open(&mut t).unwrap().verify_pin(&pin).unwrap();
        let context = login::context_bytes("gw", "a/b/c", "s").unwrap();
        let proof = login::authenticate(&mut verified, b"challenge", &context).unwrap();
        login::verify_signature(&proof.certificate, &context, b"challenge", &proof.signature)
            .unwrap();
    }
}

/// The card files in each of `dirs`.
fn card_files_in(dirs: &[PathBuf]) -> Vec<PathBuf> {
    dirs.iter().flat_map(|d| card_files(d)).collect()
}

#[test]
fn cards_minted_by_several_processes_of_one_deployment_never_share_a_key() {
    // The gateway and `kiosk-devkit generate` mint under one PKI in separate processes: two
    // `card-testpki mint` runs at once, and this process in between, stand for them.
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(
        &dir.path().join("pki"),
        &DevPkiSpec::development(::time::OffsetDateTime::now_utc()),
    )
    .unwrap();
    let mint = |out: &str, first: u64| {
        std::process::Command::new(env!("CARGO_BIN_EXE_card-testpki"))
            .arg("mint")
            .arg("--pki")
            .arg(pki.dir())
            .arg("--out")
            .arg(dir.path().join(out))
            .args(["--count", "25", "--first-serial", &first.to_string()])
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (mint("a", 1_000), mint("b", 2_000));
    let mut minter = pki.card_minter().unwrap();
    let pin = Pin::parse("1234").unwrap();
    for serial in 3_000..3_010 {
        minter
            .mint_to(&dir.path().join("c"), &format!("c{serial}"), serial, &pin)
            .unwrap();
    }
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let all = card_files_in(&[
        pki.dir().join(files::CARDS_DIR),
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    ]);
    assert_eq!(all.len(), 4 + 25 + 25 + 10);
    assert_distinct_keys(&all);
    // 7 keys for the PKI's own cards, then the three minters' cards, with no gap.
    let next = std::fs::read_to_string(pki.dir().join(files::CARD_KEYS_NEXT)).unwrap();
    assert_eq!(next.trim(), (7 + 25 + 25 + 10).to_string());
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn private_keys_and_card_files_are_their_owners_alone() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("deployment/pki");
    let pki = DevPki::generate(
        &pki_dir,
        &DevPkiSpec::development(::time::OffsetDateTime::now_utc()),
    )
    .unwrap();
    let cards = dir.path().join("deployment/cards");
    let pin = Pin::parse("1234").unwrap();
    let mut minter = pki.card_minter().unwrap();
    minter.mint_to(&cards, "r1", 77, &pin).unwrap();
    // A card saved again (the terminal persists retry counters) stays private.
    let card = cards.join("r1.toml");
    CardFile::load(&card).unwrap().save(&card).unwrap();

    for d in [&pki_dir, &pki_dir.join(files::CARDS_DIR), &cards] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    let mut private = vec![card];
    private.extend(card_files(&pki_dir.join(files::CARDS_DIR)));
    for entry in std::fs::read_dir(&pki_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".key.pem") || name.starts_with("card-keys.") {
            private.push(path);
        } else if path.is_file() {
            // Certificates, CRLs and the README are public.
            assert!(name.ends_with(".crt.pem") || name.contains(".crl.") || name == files::README);
        }
    }
    assert!(private.len() > 15, "{private:?}");
    for file in &private {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    // Every CA key is among them.
    for ca in [
        files::JPKI_AUTH_CA,
        files::TERMINAL_CA,
        files::MUNICIPALITY_CA,
    ] {
        assert!(private.contains(&pki.key_path(ca)), "{ca}");
    }
    // No temporary file survives a write.
    for d in [&pki_dir, &pki_dir.join(files::CARDS_DIR), &cards] {
        for entry in std::fs::read_dir(d).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(!name.ends_with(".tmp"), "{name} left in {}", d.display());
        }
    }
}

#[test]
fn the_key_cache_fills_once_under_concurrent_use() {
    let dir = tempfile::tempdir().unwrap();
    let cache = KeyCache::open(&dir.path().join("card-keys")).unwrap();
    // Four users of one cold cache start together, as parallel test processes do.
    let start = std::sync::Barrier::new(4);
    let seen: Vec<Vec<String>> = std::thread::scope(|s| {
        let users: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let keys = cache.keys(0..5).unwrap();
                    keys.iter().map(|k| k.pem().to_owned()).collect()
                })
            })
            .collect();
        users.into_iter().map(|u| u.join().unwrap()).collect()
    });
    // Everyone got the same key for each index, and the five keys differ.
    assert!(seen.iter().all(|keys| *keys == seen[0]), "users disagree");
    assert_eq!(seen[0].iter().collect::<BTreeSet<_>>().len(), 5);
    for pem in &seen[0] {
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    }
    // What is on disk is those keys and the generators' lock, nothing else (no temporary
    // files).
    let names: BTreeSet<String> = std::fs::read_dir(cache.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut expected: BTreeSet<String> = (0..5).map(|i| format!("card-rsa-{i}.pem")).collect();
    expected.insert(kiosk_devkit::testpki::GENERATE_LOCK.to_owned());
    assert_eq!(names, expected);
    for i in 0..5u64 {
        assert_eq!(
            std::fs::read_to_string(cache.key_path(i)).unwrap(),
            seen[0][i as usize]
        );
        #[cfg(unix)]
        assert_eq!(mode(&cache.key_path(i)), 0o600);
    }
    #[cfg(unix)]
    assert_eq!(mode(cache.dir()), 0o700);
    // A warm cache generates nothing: the same keys come back.
    let again: Vec<String> = cache
        .keys(0..5)
        .unwrap()
        .iter()
        .map(|k| k.pem().to_owned())
        .collect();
    assert_eq!(again, seen[0]);
}

#[test]
fn the_key_cache_location_follows_the_environment() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| std::ffi::OsString::from(v))
        }
    };
    let at = |vars| KeyCache::location(env(vars));
    let all = &[
        (KEY_CACHE_ENV, "/k"),
        ("XDG_CACHE_HOME", "/x"),
        ("HOME", "/h"),
    ];
    assert_eq!(at(all).unwrap(), Path::new("/k"));
    assert_eq!(
        at(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]).unwrap(),
        Path::new("/x/kiosk-devkit/card-keys")
    );
    // A relative XDG_CACHE_HOME is invalid by the XDG specification and ignored.
    assert_eq!(
        at(&[("XDG_CACHE_HOME", "x"), ("HOME", "/h")]).unwrap(),
        Path::new("/h/.cache/kiosk-devkit/card-keys")
    );
    assert_eq!(
        at(&[(KEY_CACHE_ENV, ""), ("HOME", "/h")]).unwrap(),
        Path::new("/h/.cache/kiosk-devkit/card-keys")
    );
    // A relative cache would differ per package directory: refused, with the reason.
    let relative = at(&[(KEY_CACHE_ENV, "cache"), ("HOME", "/h")]).unwrap_err();
    assert!(relative.to_string().contains("absolute"), "{relative}");
    assert!(matches!(at(&[]).unwrap_err(), PkiError::KeyCache(_)));
}

#[cfg(unix)]
#[test]
fn a_key_cache_other_users_can_open_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    match KeyCache::open(&shared) {
        Err(PkiError::KeyCacheExposed(path)) => assert_eq!(path, shared),
        other => panic!("expected KeyCacheExposed, got {other:?}"),
    }
}

#[test]
fn a_damaged_cached_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cache = KeyCache::open(&dir.path().join("card-keys")).unwrap();
    std::fs::write(cache.key_path(0), "-----BEGIN PRIVATE KEY-----\ncut short").unwrap();
    let spec = DevPkiSpec::development(::time::OffsetDateTime::now_utc());
    match DevPki::generate_with(&dir.path().join("pki"), &spec, &cache) {
        Err(PkiError::CachedKey(path)) => assert_eq!(path, cache.key_path(0)),
        other => panic!("expected CachedKey, got {other:?}"),
    }
}

#[test]
fn a_pki_whose_cards_share_keys_is_refused_with_the_reason() {
    // The marker every PKI had while eight committed keys served all cards.
    let old = "# TEST ONLY — not a real PKI\n\n\
Generated by `card::testpki` (binary `card-testpki`). Every private key here is a test key,\n\
unencrypted and public. The card keys come from a pool of eight committed RSA-2048 keys, so\n\
several cards share a key. Never trust these certificates outside tests and demos.\n\n\
Certificates: `<stem>.crt.pem`, keys: `<stem>.key.pem` (PKCS#8). The user-authentication CA's\n\
CRL: `jpki-auth-ca.crl.der` / `.pem`. Card files: `cards/*.toml` (PINs in clear text).\n\
Terminal identity: SAN URI `urn:kiosk:terminal:<chain>/<store>/<terminal>`.\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(files::README), old).unwrap();
    match DevPki::open(dir.path()) {
        Err(e @ PkiError::SharedKeyPool(_)) => assert!(e.to_string().contains("delete it")),
        other => panic!("expected SharedKeyPool, got {other:?}"),
    }
    // So is `ensure`, which `serve` calls: it must not reuse such a deployment silently.
    assert!(matches!(
        DevPki::ensure(dir.path()),
        Err(PkiError::SharedKeyPool(_))
    ));
}
