//! Counters the broker keeps about itself (read by tests, logs and `$SYS`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters and gauges. Each is a relaxed atomic: they cost one
/// uncontended atomic add on the paths that touch them.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_current: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused_limit: AtomicU64,
    pub connect_timeouts: AtomicU64,
    /// Connections closed because of a malformed packet or protocol violation.
    pub protocol_errors: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub keep_alive_timeouts: AtomicU64,
    pub takeovers: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_expired: AtomicU64,
    pub dropped_too_large: AtomicU64,
    pub dropped_no_session: AtomicU64,
    pub wills_published: AtomicU64,
    pub sessions_expired: AtomicU64,
}

impl Stats {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
