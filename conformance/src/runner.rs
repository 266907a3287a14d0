//! Runs the scenarios: one development gateway and one front for the whole run, and per
//! scenario a fresh working directory, a fresh copy of the card, the terminal command started
//! once with the environment contract (docs/conformance.md), and the judgement.

use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kiosk_devkit::softcard::CardFile;

use crate::card::{CardLog, RESET_GRACE_MS};
use crate::error::ConformanceError;
use crate::front::FrontServer;
use crate::gateway::{DevGateway, TERMINAL_STEM};
use crate::judge::{self, Evidence, Finding};
use crate::record::{Call, Recording};
use crate::scenario::{CardChoice, Fault, Scenario};

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The terminal under test, run with `sh -c` once per scenario.
    pub terminal_cmd: String,
    /// The scenarios, in order.
    pub scenarios: Vec<&'static Scenario>,
    /// How long one terminal run may take before it is killed and judged as it stands.
    pub timeout: Duration,
    /// Residents in the development register.
    pub residents: u32,
    /// Present the card in the kit's own PC/SC reader and watch it (needs feature `pcsc`).
    pub pcsc: bool,
}

/// How the terminal process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code (`None`: killed by a signal).
    Code(Option<i32>),
    /// It ran past the timeout and was killed.
    TimedOut,
}

/// One scenario's result.
#[derive(Debug)]
pub struct ScenarioResult {
    /// The scenario.
    pub scenario: &'static Scenario,
    /// How the terminal ended (informational: refusing is often right).
    pub exit: Exit,
    /// The judgements, in the scenario's rule order.
    pub findings: Vec<Finding>,
}

