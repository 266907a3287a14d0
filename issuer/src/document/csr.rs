//! The certificate request for a municipality's document-signing key, signed by that key
//! (wherever it is: a token signs its own request, so the key never leaves it). An operator's
//! CA turns it into the signer certificate `issuer serve --signing-cert` reads.
//!
//! The request asks for what [`crate::document::sign::DocumentSigner`] and the gateway read
//! from the certificate: the `urn:kiosk:municipality:<code>` URI in the subject alternative
//! names, and key usages digitalSignature and nonRepudiation (contentCommitment). A CA must
//! copy the requested extensions (`openssl x509 -req -copy_extensions copy`).

use kiosk_document::MunicipalityCode;
use kiosk_keys::{Algorithm, Signer};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyUsagePurpose, PublicKeyData, SanType,
    SignatureAlgorithm, SigningKey,
};

use crate::document::sign::SignError;

/// A PEM `CERTIFICATE REQUEST` for `key` (ECDSA P-256) as the document signer of
/// `municipality`, with subject `CN=<common_name>`.
pub fn signing_request(
    key: &Signer,
    municipality: &MunicipalityCode,
    common_name: &str,
) -> Result<String, SignError> {
    if key.algorithm() != Algorithm::EcdsaP256Sha256 {
        return Err(SignError::Key);
    }
    let uri = format!("urn:kiosk:municipality:{}", municipality.as_str());
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.subject_alt_names = vec![SanType::URI(
        uri.try_into().map_err(|_| SignError::Certificate)?,
    )];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    let request = params
        .serialize_request(&RequestKey(key))
        .map_err(|e| SignError::Request(e.to_string()))?;
    request.pem().map_err(|e| SignError::Request(e.to_string()))
}

/// rcgen's view of a [`Signer`]: the public key, and DER ECDSA signatures.
struct RequestKey<'a>(&'a Signer);

impl PublicKeyData for RequestKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for RequestKey<'_> {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let fixed = self
            .0
            .sign(message)
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        Ok(kiosk_keys::ecdsa_fixed_to_der(&fixed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use x509_parser::prelude::FromDer;

    #[test]
    fn the_request_carries_the_municipality_and_verifies() {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let key = Signer::from_pkcs8(pkcs8.as_ref(), Algorithm::EcdsaP256Sha256).unwrap();
        let code = MunicipalityCode::parse("131016").unwrap();
        let pem = signing_request(&key, &code, "Chiyoda document signing").unwrap();
        let der = kiosk_document::pem::pem_blocks(&pem, "CERTIFICATE REQUEST")
            .unwrap()
            .remove(0);
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
        assert_eq!(
            csr.certification_request_info
                .subject_pki
                .subject_public_key
                .data
                .as_ref(),
            key.public_key()
        );
        assert!(
            der.windows(b"urn:kiosk:municipality:131016".len())
                .any(|w| w == b"urn:kiosk:municipality:131016")
        );
    }
}
