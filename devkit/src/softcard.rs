//! A software JPKI card that behaves as docs/card-profile.md describes a real one, and the
//! small file ([`CardFile`]) that describes one resident's card.
//!
//! TEST ONLY: the card file holds the private keys and the PINs in clear text. It exists so
//! tests and the demo can stand up many residents' cards; it is not a key store.
//!
//! Behaviour (what a host sees), chosen to match the real card where sources agree and
//! documented where they do not (card-profile.md section 6):
//! - SELECT by DF name (`00 A4 04 0C|00`): the JPKI AID → `90 00` and the security state is
//!   cleared (OpenSC's logout re-selects the AP); any other AID → `6A 82`.
//! - SELECT EF (`00 A4 02 0C <FID>`) inside the AP; unknown EF → `6A 82`; before the AP is
//!   selected → `6A 82`.
//! - READ BINARY with offset P1‖P2 and Le (short or extended); past the end → `6B 00`; a
//!   short read → data + `62 82`; the signature certificate needs the sign password (`69 82`).
//! - VERIFY against the selected PIN EF: no data → `63 Cx` (also `63 C0` when blocked, so
//!   OpenSC's PKCS#15 binding keeps working); wrong → `63 Cx` with x decremented; blocked →
//!   `69 83`; right → `90 00`, counter back to its maximum.
//! - COMPUTE DIGITAL SIGNATURE (`80 2A 00 80`) with the selected key EF: `69 82` unless its
//!   PIN was verified since the last power-on/reset; PKCS#1 v1.5 type-1 padding over the
//!   received bytes (the DigestInfo), RSA private operation.
//! - `6E 00` for a class other than `00`/`80`, `6D 00` for other instructions, `67 00` for
//!   lengths that do not fit the command, `6A 86` for wrong P1/P2, `69 86` without a current
//!   EF of the right kind. CHANGE PIN is not modelled (`6D 00`).
//! - Retry counters persist (they live in the card file); the security state does not.

use std::collections::BTreeMap;
use std::path::Path;

use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};

use card::apdu::{Command, Response, StatusWord};
use card::jpki::{JPKI_AID, ef};
use card::transport::{Transport, TransportError};

/// The ATR the emulated card presents: the one entry in OpenSC's jpki ATR table, so OpenSC
/// binds its jpki driver (card-profile.md 3.3). T=1, no historical bytes.
pub const ATR: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];

/// Maximum tries of the user-authentication PIN.
pub const AUTH_PIN_MAX_TRIES: u8 = 3;
/// Maximum tries of the signature password.
pub const SIGN_PIN_MAX_TRIES: u8 = 5;

/// Problems loading or saving a card file.
#[derive(Debug, thiserror::Error)]
pub enum CardFileError {
    /// Reading or writing the file failed.
    #[error("card file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not valid TOML of the expected shape.
    #[error("card file format: {0}")]
    Format(String),
    /// A key is not an RSA PKCS#8 PEM key (the key itself is never printed).
    #[error("card file: {0} key is not an RSA-2048 PKCS#8 PEM key")]
    Key(&'static str),
    /// A certificate is not PEM-encoded DER.
    #[error("card file: {0} certificate is not a PEM certificate")]
    Certificate(&'static str),
    /// A PIN or counter is outside what the card allows.
    #[error("card file: {0}")]
    Invalid(&'static str),
}

/// Which generation of card the file describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CardKind {
    /// マイナンバーカード: JPKI AP with user-authentication and signature sides.
    MyNumber,
    /// 住基カード: its JPKI AP has only the signature side (card-profile.md section 2).
    Juki,
}

/// One side (user authentication or signature) of the JPKI AP in a card file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideFile {
    /// The PIN or password, ASCII as sent in VERIFY.
    pub pin: String,
    /// Attempts left; persisted so a blocked card stays blocked.
    pub tries_left: u8,
    /// The private key, PKCS#8 PEM (RSA-2048). Absent: the side has no key EF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The end-entity certificate, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The issuing CA's certificate, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
}

impl std::fmt::Debug for SideFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideFile")
            .field("tries_left", &self.tries_left)
            .field("has_key", &self.key.is_some())
            .field("has_certificate", &self.certificate.is_some())
            .finish_non_exhaustive()
    }
}

