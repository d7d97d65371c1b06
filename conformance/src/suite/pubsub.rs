//! 02: SUBSCRIBE, UNSUBSCRIBE, PUBLISH routing and PING.

use crate::case;
use crate::check;
use crate::client::{Failure, Step};
use crate::decode::Packet;
use crate::suite::{Ctx, Feature, TestCase};
use crate::wire::{self, kind, sub_opts, Props, Publish};

pub fn cases() -> Vec<TestCase> {
    vec![
        case!(
            "02-pubsub/001",
            "a subscriber receives a QoS 0 message on its topic, DUP 0, RETAIN 0",
            [
                "MQTT-4.5.0-1 (3.1.1)",
                "MQTT-3.3.1-2",
                "MQTT-3.3.1-9 (3.1.1)",
                "MQTT-3.3.1-12 (5.0)"
            ],
            Both,
            [],
            t001
        ),
        case!(
            "02-pubsub/002",
            "SUBACK has one code per filter, in order, with the SUBSCRIBE's packet id",
            [
                "MQTT-3.8.4-1",
                "MQTT-3.8.4-2",
                "MQTT-3.8.4-4 (3.1.1)",
                "MQTT-3.8.4-5",
                "MQTT-3.8.4-6 (5.0)",
                "MQTT-3.9.3-1 (3.1.1)"
            ],
            Both,
            [Qos1, Qos2],
            t002
        ),
        case!(
            "02-pubsub/003",
            "subscribing again to the same filter replaces the subscription",
            ["MQTT-3.8.4-3"],
            Both,
            [Qos1],
            t003
        ),
        case!(
            "02-pubsub/004",
            "overlapping subscriptions: delivered at the maximum QoS of the matches",
            ["MQTT-3.3.5-1 (3.1.1)", "MQTT-3.3.4-2 (5.0)"],
            Both,
            [Wildcards, Qos1],
            t004
        ),
        case!(
            "02-pubsub/005",
            "UNSUBSCRIBE stops delivery and is answered by UNSUBACK with its packet id",
            ["MQTT-3.10.4-1", "MQTT-3.10.4-2", "MQTT-3.10.4-4"],
            Both,
            [],
            t005
        ),
        case!(
            "02-pubsub/006",
            "UNSUBACK is sent even when no subscription matched",
            ["MQTT-3.10.4-5"],
            Both,
            [],
            t006
        ),
        case!(
            "02-pubsub/007",
            "UNSUBSCRIBE with several filters gets one UNSUBACK (5.0: one code per filter)",
            ["MQTT-3.10.4-6", "MQTT-3.11.3-1 (5.0)"],
            Both,
            [],
            t007
        ),
        case!(
            "02-pubsub/008",
            "PINGREQ is answered by PINGRESP",
            ["MQTT-3.12.4-1"],
            Both,
            [],
            t008
        ),
        case!(
            "02-pubsub/009",
            "delivered QoS is the minimum of published and granted QoS",
            ["MQTT-3.8.4-6 (3.1.1)", "MQTT-3.8.4-8 (5.0)"],
            Both,
            [Qos1, Qos2],
            t009
        ),
        case!(
            "02-pubsub/010",
            "messages from one client on one topic arrive in order",
            ["MQTT-4.6.0-5 (3.1.1)", "MQTT-4.6.0-6"],
            Both,
            [Qos1],
            t010
        ),
        case!(
            "02-pubsub/011",
            "every matching subscriber receives the message",
            ["MQTT-4.5.0-1 (3.1.1)", "MQTT-3.3.2-3"],
            Both,
            [],
            t011
        ),
        case!(
            "02-pubsub/012",
            "No Local: a client does not receive its own publications",
            ["MQTT-3.8.3-3 (5.0)"],
            Only5,
            [],
            t012
        ),
        case!(
            "02-pubsub/013",
            "the payload is delivered unchanged, including an empty one",
            ["MQTT-4.5.0-1 (3.1.1)", "MQTT-3.3.2-3"],
            Both,
            [],
            t013
        ),
    ]
}

