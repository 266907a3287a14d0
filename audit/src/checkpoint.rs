//! Signed checkpoints: a C2SP tlog-checkpoint body signed as a C2SP signed-note with Ed25519.
//!
//! Body: `<origin>\n<tree size>\n<base64 root>\n`. Note: body, a blank line, then one line per
//! signature `— <key name> <base64(key id || signature)>\n`. The Ed25519 key id is
//! `SHA-256(name || 0x0A || 0x01 || public key)[:4]`. The key name is the origin.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::sync::Arc;

use kiosk_keys::{Algorithm, Signer};
use ring::signature;

use crate::merkle::Hash;

/// Errors making, parsing or verifying a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The origin is not a valid key name.
    #[error("origin must be non-empty printable ASCII without spaces or `+`")]
    Origin,
    /// The signing key could not be loaded.
    #[error("signing key rejected")]
    Key,
    /// The signing key failed to sign (a token error).
    #[error("signing failed: {0}")]
    Sign(kiosk_keys::KeyError),
    /// A verifier key string was malformed.
    #[error("verifier key malformed: {0}")]
    VerifierKey(&'static str),
    /// The note text is malformed.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// No signature by the trusted key verified.
    #[error("no valid signature by the trusted key")]
    BadSignature,
    /// The checkpoint names another log.
    #[error("checkpoint origin does not match the trusted key's origin")]
    WrongOrigin,
}

/// The signed statement: this log had `size` entries with root `root`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
}

impl Checkpoint {
    /// A checkpoint body. The origin is checked as a key name.
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        check_name(origin)?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// The log's name.
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The Merkle root.
    pub fn root(&self) -> &Hash {
        &self.root
    }

    /// The note body text.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root.as_bytes())
        )
    }

    /// Parses a checkpoint body (extension lines after the root are allowed and ignored).
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let mut lines = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("body must end in newline"))?
            .split('\n');
        let origin = lines
            .next()
            .ok_or(CheckpointError::Malformed("no origin"))?;
        let size_text = lines.next().ok_or(CheckpointError::Malformed("no size"))?;
        if size_text.is_empty()
            || (size_text.len() > 1 && size_text.starts_with('0'))
            || !size_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(CheckpointError::Malformed(
                "size must be decimal without leading zeros",
            ));
        }
        let size = size_text
            .parse()
            .map_err(|_| CheckpointError::Malformed("size out of range"))?;
        let root_b64 = lines.next().ok_or(CheckpointError::Malformed("no root"))?;
        let root_bytes = B64
            .decode(root_b64)
            .map_err(|_| CheckpointError::Malformed("root not base64"))?;
        let root = Hash::from_slice(&root_bytes)
            .map_err(|_| CheckpointError::Malformed("root not 32 bytes"))?;
        if lines.any(str::is_empty) {
            return Err(CheckpointError::Malformed("empty extension line"));
        }
        Self::new(origin, size, root).map_err(|_| CheckpointError::Malformed("bad origin"))
    }
}

fn check_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'+') {
        return Err(CheckpointError::Origin);
    }
    Ok(())
}

/// The 4-byte C2SP key id of an Ed25519 key: `SHA-256(name || "\n" || 0x01 || key)[:4]`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n\x01");
    ctx.update(public_key);
    let d = ctx.finish();
    let mut id = [0u8; 4];
    id.copy_from_slice(&d.as_ref()[..4]);
    id
}

/// A checkpoint together with the exact signed note text.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: String,
}

impl SignedCheckpoint {
    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
    /// The signed note, exactly as signed.
    pub fn note(&self) -> &str {
        &self.note
    }

    /// Reads a stored note without verifying it (storage is trusted by its writer; auditors use
    /// [`CheckpointVerifier::verify`]).
    pub fn from_stored(note: &str) -> Result<Self, CheckpointError> {
        let (body, _) = split_note(note)?;
        Ok(Self {
            checkpoint: Checkpoint::parse_body(body)?,
            note: note.to_owned(),
        })
    }
}

/// Signs checkpoints with the log's Ed25519 key (in memory, or on a PKCS#11 token through
/// [`kiosk_keys`]). The key name is the origin.
pub struct CheckpointSigner {
    origin: String,
    key: Arc<Signer>,
    public_key: [u8; 32],
    id: [u8; 4],
}

