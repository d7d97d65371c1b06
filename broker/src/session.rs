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

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;
use futures_util::task::AtomicWaker;
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
    pub properties: MsgProperties,
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
        let p = self.properties.get();
        Msg {
            topic: text(&self.topic),
            payload: Bytes::copy_from_slice(&self.payload),
            properties: MsgProperties::new(PublishProperties {
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
            }),
            ..*self
        }
    }
}

/// A message's 5.0 properties, boxed and absent when there are none (most
/// messages): every `Msg` (retained, queued, in flight) is then about 150
/// bytes smaller than with the properties inline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgProperties(Option<Box<PublishProperties>>);

/// What [`MsgProperties::get`] gives for a message without properties.
static NO_PROPERTIES: PublishProperties = PublishProperties {
    payload_format_indicator: None,
    message_expiry_interval: None,
    topic_alias: None,
    response_topic: None,
    correlation_data: None,
    user_properties: Vec::new(),
    subscription_identifiers: Vec::new(),
    content_type: None,
};

impl MsgProperties {
    pub fn new(p: PublishProperties) -> MsgProperties {
        if p.is_empty() {
            MsgProperties(None)
        } else {
            MsgProperties(Some(Box::new(p)))
        }
    }

    pub fn get(&self) -> &PublishProperties {
        self.0.as_deref().unwrap_or(&NO_PROPERTIES)
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
    /// Nothing heard from the client for 1.5 × its keep alive.
    KeepAlive = 4,
}

/// A keep-alive deadline that never passes.
pub const NO_DEADLINE: u64 = u64::MAX;

/// A live connection as the rest of the broker sees it: its mailbox, its
/// signals (kick, mail, finished) and its backpressure counters, in one
/// allocation shared by the connection, its session and paused publishers.
///
/// The connection task waits on all of it through one registered waker, so
/// an idle connection keeps no per-signal future.
#[derive(Debug)]
pub struct ConnLink {
    /// Connection epoch: unique per connection, orders takeovers.
    pub epoch: u64,
    /// Deliveries on their way to the connection: a plain queue behind a
    /// lock (held only to push or to swap the whole queue out); it
    /// allocates nothing until something is queued.
    queue: Mutex<VecDeque<Delivery>>,
    /// Set by a push, cleared when the connection looks at the queue.
    mail: AtomicBool,
    /// Refuses pushes once the connection has closed.
    closed: AtomicBool,
    /// Why the connection is asked to close ([`Kick`] as u8; 0: it is not).
    kick: AtomicU8,
    /// Set once the connection has finished closing, so a takeover can
    /// wait for the old connection's state to settle.
    finished: AtomicBool,
    /// When the client must have been heard from again, in ms of the
    /// broker's keep-alive clock ([`NO_DEADLINE`]: no keep alive, or not
    /// counting while the connection is paused); checked by the broker's
    /// keep-alive sweep, so an idle connection keeps no timer.
    keep_alive_deadline: AtomicU64,
    /// Bytes handed to the connection and not yet written or dropped.
    pub queued_bytes: AtomicUsize,
    /// Above this many queued bytes with a backlog, the connection is a
    /// slow consumer (`limits.max_outbound_bytes`).
    pub max_bytes: usize,
    /// The high-water mark at which a QoS 1/2 delivery makes its publisher
    /// pause (backpressure, [`crate::config::Limits::high_water`]); half of
    /// it is the low-water mark at which paused publishers resume.
    high_water: usize,
    /// The connection task.
    waker: AtomicWaker,
    /// Notified when `queued_bytes` falls to the low-water mark and when
    /// the connection finishes: paused publishers and takeovers wait here.
    drained: Notify,
}

impl ConnLink {
    pub fn new(epoch: u64, limits: &crate::config::Limits) -> ConnLink {
        ConnLink {
            epoch,
            queue: Mutex::new(VecDeque::new()),
            mail: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            kick: AtomicU8::new(Kick::None as u8),
            finished: AtomicBool::new(false),
            keep_alive_deadline: AtomicU64::new(NO_DEADLINE),
            queued_bytes: AtomicUsize::new(0),
            max_bytes: limits.max_outbound_bytes,
            high_water: limits.high_water(),
            waker: AtomicWaker::new(),
            drained: Notify::new(),
        }
    }

    pub fn high_water(&self) -> usize {
        self.high_water
    }

    pub fn low_water(&self) -> usize {
        self.high_water / 2
    }

    /// Registers the connection task's waker; signals raised after this
    /// wake it.
    pub fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Queues a delivery; false once the connection has closed.
    pub fn push(&self, d: Delivery) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        self.queue.lock().push_back(d);
        self.mail.store(true, Ordering::Release);
        self.waker.wake();
        true
    }

    /// Whether something was pushed since the last call (register the
    /// waker first, so a push in between is not missed).
    pub fn take_mail_flag(&self) -> bool {
        self.mail.load(Ordering::Acquire) && self.mail.swap(false, Ordering::AcqRel)
    }