/// Starts the gateway and the front, runs every scenario, stops both.
pub async fn run(options: &RunOptions) -> Result<Vec<ScenarioResult>, ConformanceError> {
    // The reader first: it may wait for the host-wide pcscd lock, and nothing is running yet.
    let reader = KitReader::start_if(options.pcsc).await?;
    let gateway = DevGateway::start(options.residents).await?;
    let front = FrontServer::start(&gateway).await?;
    let mut results = Vec::new();
    let mut failure = None;
    for scenario in &options.scenarios {
        match run_scenario(&gateway, &front, reader.as_ref(), scenario, options).await {
            Ok(result) => results.push(result),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    front.stop().await;
    gateway.stop().await;
    match failure {
        Some(error) => Err(error),
        None => Ok(results),
    }
}

async fn run_scenario(
    gateway: &DevGateway,
    front: &FrontServer,
    reader: Option<&KitReader>,
    scenario: &'static Scenario,
    options: &RunOptions,
) -> Result<ScenarioResult, ConformanceError> {
    let work = tempfile::tempdir().map_err(|e| ConformanceError::file(Path::new("tmp"), e))?;
    let print_dir = work.path().join("print");
    std::fs::create_dir(&print_dir).map_err(|e| ConformanceError::file(&print_dir, e))?;
    let source = match scenario.card {
        CardChoice::Resident => gateway.resident_card()?,
        CardChoice::Revoked => gateway.revoked_card(),
    };
    // A copy: the software card keeps its PIN counter in its file, and every scenario starts
    // with a fresh card.
    let card = work.path().join("card.toml");
    std::fs::copy(&source, &card).map_err(|e| ConformanceError::file(&source, e))?;
    let (pin, card_certificate) = card_secrets(&card)?;

    let inserted = match reader {
        Some(reader) => {
            let blocked = scenario.fault == Fault::PinBlocked;
            Some(reader.insert(&card, &pin, blocked).await?)
        }
        None => None,
    };
    if scenario.fault == Fault::KillSwitch {
        gateway.set_kill_switch(true).await?;
    }
    front.front.begin(scenario.fault, &pin, card_certificate);
    let env = Environment {
        gateway: format!("https://{}", front.addr),
        pki: gateway.pki_dir().to_owned(),
        card,
        reader: reader.map(KitReader::name),
        pin,
        print_dir: print_dir.clone(),
    };
    let exit = run_terminal(&options.terminal_cmd, scenario, &env, options.timeout).await;
    let terminal_exited = Instant::now();
    let recording = front.front.finish();
    let card_log = match inserted {
        Some(inserted) => Some(
            inserted
                .remove_after_grace(&recording, terminal_exited)
                .await,
        ),
        None => None,
    };
    if scenario.fault == Fault::KillSwitch {
        gateway.set_kill_switch(false).await?;
    }
    let exit = exit?;
    let printed = list_files(&print_dir)?;
    let findings = judge::judge(&Evidence {
        scenario,
        recording: &recording,
        printed: &printed,
        card: card_log.as_ref(),
    });
    Ok(ScenarioResult {
        scenario,
        exit,
        findings,
    })
}

/// The card's PIN and its authentication certificate (DER): what the front looks for, and
/// what it may see unchanged.
fn card_secrets(card: &Path) -> Result<(String, Vec<u8>), ConformanceError> {
    let side = CardFile::load(card)
        .map_err(|e| ConformanceError::file(card, e))?
        .auth
        .ok_or_else(|| ConformanceError::file(card, "the card has no authentication side"))?;
    let pem = side.certificate.unwrap_or_default();
    let der = kiosk_document::pem::certificate_der(pem.as_bytes())
        .map_err(|e| ConformanceError::file(card, e))?;
    Ok((side.pin, der))
}

/// What the terminal is told, as environment variables.
struct Environment {
    gateway: String,
    pki: PathBuf,
    card: PathBuf,
    /// The kit's PC/SC reader with the card in it (`--pcsc`).
    reader: Option<String>,
    pin: String,
    print_dir: PathBuf,
}

impl Environment {
    fn variables(&self, scenario: &Scenario) -> Vec<(&'static str, String)> {
        let path = |p: &Path| p.display().to_string();
        let pki = |name: &str| path(&self.pki.join(name));
        let mut variables = vec![
            ("KIOSK_CONFORMANCE_GATEWAY", self.gateway.clone()),
            ("KIOSK_CONFORMANCE_SERVER_NAME", "localhost".into()),
            ("KIOSK_CONFORMANCE_SERVER_CA", pki("server-ca.crt.pem")),
            (
                "KIOSK_CONFORMANCE_CERT",
                pki(&format!("{TERMINAL_STEM}.crt.pem")),
            ),
            (
                "KIOSK_CONFORMANCE_KEY",
                pki(&format!("{TERMINAL_STEM}.key.pem")),
            ),
            ("KIOSK_CONFORMANCE_PKI_DIR", path(&self.pki)),
            ("KIOSK_CONFORMANCE_TERMINAL_STEM", TERMINAL_STEM.into()),
            ("KIOSK_CONFORMANCE_CARD", path(&self.card)),
            ("KIOSK_CONFORMANCE_PIN", self.pin.clone()),
            ("KIOSK_CONFORMANCE_TYPES", scenario.types.join(",")),
            ("KIOSK_CONFORMANCE_PRINT_DIR", path(&self.print_dir)),
            (
                "KIOSK_CONFORMANCE_PRINTER",
                scenario.printer.as_str().into(),
            ),
        ];
        if let Some(reader) = &self.reader {
            variables.push(("KIOSK_CONFORMANCE_READER", reader.clone()));
        }
        variables
    }
}

/// Runs the terminal command to its end (or the timeout), its output to the kit's stderr so
/// that the report on stdout stays readable.
async fn run_terminal(
    command: &str,
    scenario: &Scenario,
    env: &Environment,
    timeout: Duration,
) -> Result<Exit, ConformanceError> {
    let terminal_error = |e: std::io::Error| ConformanceError::Terminal(e.to_string());
    let output = || -> Result<Stdio, ConformanceError> {
        let fd = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(terminal_error)?;
        Ok(Stdio::from(fd))
    };
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env.variables(scenario))
        .stdin(Stdio::null())
        .stdout(output()?)
        .stderr(output()?)
        .kill_on_drop(true)
        .spawn()
        .map_err(terminal_error)?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => Ok(Exit::Code(status.map_err(terminal_error)?.code())),
        Err(_) => {
            let _ = child.kill().await;
            Ok(Exit::TimedOut)
        }
    }
}

