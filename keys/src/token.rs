//! A private key object on a PKCS#11 token, used through one logged-in session.
//!
//! The module is loaded once per process and path: a PKCS#11 module holds process-wide state,
//! and a second `C_Initialize` of the same library fails, so every key of one module shares
//! one context (kept for the life of the process).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::uri::{PinSource, Pkcs11Uri};
use crate::{Algorithm, KeyError};

/// DER of the P-256 curve OID (CKA_EC_PARAMS of a P-256 key).
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// DER of the Ed25519 OID, and the PrintableString "edwards25519" some modules store instead.
const ED25519_PARAMS: &[&[u8]] = &[&[0x06, 0x03, 0x2B, 0x65, 0x70], b"\x13\x0cedwards25519"];

/// One key on one token, with the session that uses it.
pub(crate) struct TokenKey {
    // A session is one thread's at a time (not Sync); signing takes turns.
    session: Mutex<Session>,
    key: ObjectHandle,
    algorithm: Algorithm,
}

impl TokenKey {
    /// Opens the key `uri` names, logs in and checks it is a key of `algorithm`; returns it
    /// with its public key (SEC1 uncompressed for P-256, 32 raw bytes for Ed25519).
    pub(crate) fn open(uri: &Pkcs11Uri, algorithm: Algorithm) -> Result<(Self, Vec<u8>), KeyError> {
        let context = context(&uri.module_path)?;
        let slot = context
            .get_slots_with_token()
            .map_err(|e| KeyError::Module(uri.module_path.display().to_string(), e.to_string()))?
            .into_iter()
            .find(|slot| {
                context
                    .get_token_info(*slot)
                    .is_ok_and(|info| info.label().trim_end() == uri.token)
            })
            .ok_or_else(|| KeyError::TokenNotFound(uri.token.clone()))?;
        let session = context
            .open_ro_session(slot)
            .map_err(|e| KeyError::Token(e.to_string()))?;
        if let Some(source) = &uri.pin_source {
            login(&session, source)?;
        }
        let key = find_one(&session, uri, ObjectClass::PRIVATE_KEY)?;
        check_key_type(&session, key, algorithm, uri)?;
        let public = find_one(&session, uri, ObjectClass::PUBLIC_KEY)
            .map_err(|_| KeyError::PublicKey(uri.to_string()))?;
        let public_key = public_key(&session, public, algorithm)
            .ok_or_else(|| KeyError::PublicKey(uri.to_string()))?;
        Ok((
            TokenKey {
                session: Mutex::new(session),
                key,
                algorithm,
            },
            public_key,
        ))
    }

    /// Signs `message`: ECDSA over its SHA-256 digest (CKM_ECDSA, fixed `r || s`), or
    /// Ed25519 over the message itself (CKM_EDDSA).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let session = self.session.lock().map_err(|_| KeyError::Poisoned)?;
        let result = match self.algorithm {
            Algorithm::EcdsaP256Sha256 => {
                let digest = ring::digest::digest(&ring::digest::SHA256, message);
                session.sign(&Mechanism::Ecdsa, self.key, digest.as_ref())
            }
            Algorithm::Ed25519 => session.sign(
                &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                self.key,
                message,
            ),
        };
        result.map_err(|e| KeyError::Sign(e.to_string()))
    }
}

/// The process's context for the module at `path`, loaded and initialised on first use.
fn context(path: &Path) -> Result<Pkcs11, KeyError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<std::path::PathBuf, Pkcs11>>> = OnceLock::new();
    let module_error = |e: CkError| KeyError::Module(path.display().to_string(), e.to_string());
    let mut contexts = CONTEXTS
        .get_or_init(Mutex::default)
        .lock()
        .map_err(|_| KeyError::Poisoned)?;
    if let Some(context) = contexts.get(path) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(path).map_err(module_error)?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(module_error(e)),
    }
    contexts.insert(path.to_owned(), context.clone());
    Ok(context)
}

/// Reads the PIN from its source and logs the session in as the user.
fn login(session: &Session, source: &PinSource) -> Result<(), KeyError> {
    let pin = Zeroizing::new(match source {
        PinSource::File(path) => std::fs::read_to_string(path)
            .map_err(|e| KeyError::PinSource(format!("file {}: {}", path.display(), e.kind())))?,
        PinSource::Env(name) => std::env::var(name)
            .map_err(|_| KeyError::PinSource(format!("environment variable {name} is not set")))?,
    });
    let pin = pin.strip_suffix('\n').unwrap_or(&pin);
    let pin = pin.strip_suffix('\r').unwrap_or(pin);
    match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
            Err(KeyError::WrongPin)
        }
        Err(e) => Err(KeyError::Token(e.to_string())),
    }
}

/// The one object of `class` the URI names.
fn find_one(
    session: &Session,
    uri: &Pkcs11Uri,
    class: ObjectClass,
) -> Result<ObjectHandle, KeyError> {
    let mut template = vec![Attribute::Class(class)];
    if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    let found = session
        .find_objects(&template)
        .map_err(|e| KeyError::Token(e.to_string()))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(KeyError::ObjectNotFound(uri.to_string())),
        _ => Err(KeyError::Ambiguous(uri.to_string())),
    }
}

fn check_key_type(
    session: &Session,
    key: ObjectHandle,
    algorithm: Algorithm,
    uri: &Pkcs11Uri,
) -> Result<(), KeyError> {
    let attributes = session
        .get_attributes(key, &[AttributeType::KeyType, AttributeType::EcParams])
        .map_err(|e| KeyError::Token(e.to_string()))?;
    let mut key_type = None;
    let mut params = None;
    for attribute in attributes {
        match attribute {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::EcParams(p) => params = Some(p),
            _ => {}
        }
    }
    let fits = match (algorithm, key_type, params.as_deref()) {
        (Algorithm::EcdsaP256Sha256, Some(KeyType::EC), Some(p)) => p == P256_PARAMS,
        (Algorithm::Ed25519, Some(KeyType::EC_EDWARDS), Some(p)) => ED25519_PARAMS.contains(&p),
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(KeyError::WrongKind(uri.to_string(), algorithm))
    }
}

/// The public key from CKA_EC_POINT, which modules give as a DER OCTET STRING (PKCS#11 2.40)
/// or, some of them, raw.
fn public_key(session: &Session, public: ObjectHandle, algorithm: Algorithm) -> Option<Vec<u8>> {
    let attributes = session
        .get_attributes(public, &[AttributeType::EcPoint])
        .ok()?;
    let point = attributes.into_iter().find_map(|a| match a {
        Attribute::EcPoint(p) => Some(p),
        _ => None,
    })?;
    let want = match algorithm {
        Algorithm::EcdsaP256Sha256 => 65,
        Algorithm::Ed25519 => 32,
    };
    let raw = match point.as_slice() {
        [0x04, len, rest @ ..] if usize::from(*len) == want && rest.len() == want => rest.to_vec(),
        raw if raw.len() == want => raw.to_vec(),
        _ => return None,
    };
    (algorithm != Algorithm::EcdsaP256Sha256 || raw.first() == Some(&0x04)).then_some(raw)
}
