//! Sessions as the router sees them.
//!
//! A [`SessionHandle`] exists per client id for as long as the session does:
//! while a connection owns it (online), and — for persistent sessions —
//! while it waits offline for its client to come back. The subscription
//! index refers to sessions by [`SessionKey`] (pointer identity), so a
//! publish reaches the session without a lookup by client id.
//!
//! Lifecycle: created by CONNECT (or by recovery from the store at start);
//! linked to the owning connection through a [`ConnLink`]; unlinked when
//! that connection closes; removed when it ends (non-persistent session
//! closed, persistent session expired, or replaced by a clean start).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::codec::{PublishProperties, QoS};

/// Options of one subscription, as the index stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubOpts {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
    pub identifier: Option<u32>,
}

impl SubOpts {
    /// The storage layout of the options byte.
    pub fn to_byte(&self) -> u8 {
        (self.qos as u8)
            | (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
            | ((self.retain_handling & 3) << 4)
    }

    /// Inverse of [`SubOpts::to_byte`].
    pub fn from_byte(b: u8, identifier: Option<u32>) -> SubOpts {
        SubOpts {
            qos: QoS::from_u8(b & 3).unwrap_or(QoS::AtMostOnce),
            no_local: b & 4 != 0,
            retain_as_published: b & 8 != 0,
            retain_handling: (b >> 4) & 3,
            identifier,
        }
    }
}

/// An application message being routed. Shared (`Arc`) by every delivery of
/// it: a fan-out copies no payload.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Properties forwarded to 5.0 subscribers (no topic alias, no
    /// subscription identifiers: those are per delivery).
    pub properties: PublishProperties,
    /// When the message expires (5.0 Message Expiry Interval).
    pub expires_at: Option<Instant>,
    /// The publishing session, for No Local; `None` for wills and `$SYS`.
    pub origin: Option<usize>,
    /// When the broker received it, for the publish-to-deliver latency.
    pub received_at: Instant,
}

impl Msg {
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Bytes it accounts for in queue and buffer limits.
    pub fn size(&self) -> usize {
        self.topic.len() + self.payload.len() + 32
    }

    /// A copy whose topic, payload and properties own exact-size buffers.
    /// A decoded message shares the connection's read buffer (zero copy),
    /// which is right for a message delivered at once, but one kept for
    /// long (retained) would keep that whole buffer alive: a device that
    /// publishes one small retained status would pin kilobytes for it.
    pub fn detached(&self) -> Msg {
        let text = |s: &ByteString| ByteString::from(&**s);
        let p = &self.properties;
        Msg {
            topic: text(&self.topic),
            payload: Bytes::copy_from_slice(&self.payload),
            properties: PublishProperties {
                response_topic: p.response_topic.as_ref().map(text),
                correlation_data: p.correlation_data.as_deref().map(Bytes::copy_from_slice),
                user_properties: p
                    .user_properties
                    .iter()
                    .map(|(k, v)| (text(k), text(v)))
                    .collect(),
                content_type: p.content_type.as_ref().map(text),
                subscription_identifiers: p.subscription_identifiers.clone(),
                ..*p
            },
            ..*self
        }
    }
}

/// One delivery of a message to one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: Arc<Msg>,
    /// min(published QoS, subscription QoS).
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// Queue sequence number in the store, for persistent sessions' QoS 1/2.
    pub seq: Option<u64>,
}

/// Why a connection is being closed from outside its own task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kick {
    None = 0,
    Takeover = 1,
    SlowConsumer = 2,
    Shutdown = 3,
}

/// The router's way into a live connection.
#[derive(Debug)]
pub struct ConnLink {
    /// Connection epoch: unique per connection, orders takeovers.
    pub epoch: u64,
    pub tx: Arc<Mailbox>,
    /// Bytes sent through `tx` and not yet taken by the connection.
    pub queued_bytes: Arc<AtomicUsize>,
    pub max_bytes: usize,
    pub kick: Arc<KickSignal>,
    /// Sees its sender dropped once the connection has finished closing, so a
    /// takeover can wait for the old connection's state to settle.
    pub done: tokio::sync::watch::Receiver<()>,
    /// Notified when `queued_bytes` falls to `low_water` (or the connection
    /// closes): publishers paused by backpressure resume.
    pub drained: Arc<Notify>,
    /// Above this many queued bytes a QoS 1/2 delivery makes its publisher
    /// pause (backpressure) instead of the broker dropping anything.
    pub high_water: usize,
    pub low_water: usize,
}

