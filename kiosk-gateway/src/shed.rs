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
//! One caller (a client certificate; without one, a source address) holds at most
//! `max_calls_per_caller` places, so that a terminal retrying in a loop cannot take the places
//! of the others.
//!
//! A place is held until the handler answers (for Issue, until its stream starts; the
//! stream's bytes are bounded by `limits::StreamBudget`).

use std::sync::Arc;

use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::limits::PerKey;

/// The method paths that start new work, refused first.
const NEW_WORK: &[&str] = &["/kiosk.v1.TerminalService/OpenSession"];

/// A service whose concurrent calls are bounded, with immediate refusal past the bound.
#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    places: Arc<Semaphore>,
    /// OpenSession is refused when fewer places than this are free.
    keep_for_sessions: usize,
    callers: Arc<PerKey<Vec<u8>>>,
}

impl<S> Shed<S> {
    /// Bounds `inner` to `max_calls` at once (at least 1), `per_caller` of them for one
    /// caller.
    pub fn new(inner: S, max_calls: usize, per_caller: usize) -> Self {
        let max_calls = max_calls.max(1);
        Shed {
            inner,
            places: Arc::new(Semaphore::new(max_calls)),
            keep_for_sessions: max_calls / 4,
            callers: PerKey::new(per_caller.max(1)),
        }
    }
}

/// Who calls: the client certificate (DER), or without one the source address.
fn caller<B>(request: &http::Request<B>) -> Vec<u8> {
    let info = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>();
    if let Some(leaf) = info
        .and_then(|i| i.peer_certs())
        .and_then(|c| c.first().cloned())
    {
        return leaf.as_ref().to_vec();
    }
    info.and_then(|i| i.get_ref().remote_addr())
        .map(|addr| addr.ip().to_string().into_bytes())
        .unwrap_or_default()
}

fn overloaded() -> http::Response<Body> {
    let reason = kiosk_proto::reasons::OVERLOADED;
    kiosk_proto::reasons::status(&reason, "too many calls at once", &[]).into_http()
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
        let caller = room
            .then(|| self.callers.try_acquire(caller(&request)))
            .flatten();
        let place = caller.and_then(|caller| {
            let place = self.places.clone().try_acquire_owned().ok()?;
            Some((caller, place))
        });
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tokio::sync::Notify;

    use super::*;

    /// Answers each call when told to.
    struct Held(Arc<Notify>);

    impl Service<http::Request<()>> for Held {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let go = self.0.clone();
            Box::pin(async move {
                go.notified().await;
                Ok(http::Response::new(Body::empty()))
            })
        }
    }

    fn call(method: &str) -> http::Request<()> {
        let uri = format!("/kiosk.v1.TerminalService/{method}");
        http::Request::builder().uri(uri).body(()).unwrap()
    }

    fn refused(response: &http::Response<Body>) -> bool {
        // RESOURCE_EXHAUSTED, answered at once as trailers-only.
        response
            .headers()
            .get("grpc-status")
            .is_some_and(|v| v == "8")
    }

    #[tokio::test]
    async fn past_the_bounds_calls_are_refused_at_once() {
        let go = Arc::new(Notify::new());
        let mut shed = Shed::new(Held(go.clone()), 4, 10);
        let held: Vec<_> = (0..3).map(|_| shed.call(call("Issue"))).collect();
        // One place of four left: kept for sessions under way, not for a new one.
        assert!(refused(&shed.call(call("OpenSession")).await.unwrap()));
        let fourth = shed.call(call("ReportPrint"));
        assert!(refused(&shed.call(call("ReportPrint")).await.unwrap()));
        drop((held, fourth));
        let open = shed.call(call("OpenSession"));
        go.notify_one();
        assert!(!refused(&open.await.unwrap()));

        // One caller (here: every call, none has a certificate) gets at most its share.
        let mut shed = Shed::new(Held(go), 10, 2);
        let _held: Vec<_> = (0..2).map(|_| shed.call(call("Issue"))).collect();
        assert!(refused(&shed.call(call("Issue")).await.unwrap()));
    }
}
