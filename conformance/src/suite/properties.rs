//! 09: MQTT 5.0 properties carried with application messages.

use std::time::Duration;

use crate::case;
use crate::check;
use crate::client::{Failure, Step};
use crate::decode::Packet;
use crate::suite::{with_expiry, Ctx, Feature, TestCase};
use crate::wire::{self, kind, prop, Props, Publish};

pub fn cases() -> Vec<TestCase> {
    vec![
        case!(
            "09-properties/001",
            "Payload Format Indicator and Content Type are forwarded unaltered",
            ["MQTT-3.3.2-4 (5.0)", "MQTT-3.3.2-20 (5.0)"],
            Only5,
            [],
            t001
        ),
        case!(
            "09-properties/002",
            "Response Topic and Correlation Data are forwarded unaltered",
            ["MQTT-3.3.2-15 (5.0)", "MQTT-3.3.2-16 (5.0)"],
            Only5,
            [],
            t002
        ),
        case!(
            "09-properties/003",
            "user properties are forwarded, in order",
            ["MQTT-3.3.2-17 (5.0)", "MQTT-3.3.2-18 (5.0)"],
            Only5,
            [],
            t003
        ),
        case!(
            "09-properties/004",
            "Message Expiry Interval is forwarded, reduced by the time waited",
            ["MQTT-3.3.2-6 (5.0)"],
            Only5,
            [PersistentSessions, Qos1],
            t004
        ),
        case!(
            "09-properties/005",
            "an expired message is not delivered to a resuming subscriber",
            ["MQTT-3.3.2-5 (5.0)"],
            Only5,
            [PersistentSessions, Qos1],
            t005
        ),
        case!(
            "09-properties/006",
            "the Subscription Identifier comes back in matching PUBLISH packets",
            ["MQTT-3.3.4-3 (5.0)"],
            Only5,
            [SubscriptionIds],
            t006
        ),
        case!(
            "09-properties/007",
            "with Request Problem Information 0, no Reason String or User Property on acks",
            ["MQTT-3.1.2-29 (5.0)"],
            Only5,
            [Qos1],
            t007
        ),
        case!(
            "09-properties/008",
            "no Topic Alias is sent to a client that did not allow any",
            ["MQTT-3.1.2-27 (5.0)"],
            Only5,
            [],
            t008
        ),
        case!(
            "09-properties/009",
            "a PUBLISH sent to a client carries no Subscription Identifier unless it subscribed with one",
            ["MQTT-3.3.4-3 (5.0)"],
            Only5,
            [],
            t009
        ),
    ]
}

async fn forward(ctx: &Ctx, props: Props) -> Step<crate::decode::Msg> {
    let topic = ctx.topic("t");
    let (mut sub, _) = ctx.client("s").await?;
    ctx.subscribe(&mut sub, 1, &topic, 0).await?;
    let (mut p, _) = ctx.client("p").await?;
    p.send(
        &Publish::new(&topic, b"payload")
            .props(props)
            .encode(ctx.version),
    )
    .await?;
    let m = sub.publish().await?;
    p.disconnect().await?;
    sub.disconnect().await?;
    Ok(m)
}

async fn t001(ctx: Ctx) -> Step {
    let m = forward(
        &ctx,
        Props::new()
            .byte(prop::PAYLOAD_FORMAT, 1)
            .string(prop::CONTENT_TYPE, "application/x-conf; v=1"),
    )
    .await?;
    check!(
        m.props.int(prop::PAYLOAD_FORMAT) == Some(1),
        "Payload Format Indicator lost or changed [MQTT-3.3.2-4]"
    );
    check!(
        m.props.str(prop::CONTENT_TYPE) == Some("application/x-conf; v=1"),
        "Content Type lost or changed [MQTT-3.3.2-20]"
    );
    Ok(())
}

async fn t002(ctx: Ctx) -> Step {
    let m = forward(
        &ctx,
        Props::new()
            .string(prop::RESPONSE_TOPIC, "reply/here")
            .binary(prop::CORRELATION_DATA, &[0, 1, 2, 0xFF]),
    )
    .await?;
    check!(
        m.props.str(prop::RESPONSE_TOPIC) == Some("reply/here"),
        "Response Topic lost or changed [MQTT-3.3.2-15]"
    );
    check!(
        m.props.bin(prop::CORRELATION_DATA) == Some(&[0, 1, 2, 0xFF][..]),
        "Correlation Data lost or changed [MQTT-3.3.2-16]"
    );
    Ok(())
}