async fn t001(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut cl, _) = ctx.client("a").await?;
    ctx.subscribe(&mut cl, 1, &topic, 0).await?;
    ctx.publish0(&mut cl, &topic, b"hello").await?;
    let m = cl.publish().await?;
    check!(m.topic == topic, "topic {:?}, expected {topic:?}", m.topic);
    check!(m.payload == b"hello", "payload changed: {:?}", m.payload);
    check!(m.qos == 0, "QoS {} for a QoS 0 message", m.qos);
    check!(!m.dup, "DUP 1 on a QoS 0 message [MQTT-3.3.1-2]");
    check!(
        !m.retain,
        "RETAIN 1 on a message delivered to an existing subscription [MQTT-3.3.1-9]"
    );
    cl.disconnect().await
}

async fn t002(ctx: Ctx) -> Step {
    let (mut cl, _) = ctx.client("a").await?;
    let (a, b, c) = (ctx.topic("a"), ctx.topic("b"), ctx.topic("c"));
    cl.send(&wire::subscribe(
        ctx.version,
        4242,
        &[(&a, 2), (&b, 0), (&c, 1)],
        &Props::new(),
    ))
    .await?;
    let codes = cl.suback(4242).await?;
    check!(
        codes.len() == 3,
        "SUBACK has {} codes for 3 filters [MQTT-3.8.4-5]",
        codes.len()
    );
    check!(
        codes[1] == 0,
        "QoS 0 request granted {:#04x}, expected 0 [MQTT-3.8.4-5]",
        codes[1]
    );
    check!(
        codes[0] <= 2 && codes[2] <= 1,
        "codes {codes:02x?} are not in request order or exceed requests [MQTT-3.8.4-5]"
    );
    // Each filter is a real subscription [MQTT-3.8.4-4].
    for t in [&a, &b, &c] {
        ctx.publish0(&mut cl, t, b"x").await?;
        let m = cl.publish().await?;
        check!(
            &m.topic == t,
            "expected a message on {t}, got {:?}",
            m.topic
        );
    }
    cl.disconnect().await
}

async fn t003(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut cl, _) = ctx.client("a").await?;
    ctx.subscribe(&mut cl, 1, &topic, 1).await?;
    ctx.subscribe(&mut cl, 2, &topic, 0).await?;
    cl.send(&Publish::new(&topic, b"once").qos(1, 9).encode(ctx.version))
        .await?;
    cl.ack(kind::PUBACK).await?;
    let got = cl.drain(ctx.quiet).await?;
    check!(
        got.len() == 1,
        "{} copies delivered; a repeated SUBSCRIBE must replace, not add [MQTT-3.8.4-3]",
        got.len()
    );
    check!(
        got[0].qos == 0,
        "delivered at QoS {}; the replacing subscription asked for QoS 0 [MQTT-3.8.4-3]",
        got[0].qos
    );
    cl.disconnect().await
}

async fn t004(ctx: Ctx) -> Step {
    let topic = ctx.topic("x/y");
    let wild = ctx.topic("x/+");
    let (mut cl, ack) = ctx.client("a").await?;
    ctx.need_in_connack(&ack, Feature::Wildcards)?;
    ctx.subscribe(&mut cl, 1, &topic, 0).await?;
    let g = ctx.subscribe(&mut cl, 2, &wild, 1).await?;
    check!(g == 1, "QoS 1 subscription granted {g}");
    let (mut p, _) = ctx.client("p").await?;
    p.send(&Publish::new(&topic, b"m").qos(1, 1).encode(ctx.version))
        .await?;
    p.ack(kind::PUBACK).await?;
    let got = cl.drain(ctx.quiet).await?;
    for m in &got {
        if let Some(pid) = m.pid {
            cl.send(&wire::ack(kind::PUBACK, pid)).await?;
        }
    }
    check!(
        got.iter().any(|m| m.qos == 1),
        "no copy delivered at QoS 1 (got QoS {:?}) [MQTT-3.3.5-1]",
        got.iter().map(|m| m.qos).collect::<Vec<_>>()
    );
    p.disconnect().await?;
    cl.disconnect().await
}

