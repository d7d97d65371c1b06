//! The records the durable state is made of.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;

/// An application message as stored: its body is kept once and shared by
/// every queue that holds it (`Arc`), so a fan-out to N persistent sessions
/// does not copy the payload N times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// UTF-8 topic name.
    pub topic: Bytes,
    pub payload: Bytes,
    /// QoS the message was published with (0..=2).
    pub qos: u8,
    /// RETAIN flag as published.
    pub retain: bool,
    /// Opaque property blob (the broker's encoding of the 5.0 publish
    /// properties that travel with the message); empty when there are none.
    pub properties: Bytes,
    /// Absolute expiry time in milliseconds since the Unix epoch, so that
    /// message expiry keeps counting across a restart.
    pub expires_at_ms: Option<u64>,
}

impl Message {
    /// Bytes this message accounts for in queue limits.
    pub fn size(&self) -> usize {
        self.topic.len() + self.payload.len() + self.properties.len()
    }

    /// True when the message has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// A subscription as stored in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Subscription options: bits 0-1 maximum QoS, bit 2 No Local, bit 3
    /// Retain As Published, bits 4-5 Retain Handling (the 5.0 layout; 3.x
    /// sessions only use the QoS bits).
    pub options: u8,
    /// 5.0 subscription identifier.
    pub identifier: Option<u32>,
}

/// A will message and its delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub message: Message,
    pub delay_secs: u32,
}

/// One message in a session's queue, waiting for delivery or for its
/// acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Position in the session's queue; also determines the packet
    /// identifier used to deliver it, so resending after a resume reuses it.
    pub seq: u64,
    /// Identifier of the shared body in the state's message table
    /// (assigned deterministically, in command order).
    pub message_id: u64,
    pub message: Arc<Message>,
    /// QoS granted for this delivery (min of published and subscribed).
    pub qos: u8,
    /// RETAIN flag to deliver with.
    pub retain: bool,
    /// Subscription identifiers of the matching subscriptions.
    pub subscription_ids: Vec<u32>,
    /// QoS 2: PUBREC received, so PUBREL (not the PUBLISH) is what to resend.
    pub pubrec_received: bool,
}

/// A persistent session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionRecord {
    pub client_id: String,
    /// Protocol level of the last connection (3, 4 or 5).
    pub protocol_level: u8,
    /// Session expiry in seconds after disconnect; `u32::MAX` never expires.
    pub expiry_secs: u32,
    /// Topic filter (with `$share/...` prefix when shared) → subscription.
    pub subscriptions: BTreeMap<String, Subscription>,
    pub will: Option<Will>,
    /// Connection epoch of the connection that owns the session, if any.
    pub connected_epoch: Option<u64>,
    /// When the session was last disconnected (ms since the epoch).
    pub disconnected_at_ms: Option<u64>,
    /// Inbound QoS 2 packet identifiers received and not yet released by PUBREL.
    pub inbound_qos2: BTreeSet<u16>,
    /// Queued and in-flight messages by sequence number.
    pub queue: BTreeMap<u64, QueueEntry>,
    /// Next sequence number to assign.
    pub next_seq: u64,
    /// Username of the connection that last opened the session (None:
    /// anonymous): with client ids bound to usernames, only it may take
    /// the session over.
    pub owner: Option<String>,
}

impl SessionRecord {
    /// Bytes of queued message bodies, for the per-session byte limit.
    pub fn queued_bytes(&self) -> usize {
        self.queue.values().map(|e| e.message.size()).sum()
    }
}
