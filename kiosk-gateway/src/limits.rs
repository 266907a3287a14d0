//! What one caller may hold of the gateway: connections (in total, without a client
//! certificate, per source address, in the handshake) and bytes of released documents waiting
//! to be sent.
//!
//! The limits exist because the gateway's capacity is shared by ~55,000 store terminals that
//! keep long-lived connections: a caller who needs no certificate (VerifyService) or a
//! terminal that stops reading must not be able to use up file descriptors or memory that
//! the others need. Each counter is a permit held by the connection or the Issue stream and
//! given back when it is dropped, so nothing depends on a cleanup pass.

use kiosk_proto::reasons;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::GatewayError;

/// The limits as configured (`config::Config::limits`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections at once; `None`: the soft RLIMIT_NOFILE less `fd_reserve`.
    pub max_connections: Option<usize>,
    /// Descriptors kept for everything but connections when deriving `max_connections`.
    pub fd_reserve: usize,
    /// TLS handshakes in progress per source address.
    pub max_handshakes_per_ip: usize,
    /// Connections without a client certificate.
    pub max_anonymous: usize,
    /// Connections without a client certificate per source address.
    pub max_anonymous_per_ip: usize,
    /// The HTTP/2 client preface must follow the handshake within this.
    pub preface_timeout: Duration,
    /// Connections without a client certificate idle this long are closed.
    pub anonymous_idle_timeout: Duration,
    /// HTTP/2 PING after this much silence.
    pub keepalive_interval: Duration,
    /// Close when the PING is not answered within this.
    pub keepalive_timeout: Duration,
    /// Concurrent calls on one connection.
    pub max_concurrent_streams: u32,
    /// Bytes of released, unsent documents over all Issue streams.
    pub stream_budget_bytes: u64,
    /// The same, per terminal.
    pub stream_budget_per_terminal_bytes: u64,
    /// The longest an Issue stream may hold its documents.
    pub stream_timeout: Duration,
    /// TerminalService calls at once (`shed::Shed`).
    pub max_terminal_calls: usize,
    /// VerifyService calls at once.
    pub max_verify_calls: usize,
    /// Calls at once of one caller (a client certificate, or an address without one).
    pub max_calls_per_caller: usize,
}

