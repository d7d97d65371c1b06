//! 05: sessions that outlive connections, clean starts, takeover.

use std::time::Duration;

use crate::case;
use crate::check;
use crate::client::{Client, Connack, Failure, Step};
use crate::decode::Packet;
use crate::suite::{with_expiry, Ctx, TestCase};
use crate::wire::{self, kind, Publish};

pub fn cases() -> Vec<TestCase> {
    vec![
        case!(
            "05-session/001",
            "a persistent session keeps subscriptions and queues QoS 1 messages while offline",
            [
                "MQTT-3.1.2-4 (3.1.1)",
                "MQTT-3.1.2-5",
                "MQTT-3.2.2-2 (3.1.1)",
                "MQTT-3.2.2-3 (5.0)",
                "MQTT-4.5.0-1 (3.1.1)"
            ],
            Both,
            [PersistentSessions, Qos1],
            t001
        ),
        case!(
            "05-session/002",
            "a clean start discards the previous session",
            [
                "MQTT-3.1.2-6 (3.1.1)",
                "MQTT-3.1.2-4 (5.0)",
                "MQTT-3.2.2-1 (3.1.1)",
                "MQTT-3.2.2-2 (5.0)"
            ],
            Both,
            [PersistentSessions],
            t002
        ),
        case!(
            "05-session/003",
            "no stored session: session present 0 even with clean session 0",
            ["MQTT-3.2.2-3 (3.1.1)", "MQTT-3.1.2-6 (5.0)"],
            Both,
            [],
            t003
        ),
        case!(
            "05-session/004",
            "a second connection with the same client id closes the first",
            ["MQTT-3.1.4-2 (3.1.1)", "MQTT-3.1.4-3 (5.0)"],
            Both,
            [],
            t004
        ),
        case!(
            "05-session/005",
            "an unacknowledged QoS 1 message is re-sent on resume with DUP 1 and the same id",
            ["MQTT-4.4.0-1", "MQTT-3.3.1-1", "MQTT-2.3.1-3 (3.1.1)"],
            Both,
            [PersistentSessions, Qos1],
            t005
        ),
        case!(
            "05-session/006",
            "an unanswered PUBREL is re-sent on resume",
            ["MQTT-4.4.0-1", "MQTT-4.3.3-1"],
            Both,
            [PersistentSessions, Qos2],
            t006
        ),
        case!(
            "05-session/007",
            "session expiry 0 (absent) ends the session with the connection",
            ["MQTT-3.1.2-23 (5.0)"],
            Only5,
            [],
            t007
        ),
        case!(
            "05-session/008",
            "a session is discarded once its expiry interval has passed",
            ["MQTT-3.1.2-23 (5.0)", "MQTT-4.1.0-2 (5.0)"],
            Only5,
            [PersistentSessions],
            t008
        ),
        case!(
            "05-session/009",
            "DISCONNECT may raise the session expiry of a session that had one",
            ["MQTT-3.14.2-2 (5.0)", "MQTT-3.1.2-23 (5.0)"],
            Only5,
            [PersistentSessions],
            t009
        ),
    ]
}

/// Connects with clean session 0 (5.0: clean start 0, expiry `expiry`).
async fn persistent(ctx: &Ctx, tag: &str, expiry: u32) -> Step<(Client, Connack)> {
    let mut c = ctx.connect_packet(tag);
    c.clean = false;
    ctx.connect(&with_expiry(c, expiry)).await
}

/// Starts a new session that outlives the connection, discarding any old
/// one. 5.0: clean start 1 with an expiry. 3.1.1 has no such single
/// CONNECT (clean session 1 is discarded at disconnect), so connect clean
/// once to discard, then with clean session 0.
async fn fresh_persistent(ctx: &Ctx, tag: &str, expiry: u32) -> Step<(Client, Connack)> {
    if ctx.version.is_v5() {
        let c = with_expiry(ctx.connect_packet(tag), expiry);
        return ctx.connect(&c).await;
    }
    end_session(ctx, tag).await?;
    let (cl, ack) = persistent(ctx, tag, expiry).await?;
    check!(
        !ack.session_present,
        "session present 1 right after a clean session ended [MQTT-3.1.2-6]"
    );
    Ok((cl, ack))
}

