//! The RFC 7512 PKCS#11 URI, as far as a signing key needs it.
//!
//! ```text
//! pkcs11:token=municipality;object=doc-signing?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/kiosk/hsm.pin
//! ```
//!
//! Path attributes (`;`-separated) select the key: `token` (the token label), `object` (the key
//! label), `id` (the key's CKA_ID, percent-encoded bytes); at least `token` and one of `object`
//! or `id`. Query attributes (`&`-separated) say how to reach it: `module-path` (required: this
//! project never guesses a module) and `pin-source`, `file:PATH` (RFC 7512's form) or `env:NAME`
//! (this project's extension for a secret handed in by the service manager). `pin-value` is
//! refused: a PIN must not sit in configuration or on a command line. Other standard
//! attributes (`manufacturer`, `serial`, `type`, ...) are refused rather than silently ignored,
//! so that a URI never selects something other than what its writer meant.

use std::path::PathBuf;

/// Why a PKCS#11 URI was refused. The text names the attribute, never a PIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// It does not start with `pkcs11:`.
    #[error("a PKCS#11 URI starts with `pkcs11:`")]
    Scheme,
    /// An attribute is not `name=value`.
    #[error("attribute `{0}` is not name=value")]
    NotPair(String),
    /// A percent escape is malformed or the value is not UTF-8.
    #[error("attribute `{0}`: bad percent-encoding")]
    Encoding(String),
    /// An attribute appears twice.
    #[error("attribute `{0}` given twice")]
    Duplicate(String),
    /// An attribute this project does not support.
    #[error("attribute `{0}` is not supported (use token, object, id, module-path, pin-source)")]
    Unsupported(String),
    /// `pin-value` was given.
    #[error(
        "pin-value is refused: give the PIN through pin-source=file:PATH or pin-source=env:NAME"
    )]
    PinValue,
    /// A required attribute is missing.
    #[error("attribute `{0}` is required")]
    Missing(&'static str),
    /// `pin-source` is neither `file:` nor `env:`.
    #[error("pin-source must be file:PATH or env:NAME")]
    PinSource,
}

/// Where the token's user PIN comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// A file holding the PIN (one trailing newline is ignored).
    File(PathBuf),
    /// An environment variable holding the PIN.
    Env(String),
}

/// A parsed PKCS#11 URI naming one key on one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// The token label (`token=`).
    pub token: String,
    /// The key label (`object=`), if given.
    pub object: Option<String>,
    /// The key id (`id=`), if given.
    pub id: Option<Vec<u8>>,
    /// The PKCS#11 module (`module-path=`).
    pub module_path: PathBuf,
    /// Where the PIN comes from (`pin-source=`); none for a token without login.
    pub pin_source: Option<PinSource>,
}

impl Pkcs11Uri {
    /// Parses `pkcs11:...`.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let rest = text.strip_prefix("pkcs11:").ok_or(UriError::Scheme)?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut seen: Vec<String> = Vec::new();
        let mut uri = Parts::default();
        let pairs = path
            .split(';')
            .map(|p| (p, true))
            .chain(query.split('&').map(|p| (p, false)));
        for (pair, in_path) in pairs.filter(|(p, _)| !p.is_empty()) {
            let (name, raw) = pair
                .split_once('=')
                .ok_or_else(|| UriError::NotPair(pair.to_owned()))?;
            if seen.iter().any(|s| s == name) {
                return Err(UriError::Duplicate(name.to_owned()));
            }
            seen.push(name.to_owned());
            let bytes = percent_decode(raw).ok_or_else(|| UriError::Encoding(name.to_owned()))?;
            uri.set(name, in_path, bytes)?;
        }
        uri.finish()
    }
}

