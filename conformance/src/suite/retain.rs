//! 04: retained messages.

use crate::case;
use crate::check;
use crate::client::{Client, Step};
use crate::suite::{Ctx, Feature, TestCase};
use crate::wire::{kind, sub_opts, Publish};

pub fn cases() -> Vec<TestCase> {
    vec![
        case!(
            "04-retain/001",
            "a retained message is sent to a new subscriber with RETAIN 1",
            [
                "MQTT-3.3.1-5",
                "MQTT-3.3.1-6 (3.1.1)",
                "MQTT-3.3.1-8 (3.1.1)",
                "MQTT-3.3.1-9 (5.0)"
            ],
            Both,
            [Retain],
            t001
        ),
        case!(
            "04-retain/002",
            "a newer retained message replaces the older one",
            ["MQTT-3.3.1-5", "MQTT-3.3.1-7 (3.1.1)"],
            Both,
            [Retain],
            t002
        ),
        case!(
            "04-retain/003",
            "an empty retained message deletes the retained message and is not stored",
            [
                "MQTT-3.3.1-10 (3.1.1)",
                "MQTT-3.3.1-11 (3.1.1)",
                "MQTT-3.3.1-6 (5.0)",
                "MQTT-3.3.1-7 (5.0)"
            ],
            Both,
            [Retain],
            t003
        ),
        case!(
            "04-retain/004",
            "a non-retained message neither stores nor replaces the retained message",
            ["MQTT-3.3.1-12 (3.1.1)", "MQTT-3.3.1-8 (5.0)"],
            Both,
            [Retain],
            t004
        ),
        case!(
            "04-retain/005",
            "an existing subscriber gets a retained publication with RETAIN 0",
            ["MQTT-3.3.1-9 (3.1.1)", "MQTT-3.3.1-12 (5.0)"],
            Both,
            [Retain],
            t005
        ),
        case!(
            "04-retain/006",
            "Retain As Published keeps RETAIN 1 for an existing subscriber",
            ["MQTT-3.3.1-13 (5.0)"],
            Only5,
            [Retain],
            t006
        ),
        case!(
            "04-retain/007",
            "Retain Handling 1 sends retained messages only for a new subscription",
            ["MQTT-3.3.1-10 (5.0)"],
            Only5,
            [Retain],
            t007
        ),
        case!(
            "04-retain/008",
            "Retain Handling 2 sends no retained messages",
            ["MQTT-3.3.1-11 (5.0)"],
            Only5,
            [Retain],
            t008
        ),
        case!(
            "04-retain/009",
            "re-subscribing re-sends the retained messages",
            ["MQTT-3.8.4-3", "MQTT-3.8.4-4 (5.0)", "MQTT-3.3.1-9 (5.0)"],
            Both,
            [Retain],
            t009
        ),
        case!(
            "04-retain/010",
            "a wildcard subscription receives every matching retained message",
            [
                "MQTT-3.3.1-6 (3.1.1)",
                "MQTT-3.3.1-9 (5.0)",
                "MQTT-4.7.1-2 (3.1.1)",
                "MQTT-4.7.1-1 (5.0)"
            ],
            Both,
            [Retain, Wildcards],
            t010
        ),
        case!(
            "04-retain/011",
            "retained messages are not part of the session: a clean connect keeps them",
            ["MQTT-3.1.2-7 (3.1.1)"],
            Both,
            [Retain],
            t011
        ),
    ]
}

/// Publishes a retained message at QoS 1 (so it is stored before we go on).
async fn put(ctx: &Ctx, topic: &str, payload: &[u8]) -> Step {
    let (mut p, ack) = ctx.client("rp").await?;
    ctx.need_in_connack(&ack, Feature::Retain)?;
    p.send(
        &Publish::new(topic, payload)
            .retain(true)
            .qos(1, 1)
            .encode(ctx.version),
    )
    .await?;
    p.ack(kind::PUBACK).await?;
    p.disconnect().await
}

/// Runs `body`, then clears the retained `topic` whatever happened.
async fn cleanup(ctx: &Ctx, topics: &[&str], r: Step) -> Step {
    for t in topics {
        ctx.clear_retained(t).await?;
    }
    r
}

async fn subscriber(ctx: &Ctx, filter: &str, opts: u8) -> Step<Client> {
    let (mut s, _) = ctx.client("rs").await?;
    ctx.subscribe(&mut s, 1, filter, opts).await?;
    Ok(s)
}