/// Deliveries on their way to one connection. A plain queue behind a lock
/// (held only to push or to swap the whole queue out) and a wake-up: it
/// allocates nothing until something is queued, so an idle connection
/// holds no mailbox buffer.
#[derive(Debug, Default)]
pub struct Mailbox {
    queue: Mutex<std::collections::VecDeque<Delivery>>,
    /// Signalled on every push (a permit is kept when nobody waits).
    pub ready: Notify,
    closed: std::sync::atomic::AtomicBool,
}

impl Mailbox {
    /// Queues a delivery; false once the connection has closed.
    pub fn push(&self, d: Delivery) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        self.queue.lock().push_back(d);
        self.ready.notify_one();
        true
    }

    /// Moves everything queued into `into` (which should be empty).
    pub fn take_all(&self, into: &mut std::collections::VecDeque<Delivery>) {
        let mut q = self.queue.lock();
        if into.is_empty() {
            std::mem::swap(&mut *q, into);
        } else {
            into.extend(q.drain(..));
        }
    }

    /// Refuses further pushes and drops what is queued.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.queue.lock().clear();
    }
}

/// What a publisher needs to wait for a congested connection to drain.
#[derive(Debug, Clone)]
pub struct Congestion {
    pub queued_bytes: Arc<AtomicUsize>,
    pub drained: Arc<Notify>,
    pub low_water: usize,
    pub kick: Arc<KickSignal>,
}

impl Congestion {
    pub fn is_drained(&self) -> bool {
        self.queued_bytes.load(Ordering::Acquire) <= self.low_water
    }

    /// Completes once the connection has drained to its low-water mark or
    /// closed.
    pub async fn wait(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            // Registered before the check, so a wake-up in between is kept.
            notified.as_mut().enable();
            if self.is_drained() {
                return;
            }
            notified.await;
        }
    }
}

/// Asks a connection to close, with a reason.
#[derive(Debug, Default)]
pub struct KickSignal {
    reason: AtomicU8,
    pub notify: Notify,
}

impl KickSignal {
    pub fn kick(&self, why: Kick) {
        // The first reason wins.
        let _ = self
            .reason
            .compare_exchange(0, why as u8, Ordering::AcqRel, Ordering::Acquire);
        self.notify.notify_one();
    }

    pub fn reason(&self) -> Kick {
        match self.reason.load(Ordering::Acquire) {
            1 => Kick::Takeover,
            2 => Kick::SlowConsumer,
            3 => Kick::Shutdown,
            _ => Kick::None,
        }
    }
}

/// What happened to a delivery handed to a session.
#[derive(Debug, Clone)]
pub enum Pushed {
    Sent,
    /// Sent, and the connection is now above its high-water mark: the
    /// publisher of a QoS 1/2 message should pause until it drains.
    Congested(Congestion),
    Offline,
    SlowConsumer,
}

/// Mutable part of a session, behind its own lock (never a global one).
#[derive(Debug, Default)]
pub struct HandleState {
    pub link: Option<ConnLink>,
    /// The session is kept in the store (expiry > 0 or resumed from it).
    pub persistent: bool,
    /// Epoch of the latest connection that owned the session.
    pub epoch: u64,
    /// Username of the connection that last opened the session (None:
    /// anonymous). With client ids bound to usernames, only it may take
    /// the session; checked and set under the registry lock, and stored
    /// with a persistent session.
    pub owner: Option<Arc<str>>,
    /// Filter (with `$share/g/` prefix when shared) → options.
    pub subscriptions: HashMap<String, SubOpts>,
    /// False once the session has ended: late publishes must not queue.
    pub ended: bool,
    /// Highest queue sequence number ever written to a client: a resumed
    /// session resends entries up to it with DUP=1 [MQTT-3.3.1-1], and
    /// sends later ones (queued while offline) as first attempts.
    pub sent_up_to: u64,
}

/// A session, shared by the registry, the index and its connection.
#[derive(Debug)]
pub struct SessionHandle {
    pub client_id: Arc<str>,
    pub state: Mutex<HandleState>,
}

impl SessionHandle {
    pub fn new(client_id: Arc<str>) -> Arc<SessionHandle> {
        Arc::new(SessionHandle {
            client_id,
            state: Mutex::new(HandleState::default()),
        })
    }

    /// Hands a delivery to the live connection, if any.
    pub fn push(&self, delivery: Delivery) -> Pushed {
        Self::push_locked(&self.state.lock(), delivery)
    }

