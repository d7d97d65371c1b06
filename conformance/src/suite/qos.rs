//! 03: QoS 1 and QoS 2 flows, both directions.

use crate::case;
use crate::check;
use crate::client::Step;
use crate::suite::{Ctx, TestCase};
use crate::wire::{self, kind, Publish};

pub fn cases() -> Vec<TestCase> {
    vec![
        case!(
            "03-qos/001",
            "QoS 1 PUBLISH is answered by PUBACK with the same packet id",
            [
                "MQTT-2.3.1-6 (3.1.1)",
                "MQTT-2.2.1-5 (5.0)",
                "MQTT-4.3.2-2 (3.1.1)",
                "MQTT-4.3.2-4 (5.0)",
                "MQTT-3.3.4-1"
            ],
            Both,
            [Qos1],
            t001
        ),
        case!(
            "03-qos/002",
            "QoS 2 PUBLISH: PUBREC, then PUBREL is answered by PUBCOMP, same packet id",
            [
                "MQTT-2.3.1-6 (3.1.1)",
                "MQTT-2.2.1-5 (5.0)",
                "MQTT-4.3.3-2 (3.1.1)",
                "MQTT-4.3.3-9 (5.0)",
                "MQTT-4.3.3-12 (5.0)"
            ],
            Both,
            [Qos2],
            t002
        ),
        case!(
            "03-qos/003",
            "QoS 1 delivery to a subscriber: non-zero packet id, DUP 0, completed by PUBACK",
            ["MQTT-2.3.1-1 (3.1.1)", "MQTT-2.2.1-4 (5.0)", "MQTT-4.3.2-1"],
            Both,
            [Qos1],
            t003
        ),
        case!(
            "03-qos/004",
            "QoS 2 delivery to a subscriber: PUBLISH, PUBREC, PUBREL (flags 0010), PUBCOMP",
            ["MQTT-4.3.3-1", "MQTT-3.6.1-1", "MQTT-2.2.1-4 (5.0)"],
            Both,
            [Qos2],
            t004
        ),
        case!(
            "03-qos/005",
            "QoS 2 re-sent before PUBREL is acknowledged again but delivered once",
            ["MQTT-4.3.3-2 (3.1.1)", "MQTT-4.3.3-11 (5.0)"],
            Both,
            [Qos2],
            t005
        ),
        case!(
            "03-qos/006",
            "after PUBCOMP the same packet id starts a new QoS 2 message",
            ["MQTT-4.3.3-2 (3.1.1)", "MQTT-4.3.3-13 (5.0)"],
            Both,
            [Qos2],
            t006
        ),
        case!(
            "03-qos/007",
            "after PUBACK the same packet id starts a new QoS 1 message",
            ["MQTT-4.3.2-2 (3.1.1)", "MQTT-4.3.2-5 (5.0)", "MQTT-3.3.1-3"],
            Both,
            [Qos1],
            t007
        ),
        case!(
            "03-qos/008",
            "unacknowledged in-flight messages to one client have distinct packet ids",
            ["MQTT-2.3.1-4 (3.1.1)", "MQTT-2.2.1-4 (5.0)"],
            Both,
            [Qos1],
            t008
        ),
        case!(
            "03-qos/009",
            "PUBREL for an unknown packet id is still answered by PUBCOMP",
            ["MQTT-4.3.3-2 (3.1.1)", "MQTT-4.3.3-12 (5.0)"],
            Both,
            [Qos2],
            t009
        ),
    ]
}

async fn t001(ctx: Ctx) -> Step {
    let (mut cl, _) = ctx.client("a").await?;
    cl.send(
        &Publish::new(&ctx.topic("t"), b"q1")
            .qos(1, 513)
            .encode(ctx.version),
    )
    .await?;
    let (pid, code) = cl.ack(kind::PUBACK).await?;
    check!(pid == 513, "PUBACK for packet id {pid}, expected 513");
    check!(
        code == 0x00 || code == 0x10,
        "PUBACK reason {code:#04x} for an accepted message"
    );
    cl.disconnect().await
}

async fn t002(ctx: Ctx) -> Step {
    let (mut cl, _) = ctx.client("a").await?;
    cl.send(
        &Publish::new(&ctx.topic("t"), b"q2")
            .qos(2, 1027)
            .encode(ctx.version),
    )
    .await?;
    let (pid, code) = cl.ack(kind::PUBREC).await?;
    check!(pid == 1027, "PUBREC for packet id {pid}, expected 1027");
    check!(
        code == 0x00 || code == 0x10,
        "PUBREC reason {code:#04x} for an accepted message"
    );
    cl.send(&wire::ack(kind::PUBREL, 1027)).await?;
    let (pid, code) = cl.ack(kind::PUBCOMP).await?;
    check!(pid == 1027, "PUBCOMP for packet id {pid}, expected 1027");
    check!(code == 0, "PUBCOMP reason {code:#04x}");
    cl.disconnect().await
}

async fn t003(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut sub, _) = ctx.client("s").await?;
    ctx.subscribe(&mut sub, 1, &topic, 1).await?;
    let (mut p, _) = ctx.client("p").await?;
    p.send(&Publish::new(&topic, b"x").qos(1, 1).encode(ctx.version))
        .await?;
    p.ack(kind::PUBACK).await?;
    let m = sub.publish().await?;
    check!(m.qos == 1, "delivered at QoS {}", m.qos);
    check!(!m.dup, "DUP 1 on the first delivery attempt [MQTT-4.3.2-1]");
    let pid = m.pid.unwrap_or(0);
    check!(pid != 0, "QoS 1 PUBLISH without a packet id");
    sub.send(&wire::ack(kind::PUBACK, pid)).await?;
    sub.quiet(ctx.quiet, "redelivery after PUBACK").await?;
    p.disconnect().await?;
    sub.disconnect().await
}

