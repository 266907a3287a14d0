//! The JPKI client against the software card, in process: the card-profile behaviour, the
//! typed errors, the PIN counter and the login step. The same client runs over real pcscd in
//! `pcsc_stack.rs`.
// Helpers outside #[test] functions panic on purpose: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use card::apdu::{Command, Response, StatusWord};
use card::jpki::{JpkiCard, JpkiError};
use card::transport::{Transport, TransportError};
use card::{Pin, login};
use kiosk_devkit::softcard::{CardFile, SoftCard, SoftTransport};

fn fixture(name: &str) -> CardFile {
    CardFile::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/pki/cards")
            .join(format!("{name}.toml")),
    )
    .unwrap()
}

fn resident() -> SoftTransport {
    SoftTransport::new(SoftCard::from_file(fixture("resident-0001")).unwrap())
}

fn pin(s: &str) -> Pin {
    Pin::parse(s).unwrap()
}

fn apdu(card: &mut SoftCard, bytes: &[u8]) -> Response {
    Response::parse(&card.process(bytes)).unwrap()
}

const SELECT_JPKI: [u8; 15] = [
    0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01,
];

fn select_ef(card: &mut SoftCard, fid: u16) -> StatusWord {
    let [hi, lo] = fid.to_be_bytes();
    apdu(card, &[0x00, 0xA4, 0x02, 0x0C, 0x02, hi, lo]).sw()
}

#[test]
fn reads_certificates_and_counts_tries() {
    let mut t = resident();
    let mut card = JpkiCard::open(&mut t).unwrap();
    let cert = card.read_auth_certificate().unwrap();
    let pem = fixture("resident-0001").auth.unwrap().certificate.unwrap();
    let expected = kiosk_document::pem::certificate_der(pem.as_bytes()).unwrap();
    assert_eq!(cert, expected);
    assert!(cert.len() > 256, "needs more than one READ BINARY chunk");
    let ca = card.read_auth_ca_certificate().unwrap();
    assert_ne!(ca, cert);
    assert_eq!(card.pin_tries_left().unwrap(), 3);
}

#[test]
fn wrong_pin_then_right_pin_resets_counter_and_signs() {
    let mut t = resident();
    let card = JpkiCard::open(&mut t).unwrap();
    let failed = card.verify_pin(&pin("0000")).unwrap_err();
    assert_eq!(failed.error(), &JpkiError::WrongPin { tries_left: 2 });
    let mut card = failed.into_card();
    assert_eq!(card.pin_tries_left().unwrap(), 2);
    let mut verified = card.verify_pin(&pin("1234")).unwrap();
    let context = login::context_bytes("gw-dev-01", "seven/131016-0042/k1", "s-1").unwrap();
    let challenge = [7u8; 32];
    let proof = login::authenticate(&mut verified, &challenge, &context).unwrap();
    assert_eq!(proof.signature.len(), 256);
    login::verify_signature(&proof.certificate, &context, &challenge, &proof.signature).unwrap();
    // Bound to the context: another session's context does not verify.
    let other = login::context_bytes("gw-dev-01", "seven/131016-0042/k1", "s-2").unwrap();
    assert_eq!(
        login::verify_signature(&proof.certificate, &other, &challenge, &proof.signature),
        Err(login::SignatureError::BadSignature)
    );
    let mut card = verified.into_card();
    assert_eq!(
        card.pin_tries_left().unwrap(),
        3,
        "a correct PIN resets the counter"
    );
}

