//! TEST ONLY: the development and test PKI — every certificate the system needs, and the
//! resident card files that go with it.
//!
//! Nothing here is for production: every private key is written to disk unencrypted (owner
//! only: files 0600, directories 0700).
//!
//! **Card keys.** Every card of a PKI has its own RSA-2048 key pairs, distinct from every
//! other card's (both sides of a My Number card included): the login verifies the card's
//! signature against the public key of the certificate the terminal presents, so two cards
//! with one key would be indistinguishable (issue 10). ring cannot generate RSA keys, so the
//! keys are generated with the `rsa` crate on first need and kept in a per-user cache
//! ([`KeyCache`], `$KIOSK_KEY_CACHE` or `~/.cache/kiosk-devkit/card-keys`); the PKI
//! directory counts the cache indices it has handed out (`card-keys.next`, updated under a
//! lock), so minters in several processes of one deployment — the gateway, `kiosk-devkit
//! generate` — never take an index twice. Different deployments do use the same cached
//! keys, under different CAs.
//!
//! Layout of a generated directory (file stems are constants in [`files`]):
//!
//! | stem | what | key | signed by |
//! |---|---|---|---|
//! | `jpki-auth-ca` | JPKI-like user-authentication CA, + `jpki-auth-ca.crl.{der,pem}` | P-256 | self |
//! | `jpki-sign-ca` | JPKI-like signature CA (signature side of the test cards) | P-256 | self |
//! | `terminal-ca` | terminal CA | P-256 | self |
//! | `terminal-<chain>-<store>-<terminal>` | terminal client certificates | P-256 | terminal-ca |
//! | `server-ca` | root of the gateway's public TLS certificate | P-256 | self |
//! | `gateway` | the gateway's TLS server certificate (localhost, 127.0.0.1) | P-256 | server-ca |
//! | `internal-ca` | internal mutual-TLS CA (gateway ↔ issuer) | P-256 | self |
//! | `issuer` | an issuer's internal server+client certificate | P-256 | internal-ca |
//! | `gateway-internal` | the gateway's internal client certificate | P-256 | internal-ca |
//! | `auditor-ca`, `auditor` | auditor CA and one auditor client certificate | P-256 | auditor-ca |
//! | `municipality-ca` | document-signing CA | P-256 | self |
//! | `municipality-<code>` | per-municipality document-signing certificate | P-256 | municipality-ca |
//! | `cards/*.toml` | software card files ([`crate::softcard::CardFile`]) | RSA-2048, one per card side | jpki-auth-ca (signature side: jpki-sign-ca) |
//! | `card-keys.next`, `card-keys.lock` | the next card key index of this PKI, and its lock | | |
//!
//! Each certificate is `<stem>.crt.pem` with its PKCS#8 key in `<stem>.key.pem`.
//!
//! **Naming terminals.** A terminal certificate carries its identity twice: the subject
//! (`O` = chain, `OU` = store, `CN` = terminal) for people, and one SAN URI
//! `urn:kiosk:terminal:<chain>/<store>/<terminal>` ([`TerminalName::uri`]) for programs. The
//! gateway should parse the URI with [`TerminalName::from_uri`] and ignore the subject.
//! Similarly auditors get `urn:kiosk:auditor:<name>`, issuers `urn:kiosk:issuer:<name>`,
//! the gateway's internal client `urn:kiosk:gateway:<id>` and document-signing certificates
//! `urn:kiosk:municipality:<code>`.
//!
//! **Card certificates.** Subject `C=JP, O=JPKI TEST, CN=TEST CARD <serial>` — no personal
//! data; key usage digitalSignature (critical); no extended key usage (so webpki's
//! `KeyUsage::client_auth()`, which accepts a missing EKU, is the right check); the J-LIS
//! test-card certificate policy 1.2.392.200149.8.5.1.0.20 (not the production
//! user-authentication policy), which the gateway's development profile accepts and a
//! production gateway refuses; an authority key identifier (the CA's SHA-256-derived
//! subject key identifier): the gateway maps (that key identifier, serial) to a resident.
//! The committed fixture set predates the policy: its cards carry none.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::private_file;
use crate::softcard::{CardFile, CardKind, SideFile};

mod keys;

pub use keys::{CardKey, GENERATE_LOCK, KEY_CACHE_ENV, KeyCache};

