//! The test catalogue and what tests share: the per-test context, optional
//! features, and the expectations about how a broker closes on bad input.
//!
//! Areas, numbered like the keys (`01-connect/003@5`):
//! - [`connect`] 01: CONNECT / CONNACK / DISCONNECT.
//! - [`pubsub`] 02: SUBSCRIBE, UNSUBSCRIBE, PUBLISH routing, PING.
//! - [`qos`] 03: QoS 1 and 2 flows.
//! - [`retain`] 04: retained messages.
//! - [`session`] 05: persistent sessions and takeover.
//! - [`will`] 06: will messages.
//! - [`keepalive`] 07: keep alive.
//! - [`topics`] 08: topic names, filters and wildcards.
//! - [`properties`] 09: 5.0 properties (expiry, user properties, ...).
//! - [`flow`] 10: 5.0 flow control and packet size.
//! - [`alias`] 11: 5.0 topic aliases.
//! - [`shared`] 12: 5.0 shared subscriptions.
//! - [`malformed`] 13: malformed and protocol-violating input.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::check;
use crate::client::{names, Client, Connack, Failure, Step};
use crate::decode::Packet;
use crate::wire::{self, prop, Connect, Props, Publish, Version};

pub mod alias;
pub mod connect;
pub mod flow;
pub mod keepalive;
pub mod malformed;
pub mod properties;
pub mod pubsub;
pub mod qos;
pub mod retain;
pub mod session;
pub mod shared;
pub mod topics;
pub mod will;

/// Optional broker capabilities. A test that needs one is reported as not
/// applicable when the operator declares it absent (`--no-feature`) or, in
/// 5.0, when the broker declares it absent in CONNACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Feature {
    /// Retained messages (5.0 Retain Available).
    Retain,
    /// Wildcard subscriptions (5.0 Wildcard Subscription Available).
    Wildcards,
    /// `$share/...` subscriptions (5.0 Shared Subscription Available).
    SharedSubscriptions,
    /// Subscription Identifiers (5.0 Subscription Identifiers Available).
    SubscriptionIds,
    /// Inbound topic aliases (5.0 Topic Alias Maximum > 0).
    TopicAlias,
    /// QoS 1 publishing and subscribing.
    Qos1,
    /// QoS 2 publishing and subscribing (5.0 Maximum QoS).
    Qos2,
    /// Sessions that outlive the connection.
    PersistentSessions,
    /// Zero-length client identifiers (the server MAY refuse them).
    ZeroLengthClientId,
}

impl Feature {
    /// Every feature, all assumed present unless declared absent.
    pub const ALL: [Feature; 9] = [
        Feature::Retain,
        Feature::Wildcards,
        Feature::SharedSubscriptions,
        Feature::SubscriptionIds,
        Feature::TopicAlias,
        Feature::Qos1,
        Feature::Qos2,
        Feature::PersistentSessions,
        Feature::ZeroLengthClientId,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Retain => "retain",
            Feature::Wildcards => "wildcards",
            Feature::SharedSubscriptions => "shared-subscriptions",
            Feature::SubscriptionIds => "subscription-ids",
            Feature::TopicAlias => "topic-alias",
            Feature::Qos1 => "qos1",
            Feature::Qos2 => "qos2",
            Feature::PersistentSessions => "persistent-sessions",
            Feature::ZeroLengthClientId => "zero-length-client-id",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// Which versions a test runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    Both,
    Only311,
    Only5,
}

impl Versions {
    /// True when the test runs for `v`.
    pub fn includes(self, v: Version) -> bool {
        match self {
            Versions::Both => true,
            Versions::Only311 => v == Version::V311,
            Versions::Only5 => v == Version::V5,
        }
    }
}

/// A boxed test future.
pub type TestFuture = Pin<Box<dyn Future<Output = Step> + Send>>;

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct TestCase {
    /// `NN-area/NNN`, stable across releases.
    pub id: &'static str,
    /// What the test checks, in one line.
    pub title: &'static str,
    /// The normative statements it checks, e.g. `MQTT-3.1.2-4`.
    pub refs: &'static [&'static str],
    pub versions: Versions,
    /// Optional features the test needs.
    pub features: &'static [Feature],
    pub run: fn(Ctx) -> TestFuture,
}

