//! What the tests of the binaries share: child processes that announce their address, whose
//! log lines a test can wait for, and that are killed if the test ends early.
#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "each test file uses part of this; a failed unwrap is a failed assertion"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiosk_devkit::softcard::SoftCard;
use kiosk_devkit::testpki::{DevPki, files};
use kiosk_gateway::provision::dev_crl;
use kiosk_proto::v1 as pb;
use kiosk_terminal::client::Terminal;
use ring::rand::SecureRandom;
use std::process::Stdio;
use std::time::Duration;
use time::{Duration as Span, OffsetDateTime};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// A child process with its stderr (JSON log lines) kept in a file and offered to the test.
pub struct Process {
    child: tokio::process::Child,
    log: PathBuf,
    log_lines: mpsc::UnboundedReceiver<String>,
}

impl Process {
    /// Starts `command` and waits for the stdout line containing `listening on https://`;
    /// returns the process and the address after it.
    pub async fn spawn(mut command: tokio::process::Command, log: PathBuf) -> (Process, String) {
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let (sender, log_lines) = mpsc::unbounded_channel();
        let mut file = tokio::fs::File::create(&log).await.unwrap();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
                let _ = file.flush().await;
                let _ = sender.send(line);
            }
        });
        let mut process = Process {
            child,
            log,
            log_lines,
        };
        let addr = tokio::time::timeout(Duration::from_secs(180), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some((_, addr)) = line.split_once("listening on https://") {
                    return Some(addr.trim().to_owned());
                }
            }
            None
        })
        .await
        .unwrap_or(None);
        let Some(addr) = addr else {
            let _ = process.child.start_kill();
            panic!("no listening line; stderr:\n{}", process.stderr());
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        (process, addr)
    }

    /// Everything the process logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most 30 s) for the next log line containing `needle`, and returns it.
    pub async fn wait_for_log(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = self.log_lines.recv().await {
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .unwrap_or(None);
        match found {
            Some(line) => line,
            None => panic!("no log line with {needle:?}; stderr:\n{}", self.stderr()),
        }
    }

    /// Sends `signal` (e.g. `-HUP`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// SIGKILL (`kill -9`: no drain, no cleanup), and waits until the process is gone.
    pub async fn kill_9(mut self) {
        self.signal("-KILL");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("gone within 30 s of SIGKILL")
            .unwrap();
    }

    /// SIGTERM, then the exit status: a graceful drain exits 0.
    pub async fn terminate(mut self) {
        self.signal("-TERM");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits within 30 s of SIGTERM")
            .unwrap();
        assert!(status.success(), "{status}; stderr:\n{}", self.stderr());
    }
}

/// An instant within weekday office hours (JST), now or soon, for `rehearsal_clock_start`:
/// every certificate type is then within its service window. Fixtures a test writes for the
/// gateway (CRLs) are dated relative to it, since the gateway judges everything by that clock.
pub fn office_hours_start() -> time::OffsetDateTime {
    let start = kiosk_devkit::clock::office_hours_at(
        time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
    );
    time::OffsetDateTime::from_unix_timestamp(start / 1000).unwrap()
}

/// `instant` as RFC 3339, the form of `rehearsal_clock_start`.
pub fn rfc3339(instant: time::OffsetDateTime) -> String {
    instant
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// [`office_hours_start`] as RFC 3339.
pub fn office_hours_rfc3339() -> String {
    rfc3339(office_hours_start())
}

/// A `kiosk-gateway serve --config <config>` command that takes nothing from the
/// environment's `KIOSK_*` variables.
pub fn gateway_command(config: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiosk-gateway"));
    command.arg("serve").arg("--config").arg(config);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KIOSK_") {
            command.env_remove(name);
        }
    }
    command
}

/// Opens a session and logs `card` in with its PIN (1234). The session and menu, or the
/// contract reason of the refusal.
pub async fn login(terminal: &Terminal, card: SoftCard) -> Result<(String, pb::Menu), String> {
    let opened = terminal
        .open_session()
        .await
        .map_err(|e| e.reason().to_owned())?;
    let for_card = opened.clone();
    let proof = tokio::task::spawn_blocking(move || kiosk_tests::sign(card, &for_card))
        .await
        .unwrap()
        .unwrap();
    match terminal
        .authenticate(&opened.session_id, proof.certificate, proof.signature)
        .await
    {
        Ok(menu) => Ok((opened.session_id, menu)),
        Err(error) => Err(error.reason().to_owned()),
    }
}

/// A binary of another package of the workspace. Cargo hands an integration test the binaries
/// of its own package only; `issuer` and `kiosk-devkit` are built into the same directory by
/// any workspace test run (their packages' own integration tests need them), which is how
/// scripts/test.sh runs this.
pub fn workspace_binary(package: &str, name: &str) -> PathBuf {
    let gateway = Path::new(env!("CARGO_BIN_EXE_kiosk-gateway"));
    let binary = gateway.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run the workspace tests (bash scripts/test.sh) or \
         `cargo build -p {package} --bin {name}` first",
        binary.display()
    );
    binary
}