impl CheckpointSigner {
    /// Loads a PKCS#8 (v1 or v2) Ed25519 key, as `ring` generates.
    pub fn from_pkcs8(origin: &str, pkcs8: &[u8]) -> Result<Self, CheckpointError> {
        let key =
            Signer::from_pkcs8(pkcs8, Algorithm::Ed25519).map_err(|_| CheckpointError::Key)?;
        Self::from_signer(origin, key)
    }

    /// Loads a raw 32-byte Ed25519 seed.
    pub fn from_seed(origin: &str, seed: &[u8; 32]) -> Result<Self, CheckpointError> {
        let key = Signer::ed25519_from_seed(seed).map_err(|_| CheckpointError::Key)?;
        Self::from_signer(origin, key)
    }

    /// Signs with an Ed25519 [`Signer`]: a key on a PKCS#11 token
    /// (`kiosk_keys::Signer::open("pkcs11:...", Algorithm::Ed25519)`) or in memory.
    pub fn from_signer(origin: &str, key: impl Into<Arc<Signer>>) -> Result<Self, CheckpointError> {
        check_name(origin)?;
        let key = key.into();
        let public_key: [u8; 32] = key
            .public_key()
            .try_into()
            .map_err(|_| CheckpointError::Key)?;
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(CheckpointError::Key);
        }
        Ok(Self {
            origin: origin.to_owned(),
            id: key_id(origin, &public_key),
            public_key,
            key,
        })
    }

    /// The log's origin (and key name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CheckpointVerifier {
        CheckpointVerifier {
            name: self.origin.clone(),
            public_key: self.public_key(),
            id: self.id,
        }
    }

    /// Signs a checkpoint of this log at `size` with `root`.
    pub fn sign(&self, size: u64, root: Hash) -> Result<SignedCheckpoint, CheckpointError> {
        let checkpoint = Checkpoint::new(&self.origin, size, root)?;
        let body = checkpoint.body();
        let sig = self
            .key
            .sign(body.as_bytes())
            .map_err(CheckpointError::Sign)?;
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(&sig);
        let note = format!("{body}\n\u{2014} {} {}\n", self.origin, B64.encode(blob));
        Ok(SignedCheckpoint { checkpoint, note })
    }
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CheckpointSigner({}, {}, <key redacted>)",
            self.origin,
            self.key.description()
        )
    }
}

/// Verifies checkpoints of one log against its public key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CheckpointVerifier {
    name: String,
    public_key: [u8; 32],
    id: [u8; 4],
}

impl CheckpointVerifier {
    /// A verifier from the key name (the origin) and raw public key.
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<Self, CheckpointError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            public_key,
            id: key_id(name, &public_key),
        })
    }

    /// Parses the standard verifier key string `<name>+<hex key id>+<base64(0x01 || key)>`.
    pub fn parse_vkey(vkey: &str) -> Result<Self, CheckpointError> {
        // The key's base64 may itself contain `+`, so only the first two are separators.
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CheckpointError::VerifierKey("need name+id+key"));
        };
        let key = B64
            .decode(key_b64)
            .map_err(|_| CheckpointError::VerifierKey("key not base64"))?;
        let (&alg, raw) = key
            .split_first()
            .ok_or(CheckpointError::VerifierKey("empty key"))?;
        if alg != 0x01 {
            return Err(CheckpointError::VerifierKey("not an Ed25519 key"));
        }
        let pk: [u8; 32] = raw
            .try_into()
            .map_err(|_| CheckpointError::VerifierKey("key not 32 bytes"))?;
        let v = Self::new(name, pk).map_err(|_| CheckpointError::VerifierKey("bad name"))?;
        if id_hex.len() != 8 || hex::encode(v.id) != id_hex.to_ascii_lowercase() {
            return Err(CheckpointError::VerifierKey(
                "key id does not match the key",
            ));
        }
        Ok(v)
    }

    /// The standard verifier key string.
    pub fn vkey(&self) -> String {
        let mut key = vec![0x01];
        key.extend_from_slice(&self.public_key);
        format!("{}+{}+{}", self.name, hex::encode(self.id), B64.encode(key))
    }

    /// The raw public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// Verifies a signed note: at least one signature line by this key must verify (unknown
    /// keys are ignored, up to 100 lines), and the body must be a checkpoint of this log.
    pub fn verify(&self, note: &str) -> Result<SignedCheckpoint, CheckpointError> {
        let (body, sigs) = split_note(note)?;
        let pk = signature::UnparsedPublicKey::new(&signature::ED25519, &self.public_key);
        let mut verified = false;
        for line in sigs {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or(CheckpointError::Malformed("signature line"))?;
            let (name, b64) = rest
                .rsplit_once(' ')
                .ok_or(CheckpointError::Malformed("signature line"))?;
            let blob = B64
                .decode(b64)
                .map_err(|_| CheckpointError::Malformed("signature not base64"))?;
            if blob.len() < 5 {
                return Err(CheckpointError::Malformed("signature too short"));
            }
            if name != self.name || blob[..4] != self.id {
                continue;
            }
            if pk.verify(body.as_bytes(), &blob[4..]).is_ok() {
                verified = true;
            } else {
                // A line that claims our key but does not verify is an attack, not noise.
                return Err(CheckpointError::BadSignature);
            }
        }
        if !verified {
            return Err(CheckpointError::BadSignature);
        }
        let checkpoint = Checkpoint::parse_body(body)?;
        if checkpoint.origin != self.name {
            return Err(CheckpointError::WrongOrigin);
        }
        Ok(SignedCheckpoint {
            checkpoint,
            note: note.to_owned(),
        })
    }
}