async fn t003(ctx: Ctx) -> Step {
    let m = forward(
        &ctx,
        Props::new().user("z", "1").user("a", "2").user("z", "3"),
    )
    .await?;
    let got = m.props.user();
    let want: Vec<(String, String)> = [("z", "1"), ("a", "2"), ("z", "3")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    check!(
        got == want,
        "user properties {got:?}, expected {want:?} in order [MQTT-3.3.2-18]"
    );
    Ok(())
}

async fn offline_then_resume(
    ctx: &Ctx,
    expiry: u32,
    wait: Duration,
) -> Step<Vec<crate::decode::Msg>> {
    let topic = ctx.topic("t");
    let mut c = ctx.connect_packet("s");
    let (mut s, _) = ctx.connect(&with_expiry(c.clone(), 300)).await?;
    ctx.subscribe(&mut s, 1, &topic, 1).await?;
    s.disconnect().await?;
    let (mut p, _) = ctx.client("p").await?;
    p.send(
        &Publish::new(&topic, b"expiring")
            .qos(1, 1)
            .props(Props::new().u32(prop::MESSAGE_EXPIRY, expiry))
            .encode(ctx.version),
    )
    .await?;
    p.ack(kind::PUBACK).await?;
    p.disconnect().await?;
    tokio::time::sleep(wait).await;
    c.clean = false;
    let (mut s, ack) = ctx.connect(&with_expiry(c, 0)).await?;
    check!(ack.session_present, "session not resumed");
    let got = s.drain(ctx.quiet).await?;
    for m in &got {
        if let Some(pid) = m.pid {
            s.send(&wire::ack(kind::PUBACK, pid)).await?;
        }
    }
    s.disconnect().await?;
    Ok(got)
}

async fn t004(ctx: Ctx) -> Step {
    let got = offline_then_resume(&ctx, 100, Duration::from_millis(1200)).await?;
    check!(
        got.len() == 1,
        "expected the queued message, got {}",
        got.len()
    );
    let left = got[0].props.int(prop::MESSAGE_EXPIRY);
    check!(
        left.is_some_and(|l| l < 100),
        "Message Expiry Interval forwarded as {left:?}; must be present and reduced by the \
         time waited (>1 s) [MQTT-3.3.2-6]"
    );
    Ok(())
}

async fn t005(ctx: Ctx) -> Step {
    let got = offline_then_resume(&ctx, 1, Duration::from_millis(2500)).await?;
    check!(
        got.is_empty(),
        "message delivered after its 1 s expiry interval [MQTT-3.3.2-5]"
    );
    Ok(())
}

async fn t006(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut sub, ack) = ctx.client("s").await?;
    ctx.need_in_connack(&ack, Feature::SubscriptionIds)?;
    sub.send(&wire::subscribe(
        ctx.version,
        1,
        &[(&topic, 0)],
        &Props::new().varint(prop::SUBSCRIPTION_ID, 268_435_455),
    ))
    .await?;
    let codes = sub.suback(1).await?;
    check!(codes == [0], "SUBACK {codes:02x?}");
    ctx.publish0(&mut sub, &topic, b"x").await?;
    let m = sub.publish().await?;
    check!(
        m.props.ints(prop::SUBSCRIPTION_ID) == [268_435_455],
        "Subscription Identifier {:?}, expected [268435455] [MQTT-3.3.4-3]",
        m.props.ints(prop::SUBSCRIPTION_ID)
    );
    sub.disconnect().await
}

async fn t007(ctx: Ctx) -> Step {
    let mut c = ctx.connect_packet("a");
    c.props = Props::new().byte(prop::REQUEST_PROBLEM_INFO, 0);
    let (mut cl, _) = ctx.connect(&c).await?;
    let topic = ctx.topic("t");
    cl.send(&wire::subscribe(
        ctx.version,
        1,
        &[(&topic, 1)],
        &Props::new(),
    ))
    .await?;
    let mut packets = vec![cl.recv("SUBACK").await?];
    cl.send(&wire::unsubscribe(ctx.version, 2, &[&ctx.topic("none")]))
        .await?;
    packets.push(cl.recv("UNSUBACK").await?);
    cl.send(
        &Publish::new(&ctx.topic("q"), b"x")
            .qos(1, 3)
            .encode(ctx.version),
    )
    .await?;
    packets.push(cl.recv("PUBACK").await?);
    for p in &packets {
        let props = match p {
            Packet::Suback { props, .. }
            | Packet::Unsuback { props, .. }
            | Packet::Ack { props, .. } => props,
            other => return Err(Failure::Spec(format!("unexpected {other:?}"))),
        };
        check!(
            !props.has(prop::REASON_STRING) && !props.has(prop::USER_PROPERTY),
            "{} carries a Reason String or User Property though Request Problem \
             Information is 0 [MQTT-3.1.2-29]",
            p.name()
        );
    }
    cl.disconnect().await
}

async fn t008(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut sub, _) = ctx.client("s").await?;
    ctx.subscribe(&mut sub, 1, &topic, 0).await?;
    let (mut p, _) = ctx.client("p").await?;
    for _ in 0..5 {
        ctx.publish0(&mut p, &topic, b"x").await?;
    }
    let got = sub.drain(ctx.quiet).await?;
    check!(got.len() == 5, "expected 5 messages, got {}", got.len());
    for m in got {
        check!(
            !m.props.has(prop::TOPIC_ALIAS) && m.topic == topic,
            "Topic Alias sent to a client whose Topic Alias Maximum is 0 [MQTT-3.1.2-27]"
        );
    }
    p.disconnect().await?;
    sub.disconnect().await
}

async fn t009(ctx: Ctx) -> Step {
    let m = forward(&ctx, Props::new()).await?;
    check!(
        !m.props.has(prop::SUBSCRIPTION_ID),
        "Subscription Identifier on a PUBLISH for a subscription made without one"
    );
    Ok(())
}
