//! 11: MQTT 5.0 topic aliases.

use crate::case;
use crate::check;
use crate::client::{Client, Failure, Step};
use crate::suite::{Ctx, Feature, TestCase};
use crate::wire::{prop, Props, Publish};

pub fn cases() -> Vec<TestCase> {
    vec![
        case!(
            "11-alias/001",
            "a Topic Alias set by the client is honoured on later PUBLISH packets",
            ["MQTT-3.3.2-12 (5.0)"],
            Only5,
            [TopicAlias],
            t001
        ),
        case!(
            "11-alias/002",
            "a Topic Alias can be re-mapped to another topic",
            ["MQTT-3.3.2-12 (5.0)"],
            Only5,
            [TopicAlias],
            t002
        ),
        case!(
            "11-alias/003",
            "the server sends no Topic Alias above the client's Topic Alias Maximum",
            ["MQTT-3.3.2-11 (5.0)", "MQTT-3.3.2-10 (5.0)"],
            Only5,
            [],
            t003
        ),
    ]
}

async fn aliasing_client(ctx: &Ctx) -> Step<Client> {
    let (cl, ack) = ctx.client("p").await?;
    ctx.need_in_connack(&ack, Feature::TopicAlias)?;
    Ok(cl)
}

async fn t001(ctx: Ctx) -> Step {
    let topic = ctx.topic("t");
    let (mut sub, _) = ctx.client("s").await?;
    ctx.subscribe(&mut sub, 1, &topic, 0).await?;
    let mut p = aliasing_client(&ctx).await?;
    p.send(
        &Publish::new(&topic, b"1")
            .props(Props::new().u16(prop::TOPIC_ALIAS, 1))
            .encode(ctx.version),
    )
    .await?;
    p.send(
        &Publish::new("", b"2")
            .props(Props::new().u16(prop::TOPIC_ALIAS, 1))
            .encode(ctx.version),
    )
    .await?;
    for want in [&b"1"[..], &b"2"[..]] {
        let m = sub.publish().await?;
        check!(
            m.topic == topic && m.payload == want,
            "aliased publication arrived as {m:?} [MQTT-3.3.2-12]"
        );
    }
    p.disconnect().await?;
    sub.disconnect().await
}

async fn t002(ctx: Ctx) -> Step {
    let (a, b) = (ctx.topic("a"), ctx.topic("b"));
    let (mut sub, _) = ctx.client("s").await?;
    ctx.subscribe(&mut sub, 1, &a, 0).await?;
    ctx.subscribe(&mut sub, 2, &b, 0).await?;
    let mut p = aliasing_client(&ctx).await?;
    let alias = |t: &str, payload: &[u8]| {
        Publish::new(t, payload)
            .props(Props::new().u16(prop::TOPIC_ALIAS, 1))
            .encode(ctx.version)
    };
    p.send(&alias(&a, b"1")).await?;
    p.send(&alias(&b, b"2")).await?;
    p.send(&alias("", b"3")).await?;
    let got = sub.drain(ctx.quiet).await?;
    let seen: Vec<(String, Vec<u8>)> = got.into_iter().map(|m| (m.topic, m.payload)).collect();
    let want = vec![
        (a.clone(), b"1".to_vec()),
        (b.clone(), b"2".to_vec()),
        (b.clone(), b"3".to_vec()),
    ];
    check!(
        seen == want,
        "re-mapped alias delivered {seen:?}, expected {want:?} [MQTT-3.3.2-12]"
    );
    p.disconnect().await?;
    sub.disconnect().await
}

async fn t003(ctx: Ctx) -> Step {
    let mut c = ctx.connect_packet("s");
    c.props = Props::new().u16(prop::TOPIC_ALIAS_MAXIMUM, 2);
    let (mut sub, _) = ctx.connect(&c).await?;
    let topics: Vec<String> = (0..5).map(|i| ctx.topic(&format!("t{i}"))).collect();
    for (i, t) in topics.iter().enumerate() {
        ctx.subscribe(&mut sub, i as u16 + 1, t, 0).await?;
    }
    let (mut p, _) = ctx.client("p").await?;
    for _ in 0..2 {
        for t in &topics {
            ctx.publish0(&mut p, t, b"x").await?;
        }
    }
    let got = sub.drain(ctx.quiet).await?;
    check!(got.len() == 10, "expected 10 messages, got {}", got.len());
    let mut map = std::collections::HashMap::new();
    for m in got {
        let alias = m.props.int(prop::TOPIC_ALIAS);
        let topic = match alias {
            Some(a) => {
                check!(
                    (1..=2).contains(&a),
                    "Topic Alias {a} outside 1..=2 [MQTT-3.3.2-11]"
                );
                if m.topic.is_empty() {
                    map.get(&a).cloned().ok_or_else(|| {
                        Failure::Spec(format!("empty topic with unmapped alias {a}"))
                    })?
                } else {
                    map.insert(a, m.topic.clone());
                    m.topic.clone()
                }
            }
            None => m.topic.clone(),
        };
        check!(
            topics.contains(&topic),
            "message on unexpected topic {topic:?}"
        );
    }
    p.disconnect().await?;
    sub.disconnect().await
}
