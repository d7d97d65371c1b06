//! 06: will messages.

use std::time::Duration;

use crate::case;
use crate::check;
use crate::client::{Client, Step};
use crate::suite::{Ctx, Feature, TestCase};
use crate::wire::{self, kind, prop, Connect, Props, Will};

pub fn cases() -> Vec<TestCase> {
    vec![
        case!(
            "06-will/001",
            "the will is published when the connection is lost",
            ["MQTT-3.1.2-8"],
            Both,
            [],
            t001
        ),
        case!(
            "06-will/002",
            "the will is discarded after a normal DISCONNECT",
            ["MQTT-3.1.2-10", "MQTT-3.14.4-3"],
            Both,
            [],
            t002
        ),
        case!(
            "06-will/003",
            "will retain 1 publishes a retained will",
            ["MQTT-3.1.2-17 (3.1.1)", "MQTT-3.1.2-15 (5.0)"],
            Both,
            [Retain],
            t003
        ),
        case!(
            "06-will/004",
            "will retain 0 publishes a non-retained will",
            ["MQTT-3.1.2-16 (3.1.1)", "MQTT-3.1.2-14 (5.0)"],
            Both,
            [Retain],
            t004
        ),
        case!(
            "06-will/005",
            "the will is published at its QoS (bounded by the subscription)",
            [
                "MQTT-3.1.2-8",
                "MQTT-3.1.2-14 (3.1.1)",
                "MQTT-3.1.2-12 (5.0)"
            ],
            Both,
            [Qos1],
            t005
        ),
        case!(
            "06-will/006",
            "DISCONNECT with reason 0x04 publishes the will",
            ["MQTT-3.1.2-8", "MQTT-3.14.4-3 (5.0)"],
            Only5,
            [],
            t006
        ),
        case!(
            "06-will/007",
            "the will waits for its Will Delay Interval",
            ["MQTT-3.1.3-9 (5.0)"],
            Only5,
            [PersistentSessions],
            t007
        ),
        case!(
            "06-will/008",
            "reconnecting within the will delay cancels the will",
            ["MQTT-3.1.3-9 (5.0)"],
            Only5,
            [PersistentSessions],
            t008
        ),
        case!(
            "06-will/009",
            "will properties and user properties are forwarded in order",
            [
                "MQTT-3.1.3-10 (5.0)",
                "MQTT-3.3.2-18 (5.0)",
                "MQTT-3.3.2-20 (5.0)"
            ],
            Only5,
            [],
            t009
        ),
        case!(
            "06-will/010",
            "the will is published when the server closes for a protocol error",
            ["MQTT-3.1.2-8"],
            Both,
            [],
            t010
        ),
    ]
}

fn with_will(ctx: &Ctx, tag: &str, topic: &str, qos: u8, retain: bool, props: Props) -> Connect {
    let mut c = ctx.connect_packet(tag);
    c.will = Some(Will {
        topic: topic.to_owned(),
        payload: b"gone".to_vec(),
        qos,
        retain,
        props,
    });
    c
}

async fn watcher(ctx: &Ctx, topic: &str, qos: u8) -> Step<Client> {
    let (mut s, _) = ctx.client("w").await?;
    ctx.subscribe(&mut s, 1, topic, qos).await?;
    Ok(s)
}

async fn t001(ctx: Ctx) -> Step {
    let topic = ctx.topic("will");
    let mut s = watcher(&ctx, &topic, 0).await?;
    let (cl, _) = ctx
        .connect(&with_will(&ctx, "a", &topic, 0, false, Props::new()))
        .await?;
    cl.abort();
    let m = s.publish().await?;
    check!(
        m.topic == topic && m.payload == b"gone",
        "wrong will message {m:?}"
    );
    s.disconnect().await
}

async fn t002(ctx: Ctx) -> Step {
    let topic = ctx.topic("will");
    let mut s = watcher(&ctx, &topic, 0).await?;
    let (cl, _) = ctx
        .connect(&with_will(&ctx, "a", &topic, 0, false, Props::new()))
        .await?;
    cl.disconnect().await?;
    s.quiet(
        ctx.quiet * 2,
        "will published after a normal DISCONNECT [MQTT-3.14.4-3]",
    )
    .await?;
    s.disconnect().await
}

async fn t003(ctx: Ctx) -> Step {
    let topic = ctx.topic("will");
    let r = async {
        let mut live = watcher(&ctx, &topic, 0).await?;
        let (cl, ack) = ctx
            .connect(&with_will(&ctx, "a", &topic, 0, true, Props::new()))
            .await?;
        ctx.need_in_connack(&ack, Feature::Retain)?;
        cl.abort();
        // Once the will has been published, a new subscriber must get it
        // as a retained message.
        live.publish().await?;
        live.disconnect().await?;
        let mut s = watcher(&ctx, &topic, 0).await?;
        let m = s.publish().await?;
        check!(
            m.retain && m.payload == b"gone",
            "will with retain 1 was not retained [MQTT-3.1.2-17]: {m:?}"
        );
        s.disconnect().await
    }
    .await;
    ctx.clear_retained(&topic).await?;
    r
}