/// Ends a test's persistent session so the broker does not keep it.
async fn end_session(ctx: &Ctx, tag: &str) -> Step {
    let (cl, _) = ctx.client(tag).await?;
    cl.disconnect().await
}

async fn t001(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut s, _) = fresh_persistent(&ctx, "p", 300).await?;
    ctx.subscribe(&mut s, 1, &topic, 1).await?;
    s.disconnect().await?;
    let (mut p, _) = ctx.client("pub").await?;
    p.send(
        &Publish::new(&topic, b"queued")
            .qos(1, 1)
            .encode(ctx.version),
    )
    .await?;
    p.ack(kind::PUBACK).await?;
    p.disconnect().await?;
    let (mut s, ack) = persistent(&ctx, "p", 300).await?;
    check!(
        ack.session_present,
        "session present 0 when resuming a stored session [MQTT-3.2.2-2]"
    );
    let m = s.publish().await?;
    check!(
        m.payload == b"queued" && m.qos == 1,
        "offline QoS 1 message not delivered on resume: {m:?}"
    );
    s.send(&wire::ack(kind::PUBACK, m.pid.unwrap_or(0))).await?;
    // The subscription itself survived too.
    let (mut p, _) = ctx.client("pub").await?;
    ctx.publish0(&mut p, &topic, b"live").await?;
    let m = s.publish().await?;
    check!(m.payload == b"live", "subscription lost on resume: {m:?}");
    p.disconnect().await?;
    s.disconnect().await?;
    end_session(&ctx, "p").await
}

async fn t002(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut s, _) = fresh_persistent(&ctx, "p", 300).await?;
    ctx.subscribe(&mut s, 1, &topic, 0).await?;
    s.disconnect().await?;
    // A clean start: the stored session (and its subscription) goes away.
    let (s, ack) = ctx
        .connect(&with_expiry(ctx.connect_packet("p"), 300))
        .await?;
    check!(
        !ack.session_present,
        "session present 1 on a clean start [MQTT-3.2.2-1]"
    );
    s.disconnect().await?;
    // Resume whatever is left: in 5.0 the new, empty session (it had an
    // expiry); in 3.1.1 nothing, since a clean session ends with its
    // connection [MQTT-3.1.2-6].
    let (mut s, ack) = persistent(&ctx, "p", 300).await?;
    check!(
        ack.session_present == ctx.version.is_v5(),
        "session present {} after a clean start and reconnect",
        u8::from(ack.session_present)
    );
    let (mut p, _) = ctx.client("pub").await?;
    ctx.publish0(&mut p, &topic, b"x").await?;
    s.quiet(
        ctx.quiet,
        "a subscription survived a clean start [MQTT-3.1.2-6]",
    )
    .await?;
    p.disconnect().await?;
    s.disconnect().await?;
    end_session(&ctx, "p").await
}

async fn t003(ctx: Ctx) -> Step {
    let (s, ack) = persistent(&ctx, "new", 60).await?;
    check!(
        !ack.session_present,
        "session present 1 though no session existed [MQTT-3.2.2-3]"
    );
    s.disconnect().await?;
    end_session(&ctx, "new").await
}

async fn t004(ctx: Ctx) -> Step {
    let (mut first, _) = ctx.client("dup").await?;
    let (mut second, _) = ctx.client("dup").await?;
    let seen = first.closed_within(ctx.close_deadline()).await?;
    match seen.as_slice() {
        [] => {}
        [Packet::Disconnect { code: 0x8E, .. }] if ctx.version.is_v5() => {}
        _ => {
            return Err(Failure::Spec(format!(
                "old connection got {seen:?} before close; 5.0 allows only DISCONNECT 0x8E \
                 [MQTT-3.1.4-3]"
            )))
        }
    }
    second.send(&wire::pingreq()).await?;
    match second.recv("PINGRESP").await? {
        Packet::Pingresp => second.disconnect().await,
        other => Err(Failure::Spec(format!("expected PINGRESP, got {other:?}"))),
    }
}