    /// Moves everything queued into `into` (which should be empty).
    pub fn take_all(&self, into: &mut VecDeque<Delivery>) {
        let mut q = self.queue.lock();
        if into.is_empty() {
            std::mem::swap(&mut *q, into);
        } else {
            into.extend(q.drain(..));
        }
    }

    /// Asks the connection to close; the first reason wins.
    pub fn kick(&self, why: Kick) {
        let _ = self
            .kick
            .compare_exchange(0, why as u8, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
    }

    pub fn kick_reason(&self) -> Kick {
        match self.kick.load(Ordering::Acquire) {
            1 => Kick::Takeover,
            2 => Kick::SlowConsumer,
            3 => Kick::Shutdown,
            4 => Kick::KeepAlive,
            _ => Kick::None,
        }
    }

    /// Sets when the client must next be heard from.
    pub fn set_keep_alive_deadline(&self, at_ms: u64) {
        self.keep_alive_deadline.store(at_ms, Ordering::Relaxed);
    }

    /// Kicks the connection if its keep-alive deadline is before `now_ms`.
    pub fn check_keep_alive(&self, now_ms: u64) {
        if self.keep_alive_deadline.load(Ordering::Relaxed) < now_ms {
            self.kick(Kick::KeepAlive);
        }
    }

    /// Bytes of a delivery that left the queue (written, dropped or
    /// ignored): wakes paused publishers when the queue has drained.
    pub fn release(&self, bytes: usize) {
        let before = self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        let low = self.low_water();
        if before > low && before.saturating_sub(bytes) <= low {
            self.drained.notify_waiters();
        }
    }

    /// The connection has closed: refuses further pushes, drops what is
    /// queued and releases the publishers waiting for it to drain.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.queue.lock().clear();
        self.queued_bytes.store(0, Ordering::Release);
        self.drained.notify_waiters();
    }

    /// The connection has finished closing (its session state is settled).
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.drained.notify_waiters();
    }

    /// Completes once `ready` holds, re-checked on every drain notice.
    async fn wait_until(&self, ready: impl Fn(&ConnLink) -> bool) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            // Registered before the check, so a wake-up in between is kept.
            notified.as_mut().enable();
            if ready(self) {
                return;
            }
            notified.await;
        }
    }

    /// Completes once the connection has finished closing.
    pub async fn finished(&self) {
        self.wait_until(|l| l.finished.load(Ordering::Acquire))
            .await;
    }
}

/// What a publisher needs to wait for a congested connection to drain.
#[derive(Debug, Clone)]
pub struct Congestion(pub Arc<ConnLink>);

impl Congestion {
    pub fn is_drained(&self) -> bool {
        self.0.queued_bytes.load(Ordering::Acquire) <= self.0.low_water()
    }

    /// Completes once the connection has drained to its low-water mark or
    /// closed.
    pub async fn wait(&self) {
        self.0
            .wait_until(|l| l.queued_bytes.load(Ordering::Acquire) <= l.low_water())
            .await;
    }

    /// Gives up on the connection: it is a slow consumer.
    pub fn kick(&self) {
        self.0.kick(Kick::SlowConsumer);
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
    /// The live connection, if any.
    pub link: Option<Arc<ConnLink>>,
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
    pub subscriptions: BTreeMap<String, SubOpts>,
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
            link.kick(Kick::SlowConsumer);
            return Pushed::SlowConsumer;
        }
        let reliable = delivery.qos != QoS::AtMostOnce;
        if !link.push(delivery) {
            link.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            return Pushed::Offline;
        }
        if reliable && queued + size > link.high_water() {
            return Pushed::Congested(Congestion(Arc::clone(link)));
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

    /// Every retained, queued and in-flight message is a `Msg`: its 5.0
    /// properties are boxed (absent when empty) so that it stays small.
    #[test]
    fn a_message_is_small_and_keeps_its_properties() {
        let size = std::mem::size_of::<Msg>();
        assert!(size <= 136, "Msg is {size} bytes");
        assert_eq!(
            MsgProperties::new(PublishProperties::default()),
            MsgProperties::default()
        );
        assert_eq!(
            MsgProperties::default().get(),
            &PublishProperties::default()
        );
        let p = PublishProperties {
            content_type: Some(ByteString::from_static("text/plain")),
            ..PublishProperties::default()
        };
        assert_eq!(MsgProperties::new(p.clone()).get(), &p);
        assert!(NO_PROPERTIES.is_empty() && PublishProperties::default().is_empty());
        assert!(!p.is_empty());
    }

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
            properties: MsgProperties::new(PublishProperties {
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(9),
                response_topic: Some(text(30)),
                correlation_data: Some(read_buffer.slice(40..44)),
                user_properties: vec![(text(50), text(60))],
                content_type: Some(text(70)),
                ..PublishProperties::default()
            }),
            expires_at: None,
            origin: Some(3),
            received_at: Instant::now(),
        };
        let d = msg.detached();
        assert_eq!(format!("{d:?}"), format!("{msg:?}"), "same content");
        let p = d.properties.get();
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
