//! ISO 7816-4 command and response APDUs, short and extended length.
//!
//! Both directions are parsed from untrusted bytes (a card answers the host; a host commands
//! the software card), so every parser returns [`ApduError`] on malformed input and never
//! panics. The fuzz targets in `fuzz/` drive [`Command::parse`] and [`Response::parse`].

use std::fmt;

/// What is wrong with bytes that should have been an APDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApduError {
    /// Fewer than the four header bytes of a command.
    #[error("command APDU shorter than its 4-byte header ({0} bytes)")]
    CommandTooShort(usize),
    /// The body does not match any of the ISO 7816-4 cases 1–4 (short or extended).
    #[error("command APDU body of {0} bytes matches no ISO 7816-4 case")]
    MalformedBody(usize),
    /// Lc of zero in the short form is reserved (a zero byte there starts the extended form).
    #[error("command APDU has a zero Lc")]
    ZeroLc,
    /// A response without its two status bytes.
    #[error("response APDU shorter than its 2 status bytes ({0} bytes)")]
    ResponseTooShort(usize),
    /// Data longer than an extended APDU can carry.
    #[error("APDU data of {0} bytes exceeds 65535")]
    DataTooLong(usize),
    /// An expected length beyond 65536.
    #[error("expected length {0} exceeds 65536")]
    LeTooLarge(usize),
}

/// A status word (SW1 SW2).
///
/// Invariant: none beyond being two bytes; the constructors name the ones this crate uses.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(u16);

impl StatusWord {
    /// `90 00`: success.
    pub const OK: Self = Self(0x9000);
    /// `62 82`: end of file reached before Le bytes were read.
    pub const END_OF_FILE: Self = Self(0x6282);
    /// `67 00`: wrong length.
    pub const WRONG_LENGTH: Self = Self(0x6700);
    /// `69 82`: security status not satisfied (e.g. signing without a verified PIN).
    pub const SECURITY_NOT_SATISFIED: Self = Self(0x6982);
    /// `69 83`: authentication method blocked (the PIN is blocked).
    pub const AUTH_BLOCKED: Self = Self(0x6983);
    /// `69 84`: referenced data invalidated — what some tools report for a blocked JPKI PIN.
    pub const REFERENCE_INVALIDATED: Self = Self(0x6984);
    /// `69 85`: conditions of use not satisfied.
    pub const CONDITIONS_NOT_SATISFIED: Self = Self(0x6985);
    /// `69 86`: command not allowed (no current EF).
    pub const NO_CURRENT_EF: Self = Self(0x6986);
    /// `6A 80`: incorrect data field.
    pub const WRONG_DATA: Self = Self(0x6A80);
    /// `6A 82`: file or application not found.
    pub const FILE_NOT_FOUND: Self = Self(0x6A82);
    /// `6A 86`: incorrect P1/P2.
    pub const WRONG_P1P2: Self = Self(0x6A86);
    /// `6B 00`: offset outside the EF.
    pub const WRONG_OFFSET: Self = Self(0x6B00);
    /// `6D 00`: instruction not supported.
    pub const INS_NOT_SUPPORTED: Self = Self(0x6D00);
    /// `6E 00`: class not supported.
    pub const CLA_NOT_SUPPORTED: Self = Self(0x6E00);

    /// The status word from its two bytes.
    pub const fn new(sw1: u8, sw2: u8) -> Self {
        Self(((sw1 as u16) << 8) | sw2 as u16)
    }

    /// `63 Cx`: verification failed (or, for an empty VERIFY, the counter), `x` tries left.
    pub const fn tries_left(tries: u8) -> Self {
        Self::new(0x63, 0xC0 | (tries & 0x0F))
    }

    /// SW1.
    pub const fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// SW2.
    pub const fn sw2(self) -> u8 {
        self.0 as u8
    }

    /// Whether this is `90 00`.
    pub const fn is_ok(self) -> bool {
        self.0 == 0x9000
    }

    /// For `63 Cx`, the `x`.
    pub const fn counter(self) -> Option<u8> {
        if self.sw1() == 0x63 && self.sw2() & 0xF0 == 0xC0 {
            Some(self.sw2() & 0x0F)
        } else {
            None
        }
    }

    /// The two bytes, SW1 first.
    pub const fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SW {:02X}{:02X}", self.sw1(), self.sw2())
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X}{:02X}", self.sw1(), self.sw2())
    }
}

/// The largest expected length: 65536, encoded as `00 00` in the extended form.
pub const MAX_LE: usize = 65536;