async fn t001(ctx: Ctx) -> Step {
    let topic = ctx.topic("r");
    let r = async {
        put(&ctx, &topic, b"kept").await?;
        let mut s = subscriber(&ctx, &topic, 0).await?;
        let m = s.publish().await?;
        check!(
            m.payload == b"kept",
            "wrong retained payload {:?}",
            m.payload
        );
        check!(
            m.retain,
            "retained message sent on subscribe with RETAIN 0 [MQTT-3.3.1-8]"
        );
        s.disconnect().await
    }
    .await;
    cleanup(&ctx, &[&topic], r).await
}

async fn t002(ctx: Ctx) -> Step {
    let topic = ctx.topic("r");
    let r = async {
        put(&ctx, &topic, b"old").await?;
        put(&ctx, &topic, b"new").await?;
        let mut s = subscriber(&ctx, &topic, 0).await?;
        let got = s.drain(ctx.quiet).await?;
        let payloads: Vec<&[u8]> = got.iter().map(|m| m.payload.as_slice()).collect();
        check!(
            payloads == [&b"new"[..]],
            "expected only the newer retained message, got {} messages [MQTT-3.3.1-5]",
            payloads.len()
        );
        s.disconnect().await?;
        // A QoS 0 retained message also replaces it. 3.1.1 lets the server
        // discard the QoS 0 one afterwards (SHOULD store, MAY discard), but
        // never keep the previous one [MQTT-3.3.1-7 (3.1.1)]; 5.0 has no
        // such latitude [MQTT-3.3.1-5].
        let (mut p, _) = ctx.client("rp").await?;
        p.send(
            &Publish::new(&topic, b"zero")
                .retain(true)
                .encode(ctx.version),
        )
        .await?;
        p.disconnect().await?;
        let mut s = subscriber(&ctx, &topic, 0).await?;
        let got = s.drain(ctx.quiet).await?;
        let payloads: Vec<&[u8]> = got.iter().map(|m| m.payload.as_slice()).collect();
        let ok = payloads == [&b"zero"[..]] || (!ctx.version.is_v5() && payloads.is_empty());
        check!(
            ok,
            "after a QoS 0 retained publication the retained messages are {payloads:?} \
             [MQTT-3.3.1-7 (3.1.1)] [MQTT-3.3.1-5 (5.0)]"
        );
        s.disconnect().await
    }
    .await;
    cleanup(&ctx, &[&topic], r).await
}

async fn t003(ctx: Ctx) -> Step {
    let topic = ctx.topic("r");
    let r = async {
        put(&ctx, &topic, b"doomed").await?;
        put(&ctx, &topic, b"").await?;
        let mut s = subscriber(&ctx, &topic, 0).await?;
        s.quiet(
            ctx.quiet,
            "a retained message survived an empty retained publication [MQTT-3.3.1-10]",
        )
        .await?;
        s.disconnect().await
    }
    .await;
    cleanup(&ctx, &[&topic], r).await
}

async fn t004(ctx: Ctx) -> Step {
    let topic = ctx.topic("r");
    let r = async {
        put(&ctx, &topic, b"kept").await?;
        let (mut p, _) = ctx.client("p").await?;
        ctx.publish0(&mut p, &topic, b"transient").await?;
        ctx.publish0(&mut p, &topic, b"").await?;
        // Both QoS 0 publications must be routed before the subscriber
        // exists, or it may legitimately receive them live.
        p.ping().await?;
        p.disconnect().await?;
        let mut s = subscriber(&ctx, &topic, 0).await?;
        let got = s.drain(ctx.quiet).await?;
        let payloads: Vec<&[u8]> = got.iter().map(|m| m.payload.as_slice()).collect();
        check!(
            payloads == [&b"kept"[..]],
            "non-retained publications changed the retained message: got {payloads:?} \
             [MQTT-3.3.1-12]"
        );
        s.disconnect().await
    }
    .await;
    cleanup(&ctx, &[&topic], r).await
}

async fn t005(ctx: Ctx) -> Step {
    let topic = ctx.topic("r");
    let r = async {
        let mut s = subscriber(&ctx, &topic, 0).await?;
        put(&ctx, &topic, b"live").await?;
        let m = s.publish().await?;
        check!(
            !m.retain,
            "RETAIN 1 on a message forwarded to an existing subscription [MQTT-3.3.1-9]"
        );
        s.disconnect().await
    }
    .await;
    cleanup(&ctx, &[&topic], r).await
}

