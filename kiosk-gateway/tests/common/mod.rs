//! What the tests of the binaries share: child processes that announce their address, whose
//! log lines a test can wait for, and that are killed if the test ends early.
#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "each test file uses part of this; a failed unwrap is a failed assertion"
)]

use std::path::{Path, PathBuf};

use kiosk_devkit::softcard::SoftCard;
use kiosk_proto::v1 as pb;
use kiosk_terminal::client::Terminal;
use std::process::Stdio;
use std::time::Duration;

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