    /// Hands a delivery over unless it must first go to the session's
    /// durable queue (a persistent session and QoS 1/2): then it is given
    /// back. One lock for both the decision and the hand-over.
    pub fn push_unless_durable(&self, delivery: Delivery) -> Result<Pushed, Delivery> {
        let state = self.state.lock();
        if state.persistent && delivery.qos != QoS::AtMostOnce {
            return Err(delivery);
        }
        Ok(Self::push_locked(&state, delivery))
    }

    fn push_locked(state: &HandleState, delivery: Delivery) -> Pushed {
        let Some(link) = &state.link else {
            return Pushed::Offline;
        };
        let size = delivery.msg.size();
        let queued = link.queued_bytes.fetch_add(size, Ordering::AcqRel);
        // Over the bound only with a backlog: one message larger than the
        // bound, with nothing waiting before it, is not a slow consumer.
        if queued > 0 && queued + size > link.max_bytes {
            link.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            link.kick.kick(Kick::SlowConsumer);
            return Pushed::SlowConsumer;
        }
        let reliable = delivery.qos != QoS::AtMostOnce;
        if !link.tx.push(delivery) {
            link.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            return Pushed::Offline;
        }
        if reliable && queued + size > link.high_water {
            return Pushed::Congested(Congestion {
                queued_bytes: Arc::clone(&link.queued_bytes),
                drained: Arc::clone(&link.drained),
                low_water: link.low_water,
                kick: Arc::clone(&link.kick),
            });
        }
        Pushed::Sent
    }

    pub fn is_online(&self) -> bool {
        self.state.lock().link.is_some()
    }
}

/// A session as a key of the subscription index: identity, not value.
#[derive(Debug, Clone)]
pub struct SessionKey(pub Arc<SessionHandle>);

impl SessionKey {
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SessionKey {}

impl Hash for SessionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

/// The packet identifier used for queue entry `seq`: a fixed function, so
/// a resend after a resume uses the same identifier [MQTT-4.4.0-1].
pub fn packet_id_for(seq: u64) -> u16 {
    ((seq.saturating_sub(1)) % 65_535 + 1) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_are_never_zero_and_cycle() {
        assert_eq!(packet_id_for(1), 1);
        assert_eq!(packet_id_for(65_535), 65_535);
        assert_eq!(packet_id_for(65_536), 1);
        for s in 1..200_000u64 {
            assert_ne!(packet_id_for(s), 0);
        }
    }

    /// A detached message equals the original and shares none of the
    /// buffer it was decoded from.
    #[test]
    fn detached_messages_own_their_buffers() {
        let read_buffer = Bytes::from(vec![b'x'; 4096]);
        let inside = |b: &[u8]| {
            let range = read_buffer.as_ptr_range();
            range.contains(&b.as_ptr())
        };
        let text = |at: usize| {
            ByteString::try_from(read_buffer.slice(at..at + 3)).expect("ASCII is UTF-8")
        };
        let msg = Msg {
            topic: text(0),
            payload: read_buffer.slice(10..20),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: PublishProperties {
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(9),
                response_topic: Some(text(30)),
                correlation_data: Some(read_buffer.slice(40..44)),
                user_properties: vec![(text(50), text(60))],
                content_type: Some(text(70)),
                ..PublishProperties::default()
            },
            expires_at: None,
            origin: Some(3),
            received_at: Instant::now(),
        };
        let d = msg.detached();
        assert_eq!(format!("{d:?}"), format!("{msg:?}"), "same content");
        let p = &d.properties;
        let parts: [&[u8]; 7] = [
            d.topic.as_bytes(),
            &d.payload,
            p.response_topic.as_ref().expect("kept").as_bytes(),
            p.correlation_data.as_deref().expect("kept"),
            p.user_properties[0].0.as_bytes(),
            p.user_properties[0].1.as_bytes(),
            p.content_type.as_ref().expect("kept").as_bytes(),
        ];
        for part in parts {
            assert!(!inside(part), "still in the read buffer");
        }
        assert!(inside(&msg.payload), "the check can tell");
    }

    #[test]
    fn options_byte_round_trips() {
        for b in 0..64u8 {
            if b & 3 == 3 || (b >> 4) & 3 == 3 {
                continue;
            }
            assert_eq!(SubOpts::from_byte(b, Some(7)).to_byte(), b);
        }
    }
}
