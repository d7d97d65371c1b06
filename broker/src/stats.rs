//! Counters the broker keeps about itself, read by `/metrics`, `$SYS` and
//! tests.
//!
//! The hot path only does relaxed atomic adds on these; turning them into
//! Prometheus metrics happens at scrape time (`metrics::export`), so a
//! publish never touches a metrics registry. Labelled counters are arrays
//! indexed by a bounded enum.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::codec::Packet;

/// Packet type names, indexed by [`packet_index`].
pub const PACKET_TYPES: [&str; 15] = [
    "connect",
    "connack",
    "publish",
    "puback",
    "pubrec",
    "pubrel",
    "pubcomp",
    "subscribe",
    "suback",
    "unsubscribe",
    "unsuback",
    "pingreq",
    "pingresp",
    "disconnect",
    "auth",
];

/// The index of a packet's type in [`PACKET_TYPES`].
pub fn packet_index(p: &Packet) -> usize {
    match p {
        Packet::Connect(_) => 0,
        Packet::ConnAck(_) => 1,
        Packet::Publish(_) => 2,
        Packet::PubAck(_) => 3,
        Packet::PubRec(_) => 4,
        Packet::PubRel(_) => 5,
        Packet::PubComp(_) => 6,
        Packet::Subscribe(_) => 7,
        Packet::SubAck(_) => 8,
        Packet::Unsubscribe(_) => 9,
        Packet::UnsubAck(_) => 10,
        Packet::PingReq => 11,
        Packet::PingResp => 12,
        Packet::Disconnect(_) => 13,
        Packet::Auth(_) => 14,
    }
}

/// Why a connection closed, for `herald_connections_closed_total{reason}`.
pub const CLOSE_REASONS: [&str; 10] = [
    "client_disconnect",
    "peer_closed",
    "io_error",
    "protocol_error",
    "keep_alive_timeout",
    "takeover",
    "slow_consumer",
    "shutdown",
    "connect_timeout",
    "store_failed",
];

/// Why a message was dropped, for `herald_messages_dropped_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// A session's queue was at its message or byte limit.
    QueueFull,
    /// The message expired before it could be delivered.
    Expired,
    /// Larger than the receiving client's Maximum Packet Size.
    TooLarge,
    /// The target session no longer existed.
    NoSession,
    /// A slow consumer was disconnected instead of buffering more.
    SlowConsumer,
    /// QoS 0 for a session that is offline (not queued).
    OfflineQos0,
}

pub const DROP_REASONS: [&str; 6] = [
    "queue_full",
    "expired",
    "too_large",
    "no_session",
    "slow_consumer",
    "offline_qos0",
];

/// Monotonic counters and gauges. Each is a relaxed atomic.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_current: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused_limit: AtomicU64,
    pub connect_timeouts: AtomicU64,
    /// Connections closed because of a malformed packet or protocol violation.
    pub protocol_errors: AtomicU64,
    /// Connections closed as slow consumers.
    pub slow_consumers: AtomicU64,
    pub keep_alive_timeouts: AtomicU64,
    pub takeovers: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_expired: AtomicU64,
    pub dropped_too_large: AtomicU64,
    pub dropped_no_session: AtomicU64,
    pub dropped_offline_qos0: AtomicU64,
    pub dropped_slow_consumer: AtomicU64,
    pub wills_published: AtomicU64,
    pub sessions_expired: AtomicU64,
    /// Logins refused: unknown user or wrong password.
    pub logins_failed_bad_credentials: AtomicU64,
    /// Logins refused: no credentials where needed, or a client id bound
    /// to another username.
    pub logins_failed_not_authorized: AtomicU64,
    /// Logins refused unchecked: the source address failed too often.
    pub logins_failed_rate_limited: AtomicU64,
    /// Connections closed before MQTT began: a failed TLS or WebSocket
    /// handshake, or an invalid PROXY header.
    pub handshakes_failed: AtomicU64,
    /// PUBLISH (or will) refused by the ACL.
    pub acl_denied_publish: AtomicU64,
    /// SUBSCRIBE filters refused by the ACL.
    pub acl_denied_subscribe: AtomicU64,
    /// Messages not delivered because the receiver may not read the topic.
    pub acl_denied_deliver: AtomicU64,
    /// Outbound QoS 1/2 messages awaiting acknowledgement, all connections.
    pub inflight: AtomicU64,
    pub packets_received: [AtomicU64; 15],
    pub packets_sent: [AtomicU64; 15],
    pub bytes_received: [AtomicU64; 15],
    pub bytes_sent: [AtomicU64; 15],
    pub closed: [AtomicU64; 10],
    /// Application messages received, by QoS.
    pub received_by_qos: [AtomicU64; 3],
    /// Application messages delivered (written to a client), by QoS.
    pub delivered_by_qos: [AtomicU64; 3],
}

impl Stats {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts a dropped message.
    pub fn dropped(&self, why: Drop) {
        Stats::inc(match why {
            Drop::QueueFull => &self.dropped_queue_full,
            Drop::Expired => &self.dropped_expired,
            Drop::TooLarge => &self.dropped_too_large,
            Drop::NoSession => &self.dropped_no_session,
            Drop::SlowConsumer => &self.dropped_slow_consumer,
            Drop::OfflineQos0 => &self.dropped_offline_qos0,
        });
    }

    /// Drop counts in [`DROP_REASONS`] order.
    pub fn drops(&self) -> [u64; 6] {
        [
            Stats::get(&self.dropped_queue_full),
            Stats::get(&self.dropped_expired),
            Stats::get(&self.dropped_too_large),
            Stats::get(&self.dropped_no_session),
            Stats::get(&self.dropped_slow_consumer),
            Stats::get(&self.dropped_offline_qos0),
        ]
    }
}