/// The description of one software card: TOML, one file per card.
///
/// ```toml
/// kind = "my-number"
/// [auth]                 # absent on a 住基カード
/// pin = "1234"
/// tries_left = 3
/// key = "-----BEGIN PRIVATE KEY-----..."
/// certificate = "-----BEGIN CERTIFICATE-----..."
/// ca_certificate = "-----BEGIN CERTIFICATE-----..."
/// [sign]                 # the signature password always exists (OpenSC queries it)
/// pin = "ABC123"
/// tries_left = 5
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardFile {
    /// The card generation.
    pub kind: CardKind,
    /// The user-authentication side (EFs 000A, 000B, 0017, 0018).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SideFile>,
    /// The signature side (EFs 0001, 0002, 001A, 001B).
    pub sign: SideFile,
}

impl CardFile {
    /// Parses the TOML text of a card file.
    pub fn from_toml(text: &str) -> Result<Self, CardFileError> {
        toml::from_str(text).map_err(|e| CardFileError::Format(e.message().to_owned()))
    }

    /// The TOML text of this card file.
    pub fn to_toml(&self) -> Result<String, CardFileError> {
        toml::to_string(self).map_err(|e| CardFileError::Format(e.to_string()))
    }

    /// Loads a card file.
    pub fn load(path: &Path) -> Result<Self, CardFileError> {
        Self::from_toml(&std::fs::read_to_string(path)?)
    }

    /// Saves the card file atomically (write a sibling, then rename), so a crash never
    /// leaves half a card and the retry counter is never lost. The file holds private keys
    /// and PINs: it is created readable by its owner only (mode 0600).
    pub fn save(&self, path: &Path) -> Result<(), CardFileError> {
        let text = self.to_toml()?;
        crate::private_file::write_replacing(path, text.as_bytes())?;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Auth = 0,
    Sign = 1,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Selected {
    Binary(u16),
    Pin(Side),
    Key(Side),
}

#[derive(Clone)]
struct PinState {
    value: zeroize::Zeroizing<Vec<u8>>,
    tries_left: u8,
    max: u8,
}

/// The software card. Drive it with [`SoftCard::process`] (raw bytes, as vpcd delivers
/// them) or through [`SoftTransport`].
#[derive(Clone)]
pub struct SoftCard {
    file: CardFile,
    binaries: BTreeMap<u16, (Vec<u8>, Option<Side>)>,
    keys: [Option<rsa::PrivateKey>; 2],
    pins: [Option<PinState>; 2],
    // Volatile state: lost on power-off and reset.
    ap_selected: bool,
    current: Option<Selected>,
    verified: [bool; 2],
    counters_changed: bool,
}

impl std::fmt::Debug for SoftCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftCard")
            .field("kind", &self.file.kind)
            .finish_non_exhaustive()
    }
}

fn pem_der(text: &str, what: &'static str) -> Result<Vec<u8>, CardFileError> {
    let mut blocks = kiosk_document::pem::pem_blocks(text, "CERTIFICATE")
        .map_err(|_| CardFileError::Certificate(what))?;
    if blocks.len() != 1 {
        return Err(CardFileError::Certificate(what));
    }
    Ok(blocks.remove(0))
}

