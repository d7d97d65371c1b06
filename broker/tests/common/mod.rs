//! Integration test harness: the real server in-process on `127.0.0.1:0`,
//! a raw client that speaks hand-built bytes, rumqttc 3.1.1 / 5.0 clients,
//! and a poller that waits for a condition instead of sleeping.
//!
//! Packets sent by the raw client are built byte by byte here ([`wire`]), not
//! with the broker's encoder, so a codec bug cannot hide itself; what the
//! broker sends is decoded with `herald::codec::decode_as_client`.

// Each test file uses a different part of the harness.
#![allow(dead_code)]

pub mod pki;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use herald::broker::Broker;
use herald::codec::{self, ConnAck, Packet, ProtocolVersion, Publish};
use herald::config::Config;
use herald::server::Server;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Longest any single test may run.
pub const TEST_DEADLINE: Duration = Duration::from_secs(30);
/// How long a read waits for a packet that is expected.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// How long a test watches for a packet that must not come.
pub const QUIET: Duration = Duration::from_millis(300);

/// Runs a test body under [`TEST_DEADLINE`]; a hung test fails instead of
/// hanging the suite.
pub async fn bounded<F: Future<Output = ()>>(body: F) {
    if tokio::time::timeout(TEST_DEADLINE, body).await.is_err() {
        panic!("test exceeded its deadline of {TEST_DEADLINE:?}");
    }
}

/// Polls `cond` every 10 ms until it holds; panics after `deadline`.
pub async fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if cond() {
            return;
        }
        if tokio::time::Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads a counter of `broker.stats`.
