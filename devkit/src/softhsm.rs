//! TEST ONLY: a SoftHSM2 token in a temporary directory, for tests of PKCS#11 signing keys.
//!
//! SoftHSM2 finds its token directory through the `SOFTHSM2_CONF` environment variable, read
//! when the module is initialised, and a module is initialised once per process. A test
//! process cannot set its own environment without `unsafe`, so [`with_token`] runs the test's
//! body in a child process of the test binary with `SOFTHSM2_CONF` pointing at a fresh token
//! directory: every test gets its own token, and the parent fails unless the child ran exactly
//! that test and it passed. The tools are required: a missing `softhsm2-util` or module fails
//! the test with the package to install (scripts/install-deps.sh installs `softhsm2`).

use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

/// Debian's SoftHSM2 module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The label of the token [`with_token`] creates.
pub const TOKEN: &str = "kiosk-test";
/// The token's user PIN (TEST ONLY), in the PIN file [`SoftHsm::pin_file`].
pub const USER_PIN: &str = "271828";
const SO_PIN: &str = "31415926";
/// Tells the child process where its token directory is.
const DIR_VAR: &str = "KIOSK_TEST_SOFTHSM_DIR";

/// The kind of key pair to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256 (document signing).
    EcP256,
    /// Ed25519 (checkpoint signing).
    Ed25519,
}

/// A token directory with one initialised token, [`TOKEN`].
#[derive(Debug)]
pub struct SoftHsm {
    dir: PathBuf,
}

/// Runs `body` with a fresh SoftHSM2 token, in a child process of this test binary (see the
/// module docs). `test` is the test's name as the harness knows it (its path inside the test
/// crate, e.g. `token_signs_a_checkpoint`). Panics unless the child ran it and it passed.
pub fn with_token(test: &str, body: impl FnOnce(&SoftHsm)) {
    if let Ok(dir) = std::env::var(DIR_VAR) {
        let hsm = SoftHsm { dir: dir.into() };
        assert_eq!(
            std::env::var_os("SOFTHSM2_CONF").as_deref(),
            Some(hsm.conf().as_os_str()),
            "the child runs with its own SOFTHSM2_CONF"
        );
        body(&hsm);
        return;
    }
    let dir = tempfile::tempdir().expect("temporary token directory");
    let hsm = SoftHsm::create(dir.path());
    let exe = std::env::current_exe().expect("the test binary");
    let output = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", hsm.conf())
        .env(DIR_VAR, dir.path())
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        output.status.success(),
        "the SoftHSM child of {test} failed"
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the SoftHSM child did not run exactly {test}"
    );
}

impl SoftHsm {
    fn create(dir: &Path) -> Self {
        assert!(
            Path::new(MODULE).exists(),
            "{MODULE} is missing: install Debian's softhsm2 (scripts/install-deps.sh)"
        );
        let hsm = SoftHsm {
            dir: dir.to_owned(),
        };
        std::fs::create_dir(dir.join("tokens")).expect("token directory");
        std::fs::write(
            hsm.conf(),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .expect("softhsm2.conf");
        std::fs::write(hsm.pin_file(), format!("{USER_PIN}\n")).expect("PIN file");
        let status = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", TOKEN])
            .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
            .env("SOFTHSM2_CONF", hsm.conf())
            .output()
            .unwrap_or_else(|e| {
                panic!("softhsm2-util: {e}: install Debian's softhsm2 (scripts/install-deps.sh)")
            });
        assert!(
            status.status.success(),
            "softhsm2-util --init-token failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        hsm
    }

    /// The `softhsm2.conf` of this token directory.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    /// The directory (a test may put its other files here).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file holding the user PIN and a newline, as an operator would write it.
    pub fn pin_file(&self) -> PathBuf {
        self.dir.join("user.pin")
    }

    /// The PKCS#11 URI of key `object` on the token, PIN from [`SoftHsm::pin_file`].
    pub fn uri(&self, object: &str) -> String {
        format!(
            "pkcs11:token={TOKEN};object={object}?module-path={MODULE}&pin-source=file:{}",
            self.pin_file().display()
        )
    }

    /// Generates a key pair labelled `object` on the token (only in the child of
    /// [`with_token`]), the private half sensitive and never extractable.
    pub fn generate(&self, object: &str, kind: KeyKind) {
        let session = self.session();
        let (mechanism, params) = match kind {
            // DER of the P-256 OID and of the Ed25519 OID.
            KeyKind::EcP256 => (
                Mechanism::EccKeyPairGen,
                vec![0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
            ),
            KeyKind::Ed25519 => (
                Mechanism::EccEdwardsKeyPairGen,
                vec![0x06, 0x03, 0x2B, 0x65, 0x70],
            ),
        };
        let label = object.as_bytes().to_vec();
        let public = [
            Attribute::Token(true),
            Attribute::Label(label.clone()),
            Attribute::Id(label.clone()),
            Attribute::EcParams(params),
            Attribute::Verify(true),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(label.clone()),
            Attribute::Id(label),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
        ];
        session
            .generate_key_pair(&mechanism, &public, &private)
            .unwrap_or_else(|e| panic!("generate {kind:?} key pair on SoftHSM2: {e}"));
    }

    /// Asks the token for the private value of key `object`: `Ok(None)` when the token does
    /// not hand it out, as a non-extractable sensitive key must not.
    pub fn private_value(&self, object: &str) -> Result<Option<Vec<u8>>, String> {
        let session = self.session();
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(object.as_bytes().to_vec()),
            ])
            .map_err(|e| e.to_string())?;
        let key = *found.first().ok_or("no such private key")?;
        let attributes = session
            .get_attributes(key, &[AttributeType::Value])
            .map_err(|e| e.to_string())?;
        Ok(attributes.into_iter().find_map(|a| match a {
            Attribute::Value(v) => Some(v),
            _ => None,
        }))
    }

    /// A logged-in read-write session on the token, in this (child) process.
    fn session(&self) -> Session {
        let context = Pkcs11::new(MODULE).expect("load SoftHSM2");
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => panic!("initialise SoftHSM2: {e}"),
        }
        let slot = context
            .get_slots_with_token()
            .expect("slots")
            .into_iter()
            .find(|s| context.get_token_info(*s).is_ok_and(|i| i.label() == TOKEN))
            .expect("the test token");
        let session = context.open_rw_session(slot).expect("session");
        match session.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => panic!("log in to the test token: {e}"),
        }
        session
    }
}