async fn t005(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut cl, _) = ctx.client("a").await?;
    ctx.subscribe(&mut cl, 1, &topic, 0).await?;
    cl.send(&wire::unsubscribe(ctx.version, 77, &[&topic]))
        .await?;
    let codes = cl.unsuback(77).await?;
    if ctx.version.is_v5() {
        check!(
            codes == [0x00],
            "UNSUBACK codes {codes:02x?} for an existing subscription"
        );
    }
    ctx.publish0(&mut cl, &topic, b"gone").await?;
    cl.quiet(
        ctx.quiet,
        "message delivered after UNSUBSCRIBE [MQTT-3.10.4-2]",
    )
    .await?;
    cl.disconnect().await
}

async fn t006(ctx: Ctx) -> Step {
    let (mut cl, _) = ctx.client("a").await?;
    cl.send(&wire::unsubscribe(ctx.version, 5, &[&ctx.topic("never")]))
        .await?;
    let codes = cl.unsuback(5).await?;
    if ctx.version.is_v5() {
        check!(
            codes == [0x00] || codes == [0x11],
            "UNSUBACK codes {codes:02x?}; expected 0x00 or 0x11 (No subscription existed)"
        );
    }
    cl.disconnect().await
}

async fn t007(ctx: Ctx) -> Step {
    let (a, b) = (ctx.topic("a"), ctx.topic("b"));
    let (mut cl, _) = ctx.client("a").await?;
    ctx.subscribe(&mut cl, 1, &a, 0).await?;
    ctx.subscribe(&mut cl, 2, &b, 0).await?;
    cl.send(&wire::unsubscribe(ctx.version, 3, &[&a, &b]))
        .await?;
    let codes = cl.unsuback(3).await?;
    if ctx.version.is_v5() {
        check!(
            codes == [0x00, 0x00],
            "UNSUBACK codes {codes:02x?}; expected one success per filter [MQTT-3.11.3-1]"
        );
    }
    ctx.publish0(&mut cl, &a, b"x").await?;
    ctx.publish0(&mut cl, &b, b"x").await?;
    cl.quiet(
        ctx.quiet,
        "delivery after a multi-filter UNSUBSCRIBE [MQTT-3.10.4-6]",
    )
    .await?;
    check!(
        cl.pending_is_empty(),
        "unexpected buffered packets after UNSUBSCRIBE"
    );
    cl.disconnect().await
}

async fn t008(ctx: Ctx) -> Step {
    let (mut cl, _) = ctx.client("a").await?;
    for _ in 0..3 {
        cl.send(&wire::pingreq()).await?;
        match cl.recv("PINGRESP").await? {
            Packet::Pingresp => {}
            other => {
                return Err(Failure::Spec(format!(
                    "expected PINGRESP, got {other:?} [MQTT-3.12.4-1]"
                )))
            }
        }
    }
    cl.disconnect().await
}

async fn t009(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut sub, _) = ctx.client("s").await?;
    let g = ctx.subscribe(&mut sub, 1, &topic, 1).await?;
    check!(g == 1, "QoS 1 subscription granted {g}");
    let (mut p, _) = ctx.client("p").await?;
    // QoS 2 publication to a QoS 1 subscription arrives at QoS 1.
    p.send(&Publish::new(&topic, b"two").qos(2, 3).encode(ctx.version))
        .await?;
    let (pid, _) = p.ack(kind::PUBREC).await?;
    p.send(&wire::ack(kind::PUBREL, pid)).await?;
    p.ack(kind::PUBCOMP).await?;
    let m = sub.publish().await?;
    check!(
        m.qos == 1,
        "QoS 2 message delivered at QoS {} on a QoS 1 subscription [MQTT-3.8.4-6]",
        m.qos
    );
    if let Some(pid) = m.pid {
        sub.send(&wire::ack(kind::PUBACK, pid)).await?;
    }
    // QoS 0 publication stays QoS 0.
    ctx.publish0(&mut p, &topic, b"zero").await?;
    let m = sub.publish().await?;
    check!(
        m.qos == 0,
        "QoS 0 message delivered at QoS {} [MQTT-3.8.4-6]",
        m.qos
    );
    p.disconnect().await?;
    sub.disconnect().await
}