async fn t006(ctx: Ctx) -> Step {
    let topic = ctx.topic("r");
    let r = async {
        let mut s = subscriber(&ctx, &topic, sub_opts(0, false, true, 0)).await?;
        put(&ctx, &topic, b"live").await?;
        let m = s.publish().await?;
        check!(
            m.retain,
            "RETAIN 0 though Retain As Published was set [MQTT-3.3.1-13]"
        );
        s.disconnect().await
    }
    .await;
    cleanup(&ctx, &[&topic], r).await
}

async fn t007(ctx: Ctx) -> Step {
    let topic = ctx.topic("r");
    let r = async {
        put(&ctx, &topic, b"kept").await?;
        let mut s = subscriber(&ctx, &topic, sub_opts(0, false, false, 1)).await?;
        let m = s.publish().await?;
        check!(m.retain && m.payload == b"kept", "unexpected {m:?}");
        ctx.subscribe(&mut s, 2, &topic, sub_opts(0, false, false, 1))
            .await?;
        s.quiet(
            ctx.quiet,
            "retained message re-sent for an existing subscription with Retain Handling 1 \
             [MQTT-3.3.1-10]",
        )
        .await?;
        s.disconnect().await
    }
    .await;
    cleanup(&ctx, &[&topic], r).await
}

async fn t008(ctx: Ctx) -> Step {
    let topic = ctx.topic("r");
    let r = async {
        put(&ctx, &topic, b"kept").await?;
        let mut s = subscriber(&ctx, &topic, sub_opts(0, false, false, 2)).await?;
        s.quiet(
            ctx.quiet,
            "retained message sent despite Retain Handling 2 [MQTT-3.3.1-11]",
        )
        .await?;
        s.disconnect().await
    }
    .await;
    cleanup(&ctx, &[&topic], r).await
}

async fn t009(ctx: Ctx) -> Step {
    let topic = ctx.topic("r");
    let r = async {
        put(&ctx, &topic, b"kept").await?;
        let mut s = subscriber(&ctx, &topic, 0).await?;
        s.publish().await?;
        ctx.subscribe(&mut s, 2, &topic, 0).await?;
        let m = s.publish().await?;
        check!(
            m.retain && m.payload == b"kept",
            "retained message not re-sent on re-subscribe [MQTT-3.8.4-3]: {m:?}"
        );
        s.disconnect().await
    }
    .await;
    cleanup(&ctx, &[&topic], r).await
}

async fn t010(ctx: Ctx) -> Step {
    let (a, b) = (ctx.topic("w/a"), ctx.topic("w/b/c"));
    let r = async {
        put(&ctx, &a, b"a").await?;
        put(&ctx, &b, b"b").await?;
        let (mut s, ack) = ctx.client("rs").await?;
        ctx.need_in_connack(&ack, Feature::Wildcards)?;
        ctx.subscribe(&mut s, 1, &ctx.topic("w/#"), 0).await?;
        let got = s.drain(ctx.quiet).await?;
        let mut topics: Vec<String> = got.iter().map(|m| m.topic.clone()).collect();
        topics.sort();
        check!(
            topics == [a.clone(), b.clone()],
            "wildcard subscription got retained topics {topics:?}"
        );
        check!(
            got.iter().all(|m| m.retain),
            "RETAIN 0 on a retained message"
        );
        s.disconnect().await
    }
    .await;
    cleanup(&ctx, &[&a, &b], r).await
}

async fn t011(ctx: Ctx) -> Step {
    let topic = ctx.topic("r");
    let r = async {
        let mut c = ctx.connect_packet("own");
        c.clean = false;
        let c = super::with_expiry(c, 60);
        let (mut p, ack) = ctx.connect(&c).await?;
        ctx.need_in_connack(&ack, Feature::Retain)?;
        p.send(
            &Publish::new(&topic, b"kept")
                .retain(true)
                .qos(1, 1)
                .encode(ctx.version),
        )
        .await?;
        p.ack(kind::PUBACK).await?;
        p.disconnect().await?;
        // The publisher's session is discarded; the retained message stays.
        let (p, _) = ctx.client("own").await?;
        p.disconnect().await?;
        let mut s = subscriber(&ctx, &topic, 0).await?;
        let m = s.publish().await?;
        check!(m.payload == b"kept", "unexpected {m:?}");
        s.disconnect().await
    }
    .await;
    cleanup(&ctx, &[&topic], r).await
}
