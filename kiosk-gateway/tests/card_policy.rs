//! Card certificate policies and the binding key, through `CardVerifier::verify` with real
//! signatures: a development card (J-LIS test policy) is accepted by the development profile
//! and refused by a production one with CARD_TEST_POLICY; a card with the production JPKI
//! policy the other way round; a card without a policy, or with an unknown one, is
//! CARD_POLICY_UNACCEPTED everywhere; a card without an authority key identifier is
//! CARD_CERTIFICATE_MALFORMED. The verified card's key is the CA's key identifier and the
//! serial, as `CardKey::of_der` and the bindings file compute it.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed assertion")]

use card::Pin;
use kiosk_devkit::softcard::{SoftCard, SoftTransport};
use kiosk_devkit::testpki::{DevPki, DevPkiSpec, files};
use kiosk_gateway::cardauth::{
    CardKey, CardPolicies, CardVerifier, JLIS_TEST_POLICY, JPKI_AUTH_POLICY, VerifiedCard,
};
use kiosk_gateway::error::GatewayError;
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod,
    KeyPair, KeyUsagePurpose, SerialNumber,
};

const CONTEXT: &[u8] = b"gw|t/s/k|s-1";
const CHALLENGE: [u8; 32] = [7; 32];

/// A development PKI, one minted card's login proof (certificate and signature over the
/// login), and the card's key PEM, for re-certifying the same key with other extensions.
struct Fixture {
    _dir: tempfile::TempDir,
    pki: DevPki,
    certificate: Vec<u8>,
    signature: Vec<u8>,
    key_pem: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let pki = DevPki::generate(&dir.path().join("pki"), &DevPkiSpec::development(now)).unwrap();
    let pin = Pin::parse("1234").unwrap();
    let file = pki.card_minter().unwrap().mint(424_242, &pin).unwrap();
    let key_pem = file.auth.as_ref().unwrap().key.clone().unwrap();
    let card = SoftCard::from_file(file).unwrap();
    let proof =
        kiosk_terminal::login::sign_login(SoftTransport::new(card), &pin, &CHALLENGE, CONTEXT)
            .unwrap();
    Fixture {
        _dir: dir,
        pki,
        certificate: proof.certificate,
        signature: proof.signature,
        key_pem,
    }
}

impl Fixture {
    fn verify(&self, policies: CardPolicies, certificate: &[u8]) -> Result<VerifiedCard, String> {
        let verifier = CardVerifier::new(
            vec![self.pki.cert_der(files::JPKI_AUTH_CA).unwrap()],
            &[self.pki.crl_der().unwrap()],
            policies,
        )
        .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        verifier
            .verify(certificate, &self.signature, CONTEXT, &CHALLENGE, now)
            .map_err(|e| match e {
                GatewayError::Refused { reason, .. } => reason.name.to_owned(),
                other => panic!("{other}"),
            })
    }

    /// The card's key certified again by the card CA, with `policies` (none: no extension)
    /// and an authority key identifier when `aki`.
    fn recertified(&self, policies: &[&str], aki: bool) -> Vec<u8> {
        let ca_pem = std::fs::read_to_string(self.pki.cert_path(files::JPKI_AUTH_CA)).unwrap();
        let ca_key = std::fs::read_to_string(self.pki.key_path(files::JPKI_AUTH_CA)).unwrap();
        let issuer =
            Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key).unwrap()).unwrap();
        let mut params = CertificateParams::default();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(30);
        params.serial_number = Some(SerialNumber::from(424_243u64));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "JP");
        dn.push(DnType::CommonName, "RECERTIFIED");
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = aki;
        params.key_identifier_method = KeyIdMethod::Sha256;
        if !policies.is_empty() {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &[2, 5, 29, 32],
                    policies_der(policies),
                ));
        }
        let key = KeyPair::from_pem(&self.key_pem).unwrap();
        params.signed_by(&key, &issuer).unwrap().der().to_vec()
    }
}