/// A command APDU.
///
/// Invariant: `data.len() <= 65535`, `le <= 65536`; `le == Some(0)` never occurs (use `None`).
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: Vec<u8>,
    le: Option<usize>,
}

impl fmt::Debug for Command {
    // Data is left out: a VERIFY carries the PIN.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Command {{ {:02X} {:02X} {:02X} {:02X}, {} data bytes, le {:?} }}",
            self.cla,
            self.ins,
            self.p1,
            self.p2,
            self.data.len(),
            self.le
        )
    }
}

impl Command {
    /// A command; fails if `data` exceeds 65535 bytes or `le` exceeds 65536. `le` of
    /// `Some(0)` is read as "no response data expected" (`None`).
    pub fn new(
        cla: u8,
        ins: u8,
        p1: u8,
        p2: u8,
        data: Vec<u8>,
        le: Option<usize>,
    ) -> Result<Self, ApduError> {
        if data.len() > 65535 {
            return Err(ApduError::DataTooLong(data.len()));
        }
        let le = le.filter(|&l| l != 0);
        if let Some(l) = le
            && l > MAX_LE
        {
            return Err(ApduError::LeTooLarge(l));
        }
        Ok(Self {
            cla,
            ins,
            p1,
            p2,
            data,
            le,
        })
    }

    /// Class byte.
    pub fn cla(&self) -> u8 {
        self.cla
    }
    /// Instruction byte.
    pub fn ins(&self) -> u8 {
        self.ins
    }
    /// P1.
    pub fn p1(&self) -> u8 {
        self.p1
    }
    /// P2.
    pub fn p2(&self) -> u8 {
        self.p2
    }
    /// The command data field (empty for cases 1 and 2).
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// The expected response length, if any (256 for a short `Le = 00`).
    pub fn le(&self) -> Option<usize> {
        self.le
    }

    /// Whether encoding needs the extended form.
    pub fn is_extended(&self) -> bool {
        self.data.len() > 255 || self.le.is_some_and(|l| l > 256)
    }

    /// Encodes the command, choosing the short form when it fits.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 3 + self.data.len() + 3);
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        let extended = self.is_extended();
        if !self.data.is_empty() {
            if extended {
                out.push(0);
                out.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
            } else {
                out.push(self.data.len() as u8);
            }
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            if extended {
                if self.data.is_empty() {
                    out.push(0);
                }
                // 65536 is encoded as 00 00, which the truncating cast produces.
                out.extend_from_slice(&(le as u16).to_be_bytes());
            } else {
                // 256 is encoded as 00.
                out.push(le as u8);
            }
        }
        out
    }

    /// Parses a command APDU (ISO 7816-4 section 5.1: cases 1, 2S/E, 3S/E, 4S/E).
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        let [cla, ins, p1, p2, body @ ..] = bytes else {
            return Err(ApduError::CommandTooShort(bytes.len()));
        };
        let (data, le): (&[u8], Option<usize>) = match body {
            // Case 1.
            [] => (&[], None),
            // Case 2S.
            [le] => (&[], Some(short_le(*le))),
            // Extended forms start with a zero byte and are at least 3 bytes long.
            [0, rest @ ..] if rest.len() >= 2 => {
                let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let after = &rest[2..];
                if after.is_empty() {
                    // Case 2E.
                    (&[], Some(extended_le(n)))
                } else if n == 0 {
                    return Err(ApduError::MalformedBody(body.len()));
                } else if after.len() == n {
                    // Case 3E.
                    (after, None)
                } else if after.len() == n + 2 {
                    // Case 4E.
                    let (data, le) = after.split_at(n);
                    (
                        data,
                        Some(extended_le(usize::from(u16::from_be_bytes([le[0], le[1]])))),
                    )
                } else {
                    return Err(ApduError::MalformedBody(body.len()));
                }
            }
            [0, ..] => return Err(ApduError::ZeroLc),
            [lc, rest @ ..] => {
                let n = usize::from(*lc);
                if rest.len() == n {
                    // Case 3S.
                    (rest, None)
                } else if rest.len() == n + 1 {
                    // Case 4S.
                    let (data, le) = rest.split_at(n);
                    (data, Some(short_le(le[0])))
                } else {
                    return Err(ApduError::MalformedBody(body.len()));
                }
            }
        };
        Ok(Self {
            cla: *cla,
            ins: *ins,
            p1: *p1,
            p2: *p2,
            data: data.to_vec(),
            le,
        })
    }
}