#[test]
fn login_step_matches_contract_vector_digest_info() {
    // The card signs exactly login::digest_info; check by recovering it with the public
    // key (ring verifies RSASSA-PKCS1-v1_5 SHA-256 over signed_message).
    let json = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proto/kiosk/v1/testdata/card_auth_vector.json"
    ))
    .unwrap();
    let field = |k: &str| {
        let needle = format!("\"{k}\": \"");
        let s = json.find(&needle).unwrap() + needle.len();
        json[s..s + json[s..].find('"').unwrap()].to_owned()
    };
    let context = login::context_bytes(
        &field("gateway_id"),
        &field("terminal_id"),
        &field("session_id"),
    )
    .unwrap();
    let challenge: Vec<u8> = (0u8..32).collect();
    let mut t = resident();
    let mut verified = JpkiCard::open(&mut t)
        .unwrap()
        .verify_pin(&pin("1234"))
        .unwrap();
    let proof = login::authenticate(&mut verified, &challenge, &context).unwrap();
    let signed = hex_decode(&field("signed_message_hex"));
    let (_, cert) = x509_parser::parse_x509_certificate(&proof.certificate).unwrap();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        cert.tbs_certificate
            .subject_pki
            .subject_public_key
            .data
            .as_ref(),
    )
    .verify(&signed, &proof.signature)
    .unwrap();
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn three_wrong_pins_block_and_the_block_persists() {
    let mut t = resident();
    let mut card = JpkiCard::open(&mut t).unwrap();
    for expected in [
        JpkiError::WrongPin { tries_left: 2 },
        JpkiError::WrongPin { tries_left: 1 },
        JpkiError::PinBlocked,
    ] {
        let failed = card.verify_pin(&pin("9999")).unwrap_err();
        assert_eq!(failed.error(), &expected);
        card = failed.into_card();
    }
    assert_eq!(card.pin_tries_left().unwrap(), 0);
    let failed = card.verify_pin(&pin("1234")).unwrap_err();
    assert_eq!(
        failed.error(),
        &JpkiError::PinBlocked,
        "the right PIN cannot unblock"
    );
    drop(failed);
    // The counter is in the card file: save, reload, still blocked.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.toml");
    assert!(t.card_mut().take_counters_changed());
    t.card().card_file().save(&path).unwrap();
    let mut reloaded = SoftTransport::new(SoftCard::load(&path).unwrap());
    let mut card = JpkiCard::open(&mut reloaded).unwrap();
    assert_eq!(card.pin_tries_left().unwrap(), 0);
    // Raw: VERIFY with data on a blocked PIN is 6983, the empty VERIFY stays 63C0 (OpenSC).
    let raw = reloaded.card_mut();
    assert_eq!(apdu(raw, &SELECT_JPKI).sw(), StatusWord::OK);
    assert_eq!(select_ef(raw, 0x0018), StatusWord::OK);
    assert_eq!(
        apdu(raw, &[0, 0x20, 0, 0x80, 4, b'1', b'2', b'3', b'4']).sw(),
        StatusWord::AUTH_BLOCKED
    );
    assert_eq!(
        apdu(raw, &[0, 0x20, 0, 0x80]).sw(),
        StatusWord::tries_left(0)
    );
}

#[test]
fn counter_survives_power_cycles_but_security_state_does_not() {
    let mut t = resident();
    let card = JpkiCard::open(&mut t).unwrap();
    let card = card.verify_pin(&pin("1111")).unwrap_err().into_card();
    let mut verified = card.verify_pin(&pin("1234")).unwrap();
    verified.sign_digest_info(&[0x30; 51]).unwrap();
    let raw = t.card_mut();
    raw.power_off();
    raw.power_on();
    // After power-on the AP must be selected again and the PIN verified again.
    assert_eq!(select_ef(raw, 0x0017), StatusWord::FILE_NOT_FOUND);
    assert_eq!(apdu(raw, &SELECT_JPKI).sw(), StatusWord::OK);
    assert_eq!(select_ef(raw, 0x0017), StatusWord::OK);
    let sign = [&[0x80, 0x2A, 0x00, 0x80, 0x33][..], &[0x30; 51], &[0x00]].concat();
    assert_eq!(apdu(raw, &sign).sw(), StatusWord::SECURITY_NOT_SATISFIED);
    // Wrong PIN then power cycle: the counter stays decremented.
    assert_eq!(select_ef(raw, 0x0018), StatusWord::OK);
    assert_eq!(
        apdu(raw, &[0, 0x20, 0, 0x80, 4, b'0', b'0', b'0', b'0']).sw(),
        StatusWord::tries_left(2)
    );
    raw.reset();
    apdu(raw, &SELECT_JPKI);
    select_ef(raw, 0x0018);
    assert_eq!(
        apdu(raw, &[0, 0x20, 0, 0x80]).sw(),
        StatusWord::tries_left(2)
    );
}

#[test]
fn sign_after_reset_with_stale_proof_is_not_verified() {
    // A transport that resets the card right before the signing command, as a PC/SC reset
    // by another application would.
    struct ResetBeforeSign(SoftTransport);
    impl Transport for ResetBeforeSign {
        fn transmit(&mut self, c: &Command) -> Result<Response, TransportError> {
            if c.ins() == 0x2A {
                self.0.card_mut().reset();
                // The AP must be selected for the key EF to be current again.
                self.0.card_mut().process(&SELECT_JPKI);
                self.0
                    .card_mut()
                    .process(&[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x17]);
            }
            self.0.transmit(c)
        }
    }
    let t = ResetBeforeSign(resident());
    let mut verified = JpkiCard::open(t).unwrap().verify_pin(&pin("1234")).unwrap();
    assert_eq!(
        verified.sign_digest_info(&[0x30; 51]),
        Err(JpkiError::NotVerified)
    );
}

