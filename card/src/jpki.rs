//! The JPKI application (公的個人認証AP) client, user-authentication side.
//!
//! A card session is a typed state machine: [`JpkiCard::open`] selects the application and
//! refuses cards that are not My Number Cards; [`JpkiCard::verify_pin`] consumes the session
//! and, on success, returns a [`VerifiedJpkiCard`] — the only type with a `sign` method. So
//! signing before the PIN was verified in the same card session does not compile.
//!
//! APDUs and file ids follow docs/card-profile.md section 1.

use std::fmt;

use crate::apdu::{ApduError, Command, Response, StatusWord};
use crate::pin::Pin;
use crate::transport::{Transport, TransportError, exchange};

/// DF name of the JPKI AP.
pub const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];

/// Elementary files of the JPKI AP.
pub mod ef {
    /// 署名用電子証明書 (digital-signature certificate); readable after the sign PIN.
    pub const SIGN_CERT: u16 = 0x0001;
    /// CA certificate of the signature certificate.
    pub const SIGN_CA_CERT: u16 = 0x0002;
    /// Token, 32 bytes of ASCII.
    pub const TOKEN: u16 = 0x0006;
    /// 利用者証明用電子証明書 (user-authentication certificate), free read.
    pub const AUTH_CERT: u16 = 0x000A;
    /// CA certificate of the user-authentication certificate, free read.
    pub const AUTH_CA_CERT: u16 = 0x000B;
    /// User-authentication private key (RSA-2048).
    pub const AUTH_KEY: u16 = 0x0017;
    /// User-authentication PIN (4 digits, 3 tries).
    pub const AUTH_PIN: u16 = 0x0018;
    /// Signature private key (RSA-2048).
    pub const SIGN_KEY: u16 = 0x001A;
    /// Signature password (6–16 alphanumerics, 5 tries).
    pub const SIGN_PIN: u16 = 0x001B;
}

/// Largest certificate we read: the contract caps `card_certificate` at 4096 bytes.
pub const MAX_CERT_LEN: usize = 4096;

/// Length of an RSA-2048 signature.
pub const SIGNATURE_LEN: usize = 256;

/// What went wrong with the card, in terms the kiosk can show the resident.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpkiError {
    /// The PIN was wrong; `tries_left` more attempts before it blocks.
    #[error("wrong PIN, {tries_left} tries left")]
    WrongPin {
        /// Attempts left (1 or 2 on a JPKI card).
        tries_left: u8,
    },
    /// The PIN is blocked; only the municipal office can reset it.
    #[error("the PIN is blocked")]
    PinBlocked,
    /// The card has no JPKI application: not a My Number Card.
    #[error("not a My Number Card (no JPKI application)")]
    NotJpkiCard,
    /// A 住基カード (Basic Resident Register card): its JPKI AP never carried a
    /// user-authentication certificate, so it cannot log in.
    #[error("住基カード (Basic Resident Register card) cannot be used; a My Number Card is needed")]
    JukiCard,
    /// The card was taken out (or reset) during the session.
    #[error("the card was removed")]
    CardRemoved,
    /// The certificate EF could not be read or is not a DER certificate.
    #[error("the certificate on the card is unreadable")]
    CertificateUnreadable,
    /// The card refused to sign because its security state was lost (e.g. a reset by
    /// another application between VERIFY and signing).
    #[error("the card refused to sign: PIN not verified on the card")]
    NotVerified,
    /// The card answered with a status word this client does not expect here.
    #[error("the card answered {sw} to {step}")]
    UnexpectedStatus {
        /// What the client was doing.
        step: &'static str,
        /// The status word.
        sw: StatusWord,
    },
    /// The reader or the PC/SC service failed.
    #[error(transparent)]
    Transport(TransportError),
}

impl From<TransportError> for JpkiError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::CardRemoved | TransportError::NoCard => Self::CardRemoved,
            // A reset (by another application, or a power event) keeps its own variant: the
            // card is still there, but this session's verified state is gone.
            other => Self::Transport(other),
        }
    }
}

impl From<ApduError> for JpkiError {
    fn from(e: ApduError) -> Self {
        Self::Transport(TransportError::Malformed(e))
    }
}

/// A card session with the JPKI AP selected; the PIN is not verified.
pub struct JpkiCard<T: Transport> {
    transport: T,
}

impl<T: Transport> fmt::Debug for JpkiCard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JpkiCard")
    }
}

/// A VERIFY that did not succeed; gives the session back so the kiosk can ask again.
pub struct VerifyFailed<T: Transport> {
    error: JpkiError,
    card: JpkiCard<T>,
}

impl<T: Transport> VerifyFailed<T> {
    /// Why VERIFY failed.
    pub fn error(&self) -> &JpkiError {
        &self.error
    }
    /// The session, still unverified.
    pub fn into_card(self) -> JpkiCard<T> {
        self.card
    }
    /// The error, dropping the session.
    pub fn into_error(self) -> JpkiError {
        self.error
    }
}

impl<T: Transport> fmt::Debug for VerifyFailed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyFailed")
            .field("error", &self.error)
            .finish()
    }
}