fn short_le(b: u8) -> usize {
    if b == 0 { 256 } else { usize::from(b) }
}

fn extended_le(n: usize) -> usize {
    if n == 0 { MAX_LE } else { n }
}

/// A response APDU: data followed by the status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    data: Vec<u8>,
    sw: StatusWord,
}

impl fmt::Debug for Response {
    // Only the length of the data: it may be a certificate or a signature, never useful in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Response {{ {} data bytes, {:?} }}",
            self.data.len(),
            self.sw
        )
    }
}

impl Response {
    /// A response with data.
    pub fn new(data: Vec<u8>, sw: StatusWord) -> Self {
        Self { data, sw }
    }

    /// A response carrying only a status word.
    pub fn status(sw: StatusWord) -> Self {
        Self {
            data: Vec::new(),
            sw,
        }
    }

    /// Parses `data || SW1 SW2`.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        let [data @ .., sw1, sw2] = bytes else {
            return Err(ApduError::ResponseTooShort(bytes.len()));
        };
        Ok(Self {
            data: data.to_vec(),
            sw: StatusWord::new(*sw1, *sw2),
        })
    }

    /// The response data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the response data.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The status word.
    pub fn sw(&self) -> StatusWord {
        self.sw
    }

    /// Encodes `data || SW1 SW2`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn all_cases_round_trip() {
        let cases = [
            Command::new(0x00, 0x20, 0x00, 0x80, vec![], None).unwrap(),
            Command::new(0x00, 0xB0, 0x01, 0x00, vec![], Some(256)).unwrap(),
            Command::new(0x00, 0xA4, 0x02, 0x0C, vec![0x00, 0x0A], None).unwrap(),
            Command::new(0x80, 0x2A, 0x00, 0x80, vec![0x30; 51], Some(256)).unwrap(),
            Command::new(0x00, 0xB0, 0x00, 0x00, vec![], Some(1000)).unwrap(),
            Command::new(0x00, 0xB0, 0x00, 0x00, vec![], Some(65536)).unwrap(),
            Command::new(0x00, 0xD6, 0x00, 0x00, vec![7; 300], None).unwrap(),
            Command::new(0x00, 0x2A, 0x00, 0x00, vec![7; 300], Some(65536)).unwrap(),
        ];
        for c in cases {
            assert_eq!(Command::parse(&c.to_bytes()).unwrap(), c, "{c:?}");
        }
    }

    #[test]
    fn known_encodings() {
        let sign = Command::new(0x80, 0x2A, 0x00, 0x80, vec![1, 2, 3], Some(256)).unwrap();
        assert_eq!(sign.to_bytes(), [0x80, 0x2A, 0x00, 0x80, 3, 1, 2, 3, 0]);
        let read = Command::new(0x00, 0xB0, 0, 0, vec![], Some(0x2F0)).unwrap();
        assert_eq!(read.to_bytes(), [0, 0xB0, 0, 0, 0, 0x02, 0xF0]);
        assert_eq!(Command::parse(&[0, 0xB0, 0, 0, 0]).unwrap().le(), Some(256));
    }

    #[test]
    fn malformed_commands_are_errors() {
        assert_eq!(
            Command::parse(&[0, 1, 2]),
            Err(ApduError::CommandTooShort(3))
        );
        assert_eq!(
            Command::parse(&[0, 0xA4, 4, 0x0C, 5, 1, 2]),
            Err(ApduError::MalformedBody(3))
        );
        assert_eq!(
            Command::parse(&[0, 0xA4, 4, 0x0C, 0, 1]),
            Err(ApduError::ZeroLc)
        );
        assert!(Command::parse(&[0, 0xA4, 4, 0x0C, 0, 0, 0, 9]).is_err());
        assert!(Command::parse(&[0, 0xA4, 4, 0x0C, 0, 0, 3, 1, 2]).is_err());
        assert_eq!(
            Response::parse(&[0x90]),
            Err(ApduError::ResponseTooShort(1))
        );
    }

    #[test]
    fn status_words() {
        assert_eq!(StatusWord::tries_left(2).counter(), Some(2));
        assert_eq!(StatusWord::OK.counter(), None);
        assert_eq!(format!("{:?}", StatusWord::FILE_NOT_FOUND), "SW 6A82");
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(c) = Command::parse(&bytes) {
                prop_assert_eq!(Command::parse(&c.to_bytes()).unwrap(), c);
            }
            if let Ok(r) = Response::parse(&bytes) {
                prop_assert_eq!(r.to_bytes(), bytes);
            }
        }
    }
}
