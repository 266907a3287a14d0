//! Looking for the PIN in what a terminal sends. The kit knows the PIN (it is in the card file
//! it hands the terminal) and looks for its digits in every string and bytes field of every
//! request and in every metadata value.
//!
//! Four digits also occur by chance: in a session id the gateway handed out, a request id the
//! terminal built from one, a UUID (one in about 3,000 random 24-digit hex ids holds `1234`),
//! the remaining deadline a gRPC library sends in `grpc-timeout` (`29991234u`; the likely,
//! unconfirmed cause of the one extra failed rule we saw in a Python terminal's run before
//! this rule).
//! So in text the PIN counts only as a token of its own (no letter or digit right before or
//! after it: `pin=1234`, `1234`, not `a1234f`), and a value the gateway handed out, or any
//! stretch of 8 or more bytes shared with one, is not counted: echoing the gateway's own
//! identifiers sends nothing of the resident's. Bytes fields are searched for the digits as
//! they are.

use std::collections::HashSet;

/// The shortest stretch shared with a handed-out value that explains an occurrence.
const ECHO_WINDOW: usize = 8;

/// Records `field` in `found` when `value` holds the PIN as a token of its own, other than
/// inside an echo of a value in `handed_out`.
pub fn scan_text(
    field: &str,
    value: &str,
    pin: &str,
    handed_out: &HashSet<String>,
    found: &mut Vec<String>,
) {
    if pin.is_empty() || handed_out.contains(value) {
        return;
    }
    let bytes = value.as_bytes();
    let needle = pin.as_bytes();
    let echoed = |start: usize| {
        let first = (start + needle.len()).saturating_sub(ECHO_WINDOW);
        (first..=start).any(|a| {
            bytes.get(a..a + ECHO_WINDOW).is_some_and(|window| {
                handed_out
                    .iter()
                    .any(|known| contains(known.as_bytes(), window))
            })
        })
    };
    let alone = |start: usize| {
        let end = start + needle.len();
        let before = start.checked_sub(1).and_then(|i| bytes.get(i));
        let after = bytes.get(end);
        !before.is_some_and(u8::is_ascii_alphanumeric)
            && !after.is_some_and(u8::is_ascii_alphanumeric)
    };
    let hit = bytes
        .windows(needle.len())
        .enumerate()
        .any(|(start, w)| w == needle && alone(start) && !echoed(start));
    if hit {
        found.push(field.to_owned());
    }
}

/// Records `field` in `found` when `value` holds the PIN's ASCII digits.
pub fn scan_bytes(field: &str, value: &[u8], pin: &str, found: &mut Vec<String>) {
    if !pin.is_empty() && contains(value, pin.as_bytes()) {
        found.push(field.to_owned());
    }
}

/// Records every metadata entry of `metadata` whose value holds the PIN.
pub fn scan_metadata(metadata: &tonic::metadata::MetadataMap, pin: &str, found: &mut Vec<String>) {
    for entry in metadata.iter() {
        match entry {
            tonic::metadata::KeyAndValueRef::Ascii(key, value) => {
                let text = String::from_utf8_lossy(value.as_encoded_bytes());
                let field = format!("metadata {}", key.as_str());
                scan_text(&field, &text, pin, &HashSet::new(), found);
            }
            tonic::metadata::KeyAndValueRef::Binary(key, value) => {
                if let Ok(decoded) = value.to_bytes() {
                    scan_bytes(&format!("metadata {}", key.as_str()), &decoded, pin, found);
                }
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(value: &str, handed_out: &[&str]) -> bool {
        let known = handed_out.iter().map(|s| (*s).to_owned()).collect();
        let mut out = Vec::new();
        scan_text("f", value, "1234", &known, &mut out);
        !out.is_empty()
    }

    #[test]
    fn a_pin_in_a_field_is_found() {
        assert!(found("pin=1234", &[]));
        assert!(found("1234", &[]));
        assert!(found("x-1234", &["s-0000aaaa"]));
    }

    #[test]
    fn digits_inside_a_longer_token_are_not() {
        // A random hex id or a UUID.
        assert!(!found("py-0f9e1234c0ffee", &[]));
        assert!(!found("x12345", &[]));
    }

    #[test]
    fn an_echo_of_a_handed_out_value_is_not() {
        assert!(!found("s-ab12345678cd", &["s-ab12345678cd"]));
        // A request id built from a fragment of the session id.
        assert!(!found("cli-ab12345678cd", &["s-ab12345678cd"]));
        assert!(!found("cli-1234-5678cdef", &["s-1234-5678cdef"]));
        // The PIN next to an echo is still the PIN.
        assert!(found("1234-ab12345678cd", &["s-ab12345678cd"]));
    }

    #[test]
    fn bytes_and_metadata_are_scanned() {
        let mut out = Vec::new();
        scan_bytes("signature", b"\x001234\x00", "1234", &mut out);
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("x-pin", "1234".parse().unwrap());
        scan_metadata(&metadata, "1234", &mut out);
        // The gRPC library's own deadline header: digits and a unit, not the PIN.
        metadata.insert("grpc-timeout", "29991234u".parse().unwrap());
        scan_metadata(&metadata, "1234", &mut out);
        assert_eq!(out, ["signature", "metadata x-pin", "metadata x-pin"]);
    }
}