/// File stems and names in a generated PKI directory.
pub mod files {
    /// User-authentication CA (cards' issuer).
    pub const JPKI_AUTH_CA: &str = "jpki-auth-ca";
    /// Signature CA (signature side of the test cards).
    pub const JPKI_SIGN_CA: &str = "jpki-sign-ca";
    /// The CRL of the user-authentication CA, DER.
    pub const JPKI_AUTH_CRL_DER: &str = "jpki-auth-ca.crl.der";
    /// The CRL of the user-authentication CA, PEM.
    pub const JPKI_AUTH_CRL_PEM: &str = "jpki-auth-ca.crl.pem";
    /// Terminal CA.
    pub const TERMINAL_CA: &str = "terminal-ca";
    /// Root of the gateway's TLS server certificate.
    pub const SERVER_CA: &str = "server-ca";
    /// The gateway's TLS server certificate.
    pub const GATEWAY: &str = "gateway";
    /// Internal mutual-TLS CA.
    pub const INTERNAL_CA: &str = "internal-ca";
    /// An issuer's internal certificate (server and client).
    pub const ISSUER: &str = "issuer";
    /// The gateway's internal client certificate.
    pub const GATEWAY_INTERNAL: &str = "gateway-internal";
    /// Auditor CA.
    pub const AUDITOR_CA: &str = "auditor-ca";
    /// An auditor's client certificate.
    pub const AUDITOR: &str = "auditor";
    /// Document-signing CA of the municipalities.
    pub const MUNICIPALITY_CA: &str = "municipality-ca";
    /// Directory of card files.
    pub const CARDS_DIR: &str = "cards";
    /// The TEST ONLY marker written into every generated directory.
    pub const README: &str = "README.md";
    /// The next card key index of this PKI (decimal): every index below it is taken.
    pub const CARD_KEYS_NEXT: &str = "card-keys.next";
    /// The lock held while [`CARD_KEYS_NEXT`] is read and advanced.
    pub const CARD_KEYS_LOCK: &str = "card-keys.lock";
}

/// Failures of the test PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Certificate or key generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// Reading or writing files failed.
    #[error("test PKI I/O at {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A card file could not be written.
    #[error("card file: {0}")]
    CardFile(#[from] crate::softcard::CardFileError),
    /// A name does not fit the naming rules.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The card key cache cannot be located.
    #[error("card key cache: {0}")]
    KeyCache(String),
    /// The card key cache directory is open to other users.
    #[error(
        "card key cache {0} is open to other users, who could read or plant keys: make it \
         mode 0700"
    )]
    KeyCacheExposed(PathBuf),
    /// Generating a card key failed.
    #[error("card key generation: {0}")]
    KeyGeneration(String),
    /// A file of the card key cache is not an RSA PKCS#8 key.
    #[error("cached card key {0} is not an RSA PKCS#8 key: delete it to have it generated again")]
    CachedKey(PathBuf),
    /// The directory holds a PKI of the time when cards shared a pool of eight keys.
    #[error(
        "{0} holds a development PKI whose cards share keys (made before issue 10): delete it, \
         and the data directory whose cards it signed, to mint a new deployment"
    )]
    SharedKeyPool(PathBuf),
    /// A file in the directory is not what the generator writes.
    #[error("unexpected content in {0}")]
    Unexpected(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Prefix of a terminal's SAN URI.
pub const TERMINAL_URI_PREFIX: &str = "urn:kiosk:terminal:";

/// A terminal's identity: store chain, store and terminal.
///
/// Invariant: each part is 1–64 characters of `[a-z0-9-]` (so `/` separates unambiguously).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TerminalName {
    chain: String,
    store: String,
    terminal: String,
}

fn valid_part(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl TerminalName {
    /// A terminal name from its three parts.
    pub fn new(chain: &str, store: &str, terminal: &str) -> Result<Self, PkiError> {
        if ![chain, store, terminal].iter().all(|p| valid_part(p)) {
            return Err(PkiError::InvalidName(format!("{chain}/{store}/{terminal}")));
        }
        Ok(Self {
            chain: chain.to_owned(),
            store: store.to_owned(),
            terminal: terminal.to_owned(),
        })
    }

    /// Parses `chain/store/terminal` (the terminal id used in the kiosk.v1 contract).
    pub fn parse(id: &str) -> Result<Self, PkiError> {
        let mut parts = id.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(c), Some(s), Some(t), None) => Self::new(c, s, t),
            _ => Err(PkiError::InvalidName(id.to_owned())),
        }
    }

    /// Parses the SAN URI `urn:kiosk:terminal:<chain>/<store>/<terminal>`.
    pub fn from_uri(uri: &str) -> Result<Self, PkiError> {
        uri.strip_prefix(TERMINAL_URI_PREFIX)
            .ok_or_else(|| PkiError::InvalidName(uri.to_owned()))
            .and_then(Self::parse)
    }

    /// The store chain.
    pub fn chain(&self) -> &str {
        &self.chain
    }
    /// The store.
    pub fn store(&self) -> &str {
        &self.store
    }
    /// The terminal within the store.
    pub fn terminal(&self) -> &str {
        &self.terminal
    }
    /// `chain/store/terminal`.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.chain, self.store, self.terminal)
    }
    /// The SAN URI.
    pub fn uri(&self) -> String {
        format!("{TERMINAL_URI_PREFIX}{}", self.id())
    }
    /// The file stem of its certificate.
    pub fn file_stem(&self) -> String {
        format!("terminal-{}-{}-{}", self.chain, self.store, self.terminal)
    }
}

/// A test card the generator writes into `cards/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureCard {
    /// File name without `.toml`.
    pub name: String,
    /// Certificate serial (user-authentication certificate, or the signature certificate
    /// of a 住基カード).
    pub serial: u64,
    /// The card generation.
    pub kind: CardKind,
    /// User-authentication PIN (My Number cards).
    pub pin: String,
    /// Whether the CRL lists it.
    pub revoked: bool,
}