async fn t010(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut sub, _) = ctx.client("s").await?;
    ctx.subscribe(&mut sub, 1, &topic, 1).await?;
    let (mut p, _) = ctx.client("p").await?;
    for i in 0..20u16 {
        p.send(
            &Publish::new(&topic, format!("{i}").as_bytes())
                .qos(1, i + 1)
                .encode(ctx.version),
        )
        .await?;
    }
    for _ in 0..20 {
        p.ack(kind::PUBACK).await?;
    }
    for i in 0..20 {
        let m = sub.publish().await?;
        check!(
            m.payload == format!("{i}").as_bytes(),
            "message {i} out of order: got {:?} [MQTT-4.6.0-6]",
            String::from_utf8_lossy(&m.payload)
        );
        if let Some(pid) = m.pid {
            sub.send(&wire::ack(kind::PUBACK, pid)).await?;
        }
    }
    p.disconnect().await?;
    sub.disconnect().await
}

async fn t011(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut s1, _) = ctx.client("s1").await?;
    let (mut s2, _) = ctx.client("s2").await?;
    ctx.subscribe(&mut s1, 1, &topic, 0).await?;
    ctx.subscribe(&mut s2, 1, &topic, 0).await?;
    let (mut p, _) = ctx.client("p").await?;
    ctx.publish0(&mut p, &topic, b"fan").await?;
    for s in [&mut s1, &mut s2] {
        let m = s.publish().await?;
        check!(
            m.topic == topic && m.payload == b"fan",
            "wrong message: {m:?}"
        );
    }
    p.disconnect().await?;
    s1.disconnect().await?;
    s2.disconnect().await
}

async fn t012(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut cl, _) = ctx.client("a").await?;
    ctx.subscribe(&mut cl, 1, &topic, sub_opts(0, true, false, 0))
        .await?;
    ctx.publish0(&mut cl, &topic, b"mine").await?;
    cl.quiet(
        ctx.quiet,
        "own publication delivered despite No Local [MQTT-3.8.3-3]",
    )
    .await?;
    // Others' publications still arrive.
    let (mut p, _) = ctx.client("p").await?;
    ctx.publish0(&mut p, &topic, b"theirs").await?;
    let m = cl.publish().await?;
    check!(m.payload == b"theirs", "unexpected message {m:?}");
    p.disconnect().await?;
    cl.disconnect().await
}

async fn t013(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut cl, ack) = ctx.client("a").await?;
    ctx.subscribe(&mut cl, 1, &topic, 0).await?;
    // 20 000 bytes needs a three-byte Remaining Length; stay within a
    // declared 5.0 Maximum Packet Size (headers take well under 200 bytes).
    let limit = ack
        .props
        .int(crate::wire::prop::MAXIMUM_PACKET_SIZE)
        .map_or(20_000, |m| (m as usize).saturating_sub(200).min(20_000));
    let big: Vec<u8> = (0..limit as u32).map(|i| (i % 251) as u8).collect();
    for payload in [&b""[..], &[0u8, 0xFF, 0x80][..], &big[..]] {
        ctx.publish0(&mut cl, &topic, payload).await?;
        let m = cl.publish().await?;
        check!(
            m.payload == payload,
            "payload of {} bytes delivered as {} different bytes",
            payload.len(),
            m.payload.len()
        );
    }
    cl.disconnect().await
}