/// Builds a [`TestCase`] from an `async fn(Ctx) -> Step`.
#[macro_export]
macro_rules! case {
    ($id:expr, $title:expr, [$($r:expr),* $(,)?], $vers:ident, [$($f:ident),* $(,)?], $func:path) => {
        $crate::suite::TestCase {
            id: $id,
            title: $title,
            refs: &[$($r),*],
            versions: $crate::suite::Versions::$vers,
            features: &[$($crate::suite::Feature::$f),*],
            run: |c| Box::pin($func(c)),
        }
    };
}

/// The whole catalogue, in id order.
pub fn catalogue() -> Vec<TestCase> {
    let mut all = Vec::new();
    all.extend(connect::cases());
    all.extend(pubsub::cases());
    all.extend(qos::cases());
    all.extend(retain::cases());
    all.extend(session::cases());
    all.extend(will::cases());
    all.extend(keepalive::cases());
    all.extend(topics::cases());
    all.extend(properties::cases());
    all.extend(flow::cases());
    all.extend(alias::cases());
    all.extend(shared::cases());
    all.extend(malformed::cases());
    all
}

/// What a running test knows about its target and itself.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub addr: String,
    pub version: Version,
    /// Deadline for every read that expects a packet.
    pub read_timeout: Duration,
    /// How long silence must last to count as "the broker sent nothing".
    pub quiet: Duration,
    /// Alphanumeric tag unique to this run, so ids and topics never collide
    /// with earlier runs or other users of the broker.
    pub run: String,
    /// Index of the test in this run; part of every id and topic.
    pub seq: u32,
    /// Features the operator has not declared absent.
    pub features: Arc<BTreeSet<Feature>>,
}

impl Ctx {
    /// A client identifier unique to this test: at most 23 characters of
    /// `[0-9a-zA-Z]`, which every server must accept [MQTT-3.1.3-5].
    pub fn cid(&self, tag: &str) -> String {
        let v = if self.version.is_v5() { 'f' } else { 'e' };
        let mut s = format!("{}{:04}{v}{tag}", self.run, self.seq);
        s.truncate(23);
        s
    }

    /// A topic unique to this test.
    pub fn topic(&self, tag: &str) -> String {
        format!("cf/{}/{}{}/{tag}", self.run, self.seq, self.version.label())
    }

    /// A CONNECT template: clean, keep alive 60 s.
    pub fn connect_packet(&self, tag: &str) -> Connect {
        Connect::new(self.version, &self.cid(tag))
    }

    /// Opens a TCP connection.
    pub async fn open(&self) -> Step<Client> {
        Client::open(&self.addr, self.version, self.read_timeout).await
    }

    /// Sends `c` and returns the client and its CONNACK, whatever the code.
    pub async fn connect_any(&self, c: &Connect) -> Step<(Client, Connack)> {
        let mut cl = self.open().await?;
        cl.send(&c.encode()).await?;
        let ack = cl.connack().await?;
        Ok((cl, ack))
    }

    /// Sends `c` and requires success.
    pub async fn connect(&self, c: &Connect) -> Step<(Client, Connack)> {
        let (cl, ack) = self.connect_any(c).await?;
        check!(
            ack.code == 0,
            "CONNACK code {:#04x} refused a valid CONNECT from {}",
            ack.code,
            c.client_id
        );
        Ok((cl, ack))
    }

    /// A connected clean client.
    pub async fn client(&self, tag: &str) -> Step<(Client, Connack)> {
        self.connect(&self.connect_packet(tag)).await
    }

    /// Not applicable unless the operator left `f` enabled.
    pub fn need(&self, f: Feature) -> Step {
        if self.features.contains(&f) {
            Ok(())
        } else {
            Err(Failure::NotApplicable(format!(
                "feature {} declared absent",
                f.name()
            )))
        }
    }