/// What the generator produces: names, dates, serials.
#[derive(Debug, Clone)]
pub struct DevPkiSpec {
    /// Start of validity of every certificate.
    pub not_before: OffsetDateTime,
    /// End of validity of every certificate.
    pub not_after: OffsetDateTime,
    /// CRL thisUpdate.
    pub crl_this_update: OffsetDateTime,
    /// CRL nextUpdate (a gateway refuses a CRL past it).
    pub crl_next_update: OffsetDateTime,
    /// Terminal certificates to issue.
    pub terminals: Vec<TerminalName>,
    /// Municipality codes (全国地方公共団体コード, 6 digits) that get a document-signing
    /// certificate.
    pub municipalities: Vec<String>,
    /// The gateway id (in the internal client certificate).
    pub gateway_id: String,
    /// Test cards.
    pub cards: Vec<FixtureCard>,
}

/// A terminal name from literal parts known to be valid (no fallible parse for constants).
fn terminal(chain: &str, store: &str, terminal: &str) -> TerminalName {
    TerminalName {
        chain: chain.to_owned(),
        store: store.to_owned(),
        terminal: terminal.to_owned(),
    }
}

impl DevPkiSpec {
    /// The committed fixture set (`devkit/testdata/pki`): fixed dates 2026-01-01 to
    /// 2046-01-01, so the committed files stay valid for the life of the project.
    pub fn fixture() -> Self {
        let start = rcgen::date_time_ymd(2026, 1, 1);
        let end = rcgen::date_time_ymd(2046, 1, 1);
        Self::with_dates(start, end, start, end)
    }

    /// A development set valid from a day before `now` for ten years, with a CRL valid for
    /// a year (what `serve` mints on first start).
    pub fn development(now: OffsetDateTime) -> Self {
        let start = now - time::Duration::days(1);
        Self::with_dates(
            start,
            now + time::Duration::days(3650),
            start,
            now + time::Duration::days(365),
        )
    }

    fn with_dates(
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        crl_this_update: OffsetDateTime,
        crl_next_update: OffsetDateTime,
    ) -> Self {
        let card = |name: &str, serial, kind, revoked| FixtureCard {
            name: name.into(),
            serial,
            kind,
            pin: "1234".into(),
            revoked,
        };
        Self {
            not_before,
            not_after,
            crl_this_update,
            crl_next_update,
            terminals: vec![
                terminal("seven", "131016-0042", "k1"),
                terminal("seven", "131016-0042", "k2"),
                terminal("lawson", "271004-0007", "k1"),
            ],
            municipalities: vec!["131016".into(), "271004".into()],
            gateway_id: "gw-dev-01".into(),
            cards: vec![
                card("resident-0001", 1, CardKind::MyNumber, false),
                card("resident-0002", 2, CardKind::MyNumber, false),
                card("revoked-0003", 3, CardKind::MyNumber, true),
                card("juki-0004", 4, CardKind::Juki, false),
            ],
        }
    }

