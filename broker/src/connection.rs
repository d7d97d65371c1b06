//! One client connection: the protocol, from CONNECT to close.
//!
//! Lifecycle of a connection:
//! 1. accepted (TCP_NODELAY on), the CONNECT must arrive within
//!    `connect_timeout_secs`; nothing else is accepted first [MQTT-3.1.0-1];
//! 2. CONNECT validated; an older connection with the same client id is
//!    kicked (5.0: DISCONNECT 0x8E) and waited for [MQTT-3.1.4-3]; the
//!    session is created, resumed or replaced; CONNACK is sent; queued and
//!    unacknowledged messages are (re)sent;
//! 3. one task serves it: it reads and decodes packets, takes deliveries
//!    from its mailbox, writes coalesced output, and moves its keep-alive
//!    deadline (1.5 × the negotiated value [MQTT-3.1.2-24]) on every read;
//!    the broker's keep-alive sweep kicks it once the deadline has passed;
//! 4. it ends with a typed [`Close`], mapped to a 5.0 reason code in one
//!    place ([`Close::reason_code`]); the will is published unless the
//!    client disconnected normally; the session is kept (persistent) or ended.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use bytestring::ByteString;
use herald_storage::{
    Command, Outcome, SessionRecord, StoreError, Subscription, Ticket, Will as StoredWill,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::debug;

use crate::acl::Acl;
use crate::broker::{msg_from_stored, msg_to_stored, now_ms, Broker, ConnSlot};
use crate::codec::{
    self, connack_v3, reason, ConnAck, ConnAckProperties, Connect, DecodeError, Disconnect,
    DisconnectProperties, Packet, ProtocolVersion, PubResp, Publish, PublishProperties, QoS,
    ReasonProperties, SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use crate::security::{ClientOrigin, LoginError};
use crate::session::{
    packet_id_for, Congestion, ConnLink, Delivery, Kick, Msg, MsgProperties, SessionHandle,
    SubOpts, NO_DEADLINE,
};
use crate::stats::{packet_index, Drop, Stats};
use crate::topic;
use crate::transport::{TransportRead, TransportWrite};

/// Output waiting to be written above which the connection stops reading
/// and stops taking deliveries until the socket drains.
const HIGH_WATER_BYTES: usize = 64 * 1024;
/// Deliveries taken from the mailbox in one go (then output is flushed).
const MAILBOX_BATCH: usize = 256;
/// Read buffer growth step.
const READ_CHUNK: usize = 4096;
/// One delivery in this many records the publish-to-deliver latency.
const LATENCY_SAMPLE: u8 = 64;
/// How long a takeover waits for the old connection to finish closing.
const TAKEOVER_WAIT: Duration = Duration::from_secs(10);
/// How long the final DISCONNECT may take to write.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// Why a connection closed. Every close has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The client sent DISCONNECT; `will` is 5.0 reason 0x04.
    ClientDisconnect {
        will: bool,
    },
    /// The client closed the socket without DISCONNECT.
    PeerClosed,
    /// A read or write failed.
    Io,
    /// A malformed packet or a protocol violation, with its 5.0 reason code.
    Protocol(u8),
    KeepAliveTimeout,
    Takeover,
    SlowConsumer,
    Shutdown,
    /// No CONNECT within `connect_timeout_secs`.
    ConnectTimeout,
    /// The store failed to make a QoS 1/2 message durable (3.x, which has
    /// no failure code to acknowledge with).
    StoreFailed,
}

impl Close {
    /// The one place close reasons become 5.0 DISCONNECT reason codes.
    pub fn reason_code(self) -> Option<u8> {
        match self {
            Close::ClientDisconnect { .. }
            | Close::PeerClosed
            | Close::Io
            | Close::ConnectTimeout => None,
            Close::Protocol(code) => Some(code),
            Close::KeepAliveTimeout => Some(reason::KEEP_ALIVE_TIMEOUT),
            Close::Takeover => Some(reason::SESSION_TAKEN_OVER),
            Close::SlowConsumer => Some(reason::QUOTA_EXCEEDED),
            Close::Shutdown => Some(reason::SERVER_SHUTTING_DOWN),
            Close::StoreFailed => Some(reason::UNSPECIFIED_ERROR),
        }
    }

    /// Whether the will is published [MQTT-3.1.2-8], [MQTT-3.14.4-3].
    fn publishes_will(self) -> bool {
        !matches!(self, Close::ClientDisconnect { will: false })
    }

    /// A bounded label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Close::ClientDisconnect { .. } => "client_disconnect",
            Close::PeerClosed => "peer_closed",
            Close::Io => "io_error",
            Close::Protocol(_) => "protocol_error",
            Close::KeepAliveTimeout => "keep_alive_timeout",
            Close::Takeover => "takeover",
            Close::SlowConsumer => "slow_consumer",
            Close::Shutdown => "shutdown",
            Close::ConnectTimeout => "connect_timeout",
            Close::StoreFailed => "store_failed",
        }
    }

    /// Index in [`crate::stats::CLOSE_REASONS`].
    pub fn index(self) -> usize {
        match self {
            Close::ClientDisconnect { .. } => 0,
            Close::PeerClosed => 1,
            Close::Io => 2,
            Close::Protocol(_) => 3,
            Close::KeepAliveTimeout => 4,
            Close::Takeover => 5,
            Close::SlowConsumer => 6,
            Close::Shutdown => 7,
            Close::ConnectTimeout => 8,
            Close::StoreFailed => 9,
        }
    }
}

impl From<DecodeError> for Close {
    fn from(e: DecodeError) -> Self {
        Close::Protocol(e.reason_code())
    }
}

/// An outbound QoS 1/2 message awaiting its acknowledgement.
#[derive(Debug)]
struct Inflight {
    delivery: Delivery,
    /// Store sequence number, or the local one for non-persistent sessions.
    seq: u64,
    /// The entry is in the store's queue and must be acknowledged there.
    stored: bool,
    /// QoS 2: PUBREC received and PUBREL sent; waiting for PUBCOMP.
    pubrec: bool,
}

/// The rest of a packet's handling that waits (see `Connection::on_packet`).
type PacketWork<'a> = Pin<Box<dyn Future<Output = Result<(), Close>> + Send + 'a>>;

/// Which acknowledgement a [`PendingAck`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckKind {
    /// PUBACK.
    Ack,
    /// PUBREC.
    Rec,
    /// PUBCOMP.
    Comp,
}

/// An acknowledgement waiting for its durable effects to be synced.
#[derive(Debug)]
struct PendingAck {
    kind: AckKind,
    packet_id: u16,
    /// Reason code to send on success (5.0).
    code: u8,
    ticket: Ticket,
    /// The store was healthy when the message was taken.
    healthy: bool,
}

/// Serves one accepted TCP connection until it closes: over the socket
/// itself, no extra copy.
///
/// Like [`serve_io`], the connection is set up before the returned future
/// first runs, so the future carries it once instead of also keeping the
/// arguments it was built from.
pub fn serve(
    broker: ConnSlot,
    stream: TcpStream,
    origin: ClientOrigin,
) -> impl Future<Output = ()> + Send {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(peer = %origin.peer, error = %e, "set_nodelay failed");
    }
    serve_io(broker, stream, origin)
}

/// Serves one connection over any transport until it closes. Every
/// transport shares this session logic. The transport is not split into
/// halves: reads and writes are polled from the one task, so no shared
/// allocation is needed to split it.
pub fn serve_io<T>(broker: ConnSlot, io: T, origin: ClientOrigin) -> impl Future<Output = ()> + Send
where
    T: TransportRead + TransportWrite,
{
    let link = Arc::new(ConnLink::new(broker.next_epoch(), &broker.config.limits));
    let mut conn = Connection {
        broker,
        io,
        handle: None,
        link,
        busy: None,
        peer: Peer::from(origin.peer),
        extra: Some(Box::new(Extra {
            origin: Some(origin),
            ..Extra::default()
        })),
        next_seq: 1,
        client_max_packet: u32::MAX,
        acl_generation: u32::MAX,
        keep_alive: 0,
        client_receive_max: u16::MAX,
        version: ProtocolVersion::V3_1_1,
        persistent: false,
        deliveries: 0,
    };
    // One level of future for the whole life of the connection: the
    // phases that hold more state (connect, a waiting SUBSCRIBE, the
    // closing handshake) are boxed while they run, so the task of an idle
    // connection is this struct and a few words.
    async move {
        let close = match Box::pin(conn.start()).await {
            Err(close) => close,
            Ok(()) => loop {
                let wake = std::future::poll_fn(|cx| conn.poll_wake(cx)).await;
                let waited = match conn.on_wake(wake) {
                    Ok(None) => Ok(()),
                    Ok(Some(packet)) => Box::pin(conn.wait_then_read(packet)).await,
                    Err(close) => Err(close),
                };
                if let Err(close) = waited {
                    break close;
                }
                if let Err(close) = conn.write_now() {
                    break close;
                }
            },
        };
        Box::pin(conn.finish(close)).await;
    }
}

