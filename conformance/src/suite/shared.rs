//! 12: MQTT 5.0 shared subscriptions.

use std::collections::BTreeSet;

use crate::case;
use crate::check;
use crate::client::{Client, Event, Failure, Step};
use crate::decode::Packet;
use crate::suite::{Ctx, Feature, TestCase};
use crate::wire::{self, kind, Publish};

pub fn cases() -> Vec<TestCase> {
    vec![
        case!(
            "12-shared/001",
            "each message to a share group goes to exactly one member",
            ["MQTT-4.8.2-2 (5.0)", "MQTT-4.8.2-3 (5.0)"],
            Only5,
            [SharedSubscriptions, Qos1],
            t001
        ),
        case!(
            "12-shared/002",
            "a plain subscription on the same filter still gets every message",
            ["MQTT-4.8.2-2 (5.0)"],
            Only5,
            [SharedSubscriptions],
            t002
        ),
        case!(
            "12-shared/003",
            "invalid share names are refused (SUBACK failure) or the connection closed",
            ["MQTT-4.8.2-1 (5.0)", "MQTT-4.8.2-2 (5.0)"],
            Only5,
            [SharedSubscriptions],
            t003
        ),
        case!(
            "12-shared/004",
            "a shared subscription is delivered at the QoS granted to the receiving member",
            ["MQTT-4.8.2-3 (5.0)"],
            Only5,
            [SharedSubscriptions, Qos1],
            t004
        ),
    ]
}

async fn member(ctx: &Ctx, tag: &str, filter: &str, qos: u8) -> Step<Client> {
    let (mut cl, ack) = ctx.client(tag).await?;
    ctx.need_in_connack(&ack, Feature::SharedSubscriptions)?;
    ctx.subscribe(&mut cl, 1, filter, qos).await?;
    Ok(cl)
}

async fn t001(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let filter = format!("$share/g{}/{topic}", ctx.seq);
    let mut a = member(&ctx, "a", &filter, 1).await?;
    let mut b = member(&ctx, "b", &filter, 1).await?;
    let (mut p, _) = ctx.client("p").await?;
    for i in 0..10u16 {
        p.send(
            &Publish::new(&topic, format!("{i}").as_bytes())
                .qos(1, i + 1)
                .encode(ctx.version),
        )
        .await?;
        p.ack(kind::PUBACK).await?;
    }
    let mut seen = Vec::new();
    for cl in [&mut a, &mut b] {
        for m in cl.drain(ctx.quiet).await? {
            if let Some(pid) = m.pid {
                cl.send(&wire::ack(kind::PUBACK, pid)).await?;
            }
            seen.push(String::from_utf8_lossy(&m.payload).into_owned());
        }
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    check!(
        seen.len() == 10 && distinct.len() == 10,
        "share group got {} deliveries ({} distinct) for 10 messages; each goes to exactly one \
         member",
        seen.len(),
        distinct.len()
    );
    p.disconnect().await?;
    a.disconnect().await?;
    b.disconnect().await
}

async fn t002(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let mut shared = member(&ctx, "a", &format!("$share/g/{topic}"), 0).await?;
    let (mut plain, _) = ctx.client("b").await?;
    ctx.subscribe(&mut plain, 1, &topic, 0).await?;
    let (mut p, _) = ctx.client("p").await?;
    for _ in 0..3 {
        ctx.publish0(&mut p, &topic, b"x").await?;
    }
    let s = shared.drain(ctx.quiet).await?;
    let n = plain.drain(ctx.quiet).await?;
    check!(
        s.len() == 3 && n.len() == 3,
        "shared member got {}, plain subscriber {} of 3 messages",
        s.len(),
        n.len()
    );
    p.disconnect().await?;
    shared.disconnect().await?;
    plain.disconnect().await
}

async fn t003(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let mut tolerated = Vec::new();
    for f in [
        format!("$share//{topic}"),
        format!("$share/g+/{topic}"),
        format!("$share/g#/{topic}"),
    ] {
        let (mut cl, ack) = ctx.client("bad").await?;
        ctx.need_in_connack(&ack, Feature::SharedSubscriptions)?;
        cl.send_lenient(&wire::subscribe(
            ctx.version,
            3,
            &[(&f, 0)],
            &wire::Props::new(),
        ))
        .await?;
        match cl.next_event(ctx.read_timeout).await? {
            Event::Closed => {}
            Event::Packet(Packet::Suback { codes, .. }) => {
                check!(codes.len() == 1, "SUBACK {codes:02x?} for one filter");
                if codes[0] < 0x80 {
                    tolerated.push(f.clone());
                }
                cl.disconnect().await?;
            }
            Event::Packet(Packet::Disconnect { code, .. }) => {
                check!(
                    [0x8F, 0x81, 0x82].contains(&code),
                    "DISCONNECT {code:#04x} for invalid shared filter {f:?}"
                );
                cl.closed_within(ctx.close_deadline()).await?;
            }
            other => {
                return Err(Failure::Spec(format!(
                    "invalid shared filter {f:?}: got {other:?}"
                )))
            }
        }
    }
    ctx.still_served().await?;
    if !tolerated.is_empty() {
        // [MQTT-4.8.2-1]/[MQTT-4.8.2-2] bind the client; a server that does
        // not check them is within section 4.13.1.
        return Err(Failure::NotApplicable(format!(
            "broker accepts {tolerated:?} (4.13.1 leaves the rigor of checks to the server)"
        )));
    }
    Ok(())
}

async fn t004(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let mut a = member(&ctx, "a", &format!("$share/g/{topic}"), 0).await?;
    let (mut p, _) = ctx.client("p").await?;
    p.send(&Publish::new(&topic, b"x").qos(1, 1).encode(ctx.version))
        .await?;
    p.ack(kind::PUBACK).await?;
    let m = a.publish().await?;
    check!(
        m.qos == 0,
        "QoS 1 message delivered at QoS {} to a member granted QoS 0 [MQTT-4.8.2-3]",
        m.qos
    );
    p.disconnect().await?;
    a.disconnect().await
}