/// Splits a note into body (with its final newline) and signature lines.
fn split_note(note: &str) -> Result<(&str, Vec<&str>), CheckpointError> {
    if note.len() > 1 << 20 {
        return Err(CheckpointError::Malformed("note too long"));
    }
    let at = note.find("\n\n").ok_or(CheckpointError::Malformed(
        "no blank line before signatures",
    ))?;
    let body = &note[..=at];
    let sig_text = &note[at + 2..];
    let sig_text = sig_text
        .strip_suffix('\n')
        .ok_or(CheckpointError::Malformed("must end in newline"))?;
    let sigs: Vec<&str> = sig_text.split('\n').collect();
    if sigs.is_empty() || sigs.len() > 100 || sigs.iter().any(|s| s.is_empty()) {
        return Err(CheckpointError::Malformed("signature lines"));
    }
    if body.chars().any(|c| c.is_control() && c != '\n') {
        return Err(CheckpointError::Malformed("control characters in body"));
    }
    Ok((body, sigs))
}

/// Entry point for the fuzz target: parsing and verifying arbitrary notes must not panic.
#[doc(hidden)]
pub fn fuzz_verify(note: &[u8]) {
    if let Ok(text) = std::str::from_utf8(note) {
        let _ = SignedCheckpoint::from_stored(text);
        if let Ok(v) = CheckpointVerifier::new("kiosk.example/audit", [3u8; 32]) {
            let _ = v.verify(text);
        }
        let _ = CheckpointVerifier::parse_vkey(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    #[test]
    fn verifier_keys_round_trip_even_with_plus_in_the_base64() {
        let mut seen_plus = false;
        for seed in 0u8..=255 {
            let v = CheckpointSigner::from_seed("kiosk.example/audit", &[seed; 32])
                .unwrap()
                .verifier();
            let vkey = v.vkey();
            seen_plus |= vkey.splitn(3, '+').nth(2).is_some_and(|k| k.contains('+'));
            assert_eq!(CheckpointVerifier::parse_vkey(&vkey).unwrap(), v);
        }
        assert!(seen_plus, "no seed produced a key with '+' in its base64");
        assert!(CheckpointVerifier::parse_vkey("kiosk.example/audit+00000000+AQ==").is_err());
    }

    #[test]
    fn sign_verify_and_reject_tampering() {
        let s = CheckpointSigner::from_seed("kiosk.example/audit/v1", &[9u8; 32]).unwrap();
        let sc = s.sign(5, leaf_hash(b"x")).unwrap();
        let v = CheckpointVerifier::parse_vkey(&s.verifier().vkey()).unwrap();
        assert_eq!(v.verify(sc.note()).unwrap().checkpoint().size(), 5);
        let forged = sc.note().replacen("\n5\n", "\n6\n", 1);
        assert_eq!(v.verify(&forged), Err(CheckpointError::BadSignature));
        let other = CheckpointSigner::from_seed("kiosk.example/audit/v1", &[8u8; 32]).unwrap();
        assert_eq!(
            other.verifier().verify(sc.note()),
            Err(CheckpointError::BadSignature)
        );
    }
}