/// One connection's state. What every connection needs is kept inline;
/// what only a busy one needs (messages in flight, queues, pending
/// acknowledgements, backpressure) lives in [`Busy`], allocated on first
/// use and dropped again once it is all empty, and what only some
/// connections have (a will, a login, a persistent session) lives in
/// [`Extra`], so an idle connection is small: this struct is most of its
/// task, which tokio rounds up to a multiple of 128 bytes.
struct Connection<T> {
    /// The broker, through this connection's place in the connection count.
    broker: ConnSlot,
    io: T,
    /// The session, once CONNECT is accepted (it holds the client id).
    handle: Option<Arc<SessionHandle>>,
    /// Mailbox, signals and epoch of this connection, shared with its
    /// session (the router's way in) and with paused publishers.
    link: Arc<ConnLink>,
    /// State of a busy connection; `None` while all of it is empty.
    busy: Option<Box<Busy>>,
    /// What only some connections have; `None` when none of it is set.
    extra: Option<Box<Extra>>,
    /// The client's address.
    peer: Peer,
    /// Next local sequence number (non-persistent sessions).
    next_seq: u64,
    /// Client's Maximum Packet Size: we never send more [MQTT-3.1.2-24].
    client_max_packet: u32,
    /// The security generation (truncated) the ACL in `extra` is from; a
    /// reload bumps it and the ACL is looked up again.
    acl_generation: u32,
    /// Negotiated keep alive in seconds (0: none).
    keep_alive: u16,
    /// Client's Receive Maximum: our outbound in-flight window.
    client_receive_max: u16,
    version: ProtocolVersion,
    /// The session is in the store; QoS 1/2 deliveries carry store seqs.
    persistent: bool,
    /// Deliveries written, for sampling the latency histogram.
    deliveries: u8,
}

/// What a connection has only when it needs it: the listener's view of the
/// client until login, a will, a login, an ACL, a session that outlives
/// the connection.
#[derive(Default)]
struct Extra {
    /// The listener's view of the client (address, anonymous policy,
    /// certificate username), until login has used it.
    origin: Option<ClientOrigin>,
    will: Option<codec::Will>,
    /// The username the client logged in as (None: anonymous).
    username: Option<Arc<str>>,
    /// The ACL in force (None: everything is allowed).
    acl: Option<Arc<Acl>>,
    /// Session expiry in seconds after close (0: ends with the connection).
    session_expiry: u32,
    /// Store deliveries up to this seq were loaded at resume; pushes of
    /// them are duplicates and ignored.
    loaded_up_to: u64,
    /// Stored entries up to this seq may have been sent by an earlier
    /// connection: they go out with DUP=1.
    resend_up_to: u64,
    /// Highest stored seq this connection wrote (handed back to the
    /// session when it closes).
    sent_up_to: u64,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.origin.is_none()
            && self.will.is_none()
            && self.username.is_none()
            && self.acl.is_none()
            && self.session_expiry == 0
            && self.loaded_up_to == 0
            && self.resend_up_to == 0
            && self.sent_up_to == 0
    }
}

/// A client's address in 16 bytes instead of `SocketAddr`'s 32: IPv4
/// inline, IPv6 boxed.
enum Peer {
    V4(std::net::SocketAddrV4),
    V6(Box<std::net::SocketAddrV6>),
}

impl From<SocketAddr> for Peer {
    fn from(a: SocketAddr) -> Peer {
        match a {
            SocketAddr::V4(a) => Peer::V4(a),
            SocketAddr::V6(a) => Peer::V6(Box::new(a)),
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::V4(a) => a.fmt(f),
            Peer::V6(a) => a.fmt(f),
        }
    }
}

/// The part of a connection's state that is empty while it is idle.
#[derive(Default)]
struct Busy {
    /// Bytes read and not yet decoded.
    rbuf: BytesMut,
    /// Encoded output not yet written: every packet goes here and is written
    /// in as few syscalls as the socket allows (coalescing).
    wbuf: BytesMut,
    /// Inbound topic aliases (5.0).
    topic_aliases: HashMap<u16, ByteString>,
    /// Inbound QoS 2 packet ids received and not yet released [MQTT-4.3.3-?].
    inbound_qos2: HashSet<u16>,
    /// Outbound in flight by sequence number (resend order).
    inflight: BTreeMap<u64, Inflight>,
    /// Packet id → sequence number of what is in flight.
    inflight_by_id: HashMap<u16, u64>,
    /// Outbound QoS 1/2 waiting for room in the window.
    pending: VecDeque<Delivery>,
    /// Deliveries taken from the mailbox and not yet handled (at most
    /// MAILBOX_BATCH are handled per turn of the loop).
    inbox: VecDeque<Delivery>,
    /// Acknowledgements waiting for their tickets, in PUBLISH order.
    acks: VecDeque<PendingAck>,
    /// QoS 1 PUBLISH packets not yet acknowledged (for Receive Maximum).
    pending_pubacks: usize,
    /// Congested connections this publisher waits for before reading on.
    paused: Vec<Congestion>,
    /// When `paused` became non-empty: past `slow_consumer_timeout_secs`
    /// the connection still congested is a slow consumer.
    paused_since: Option<tokio::time::Instant>,
    /// The wait for `paused` to drain, once started.
    drain_wait: Option<DrainWait>,
}

/// Waits for congested connections to drain; `Err(i)` names the one still
/// congested at the deadline.
type DrainWait = Pin<Box<dyn Future<Output = Result<(), usize>> + Send>>;

impl Busy {
    fn is_empty(&self) -> bool {
        self.rbuf.is_empty()
            && self.wbuf.is_empty()
            && self.topic_aliases.is_empty()
            && self.inbound_qos2.is_empty()
            && self.inflight.is_empty()
            && self.inflight_by_id.is_empty()
            && self.pending.is_empty()
            && self.inbox.is_empty()
            && self.acks.is_empty()
            && self.pending_pubacks == 0
            && self.paused.is_empty()
            && self.drain_wait.is_none()
    }
}

impl std::fmt::Debug for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Busy")
            .field("inflight", &self.inflight.len())
            .field("pending", &self.pending.len())
            .field("acks", &self.acks.len())
            .field("paused", &self.paused.len())
            .finish_non_exhaustive()
    }
}

/// What one turn of the connection's loop leaves: a packet to handle by
/// waiting (`Ok(Some)`), nothing (`Ok(None)`), or the reason to close.
type Step = Result<Option<Box<Packet>>, Close>;

/// What woke the connection's loop, in the order they are looked at.
enum Wake {
    Kicked(Kick),
    Wrote(std::io::Result<usize>),
    Durable(Result<(), StoreError>),
    Read(std::io::Result<usize>),
    Drained(Result<(), usize>),
    Mail,
}

impl<T> std::ops::Drop for Connection<T> {
    fn drop(&mut self) {
        // Also when the task is aborted: a takeover waiting for this
        // connection goes on.
        self.link.finish();
    }
}

impl<T: TransportRead + TransportWrite> Connection<T> {
    fn v5(&self) -> bool {
        self.version.is_v5()
    }

    /// The client id ("" before the session is attached).
    fn client_id(&self) -> &str {
        self.handle.as_ref().map_or("", |h| &h.client_id)
    }

    /// What only some connections have, allocated when first needed.
    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    fn username(&self) -> Option<&Arc<str>> {
        self.extra.as_ref()?.username.as_ref()
    }

    fn session_expiry(&self) -> u32 {
        self.extra.as_ref().map_or(0, |e| e.session_expiry)
    }

    fn set_session_expiry(&mut self, secs: u32) {
        if secs != 0 || self.extra.is_some() {
            self.extra().session_expiry = secs;
        }
    }