#[test]
fn juki_card_is_refused_with_its_own_error() {
    let mut t = SoftTransport::new(SoftCard::from_file(fixture("juki-0004")).unwrap());
    assert_eq!(JpkiCard::open(&mut t).unwrap_err(), JpkiError::JukiCard);
}

#[test]
fn other_cards_are_not_jpki() {
    /// A card with no JPKI application: every SELECT is "not found".
    struct OtherCard;
    impl Transport for OtherCard {
        fn transmit(&mut self, _: &Command) -> Result<Response, TransportError> {
            Ok(Response::status(StatusWord::FILE_NOT_FOUND))
        }
    }
    assert_eq!(
        JpkiCard::open(OtherCard).unwrap_err(),
        JpkiError::NotJpkiCard
    );
    /// A card that does not know the class/instruction at all.
    struct ForeignCard;
    impl Transport for ForeignCard {
        fn transmit(&mut self, _: &Command) -> Result<Response, TransportError> {
            Ok(Response::status(StatusWord::CLA_NOT_SUPPORTED))
        }
    }
    assert_eq!(
        JpkiCard::open(ForeignCard).unwrap_err(),
        JpkiError::NotJpkiCard
    );
}

#[test]
fn removed_card_is_card_removed() {
    let mut t = resident();
    let mut card = JpkiCard::open(&mut t).unwrap();
    card.read_auth_certificate().unwrap();
    t.remove();
    assert_eq!(JpkiCard::open(&mut t).unwrap_err(), JpkiError::CardRemoved);
}