pub fn stat(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

/// The server under test. Dropping it (or [`TestServer::stop`]) shuts it down.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The addresses of the configured `[[listeners]]`, in order.
    pub listeners: Vec<SocketAddr>,
    /// The admin HTTP address (bound on a free port).
    pub admin: Option<SocketAddr>,
    pub broker: Arc<Broker>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl TestServer {
    /// A server with the default configuration.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server whose configuration `tweak` adjusts.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = TempDir::new().expect("temp dir");
        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        config.admin.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        // No `$SYS` traffic unless a test asks for it: tests that subscribe to
        // `$SYS/#` or count messages see only their own.
        config.admin.sys_interval_secs = 0;
        tweak(&mut config);
        let server = Server::bind(config).await.expect("server binds");
        let addr = server.local_addr().expect("bound address");
        let listeners = server.listener_addrs();
        let admin = server.admin_addr();
        let broker = server.broker();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            listeners,
            admin,
            broker,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Stops the server and waits until `run` has returned.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task ends cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Hand-built MQTT packets (what a client sends).
pub mod wire {
    /// Variable byte integer.
    pub fn varint(mut n: u32) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            out.push(b);
            if n == 0 {
                return out;
            }
        }
    }

    /// Two-byte length-prefixed string or binary data.
    pub fn string(s: &[u8]) -> Vec<u8> {
        let mut out = (s.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(s);
        out
    }

    /// Fixed header + body.
    pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        out.extend(varint(body.len() as u32));
        out.extend_from_slice(body);
        out
    }

    /// 5.0 property section: length then the properties.
    pub fn props(parts: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = parts.concat();
        let mut out = varint(body.len() as u32);
        out.extend(body);
        out
    }

    pub fn p_u8(id: u8, v: u8) -> Vec<u8> {
        vec![id, v]
    }
    pub fn p_u16(id: u8, v: u16) -> Vec<u8> {
        let mut o = vec![id];
        o.extend(v.to_be_bytes());
        o
    }
    pub fn p_u32(id: u8, v: u32) -> Vec<u8> {
        let mut o = vec![id];
        o.extend(v.to_be_bytes());
        o
    }
    pub fn p_varint(id: u8, v: u32) -> Vec<u8> {
        let mut o = vec![id];
        o.extend(varint(v));
        o
    }
    pub fn p_str(id: u8, s: &str) -> Vec<u8> {
        let mut o = vec![id];
        o.extend(string(s.as_bytes()));
        o
    }
    pub fn p_bin(id: u8, b: &[u8]) -> Vec<u8> {
        let mut o = vec![id];
        o.extend(string(b));
        o
    }
    pub fn p_pair(k: &str, v: &str) -> Vec<u8> {
        let mut o = vec![0x26];
        o.extend(string(k.as_bytes()));
        o.extend(string(v.as_bytes()));
        o
    }

    // Property identifiers (MQTT 5.0 section 2.2.2.2).
    pub const PAYLOAD_FORMAT: u8 = 0x01;
    pub const MESSAGE_EXPIRY: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_ID: u8 = 0x0B;
    pub const SESSION_EXPIRY: u8 = 0x11;
    pub const AUTH_METHOD: u8 = 0x15;
    pub const WILL_DELAY: u8 = 0x18;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;

    /// A will message for [`Connect`].
    #[derive(Debug, Clone, Default)]
    pub struct Will {
        pub topic: String,
        pub payload: Vec<u8>,
        pub qos: u8,
        pub retain: bool,
        /// 5.0 will properties (without the length prefix).
        pub props: Vec<Vec<u8>>,
    }

    /// A CONNECT packet.
    #[derive(Debug, Clone)]
    pub struct Connect {
        pub name: &'static str,
        pub level: u8,
        pub clean: bool,
        pub keep_alive: u16,
        pub client_id: String,
        /// 5.0 CONNECT properties (without the length prefix).
        pub props: Vec<Vec<u8>>,
        pub will: Option<Will>,
        pub username: Option<String>,
        pub password: Option<Vec<u8>>,
    }

    impl Connect {
        pub fn v31(id: &str) -> Connect {
            Connect {
                name: "MQIsdp",
                level: 3,
                ..Connect::v311(id)
            }
        }
        pub fn v311(id: &str) -> Connect {
            Connect {
                name: "MQTT",
                level: 4,
                clean: true,
                keep_alive: 0,
                client_id: id.to_owned(),
                props: Vec::new(),
                will: None,
                username: None,
                password: None,
            }
        }
        pub fn v5(id: &str) -> Connect {
            Connect {
                level: 5,
                ..Connect::v311(id)
            }
        }
        pub fn clean(mut self, clean: bool) -> Connect {
            self.clean = clean;
            self
        }
        pub fn keep_alive(mut self, secs: u16) -> Connect {
            self.keep_alive = secs;
            self
        }
        pub fn prop(mut self, p: Vec<u8>) -> Connect {
            self.props.push(p);
            self
        }
        pub fn will(mut self, w: Will) -> Connect {
            self.will = Some(w);
            self
        }
        pub fn login(mut self, user: &str, password: &str) -> Connect {
            self.username = Some(user.to_owned());
            self.password = Some(password.as_bytes().to_vec());
            self
        }

        pub fn bytes(&self) -> Vec<u8> {
            let v5 = self.level == 5;
            let mut body = string(self.name.as_bytes());
            body.push(self.level);
            let mut flags = 0u8;
            if self.clean {
                flags |= 0x02;
            }
            if let Some(w) = &self.will {
                flags |= 0x04 | (w.qos << 3);
                if w.retain {
                    flags |= 0x20;
                }
            }
            if self.username.is_some() {
                flags |= 0x80;
            }
            if self.password.is_some() {
                flags |= 0x40;
            }
            body.push(flags);
            body.extend(self.keep_alive.to_be_bytes());
            if v5 {
                body.extend(props(&self.props));
            }
            body.extend(string(self.client_id.as_bytes()));
            if let Some(w) = &self.will {
                if v5 {
                    body.extend(props(&w.props));
                }
                body.extend(string(w.topic.as_bytes()));
                body.extend(string(&w.payload));
            }
            if let Some(u) = &self.username {
                body.extend(string(u.as_bytes()));
            }
            if let Some(p) = &self.password {
                body.extend(string(p));
            }
            frame(0x10, &body)
        }
    }

    /// PUBLISH. `props` is `None` for 3.x (no property section).
    pub fn publish(
        topic: &str,
        qos: u8,
        retain: bool,
        dup: bool,
        packet_id: u16,
        props_v5: Option<&[Vec<u8>]>,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut first = 0x30 | (qos << 1);
        if retain {
            first |= 1;
        }
        if dup {
            first |= 0x08;
        }
        let mut body = string(topic.as_bytes());
        if qos > 0 {
            body.extend(packet_id.to_be_bytes());
        }
        if let Some(p) = props_v5 {
            body.extend(props(p));
        }
        body.extend_from_slice(payload);
        frame(first, &body)
    }

    /// 3.x PUBLISH without properties.
    pub fn publish3(topic: &str, qos: u8, retain: bool, packet_id: u16, payload: &[u8]) -> Vec<u8> {
        publish(topic, qos, retain, false, packet_id, None, payload)
    }

    /// 5.0 PUBLISH without properties.
    pub fn publish5(topic: &str, qos: u8, retain: bool, packet_id: u16, payload: &[u8]) -> Vec<u8> {
        publish(topic, qos, retain, false, packet_id, Some(&[]), payload)
    }

    /// SUBSCRIBE: `(filter, options byte)` pairs. `props_v5` is `None` for 3.x.
    pub fn subscribe(
        packet_id: u16,
        props_v5: Option<&[Vec<u8>]>,
        filters: &[(&str, u8)],
    ) -> Vec<u8> {
        let mut body = packet_id.to_be_bytes().to_vec();
        if let Some(p) = props_v5 {
            body.extend(props(p));
        }
        for (f, o) in filters {
            body.extend(string(f.as_bytes()));
            body.push(*o);
        }
        frame(0x82, &body)
    }

    /// UNSUBSCRIBE.
    pub fn unsubscribe(packet_id: u16, v5: bool, filters: &[&str]) -> Vec<u8> {
        let mut body = packet_id.to_be_bytes().to_vec();
        if v5 {
            body.push(0);
        }
        for f in filters {
            body.extend(string(f.as_bytes()));
        }
        frame(0xA2, &body)
    }

    pub fn puback(id: u16) -> Vec<u8> {
        frame(0x40, &id.to_be_bytes())
    }
    pub fn pubrec(id: u16) -> Vec<u8> {
        frame(0x50, &id.to_be_bytes())
    }
    pub fn pubrel(id: u16) -> Vec<u8> {
        frame(0x62, &id.to_be_bytes())
    }
    pub fn pubcomp(id: u16) -> Vec<u8> {
        frame(0x70, &id.to_be_bytes())
    }
    pub fn pingreq() -> Vec<u8> {
        vec![0xC0, 0]
    }
    /// 3.x DISCONNECT.
    pub fn disconnect3() -> Vec<u8> {
        vec![0xE0, 0]
    }
    /// 5.0 DISCONNECT with a reason code and properties.
    pub fn disconnect5(reason: u8, p: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![reason];
        body.extend(props(p));
        frame(0xE0, &body)
    }
}

