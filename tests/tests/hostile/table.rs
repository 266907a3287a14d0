//! The table of hostile cases: what each sends, as whom, and the exact answer it expects,
//! and the runner that sends them one by one to a real gateway and collects every mismatch.

use std::collections::HashSet;

use bytes::Bytes;
use kiosk_proto::v1 as pb;
use kiosk_tests::{TERMINAL_1, TERMINAL_2, TERMINAL_3, TestApp};
use prost::Message;
use tonic::Code;
use tonic::transport::Channel;

use super::context::Ctx;
use super::raw::{self, Answer};

/// Who sends a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The first terminal (owner of every session in the context).
    T1,
    /// Another terminal of the same store.
    T2,
    /// A terminal of another chain.
    T3,
    /// The auditor.
    Auditor,
    /// No client certificate.
    Nobody,
}

/// The bytes of a request and any extra headers.
pub struct Wire {
    /// The HTTP/2 body, framed.
    pub body: Vec<u8>,
    /// Headers besides content-type and te.
    pub headers: Vec<(&'static str, &'static str)>,
}

/// Builds a case's request from the context.
pub type Build = Box<dyn Fn(&Ctx) -> Wire + Send + Sync>;

/// Checks a successful answer's messages.
pub type Check = Box<dyn Fn(&[Bytes]) -> bool + Send + Sync>;

/// One hostile input and the exact answer it must get.
pub struct Case {
    /// Unique name: the kind of input and where it goes.
    pub name: String,
    /// `/package.Service/Method`.
    pub rpc: &'static str,
    /// Who sends it.
    pub caller: Caller,
    /// Whether it needs a session opened just for it (an Authenticate that may burn the
    /// challenge).
    pub fresh: bool,
    /// The request.
    pub build: Build,
    /// The code.
    pub code: Code,
    /// The ErrorInfo reason; `None` for an answer without one (success, UNIMPLEMENTED).
    pub reason: Option<&'static str>,
    /// The first field the BadRequest must name; `Some("")` for the whole message.
    pub field: Option<String>,
    /// For a success: what the messages must satisfy.
    pub check: Option<Check>,
}

impl Case {
    /// A case of `rpc` sent by `caller`; expects success until told otherwise.
    pub fn new(name: impl Into<String>, rpc: &'static str, caller: Caller, build: Build) -> Self {
        Case {
            name: name.into(),
            rpc,
            caller,
            fresh: false,
            build,
            code: Code::Ok,
            reason: None,
            field: None,
            check: None,
        }
    }

    /// Expects a refusal with `code` and `reason`.
    pub fn refused(mut self, code: Code, reason: &'static str) -> Self {
        self.code = code;
        self.reason = Some(reason);
        self
    }

    /// Expects INVALID_ARGUMENT INVALID_FIELD naming `field` first.
    pub fn invalid(mut self, field: impl Into<String>) -> Self {
        self.code = Code::InvalidArgument;
        self.reason = Some("INVALID_FIELD");
        self.field = Some(field.into());
        self
    }

    /// Expects `code` without a contract reason (gRPC's own, such as UNIMPLEMENTED).
    pub fn bare(mut self, code: Code) -> Self {
        self.code = code;
        self.reason = None;
        self
    }

    /// Expects success whose messages satisfy `check`.
    pub fn answers(mut self, check: impl Fn(&[Bytes]) -> bool + Send + Sync + 'static) -> Self {
        self.check = Some(Box::new(check));
        self
    }

    /// Opens a session for this case alone (`Ctx::fresh`).
    pub fn fresh(mut self) -> Self {
        self.fresh = true;
        self
    }

    /// What is wrong with `answer`, if anything.
    fn mismatch(&self, answer: &Answer) -> Option<String> {
        let reason = answer.reason().map(|r| r.name);
        if answer.code() != self.code || reason != self.reason {
            return Some(format!(
                "expected {:?} {:?}, got {:?} {:?}: {:?}",
                self.code,
                self.reason,
                answer.code(),
                reason,
                answer.status.message()
            ));
        }
        if self.reason.is_some() && !answer.has_kiosk_texts() {
            return Some("no ja-JP/en-US kiosk texts".into());
        }
        if answer.status.details().len() >= 4096 {
            return Some(format!(
                "{} bytes of details",
                answer.status.details().len()
            ));
        }
        if let Some(field) = &self.field {
            let fields = answer.fields();
            if fields.first() != Some(field) {
                return Some(format!(
                    "expected field {field:?}, got {fields:?}: {:?} {:?}",
                    answer.status.message(),
                    answer.descriptions()
                ));
            }
        }
        if let Some(check) = &self.check
            && !check(&answer.messages)
        {
            return Some("the answer's messages fail the check".into());
        }
        None
    }
}

