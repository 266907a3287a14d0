//! A PKI made by the `openssl` command-line tool (Debian package `openssl`; never a
//! dependency: the tree stays ring-only), shared by the tests that prove interoperation with
//! certificates this project did not mint (openssl_pki.rs, production_rehearsal.rs). Each
//! test gives its own extension sections (`extensions.cnf`).
#![allow(
    dead_code,
    reason = "each including test uses the part of the PKI it needs"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Validity of every end-entity certificate and CRL, in days from now: generous, since the
/// gateway judges time by a rehearsal clock at the next weekday office hours.
pub const DAYS: &str = "60";

/// `openssl <args>` in `dir`, which must succeed; its stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command-line tool (Debian package openssl; scripts/install-deps.sh)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A PKI made with openssl in one directory: `<stem>.key.pem` (PKCS#8), `<stem>.crt.pem`.
pub struct OpensslPki {
    dir: PathBuf,
    serial: u64,
}

impl OpensslPki {
    /// An empty PKI in `dir` whose certificates take their extensions from the sections of
    /// `extensions` (an openssl configuration).
    pub fn new(dir: PathBuf, extensions: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("extensions.cnf"), extensions).unwrap();
        OpensslPki {
            dir,
            serial: 0x1000,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        openssl(&self.dir, args)
    }

    /// A new key: RSA 2048 or ECDSA P-256.
    pub fn key(&self, stem: &str, rsa: bool) {
        let algorithm: &[&str] = if rsa {
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
        } else {
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        };
        let out = format!("{stem}.key.pem");
        let mut args = vec!["genpkey"];
        args.extend_from_slice(algorithm);
        args.extend_from_slice(&["-out", &out]);
        self.run(&args);
    }

    /// A self-signed CA, valid ten years from now.
    pub fn ca(&self, stem: &str, subject: &str, rsa: bool) {
        self.key(stem, rsa);
        self.run(&[
            "req",
            "-x509",
            "-new",
            "-utf8",
            "-sha256",
            "-key",
            &format!("{stem}.key.pem"),
            "-subj",
            subject,
            "-days",
            "3650",
            "-config",
            "extensions.cnf",
            "-extensions",
            "ca",
            "-out",
            &format!("{stem}.crt.pem"),
        ]);
    }

    /// A certificate `stem` issued by `ca` with the extension section `extensions`, valid
    /// from now for [`DAYS`]; its serial.
    pub fn issue(
        &mut self,
        stem: &str,
        ca: &str,
        subject: &str,
        extensions: &str,
        rsa: bool,
    ) -> u64 {
        self.key(stem, rsa);
        let csr = format!("{stem}.csr.pem");
        self.run(&[
            "req",
            "-new",
            "-utf8",
            "-key",
            &format!("{stem}.key.pem"),
            "-subj",
            subject,
            "-config",
            "extensions.cnf",
            "-out",
            &csr,
        ]);
        self.certify(&csr, stem, ca, extensions)
    }

    /// Certifies the request `csr` (a file in the PKI's directory) as `stem` under `ca` with
    /// the extension section `extensions`, valid from now for [`DAYS`]: what `openssl x509
    /// -req` does for a CSR a token or a vendor wrote. Its serial.
    pub fn certify(&mut self, csr: &str, stem: &str, ca: &str, extensions: &str) -> u64 {
        self.serial += 1;
        let serial = self.serial;
        self.run(&[
            "x509",
            "-req",
            "-sha256",
            "-in",
            csr,
            "-CA",
            &format!("{ca}.crt.pem"),
            "-CAkey",
            &format!("{ca}.key.pem"),
            "-set_serial",
            &format!("0x{serial:x}"),
            "-days",
            DAYS,
            "-extfile",
            "extensions.cnf",
            "-extensions",
            extensions,
            "-out",
            &format!("{stem}.crt.pem"),
        ]);
        serial
    }

    /// `ca`'s empty CRL (`openssl ca -gencrl` with a minimal CA configuration), current from
    /// now for [`DAYS`], PEM or DER; its path.
    pub fn empty_crl(&self, ca: &str, der: bool) -> PathBuf {
        self.crl(ca, &[], der)
    }

    /// `ca`'s CRL listing `revoked` (serials), as [`OpensslPki::empty_crl`]; its path.
    pub fn crl(&self, ca: &str, revoked: &[u64], der: bool) -> PathBuf {
        let config = format!("{ca}.ca.cnf");
        // openssl's CA database: one `R` (revoked) line per serial.
        let index: String = revoked
            .iter()
            .map(|serial| format!("R\t491231235959Z\t250101000000Z\t{serial:X}\tunknown\t/CN=x\n"))
            .collect();
        std::fs::write(self.path(&format!("{ca}.index")), index).unwrap();
        std::fs::write(self.path(&format!("{ca}.crlnumber")), "01\n").unwrap();
        std::fs::write(
            self.path(&config),
            format!(
                "[ca]\ndefault_ca = this\n[this]\ndatabase = {ca}.index\n\
                 crlnumber = {ca}.crlnumber\ndefault_md = sha256\ndefault_crl_days = {DAYS}\n\
                 crl_extensions = crl_extensions\n\
                 [crl_extensions]\nauthorityKeyIdentifier = keyid:always\n"
            ),
        )
        .unwrap();
        let pem = format!("{ca}.crl.pem");
        self.run(&[
            "ca",
            "-gencrl",
            "-config",
            &config,
            "-keyfile",
            &format!("{ca}.key.pem"),
            "-cert",
            &format!("{ca}.crt.pem"),
            "-out",
            &pem,
        ]);
        if !der {
            return self.path(&pem);
        }
        let out = format!("{ca}.crl.der");
        self.run(&["crl", "-in", &pem, "-outform", "DER", "-out", &out]);
        self.path(&out)
    }

    /// The certificate `stem` as DER.
    pub fn der(&self, stem: &str) -> Vec<u8> {
        self.run(&["x509", "-in", &format!("{stem}.crt.pem"), "-outform", "DER"])
    }

    /// 32 random bytes from `openssl rand`, in `name`; its path.
    pub fn secret(&self, name: &str) -> PathBuf {
        self.run(&["rand", "-out", name, "32"]);
        let path = self.path(name);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
        path
    }

    /// The RSASSA-PKCS1-v1_5 SHA-256 signature of `message` with `stem`'s key, by
    /// `openssl dgst`: what a JPKI card's authentication key computes over the login.
    pub fn sign(&self, stem: &str, message: &[u8]) -> Vec<u8> {
        std::fs::write(self.path("login.bin"), message).unwrap();
        self.run(&[
            "dgst",
            "-sha256",
            "-sign",
            &format!("{stem}.key.pem"),
            "-out",
            "login.sig",
            "login.bin",
        ]);
        std::fs::read(self.path("login.sig")).unwrap()
    }
}