#[test]
fn status_words_for_bad_commands() {
    let mut c = SoftCard::from_file(fixture("resident-0001")).unwrap();
    c.power_on();
    // Foreign AIDs (what OpenSC's other drivers probe) are not found.
    let piv = [
        0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00,
    ];
    assert_eq!(apdu(&mut c, &piv).sw(), StatusWord::FILE_NOT_FOUND);
    assert_eq!(
        apdu(&mut c, &[0xB0, 0xA4, 0x04, 0x00, 0x01, 0x00]).sw(),
        StatusWord::CLA_NOT_SUPPORTED
    );
    assert_eq!(
        apdu(&mut c, &[0x00, 0xCA, 0xDF, 0x30, 0x00]).sw(),
        StatusWord::INS_NOT_SUPPORTED
    );
    assert_eq!(
        apdu(&mut c, &[0x00, 0xA4]).sw(),
        StatusWord::WRONG_LENGTH,
        "malformed"
    );
    assert_eq!(apdu(&mut c, &SELECT_JPKI).sw(), StatusWord::OK);
    assert_eq!(
        apdu(&mut c, &[0x00, 0xA4, 0x02, 0x0C, 0x01, 0x0A]).sw(),
        StatusWord::WRONG_LENGTH
    );
    assert_eq!(
        apdu(&mut c, &[0x00, 0xA4, 0x07, 0x0C, 0x02, 0x00, 0x0A]).sw(),
        StatusWord::WRONG_P1P2
    );
    assert_eq!(select_ef(&mut c, 0x1234), StatusWord::FILE_NOT_FOUND);
    // No current EF.
    assert_eq!(
        apdu(&mut c, &[0x00, 0xB0, 0x00, 0x00, 0x04]).sw(),
        StatusWord::NO_CURRENT_EF
    );
    assert_eq!(
        apdu(&mut c, &[0x00, 0x20, 0x00, 0x80]).sw(),
        StatusWord::NO_CURRENT_EF
    );
    // READ BINARY: header, offsets, end of file, past the end.
    assert_eq!(select_ef(&mut c, 0x000A), StatusWord::OK);
    let head = apdu(&mut c, &[0x00, 0xB0, 0x00, 0x00, 0x04]);
    assert_eq!(head.sw(), StatusWord::OK);
    assert_eq!(head.data()[..2], [0x30, 0x82]);
    let len = 4 + usize::from(u16::from_be_bytes([head.data()[2], head.data()[3]]));
    let [hi, lo] = ((len - 2) as u16).to_be_bytes();
    let tail = apdu(&mut c, &[0x00, 0xB0, hi, lo, 0x10]);
    assert_eq!((tail.data().len(), tail.sw()), (2, StatusWord::END_OF_FILE));
    let [hi, lo] = (len as u16).to_be_bytes();
    assert_eq!(
        apdu(&mut c, &[0x00, 0xB0, hi, lo, 0x01]).sw(),
        StatusWord::WRONG_OFFSET
    );
    // Extended Le reads the whole certificate at once (pymyna does this).
    let [hi, lo] = (len as u16).to_be_bytes();
    let whole = apdu(&mut c, &[0x00, 0xB0, 0x00, 0x00, 0x00, hi, lo]);
    assert_eq!((whole.data().len(), whole.sw()), (len, StatusWord::OK));
    // The signature certificate needs the signature password.
    assert_eq!(select_ef(&mut c, 0x0001), StatusWord::OK);
    assert_eq!(
        apdu(&mut c, &[0x00, 0xB0, 0x00, 0x00, 0x04]).sw(),
        StatusWord::SECURITY_NOT_SATISFIED
    );
    assert_eq!(select_ef(&mut c, 0x001B), StatusWord::OK);
    assert_eq!(
        apdu(&mut c, &[0x00, 0x20, 0x00, 0x80]).sw(),
        StatusWord::tries_left(5)
    );
    assert_eq!(
        apdu(
            &mut c,
            &[
                0x00, 0x20, 0x00, 0x80, 6, b'A', b'B', b'C', b'1', b'2', b'3'
            ]
        )
        .sw(),
        StatusWord::OK
    );
    assert_eq!(select_ef(&mut c, 0x0001), StatusWord::OK);
    assert_eq!(
        apdu(&mut c, &[0x00, 0xB0, 0x00, 0x00, 0x04]).sw(),
        StatusWord::OK
    );
    // Signing: no key selected, then wrong P1/P2, then too long, then without the auth PIN.
    let sign = |data: &[u8]| {
        [
            &[0x80, 0x2A, 0x00, 0x80, data.len() as u8][..],
            data,
            &[0x00],
        ]
        .concat()
    };
    assert_eq!(
        apdu(&mut c, &sign(&[0x30; 51])).sw(),
        StatusWord::NO_CURRENT_EF
    );
    assert_eq!(select_ef(&mut c, 0x0017), StatusWord::OK);
    assert_eq!(
        apdu(&mut c, &[0x80, 0x2A, 0x9E, 0x9A, 0x01, 0x00, 0x00]).sw(),
        StatusWord::WRONG_P1P2
    );
    assert_eq!(
        apdu(&mut c, &sign(&[0x30; 51])).sw(),
        StatusWord::SECURITY_NOT_SATISFIED
    );
    assert_eq!(select_ef(&mut c, 0x0018), StatusWord::OK);
    assert_eq!(
        apdu(&mut c, &[0, 0x20, 0, 0x80, 4, b'1', b'2', b'3', b'4']).sw(),
        StatusWord::OK
    );
    assert_eq!(select_ef(&mut c, 0x0017), StatusWord::OK);
    assert_eq!(
        apdu(&mut c, &sign(&[0x30; 246])).sw(),
        StatusWord::WRONG_LENGTH
    );
    // Without Le the card says which Le to use.
    let no_le = [&[0x80, 0x2A, 0x00, 0x80, 51][..], &[0x30; 51]].concat();
    assert_eq!(apdu(&mut c, &no_le).sw(), StatusWord::new(0x6C, 0x00));
    let ok = apdu(&mut c, &sign(&[0x30; 51]));
    assert_eq!((ok.data().len(), ok.sw()), (256, StatusWord::OK));
}