    /// Every certificate file the generator writes, with what it must contain.
    pub fn describe(&self) -> Vec<CertDescription> {
        let ca = |stem: &str, cn: &str, serial| CertDescription {
            stem: stem.into(),
            issuer: stem.into(),
            common_name: cn.into(),
            organization: Some("kiosk TEST".into()),
            org_unit: None,
            serial,
            is_ca: true,
            rsa: false,
            key_usages: vec![KeyUse::KeyCertSign, KeyUse::CrlSign],
            eku: vec![],
            sans: vec![],
        };
        let ee =
            |stem: String, issuer: &str, cn: String, serial, eku: Vec<Eku>, sans| CertDescription {
                stem,
                issuer: issuer.into(),
                common_name: cn,
                organization: Some("kiosk TEST".into()),
                org_unit: None,
                serial,
                is_ca: false,
                rsa: false,
                key_usages: vec![KeyUse::DigitalSignature],
                eku,
                sans,
            };
        let local = || vec![Name::Dns("localhost".into()), Name::Ip([127, 0, 0, 1])];
        let mut out = vec![
            ca(files::JPKI_AUTH_CA, "JPKI TEST user authentication CA", 1),
            ca(files::JPKI_SIGN_CA, "JPKI TEST signature CA", 1),
            ca(files::TERMINAL_CA, "kiosk TEST terminal CA", 1),
            ca(files::SERVER_CA, "kiosk TEST server CA", 1),
            ca(files::INTERNAL_CA, "kiosk TEST internal CA", 1),
            ca(files::AUDITOR_CA, "kiosk TEST auditor CA", 1),
            ca(files::MUNICIPALITY_CA, "kiosk TEST municipality CA", 1),
        ];
        for (i, t) in self.terminals.iter().enumerate() {
            let mut d = ee(
                t.file_stem(),
                files::TERMINAL_CA,
                t.terminal.clone(),
                1000 + i as u64,
                vec![Eku::ClientAuth],
                vec![Name::Uri(t.uri())],
            );
            d.organization = Some(t.chain.clone());
            d.org_unit = Some(t.store.clone());
            out.push(d);
        }
        out.push(ee(
            files::GATEWAY.into(),
            files::SERVER_CA,
            "localhost".into(),
            1000,
            vec![Eku::ServerAuth],
            local(),
        ));
        let mut issuer_sans = local();
        issuer_sans.push(Name::Uri("urn:kiosk:issuer:dev".into()));
        out.push(ee(
            files::ISSUER.into(),
            files::INTERNAL_CA,
            "issuer dev".into(),
            1000,
            vec![Eku::ServerAuth, Eku::ClientAuth],
            issuer_sans,
        ));
        out.push(ee(
            files::GATEWAY_INTERNAL.into(),
            files::INTERNAL_CA,
            format!("gateway {}", self.gateway_id),
            1001,
            vec![Eku::ClientAuth],
            vec![Name::Uri(format!("urn:kiosk:gateway:{}", self.gateway_id))],
        ));
        out.push(ee(
            files::AUDITOR.into(),
            files::AUDITOR_CA,
            "auditor dev".into(),
            1000,
            vec![Eku::ClientAuth],
            vec![Name::Uri("urn:kiosk:auditor:dev".into())],
        ));
        for (i, code) in self.municipalities.iter().enumerate() {
            let mut d = ee(
                format!("municipality-{code}"),
                files::MUNICIPALITY_CA,
                format!("{code} document signing TEST"),
                1000 + i as u64,
                vec![],
                vec![Name::Uri(format!("urn:kiosk:municipality:{code}"))],
            );
            d.key_usages = vec![KeyUse::DigitalSignature, KeyUse::ContentCommitment];
            out.push(d);
        }
        for card in &self.cards {
            let (issuer, cn) = match card.kind {
                CardKind::MyNumber => (files::JPKI_AUTH_CA, card_common_name(card.serial)),
                CardKind::Juki => (files::JPKI_SIGN_CA, card_common_name(card.serial)),
            };
            out.push(CertDescription {
                stem: format!("{}/{}", files::CARDS_DIR, card.name),
                issuer: issuer.into(),
                common_name: cn,
                organization: Some("JPKI TEST".into()),
                org_unit: None,
                serial: card.serial,
                is_ca: false,
                rsa: true,
                key_usages: match card.kind {
                    CardKind::MyNumber => vec![KeyUse::DigitalSignature],
                    CardKind::Juki => vec![KeyUse::DigitalSignature, KeyUse::ContentCommitment],
                },
                eku: vec![],
                sans: vec![],
            });
        }
        out
    }

    /// Serials the CRL of the user-authentication CA lists.
    pub fn revoked_serials(&self) -> Vec<u64> {
        self.cards
            .iter()
            .filter(|c| c.revoked)
            .map(|c| c.serial)
            .collect()
    }
}

fn card_common_name(serial: u64) -> String {
    format!("TEST CARD {serial:016}")
}

/// Key usage bits the generator sets (webpki ignores them on end entities, so verifiers
/// check them with x509-parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// digitalSignature
    DigitalSignature,
    /// contentCommitment (nonRepudiation)
    ContentCommitment,
    /// keyCertSign
    KeyCertSign,
    /// cRLSign
    CrlSign,
}

/// Extended key usages the generator sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eku {
    /// id-kp-serverAuth
    ServerAuth,
    /// id-kp-clientAuth
    ClientAuth,
}

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// dNSName
    Dns(String),
    /// iPAddress (IPv4)
    Ip([u8; 4]),
    /// uniformResourceIdentifier
    Uri(String),
}

/// What one generated certificate must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDescription {
    /// File stem (`<stem>.crt.pem`; for cards, `cards/<name>` and the cert is in the TOML).
    pub stem: String,
    /// Stem of the issuing CA (itself for roots).
    pub issuer: String,
    /// Subject CN.
    pub common_name: String,
    /// Subject O.
    pub organization: Option<String>,
    /// Subject OU.
    pub org_unit: Option<String>,
    /// Serial number.
    pub serial: u64,
    /// Whether it is a CA.
    pub is_ca: bool,
    /// RSA-2048 subject key (cards) rather than ECDSA P-256.
    pub rsa: bool,
    /// Key usage bits.
    pub key_usages: Vec<KeyUse>,
    /// Extended key usages (empty: no EKU extension).
    pub eku: Vec<Eku>,
    /// Subject alternative names.
    pub sans: Vec<Name>,
}