impl std::fmt::Display for Pkcs11Uri {
    /// The URI without its query (no module path, no PIN source): what logs and errors show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pkcs11:token={}", self.token)?;
        if let Some(object) = &self.object {
            write!(f, ";object={object}")?;
        }
        if let Some(id) = &self.id {
            write!(f, ";id=")?;
            for b in id {
                write!(f, "%{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Parts {
    token: Option<String>,
    object: Option<String>,
    id: Option<Vec<u8>>,
    module_path: Option<PathBuf>,
    pin_source: Option<PinSource>,
}

impl Parts {
    fn set(&mut self, name: &str, in_path: bool, bytes: Vec<u8>) -> Result<(), UriError> {
        let text = |bytes: Vec<u8>| {
            String::from_utf8(bytes).map_err(|_| UriError::Encoding(name.to_owned()))
        };
        match (name, in_path) {
            ("token", true) => self.token = Some(text(bytes)?),
            ("object", true) => self.object = Some(text(bytes)?),
            ("id", true) => self.id = Some(bytes),
            ("module-path", false) => self.module_path = Some(PathBuf::from(text(bytes)?)),
            ("pin-source", false) => {
                let value = text(bytes)?;
                self.pin_source = Some(if let Some(path) = value.strip_prefix("file:") {
                    // RFC 7512 allows file:///path and file:/path.
                    let path = path.strip_prefix("//").unwrap_or(path);
                    if path.is_empty() {
                        return Err(UriError::PinSource);
                    }
                    PinSource::File(PathBuf::from(path))
                } else if let Some(var) = value.strip_prefix("env:").filter(|v| !v.is_empty()) {
                    PinSource::Env(var.to_owned())
                } else {
                    return Err(UriError::PinSource);
                });
            }
            ("pin-value", _) => return Err(UriError::PinValue),
            _ => return Err(UriError::Unsupported(name.to_owned())),
        }
        Ok(())
    }

    fn finish(self) -> Result<Pkcs11Uri, UriError> {
        let token = self.token.ok_or(UriError::Missing("token"))?;
        if self.object.is_none() && self.id.is_none() {
            return Err(UriError::Missing("object"));
        }
        Ok(Pkcs11Uri {
            token,
            object: self.object,
            id: self.id,
            module_path: self.module_path.ok_or(UriError::Missing("module-path"))?,
            pin_source: self.pin_source,
        })
    }
}

/// RFC 3986 percent-decoding; `None` on a malformed escape.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &str = "module-path=/usr/lib/softhsm/libsofthsm2.so";

    #[test]
    fn parses_the_documented_form() {
        let uri = Pkcs11Uri::parse(&format!(
            "pkcs11:token=municipality;object=doc-signing?{MODULE}&pin-source=file:/etc/kiosk/hsm.pin"
        ))
        .unwrap();
        assert_eq!(uri.token, "municipality");
        assert_eq!(uri.object.as_deref(), Some("doc-signing"));
        assert_eq!(
            uri.pin_source,
            Some(PinSource::File("/etc/kiosk/hsm.pin".into()))
        );
        assert_eq!(
            uri.to_string(),
            "pkcs11:token=municipality;object=doc-signing"
        );
    }

    #[test]
    fn decodes_ids_and_env_pins() {
        let uri = Pkcs11Uri::parse(&format!(
            "pkcs11:token=a%20b;id=%01%ff?{MODULE}&pin-source=env:HSM_PIN"
        ))
        .unwrap();
        assert_eq!(uri.token, "a b");
        assert_eq!(uri.id, Some(vec![1, 0xff]));
        assert_eq!(uri.pin_source, Some(PinSource::Env("HSM_PIN".into())));
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let cases: &[(&str, UriError)] = &[
            ("file.pem", UriError::Scheme),
            ("pkcs11:token=t;object", UriError::NotPair("object".into())),
            (
                "pkcs11:token=t;object=%zz",
                UriError::Encoding("object".into()),
            ),
            (
                "pkcs11:token=t;token=u;object=o",
                UriError::Duplicate("token".into()),
            ),
            (
                "pkcs11:token=t;serial=1;object=o",
                UriError::Unsupported("serial".into()),
            ),
            ("pkcs11:token=t;object=o?pin-value=1234", UriError::PinValue),
            ("pkcs11:object=o?module-path=/m", UriError::Missing("token")),
            ("pkcs11:token=t?module-path=/m", UriError::Missing("object")),
            ("pkcs11:token=t;object=o", UriError::Missing("module-path")),
            (
                "pkcs11:token=t;object=o?module-path=/m&pin-source=/p",
                UriError::PinSource,
            ),
            // A query attribute in the path is not where it belongs.
            (
                "pkcs11:token=t;object=o;module-path=/m",
                UriError::Unsupported("module-path".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Pkcs11Uri::parse(text).as_ref(), Err(want), "{text}");
        }
    }
}
