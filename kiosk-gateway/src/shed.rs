//! Load shedding at the edge: a bound on the calls a service handles at once, past which a
//! call is answered at once with RESOURCE_EXHAUSTED and the contract reason OVERLOADED (the
//! kiosk's "retry shortly"), instead of waiting in a queue that only grows when more arrives
//! than the gateway can serve.
//!
//! Calls that start new work are refused first: OpenSession is refused once three quarters
//! of the places are taken, so the last quarter stays for sessions already under way (a
//! resident at the kiosk with a card on the reader). Refusing them late would waste what the
//! gateway already did for them.
//!
//! A place is held until the handler answers (for Issue, until its stream starts; the
//! stream's bytes are bounded by `limits::StreamBudget`).

use std::sync::Arc;

use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::server::NamedService;

/// The method paths that start new work, refused first.
const NEW_WORK: &[&str] = &["/kiosk.v1.TerminalService/OpenSession"];

/// A service whose concurrent calls are bounded, with immediate refusal past the bound.
#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    places: Arc<Semaphore>,
    /// OpenSession is refused when fewer places than this are free.
    keep_for_sessions: usize,
}

impl<S> Shed<S> {
    /// Bounds `inner` to `max_calls` at once (at least 1).
    pub fn new(inner: S, max_calls: usize) -> Self {
        let max_calls = max_calls.max(1);
        Shed {
            inner,
            places: Arc::new(Semaphore::new(max_calls)),
            keep_for_sessions: max_calls / 4,
        }
    }
}

fn overloaded() -> http::Response<Body> {
    let reason = kiosk_proto::reasons::named("OVERLOADED");
    kiosk_proto::reasons::status(reason, "too many calls at once", &[]).into_http()
}

impl<S, B> Service<http::Request<B>> for Shed<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let new_work = NEW_WORK.contains(&request.uri().path());
        let room = !new_work || self.places.available_permits() > self.keep_for_sessions;
        let place = room
            .then(|| self.places.clone().try_acquire_owned().ok())
            .flatten();
        let Some(place) = place else {
            return Box::pin(async { Ok(overloaded()) });
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            drop(place);
            response
        })
    }
}

impl<S: NamedService> NamedService for Shed<S> {
    const NAME: &'static str = S::NAME;
}