impl CertDescription {
    fn params(
        &self,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<CertificateParams, PkiError> {
        let mut p = CertificateParams::default();
        p.not_before = not_before;
        p.not_after = not_after;
        p.serial_number = Some(SerialNumber::from(self.serial));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "JP");
        if let Some(o) = &self.organization {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        if let Some(ou) = &self.org_unit {
            dn.push(DnType::OrganizationalUnitName, ou.as_str());
        }
        dn.push(DnType::CommonName, self.common_name.as_str());
        p.distinguished_name = dn;
        p.is_ca = if self.is_ca {
            IsCa::Ca(BasicConstraints::Constrained(0))
        } else {
            IsCa::ExplicitNoCa
        };
        p.key_usages = self
            .key_usages
            .iter()
            .map(|k| match k {
                KeyUse::DigitalSignature => KeyUsagePurpose::DigitalSignature,
                KeyUse::ContentCommitment => KeyUsagePurpose::ContentCommitment,
                KeyUse::KeyCertSign => KeyUsagePurpose::KeyCertSign,
                KeyUse::CrlSign => KeyUsagePurpose::CrlSign,
            })
            .collect();
        p.extended_key_usages = self
            .eku
            .iter()
            .map(|e| match e {
                Eku::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
                Eku::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
            })
            .collect();
        for name in &self.sans {
            p.subject_alt_names.push(match name {
                Name::Dns(d) => SanType::DnsName(
                    d.as_str()
                        .try_into()
                        .map_err(|_| PkiError::InvalidName(d.clone()))?,
                ),
                Name::Ip(ip) => SanType::IpAddress((*ip).into()),
                Name::Uri(u) => SanType::URI(
                    u.as_str()
                        .try_into()
                        .map_err(|_| PkiError::InvalidName(u.clone()))?,
                ),
            });
        }
        p.use_authority_key_identifier_extension = !self.is_ca;
        p.key_identifier_method = KeyIdMethod::Sha256;
        if self.rsa && self.issuer == files::JPKI_AUTH_CA {
            // What J-LIS test cards carry instead of the production user-authentication
            // policy: a production gateway refuses these cards (CARD_TEST_POLICY).
            p.custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(
                    CERTIFICATE_POLICIES_OID,
                    JLIS_TEST_POLICY_DER.to_vec(),
                ));
        }
        Ok(p)
    }
}

/// id-ce-certificatePolicies (2.5.29.32).
const CERTIFICATE_POLICIES_OID: &[u64] = &[2, 5, 29, 32];

/// The J-LIS test-card policy (1.2.392.200149.8.5.1.0.20), the policy of every user-
/// authentication card this PKI issues: `SEQUENCE { SEQUENCE { OID } }` in DER.
pub const JLIS_TEST_POLICY_DER: &[u8] = &[
    0x30, 0x0f, 0x30, 0x0d, 0x06, 0x0b, 0x2a, 0x83, 0x08, 0x8c, 0x9b, 0x55, 0x08, 0x05, 0x01, 0x00,
    0x14,
];

/// Writes a certificate, CRL or README: public, so the default mode.
fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), PkiError> {
    std::fs::write(path, contents).map_err(io(path))
}

/// Writes a private key (mode 0600, replacing any file there in one step).
fn write_private(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), PkiError> {
    private_file::write_replacing(path, contents.as_ref()).map_err(io(path))
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(io(path))
}

/// The README of a generated PKI, also its marker: [`DevPki::open`] accepts a directory only
/// if its README is exactly this. It still names `card::testpki` and `card-testpki`, where the
/// test PKI lived before it moved to kiosk-devkit: changing the text would refuse every PKI
/// already generated (a deployment's `.kiosk-data/pki`, the committed fixture set).
const README_TEXT: &str = "# TEST ONLY — not a real PKI\n\n\
Generated by `card::testpki` (binary `card-testpki`). Every private key here is a test key,\n\
unencrypted. Never trust these certificates outside tests and demos.\n\n\
Certificates: `<stem>.crt.pem`, keys: `<stem>.key.pem` (PKCS#8, mode 0600). The\n\
user-authentication CA's CRL: `jpki-auth-ca.crl.der` / `.pem`. Card files: `cards/*.toml`\n\
(keys and PINs in clear text, mode 0600).\n\
Every card of this PKI has its own RSA-2048 key pairs, taken from the per-user key cache\n\
($KIOSK_KEY_CACHE, else $XDG_CACHE_HOME/kiosk-devkit/card-keys or\n\
~/.cache/kiosk-devkit/card-keys): `card-keys.next` is the next cache index this PKI hands\n\
out, advanced under the lock `card-keys.lock`, so no index serves two of its cards.\n\
Terminal identity: SAN URI `urn:kiosk:terminal:<chain>/<store>/<terminal>`.\n";

/// The marker of PKIs made while cards shared a pool of eight committed keys: recognised
/// so that opening one says why it is refused.
const SHARED_POOL_README_TEXT: &str = "# TEST ONLY — not a real PKI\n\n\
Generated by `card::testpki` (binary `card-testpki`). Every private key here is a test key,\n\
unencrypted and public. The card keys come from a pool of eight committed RSA-2048 keys, so\n\
several cards share a key. Never trust these certificates outside tests and demos.\n\n\
Certificates: `<stem>.crt.pem`, keys: `<stem>.key.pem` (PKCS#8). The user-authentication CA's\n\
CRL: `jpki-auth-ca.crl.der` / `.pem`. Card files: `cards/*.toml` (PINs in clear text).\n\
Terminal identity: SAN URI `urn:kiosk:terminal:<chain>/<store>/<terminal>`.\n";