    /// Not applicable when a 5.0 CONNACK declares `f` unavailable.
    pub fn need_in_connack(&self, ack: &Connack, f: Feature) -> Step {
        if !self.version.is_v5() {
            return Ok(());
        }
        let absent = match f {
            Feature::Retain => ack.props.int(prop::RETAIN_AVAILABLE) == Some(0),
            Feature::Wildcards => ack.props.int(prop::WILDCARD_AVAILABLE) == Some(0),
            Feature::SharedSubscriptions => ack.props.int(prop::SHARED_AVAILABLE) == Some(0),
            Feature::SubscriptionIds => ack.props.int(prop::SUBSCRIPTION_ID_AVAILABLE) == Some(0),
            Feature::TopicAlias => ack.props.int(prop::TOPIC_ALIAS_MAXIMUM).unwrap_or(0) == 0,
            Feature::Qos1 => ack.props.int(prop::MAXIMUM_QOS) == Some(0),
            Feature::Qos2 => ack.props.int(prop::MAXIMUM_QOS).is_some_and(|q| q < 2),
            Feature::PersistentSessions | Feature::ZeroLengthClientId => false,
        };
        if absent {
            return Err(Failure::NotApplicable(format!(
                "broker declares {} unavailable in CONNACK",
                f.name()
            )));
        }
        Ok(())
    }

    /// Subscribes `cl` to one filter and requires the granted QoS to be a
    /// success code no higher than requested [MQTT-3.8.4-6] (a lower grant
    /// is allowed, so callers check the level when it matters).
    pub async fn subscribe(&self, cl: &mut Client, pid: u16, filter: &str, opts: u8) -> Step<u8> {
        cl.send(&wire::subscribe(
            self.version,
            pid,
            &[(filter, opts)],
            &Props::new(),
        ))
        .await?;
        let codes = cl.suback(pid).await?;
        check!(
            codes.len() == 1,
            "SUBACK has {} codes for 1 filter [MQTT-3.8.4-5]",
            codes.len()
        );
        check!(
            codes[0] <= (opts & 0x03),
            "SUBACK code {:#04x} for {filter}: refused or higher than requested QoS {}",
            codes[0],
            opts & 0x03
        );
        Ok(codes[0])
    }

    /// Publishes at QoS 0.
    pub async fn publish0(&self, cl: &mut Client, topic: &str, payload: &[u8]) -> Step {
        cl.send(&Publish::new(topic, payload).encode(self.version))
            .await
    }

    /// Clears a retained message left by a test.
    pub async fn clear_retained(&self, topic: &str) -> Step {
        let (mut cl, _) = self.client("clr").await?;
        cl.send(&Publish::new(topic, b"").retain(true).encode(self.version))
            .await?;
        cl.ping().await?;
        cl.disconnect().await
    }

    /// After a bad input closed one connection, the broker must still serve
    /// others: a fresh client subscribes, publishes and receives its message.
    pub async fn still_served(&self) -> Step {
        let topic = self.topic("alive");
        let (mut cl, _) = self
            .client("ok")
            .await
            .map_err(|e| Failure::Spec(format!("broker no longer serves new clients: {e}")))?;
        self.subscribe(&mut cl, 1, &topic, 0).await?;
        self.publish0(&mut cl, &topic, b"alive").await?;
        let m = cl.publish().await?;
        check!(
            m.topic == topic && m.payload == b"alive",
            "fresh client got the wrong message after bad input: {m:?}"
        );
        cl.disconnect().await
    }

    /// Sends `bytes` on a new connection (without CONNECT) and returns it.
    pub async fn raw(&self, bytes: &[u8]) -> Step<Client> {
        let mut cl = self.open().await?;
        cl.send_lenient(bytes).await?;
        Ok(cl)
    }

    /// Time the broker is given to close after bad input.
    pub fn close_deadline(&self) -> Duration {
        self.read_timeout
    }
}