/// The `issuer` binary (`issuer serve`).
pub fn issuer_binary() -> PathBuf {
    workspace_binary("issuer", "issuer")
}

/// The `kiosk-devkit` binary (`kiosk-devkit generate`, TEST ONLY).
pub fn devkit_binary() -> PathBuf {
    workspace_binary("kiosk-devkit", "kiosk-devkit")
}

/// The resident refs `kiosk-devkit generate` printed as examples of blocking cases.
pub fn example_refs(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("example "))
        .filter_map(|l| l.split_once(": ").map(|(_, r)| r.trim().to_owned()))
        .collect()
}

/// The gateway id of [`production_config`].
pub const GATEWAY_ID: &str = "gw-prod-test-01";
/// The remote municipality of [`production_config`].
pub const REMOTE: &str = "271004";

/// Every file under `dir` with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

pub fn random_secret(path: &Path) {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A production configuration over the PKI in `pki` and the files under `root`: client CRLs
/// current now, the PKI's card CRL, fresh secrets, one remote issuer (down: links connect
/// lazily) with an empty bindings file.
pub fn production_config(root: &Path, pki: &DevPki) -> PathBuf {
    let now = OffsetDateTime::now_utc();
    let crl_dir = root.join("crl");
    let keys = root.join("keys");
    let data = root.join("data");
    for dir in [&crl_dir, &keys, &data] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let (from, to) = (now - Span::minutes(5), now + Span::days(1));
    for ca in [files::TERMINAL_CA, files::AUDITOR_CA] {
        let crl = dev_crl(pki, ca, &[], from, to).unwrap();
        std::fs::write(crl_dir.join(format!("{ca}.crl")), crl).unwrap();
    }
    random_secret(&keys.join("pseudonym.key"));
    random_secret(&keys.join("checkpoint.seed"));
    let bindings = root.join("bindings-271004.jsonl");
    std::fs::write(&bindings, "").unwrap();
    let cert = |stem: &str| pki.cert_path(stem);
    let key = |stem: &str| pki.key_path(stem);
    let config = root.join("gateway.toml");
    let text = format!(
        "data_dir = {data:?}\nlisten = \"127.0.0.1:0\"\ngateway_id = \"{GATEWAY_ID}\"\n\
         database_url = \"sqlite://{}/gateway.db\"\n\
         drain_ms = 0\nmunicipalities = []\n\
         client_crl_files = [{:?}, {:?}]\ncard_crl_file = {:?}\n\
         [trust]\nserver_cert = {:?}\nterminal_ca = {:?}\nauditor_ca = {:?}\n\
         card_auth_ca = {:?}\nmunicipality_ca = {:?}\ninternal_ca = {:?}\n\
         internal_client_cert = {:?}\n\
         [keys]\nserver_key = {:?}\ninternal_client_key = {:?}\n\
         pseudonym_key = {:?}\ncheckpoint_seed = {:?}\n\
         [[remote_issuers]]\nmunicipality = \"{REMOTE}\"\n\
         endpoint = \"https://127.0.0.1:9\"\nserver_name = \"localhost\"\n\
         bindings = {bindings:?}\nname = \"大阪市\"\nsigning_cert = {:?}\n",
        data.display(),
        crl_dir.join("terminal-ca.crl"),
        crl_dir.join("auditor-ca.crl"),
        pki.dir().join(files::JPKI_AUTH_CRL_DER),
        cert(files::GATEWAY),
        cert(files::TERMINAL_CA),
        cert(files::AUDITOR_CA),
        cert(files::JPKI_AUTH_CA),
        cert(files::MUNICIPALITY_CA),
        cert(files::INTERNAL_CA),
        cert(files::GATEWAY_INTERNAL),
        key(files::GATEWAY),
        key(files::GATEWAY_INTERNAL),
        keys.join("pseudonym.key"),
        keys.join("checkpoint.seed"),
        cert(&format!("municipality-{REMOTE}")),
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// `kiosk-gateway admin --config <config> <args>`, which must succeed; its output.
pub async fn admin(config: &Path, args: &[&str]) -> String {
    let output = admin_output(config, args).await;
    assert!(
        output.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `kiosk-gateway admin --config <config> <args>` and returns what it did, refused or not.
#[allow(
    dead_code,
    reason = "not every test binary that includes this module refuses a command"
)]
pub async fn admin_output(config: &Path, args: &[&str]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiosk-gateway"));
    command.arg("admin").arg("--config").arg(config).args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KIOSK_") {
            command.env_remove(name);
        }
    }
    command.output().await.unwrap()
}

/// The signed checkpoint note a production gateway at `addr` gives the development PKI's
/// auditor, over mutual TLS (server name `localhost`, trusted through the PKI's server CA).
#[allow(dead_code, reason = "only the tests with an auditor include it")]
pub async fn auditor_checkpoint(addr: &str, pki_dir: &Path) -> String {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let read = |name: &str| std::fs::read(pki_dir.join(name)).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("server-ca.crt.pem")))
        .identity(Identity::from_pem(
            read("auditor.crt.pem"),
            read("auditor.key.pem"),
        ))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::audit_service_client::AuditServiceClient::new(channel)
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .signed_note
}
