//! Test support (feature `pcsc`): a private pcscd with a vpcd reader on a free loopback port,
//! and `card-emulator` processes behind it — the real PC/SC stack without hardware.
//!
//! pcscd's client socket is system-wide (`/run/pcscd/pcscd.comm`; pcscd 1.9.9 ignores
//! `PCSCLITE_CSOCK_NAME`, card-profile.md 3.2), so only one pcscd can run per host. Every
//! [`PcscStack`] therefore holds an exclusive lock on [`LOCK_PATH`] for its lifetime: tests
//! in this and other crates (terminal, end-to-end) that use this harness run one at a time,
//! across threads and processes. A pcscd that this harness did not start makes
//! [`PcscStack::start`] fail with a message naming it, rather than testing against somebody
//! else's readers.
//!
//! Everything started is stopped by process id (SIGTERM, then SIGKILL after a grace period)
//! when the handle is dropped. Readiness is waited for by polling a condition with a timeout.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use card::pcsc::PcscContext;
use card::transport::TransportError;

/// The lock file that serialises users of the host's single pcscd.
pub const LOCK_PATH: &str = "/tmp/kiosk-card-pcscd.lock";
/// pcscd's client socket (fixed at build time of pcsc-lite).
pub const PCSCD_SOCKET: &str = "/run/pcscd/pcscd.comm";
/// pcscd's pid file.
pub const PCSCD_PID_FILE: &str = "/run/pcscd/pcscd.pid";
/// Prefix of the harness's private configuration directories (under the temp dir); also
/// how an orphaned harness pcscd is recognised.
pub const CONFIG_DIR_PREFIX: &str = "kiosk-pcscd-";
/// The vpcd driver as Debian installs it.
pub const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
/// The reader's friendly name; pcscd appends ` 00 00` (slot 0) and ` 00 01` (slot 1).
pub const READER_NAME: &str = "Kiosk Test vpcd";

/// How long readiness may take before the harness gives up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// What went wrong setting up the stack.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A tool is not installed (run scripts/install-deps.sh).
    #[error("{0} is not installed (run scripts/install-deps.sh)")]
    Missing(String),
    /// Another pcscd is running.
    #[error(
        "a pcscd not started by this harness is running ({0}); the PC/SC socket is system-wide, stop it first"
    )]
    ForeignPcscd(String),
    /// A process exited before it was ready.
    #[error("{what} exited early ({status}); log:\n{log}")]
    Exited {
        /// Which process.
        what: &'static str,
        /// Its exit status.
        status: ExitStatus,
        /// Its output.
        log: String,
    },
    /// Readiness did not come in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// PC/SC answered with an error while checking readiness.
    #[error("PC/SC: {0}")]
    Pcsc(#[from] TransportError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StackError {
    let what = what.into();
    move |source| StackError::Io { what, source }
}

