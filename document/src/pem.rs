//! PEM to DER: the workspace's one PEM reader. A verifier reads a municipality's certificate
//! with it, the issuer's signer its key and chain, the gateway its TLS material, CAs and CRLs,
//! the development fixtures their own files. It is built on the decoder of rustls-pki-types
//! (the TLS stack's own, with constant-time base64 for private keys), so a file that the TLS
//! server accepts and one the issuer accepts are read alike.

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// PEM input is malformed (an unterminated block, invalid base64) or lacks what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PEM: {0}")]
pub struct PemError(String);

/// The label of a section kind, as it stands after `-----BEGIN `.
fn label_of(kind: SectionKind) -> Option<&'static str> {
    Some(match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => return None,
    })
}

/// Decodes every `-----BEGIN <label>-----` block of a PEM text, in order. Blocks of other
/// labels are skipped, but must be well-formed too.
pub fn pem_blocks(pem: &str, label: &str) -> Result<Vec<Vec<u8>>, PemError> {
    let mut out = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()) {
        let (kind, der) = section.map_err(|e| PemError(e.to_string()))?;
        if label_of(kind) == Some(label) {
            out.push(der);
        }
    }
    Ok(out)
}

/// Every certificate of a PEM chain, in order; at least one.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError(e.to_string()))?;
    if certs.is_empty() {
        return Err(PemError("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The first private key of a PEM text: PKCS#8, or the PKCS#1 (RSA) and SEC1 (EC) forms.
pub fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| PemError(e.to_string()))
}

/// A certificate given as PEM (its first block) or as DER (passed through), as DER.
pub fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>, PemError> {
    if !is_pem(bytes) {
        return Ok(bytes.to_vec());
    }
    Ok(certificates(bytes)?.remove(0).to_vec())
}

/// A CRL given as PEM (`X509 CRL`) or as DER (passed through), as DER.
pub fn crl_der(bytes: &[u8]) -> Result<Vec<u8>, PemError> {
    if !is_pem(bytes) {
        return Ok(bytes.to_vec());
    }
    rustls_pki_types::CertificateRevocationListDer::from_pem_slice(bytes)
        .map(|der| der.to_vec())
        .map_err(|e| PemError(e.to_string()))
}

/// Whether the bytes are PEM text rather than DER (DER starts with a SEQUENCE tag, 0x30).
/// Every certificate of a bundle given as PEM (at least one block) or as one DER certificate
/// (passed through), as DER: a trust anchor file that may hold several generations.
pub fn certificates_der(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    if !is_pem(bytes) {
        return Ok(vec![bytes.to_vec()]);
    }
    Ok(certificates(bytes)?
        .into_iter()
        .map(|c| c.to_vec())
        .collect())
}

/// Every CRL of a file given as PEM (`X509 CRL` blocks, at least one) or as one DER CRL
/// (passed through), as DER: one CRL per CA of a bundle, concatenated.
pub fn crls_der(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    if !is_pem(bytes) {
        return Ok(vec![bytes.to_vec()]);
    }
    let crls = rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(bytes)
        .map(|crl| crl.map(|der| der.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError(e.to_string()))?;
    if crls.is_empty() {
        return Err(PemError("no X509 CRL block".into()));
    }
    Ok(crls)
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: &str = "-----BEGIN CERTIFICATE-----\nAQI=\n-----END CERTIFICATE-----\n\
                         -----BEGIN PRIVATE KEY-----\nBw==\n-----END PRIVATE KEY-----\n\
                         -----BEGIN CERTIFICATE-----\nAw==\n-----END CERTIFICATE-----\n";

    #[test]
    fn blocks_of_one_label_in_order() {
        assert_eq!(
            pem_blocks(MIXED, "CERTIFICATE").unwrap(),
            vec![vec![1, 2], vec![3]]
        );
        assert_eq!(pem_blocks(MIXED, "PRIVATE KEY").unwrap(), vec![vec![7]]);
        assert_eq!(
            pem_blocks("", "CERTIFICATE").unwrap(),
            Vec::<Vec<u8>>::new()
        );
    }

    #[test]
    fn malformed_blocks_are_refused() {
        assert!(pem_blocks("-----BEGIN CERTIFICATE-----\nAQI=\n", "CERTIFICATE").is_err());
        assert!(
            pem_blocks(
                "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----",
                "CERTIFICATE"
            )
            .is_err()
        );
        assert!(certificates(b"").is_err());
        assert!(certificates(b"-----BEGIN CERTIFICATE-----\n!!\n").is_err());
        assert!(private_key(MIXED.replace("PRIVATE KEY", "PUBLIC KEY").as_bytes()).is_err());
    }

    #[test]
    fn typed_readers_take_pem_or_der() {
        assert_eq!(
            certificates(MIXED.as_bytes()).unwrap(),
            vec![
                CertificateDer::from(vec![1, 2]),
                CertificateDer::from(vec![3])
            ]
        );
        assert_eq!(certificate_der(MIXED.as_bytes()).unwrap(), vec![1, 2]);
        assert_eq!(
            certificate_der(&[0x30, 0x03, 1, 2, 3]).unwrap(),
            vec![0x30, 0x03, 1, 2, 3]
        );
        let crl = "-----BEGIN X509 CRL-----\nBAU=\n-----END X509 CRL-----\n";
        assert_eq!(crl_der(crl.as_bytes()).unwrap(), vec![4, 5]);
        assert_eq!(crl_der(&[0x30, 0]).unwrap(), vec![0x30, 0]);
        assert_eq!(
            private_key(MIXED.as_bytes()).unwrap().secret_der(),
            &[7][..]
        );
    }

    #[test]
    fn bundles_take_every_block_or_one_der() {
        assert_eq!(
            certificates_der(MIXED.as_bytes()).unwrap(),
            vec![vec![1, 2], vec![3]]
        );
        assert_eq!(certificates_der(&[0x30, 0]).unwrap(), vec![vec![0x30, 0]]);
        let crls = "-----BEGIN X509 CRL-----\nBAU=\n-----END X509 CRL-----\n\
                    -----BEGIN X509 CRL-----\nBg==\n-----END X509 CRL-----\n";
        assert_eq!(
            crls_der(crls.as_bytes()).unwrap(),
            vec![vec![4, 5], vec![6]]
        );
        assert_eq!(crls_der(&[0x30, 0]).unwrap(), vec![vec![0x30, 0]]);
        // PEM without a CRL block is not an empty list: the file is refused.
        assert!(crls_der(MIXED.as_bytes()).is_err());
    }
}