    fn loaded_up_to(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.loaded_up_to)
    }

    fn resend_up_to(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.resend_up_to)
    }

    fn sent_up_to(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.sent_up_to)
    }

    fn limits(&self) -> &crate::config::Limits {
        &self.broker.config.limits
    }

    /// Queues a packet for writing.
    fn send(&mut self, packet: &Packet) {
        let version = self.version;
        let wbuf = &mut self.busy().wbuf;
        let before = wbuf.len();
        codec::encode(packet, version, wbuf);
        let bytes = wbuf.len() - before;
        let i = packet_index(packet);
        let stats = &self.broker.stats;
        Stats::inc(&stats.packets_sent[i]);
        Stats::add(&stats.bytes_sent[i], bytes as u64);
    }

    /// Counts a packet received, with its size on the wire.
    fn count_in(&self, packet: &Packet, bytes: usize) {
        let i = packet_index(packet);
        let stats = &self.broker.stats;
        Stats::inc(&stats.packets_received[i]);
        Stats::add(&stats.bytes_received[i], bytes as u64);
    }

    /// Writes everything queued.
    async fn flush(&mut self) -> std::io::Result<()> {
        let Some(busy) = self.busy.as_mut() else {
            return Ok(());
        };
        while !busy.wbuf.is_empty() {
            self.io.write_buf(&mut busy.wbuf).await?;
        }
        Ok(())
    }

    async fn read_more(&mut self) -> Result<(), Close> {
        let (io, busy) = (&mut self.io, &mut self.busy);
        match std::future::poll_fn(|cx| Self::poll_read_into(io, busy, cx)).await {
            Ok(0) => Err(Close::PeerClosed),
            Ok(_) => Ok(()),
            Err(_) => Err(Close::Io),
        }
    }

    /// From accept to a connection ready for its main loop: the CONNECT
    /// within `connect_timeout_secs` (or until shutdown begins), the
    /// session, CONNACK.
    async fn start(&mut self) -> Result<(), Close> {
        let timeout = Duration::from_secs(self.limits().connect_timeout_secs);
        let mut shutdown = self.broker.shutdown.subscribe();
        let connect = tokio::select! {
            read = tokio::time::timeout(timeout, self.read_connect()) => match read {
                Ok(read) => read?,
                Err(_) => {
                    Stats::inc(&self.broker.stats.connect_timeouts);
                    return Err(Close::ConnectTimeout);
                }
            },
            _ = shutdown.wait_for(|s| *s) => return Err(Close::Shutdown),
        };
        self.on_connect(connect).await?;
        // What is left of the login (the listener's view of the client)
        // is no longer needed: a connection with nothing else extra keeps
        // no allocation for it.
        if let Some(extra) = &mut self.extra {
            extra.origin = None;
            if extra.is_empty() {
                self.extra = None;
            }
        }
        // A shutdown that began before this connection was linked to its
        // session did not kick it: it sees the flag here (the link was
        // made under the registry lock that shutdown takes to kick).
        if *self.broker.shutdown.borrow() {
            return Err(Close::Shutdown);
        }
        self.hear_client();
        Ok(())
    }

    /// Reads the first packet, which must be CONNECT [MQTT-3.1.0-1].
    async fn read_connect(&mut self) -> Result<Box<Connect>, Close> {
        let max = self.limits().max_packet_size_bytes;
        loop {
            let rbuf = &mut self.busy().rbuf;
            let before = rbuf.len();
            let decoded = codec::decode(rbuf, None, max);
            let bytes = before - rbuf.len();
            match decoded {
                Ok(Some(Packet::Connect(c))) => {
                    let packet = Packet::Connect(c);
                    self.count_in(&packet, bytes);
                    let Packet::Connect(c) = packet else {
                        unreachable!("just built as CONNECT")
                    };
                    return Ok(c);
                }
                Ok(Some(_)) => return Err(self.protocol_error(reason::PROTOCOL_ERROR)),
                Ok(None) => self.read_more().await?,
                Err(DecodeError::UnsupportedProtocol { level, .. }) => {
                    // [MQTT-3.1.2-2]: CONNACK 0x84 (5.0) / return code 1, then close.
                    let code = if level == 5 {
                        self.version = ProtocolVersion::V5;
                        reason::UNSUPPORTED_PROTOCOL_VERSION
                    } else {
                        connack_v3::UNACCEPTABLE_PROTOCOL_VERSION
                    };
                    self.send_connack_refusal(code);
                    return Err(self.protocol_error(reason::UNSUPPORTED_PROTOCOL_VERSION));
                }
                Err(e) => return Err(self.protocol_error(e.reason_code())),
            }
        }
    }

    fn protocol_error(&self, code: u8) -> Close {
        Stats::inc(&self.broker.stats.protocol_errors);
        Close::Protocol(code)
    }

    fn send_connack_refusal(&mut self, code: u8) {
        self.send(&Packet::ConnAck(ConnAck {
            session_present: false,
            code,
            properties: ConnAckProperties::default(),
        }));
    }

    /// Refuses a CONNECT with the 5.0 reason code or the 3.x return code.
    fn refuse(&mut self, v5_code: u8, v3_code: u8) -> Close {
        let code = if self.v5() { v5_code } else { v3_code };
        self.send_connack_refusal(code);
        Close::Protocol(v5_code)
    }

    async fn on_connect(&mut self, c: Box<Connect>) -> Result<(), Close> {
        let c = *c;
        self.version = c.protocol;
        let cfg = Arc::clone(&self.broker.config);
        if c.protocol == ProtocolVersion::V3_1 && !cfg.mqtt.allow_mqtt_3_1 {
            return Err(self.refuse(
                reason::UNSUPPORTED_PROTOCOL_VERSION,
                connack_v3::UNACCEPTABLE_PROTOCOL_VERSION,
            ));
        }
        // Enhanced authentication is not configured: any method is refused
        // [MQTT-4.12.0-1].
        if c.properties.authentication_method.is_some() {
            return Err(self.refuse(
                reason::BAD_AUTHENTICATION_METHOD,
                connack_v3::NOT_AUTHORIZED,
            ));
        }
        // Client identifier [MQTT-3.1.3-6..9].
        let mut assigned = None;
        let client_id: Arc<str> = if c.client_id.is_empty() {
            let refuse = match c.protocol {
                ProtocolVersion::V3_1 => true,
                ProtocolVersion::V3_1_1 => !c.clean_start,
                ProtocolVersion::V5 => false,
            };
            if refuse {
                return Err(self.refuse(
                    reason::CLIENT_IDENTIFIER_NOT_VALID,
                    connack_v3::IDENTIFIER_REJECTED,
                ));
            }
            let id = format!("herald-{:x}-{:x}", now_ms(), self.link.epoch);
            assigned = Some(ByteString::from(id.as_str()));
            Arc::from(id.as_str())
        } else {
            Arc::from(&*c.client_id)
        };
        // The will topic must be a valid topic name [MQTT-3.1.3-11].
        if let Some(w) = &c.will {
            if topic::validate_topic_name(&w.topic, &self.broker.topic_limits()).is_err() {
                return Err(self.refuse(reason::TOPIC_NAME_INVALID, connack_v3::NOT_AUTHORIZED));
            }
        }
        self.login(&c, &client_id).await?;
        if self.v5() {
            let p = &c.properties;
            self.client_receive_max = p.receive_maximum.unwrap_or(u16::MAX);
            self.client_max_packet = p.maximum_packet_size.unwrap_or(u32::MAX);
        }
        let max_expiry = cfg.mqtt.session_expiry_max_secs;
        let (session_expiry, expiry_capped) = match c.protocol {
            ProtocolVersion::V5 => {
                let asked = c.properties.session_expiry_interval.unwrap_or(0);
                (asked.min(max_expiry), asked > max_expiry)
            }
            // 3.x: Clean Session 0 keeps the session with no expiry.
            _ if c.clean_start => (0, false),
            _ => (max_expiry, false),
        };
        self.set_session_expiry(session_expiry);
        let mut server_keep_alive = None;
        self.keep_alive = c.keep_alive;
        let cap = cfg.mqtt.keep_alive_max_secs;
        if self.v5() && cap > 0 && (c.keep_alive == 0 || c.keep_alive > cap) {
            self.keep_alive = cap;
            server_keep_alive = Some(cap);
        }
        if c.will.is_some() {
            self.extra().will.clone_from(&c.will);
        }

        let (handle, resumed) = self.attach(&client_id, c.clean_start).await?;
        if resumed.is_some() {
            let sent = handle.state.lock().sent_up_to;
            if sent > 0 {
                let extra = self.extra();
                extra.resend_up_to = sent;
                extra.sent_up_to = sent;
            }
        }
        let mut session_present = false;
        if session_expiry > 0 || resumed.is_some() {
            let (outcome, ticket) = self.broker.store.submit_one(Command::Open {
                client_id: client_id.to_string(),
                epoch: self.link.epoch,
                clean_start: c.clean_start,
                protocol_level: c.protocol.level(),
                expiry_secs: session_expiry,
                will: self
                    .extra
                    .as_ref()
                    .and_then(|e| e.will.as_ref())
                    .map(stored_will),
                username: self.username().map(|u| u.to_string()),
                now_ms: now_ms(),
            });
            if ticket.wait().await.is_err() {
                // The store cannot keep the session: refuse it, and let go
                // of the handle (a session that existed stays, offline).
                if resumed.is_some() {
                    let mut st = handle.state.lock();
                    if st.link.as_ref().is_some_and(|l| l.epoch == self.link.epoch) {
                        st.link = None;
                    }
                } else {
                    self.broker.end_session(&handle);
                }
                return Err(self.refuse(reason::SERVER_UNAVAILABLE, connack_v3::SERVER_UNAVAILABLE));
            }
            if let Outcome::Opened {
                session_present: present,
                session,
            } = outcome
            {
                session_present = present && !c.clean_start;
                self.load_session(&session);
            }
            self.persistent = true;
            handle.state.lock().persistent = true;
        }
        self.handle = Some(Arc::clone(&handle));

        let mut props = ConnAckProperties::default();
        if self.v5() {
            props.receive_maximum = Some(self.limits().max_inflight_messages);
            props.maximum_packet_size = Some(self.limits().max_packet_size_bytes);
            props.topic_alias_maximum = Some(cfg.mqtt.topic_alias_maximum);
            props.assigned_client_identifier = assigned;
            props.server_keep_alive = server_keep_alive;
            if expiry_capped {
                props.session_expiry_interval = Some(session_expiry);
            }
            props.retain_available = Some(1);
            props.wildcard_subscription_available = Some(1);
            props.subscription_identifiers_available = Some(1);
            props.shared_subscription_available = Some(1);
        }
        self.send(&Packet::ConnAck(ConnAck {
            session_present,
            code: 0,
            properties: props,
        }));
        debug!(client_id = %client_id, peer = %self.peer, version = ?self.version, session_present, "connected");
        // Resend what was in flight, then fill the window [MQTT-4.4.0-1].
        self.resend_inflight();
        self.fill_window();
        Ok(())
    }

    /// Authenticates the client and checks its will against the ACL.
    async fn login(&mut self, c: &Connect, client_id: &str) -> Result<(), Close> {
        let Some(origin) = self.extra.as_mut().and_then(|e| e.origin.take()) else {
            // CONNECT is handled once: a second one never gets here.
            return Err(self.protocol_error(reason::PROTOCOL_ERROR));
        };
        let security = &self.broker.security;
        let login = security
            .login(&origin, c.username.as_deref(), c.password.as_deref())
            .await;
        let stats = &self.broker.stats;
        let user = match login {
            Ok(user) => user,
            Err(e) => {
                debug!(peer = %self.peer, transport = origin.transport, reason = ?e, "login refused");
                let (counter, v5, v3) = match e {
                    // [MQTT-3.1.4-2]: a refused CONNECT gets a CONNACK
                    // with a failure code, then the connection closes.
                    LoginError::BadCredentials => (
                        &stats.logins_failed_bad_credentials,
                        reason::BAD_USER_NAME_OR_PASSWORD,
                        connack_v3::BAD_USER_NAME_OR_PASSWORD,
                    ),
                    LoginError::NotAuthorized => (
                        &stats.logins_failed_not_authorized,
                        reason::NOT_AUTHORIZED,
                        connack_v3::NOT_AUTHORIZED,
                    ),
                    LoginError::RateLimited => (
                        &stats.logins_failed_rate_limited,
                        reason::CONNECTION_RATE_EXCEEDED,
                        connack_v3::NOT_AUTHORIZED,
                    ),
                };
                Stats::inc(counter);
                return Err(self.refuse(v5, v3));
            }
        };
        if user.is_some() {
            self.extra().username = user;
        }
        if let Some(w) = &c.will {
            if !self.acl_allows_as(client_id, &w.topic, true) {
                Stats::inc(&self.broker.stats.acl_denied_publish);
                return Err(self.refuse(reason::NOT_AUTHORIZED, connack_v3::NOT_AUTHORIZED));
            }
        }
        Ok(())
    }

    /// Looks the ACL up again if a reload changed it since the last look.
    fn refresh_acl(&mut self) {
        let generation = self.broker.security.generation() as u32;
        if self.acl_generation != generation {
            self.acl_generation = generation;
            let acl = self.broker.security.acl();
            if acl.is_some() || self.extra.is_some() {
                self.extra().acl = acl;
            }
        }
    }

    /// The ACL in force (None: everything is allowed), with the username
    /// it is checked for.
    fn acl(&self) -> Option<(&Acl, Option<&str>)> {
        let extra = self.extra.as_ref()?;
        Some((extra.acl.as_deref()?, extra.username.as_deref()))
    }

    /// Whether the ACL lets this client write (or read) `topic`.
    fn acl_allows(&mut self, topic: &str, write: bool) -> bool {
        self.refresh_acl();
        self.acl()
            .is_none_or(|(acl, user)| acl.check(user, self.client_id(), topic, write))
    }

    /// Whether the ACL lets client `client_id` (not attached yet) write
    /// `topic`.
    fn acl_allows_as(&mut self, client_id: &str, topic: &str, write: bool) -> bool {
        self.refresh_acl();
        self.acl()
            .is_none_or(|(acl, user)| acl.check(user, client_id, topic, write))
    }

    /// Whether the ACL lets this client subscribe to `filter`.
    fn acl_allows_subscribe(&mut self, filter: &str) -> bool {
        self.refresh_acl();
        self.acl()
            .is_none_or(|(acl, user)| acl.check_subscribe(user, self.client_id(), filter))
    }

    /// Takes the session of `client_id`: kicks and waits for a live owner,
    /// ends an old session when `clean_start`, and links this connection.
    /// Returns the handle and, when an existing session was kept, `Some(())`.
    /// With client ids bound to usernames, a session another username
    /// opened is refused; the check and the claim are one step under the
    /// registry lock, so two logins racing for a new client id cannot both
    /// pass.
    async fn attach(
        &mut self,
        client_id: &Arc<str>,
        clean_start: bool,
    ) -> Result<(Arc<SessionHandle>, Option<()>), Close> {
        let epoch = self.link.epoch;
        let bound = self.broker.security.binds_client_ids();
        for _ in 0..8 {
            let mut wait_for = None;
            let mut discard = None;
            {
                let mut registry = self.broker.registry.lock(client_id);
                match registry.get(client_id) {
                    Some(h) => {
                        let mut st = h.state.lock();
                        if bound && st.owner.as_ref() != self.username() {
                            drop(st);
                            drop(registry);
                            Stats::inc(&self.broker.stats.logins_failed_not_authorized);
                            debug!(peer = %self.peer, client_id = %client_id, "client id belongs to another user");
                            return Err(
                                self.refuse(reason::NOT_AUTHORIZED, connack_v3::NOT_AUTHORIZED)
                            );
                        }
                        if let Some(link) = &st.link {
                            link.kick(Kick::Takeover);
                            Stats::inc(&self.broker.stats.takeovers);
                            wait_for = Some(Arc::clone(link));
                        } else if clean_start {
                            // A new connection for the client id: a delayed
                            // will of the old session is not published
                            // [MQTT-3.1.2-8] (schedule_will checks the epoch).
                            st.epoch = epoch;
                            discard = Some(Arc::clone(h));
                        } else {
                            st.link = Some(Arc::clone(&self.link));
                            st.epoch = epoch;
                            st.owner = self.username().cloned();
                            return Ok((Arc::clone(h), Some(())));
                        }
                    }
                    None => {
                        let h = SessionHandle::new(Arc::clone(client_id));
                        {
                            let mut st = h.state.lock();
                            st.link = Some(Arc::clone(&self.link));
                            st.epoch = epoch;
                            st.owner = self.username().cloned();
                        }
                        registry.insert(Arc::clone(&h));
                        return Ok((h, None));
                    }
                }
            }
            if let Some(h) = discard {
                self.broker.end_session(&h);
            }
            if let Some(old) = wait_for {
                let _ = tokio::time::timeout(TAKEOVER_WAIT, old.finished()).await;
            }
        }
        Err(self.refuse(reason::SERVER_BUSY, connack_v3::SERVER_UNAVAILABLE))
    }

    /// Bytes of a delivery that left the queue (written, dropped or
    /// ignored): wakes paused publishers when the queue has drained.
    fn release(&self, bytes: usize) {
        self.link.release(bytes);
    }

    /// A delivery that did not come through the mailbox (resumed queue,
    /// retained on subscribe) is counted like one.
    fn deliver_counted(&mut self, d: Delivery) {
        self.link
            .queued_bytes
            .fetch_add(d.msg.size(), Ordering::AcqRel);
        self.deliver(d);
    }

    /// Restores in-flight and queued messages of a resumed session.
    fn load_session(&mut self, s: &SessionRecord) {
        let loaded = s.next_seq.saturating_sub(1);
        if loaded > 0 {
            self.extra().loaded_up_to = loaded;
        }
        if !s.inbound_qos2.is_empty() {
            self.busy().inbound_qos2 = s.inbound_qos2.iter().copied().collect();
        }
        let now = now_ms();
        for entry in s.queue.values() {
            if entry.message.is_expired(now) {
                let _ = self.broker.store.submit_one(Command::Ack {
                    client_id: self.client_id().to_string(),
                    seq: entry.seq,
                });
                self.broker.stats.dropped(Drop::Expired);
                continue;
            }
            let delivery = Delivery {
                msg: Arc::new(msg_from_stored(&entry.message)),
                qos: QoS::from_u8(entry.qos).unwrap_or(QoS::AtLeastOnce),
                retain: entry.retain,
                subscription_ids: entry.subscription_ids.clone(),
                seq: Some(entry.seq),
            };
            if entry.pubrec_received {
                // Only PUBREL remains to be (re)sent.
                Stats::inc(&self.broker.stats.inflight);
                let busy = self.busy();
                busy.inflight_by_id
                    .insert(packet_id_for(entry.seq), entry.seq);
                busy.inflight.insert(
                    entry.seq,
                    Inflight {
                        delivery,
                        seq: entry.seq,
                        stored: true,
                        pubrec: true,
                    },
                );
            } else {
                self.link
                    .queued_bytes
                    .fetch_add(delivery.msg.size(), Ordering::AcqRel);
                self.busy().pending.push_back(delivery);
            }
        }
    }

    /// Resends every in-flight message: PUBLISH with DUP, or PUBREL.
    fn resend_inflight(&mut self) {
        let Some(busy) = &self.busy else {
            return;
        };
        let entries: Vec<(u64, bool)> = busy.inflight.iter().map(|(s, i)| (*s, i.pubrec)).collect();
        for (seq, pubrec) in entries {
            if pubrec {
                self.send(&Packet::PubRel(PubResp {
                    packet_id: packet_id_for(seq),
                    ..PubResp::default()
                }));
            } else if let Some(d) = self
                .busy
                .as_ref()
                .and_then(|b| b.inflight.get(&seq))
                .map(|i| i.delivery.clone())
            {
                self.write_publish(&d, Some(packet_id_for(seq)), true);
            }
        }
    }

    /// Handles what woke the connection. `Ok(Some(packet))`: a packet that
    /// waits (for the store) must be handled by [`Self::waiting_work`]
    /// before the rest of the input.
    fn on_wake(&mut self, wake: Wake) -> Step {
        let (paused, acks_full) = self.read_blocked();
        match wake {
            Wake::Kicked(why) => Err(match why {
                Kick::Takeover => Close::Takeover,
                Kick::SlowConsumer => Close::SlowConsumer,
                Kick::KeepAlive => {
                    Stats::inc(&self.broker.stats.keep_alive_timeouts);
                    Close::KeepAliveTimeout
                }
                Kick::Shutdown | Kick::None => Close::Shutdown,
            }),
            Wake::Wrote(Ok(n)) => {
                let _ = self.busy().wbuf.split_to(n);
                Ok(None)
            }
            Wake::Wrote(Err(_)) | Wake::Read(Err(_)) => Err(Close::Io),
            // Acknowledgements whose durable effects are synced go out
            // before more input is taken.
            Wake::Durable(durable) => {
                self.settle_ready(durable)?;
                if !paused && acks_full {
                    return self.input_until_wait();
                }
                Ok(None)
            }
            Wake::Read(Ok(0)) => Err(Close::PeerClosed),
            Wake::Read(Ok(_)) => {
                self.hear_client();
                self.input_until_wait()
            }
            // Backpressure: this publisher waited for the connections
            // its QoS 1/2 messages congested; one that stayed congested
            // past `slow_consumer_timeout_secs` is disconnected as a
            // slow consumer.
            Wake::Drained(stuck) => {
                let busy = self.busy();
                if let Err(i) = stuck {
                    busy.paused[i].kick();
                }
                busy.paused.clear();
                busy.paused_since = None;
                // The client was not read meanwhile: its keep alive
                // counts from now.
                self.hear_client();
                self.input_until_wait()
            }
            Wake::Mail => {
                // Worked on outside `busy`, so that QoS 0 traffic does
                // not make the connection allocate its busy state.
                let mut inbox = self
                    .busy
                    .as_mut()
                    .map(|b| std::mem::take(&mut b.inbox))
                    .unwrap_or_default();
                self.link.take_all(&mut inbox);
                for _ in 0..MAILBOX_BATCH {
                    let Some(d) = inbox.pop_front() else {
                        break;
                    };
                    self.on_delivery(d);
                }
                // What is left of the inbox is taken next turn, after
                // the socket had its go.
                if !inbox.is_empty() {
                    self.busy().inbox = inbox;
                }
                Ok(None)
            }
        }
    }

    /// Writes what is ready now, without waiting for another turn, then
    /// gives back what an idle connection does not need: no buffer is held
    /// while a connection is idle (a busy connection reallocates per burst,
    /// not per packet, since reads and writes are batched).
    fn write_now(&mut self) -> Result<(), Close> {
        let Some(busy) = self.busy.as_mut() else {
            return Ok(());
        };
        if !busy.wbuf.is_empty() {
            match self.io.try_write_now(&busy.wbuf) {
                Ok(n) => {
                    let _ = busy.wbuf.split_to(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(Close::Io),
            }
        }
        if busy.is_empty() {
            self.busy = None;
        } else {
            if busy.wbuf.is_empty() && busy.wbuf.capacity() > 0 {
                busy.wbuf = BytesMut::new();
            }
            if busy.rbuf.is_empty() && busy.rbuf.capacity() > 0 {
                busy.rbuf = BytesMut::new();
            }
        }
        Ok(())
    }

    /// Looks at everything the loop waits for, in priority order, and
    /// returns the first that is ready. Every source shares the task's one
    /// waker: the link's signals (kick, keep alive, mail) through it, the
    /// socket and the front acknowledgement's ticket by being polled here,
    /// so an idle connection holds no future per source.
    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        let (paused, acks_full) = self.read_blocked();
        // Registered before the flags are read: a signal raised after the
        // read wakes the task again.
        self.link.register(cx.waker());
        let kick = self.link.kick_reason();
        if kick != Kick::None {
            return Poll::Ready(Wake::Kicked(kick));
        }
        let queued = self.busy.as_ref().map_or(0, |b| b.wbuf.len());
        if let Some(busy) = self.busy.as_mut().filter(|_| queued > 0) {
            if let Poll::Ready(r) = Pin::new(&mut self.io).poll_write(cx, &busy.wbuf) {
                return Poll::Ready(Wake::Wrote(r));
            }
        }
        let room = queued < HIGH_WATER_BYTES;
        if let Some(ack) = self.busy.as_mut().and_then(|b| b.acks.front_mut()) {
            if let Poll::Ready(r) = Pin::new(&mut ack.ticket).poll(cx) {
                return Poll::Ready(Wake::Durable(r));
            }
        }
        if room && !paused && !acks_full {
            if let Poll::Ready(r) = Self::poll_read_into(&mut self.io, &mut self.busy, cx) {
                return Poll::Ready(Wake::Read(r));
            }
        }
        if paused {
            let stall_limit = Duration::from_secs(self.limits().slow_consumer_timeout_secs);
            let busy = self.busy();
            let wait = busy.drain_wait.get_or_insert_with(|| {
                let since = busy.paused_since.unwrap_or_else(tokio::time::Instant::now);
                Box::pin(wait_drained(busy.paused.clone(), since + stall_limit))
            });
            if let Poll::Ready(r) = wait.as_mut().poll(cx) {
                busy.drain_wait = None;
                return Poll::Ready(Wake::Drained(r));
            }
        }
        if room {
            let inbox = self.busy.as_ref().is_some_and(|b| !b.inbox.is_empty());
            if inbox || self.link.take_mail_flag() {
                return Poll::Ready(Wake::Mail);
            }
        }
        Poll::Pending
    }

    /// Reads into the busy state's buffer; a connection without busy
    /// state reads into an empty buffer (which allocates nothing) and
    /// keeps it only when bytes came.
    fn poll_read_into(
        io: &mut T,
        busy: &mut Option<Box<Busy>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        let mut rbuf = busy
            .as_mut()
            .map(|b| std::mem::take(&mut b.rbuf))
            .unwrap_or_default();
        let read = io.poll_read_some(cx, &mut rbuf, READ_CHUNK);
        if rbuf.capacity() > 0 {
            busy.get_or_insert_with(Box::default).rbuf = rbuf;
        }
        read
    }

    /// The client was heard from (or its silence starts counting again):
    /// it may now stay silent for 1.5 × its keep alive [MQTT-3.1.2-24],
    /// which the broker's keep-alive sweep enforces.
    fn hear_client(&self) {
        if self.keep_alive > 0 {
            let period = u64::from(self.keep_alive) * 1500;
            self.link
                .set_keep_alive_deadline(self.broker.keep_alive_clock_ms() + period);
        }
    }

    /// The busy part of the state, allocated when first needed.
    fn busy(&mut self) -> &mut Busy {
        self.busy.get_or_insert_with(Box::default)
    }

    /// Why the client is not read now: paused for congested subscribers
    /// (backpressure), or as many acknowledgements waiting for the store
    /// as `max_inflight_messages` (3.x has no Receive Maximum to enforce
    /// this).
    fn read_blocked(&self) -> (bool, bool) {
        let acks_full = self.acks_len() >= usize::from(self.limits().max_inflight_messages);
        (self.is_paused(), acks_full)
    }

    fn is_paused(&self) -> bool {
        self.busy.as_ref().is_some_and(|b| !b.paused.is_empty())
    }

    fn acks_len(&self) -> usize {
        self.busy.as_ref().map_or(0, |b| b.acks.len())
    }

    fn inflight_len(&self) -> usize {
        self.busy.as_ref().map_or(0, |b| b.inflight.len())
    }

    /// Decodes and handles the packets already read, until the buffer has
    /// no complete packet or a publish paused this connection.
    /// Handles a packet that waits (for the store), then the rest of the
    /// input, and so on until none is complete or the connection is paused.
    async fn wait_then_read(&mut self, mut packet: Box<Packet>) -> Result<(), Close> {
        loop {
            self.waiting_work(*packet).await?;
            match self.input_until_wait()? {
                Some(next) => packet = next,
                None => return Ok(()),
            }
        }
    }

    /// Handles buffered packets until none is complete, the connection is
    /// paused, or one needs to wait (it is returned, to be handled by
    /// [`Self::waiting_work`] before the next). Synchronous, so that no
    /// decoded packet is kept in the connection's future.
    fn input_until_wait(&mut self) -> Result<Option<Box<Packet>>, Close> {
        let max_packet = self.limits().max_packet_size_bytes;
        let max_acks = usize::from(self.limits().max_inflight_messages);
        while !self.is_paused() && self.acks_len() < max_acks {
            let version = self.version;
            let Some(busy) = self.busy.as_mut() else {
                break;
            };
            let before = busy.rbuf.len();
            let decoded = codec::decode(&mut busy.rbuf, Some(version), max_packet);
            let bytes = before - busy.rbuf.len();
            match decoded {
                Ok(Some(packet)) => {
                    self.count_in(&packet, bytes);
                    if let Some(waiting) = self.on_packet(packet)? {
                        return Ok(Some(waiting));
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(self.protocol_error(e.reason_code())),
            }
        }
        Ok(None)
    }

    /// A delivery from the router.
    fn on_delivery(&mut self, d: Delivery) {
        if let Some(seq) = d.seq {
            if seq <= self.loaded_up_to() {
                self.release(d.msg.size());
                return;
            }
        }
        self.deliver(d);
    }

    /// Sends a message now (QoS 0, or QoS 1/2 with room in the window) or
    /// queues it behind the window.
    ///
    /// Every delivery here is counted in `queued_bytes` until it is written
    /// or dropped; QoS 1/2 ones are never dropped for want of room: the
    /// bound is kept by pausing their publishers (backpressure).
    fn deliver(&mut self, d: Delivery) {
        if !self.acl_allows(&d.msg.topic, false) {
            Stats::inc(&self.broker.stats.acl_denied_deliver);
            self.complete_stored(d.seq);
            return;
        }
        if d.msg.is_expired(Instant::now()) {
            self.broker.stats.dropped(Drop::Expired);
            self.complete_stored(d.seq);
            self.release(d.msg.size());
            return;
        }
        if d.qos == QoS::AtMostOnce {
            self.write_publish(&d, None, false);
            self.release(d.msg.size());
            return;
        }
        self.busy().pending.push_back(d);
        self.fill_window();
    }

    /// Moves queued QoS 1/2 messages into flight while the client's Receive
    /// Maximum allows [MQTT-4.9.0-2].
    fn fill_window(&mut self) {
        let window = usize::from(
            self.client_receive_max
                .min(self.limits().max_inflight_messages),
        );
        if self.busy.as_ref().is_none_or(|b| b.pending.is_empty()) {
            return;
        }
        while self.inflight_len() < window {
            let next_seq = self.next_seq;
            let busy = self.busy();
            let Some(front) = busy.pending.front() else {
                break;
            };
            let seq = match front.seq {
                Some(s) => s,
                None => next_seq,
            };
            let pid = packet_id_for(seq);
            if busy.inflight_by_id.contains_key(&pid) {
                // The id is still in use by a much older message: wait.
                break;
            }
            let Some(d) = busy.pending.pop_front() else {
                break;
            };
            self.release(d.msg.size());
            if d.seq.is_none() {
                self.next_seq += 1;
            }
            if d.msg.is_expired(Instant::now()) {
                self.broker.stats.dropped(Drop::Expired);
                self.complete_stored(d.seq);
                continue;
            }
            let stored = d.seq.is_some();
            // Resent with DUP=1 when a previous connection may have sent it.
            let dup = stored && seq <= self.resend_up_to();
            let sent = self.write_publish(&d, Some(pid), dup);
            if !sent {
                self.complete_stored(d.seq);
                continue;
            }
            if stored {
                let extra = self.extra();
                extra.sent_up_to = extra.sent_up_to.max(seq);
            }
            Stats::inc(&self.broker.stats.inflight);
            let busy = self.busy();
            busy.inflight_by_id.insert(pid, seq);
            busy.inflight.insert(
                seq,
                Inflight {
                    delivery: d,
                    seq,
                    stored,
                    pubrec: false,
                },
            );
        }
    }

    /// Forgets a stored queue entry that will not be delivered.
    fn complete_stored(&mut self, seq: Option<u64>) {
        if let (true, Some(seq)) = (self.persistent, seq) {
            let _ = self.broker.store.submit_one(Command::Ack {
                client_id: self.client_id().to_string(),
                seq,
            });
        }
    }

    /// Encodes a PUBLISH for this client. Returns false when it was dropped
    /// because it exceeds the client's Maximum Packet Size [MQTT-3.1.2-25].
    fn write_publish(&mut self, d: &Delivery, packet_id: Option<u16>, dup: bool) -> bool {
        let msg = &d.msg;
        let properties = if self.v5() {
            let mut p = msg.properties.get().clone();
            if let Some(at) = msg.expires_at {
                // The remaining lifetime, counted down [MQTT-3.3.2-6].
                let left = at.saturating_duration_since(Instant::now());
                p.message_expiry_interval = Some(left.as_secs().max(1) as u32);
            }
            p.subscription_identifiers = d.subscription_ids.clone();
            p
        } else {
            PublishProperties::default()
        };
        let packet = Packet::Publish(Publish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic: msg.topic.clone(),
            packet_id,
            properties,
            payload: msg.payload.clone(),
        });
        if self.client_max_packet != u32::MAX
            && codec::encoded_len(&packet, self.version) > self.client_max_packet as usize
        {
            self.broker.stats.dropped(Drop::TooLarge);
            return false;
        }
        self.send(&packet);
        // One delivery in LATENCY_SAMPLE is timed: recording every one cost
        // 5-28 % of throughput in the bench; a sample keeps the percentiles.
        self.deliveries = self.deliveries.wrapping_add(1);
        if self.deliveries.is_multiple_of(LATENCY_SAMPLE) {
            self.broker
                .deliver_latency
                .record(msg.received_at.elapsed().as_secs_f64());
        }
        Stats::inc(&self.broker.stats.messages_sent);
        Stats::inc(&self.broker.stats.delivered_by_qos[d.qos as usize]);
        true
    }

    /// Sends an acknowledgement, leaving out properties a client does not
    /// want or has no room for.
    fn ack(&mut self, kind: fn(PubResp) -> Packet, packet_id: u16, code: u8) {
        let code = if self.v5() { code } else { 0 };
        self.send(&kind(PubResp {
            packet_id,
            reason: code,
            properties: ReasonProperties::default(),
        }));
    }

    /// The handling of a packet that waits, boxed: its state never sizes
    /// the connection's own future.
    fn waiting_work(&mut self, packet: Packet) -> PacketWork<'_> {
        match packet {
            Packet::Subscribe(s) => Box::pin(self.on_subscribe(s)),
            Packet::Unsubscribe(u) => Box::pin(self.on_unsubscribe(u)),
            _ => Box::pin(std::future::ready(Ok(()))),
        }
    }

    /// Handles one packet; the rare ones that wait (SUBSCRIBE and
    /// UNSUBSCRIBE, for the store) are given back, for
    /// [`Self::waiting_work`].
    fn on_packet(&mut self, packet: Packet) -> Result<Option<Box<Packet>>, Close> {
        let done = match packet {
            Packet::Publish(p) => self.on_publish(p),
            Packet::PubAck(r) => {
                self.on_outbound_done(r.packet_id);
                Ok(())
            }
            Packet::PubRec(r) => self.on_pubrec(r),
            Packet::PubRel(r) => self.on_pubrel(r),
            Packet::PubComp(r) => {
                self.on_outbound_done(r.packet_id);
                Ok(())
            }
            Packet::Subscribe(_) | Packet::Unsubscribe(_) => return Ok(Some(Box::new(packet))),
            Packet::PingReq => {
                self.send(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => self.on_disconnect(d),
            // A second CONNECT is a protocol violation [MQTT-3.1.0-2].
            Packet::Connect(_) => Err(self.protocol_error(reason::PROTOCOL_ERROR)),
            // No enhanced authentication was started: AUTH is a protocol
            // error [MQTT-4.12.0-?].
            Packet::Auth(_) => Err(self.protocol_error(reason::PROTOCOL_ERROR)),
            // Server-to-client packets from a client.
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(self.protocol_error(reason::PROTOCOL_ERROR))
            }
        };
        done.map(|()| None)
    }

    fn on_publish(&mut self, mut p: Publish) -> Result<(), Close> {
        // Topic alias (5.0) [MQTT-3.3.2-7..12].
        if let Some(alias) = p.properties.topic_alias.take() {
            let max = self.broker.config.mqtt.topic_alias_maximum;
            if !self.v5() || alias == 0 || alias > max {
                return Err(self.protocol_error(reason::TOPIC_ALIAS_INVALID));
            }
            if p.topic.is_empty() {
                match self.busy.as_ref().and_then(|b| b.topic_aliases.get(&alias)) {
                    Some(t) => p.topic = t.clone(),
                    None => return Err(self.protocol_error(reason::PROTOCOL_ERROR)),
                }
            } else {
                self.busy().topic_aliases.insert(alias, p.topic.clone());
            }
        }
        if p.topic.is_empty() {
            return Err(self.protocol_error(reason::PROTOCOL_ERROR));
        }
        if topic::validate_topic_name(&p.topic, &self.broker.topic_limits()).is_err() {
            return Err(self.protocol_error(reason::TOPIC_NAME_INVALID));
        }
        if let Some(rt) = &p.properties.response_topic {
            // The Response Topic is a topic name [MQTT-3.3.2-14].
            if topic::validate_topic_name(rt, &self.broker.topic_limits()).is_err() {
                return Err(self.protocol_error(reason::PROTOCOL_ERROR));
            }
        }
        if !p.properties.subscription_identifiers.is_empty() {
            return Err(self.protocol_error(reason::PROTOCOL_ERROR));
        }
        let packet_id = p.packet_id.unwrap_or(0);
        if !self.acl_allows(&p.topic, true) {
            // Denied: 3.x drops it silently (acknowledged as usual so the
            // client does not resend); 5.0 answers QoS 1/2 with 0x87.
            Stats::inc(&self.broker.stats.acl_denied_publish);
            let code = if self.v5() {
                reason::NOT_AUTHORIZED
            } else {
                reason::SUCCESS
            };
            match p.qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => self.ack(Packet::PubAck, packet_id, code),
                QoS::ExactlyOnce => {
                    if !self.v5() {
                        // 3.x QoS 2 continues with PUBREL; remember the id
                        // so PUBCOMP answers it.
                        self.busy().inbound_qos2.insert(packet_id);
                    }
                    self.ack(Packet::PubRec, packet_id, code)
                }
            }
            return Ok(());
        }
        if p.qos != QoS::AtMostOnce && self.v5() {
            // The client must respect our Receive Maximum [MQTT-3.3.4-7].
            let (in_use, known) = self.busy.as_ref().map_or((0, false), |b| {
                (
                    b.inbound_qos2.len() + b.pending_pubacks,
                    b.inbound_qos2.contains(&packet_id),
                )
            });
            if in_use >= usize::from(self.limits().max_inflight_messages) && !known {
                return Err(self.protocol_error(reason::RECEIVE_MAXIMUM_EXCEEDED));
            }
        }
        if p.qos == QoS::ExactlyOnce
            && self
                .busy
                .as_ref()
                .is_some_and(|b| b.inbound_qos2.contains(&packet_id))
        {
            // A resent QoS 2 PUBLISH whose first copy was accepted: PUBREC
            // again, deliver nothing again [MQTT-4.3.3-9].
            return self.queue_ack(PendingAck {
                kind: AckKind::Rec,
                packet_id,
                code: reason::SUCCESS,
                ticket: Ticket::ready(),
                healthy: true,
            });
        }
        let expires_at = p
            .properties
            .message_expiry_interval
            .map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
        let handle_id = self.handle.as_ref().map(|h| Arc::as_ptr(h) as usize);
        let msg = Arc::new(Msg {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: MsgProperties::new(PublishProperties {
                topic_alias: None,
                subscription_identifiers: Vec::new(),
                message_expiry_interval: None,
                ..p.properties
            }),
            expires_at,
            origin: handle_id,
            received_at: Instant::now(),
        });
        let routed = self.broker.publish(msg, handle_id);
        if p.qos == QoS::AtMostOnce {
            return Ok(());
        }
        if !routed.congested.is_empty() {
            let busy = self.busy();
            if busy.paused.is_empty() {
                busy.paused_since = Some(tokio::time::Instant::now());
            }
            busy.paused.extend(routed.congested);
            // Started again over the whole list.
            busy.drain_wait = None;
            // The client is not read while paused: its silence does not
            // count until the wait is over.
            self.link.set_keep_alive_deadline(NO_DEADLINE);
        }
        let mut ticket = routed.ticket;
        if p.qos == QoS::ExactlyOnce {
            self.busy().inbound_qos2.insert(packet_id);
            if self.persistent {
                // Applied after the publish by the same ordered writer: its
                // ticket completes after the publish's, and fails with it.
                let (_, t) = self.broker.store.submit_one(Command::InboundQos2 {
                    client_id: self.client_id().to_string(),
                    packet_id,
                    received: true,
                });
                ticket = t;
            }
        }
        let code = if routed.refused {
            // A persistent subscriber's queue is full (the message was not
            // queued for it): say so where the protocol can.
            reason::QUOTA_EXCEEDED
        } else if routed.matched == 0 {
            reason::NO_MATCHING_SUBSCRIBERS
        } else {
            reason::SUCCESS
        };
        let kind = if p.qos == QoS::AtLeastOnce {
            AckKind::Ack
        } else {
            AckKind::Rec
        };
        // PUBACK/PUBREC only once every durable effect is synced
        // (DESIGN 4.1), in the order the PUBLISH packets came
        // [MQTT-4.6.0-2]; meanwhile the next PUBLISH is already handled,
        // so one fsync serves many of them (group commit).
        self.queue_ack(PendingAck {
            kind,
            packet_id,
            code,
            ticket,
            healthy: self.broker.store.is_healthy(),
        })
    }

    /// Sends an acknowledgement once `ack.ticket` is durable, after every
    /// acknowledgement queued before it.
    fn queue_ack(&mut self, mut ack: PendingAck) -> Result<(), Close> {
        if self.acks_len() == 0 {
            if let Some(result) = ack.ticket.try_result() {
                return self.send_ack(ack, result);
            }
        }
        let busy = self.busy();
        if ack.kind == AckKind::Ack {
            busy.pending_pubacks += 1;
        }
        busy.acks.push_back(ack);
        Ok(())
    }

    /// Sends one acknowledgement whose ticket completed. A failed store
    /// acknowledges nothing: 5.0 gets reason 0x80, 3.x (which has no
    /// failure code) is disconnected, so the client publishes again
    /// elsewhere or later.
    fn settle(&mut self, ack: PendingAck, result: Result<(), StoreError>) -> Result<(), Close> {
        if ack.kind == AckKind::Ack {
            self.busy().pending_pubacks -= 1;
        }
        self.send_ack(ack, result)
    }

    /// Sends the acknowledgement of a completed ticket (see [`Self::settle`]).
    fn send_ack(&mut self, ack: PendingAck, result: Result<(), StoreError>) -> Result<(), Close> {
        let kind = match ack.kind {
            AckKind::Ack => Packet::PubAck,
            AckKind::Rec => Packet::PubRec,
            AckKind::Comp => Packet::PubComp,
        };
        if result.is_ok() && ack.healthy {
            self.ack(kind, ack.packet_id, ack.code);
        } else if self.v5() {
            self.ack(kind, ack.packet_id, reason::UNSPECIFIED_ERROR);
        } else {
            return Err(Close::StoreFailed);
        }
        Ok(())
    }

    /// The front acknowledgement's ticket completed: send it and every
    /// following one that is already durable.
    fn settle_ready(&mut self, first: Result<(), StoreError>) -> Result<(), Close> {
        if let Some(ack) = self.busy().acks.pop_front() {
            self.settle(ack, first)?;
        }
        while let Some(front) = self.busy().acks.front_mut() {
            let Some(result) = front.ticket.try_result() else {
                break;
            };
            if let Some(ack) = self.busy().acks.pop_front() {
                self.settle(ack, result)?;
            }
        }
        Ok(())
    }

    fn on_pubrel(&mut self, r: PubResp) -> Result<(), Close> {
        let existed = self
            .busy
            .as_mut()
            .is_some_and(|b| b.inbound_qos2.remove(&r.packet_id));
        let ticket = if existed && self.persistent {
            let (_, t) = self.broker.store.submit_one(Command::InboundQos2 {
                client_id: self.client_id().to_string(),
                packet_id: r.packet_id,
                received: false,
            });
            t
        } else {
            Ticket::ready()
        };
        let code = if existed {
            reason::SUCCESS
        } else {
            reason::PACKET_IDENTIFIER_NOT_FOUND
        };
        self.queue_ack(PendingAck {
            kind: AckKind::Comp,
            packet_id: r.packet_id,
            code,
            ticket,
            healthy: true,
        })
    }

    /// PUBREC from the client for one of our QoS 2 messages.
    fn on_pubrec(&mut self, r: PubResp) -> Result<(), Close> {
        let Some(seq) = self
            .busy
            .as_ref()
            .and_then(|b| b.inflight_by_id.get(&r.packet_id).copied())
        else {
            self.ack(
                Packet::PubRel,
                r.packet_id,
                reason::PACKET_IDENTIFIER_NOT_FOUND,
            );
            return Ok(());
        };
        if r.reason >= 0x80 {
            // The client refused it: the exchange ends here.
            self.on_outbound_done(r.packet_id);
            return Ok(());
        }
        if let Some(entry) = self.busy().inflight.get_mut(&seq) {
            entry.pubrec = true;
        }
        if self.persistent {
            let _ = self.broker.store.submit_one(Command::PubRec {
                client_id: self.client_id().to_string(),
                seq,
            });
        }
        self.ack(Packet::PubRel, r.packet_id, reason::SUCCESS);
        Ok(())
    }

    /// PUBACK or PUBCOMP: the message is done.
    fn on_outbound_done(&mut self, packet_id: u16) {
        let Some(busy) = self.busy.as_mut() else {
            return;
        };
        let Some(seq) = busy.inflight_by_id.remove(&packet_id) else {
            return;
        };
        if let Some(entry) = busy.inflight.remove(&seq) {
            self.broker
                .stats
                .inflight
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            if entry.stored {
                self.complete_stored(Some(entry.seq));
            }
        }
        self.fill_window();
    }

    async fn on_subscribe(&mut self, s: Subscribe) -> Result<(), Close> {
        let handle = Arc::clone(self.handle.as_ref().expect("connected"));
        let limits = self.broker.topic_limits();
        let sub_id = s.properties.subscription_identifier;
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut commands = Vec::new();
        let mut retained = Vec::new();
        for f in &s.filters {
            let filter: &str = &f.filter;
            let shared = topic::parse_shared(filter);
            let valid = shared.is_ok() && topic::validate_filter(filter, &limits).is_ok();
            let shared = shared.ok().flatten();
            if !valid {
                codes.push(if self.v5() {
                    reason::TOPIC_FILTER_INVALID
                } else {
                    0x80
                });
                continue;
            }
            if shared.is_some() && f.no_local {
                // No Local on a shared subscription [MQTT-3.8.3-4].
                return Err(self.protocol_error(reason::PROTOCOL_ERROR));
            }
            if !self.acl_allows_subscribe(filter) {
                Stats::inc(&self.broker.stats.acl_denied_subscribe);
                codes.push(if self.v5() {
                    reason::NOT_AUTHORIZED
                } else {
                    0x80
                });
                continue;
            }
            let opts = SubOpts {
                qos: f.qos,
                no_local: self.v5() && f.no_local,
                retain_as_published: self.v5() && f.retain_as_published,
                retain_handling: if self.v5() { f.retain_handling } else { 0 },
                identifier: sub_id,
            };
            let existed = {
                let mut st = handle.state.lock();
                if !st.subscriptions.contains_key(filter)
                    && st.subscriptions.len() >= self.limits().max_subscriptions_per_client
                {
                    None
                } else {
                    Some(
                        st.subscriptions
                            .insert(filter.to_owned(), opts.clone())
                            .is_some(),
                    )
                }
            };
            let Some(existed) = existed else {
                codes.push(if self.v5() {
                    reason::QUOTA_EXCEEDED
                } else {
                    0x80
                });
                continue;
            };
            self.broker.index_insert(filter, &handle, opts.clone());
            if self.persistent {
                commands.push(Command::Subscribe {
                    client_id: self.client_id().to_string(),
                    filter: filter.to_owned(),
                    subscription: Subscription {
                        options: opts.to_byte(),
                        identifier: sub_id,
                    },
                });
            }
            codes.push(f.qos as u8);
            // Retained messages on subscribe [MQTT-3.3.1-9], [MQTT-3.8.4-4],
            // never for shared subscriptions [MQTT-4.8.2-?].
            let send_retained = shared.is_none()
                && match opts.retain_handling {
                    0 => true,
                    1 => !existed,
                    _ => false,
                };
            if send_retained {
                for m in self.broker.retained_matching(filter) {
                    retained.push((m, opts.clone()));
                }
            }
        }
        if !commands.is_empty() {
            let (_, t) = self.broker.store.submit(commands);
            let _ = t.wait().await;
        }
        self.send(&Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            properties: ReasonProperties::default(),
            codes,
        }));
        for (m, opts) in retained {
            let d = Delivery {
                qos: m.qos.min(opts.qos),
                // Retained on subscribe keeps its RETAIN flag [MQTT-3.3.1-8].
                retain: true,
                subscription_ids: opts.identifier.into_iter().collect(),
                msg: m,
                seq: None,
            };
            self.deliver_own(d);
        }
        Ok(())
    }

    /// A delivery originating in this connection (retained on subscribe):
    /// persistent sessions queue QoS 1/2 through the store like any other.
    fn deliver_own(&mut self, mut d: Delivery) {
        if self.persistent && d.qos != QoS::AtMostOnce {
            let (outcome, _) = self.broker.store.submit_one(Command::Publish {
                message: msg_to_stored(&d.msg),
                targets: vec![herald_storage::Target {
                    client_id: self.client_id().to_string(),
                    qos: d.qos as u8,
                    retain: d.retain,
                    subscription_ids: d.subscription_ids.clone(),
                }],
            });
            match outcome {
                Outcome::Published { appended } => match appended.first() {
                    Some(Ok(seq)) => d.seq = Some(*seq),
                    _ => {
                        self.broker.stats.dropped(Drop::QueueFull);
                        return;
                    }
                },
                _ => return,
            }
        }
        self.deliver_counted(d);
    }

    async fn on_unsubscribe(&mut self, u: Unsubscribe) -> Result<(), Close> {
        let handle = Arc::clone(self.handle.as_ref().expect("connected"));
        let mut codes = Vec::with_capacity(u.filters.len());
        let mut commands = Vec::new();
        for f in &u.filters {
            let existed = handle.state.lock().subscriptions.remove(&**f).is_some();
            if existed {
                self.broker.index_remove(f, &handle);
                if self.persistent {
                    commands.push(Command::Unsubscribe {
                        client_id: self.client_id().to_string(),
                        filter: f.to_string(),
                    });
                }
                codes.push(reason::SUCCESS);
            } else {
                codes.push(reason::NO_SUBSCRIPTION_EXISTED);
            }
        }
        if !commands.is_empty() {
            let (_, t) = self.broker.store.submit(commands);
            let _ = t.wait().await;
        }
        self.send(&Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: ReasonProperties::default(),
            codes,
        }));
        Ok(())
    }

    fn on_disconnect(&mut self, d: Disconnect) -> Result<(), Close> {
        if let Some(expiry) = d.properties.session_expiry_interval {
            // A session that was to end with the connection may not be
            // made persistent at DISCONNECT [MQTT-3.14.2-2].
            if self.session_expiry() == 0 && expiry != 0 {
                return Err(self.protocol_error(reason::PROTOCOL_ERROR));
            }
            let max = self.broker.config.mqtt.session_expiry_max_secs;
            self.set_session_expiry(expiry.min(max));
        }
        Err(Close::ClientDisconnect {
            will: d.reason == reason::DISCONNECT_WITH_WILL,
        })
    }

    /// Closes the connection and settles the session.
    async fn finish(&mut self, close: Close) {
        debug!(client_id = %self.client_id(), peer = %self.peer, reason = close.as_str(), "closed");
        if close == Close::SlowConsumer {
            Stats::inc(&self.broker.stats.slow_consumers);
        }
        Stats::inc(&self.broker.stats.closed[close.index()]);
        self.broker.stats.inflight.fetch_sub(
            self.inflight_len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        // 5.0: tell the client why, when the reason has a code
        // [MQTT-4.13.1-1]; never before CONNACK was sent.
        if self.v5() && self.handle.is_some() {
            if let Some(code) = close.reason_code() {
                self.send(&Packet::Disconnect(Disconnect {
                    reason: code,
                    properties: DisconnectProperties::default(),
                }));
            }
        }
        match close {
            Close::Io | Close::PeerClosed | Close::ConnectTimeout => {}
            // A client that stopped reading will not take the rest: one
            // attempt, no waiting.
            Close::SlowConsumer => {
                if let Some(busy) = &self.busy {
                    let _ = self.io.try_write_now(&busy.wbuf);
                }
            }
            _ => {
                let _ = tokio::time::timeout(CLOSE_FLUSH, self.flush()).await;
                let _ = tokio::time::timeout(CLOSE_FLUSH, self.io.shutdown()).await;
            }
        }
        let Some(handle) = self.handle.take() else {
            return;
        };
        {
            let mut st = handle.state.lock();
            if st.link.as_ref().is_some_and(|l| l.epoch == self.link.epoch) {
                st.link = None;
            }
            st.sent_up_to = st.sent_up_to.max(self.sent_up_to());
        }
        // Nothing more will be taken from this connection: release the
        // publishers that wait for it to drain.
        self.link.close();
        if let Some(busy) = &mut self.busy {
            busy.inbox.clear();
        }
        let will = if close.publishes_will() {
            self.extra.as_mut().and_then(|e| e.will.take())
        } else {
            None
        };
        let broker = Arc::clone(&self.broker);
        let session_expiry = self.session_expiry();
        if session_expiry == 0 {
            // The session ends with the connection [MQTT-3.1.2-6]; its will
            // goes now.
            broker.end_session(&handle);
            if let Some(w) = will {
                publish_will(&broker, &w);
            }
            return;
        }
        let delay = will.as_ref().map(|w| {
            w.properties
                .will_delay_interval
                .unwrap_or(0)
                .min(session_expiry)
        });
        let delayed_will = match (will, delay) {
            (Some(w), Some(0)) => {
                publish_will(&broker, &w);
                None
            }
            (w, _) => w,
        };
        let _ = broker.store.submit_one(Command::Close {
            client_id: handle.client_id.to_string(),
            epoch: self.link.epoch,
            expiry_secs: session_expiry,
            will: delayed_will.as_ref().map(stored_will),
            now_ms: now_ms(),
        });
        if let (Some(w), Some(secs)) = (delayed_will, delay) {
            schedule_will(&broker, Arc::clone(&handle), self.link.epoch, w, secs);
        }
        broker.schedule_expiry(handle, self.link.epoch, session_expiry);
    }
}

