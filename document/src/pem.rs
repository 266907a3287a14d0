//! PEM text to DER: what a verifier needs to read a municipality's certificate, and what the
//! issuer's signer reads its key and chain with.

use base64::Engine;

/// PEM input is malformed: an unterminated block or invalid base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid PEM")]
pub struct PemError;

/// Decodes every `-----BEGIN <label>-----` block of a PEM text, in order.
pub fn pem_blocks(pem: &str, label: &str) -> Result<Vec<Vec<u8>>, PemError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(s) = rest.find(&begin) {
        let after = &rest[s + begin.len()..];
        let e = after.find(&end).ok_or(PemError)?;
        let b64: String = after[..e].chars().filter(|c| !c.is_whitespace()).collect();
        out.push(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| PemError)?,
        );
        rest = &after[e + end.len()..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_one_label_in_order() {
        let pem = "-----BEGIN CERTIFICATE-----\nAQI=\n-----END CERTIFICATE-----\n\
                   -----BEGIN PRIVATE KEY-----\nBw==\n-----END PRIVATE KEY-----\n\
                   -----BEGIN CERTIFICATE-----\nAw==\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pem_blocks(pem, "CERTIFICATE").unwrap(),
            vec![vec![1, 2], vec![3]]
        );
        assert_eq!(pem_blocks(pem, "PRIVATE KEY").unwrap(), vec![vec![7]]);
        assert_eq!(
            pem_blocks("", "CERTIFICATE").unwrap(),
            Vec::<Vec<u8>>::new()
        );
        assert_eq!(
            pem_blocks("-----BEGIN CERTIFICATE-----\nAQI=\n", "CERTIFICATE"),
            Err(PemError)
        );
        assert_eq!(
            pem_blocks(
                "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----",
                "CERTIFICATE"
            ),
            Err(PemError)
        );
    }
}