/// How a broker must react to a bad input.
#[derive(Debug, Clone, Copy)]
pub enum Close {
    /// Bad CONNECT. 3.1.1: close without CONNACK [MQTT-3.1.4-1]. 5.0: close,
    /// optionally after a CONNACK whose code is one of these
    /// [MQTT-4.13.1-1]; never a DISCONNECT before CONNACK [MQTT-3.14.0-1].
    Connect(&'static [u8]),
    /// Bad CONNECT that requires a CONNACK with these codes (3.1.1, 5.0)
    /// before the close.
    ConnackThen(u8, u8),
    /// Bad packet after CONNECT. 3.1.1: close, nothing sent. 5.0: close,
    /// optionally after DISCONNECT whose reason code is one of these
    /// (the spec says SHOULD send it, so its absence is accepted).
    Packet(&'static [u8]),
}

/// Generic 5.0 codes for a malformed packet or a protocol error.
pub const MALFORMED_OR_PROTOCOL: &[u8] = &[0x81, 0x82];

/// How strictly a bad input must be rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rigor {
    /// The connection must be closed: always in 3.1.1 ([MQTT-4.8.0-1]:
    /// "if either the Server or Client encounters a protocol violation, it
    /// MUST close the Network Connection"), and in 5.0 where a statement
    /// tells the server to close (e.g. [MQTT-3.1.4-1], [MQTT-3.8.1-1]).
    Required,
    /// 3.1.1 as `Required`. In 5.0 the spec defines the input as malformed
    /// or a protocol error but leaves the server free not to check it
    /// (section 4.13.1: "The rigor with which a Client or Server checks an
    /// MQTT Control Packet it has received will be a compromise ...";
    /// [MQTT-4.13.1-1] applies "when a Server detects" one). A 5.0 broker
    /// that tolerates the input is reported not applicable, provided it
    /// keeps serving; one that closes must do so correctly.
    Discretionary5,
}

/// What happened after a bad input.
#[derive(Debug)]
pub enum Closing {
    /// Closed, after these packets.
    Closed(Vec<Packet>),
    /// Still open at the deadline, after these packets.
    Open(Vec<Packet>),
}

/// Reads until the broker closes `cl` or the close deadline passes.
pub async fn observe_close(ctx: &Ctx, cl: &mut Client) -> Step<Closing> {
    let deadline = tokio::time::Instant::now() + ctx.close_deadline();
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match cl.next_event(left).await? {
            crate::client::Event::Closed => return Ok(Closing::Closed(seen)),
            crate::client::Event::Quiet => return Ok(Closing::Open(seen)),
            crate::client::Event::Packet(p) => seen.push(p),
        }
    }
}

/// Checks that `cl` is closed as `how` requires, with `rigor`.
pub async fn expect_close_rigor(ctx: &Ctx, cl: &mut Client, how: Close, rigor: Rigor) -> Step {
    let seen = match observe_close(ctx, cl).await? {
        Closing::Closed(seen) => seen,
        Closing::Open(seen) if rigor == Rigor::Discretionary5 && ctx.version.is_v5() => {
            check!(
                !seen.iter().any(|p| matches!(p, Packet::Disconnect { .. })),
                "DISCONNECT sent but the connection stayed open [MQTT-3.14.4-1]"
            );
            ctx.still_served().await?;
            return Err(Failure::NotApplicable(
                "5.0 broker tolerates this input and keeps serving (section 4.13.1 leaves the \
                 rigor of checks to the server)"
                    .into(),
            ));
        }
        Closing::Open(seen) => {
            return Err(Failure::Spec(format!(
                "connection still open {:?} after the bad input (packets seen: {})",
                ctx.close_deadline(),
                names(&seen)
            )))
        }
    };
    judge_close(ctx, &seen, how)
}

/// Checks that `cl` is closed as `how` requires.
pub async fn expect_close(ctx: &Ctx, cl: &mut Client, how: Close) -> Step {
    expect_close_rigor(ctx, cl, how, Rigor::Required).await
}

/// Judges the packets a broker sent before closing.
fn judge_close(ctx: &Ctx, seen: &[Packet], how: Close) -> Step {
    let v5 = ctx.version.is_v5();
    match how {
        Close::ConnackThen(c311, c5) => {
            let want = if v5 { c5 } else { c311 };
            match seen {
                [Packet::Connack {
                    code,
                    session_present,
                    ..
                }] if *code == want => {
                    check!(
                        !session_present,
                        "session present 1 with refusal code {want:#04x} [MQTT-3.2.2-4 (3.1.1)] \
                         [MQTT-3.2.2-6 (5.0)]"
                    );
                    Ok(())
                }
                _ => Err(Failure::Spec(format!(
                    "expected CONNACK {want:#04x} then close, got {}: {seen:?}",
                    names(seen)
                ))),
            }
        }
        Close::Connect(codes) => match seen {
            [] => Ok(()),
            [Packet::Connack { code, .. }] if v5 && codes.contains(code) => Ok(()),
            [Packet::Connack { code, .. }] if v5 => Err(Failure::Spec(format!(
                "CONNACK code {code:#04x} before close; the error calls for one of {codes:02x?} \
                 [MQTT-4.13.1-1]"
            ))),
            [Packet::Connack { code, .. }] => Err(Failure::Spec(format!(
                "CONNACK {code:#04x} sent for a malformed CONNECT; 3.1.1 requires closing \
                 without CONNACK [MQTT-3.1.4-1] [MQTT-3.2.2-6]"
            ))),
            _ => Err(Failure::Spec(format!(
                "unexpected packets before close: {}: {seen:?}",
                names(seen)
            ))),
        },
        Close::Packet(codes) => match seen {
            [] => Ok(()),
            [Packet::Disconnect { code, .. }] if v5 && codes.contains(code) => Ok(()),
            [Packet::Disconnect { code, .. }] if v5 => Err(Failure::Spec(format!(
                "DISCONNECT reason {code:#04x}; this error calls for one of {codes:02x?} \
                 [MQTT-4.13.1-1] [MQTT-3.14.2-1]"
            ))),
            _ => Err(Failure::Spec(format!(
                "expected the connection to be closed, got {} first: {seen:?}",
                names(seen)
            ))),
        },
    }
}