impl<T: Transport> fmt::Display for VerifyFailed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<T: Transport> std::error::Error for VerifyFailed<T> {}

/// A card session in which the user-authentication PIN was verified: proof that signing
/// is allowed. Built only by [`JpkiCard::verify_pin`].
pub struct VerifiedJpkiCard<T: Transport> {
    card: JpkiCard<T>,
}

impl<T: Transport> fmt::Debug for VerifiedJpkiCard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifiedJpkiCard")
    }
}

impl<T: Transport> JpkiCard<T> {
    /// Selects the JPKI AP and checks that the card carries a user-authentication
    /// certificate.
    ///
    /// A card whose JPKI AP has the signature certificate EF but no user-authentication
    /// certificate EF is a 住基カード (card-profile.md section 2) and gets
    /// [`JpkiError::JukiCard`]; a card without the AP gets [`JpkiError::NotJpkiCard`].
    pub fn open(mut transport: T) -> Result<Self, JpkiError> {
        // Any refusal of the SELECT (6A82 on most cards, but also 6D00/6E00/6A86 on cards
        // that do not speak this dialect) means there is no JPKI AP to talk to.
        if !select_aid(&mut transport, &JPKI_AID)?.is_ok() {
            return Err(JpkiError::NotJpkiCard);
        }
        let mut card = Self { transport };
        match card.select_ef(ef::AUTH_CERT)? {
            sw if sw.is_ok() => Ok(card),
            StatusWord::FILE_NOT_FOUND => match card.select_ef(ef::SIGN_CERT)? {
                sw if sw.is_ok() => Err(JpkiError::JukiCard),
                _ => Err(JpkiError::NotJpkiCard),
            },
            sw => Err(JpkiError::UnexpectedStatus {
                step: "SELECT auth certificate",
                sw,
            }),
        }
    }

    /// Reads the user-authentication certificate (EF 000A), DER.
    pub fn read_auth_certificate(&mut self) -> Result<Vec<u8>, JpkiError> {
        self.read_certificate(ef::AUTH_CERT)
    }

    /// Reads the CA certificate of the user-authentication certificate (EF 000B), DER.
    pub fn read_auth_ca_certificate(&mut self) -> Result<Vec<u8>, JpkiError> {
        self.read_certificate(ef::AUTH_CA_CERT)
    }

    /// How many VERIFY attempts the user-authentication PIN has left (0 = blocked), by an
    /// empty VERIFY, which does not count as an attempt.
    pub fn pin_tries_left(&mut self) -> Result<u8, JpkiError> {
        self.select_required(ef::AUTH_PIN, "SELECT auth PIN")?;
        let sw = self.send(0x00, 0x20, 0x00, 0x80, Vec::new(), None)?.sw();
        match sw.counter() {
            Some(n) => Ok(n),
            None if is_blocked(sw) => Ok(0),
            // A card may say 90 00 when the PIN is verified already; JPKI cards do not
            // (card-profile.md 1.3), so treat it as unexpected.
            None => Err(JpkiError::UnexpectedStatus {
                step: "VERIFY (tries left)",
                sw,
            }),
        }
    }

    /// Verifies the user-authentication PIN on the card. The PIN goes only to the card.
    ///
    /// A blocked PIN is reported without sending it, so a blocked card never sees another
    /// attempt.
    pub fn verify_pin(mut self, pin: &Pin) -> Result<VerifiedJpkiCard<T>, VerifyFailed<T>> {
        match self.try_verify(pin) {
            Ok(()) => Ok(VerifiedJpkiCard { card: self }),
            Err(error) => Err(VerifyFailed { error, card: self }),
        }
    }

    /// Gives the transport back (e.g. to disconnect).
    pub fn into_transport(self) -> T {
        self.transport
    }

    fn try_verify(&mut self, pin: &Pin) -> Result<(), JpkiError> {
        if self.pin_tries_left()? == 0 {
            return Err(JpkiError::PinBlocked);
        }
        // pin_tries_left left EF 0018 selected, which VERIFY with P2 80 refers to.
        let sw = self
            .send(0x00, 0x20, 0x00, 0x80, pin.expose().to_vec(), None)?
            .sw();
        match sw {
            sw if sw.is_ok() => Ok(()),
            sw if sw.counter() == Some(0) || is_blocked(sw) => Err(JpkiError::PinBlocked),
            sw => match sw.counter() {
                Some(tries_left) => Err(JpkiError::WrongPin { tries_left }),
                None => Err(JpkiError::UnexpectedStatus { step: "VERIFY", sw }),
            },
        }
    }