/// Polls `condition` every 20 ms until it yields `Some` or `timeout` passes.
pub fn poll_until<T>(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> Result<Option<T>, StackError>,
) -> Result<T, StackError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = condition()? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(StackError::Timeout(what.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM to `child` and waits up to `grace` for it; then SIGKILL.
pub fn terminate(child: &mut Child, grace: Duration) -> Result<ExitStatus, StackError> {
    if let Some(status) = child.try_wait().map_err(io("wait"))? {
        return Ok(status);
    }
    if let Some(pid) = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let done = poll_until(grace, "process exit after SIGTERM", || {
        child.try_wait().map_err(io("wait"))
    });
    match done {
        Ok(status) => Ok(status),
        Err(_) => {
            let _ = child.kill();
            child.wait().map_err(io("wait"))
        }
    }
}

/// A private pcscd with a vpcd reader (two slots) on a free loopback port.
#[derive(Debug)]
pub struct PcscStack {
    pcscd: Option<Child>,
    dir: PathBuf,
    port: u16,
    _lock: File,
}

impl PcscStack {
    /// Takes the host-wide lock, writes a reader configuration for a free port pair, starts
    /// `pcscd -f -c <dir>` and waits until both vpcd readers are listed.
    pub fn start() -> Result<Self, StackError> {
        if !Path::new(VPCD_DRIVER).exists() {
            return Err(StackError::Missing("vsmartcard-vpcd".into()));
        }
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_PATH)
            .map_err(io(format!("open {LOCK_PATH}")))?;
        lock.lock().map_err(io(format!("lock {LOCK_PATH}")))?;
        if Path::new(PCSCD_SOCKET).exists() && PcscContext::establish().is_ok() {
            stop_orphaned_harness_pcscd()?;
        }
        let port = free_port_pair()?;
        let dir =
            std::env::temp_dir().join(format!("{CONFIG_DIR_PREFIX}{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("reader.conf.d")).map_err(io("create config dir"))?;
        std::fs::write(
            dir.join("reader.conf.d/vpcd"),
            format!(
                "FRIENDLYNAME \"{READER_NAME}\"\nDEVICENAME /dev/null:{port}\nLIBPATH {VPCD_DRIVER}\nCHANNELID {port}\n"
            ),
        )
        .map_err(io("write reader config"))?;
        let mut stack = Self {
            pcscd: None,
            dir,
            port,
            _lock: lock,
        };
        stack.start_pcscd()?;
        Ok(stack)
    }

    fn start_pcscd(&mut self) -> Result<(), StackError> {
        let log = File::create(self.dir.join("pcscd.log")).map_err(io("pcscd log"))?;
        let err = log.try_clone().map_err(io("pcscd log"))?;
        let child = Command::new("pcscd")
            .arg("-f")
            .arg("-c")
            .arg(self.dir.join("reader.conf.d"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StackError::Missing("pcscd".into()),
                _ => StackError::Io {
                    what: "spawn pcscd".into(),
                    source: e,
                },
            })?;
        self.pcscd = Some(child);
        let reader = self.reader(1);
        let log_path = self.dir.join("pcscd.log");
        let mut pcscd = self.pcscd.as_mut();
        poll_until(READY_TIMEOUT, "pcscd to list the vpcd readers", || {
            if let Some(child) = pcscd.as_deref_mut()
                && let Some(status) = child.try_wait().map_err(io("wait pcscd"))?
            {
                return Err(StackError::Exited {
                    what: "pcscd",
                    status,
                    log: std::fs::read_to_string(&log_path).unwrap_or_default(),
                });
            }
            let Ok(ctx) = PcscContext::establish() else {
                return Ok(None);
            };
            Ok(ctx
                .readers()
                .ok()
                .filter(|r| r.contains(&reader))
                .map(|_| ()))
        })
    }

    /// Stops pcscd by pid (SIGTERM) and waits until its socket is gone.
    pub fn stop_pcscd(&mut self) -> Result<(), StackError> {
        if let Some(mut child) = self.pcscd.take() {
            terminate(&mut child, Duration::from_secs(5))?;
        }
        poll_until(READY_TIMEOUT, "pcscd socket removal", || {
            Ok(
                (!Path::new(PCSCD_SOCKET).exists() || PcscContext::establish().is_err())
                    .then_some(()),
            )
        })
    }

    /// Stops and starts pcscd with the same configuration (emulators must reconnect).
    pub fn restart_pcscd(&mut self) -> Result<(), StackError> {
        self.stop_pcscd()?;
        self.start_pcscd()
    }

    /// `127.0.0.1:<port>` of a vpcd slot (0 or 1), for `card-emulator --vpcd`.
    pub fn vpcd_addr(&self, slot: u16) -> String {
        format!("127.0.0.1:{}", self.port + slot)
    }

    /// The PC/SC reader name of a slot.
    pub fn reader(&self, slot: u16) -> String {
        format!("{READER_NAME} 00 {slot:02}")
    }

    /// Waits until pcscd reports no card in `slot`.
    pub fn wait_absent(&self, slot: u16) -> Result<(), StackError> {
        let reader = self.reader(slot);
        poll_until(READY_TIMEOUT, "the slot to be empty", || {
            let ctx = PcscContext::establish()?;
            Ok((!ctx.card_present(&reader)?).then_some(()))
        })
    }

    /// Starts `card-emulator` (path `emulator_bin`) for `card` in `slot` and waits until
    /// PC/SC sees the card.
    pub fn insert_card(
        &self,
        emulator_bin: &Path,
        card: &Path,
        slot: u16,
    ) -> Result<EmulatorProcess, StackError> {
        // A card that was just stopped may still be reported until pcscd's next presence
        // poll; inserting before that would race with its removal.
        self.wait_absent(slot)?;
        let log_path = self.dir.join(format!("emulator-{slot}.log"));
        let log = File::create(&log_path).map_err(io("emulator log"))?;
        let err = log.try_clone().map_err(io("emulator log"))?;
        let child = Command::new(emulator_bin)
            .arg("--vpcd")
            .arg(self.vpcd_addr(slot))
            .arg("--card")
            .arg(card)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(io(format!("spawn {}", emulator_bin.display())))?;
        let mut process = EmulatorProcess {
            child: Some(child),
            log_path,
        };
        process.wait_present(&self.reader(slot))?;
        Ok(process)
    }
}

impl Drop for PcscStack {
    fn drop(&mut self) {
        if let Some(mut child) = self.pcscd.take() {
            let _ = terminate(&mut child, Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `card-emulator`.
#[derive(Debug)]
pub struct EmulatorProcess {
    child: Option<Child>,
    log_path: PathBuf,
}

impl EmulatorProcess {
    /// Waits until PC/SC reports a card in `reader` (e.g. after pcscd restarted).
    pub fn wait_present(&mut self, reader: &str) -> Result<(), StackError> {
        let log_path = self.log_path.clone();
        let mut child = self.child.as_mut();
        poll_until(READY_TIMEOUT, "the emulated card to be present", || {
            if let Some(c) = child.as_deref_mut()
                && let Some(status) = c.try_wait().map_err(io("wait emulator"))?
            {
                return Err(StackError::Exited {
                    what: "card-emulator",
                    status,
                    log: std::fs::read_to_string(&log_path).unwrap_or_default(),
                });
            }
            let Ok(ctx) = PcscContext::establish() else {
                return Ok(None);
            };
            match ctx.wait_for_card(Some(reader), Duration::from_millis(200)) {
                Ok(_) => Ok(Some(())),
                Err(_) => Ok(None),
            }
        })
    }

    /// SIGTERM and wait: the exit status (success means a clean shutdown).
    pub fn terminate(mut self) -> Result<ExitStatus, StackError> {
        match self.child.take() {
            Some(mut c) => terminate(&mut c, Duration::from_secs(5)),
            None => Err(StackError::Timeout("emulator already stopped".into())),
        }
    }

    /// SIGKILL: the card vanishes as if pulled out.
    pub fn kill(mut self) -> Result<(), StackError> {
        if let Some(mut c) = self.child.take() {
            c.kill().map_err(io("kill emulator"))?;
            c.wait().map_err(io("wait emulator"))?;
        }
        Ok(())
    }

    /// The emulator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = terminate(&mut c, Duration::from_secs(5));
        }
    }
}

/// A pcscd is answering although we hold the lock. If its command line names one of this
/// harness's private config dirs, it is an orphan of a test process that died without
/// cleaning up (the lock died with it): stop it by pid. Any other pcscd is somebody else's,
/// and we refuse to touch it.
fn stop_orphaned_harness_pcscd() -> Result<(), StackError> {
    let pid_text = std::fs::read_to_string(PCSCD_PID_FILE).unwrap_or_default();
    // pcscd writes the pid, a newline and a NUL.
    let digits: String = pid_text
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let pid_num: i32 = digits.parse().unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid_num}/cmdline")).unwrap_or_default();
    let ours = String::from_utf8_lossy(&cmdline).contains(CONFIG_DIR_PREFIX);
    let pid = rustix::process::Pid::from_raw(pid_num);
    match pid {
        Some(pid) if ours => {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            poll_until(READY_TIMEOUT, "the orphaned pcscd to exit", || {
                Ok((!Path::new(&format!("/proc/{pid_num}")).exists()
                    || PcscContext::establish().is_err())
                .then_some(()))
            })
        }
        _ => Err(StackError::ForeignPcscd(format!("pid {}", pid_text.trim()))),
    }
}

/// A port `p` on loopback such that `p` and `p + 1` are free (vpcd listens on one port per
/// slot). vpcd binds all interfaces; the port is only free-at-the-time, which is the best a
/// test can do without a network namespace.
fn free_port_pair() -> Result<u16, StackError> {
    for _ in 0..50 {
        let a = std::net::TcpListener::bind(("0.0.0.0", 0)).map_err(io("bind"))?;
        let port = a.local_addr().map_err(io("local addr"))?.port();
        if port < u16::MAX && std::net::TcpListener::bind(("0.0.0.0", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(StackError::Timeout("a free port pair".into()))
}