/// A request built from a message.
pub fn msg<M: Message + 'static>(build: impl Fn(&Ctx) -> M + Send + Sync + 'static) -> Build {
    Box::new(move |ctx| Wire {
        body: raw::frame(&build(ctx).encode_to_vec()),
        headers: Vec::new(),
    })
}

/// A request from protobuf bytes written by hand.
pub fn bytes(build: impl Fn(&Ctx) -> Vec<u8> + Send + Sync + 'static) -> Build {
    Box::new(move |ctx| Wire {
        body: raw::frame(&build(ctx)),
        headers: Vec::new(),
    })
}

/// A request whose HTTP/2 body (framing included) and headers are written by hand.
pub fn body(
    headers: &[(&'static str, &'static str)],
    build: impl Fn(&Ctx) -> Vec<u8> + Send + Sync + 'static,
) -> Build {
    let headers = headers.to_vec();
    Box::new(move |ctx| Wire {
        body: build(ctx),
        headers: headers.clone(),
    })
}

/// The channels of every caller, connected once.
pub struct Channels {
    t1: Channel,
    t2: Channel,
    t3: Channel,
    auditor: Channel,
    nobody: Channel,
}

impl Channels {
    /// Connects every caller to `app`.
    pub async fn connect(app: &TestApp) -> Self {
        Channels {
            t1: app.channel(Some(TERMINAL_1)).await,
            t2: app.channel(Some(TERMINAL_2)).await,
            t3: app.channel(Some(TERMINAL_3)).await,
            auditor: app.channel(Some("auditor")).await,
            nobody: app.channel(None).await,
        }
    }

    fn of(&self, caller: Caller) -> &Channel {
        match caller {
            Caller::T1 => &self.t1,
            Caller::T2 => &self.t2,
            Caller::T3 => &self.t3,
            Caller::Auditor => &self.auditor,
            Caller::Nobody => &self.nobody,
        }
    }
}

/// Sends every case in order and returns the mismatches, one line each. Names must be unique:
/// the count of cases is the count of distinct kinds of input.
pub async fn run(app: &TestApp, ctx: &mut Ctx, cases: &[Case]) -> Vec<String> {
    let mut names = HashSet::new();
    for case in cases {
        assert!(
            names.insert(case.name.as_str()),
            "duplicate case {}",
            case.name
        );
    }
    let channels = Channels::connect(app).await;
    let terminal = kiosk_terminal::client::Terminal::new(channels.t1.clone());
    let mut failures = Vec::new();
    for case in cases {
        ctx.fresh = if case.fresh {
            Some(terminal.open_session().await.expect("a fresh session"))
        } else {
            None
        };
        let wire = (case.build)(ctx);
        let answer = raw::call(channels.of(case.caller), case.rpc, wire.body, &wire.headers).await;
        if let Some(why) = case.mismatch(&answer) {
            failures.push(format!("{} [{}]: {why}", case.name, case.rpc));
        }
        // Sessions opened for one case are closed, so a per-terminal limit never fills up.
        if let Some(fresh) = ctx.fresh.take() {
            let _ = terminal.close_session(&fresh.session_id).await;
        }
    }
    failures
}

/// Whether the messages are one `M` satisfying `check`.
pub fn one<M: Message + Default>(messages: &[Bytes], check: impl Fn(M) -> bool) -> bool {
    match messages {
        [only] => M::decode(only.as_ref()).is_ok_and(check),
        _ => false,
    }
}

/// Whether the messages are an Issue stream: a header first, a trailer last.
pub fn issue_stream(messages: &[Bytes]) -> bool {
    let event = |m: &Bytes| {
        pb::IssueResponse::decode(m.as_ref())
            .ok()
            .and_then(|r| r.event)
    };
    matches!(
        (
            messages.first().and_then(event),
            messages.last().and_then(event)
        ),
        (
            Some(pb::issue_response::Event::Header(_)),
            Some(pb::issue_response::Event::Trailer(_))
        )
    )
}
