//! 10: MQTT 5.0 flow control (Receive Maximum) and Maximum Packet Size.

use crate::case;
use crate::check;
use crate::client::Step;
use crate::suite::{Ctx, TestCase};
use crate::wire::{self, kind, prop, Props, Publish};

pub fn cases() -> Vec<TestCase> {
    vec![
        case!(
            "10-flow/001",
            "the server sends no more unacknowledged QoS 1 messages than the client's Receive Maximum",
            ["MQTT-3.3.4-9 (5.0)"],
            Only5,
            [Qos1],
            t001
        ),
        case!(
            "10-flow/002",
            "a message larger than the client's Maximum Packet Size is not sent to it",
            ["MQTT-3.1.2-24 (5.0)", "MQTT-3.1.2-25 (5.0)"],
            Only5,
            [],
            t002
        ),
    ]
}

async fn t001(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let mut c = ctx.connect_packet("s");
    c.props = Props::new().u16(prop::RECEIVE_MAXIMUM, 2);
    let (mut sub, _) = ctx.connect(&c).await?;
    ctx.subscribe(&mut sub, 1, &topic, 1).await?;
    let (mut p, _) = ctx.client("p").await?;
    for i in 0..5u16 {
        p.send(
            &Publish::new(&topic, &[i as u8])
                .qos(1, i + 1)
                .encode(ctx.version),
        )
        .await?;
        p.ack(kind::PUBACK).await?;
    }
    let first = sub.drain(ctx.quiet).await?;
    check!(
        first.len() == 2,
        "{} unacknowledged QoS 1 messages in flight with Receive Maximum 2 [MQTT-3.3.4-9]",
        first.len()
    );
    let mut total = first.len();
    let mut pending = first;
    // Acknowledge one at a time: each PUBACK frees exactly one slot.
    while total < 5 {
        let m = pending.remove(0);
        sub.send(&wire::ack(kind::PUBACK, m.pid.unwrap_or(0)))
            .await?;
        let more = sub.drain(ctx.quiet).await?;
        check!(
            more.len() == 1,
            "{} messages after freeing one slot (Receive Maximum 2, still unacknowledged: \
             {:?}; new: {:?}) [MQTT-3.3.4-9]",
            more.len(),
            pending
                .iter()
                .map(|m| (m.pid, m.payload.clone(), m.dup))
                .collect::<Vec<_>>(),
            more.iter()
                .map(|m| (m.pid, m.payload.clone(), m.dup))
                .collect::<Vec<_>>()
        );
        total += more.len();
        pending.extend(more);
    }
    for m in pending {
        sub.send(&wire::ack(kind::PUBACK, m.pid.unwrap_or(0)))
            .await?;
    }
    p.disconnect().await?;
    sub.disconnect().await
}

async fn t002(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let mut c = ctx.connect_packet("s");
    c.props = Props::new().u32(prop::MAXIMUM_PACKET_SIZE, 128);
    let (mut sub, _) = ctx.connect(&c).await?;
    ctx.subscribe(&mut sub, 1, &topic, 0).await?;
    let (mut p, _) = ctx.client("p").await?;
    ctx.publish0(&mut p, &topic, &[b'x'; 400]).await?;
    ctx.publish0(&mut p, &topic, b"small").await?;
    let got = sub.drain(ctx.quiet).await?;
    let sizes: Vec<usize> = got.iter().map(|m| m.payload.len()).collect();
    check!(
        sizes == [5],
        "client with Maximum Packet Size 128 received payloads of sizes {sizes:?}; the 400-byte \
         one must be discarded and the small one sent [MQTT-3.1.2-24] [MQTT-3.1.2-25]"
    );
    p.disconnect().await?;
    sub.disconnect().await
}
