//! One clock per deployment.
//!
//! Everything the gateway judges by time reads the same [`Clock`]: sessions, challenges and
//! print deadlines (the flow), card certificate validity and the card CRL's freshness
//! (`cardauth`, through the flow), client certificates and client CRLs at the TLS handshake
//! ([`TlsTime`]) and on every request (`tls::ClientRevocation`), the development CRLs minted
//! at start, and the time of every audit event (STARTED, auditor reads, anomaly resolutions,
//! operator commands).
//!
//! Two clocks judging one deployment disagree exactly when it matters: a rehearsal clock
//! (weekday office hours, [`OffsetClock`]) ran the flow 57 hours ahead of the wall clock at a
//! weekend, and a CRL written one real day ahead was stale by the flow's clock while fresh by
//! the handshake's. In production the clock is [`SystemClock`].

use std::sync::Arc;

use audit::event::UnixMillis;
use rustls_pki_types::UnixTime;

/// The wall clock of a deployment, replaceable in rehearsals and tests.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// The same instant as an audit timestamp.
    fn now(&self) -> UnixMillis {
        UnixMillis(self.now_ms())
    }

    /// The same instant as a calendar time (UTC), for certificates and CRLs.
    fn now_utc(&self) -> time::OffsetDateTime {
        let nanos = i128::from(self.now_ms()) * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }
}

/// The system clock: production.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        UnixMillis::now().0
    }
}

/// A clock running at real speed from a chosen start (rehearsals, benchmarks, the demo).
pub struct OffsetClock {
    offset_ms: i64,
}

impl OffsetClock {
    /// Real speed from the instant `start` chooses for the current real time (both in unix
    /// ms), read once; not shifted when it chooses the current time itself. The demo starts
    /// at the next weekday office hours (`kiosk_devkit::clock::office_hours_at`).
    pub fn starting_with(start: impl FnOnce(i64) -> i64) -> Self {
        let real = SystemClock.now_ms();
        OffsetClock {
            offset_ms: start(real) - real,
        }
    }

    /// Real speed from `start_ms` on.
    pub fn starting_at(start_ms: i64) -> Self {
        OffsetClock {
            offset_ms: start_ms - SystemClock.now_ms(),
        }
    }

    /// Whether this clock is shifted from real time.
    pub fn shifted(&self) -> bool {
        self.offset_ms != 0
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset_ms
    }
}

/// The deployment clock as rustls's time source, so the handshake judges client
/// certificates and CRLs at the same instant as everything else.
#[derive(Clone)]
pub struct TlsTime(pub Arc<dyn Clock>);

impl std::fmt::Debug for TlsTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TlsTime").field(&self.0.now_ms()).finish()
    }
}

impl rustls::time_provider::TimeProvider for TlsTime {
    fn current_time(&self) -> Option<UnixTime> {
        let secs = u64::try_from(self.0.now_ms().div_euclid(1000)).ok()?;
        Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            secs,
        )))
    }
}

/// A `google.protobuf.Timestamp` from unix milliseconds (the flow's and the services' one
/// conversion of an instant to the wire).
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_time_and_tls_time_are_the_clock_instant() {
        let clock: Arc<dyn Clock> = Arc::new(OffsetClock::starting_at(1_796_000_400_123));
        let utc = clock.now_utc().unix_timestamp();
        assert!((1_796_000_400..1_796_000_460).contains(&utc), "{utc}");
        let tls =
            rustls::time_provider::TimeProvider::current_time(&TlsTime(clock)).map(|t| t.as_secs());
        assert!(tls.is_some_and(|s| (1_796_000_400..1_796_000_460).contains(&s)));
    }
}