impl SoftCard {
    /// Builds the card a file describes.
    pub fn from_file(file: CardFile) -> Result<Self, CardFileError> {
        let mut card = Self {
            binaries: BTreeMap::new(),
            keys: [None, None],
            pins: [None, None],
            ap_selected: false,
            current: None,
            verified: [false, false],
            counters_changed: false,
            file: file.clone(),
        };
        if file.kind == CardKind::Juki && file.auth.is_some() {
            return Err(CardFileError::Invalid(
                "a 住基カード has no user-authentication side",
            ));
        }
        let sides = [
            (
                Side::Auth,
                file.auth.as_ref(),
                AUTH_PIN_MAX_TRIES,
                ef::AUTH_CERT,
                ef::AUTH_CA_CERT,
            ),
            (
                Side::Sign,
                Some(&file.sign),
                SIGN_PIN_MAX_TRIES,
                ef::SIGN_CERT,
                ef::SIGN_CA_CERT,
            ),
        ];
        for (side, desc, max, cert_ef, ca_ef) in sides {
            let Some(desc) = desc else { continue };
            let pin_ok = match side {
                Side::Auth => card::pin::Pin::parse(&desc.pin).is_ok(),
                Side::Sign => {
                    (6..=16).contains(&desc.pin.len())
                        && desc
                            .pin
                            .bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                }
            };
            if !pin_ok {
                return Err(CardFileError::Invalid("PIN has the wrong format"));
            }
            if desc.tries_left > max {
                return Err(CardFileError::Invalid("tries_left above the maximum"));
            }
            card.pins[side as usize] = Some(PinState {
                value: zeroize::Zeroizing::new(desc.pin.as_bytes().to_vec()),
                tries_left: desc.tries_left,
                max,
            });
            let name = match side {
                Side::Auth => "auth",
                Side::Sign => "sign",
            };
            if let Some(key) = &desc.key {
                let key =
                    rsa::PrivateKey::from_pkcs8_pem(key).map_err(|_| CardFileError::Key(name))?;
                if key.size() != 256 {
                    return Err(CardFileError::Key(name));
                }
                card.keys[side as usize] = Some(key);
            }
            // The signature certificate carries personal data on a real card, hence the PIN.
            let cert_guard = (side == Side::Sign).then_some(Side::Sign);
            if let Some(cert) = &desc.certificate {
                card.binaries
                    .insert(cert_ef, (pem_der(cert, name)?, cert_guard));
            }
            if let Some(ca) = &desc.ca_certificate {
                card.binaries.insert(ca_ef, (pem_der(ca, name)?, None));
            }
        }
        let mut token = *b"JPKIAPICCTOKEN2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
        if file.kind == CardKind::Juki {
            // No public source names the 住基カード token; keep it distinct.
            token[..15].copy_from_slice(b"JUKIAPICCTOKEN\0");
        }
        card.binaries.insert(ef::TOKEN, (token.to_vec(), None));
        Ok(card)
    }

    /// Loads a card from its file.
    pub fn load(path: &Path) -> Result<Self, CardFileError> {
        Self::from_file(CardFile::load(path)?)
    }

    /// The card file with the current retry counters, for saving.
    pub fn card_file(&self) -> CardFile {
        let mut file = self.file.clone();
        if let (Some(side), Some(pin)) = (file.auth.as_mut(), &self.pins[Side::Auth as usize]) {
            side.tries_left = pin.tries_left;
        }
        if let Some(pin) = &self.pins[Side::Sign as usize] {
            file.sign.tries_left = pin.tries_left;
        }
        file
    }

    /// True once since the last call if a retry counter changed (the caller saves the file).
    pub fn take_counters_changed(&mut self) -> bool {
        std::mem::take(&mut self.counters_changed)
    }

