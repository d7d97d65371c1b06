//! Commands: every durable change is one of these, applied in order.

use bytes::Bytes;

use crate::model::{Message, SessionRecord, Subscription, Will};

/// A durable change. Applying a command is deterministic: the same commands
/// in the same order give the same state on every store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A connection with `epoch` takes the session of `client_id`, creating it
    /// if absent or if `clean_start` asks for a new one.
    Open {
        client_id: String,
        epoch: u64,
        clean_start: bool,
        protocol_level: u8,
        expiry_secs: u32,
        will: Option<Will>,
        /// The username the client logged in with (None: anonymous); the
        /// session records it as its owner.
        username: Option<String>,
        now_ms: u64,
    },
    /// The connection with `epoch` closed. The session stays for
    /// `expiry_secs` (0: it is removed now); `will` is what remains to be
    /// published later (a delayed will), if anything.
    Close {
        client_id: String,
        epoch: u64,
        expiry_secs: u32,
        will: Option<Will>,
        now_ms: u64,
    },
    /// The session ends (expired, or replaced by a non-persistent one).
    Discard { client_id: String },
    /// Add or replace a subscription.
    Subscribe {
        client_id: String,
        filter: String,
        subscription: Subscription,
    },
    /// Remove a subscription.
    Unsubscribe { client_id: String, filter: String },
    /// Store a message once and append it to each target session's queue.
    Publish {
        message: Message,
        targets: Vec<Target>,
    },
    /// Set (Some) or delete (None) the retained message of a topic.
    Retain {
        topic: Bytes,
        message: Option<Message>,
    },
    /// The client acknowledged queue entry `seq` (PUBACK, or PUBCOMP for QoS 2).
    Ack { client_id: String, seq: u64 },
    /// The client sent PUBREC for queue entry `seq`.
    PubRec { client_id: String, seq: u64 },
    /// Inbound QoS 2: packet id received (`true`) or released by PUBREL (`false`).
    InboundQos2 {
        client_id: String,
        packet_id: u16,
        received: bool,
    },
    /// A delayed will was published (or cancelled): forget it.
    ClearWill { client_id: String },
}

/// One queue append of a [`Command::Publish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub client_id: String,
    pub qos: u8,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
}

/// Why an append to a queue did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The session does not exist (any more).
    NoSession,
    /// The queue is at its message-count limit.
    QueueFullMessages,
    /// The queue is at its byte limit.
    QueueFullBytes,
}

impl DropReason {
    /// A bounded label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NoSession => "no_session",
            DropReason::QueueFullMessages => "queue_full_messages",
            DropReason::QueueFullBytes => "queue_full_bytes",
        }
    }
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// [`Command::Open`]: whether an existing session was resumed, and the
    /// session as it now is.
    Opened {
        session_present: bool,
        session: Box<SessionRecord>,
    },
    /// [`Command::Close`]: whether the session was removed; false also when
    /// the epoch no longer owned it (a takeover happened).
    Closed { removed: bool, owned: bool },
    /// [`Command::Publish`]: per target, the assigned sequence number or why
    /// it was dropped.
    Published {
        appended: Vec<Result<u64, DropReason>>,
    },
    /// Any other command: whether it changed something that existed
    /// (a subscription replaced, an entry acknowledged, an id present, ...).
    Done { existed: bool },
}