fn list_files(dir: &Path) -> Result<Vec<String>, ConformanceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ConformanceError::file(dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ConformanceError::file(dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The kit's reader as the runner uses it: the blocking PC/SC harness moved off the async
/// workers, and without feature `pcsc` an error saying how to build the kit.
struct KitReader {
    #[cfg(feature = "pcsc")]
    inner: std::sync::Arc<crate::reader::KitReader>,
}

impl KitReader {
    #[cfg(feature = "pcsc")]
    async fn start_if(wanted: bool) -> Result<Option<Self>, ConformanceError> {
        if !wanted {
            return Ok(None);
        }
        let inner = tokio::task::spawn_blocking(crate::reader::KitReader::start)
            .await
            .map_err(|e| ConformanceError::Reader(e.to_string()))??;
        Ok(Some(KitReader {
            inner: std::sync::Arc::new(inner),
        }))
    }

    #[cfg(not(feature = "pcsc"))]
    async fn start_if(wanted: bool) -> Result<Option<Self>, ConformanceError> {
        if wanted {
            return Err(ConformanceError::Reader(
                "this kit was built without the pcsc feature: cargo build -p kiosk-conformance --features pcsc".into(),
            ));
        }
        Ok(None)
    }

    #[cfg(feature = "pcsc")]
    fn name(&self) -> String {
        self.inner.name()
    }

    #[cfg(not(feature = "pcsc"))]
    fn name(&self) -> String {
        unreachable!("no reader without the pcsc feature")
    }

    #[cfg(feature = "pcsc")]
    async fn insert(
        &self,
        card: &Path,
        pin: &str,
        blocked: bool,
    ) -> Result<InsertedCard, ConformanceError> {
        let (inner, card, pin) = (self.inner.clone(), card.to_owned(), pin.to_owned());
        let inserted = tokio::task::spawn_blocking(move || inner.insert(&card, &pin, blocked))
            .await
            .map_err(|e| ConformanceError::Reader(e.to_string()))??;
        Ok(InsertedCard { inner: inserted })
    }

    #[cfg(not(feature = "pcsc"))]
    async fn insert(
        &self,
        _card: &Path,
        _pin: &str,
        _blocked: bool,
    ) -> Result<InsertedCard, ConformanceError> {
        unreachable!("no reader without the pcsc feature")
    }
}

struct InsertedCard {
    #[cfg(feature = "pcsc")]
    inner: crate::reader::InsertedCard,
}

impl InsertedCard {
    /// Waits until the card-reset rule's grace after the last CloseSession (or the end of the
    /// run) has passed, so that a reset pcscd sends when the terminal's process ends is seen,
    /// then pulls the card.
    async fn remove_after_grace(self, recording: &Recording, terminal_exited: Instant) -> CardLog {
        let started = recording.started();
        let last_close = recording
            .calls
            .iter()
            .rfind(|o| matches!(o.call, Call::CloseSession { .. }))
            .map(|o| started + Duration::from_millis(o.at_ms));
        let due = last_close.unwrap_or(terminal_exited) + Duration::from_millis(RESET_GRACE_MS);
        tokio::time::sleep_until((due + Duration::from_millis(200)).into()).await;
        #[cfg(feature = "pcsc")]
        let events = tokio::task::spawn_blocking(move || self.inner.remove())
            .await
            .unwrap_or_default();
        #[cfg(not(feature = "pcsc"))]
        let events = Vec::new();
        CardLog {
            started,
            terminal_exited,
            events,
        }
    }
}