/// Waits until every congested connection has drained; `Err(i)` when
/// `paused[i]` is still congested at `deadline`.
async fn wait_drained(
    paused: Vec<Congestion>,
    deadline: tokio::time::Instant,
) -> Result<(), usize> {
    for (i, c) in paused.iter().enumerate() {
        if tokio::time::timeout_at(deadline, c.wait()).await.is_err() {
            return Err(i);
        }
    }
    Ok(())
}

fn will_msg(w: &codec::Will) -> Msg {
    Msg {
        topic: w.topic.clone(),
        payload: w.payload.clone(),
        qos: w.qos,
        retain: w.retain,
        properties: MsgProperties::new(PublishProperties {
            payload_format_indicator: w.properties.payload_format_indicator,
            message_expiry_interval: None,
            topic_alias: None,
            response_topic: w.properties.response_topic.clone(),
            correlation_data: w.properties.correlation_data.clone(),
            user_properties: w.properties.user_properties.clone(),
            subscription_identifiers: Vec::new(),
            content_type: w.properties.content_type.clone(),
        }),
        expires_at: w
            .properties
            .message_expiry_interval
            .map(|s| Instant::now() + Duration::from_secs(u64::from(s))),
        origin: None,
        received_at: Instant::now(),
    }
}

fn stored_will(w: &codec::Will) -> StoredWill {
    StoredWill {
        message: msg_to_stored(&will_msg(w)),
        delay_secs: w.properties.will_delay_interval.unwrap_or(0),
    }
}