/// What a raw read produced. (Short-lived values: the size difference
/// between variants does not matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Got {
    Packet(Packet),
    /// The broker closed the connection (EOF or reset).
    Closed,
    /// Nothing within the deadline.
    Timeout,
}

/// A raw MQTT client over TCP: sends bytes, decodes what the broker sends.
pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
    version: ProtocolVersion,
}

impl Raw {
    /// Opens a TCP connection; nothing is sent yet.
    pub async fn open(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("tcp connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: BytesMut::new(),
            version: ProtocolVersion::V3_1_1,
        }
    }

    /// Wraps an already connected stream (3.1.1 decoding until told otherwise).
    pub fn from_stream(stream: TcpStream) -> Raw {
        Raw {
            stream,
            buf: BytesMut::new(),
            version: ProtocolVersion::V3_1_1,
        }
    }

    /// Opens a connection, sends `c` and returns the CONNACK (any code).
    pub async fn connect_raw(addr: SocketAddr, c: &wire::Connect) -> (Raw, ConnAck) {
        let mut raw = Raw::open(addr).await;
        raw.version = match c.level {
            3 => ProtocolVersion::V3_1,
            5 => ProtocolVersion::V5,
            _ => ProtocolVersion::V3_1_1,
        };
        raw.send(&c.bytes()).await;
        match raw.recv().await {
            Got::Packet(Packet::ConnAck(a)) => (raw, a),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects and asserts the CONNACK accepts.
    pub async fn connect(addr: SocketAddr, c: &wire::Connect) -> (Raw, ConnAck) {
        let (raw, ack) = Raw::connect_raw(addr, c).await;
        assert_eq!(ack.code, 0, "CONNACK refused: {ack:?}");
        (raw, ack)
    }

    pub async fn v311(addr: SocketAddr, id: &str) -> Raw {
        Raw::connect(addr, &wire::Connect::v311(id)).await.0
    }

    pub async fn v5(addr: SocketAddr, id: &str) -> Raw {
        Raw::connect(addr, &wire::Connect::v5(id)).await.0
    }

    /// Sets the version used to decode what the broker sends.
    pub fn set_version(&mut self, v: ProtocolVersion) {
        self.version = v;
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to broker");
    }

    /// Sends, ignoring a failure (the broker may already have closed).
    pub async fn send_lossy(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next packet, or close, within [`READ_DEADLINE`].
    pub async fn recv(&mut self) -> Got {
        self.recv_within(READ_DEADLINE).await
    }

    pub async fn recv_within(&mut self, deadline: Duration) -> Got {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            match codec::decode_as_client(&mut self.buf, Some(self.version), u32::MAX) {
                Ok(Some(p)) => return Got::Packet(p),
                Ok(None) => {}
                Err(e) => panic!("broker sent bytes that do not decode: {e}"),
            }
            self.buf.reserve(4096);
            match tokio::time::timeout_at(end, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Got::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    if self.buf.is_empty() {
                        return Got::Closed;
                    }
                    // Decode what is left before reporting the close.
                    match codec::decode_as_client(&mut self.buf, Some(self.version), u32::MAX) {
                        Ok(Some(p)) => return Got::Packet(p),
                        _ => return Got::Closed,
                    }
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next packet; panics on close or timeout.
    pub async fn expect_packet(&mut self) -> Packet {
        match self.recv().await {
            Got::Packet(p) => p,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// The next packet, which must be a PUBLISH.
    pub async fn expect_publish(&mut self) -> Publish {
        match self.expect_packet().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Asserts nothing arrives (and the connection stays open) for `dur`.
    pub async fn expect_quiet(&mut self, dur: Duration) {
        match self.recv_within(dur).await {
            Got::Timeout => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }

    /// Asserts the broker closes the connection within `deadline`; returns
    /// the packets it sent before closing.
    pub async fn expect_close_within(&mut self, deadline: Duration) -> Vec<Packet> {
        let end = tokio::time::Instant::now() + deadline;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Got::Packet(p) => seen.push(p),
                Got::Closed => return seen,
                Got::Timeout => panic!("connection not closed within {deadline:?}; saw {seen:?}"),
            }
        }
    }

    pub async fn expect_close(&mut self) -> Vec<Packet> {
        self.expect_close_within(READ_DEADLINE).await
    }

    /// Asserts the broker sends DISCONNECT with `code` and closes (5.0).
    pub async fn expect_disconnect(&mut self, code: u8) {
        let seen = self.expect_close().await;
        let last = seen.last();
        match last {
            Some(Packet::Disconnect(d)) => assert_eq!(
                d.reason, code,
                "DISCONNECT reason 0x{:02X}, wanted 0x{code:02X}",
                d.reason
            ),
            _ => panic!("expected DISCONNECT 0x{code:02X} before close, saw {seen:?}"),
        }
    }

    /// Subscribes and returns the SUBACK codes.
    pub async fn subscribe(&mut self, packet_id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
        let props: Option<&[Vec<u8>]> = if self.version.is_v5() {
            Some(&[])
        } else {
            None
        };
        self.subscribe_with(packet_id, props, filters).await
    }

    pub async fn subscribe_with(
        &mut self,
        packet_id: u16,
        props: Option<&[Vec<u8>]>,
        filters: &[(&str, u8)],
    ) -> Vec<u8> {
        self.send(&wire::subscribe(packet_id, props, filters)).await;
        match self.expect_packet().await {
            Packet::SubAck(s) => {
                assert_eq!(s.packet_id, packet_id, "SUBACK packet id");
                s.codes
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes in the connection's version without properties.
    pub async fn publish(&mut self, topic: &str, qos: u8, retain: bool, pid: u16, payload: &[u8]) {
        let bytes = if self.version.is_v5() {
            wire::publish5(topic, qos, retain, pid, payload)
        } else {
            wire::publish3(topic, qos, retain, pid, payload)
        };
        self.send(&bytes).await;
    }

    /// Publishes and completes the QoS handshake (PUBACK, or PUBREC/PUBREL/PUBCOMP).
    pub async fn publish_acked(
        &mut self,
        topic: &str,
        qos: u8,
        retain: bool,
        pid: u16,
        payload: &[u8],
    ) {
        self.publish(topic, qos, retain, pid, payload).await;
        match qos {
            0 => {}
            1 => match self.expect_packet().await {
                Packet::PubAck(a) => assert_eq!(a.packet_id, pid),
                other => panic!("expected PUBACK, got {other:?}"),
            },
            _ => {
                match self.expect_packet().await {
                    Packet::PubRec(a) => assert_eq!(a.packet_id, pid),
                    other => panic!("expected PUBREC, got {other:?}"),
                }
                self.send(&wire::pubrel(pid)).await;
                match self.expect_packet().await {
                    Packet::PubComp(a) => assert_eq!(a.packet_id, pid),
                    other => panic!("expected PUBCOMP, got {other:?}"),
                }
            }
        }
    }

    /// Sends PINGREQ and waits for PINGRESP: everything the broker sent
    /// before it has been read, and it has processed what we sent.
    pub async fn sync(&mut self) -> Vec<Packet> {
        self.send(&wire::pingreq()).await;
        let mut before = Vec::new();
        loop {
            match self.expect_packet().await {
                Packet::PingResp => return before,
                p => before.push(p),
            }
        }
    }
}

/// A rumqttc 3.1.1 client whose event loop runs on its own task.
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    events: mpsc::UnboundedReceiver<Result<rumqttc::Event, String>>,
    task: JoinHandle<()>,
}

impl V4 {
    pub fn options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    /// Connects and waits for the CONNACK.
    pub async fn connect(addr: SocketAddr, id: &str, clean: bool) -> V4 {
        let mut o = V4::options(addr, id);
        o.set_clean_session(clean);
        V4::connect_with(o).await
    }

    pub async fn connect_with(options: rumqttc::MqttOptions) -> V4 {
        let (client, mut el) = rumqttc::AsyncClient::new(options, 100);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(e) => {
                        if tx.send(Ok(e)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        let mut c = V4 {
            client,
            events,
            task,
        };
        c.next_incoming(|p| matches!(p, rumqttc::Packet::ConnAck(_)))
            .await;
        c
    }

    /// Waits for the first incoming packet that `pick` accepts.
    pub async fn next_incoming(
        &mut self,
        mut pick: impl FnMut(&rumqttc::Packet) -> bool,
    ) -> rumqttc::Packet {
        let end = tokio::time::Instant::now() + READ_DEADLINE;
        loop {
            match tokio::time::timeout_at(end, self.events.recv()).await {
                Err(_) => panic!("rumqttc v4: nothing wanted within {READ_DEADLINE:?}"),
                Ok(None) => panic!("rumqttc v4: event loop ended"),
                Ok(Some(Err(e))) => panic!("rumqttc v4: {e}"),
                Ok(Some(Ok(rumqttc::Event::Incoming(p)))) if pick(&p) => return p,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        match self
            .next_incoming(|p| matches!(p, rumqttc::Packet::Publish(_)))
            .await
        {
            rumqttc::Packet::Publish(p) => p,
            _ => unreachable!("filtered to PUBLISH"),
        }
    }

    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::QoS,
    ) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client
            .subscribe(filter, qos)
            .await
            .expect("subscribe queued");
        match self
            .next_incoming(|p| matches!(p, rumqttc::Packet::SubAck(_)))
            .await
        {
            rumqttc::Packet::SubAck(s) => s.return_codes,
            _ => unreachable!("filtered to SUBACK"),
        }
    }

    /// Asserts no PUBLISH arrives for `dur`.
    pub async fn expect_no_publish(&mut self, dur: Duration) {
        let end = tokio::time::Instant::now() + dur;
        loop {
            match tokio::time::timeout_at(end, self.events.recv()).await {
                Err(_) => return,
                Ok(Some(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))))) => {
                    panic!("unexpected PUBLISH {p:?}")
                }
                Ok(Some(Err(e))) => panic!("rumqttc v4: {e}"),
                Ok(None) => panic!("rumqttc v4: event loop ended"),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Waits until the event loop reports an error (connection closed).
    pub async fn expect_error(&mut self) -> String {
        let end = tokio::time::Instant::now() + READ_DEADLINE;
        loop {
            match tokio::time::timeout_at(end, self.events.recv()).await {
                Err(_) => panic!("rumqttc v4: connection not closed"),
                Ok(None) => return "event loop ended".to_owned(),
                Ok(Some(Err(e))) => return e,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Sends DISCONNECT and waits for the event loop to end.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.expect("disconnect queued");
        let _ = tokio::time::timeout(READ_DEADLINE, async {
            while let Some(Ok(_)) = self.events.recv().await {}
        })
        .await;
    }
}

impl Drop for V4 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A rumqttc 5.0 client whose event loop runs on its own task.
pub struct V5 {
    pub client: rumqttc::v5::AsyncClient,
    events: mpsc::UnboundedReceiver<Result<rumqttc::v5::Event, String>>,
    task: JoinHandle<()>,
    /// The CONNACK the broker sent.
    pub connack: rumqttc::v5::mqttbytes::v5::ConnAck,
}

impl V5 {
    pub fn options(addr: SocketAddr, id: &str) -> rumqttc::v5::MqttOptions {
        let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    pub async fn connect(addr: SocketAddr, id: &str) -> V5 {
        V5::connect_with(V5::options(addr, id)).await
    }

    pub async fn connect_with(options: rumqttc::v5::MqttOptions) -> V5 {
        let (client, mut el) = rumqttc::v5::AsyncClient::new(options, 100);
        let (tx, mut events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(e) => {
                        if tx.send(Ok(e)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        let connack = loop {
            match tokio::time::timeout(READ_DEADLINE, events.recv()).await {
                Ok(Some(Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::ConnAck(a))))) => {
                    break a
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("rumqttc v5: no CONNACK: {other:?}"),
            }
        };
        V5 {
            client,
            events,
            task,
            connack,
        }
    }

    pub async fn next_incoming(
        &mut self,
        mut pick: impl FnMut(&rumqttc::v5::Incoming) -> bool,
    ) -> rumqttc::v5::Incoming {
        let end = tokio::time::Instant::now() + READ_DEADLINE;
        loop {
            match tokio::time::timeout_at(end, self.events.recv()).await {
                Err(_) => panic!("rumqttc v5: nothing wanted within {READ_DEADLINE:?}"),
                Ok(None) => panic!("rumqttc v5: event loop ended"),
                Ok(Some(Err(e))) => panic!("rumqttc v5: {e}"),
                Ok(Some(Ok(rumqttc::v5::Event::Incoming(p)))) if pick(&p) => return p,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn next_publish(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
        match self
            .next_incoming(|p| matches!(p, rumqttc::v5::Incoming::Publish(_)))
            .await
        {
            rumqttc::v5::Incoming::Publish(p) => p,
            _ => unreachable!("filtered to PUBLISH"),
        }
    }

    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
    ) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
        self.client
            .subscribe(filter, qos)
            .await
            .expect("subscribe queued");
        match self
            .next_incoming(|p| matches!(p, rumqttc::v5::Incoming::SubAck(_)))
            .await
        {
            rumqttc::v5::Incoming::SubAck(s) => s.return_codes,
            _ => unreachable!("filtered to SUBACK"),
        }
    }

    pub async fn expect_no_publish(&mut self, dur: Duration) {
        let end = tokio::time::Instant::now() + dur;
        loop {
            match tokio::time::timeout_at(end, self.events.recv()).await {
                Err(_) => return,
                Ok(Some(Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::Publish(p))))) => {
                    panic!("unexpected PUBLISH {p:?}")
                }
                Ok(Some(Err(e))) => panic!("rumqttc v5: {e}"),
                Ok(None) => panic!("rumqttc v5: event loop ended"),
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

impl Drop for V5 {
    fn drop(&mut self) {
        self.task.abort();
    }
}