async fn t005(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut s, _) = fresh_persistent(&ctx, "p", 300).await?;
    ctx.subscribe(&mut s, 1, &topic, 1).await?;
    let (mut p, _) = ctx.client("pub").await?;
    p.send(
        &Publish::new(&topic, b"unacked")
            .qos(1, 1)
            .encode(ctx.version),
    )
    .await?;
    p.ack(kind::PUBACK).await?;
    p.disconnect().await?;
    let first = s.publish().await?;
    s.abort();
    let (mut s, ack) = persistent(&ctx, "p", 300).await?;
    check!(ack.session_present, "session not resumed");
    let again = s.publish().await?;
    check!(
        again.payload == b"unacked",
        "unacknowledged message not re-sent [MQTT-4.4.0-1]"
    );
    check!(again.dup, "re-sent PUBLISH has DUP 0 [MQTT-3.3.1-1]");
    check!(
        again.pid == first.pid,
        "re-sent with packet id {:?}, originally {:?} [MQTT-4.4.0-1]",
        again.pid,
        first.pid
    );
    s.send(&wire::ack(kind::PUBACK, again.pid.unwrap_or(0)))
        .await?;
    s.disconnect().await?;
    end_session(&ctx, "p").await
}

async fn t006(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut s, _) = fresh_persistent(&ctx, "p", 300).await?;
    ctx.subscribe(&mut s, 1, &topic, 2).await?;
    let (mut p, _) = ctx.client("pub").await?;
    p.send(&Publish::new(&topic, b"q2").qos(2, 1).encode(ctx.version))
        .await?;
    p.ack(kind::PUBREC).await?;
    p.send(&wire::ack(kind::PUBREL, 1)).await?;
    p.ack(kind::PUBCOMP).await?;
    p.disconnect().await?;
    let m = s.publish().await?;
    let pid = m.pid.unwrap_or(0);
    s.send(&wire::ack(kind::PUBREC, pid)).await?;
    // Leave without answering the PUBREL (if it came at all).
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.abort();
    let (mut s, ack) = persistent(&ctx, "p", 300).await?;
    check!(ack.session_present, "session not resumed");
    let (rel, _) = s.ack(kind::PUBREL).await?;
    check!(
        rel == pid,
        "PUBREL re-sent for {rel}, expected {pid} [MQTT-4.4.0-1]"
    );
    s.send(&wire::ack(kind::PUBCOMP, pid)).await?;
    let got = s.drain(ctx.quiet).await?;
    check!(
        got.is_empty(),
        "the message was delivered again after PUBREC [MQTT-4.3.3-1]: {got:?}"
    );
    s.disconnect().await?;
    end_session(&ctx, "p").await
}

async fn t007(ctx: Ctx) -> Step {
    let mut c = ctx.connect_packet("p");
    c.clean = false;
    let (s, _) = ctx.connect(&c).await?;
    s.disconnect().await?;
    let (s, ack) = ctx.connect(&c).await?;
    check!(
        !ack.session_present,
        "session with expiry 0 survived its connection [MQTT-3.1.2-23]"
    );
    s.disconnect().await
}

async fn t008(ctx: Ctx) -> Step {
    let (s, ack) = fresh_persistent(&ctx, "p", 1).await?;
    if let Some(granted) = ack.props.int(wire::prop::SESSION_EXPIRY) {
        if granted != 1 {
            return Err(Failure::NotApplicable(format!(
                "broker set the session expiry to {granted}"
            )));
        }
    }
    s.disconnect().await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, ack) = persistent(&ctx, "p", 0).await?;
    check!(
        !ack.session_present,
        "session present 1 after its 1 s expiry interval passed [MQTT-3.1.2-23]"
    );
    s.disconnect().await
}

async fn t009(ctx: Ctx) -> Step {
    let (mut s, _) = fresh_persistent(&ctx, "p", 1).await?;
    s.send(&wire::disconnect(
        ctx.version,
        0,
        &wire::Props::new().u32(wire::prop::SESSION_EXPIRY, 300),
    ))
    .await?;
    let seen = s.closed_within(ctx.close_deadline()).await?;
    check!(seen.is_empty(), "packets after DISCONNECT: {seen:?}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (s, ack) = persistent(&ctx, "p", 0).await?;
    check!(
        ack.session_present,
        "session expiry raised by DISCONNECT was not applied [MQTT-3.14.2-2]"
    );
    s.disconnect().await
}