fn publish_will(broker: &Arc<Broker>, w: &codec::Will) {
    Stats::inc(&broker.stats.wills_published);
    let _ = broker.publish(Arc::new(will_msg(w)), None);
}

/// Publishes a delayed will unless the session was resumed (or ended and
/// replaced) meanwhile [MQTT-3.1.3-9].
fn schedule_will(
    broker: &Arc<Broker>,
    handle: Arc<SessionHandle>,
    epoch: u64,
    w: codec::Will,
    secs: u32,
) {
    let broker = Arc::clone(broker);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(u64::from(secs))).await;
        let still_offline = {
            let st = handle.state.lock();
            st.link.is_none() && st.epoch == epoch
        };
        if still_offline {
            publish_will(&broker, &w);
            let _ = broker.store.submit_one(Command::ClearWill {
                client_id: handle.client_id.to_string(),
            });
        }
    });
}

#[cfg(test)]
mod tests {
    /// Size of what `f` returns, without calling it.
    fn returned_size<A, B, C, R, F: Fn(A, B, C) -> R>(_: &F) -> usize {
        std::mem::size_of::<R>()
    }

    /// tokio allocates a task as a 128-byte aligned cell of 96 bytes of
    /// its own plus the future (and an 8-byte tag): a connection future of
    /// up to 152 bytes makes a 256-byte task, one byte more a 384-byte one,
    /// which every idle connection would pay. Grow `Connection` only with
    /// this in mind (rarely needed state goes to `Extra` or `Busy`).
    #[test]
    fn idle_connection_task_fits_256_bytes() {
        let size = returned_size(&super::serve);
        assert!(size <= 152, "connection future is {size} bytes");
    }
}