/// `SEQUENCE OF SEQUENCE { OID }` for dotted `oids` (short forms only: every test OID fits).
fn policies_der(oids: &[&str]) -> Vec<u8> {
    let mut infos = Vec::new();
    for oid in oids {
        let arcs: Vec<u64> = oid.split('.').map(|a| a.parse().unwrap()).collect();
        let mut body = vec![u8::try_from(arcs[0] * 40 + arcs[1]).unwrap()];
        for arc in &arcs[2..] {
            let mut bytes = vec![(arc & 0x7f) as u8];
            let mut rest = arc >> 7;
            while rest > 0 {
                bytes.insert(0, (rest & 0x7f) as u8 | 0x80);
                rest >>= 7;
            }
            body.extend(bytes);
        }
        let oid = [vec![0x06, u8::try_from(body.len()).unwrap()], body].concat();
        infos.extend([vec![0x30, u8::try_from(oid.len()).unwrap()], oid].concat());
    }
    [vec![0x30, u8::try_from(infos.len()).unwrap()], infos].concat()
}

#[test]
fn a_development_card_is_a_test_card() {
    let f = fixture();
    let verified = f
        .verify(CardPolicies::development(), &f.certificate)
        .unwrap();
    assert_eq!(
        f.verify(CardPolicies::production(), &f.certificate),
        Err("CARD_TEST_POLICY".to_owned())
    );
    let both = CardPolicies::from_list(&[JPKI_AUTH_POLICY.into(), JLIS_TEST_POLICY.into()]);
    assert!(f.verify(both.unwrap(), &f.certificate).is_ok());

    // The binding key: the card CA's subject key identifier and the serial.
    let key = verified.key();
    assert_eq!(key, &CardKey::of_der(&f.certificate).unwrap());
    assert_eq!(
        key.issuer_key_id,
        kiosk_devkit::cards::card_issuer_key_id(&f.pki).unwrap()
    );
    assert_eq!(key.serial, issuer::bindings::serial_hex(424_242));
}

#[test]
fn policies_decide_by_configuration() {
    let f = fixture();
    let production = f.recertified(&[JPKI_AUTH_POLICY], true);
    assert!(f.verify(CardPolicies::production(), &production).is_ok());
    assert_eq!(
        f.verify(CardPolicies::development(), &production),
        Err("CARD_POLICY_UNACCEPTED".to_owned())
    );
    // Several policies: one accepted is enough.
    let mixed = f.recertified(&["1.2.3.4", JPKI_AUTH_POLICY], true);
    assert!(f.verify(CardPolicies::production(), &mixed).is_ok());
    for (policies, what) in [(&[][..], "no policy"), (&["1.2.3.4"][..], "unknown")] {
        let cert = f.recertified(policies, true);
        for accepted in [CardPolicies::production(), CardPolicies::development()] {
            assert_eq!(
                f.verify(accepted, &cert),
                Err("CARD_POLICY_UNACCEPTED".to_owned()),
                "{what}"
            );
        }
    }
    // An authority key identifier is what binds the card: without one it is malformed.
    let no_aki = f.recertified(&[JPKI_AUTH_POLICY], false);
    assert_eq!(
        f.verify(CardPolicies::production(), &no_aki),
        Err("CARD_CERTIFICATE_MALFORMED".to_owned())
    );
    assert!(CardKey::of_der(&no_aki).is_err());
}

#[test]
fn policy_lists_are_checked_and_name_the_entry() {
    assert!(CardPolicies::from_list(&[]).unwrap_err().contains("empty"));
    let error = CardPolicies::from_list(&[JPKI_AUTH_POLICY.into(), "1.2.x".into()]).unwrap_err();
    assert!(error.contains("entry 2"), "{error}");
    for bad in ["", "1", "1..2", "01.2", "1.2.", " 1.2"] {
        assert!(CardPolicies::from_list(&[bad.into()]).is_err(), "{bad:?}");
    }
    let listed = CardPolicies::from_list(&[JLIS_TEST_POLICY.into()]).unwrap();
    assert!(listed.accepts(JLIS_TEST_POLICY) && !listed.accepts(JPKI_AUTH_POLICY));
}