    /// The ATR.
    pub fn atr(&self) -> &'static [u8] {
        &ATR
    }

    /// Power on: a fresh security state.
    pub fn power_on(&mut self) {
        self.clear_volatile();
    }

    /// Power off: the security state is lost; counters stay.
    pub fn power_off(&mut self) {
        self.clear_volatile();
    }

    /// Warm reset: the security state is lost; counters stay.
    pub fn reset(&mut self) {
        self.clear_volatile();
    }

    fn clear_volatile(&mut self) {
        self.ap_selected = false;
        self.current = None;
        self.verified = [false, false];
    }

    /// Answers raw command bytes with raw response bytes. Malformed commands get `67 00`.
    pub fn process(&mut self, command: &[u8]) -> Vec<u8> {
        match Command::parse(command) {
            Ok(c) => self.handle(&c).to_bytes(),
            Err(_) => Response::status(StatusWord::WRONG_LENGTH).to_bytes(),
        }
    }

    /// Answers one command.
    pub fn handle(&mut self, c: &Command) -> Response {
        match (c.cla(), c.ins()) {
            (0x00, 0xA4) => self.select(c),
            (0x00, 0xB0) => self.read_binary(c),
            (0x00, 0x20) => self.verify(c),
            (0x80, 0x2A) => self.sign(c),
            (0x00 | 0x80, _) => Response::status(StatusWord::INS_NOT_SUPPORTED),
            _ => Response::status(StatusWord::CLA_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, c: &Command) -> Response {
        let status = Response::status;
        if c.le().is_some() && c.p2() == 0x0C {
            return status(StatusWord::WRONG_LENGTH);
        }
        match (c.p1(), c.p2()) {
            (0x04, 0x0C | 0x00) => {
                if c.data().is_empty() {
                    return status(StatusWord::WRONG_LENGTH);
                }
                if c.data() == JPKI_AID {
                    self.ap_selected = true;
                    self.current = None;
                    self.verified = [false, false];
                    status(StatusWord::OK)
                } else {
                    status(StatusWord::FILE_NOT_FOUND)
                }
            }
            (0x02, 0x0C) => {
                let [hi, lo] = c.data() else {
                    return status(StatusWord::WRONG_LENGTH);
                };
                if !self.ap_selected {
                    return status(StatusWord::FILE_NOT_FOUND);
                }
                let fid = u16::from_be_bytes([*hi, *lo]);
                let found = match fid {
                    ef::AUTH_PIN => self.pins[0].is_some().then_some(Selected::Pin(Side::Auth)),
                    ef::SIGN_PIN => self.pins[1].is_some().then_some(Selected::Pin(Side::Sign)),
                    ef::AUTH_KEY => self.keys[0].is_some().then_some(Selected::Key(Side::Auth)),
                    ef::SIGN_KEY => self.keys[1].is_some().then_some(Selected::Key(Side::Sign)),
                    fid => self
                        .binaries
                        .contains_key(&fid)
                        .then_some(Selected::Binary(fid)),
                };
                match found {
                    Some(sel) => {
                        self.current = Some(sel);
                        status(StatusWord::OK)
                    }
                    None => status(StatusWord::FILE_NOT_FOUND),
                }
            }
            // Selecting the MF or by path is not something a JPKI host does; there is no
            // MF to find (OpenSC keeps 3F00 virtual).
            (0x00 | 0x01 | 0x08 | 0x09, 0x0C | 0x00) => status(StatusWord::FILE_NOT_FOUND),
            _ => status(StatusWord::WRONG_P1P2),
        }
    }

    fn read_binary(&mut self, c: &Command) -> Response {
        let status = Response::status;
        if c.p1() & 0x80 != 0 {
            // Short EF identifiers are not part of the JPKI profile.
            return status(StatusWord::WRONG_P1P2);
        }
        if !c.data().is_empty() {
            return status(StatusWord::WRONG_LENGTH);
        }
        let Some(le) = c.le() else {
            return status(StatusWord::WRONG_LENGTH);
        };
        let Some(Selected::Binary(fid)) = self.current else {
            return status(StatusWord::NO_CURRENT_EF);
        };
        let Some((content, guard)) = self.binaries.get(&fid) else {
            return status(StatusWord::NO_CURRENT_EF);
        };
        if let Some(side) = guard
            && !self.verified[*side as usize]
        {
            return status(StatusWord::SECURITY_NOT_SATISFIED);
        }
        let offset = usize::from(u16::from_be_bytes([c.p1(), c.p2()]));
        if offset >= content.len() {
            return status(StatusWord::WRONG_OFFSET);
        }
        let end = content.len().min(offset + le);
        let data = content[offset..end].to_vec();
        let sw = if data.len() < le {
            StatusWord::END_OF_FILE
        } else {
            StatusWord::OK
        };
        Response::new(data, sw)
    }

    fn verify(&mut self, c: &Command) -> Response {
        let status = Response::status;
        if (c.p1(), c.p2()) != (0x00, 0x80) {
            return status(StatusWord::WRONG_P1P2);
        }
        if c.le().is_some() {
            return status(StatusWord::WRONG_LENGTH);
        }
        let Some(Selected::Pin(side)) = self.current else {
            return status(StatusWord::NO_CURRENT_EF);
        };
        let Some(pin) = self.pins[side as usize].as_mut() else {
            return status(StatusWord::NO_CURRENT_EF);
        };
        if c.data().is_empty() {
            // Always the counter, even when verified or blocked (card-profile.md 1.3).
            return status(StatusWord::tries_left(pin.tries_left));
        }
        if pin.tries_left == 0 {
            return status(StatusWord::AUTH_BLOCKED);
        }
        if constant_time_eq(c.data(), &pin.value) {
            if pin.tries_left != pin.max {
                pin.tries_left = pin.max;
                self.counters_changed = true;
            }
            self.verified[side as usize] = true;
            status(StatusWord::OK)
        } else {
            pin.tries_left -= 1;
            self.counters_changed = true;
            self.verified[side as usize] = false;
            status(StatusWord::tries_left(pin.tries_left))
        }
    }

    fn sign(&mut self, c: &Command) -> Response {
        let status = Response::status;
        if (c.p1(), c.p2()) != (0x00, 0x80) {
            return status(StatusWord::WRONG_P1P2);
        }
        let Some(Selected::Key(side)) = self.current else {
            return status(StatusWord::NO_CURRENT_EF);
        };
        if !self.verified[side as usize] {
            return status(StatusWord::SECURITY_NOT_SATISFIED);
        }
        let Some(key) = self.keys[side as usize].as_ref() else {
            return status(StatusWord::NO_CURRENT_EF);
        };
        // PKCS#1 v1.5 type 1 needs at least 11 bytes of padding in the 256-byte block.
        if c.data().is_empty() || c.data().len() > key.size() - 11 {
            return status(StatusWord::WRONG_LENGTH);
        }
        match c.le() {
            Some(le) if le >= key.size() => {}
            // 6C00: "the right Le is 00 (256)"; hosts resend (transport::exchange does).
            _ => return status(StatusWord::new(0x6C, 0x00)),
        }
        match key.sign(rsa::Pkcs1v15Sign::new_unprefixed(), c.data()) {
            Ok(signature) => Response::new(signature, StatusWord::OK),
            // Cannot happen for a checked length; answer like a card with a broken key.
            Err(_) => status(StatusWord::CONDITIONS_NOT_SATISFIED),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is not secret (the PIN format fixes it); the contents are compared without an
    // early exit.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An in-process transport to a [`SoftCard`].
#[derive(Debug)]
pub struct SoftTransport {
    card: SoftCard,
    present: bool,
}

impl SoftTransport {
    /// Inserts the card: powers it on.
    pub fn new(mut card: SoftCard) -> Self {
        card.power_on();
        Self {
            card,
            present: true,
        }
    }

    /// The card, e.g. to save its counters.
    pub fn card(&self) -> &SoftCard {
        &self.card
    }

    /// The card, mutably (power events, inspection).
    pub fn card_mut(&mut self) -> &mut SoftCard {
        &mut self.card
    }

    /// Simulates pulling the card out: every later transmit fails with `CardRemoved`.
    pub fn remove(&mut self) {
        self.card.power_off();
        self.present = false;
    }

    /// Takes the card back.
    pub fn into_card(self) -> SoftCard {
        self.card
    }
}

impl Transport for SoftTransport {
    fn transmit(&mut self, command: &Command) -> Result<Response, TransportError> {
        if !self.present {
            return Err(TransportError::CardRemoved);
        }
        // Through bytes, as a reader would, so encoding bugs show up here too.
        Ok(Response::parse(&self.card.process(&command.to_bytes()))?)
    }
}