/// Takes `n` card key indices that no card of the PKI in `pki_dir` has had, and advances
/// its counter past them. The counter only grows, and is read and written under an
/// exclusive lock, so minters of one deployment in several processes (the gateway and
/// `kiosk-devkit generate` share a PKI) get disjoint ranges. The lock is released when the file
/// closes, also if the process dies.
fn reserve_key_indices(pki_dir: &Path, n: u64) -> Result<Range<u64>, PkiError> {
    let lock_path = pki_dir.join(files::CARD_KEYS_LOCK);
    let lock = private_file::open_lock(&lock_path).map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    // A missing counter is an error, not zero: starting again at zero would hand out the
    // keys of cards already minted. `DevPki::generate` creates it.
    let next_path = pki_dir.join(files::CARD_KEYS_NEXT);
    let first: u64 = read(&next_path)?
        .trim()
        .parse()
        .map_err(|_| PkiError::Unexpected(next_path.clone()))?;
    let end = first
        .checked_add(n)
        .ok_or_else(|| PkiError::Unexpected(next_path.clone()))?;
    write_private(&next_path, format!("{end}\n"))?;
    Ok(first..end)
}

/// The CAs of a PKI being generated: stem, signer, certificate PEM.
type Cas = Vec<(String, Issuer<'static, KeyPair>, String)>;

/// A CA that signs card certificates: its signer and its certificate, which the card
/// file carries next to the card's own.
struct CardCa<'a> {
    issuer: &'a Issuer<'static, KeyPair>,
    pem: &'a str,
}

impl CardCa<'_> {
    /// One side of a card file: `key`, a certificate for it, the CA, the PIN.
    fn side(
        &self,
        params: CertificateParams,
        key: &CardKey,
        pin: &str,
        tries_left: u8,
    ) -> Result<SideFile, PkiError> {
        let cert = params.signed_by(&key.key_pair()?, self.issuer)?;
        Ok(SideFile {
            pin: pin.to_owned(),
            tries_left,
            key: Some(key.pem().to_owned()),
            certificate: Some(cert.pem()),
            ca_certificate: Some(self.pem.to_owned()),
        })
    }
}

fn find_ca<'a>(cas: &'a Cas, stem: &str) -> Result<CardCa<'a>, PkiError> {
    cas.iter()
        .find(|(s, _, _)| s == stem)
        .map(|(_, issuer, pem)| CardCa { issuer, pem })
        .ok_or_else(|| PkiError::InvalidName(stem.to_owned()))
}

/// Self-signs and writes every CA of `descriptions`.
fn write_cas(
    dir: &Path,
    spec: &DevPkiSpec,
    descriptions: &[CertDescription],
) -> Result<Cas, PkiError> {
    let mut cas = Cas::new();
    for d in descriptions.iter().filter(|d| d.is_ca) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let params = d.params(spec.not_before, spec.not_after)?;
        let cert = params.self_signed(&key)?;
        write(&dir.join(format!("{}.crt.pem", d.stem)), cert.pem())?;
        write_private(
            &dir.join(format!("{}.key.pem", d.stem)),
            key.serialize_pem(),
        )?;
        cas.push((d.stem.clone(), Issuer::new(params, key), cert.pem()));
    }
    Ok(cas)
}

/// Issues and writes every ECDSA end-entity certificate of `descriptions`.
fn write_end_entities(
    dir: &Path,
    spec: &DevPkiSpec,
    descriptions: &[CertDescription],
    cas: &Cas,
) -> Result<(), PkiError> {
    for d in descriptions.iter().filter(|d| !d.is_ca && !d.rsa) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = d
            .params(spec.not_before, spec.not_after)?
            .signed_by(&key, find_ca(cas, &d.issuer)?.issuer)?;
        write(&dir.join(format!("{}.crt.pem", d.stem)), cert.pem())?;
        write_private(
            &dir.join(format!("{}.key.pem", d.stem)),
            key.serialize_pem(),
        )?;
    }
    Ok(())
}

/// Writes the card files of `spec`. A My Number card gets two keys of its own, one per
/// side, so that OpenSC sees the four certificates of a real card; a 住基カード one.
fn write_fixture_cards(
    dir: &Path,
    spec: &DevPkiSpec,
    descriptions: &[CertDescription],
    cas: &Cas,
    cache: &KeyCache,
) -> Result<(), PkiError> {
    let auth_ca = find_ca(cas, files::JPKI_AUTH_CA)?;
    let sign_ca = find_ca(cas, files::JPKI_SIGN_CA)?;
    let sides = |card: &FixtureCard| match card.kind {
        CardKind::MyNumber => 2,
        CardKind::Juki => 1,
    };
    let needed = spec.cards.iter().map(sides).sum();
    let mut keys = VecDeque::from(cache.keys(reserve_key_indices(dir, needed)?)?);
    let mut next_key = || {
        keys.pop_front()
            .ok_or_else(|| PkiError::KeyGeneration("fewer keys than card sides".into()))
    };
    let (auth_tries, sign_tries) = (
        crate::softcard::AUTH_PIN_MAX_TRIES,
        crate::softcard::SIGN_PIN_MAX_TRIES,
    );
    for (card, d) in spec.cards.iter().zip(descriptions.iter().filter(|d| d.rsa)) {
        let params = d.params(spec.not_before, spec.not_after)?;
        let file = match card.kind {
            CardKind::MyNumber => {
                let auth = auth_ca.side(params.clone(), &next_key()?, &card.pin, auth_tries)?;
                let mut sign_params = params;
                sign_params
                    .key_usages
                    .push(KeyUsagePurpose::ContentCommitment);
                CardFile {
                    kind: CardKind::MyNumber,
                    auth: Some(auth),
                    sign: sign_ca.side(
                        sign_params,
                        &next_key()?,
                        DEFAULT_SIGN_PASSWORD,
                        sign_tries,
                    )?,
                }
            }
            CardKind::Juki => CardFile {
                kind: CardKind::Juki,
                auth: None,
                sign: sign_ca.side(params, &next_key()?, DEFAULT_SIGN_PASSWORD, sign_tries)?,
            },
        };
        file.save(&dir.join(format!("{}.toml", d.stem)))?;
    }
    Ok(())
}