impl Limits {
    /// The connection cap in force: the configured one, or the soft RLIMIT_NOFILE less the
    /// reserve; at least 1. (`Admission::new` keeps the anonymous cap below it.)
    pub fn connection_cap(&self) -> usize {
        let cap = self.max_connections.unwrap_or_else(|| {
            let soft = rlimit::Resource::NOFILE
                .get()
                .map(|(soft, _)| soft)
                .unwrap_or(1024);
            usize::try_from(soft)
                .unwrap_or(usize::MAX)
                .saturating_sub(self.fd_reserve)
        });
        cap.max(1)
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
/// Each connection is a descriptor: the default soft limit (often 1,024) would cap the
/// gateway far below the fleet it serves.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Counts per key (a source address, a caller), each below a limit; an entry lives only
/// while its count is above zero.
#[derive(Debug)]
pub struct PerKey<K: Hash + Eq> {
    limit: usize,
    counts: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq + Clone> PerKey<K> {
    /// At most `limit` at once per key.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(PerKey {
            limit,
            counts: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, usize>> {
        // A panic while holding this lock cannot leave a count half-updated.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One more for `key`, or `None` at the limit.
    pub fn try_acquire(self: &Arc<Self>, key: K) -> Option<KeyPermit<K>> {
        let mut counts = self.lock();
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(KeyPermit {
            owner: self.clone(),
            key,
        })
    }
}

/// One count of one key, given back when dropped.
#[derive(Debug)]
pub struct KeyPermit<K: Hash + Eq + Clone> {
    owner: Arc<PerKey<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Drop for KeyPermit<K> {
    fn drop(&mut self) {
        let mut counts = self.owner.lock();
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The key of a source address: an IPv6 address counts by its /64, the block one
/// subscriber usually holds.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::from(segments)
            }
        },
    }
}

type PerAddress = PerKey<IpAddr>;
type AddressPermit = KeyPermit<IpAddr>;

/// How many connections the gateway holds and has refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Connections open now (handshaking included).
    pub open: u64,
    /// Of those, established without a client certificate.
    pub anonymous: u64,
    /// Accepted since start (TCP).
    pub accepted: u64,
    /// Closed by a limit or a timeout before or instead of serving them.
    pub refused: u64,
}

/// The connection counters shared by the accept loop and every connection.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    cap: usize,
    /// The anonymous cap in force: `limits.max_anonymous`, kept below `cap`.
    anonymous_cap: usize,
    total: Arc<Semaphore>,
    anonymous: Arc<Semaphore>,
    handshakes_per_ip: Arc<PerAddress>,
    anonymous_per_ip: Arc<PerAddress>,
    accepted: AtomicU64,
    refused: AtomicU64,
}

/// What a connection holds while it lives: its place in the total, and while it is
/// handshaking or anonymous, its place in those counts.
#[derive(Debug)]
pub struct ConnectionPermit {
    _total: OwnedSemaphorePermit,
    anonymous: Option<(OwnedSemaphorePermit, AddressPermit)>,
    handshake: Option<AddressPermit>,
}

impl ConnectionPermit {
    /// True when the connection has no client certificate.
    pub fn is_anonymous(&self) -> bool {
        self.anonymous.is_some()
    }
}

impl Admission {
    /// Counters for `limits`, with the connection cap resolved now.
    pub fn new(limits: Limits) -> Arc<Self> {
        let cap = limits.connection_cap();
        let anonymous = limits.max_anonymous.min(cap.saturating_sub(1)).max(1);
        if anonymous < limits.max_anonymous {
            tracing::warn!(
                cap,
                anonymous,
                "max_anonymous_connections lowered below the connection cap"
            );
        }
        Arc::new(Admission {
            cap,
            anonymous_cap: anonymous,
            total: Arc::new(Semaphore::new(cap)),
            anonymous: Arc::new(Semaphore::new(anonymous)),
            handshakes_per_ip: PerAddress::new(limits.max_handshakes_per_ip),
            anonymous_per_ip: PerAddress::new(limits.max_anonymous_per_ip),
            limits,
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The connection cap in force.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The cap on connections without a client certificate in force.
    pub fn anonymous_cap(&self) -> usize {
        self.anonymous_cap
    }

    /// A new TCP connection from `ip`: a place in the total and among the handshakes of its
    /// address, or `None` (close it at once).
    pub fn accept(&self, ip: IpAddr) -> Option<ConnectionPermit> {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let admitted = self
            .total
            .clone()
            .try_acquire_owned()
            .ok()
            .and_then(|total| {
                let handshake = self.handshakes_per_ip.try_acquire(address_key(ip))?;
                Some(ConnectionPermit {
                    _total: total,
                    anonymous: None,
                    handshake: Some(handshake),
                })
            });
        if admitted.is_none() {
            self.refuse();
        }
        admitted
    }

    /// The handshake finished: a terminal or auditor keeps its place; a connection without a
    /// client certificate needs a place among the anonymous ones, or `None` (close it).
    pub fn established(
        &self,
        mut permit: ConnectionPermit,
        ip: IpAddr,
        anonymous: bool,
    ) -> Option<ConnectionPermit> {
        permit.handshake = None;
        if !anonymous {
            return Some(permit);
        }
        let places = self
            .anonymous
            .clone()
            .try_acquire_owned()
            .ok()
            .and_then(|place| {
                let address = self.anonymous_per_ip.try_acquire(address_key(ip))?;
                Some((place, address))
            });
        match places {
            Some(places) => {
                permit.anonymous = Some(places);
                Some(permit)
            }
            None => {
                self.refuse();
                None
            }
        }
    }

    /// Counts a connection closed by a limit or a timeout.
    pub fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            open: (self.cap - self.total.available_permits()) as u64,
            anonymous: (self.anonymous_cap - self.anonymous.available_permits()) as u64,
            accepted: self.accepted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// Semaphore units are KiB: `acquire_many` counts in `u32`.
const UNIT: u64 = 1024;

/// The room below which a new Issue is refused before the flow: 1 MiB, a few documents.
const UNITS_OF_ROOM: u32 = 1024;

fn units(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
}

/// The bytes of released documents that Issue streams may hold before they are sent, in
/// total and per terminal. A stream reserves its issuance's size before its first message
/// and gives it back when it is dropped (finished, cancelled, or its connection closed).
#[derive(Debug)]
pub struct StreamBudget {
    total: Arc<Semaphore>,
    total_units: u32,
    per_terminal_units: u32,
    terminals: Mutex<HashMap<String, (Arc<Semaphore>, usize)>>,
    timeout: Duration,
}

impl StreamBudget {
    /// A budget of `total` bytes, `per_terminal` for each terminal; a stream holds its
    /// documents at most `timeout`.
    pub fn new(total: u64, per_terminal: u64, timeout: Duration) -> Arc<Self> {
        let total_units = units(total).max(1);
        Arc::new(StreamBudget {
            total: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            per_terminal_units: units(per_terminal).clamp(1, total_units),
            terminals: Mutex::new(HashMap::new()),
            timeout,
        })
    }

    /// The longest a stream may hold its documents.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Arc<Semaphore>, usize)>> {
        self.terminals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `bytes` for `terminal`'s stream, or refuses with OVERLOADED. An issuance
    /// larger than a terminal's whole budget takes all of that (and as much of the total), so
    /// that it can still be sent when nothing else of the terminal is waiting.
    pub fn reserve(self: &Arc<Self>, terminal: &str, bytes: u64) -> Result<Lease, GatewayError> {
        // Larger than a terminal's whole budget: it takes all of that, in both counts.
        let wanted = units(bytes).clamp(1, self.per_terminal_units);
        let overloaded = || {
            GatewayError::refused(
                reasons::OVERLOADED,
                "too many documents waiting to be sent; retry with the same client_request_id",
            )
        };
        let mut terminals = self.lock();
        let (semaphore, _) = terminals.entry(terminal.to_owned()).or_insert_with(|| {
            (
                Arc::new(Semaphore::new(self.per_terminal_units as usize)),
                0,
            )
        });
        let own = semaphore
            .clone()
            .try_acquire_many_owned(wanted)
            .map_err(|_| overloaded());
        let shared = own.and_then(|own| {
            let shared = self
                .total
                .clone()
                .try_acquire_many_owned(wanted)
                .map_err(|_| overloaded())?;
            Ok((own, shared))
        });
        match shared {
            Ok((own, shared)) => {
                if let Some((_, leases)) = terminals.get_mut(terminal) {
                    *leases += 1;
                }
                Ok(Lease {
                    budget: self.clone(),
                    terminal: terminal.to_owned(),
                    permits: Some((own, shared)),
                })
            }
            Err(refusal) => {
                if terminals
                    .get(terminal)
                    .is_some_and(|(_, leases)| *leases == 0)
                {
                    terminals.remove(terminal);
                }
                Err(refusal)
            }
        }
    }

    /// Refuses with OVERLOADED, before any work, a terminal whose streams already hold nearly
    /// all of its budget, or when the total is nearly used up: its Issue would be refused
    /// after the flow anyway, and a retry costs the issuer a fetch and the gateway the
    /// release checks of every document.
    pub fn check_room(&self, terminal: &str) -> Result<(), GatewayError> {
        let room =
            |available: usize, capacity: u32| available as u32 >= capacity.min(UNITS_OF_ROOM);
        let terminal_room = match self.lock().get(terminal) {
            Some((semaphore, _)) => room(semaphore.available_permits(), self.per_terminal_units),
            None => true,
        };
        if terminal_room && room(self.total.available_permits(), self.total_units) {
            Ok(())
        } else {
            Err(GatewayError::refused(
                reasons::OVERLOADED,
                "too many documents waiting to be sent; retry with the same client_request_id",
            ))
        }
    }

    /// Bytes reserved now, in total (KiB granularity).
    pub fn reserved_bytes(&self) -> u64 {
        u64::from(self.total_units - self.total.available_permits() as u32) * UNIT
    }
}

/// A stream's reservation; given back when dropped.
#[derive(Debug)]
pub struct Lease {
    budget: Arc<StreamBudget>,
    terminal: String,
    permits: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut terminals = self.budget.lock();
        // Released under the lock, so a concurrent reserve never sees a stale count.
        self.permits = None;
        if let Some((_, leases)) = terminals.get_mut(&self.terminal) {
            *leases = leases.saturating_sub(1);
            if *leases == 0 {
                terminals.remove(&self.terminal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        crate::config::Config::default().limits()
    }

    #[test]
    fn per_address_counts_are_given_back() {
        let admission = Admission::new(Limits {
            max_connections: Some(10),
            max_anonymous_per_ip: 1,
            ..limits()
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = admission.accept(ip).unwrap();
        let first = admission.established(first, ip, true).unwrap();
        assert!(first.is_anonymous());
        let second = admission.accept(ip).unwrap();
        assert!(admission.established(second, ip, true).is_none());
        // A terminal from the same address is not counted among the anonymous.
        let terminal = admission.accept(ip).unwrap();
        assert!(admission.established(terminal, ip, false).is_some());
        drop(first);
        let third = admission.accept(ip).unwrap();
        assert!(admission.established(third, ip, true).is_some());
        assert_eq!(admission.stats().refused, 1);
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_total_cap_keeps_room_for_terminals() {
        let admission = Admission::new(Limits {
            max_connections: Some(4),
            max_anonymous: 100,
            max_anonymous_per_ip: 100,
            ..limits()
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        // The anonymous cap is lowered below the total: one place stays for a terminal.
        let mut held = Vec::new();
        while let Some(permit) = admission.accept(ip) {
            match admission.established(permit, ip, true) {
                Some(permit) => held.push(permit),
                None => break,
            }
        }
        assert_eq!(held.len(), 3);
        let terminal = admission.accept(ip).unwrap();
        assert!(admission.established(terminal, ip, false).is_some());
    }

    #[test]
    fn stream_budget_is_per_terminal_and_total() {
        let budget = StreamBudget::new(10 << 20, 6 << 20, Duration::from_secs(1));
        let a1 = budget.reserve("a", 4 << 20).unwrap();
        assert_eq!(
            budget.reserve("a", 4 << 20).unwrap_err().reason(),
            reasons::OVERLOADED
        );
        let b1 = budget.reserve("b", 4 << 20).unwrap();
        // 8 of 10 MiB in use: the total refuses what the terminal's own budget would allow.
        assert!(budget.reserve("c", 4 << 20).is_err());
        drop(a1);
        let c1 = budget.reserve("c", 4 << 20).unwrap();
        // Larger than a terminal's whole budget: takes all of it.
        drop((b1, c1));
        let big = budget.reserve("d", 50 << 20).unwrap();
        assert!(budget.reserve("d", 1).is_err());
        assert!(budget.check_room("d").is_err());
        assert!(budget.check_room("e").is_ok(), "4 of 10 MiB are still free");
        drop(big);
        assert!(budget.check_room("d").is_ok());
        assert_eq!(budget.reserved_bytes(), 0);
        assert!(
            budget.lock().is_empty(),
            "no terminal entry outlives its leases"
        );
    }
}