/// A CONNECT with a 5.0 Session Expiry Interval.
pub fn with_expiry(mut c: Connect, secs: u32) -> Connect {
    if c.version.is_v5() {
        c.props = c.props.u32(prop::SESSION_EXPIRY, secs);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Properties;

    fn ctx(v: Version) -> Ctx {
        Ctx {
            addr: "127.0.0.1:1".into(),
            version: v,
            read_timeout: Duration::from_millis(100),
            quiet: Duration::from_millis(50),
            run: "qtest0".into(),
            seq: 7,
            features: Arc::new(Feature::ALL.into_iter().collect()),
        }
    }

    fn disconnect(code: u8) -> Packet {
        Packet::Disconnect {
            code,
            props: Properties::default(),
        }
    }

    fn connack(code: u8) -> Packet {
        Packet::Connack {
            session_present: false,
            code,
            props: Properties::default(),
        }
    }

    #[test]
    fn a_bare_close_always_satisfies_a_close_rule() {
        for v in [Version::V311, Version::V5] {
            assert!(judge_close(&ctx(v), &[], Close::Packet(MALFORMED_OR_PROTOCOL)).is_ok());
            assert!(judge_close(&ctx(v), &[], Close::Connect(MALFORMED_OR_PROTOCOL)).is_ok());
        }
    }

    #[test]
    fn a_5_disconnect_must_carry_an_allowed_code_and_3_1_1_has_none() {
        let v5 = ctx(Version::V5);
        assert!(judge_close(&v5, &[disconnect(0x81)], Close::Packet(&[0x81, 0x82])).is_ok());
        assert!(judge_close(&v5, &[disconnect(0x00)], Close::Packet(&[0x81, 0x82])).is_err());
        assert!(judge_close(&v5, &[disconnect(0x94)], Close::Packet(&[0x81, 0x82])).is_err());
        let v3 = ctx(Version::V311);
        assert!(judge_close(&v3, &[disconnect(0x00)], Close::Packet(&[0x81])).is_err());
    }

    #[test]
    fn a_bad_connect_may_get_connack_only_in_5_and_never_disconnect() {
        let v5 = ctx(Version::V5);
        assert!(judge_close(&v5, &[connack(0x81)], Close::Connect(&[0x81])).is_ok());
        assert!(judge_close(&v5, &[connack(0x00)], Close::Connect(&[0x81])).is_err());
        assert!(judge_close(&v5, &[disconnect(0x81)], Close::Connect(&[0x81])).is_err());
        let v3 = ctx(Version::V311);
        assert!(judge_close(&v3, &[connack(0x02)], Close::Connect(&[0x02])).is_err());
        assert!(judge_close(&v3, &[connack(0x02)], Close::ConnackThen(0x02, 0x85)).is_ok());
        assert!(judge_close(&v3, &[], Close::ConnackThen(0x02, 0x85)).is_err());
    }

    #[test]
    fn client_ids_are_short_alphanumeric_and_distinct_per_version() {
        let a = ctx(Version::V311).cid("abcdefghijklmnop");
        let b = ctx(Version::V5).cid("abcdefghijklmnop");
        assert!(a.len() <= 23 && a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