/// A generated development/test PKI on disk.
#[derive(Debug, Clone)]
pub struct DevPki {
    dir: PathBuf,
}

impl DevPki {
    /// Generates every certificate, key, CRL and card file of `spec` into `dir` (created
    /// with mode 0700 if missing; existing files are overwritten), with card keys from the
    /// cache the environment names ([`KeyCache::from_env`]).
    pub fn generate(dir: &Path, spec: &DevPkiSpec) -> Result<Self, PkiError> {
        Self::generate_with(dir, spec, &KeyCache::from_env()?)
    }

    /// [`DevPki::generate`] with card keys from `cache`.
    pub fn generate_with(
        dir: &Path,
        spec: &DevPkiSpec,
        cache: &KeyCache,
    ) -> Result<Self, PkiError> {
        let cards_dir = dir.join(files::CARDS_DIR);
        private_file::create_dir(&cards_dir).map_err(io(&cards_dir))?;
        write(&dir.join(files::README), README_TEXT)?;
        // Regenerating over an older PKI keeps its counter: indices only ever grow.
        let next_path = dir.join(files::CARD_KEYS_NEXT);
        if !next_path.exists() {
            write_private(&next_path, "0\n")?;
        }
        let descriptions = spec.describe();
        let cas = write_cas(dir, spec, &descriptions)?;
        write_end_entities(dir, spec, &descriptions, &cas)?;
        write_fixture_cards(dir, spec, &descriptions, &cas, cache)?;
        let crl = crl_params(
            spec.crl_this_update,
            spec.crl_next_update,
            1,
            &spec.revoked_serials(),
        )
        .signed_by(find_ca(&cas, files::JPKI_AUTH_CA)?.issuer)?;
        write(&dir.join(files::JPKI_AUTH_CRL_DER), crl.der().as_ref())?;
        write(&dir.join(files::JPKI_AUTH_CRL_PEM), crl.pem()?)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// Opens a directory a previous [`DevPki::generate`] wrote (checks the marker file).
    /// A PKI from the time cards shared keys is refused with [`PkiError::SharedKeyPool`].
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        let marker = dir.join(files::README);
        let text = read(&marker)?;
        if text == SHARED_POOL_README_TEXT {
            return Err(PkiError::SharedKeyPool(dir.to_owned()));
        }
        if text != README_TEXT {
            return Err(PkiError::Unexpected(marker));
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// Opens `dir` if it holds a PKI, otherwise generates a development PKI valid from now
    /// (what the gateway's `serve` does on first start).
    pub fn ensure(dir: &Path) -> Result<Self, PkiError> {
        if dir.join(files::README).exists() {
            Self::open(dir)
        } else {
            Self::generate(dir, &DevPkiSpec::development(OffsetDateTime::now_utc()))
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of `<stem>.crt.pem`.
    pub fn cert_path(&self, stem: &str) -> PathBuf {
        self.dir.join(format!("{stem}.crt.pem"))
    }

    /// Path of `<stem>.key.pem`.
    pub fn key_path(&self, stem: &str) -> PathBuf {
        self.dir.join(format!("{stem}.key.pem"))
    }

    /// Path of a card file `cards/<name>.toml`.
    pub fn card_path(&self, name: &str) -> PathBuf {
        self.dir.join(files::CARDS_DIR).join(format!("{name}.toml"))
    }

    /// DER of `<stem>.crt.pem`.
    pub fn cert_der(&self, stem: &str) -> Result<Vec<u8>, PkiError> {
        let path = self.cert_path(stem);
        kiosk_document::pem::certificate_der(read(&path)?.as_bytes())
            .map_err(|_| PkiError::Unexpected(path.clone()))
    }

    /// DER of the user-authentication CA's CRL.
    pub fn crl_der(&self) -> Result<Vec<u8>, PkiError> {
        let path = self.dir.join(files::JPKI_AUTH_CRL_DER);
        std::fs::read(&path).map_err(io(&path))
    }

    /// A minter of resident cards under this PKI's user-authentication CA, with card keys
    /// from the cache the environment names ([`KeyCache::from_env`]).
    pub fn card_minter(&self) -> Result<CardMinter, PkiError> {
        CardMinter::open(self, KeyCache::from_env()?)
    }

    /// [`DevPki::card_minter`] with card keys from `cache`.
    pub fn card_minter_with(&self, cache: KeyCache) -> Result<CardMinter, PkiError> {
        CardMinter::open(self, cache)
    }
}

/// The signature password of generated cards (PocketSign's mock-card default).
pub const DEFAULT_SIGN_PASSWORD: &str = "ABC123";

fn crl_params(
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    number: u64,
    revoked: &[u64],
) -> CertificateRevocationListParams {
    CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: this_update,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
}

/// Mints resident card files under a PKI's user-authentication CA. Each card gets a key no
/// other card of the PKI has had: the minter takes key indices from the PKI's counter
/// ([`CardMinter::reserve`], one at a time if nothing was reserved) and the keys from the
/// cache, so a card costs one ECDSA signature and some encoding once the cache is warm.
pub struct CardMinter {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    pki_dir: PathBuf,
    cache: KeyCache,
    /// Keys whose indices this minter took from the counter and has not used yet.
    reserved: VecDeque<CardKey>,
}

impl std::fmt::Debug for CardMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardMinter")
            .field("pki_dir", &self.pki_dir)
            .field("reserved", &self.reserved.len())
            .finish_non_exhaustive()
    }
}

impl CardMinter {
    fn open(pki: &DevPki, cache: KeyCache) -> Result<Self, PkiError> {
        let ca_path = pki.cert_path(files::JPKI_AUTH_CA);
        let ca_pem = read(&ca_path)?;
        let key = KeyPair::from_pem(&read(&pki.key_path(files::JPKI_AUTH_CA))?)?;
        let ca_der = kiosk_document::pem::certificate_der(ca_pem.as_bytes())
            .map_err(|_| PkiError::Unexpected(ca_path.clone()))?;
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der)
            .map_err(|_| PkiError::Unexpected(ca_path.clone()))?;
        let validity = ca.validity();
        // Cards live inside the CA's validity, so every minted chain verifies.
        let not_before = validity.not_before.to_datetime();
        let not_after = validity.not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key)?;
        Ok(Self {
            issuer,
            ca_pem,
            not_before,
            not_after,
            pki_dir: pki.dir().to_owned(),
            cache,
            reserved: VecDeque::new(),
        })
    }