async fn t004(ctx: Ctx) -> Step {
    let topic = ctx.topic("will");
    let mut s = watcher(&ctx, &topic, 0).await?;
    let (cl, _) = ctx
        .connect(&with_will(&ctx, "a", &topic, 0, false, Props::new()))
        .await?;
    cl.abort();
    let m = s.publish().await?;
    check!(!m.retain, "non-retained will delivered with RETAIN 1");
    s.disconnect().await?;
    let mut late = watcher(&ctx, &topic, 0).await?;
    late.quiet(ctx.quiet, "will with retain 0 was retained [MQTT-3.1.2-16]")
        .await?;
    late.disconnect().await
}

async fn t005(ctx: Ctx) -> Step {
    let topic = ctx.topic("will");
    let mut s = watcher(&ctx, &topic, 1).await?;
    let (cl, _) = ctx
        .connect(&with_will(&ctx, "a", &topic, 1, false, Props::new()))
        .await?;
    cl.abort();
    let m = s.publish().await?;
    check!(m.qos == 1, "QoS 1 will delivered at QoS {}", m.qos);
    s.send(&wire::ack(kind::PUBACK, m.pid.unwrap_or(0))).await?;
    s.disconnect().await
}

async fn t006(ctx: Ctx) -> Step {
    let topic = ctx.topic("will");
    let mut s = watcher(&ctx, &topic, 0).await?;
    let (mut cl, _) = ctx
        .connect(&with_will(&ctx, "a", &topic, 0, false, Props::new()))
        .await?;
    cl.send(&wire::disconnect(ctx.version, 0x04, &Props::new()))
        .await?;
    let m = s.publish().await?;
    check!(m.payload == b"gone", "wrong will {m:?}");
    s.disconnect().await
}

async fn t007(ctx: Ctx) -> Step {
    let topic = ctx.topic("will");
    let mut s = watcher(&ctx, &topic, 0).await?;
    let c = super::with_expiry(
        with_will(
            &ctx,
            "a",
            &topic,
            0,
            false,
            Props::new().u32(prop::WILL_DELAY, 2),
        ),
        30,
    );
    let (cl, _) = ctx.connect(&c).await?;
    cl.abort();
    s.quiet(
        Duration::from_millis(1200),
        "will published before its 2 s delay [MQTT-3.1.3-9]",
    )
    .await?;
    let m = s.publish().await?;
    check!(m.payload == b"gone", "wrong will {m:?}");
    s.disconnect().await?;
    let (cl, _) = ctx.client("a").await?;
    cl.disconnect().await
}

async fn t008(ctx: Ctx) -> Step {
    let topic = ctx.topic("will");
    let mut s = watcher(&ctx, &topic, 0).await?;
    let c = super::with_expiry(
        with_will(
            &ctx,
            "a",
            &topic,
            0,
            false,
            Props::new().u32(prop::WILL_DELAY, 2),
        ),
        30,
    );
    let (cl, _) = ctx.connect(&c).await?;
    cl.abort();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = ctx.connect_packet("a");
    again.clean = false;
    let (cl, _) = ctx.connect(&super::with_expiry(again, 30)).await?;
    s.quiet(
        Duration::from_millis(3000),
        "will published though the client reconnected within the delay [MQTT-3.1.3-9]",
    )
    .await?;
    cl.disconnect().await?;
    let (cl, _) = ctx.client("a").await?;
    cl.disconnect().await?;
    s.disconnect().await
}

async fn t009(ctx: Ctx) -> Step {
    let topic = ctx.topic("will");
    let mut s = watcher(&ctx, &topic, 0).await?;
    let props = Props::new()
        .string(prop::CONTENT_TYPE, "text/plain")
        .user("k", "1")
        .user("k", "2")
        .user("a", "3");
    let (cl, _) = ctx
        .connect(&with_will(&ctx, "a", &topic, 0, false, props))
        .await?;
    cl.abort();
    let m = s.publish().await?;
    check!(
        m.props.str(prop::CONTENT_TYPE) == Some("text/plain"),
        "will Content Type lost or changed [MQTT-3.3.2-20]"
    );
    let users = m.props.user();
    let want: Vec<(String, String)> = [("k", "1"), ("k", "2"), ("a", "3")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    check!(
        users == want,
        "will user properties {users:?}, expected {want:?} in order [MQTT-3.1.3-10]"
    );
    s.disconnect().await
}

async fn t010(ctx: Ctx) -> Step {
    let topic = ctx.topic("will");
    let mut s = watcher(&ctx, &topic, 0).await?;
    let (mut cl, _) = ctx
        .connect(&with_will(&ctx, "a", &topic, 0, false, Props::new()))
        .await?;
    // PUBLISH with QoS 3 is malformed [MQTT-3.3.1-4].
    let mut bad = wire::Publish::new(&ctx.topic("x"), b"x").qos(1, 1);
    bad.qos = 3;
    cl.send_lenient(&bad.encode(ctx.version)).await?;
    let m = s.publish().await?;
    check!(m.payload == b"gone", "wrong will {m:?}");
    s.disconnect().await
}