#[test]
fn card_files_reject_bad_content_without_printing_secrets() {
    let mut file = fixture("resident-0001");
    file.auth.as_mut().unwrap().pin = "12345".into();
    let e = SoftCard::from_file(file).unwrap_err().to_string();
    assert!(!e.contains("12345"), "{e}");
    let mut file = fixture("resident-0001");
    file.auth.as_mut().unwrap().key =
        Some("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into());
    assert!(SoftCard::from_file(file).is_err());
    let file = fixture("resident-0001");
    let shown = format!("{file:?}");
    assert!(
        !shown.contains("1234") && !shown.contains("PRIVATE"),
        "{shown}"
    );
    assert!(CardFile::from_toml("kind = \"floppy\"").is_err());
}

/// One host action in the model-based test below.
#[derive(Debug, Clone)]
enum Op {
    SelectAp,
    SelectAuthPin,
    SelectAuthKey,
    SelectCert,
    VerifyRight,
    VerifyWrong,
    VerifyEmpty,
    Sign,
    Read(u16, u16),
    Reset,
    Garbage(Vec<u8>),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Op::SelectAp),
        Just(Op::SelectAuthPin),
        Just(Op::SelectAuthKey),
        Just(Op::SelectCert),
        Just(Op::VerifyRight),
        Just(Op::VerifyWrong),
        Just(Op::VerifyEmpty),
        Just(Op::Sign),
        (0u16..1200, 1u16..300).prop_map(|(o, l)| Op::Read(o, l)),
        Just(Op::Reset),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Op::Garbage),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Against a simple model: the counter only falls by one per wrong PIN, returns to 3 only on
    /// the right PIN, never moves while blocked; signing works exactly when the PIN was verified
    /// since the last reset or AP selection; nothing panics.
    #[test]
    fn software_card_follows_the_pin_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut card = SoftCard::from_file(fixture("resident-0001")).unwrap();
        card.power_on();
        let (mut tries, mut verified, mut ap, mut current) = (3u8, false, false, 0u16);
        for op in ops {
            let sw = match &op {
                Op::SelectAp => {
                    ap = true;
                    verified = false;
                    current = 0;
                    apdu(&mut card, &SELECT_JPKI).sw()
                }
                Op::SelectAuthPin | Op::SelectAuthKey | Op::SelectCert => {
                    let fid = match op { Op::SelectAuthPin => 0x18, Op::SelectAuthKey => 0x17, _ => 0x0A };
                    let sw = select_ef(&mut card, fid);
                    if ap { current = fid; }
                    proptest::prop_assert_eq!(sw.is_ok(), ap);
                    sw
                }
                Op::VerifyRight | Op::VerifyWrong => {
                    let pin: &[u8] = if matches!(op, Op::VerifyRight) { b"1234" } else { b"4321" };
                    let sw = apdu(&mut card, &[&[0, 0x20, 0, 0x80, 4][..], pin].concat()).sw();
                    if current == 0x18 {
                        if tries == 0 {
                            proptest::prop_assert_eq!(sw, StatusWord::AUTH_BLOCKED);
                        } else if matches!(op, Op::VerifyRight) {
                            tries = 3;
                            verified = true;
                            proptest::prop_assert_eq!(sw, StatusWord::OK);
                        } else {
                            tries -= 1;
                            verified = false;
                            proptest::prop_assert_eq!(sw, StatusWord::tries_left(tries));
                        }
                    }
                    sw
                }
                Op::VerifyEmpty => {
                    let sw = apdu(&mut card, &[0, 0x20, 0, 0x80]).sw();
                    if current == 0x18 {
                        proptest::prop_assert_eq!(sw, StatusWord::tries_left(tries));
                    }
                    sw
                }
                Op::Sign => {
                    let r = apdu(&mut card, &[&[0x80, 0x2A, 0, 0x80, 51][..], &[0x30; 51], &[0]].concat());
                    if current == 0x17 {
                        proptest::prop_assert_eq!(r.sw().is_ok(), verified);
                    } else {
                        proptest::prop_assert!(!r.sw().is_ok());
                    }
                    r.sw()
                }
                Op::Read(offset, len) => {
                    let [hi, lo] = offset.to_be_bytes();
                    let le = (*len).min(256);
                    let r = apdu(&mut card, &[0, 0xB0, hi & 0x7F, lo, le as u8]);
                    proptest::prop_assert!(r.data().len() <= usize::from(le));
                    r.sw()
                }
                Op::Reset => {
                    card.reset();
                    ap = false;
                    verified = false;
                    current = 0;
                    StatusWord::OK
                }
                Op::Garbage(bytes) => {
                    // Unknown commands must not change the model's state; a garbage SELECT
                    // could, so garbage starts with an unsupported class.
                    let mut cmd = vec![0xB0];
                    cmd.extend_from_slice(bytes);
                    let reply = card.process(&cmd);
                    proptest::prop_assert!(reply.len() >= 2);
                    StatusWord::OK
                }
            };
            let _ = sw;
            proptest::prop_assert_eq!(card.card_file().auth.unwrap().tries_left, tries);
        }
    }
}