    /// Takes keys for the next `n` cards: `n` indices from the PKI's counter, their keys
    /// generated in parallel where the cache lacks them. Reserving a batch before minting
    /// it turns `n` generations in a row into one parallel run and `n` counter updates into
    /// one. Indices reserved and never minted are skipped, never handed out again.
    pub fn reserve(&mut self, n: usize) -> Result<(), PkiError> {
        let n = u64::try_from(n).map_err(|_| PkiError::InvalidName(format!("{n} cards")))?;
        let indices = reserve_key_indices(&self.pki_dir, n)?;
        self.reserved.extend(self.cache.keys(indices)?);
        Ok(())
    }

    /// A My Number card file for certificate serial `serial` with user-authentication PIN
    /// `pin` (3 tries), with the next reserved key. The signature side has only its
    /// password (no key or certificate), which keeps minting cheap; the login never uses
    /// it.
    pub fn mint(&mut self, serial: u64, pin: &card::pin::Pin) -> Result<CardFile, PkiError> {
        if self.reserved.is_empty() {
            self.reserve(1)?;
        }
        let key = self
            .reserved
            .pop_front()
            .ok_or_else(|| PkiError::KeyGeneration("no key reserved".into()))?;
        let d = CertDescription {
            stem: String::new(),
            issuer: files::JPKI_AUTH_CA.into(),
            common_name: card_common_name(serial),
            organization: Some("JPKI TEST".into()),
            org_unit: None,
            serial,
            is_ca: false,
            rsa: true,
            key_usages: vec![KeyUse::DigitalSignature],
            eku: vec![],
            sans: vec![],
        };
        let pin =
            std::str::from_utf8(pin.expose()).map_err(|_| PkiError::InvalidName("PIN".into()))?;
        let ca = CardCa {
            issuer: &self.issuer,
            pem: &self.ca_pem,
        };
        let params = d.params(self.not_before, self.not_after)?;
        let auth = ca.side(params, &key, pin, crate::softcard::AUTH_PIN_MAX_TRIES)?;
        Ok(CardFile {
            kind: CardKind::MyNumber,
            auth: Some(auth),
            sign: SideFile {
                pin: DEFAULT_SIGN_PASSWORD.into(),
                tries_left: crate::softcard::SIGN_PIN_MAX_TRIES,
                key: None,
                certificate: None,
                ca_certificate: None,
            },
        })
    }

    /// Mints and saves `<dir>/<name>.toml` (mode 0600; `dir` is created with mode 0700 if
    /// missing); returns its path.
    pub fn mint_to(
        &mut self,
        dir: &Path,
        name: &str,
        serial: u64,
        pin: &card::pin::Pin,
    ) -> Result<PathBuf, PkiError> {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(PkiError::InvalidName(name.to_owned()));
        }
        private_file::create_dir(dir).map_err(io(dir))?;
        let path = dir.join(format!("{name}.toml"));
        self.mint(serial, pin)?.save(&path)?;
        Ok(path)
    }

    /// A CRL of the user-authentication CA revoking `revoked` serials (DER).
    pub fn crl(
        &self,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        number: u64,
        revoked: &[u64],
    ) -> Result<Vec<u8>, PkiError> {
        Ok(crl_params(this_update, next_update, number, revoked)
            .signed_by(&self.issuer)?
            .der()
            .to_vec())
    }
}