async fn t004(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut sub, _) = ctx.client("s").await?;
    let g = ctx.subscribe(&mut sub, 1, &topic, 2).await?;
    check!(g == 2, "QoS 2 subscription granted {g}");
    let (mut p, _) = ctx.client("p").await?;
    p.send(&Publish::new(&topic, b"x").qos(2, 1).encode(ctx.version))
        .await?;
    p.ack(kind::PUBREC).await?;
    p.send(&wire::ack(kind::PUBREL, 1)).await?;
    p.ack(kind::PUBCOMP).await?;
    let m = sub.publish().await?;
    check!(m.qos == 2, "delivered at QoS {}", m.qos);
    check!(!m.dup, "DUP 1 on the first delivery attempt");
    let pid = m.pid.unwrap_or(0);
    sub.send(&wire::ack(kind::PUBREC, pid)).await?;
    // The decoder already rejects a PUBREL whose flags are not 0010.
    let (rel, _) = sub.ack(kind::PUBREL).await?;
    check!(
        rel == pid,
        "PUBREL packet id {rel} differs from the PUBLISH's {pid}"
    );
    sub.send(&wire::ack(kind::PUBCOMP, pid)).await?;
    sub.quiet(ctx.quiet, "anything after PUBCOMP").await?;
    p.disconnect().await?;
    sub.disconnect().await
}

async fn t005(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut sub, _) = ctx.client("s").await?;
    ctx.subscribe(&mut sub, 1, &topic, 0).await?;
    let (mut p, _) = ctx.client("p").await?;
    let mut msg = Publish::new(&topic, b"once").qos(2, 7);
    p.send(&msg.encode(ctx.version)).await?;
    p.ack(kind::PUBREC).await?;
    msg.dup = true;
    p.send(&msg.encode(ctx.version)).await?;
    let (pid, _) = p.ack(kind::PUBREC).await?;
    check!(pid == 7, "second PUBREC for {pid}");
    p.send(&wire::ack(kind::PUBREL, 7)).await?;
    p.ack(kind::PUBCOMP).await?;
    let got = sub.drain(ctx.quiet).await?;
    check!(
        got.len() == 1,
        "{} copies delivered for one QoS 2 message sent twice before PUBREL [MQTT-4.3.3-2]",
        got.len()
    );
    p.disconnect().await?;
    sub.disconnect().await
}

async fn t006(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut sub, _) = ctx.client("s").await?;
    ctx.subscribe(&mut sub, 1, &topic, 0).await?;
    let (mut p, _) = ctx.client("p").await?;
    for payload in [&b"first"[..], &b"second"[..]] {
        p.send(&Publish::new(&topic, payload).qos(2, 9).encode(ctx.version))
            .await?;
        p.ack(kind::PUBREC).await?;
        p.send(&wire::ack(kind::PUBREL, 9)).await?;
        p.ack(kind::PUBCOMP).await?;
    }
    let got = sub.drain(ctx.quiet).await?;
    let payloads: Vec<&[u8]> = got.iter().map(|m| m.payload.as_slice()).collect();
    check!(
        payloads == [&b"first"[..], &b"second"[..]],
        "expected both messages, got {} [MQTT-4.3.3-2]",
        payloads.len()
    );
    p.disconnect().await?;
    sub.disconnect().await
}

async fn t007(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut sub, _) = ctx.client("s").await?;
    ctx.subscribe(&mut sub, 1, &topic, 0).await?;
    let (mut p, _) = ctx.client("p").await?;
    for payload in [&b"first"[..], &b"second"[..]] {
        let mut m = Publish::new(&topic, payload).qos(1, 11);
        // Even with DUP set, after PUBACK it is a new publication.
        m.dup = payload == b"second";
        p.send(&m.encode(ctx.version)).await?;
        p.ack(kind::PUBACK).await?;
    }
    let got = sub.drain(ctx.quiet).await?;
    check!(
        got.len() == 2,
        "{} messages delivered; the second PUBLISH after PUBACK is new [MQTT-4.3.2-2]",
        got.len()
    );
    check!(
        got.iter().all(|m| !m.dup),
        "incoming DUP 1 copied to the outgoing PUBLISH; it is set independently [MQTT-3.3.1-3]"
    );
    p.disconnect().await?;
    sub.disconnect().await
}

async fn t008(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut sub, _) = ctx.client("s").await?;
    ctx.subscribe(&mut sub, 1, &topic, 1).await?;
    let (mut p, _) = ctx.client("p").await?;
    for i in 0..5u16 {
        p.send(&Publish::new(&topic, b"x").qos(1, i + 1).encode(ctx.version))
            .await?;
        p.ack(kind::PUBACK).await?;
    }
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let m = sub.publish().await?;
        let pid = m.pid.unwrap_or(0);
        check!(pid != 0, "packet id 0");
        check!(
            ids.insert(pid),
            "packet id {pid} reused while still unacknowledged [MQTT-2.3.1-4]"
        );
    }
    for pid in ids {
        sub.send(&wire::ack(kind::PUBACK, pid)).await?;
    }
    p.disconnect().await?;
    sub.disconnect().await
}

async fn t009(ctx: Ctx) -> Step {
    let (mut cl, _) = ctx.client("a").await?;
    cl.send(&wire::ack(kind::PUBREL, 4000)).await?;
    let (pid, code) = cl.ack(kind::PUBCOMP).await?;
    check!(pid == 4000, "PUBCOMP for {pid}");
    // 5.0 may say 0x92 (Packet Identifier not found); 0 is also fine.
    check!(
        code == 0x00 || code == 0x92,
        "PUBCOMP reason {code:#04x}; expected 0x00 or 0x92"
    );
    cl.disconnect().await
}