    fn read_certificate(&mut self, fid: u16) -> Result<Vec<u8>, JpkiError> {
        match self.select_ef(fid)? {
            sw if sw.is_ok() => {}
            StatusWord::FILE_NOT_FOUND | StatusWord::SECURITY_NOT_SATISFIED => {
                return Err(JpkiError::CertificateUnreadable);
            }
            sw => {
                return Err(JpkiError::UnexpectedStatus {
                    step: "SELECT certificate",
                    sw,
                });
            }
        }
        // The DER header gives the length; every RSA-2048 certificate uses the two-byte
        // long form `30 82 LL LL`, but accept the shorter forms too.
        let header = self.read_binary(0, 4)?;
        let total = der_total_len(&header).ok_or(JpkiError::CertificateUnreadable)?;
        if total > MAX_CERT_LEN {
            return Err(JpkiError::CertificateUnreadable);
        }
        let mut cert = Vec::with_capacity(total);
        while cert.len() < total {
            let chunk = (total - cert.len()).min(256);
            let data = self.read_binary(cert.len(), chunk)?;
            if data.is_empty() || data.len() > chunk {
                return Err(JpkiError::CertificateUnreadable);
            }
            cert.extend_from_slice(&data);
        }
        if x509_parser::parse_x509_certificate(&cert).is_err() {
            return Err(JpkiError::CertificateUnreadable);
        }
        Ok(cert)
    }

    fn read_binary(&mut self, offset: usize, len: usize) -> Result<Vec<u8>, JpkiError> {
        // Short READ BINARY addresses 15 bits of offset.
        let offset = u16::try_from(offset)
            .ok()
            .filter(|o| *o < 0x8000)
            .ok_or(JpkiError::CertificateUnreadable)?;
        let [p1, p2] = offset.to_be_bytes();
        let r = self.send(0x00, 0xB0, p1, p2, Vec::new(), Some(len))?;
        match r.sw() {
            sw if sw.is_ok() || sw == StatusWord::END_OF_FILE => Ok(r.into_data()),
            _ => Err(JpkiError::CertificateUnreadable),
        }
    }

    fn select_ef(&mut self, fid: u16) -> Result<StatusWord, JpkiError> {
        Ok(self
            .send(0x00, 0xA4, 0x02, 0x0C, fid.to_be_bytes().to_vec(), None)?
            .sw())
    }

    fn select_required(&mut self, fid: u16, step: &'static str) -> Result<(), JpkiError> {
        match self.select_ef(fid)? {
            sw if sw.is_ok() => Ok(()),
            sw => Err(JpkiError::UnexpectedStatus { step, sw }),
        }
    }

    fn send(
        &mut self,
        cla: u8,
        ins: u8,
        p1: u8,
        p2: u8,
        data: Vec<u8>,
        le: Option<usize>,
    ) -> Result<Response, JpkiError> {
        let command = Command::new(cla, ins, p1, p2, data, le)?;
        Ok(exchange(&mut self.transport, &command)?)
    }
}

impl<T: Transport> VerifiedJpkiCard<T> {
    /// Signs a DER DigestInfo with the user-authentication key (EF 0017): the card adds the
    /// PKCS#1 v1.5 padding and returns the 256-byte RSA-2048 signature.
    pub fn sign_digest_info(&mut self, digest_info: &[u8]) -> Result<Vec<u8>, JpkiError> {
        self.card.select_required(ef::AUTH_KEY, "SELECT auth key")?;
        let r = self
            .card
            .send(0x80, 0x2A, 0x00, 0x80, digest_info.to_vec(), Some(256))?;
        match r.sw() {
            sw if sw.is_ok() && r.data().len() == SIGNATURE_LEN => Ok(r.into_data()),
            StatusWord::SECURITY_NOT_SATISFIED => Err(JpkiError::NotVerified),
            sw => Err(JpkiError::UnexpectedStatus {
                step: "COMPUTE DIGITAL SIGNATURE",
                sw,
            }),
        }
    }

    /// Reads the user-authentication certificate (EF 000A), DER.
    pub fn read_auth_certificate(&mut self) -> Result<Vec<u8>, JpkiError> {
        self.card.read_auth_certificate()
    }

    /// Reads the CA certificate of the user-authentication certificate (EF 000B), DER.
    pub fn read_auth_ca_certificate(&mut self) -> Result<Vec<u8>, JpkiError> {
        self.card.read_auth_ca_certificate()
    }

    /// Ends the verified state on the host side. The card keeps its security state until
    /// it is reset; re-selecting the AP (what OpenSC does for logout) is the caller's choice.
    pub fn into_card(self) -> JpkiCard<T> {
        self.card
    }

    /// Gives the transport back (e.g. to disconnect with a reset).
    pub fn into_transport(self) -> T {
        self.card.transport
    }
}

fn select_aid<T: Transport>(transport: &mut T, aid: &[u8]) -> Result<StatusWord, JpkiError> {
    let command = Command::new(0x00, 0xA4, 0x04, 0x0C, aid.to_vec(), None)?;
    Ok(exchange(transport, &command)?.sw())
}

fn is_blocked(sw: StatusWord) -> bool {
    sw == StatusWord::AUTH_BLOCKED || sw == StatusWord::REFERENCE_INVALIDATED
}

/// Total length (header + contents) of a DER TLV from its first bytes, for the lengths a
/// certificate can have.
pub fn der_total_len(header: &[u8]) -> Option<usize> {
    match header {
        [0x30, n, ..] if *n < 0x80 => Some(2 + usize::from(*n)),
        [0x30, 0x81, n, ..] => Some(3 + usize::from(*n)),
        [0x30, 0x82, hi, lo, ..] => Some(4 + usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}
