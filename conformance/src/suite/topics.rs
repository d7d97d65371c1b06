//! 08: topic names, topic filters and wildcards.

use crate::case;
use crate::check;
use crate::client::{Client, Event, Failure, Step};
use crate::decode::Packet;
use crate::suite::{Ctx, Feature, TestCase};
use crate::wire::{self, Props};

pub fn cases() -> Vec<TestCase> {
    vec![
        case!(
            "08-topics/001",
            "'#' matches the parent level and any number of child levels",
            ["MQTT-4.7.1-2 (3.1.1)", "MQTT-4.7.1-1 (5.0)"],
            Both,
            [Wildcards],
            t001
        ),
        case!(
            "08-topics/002",
            "'+' matches exactly one level, including an empty one",
            ["MQTT-4.7.1-3 (3.1.1)", "MQTT-4.7.1-2 (5.0)"],
            Both,
            [Wildcards],
            t002
        ),
        case!(
            "08-topics/003",
            "topics starting with '$' are not matched by leading wildcards",
            ["MQTT-4.7.2-1"],
            Both,
            [Wildcards],
            t003
        ),
        case!(
            "08-topics/004",
            "matching is exact: case-sensitive, no Unicode normalization, BOM kept",
            ["MQTT-4.7.3-4", "MQTT-1.5.3-3 (3.1.1)", "MQTT-1.5.4-3 (5.0)"],
            Both,
            [],
            t004
        ),
        case!(
            "08-topics/005",
            "invalid wildcard filters are refused (SUBACK failure) or the connection closed",
            [
                "MQTT-4.7.1-2 (3.1.1)",
                "MQTT-4.7.1-3 (3.1.1)",
                "MQTT-4.7.1-1 (5.0)",
                "MQTT-4.7.1-2 (5.0)"
            ],
            Both,
            [Wildcards],
            t005
        ),
        case!(
            "08-topics/006",
            "a zero-length topic filter is refused (SUBACK failure) or the connection closed",
            ["MQTT-4.7.3-1"],
            Both,
            [],
            t006
        ),
        case!(
            "08-topics/007",
            "empty levels are distinct levels ('a//b' is not 'a/b')",
            ["MQTT-4.7.3-4"],
            Both,
            [],
            t007
        ),
        case!(
            "08-topics/008",
            "a subscription to '#' does not deliver '$' topics but a '$' filter does",
            ["MQTT-4.7.2-1"],
            Both,
            [Wildcards],
            t008
        ),
    ]
}

async fn wild_client(ctx: &Ctx, tag: &str) -> Step<Client> {
    let (cl, ack) = ctx.client(tag).await?;
    ctx.need_in_connack(&ack, Feature::Wildcards)?;
    Ok(cl)
}

/// Publishes each topic and returns which arrived at `sub`.
async fn delivered(ctx: &Ctx, sub: &mut Client, topics: &[String]) -> Step<Vec<String>> {
    let (mut p, _) = ctx.client("p").await?;
    for t in topics {
        ctx.publish0(&mut p, t, b"x").await?;
    }
    p.disconnect().await?;
    let got = sub.drain(ctx.quiet).await?;
    Ok(got.into_iter().map(|m| m.topic).collect())
}

async fn t001(ctx: Ctx) -> Step {
    let base = ctx.topic("s");
    let mut sub = wild_client(&ctx, "a").await?;
    ctx.subscribe(&mut sub, 1, &format!("{base}/#"), 0).await?;
    let yes = vec![base.clone(), format!("{base}/a"), format!("{base}/a/b/c")];
    let no = [format!("{base}x"), format!("{base}x/a")];
    let all: Vec<String> = yes.iter().chain(no.iter()).cloned().collect();
    let got = delivered(&ctx, &mut sub, &all).await?;
    check!(
        got == yes,
        "'{base}/#' delivered {got:?}; expected {yes:?} [MQTT-4.7.1-2]"
    );
    sub.disconnect().await
}

async fn t002(ctx: Ctx) -> Step {
    let base = ctx.topic("s");
    let mut sub = wild_client(&ctx, "a").await?;
    ctx.subscribe(&mut sub, 1, &format!("{base}/+/x"), 0)
        .await?;
    let yes = vec![format!("{base}/a/x"), format!("{base}//x")];
    let no = [
        format!("{base}/x"),
        format!("{base}/a/b/x"),
        format!("{base}/a/x/y"),
    ];
    let all: Vec<String> = yes.iter().chain(no.iter()).cloned().collect();
    let got = delivered(&ctx, &mut sub, &all).await?;
    check!(
        got == yes,
        "'{base}/+/x' delivered {got:?}; expected {yes:?} [MQTT-4.7.1-3]"
    );
    sub.disconnect().await
}

async fn t003(ctx: Ctx) -> Step {
    let dollar = format!("${}", ctx.topic("d"));
    let mut direct = wild_client(&ctx, "d").await?;
    ctx.subscribe(&mut direct, 1, &dollar, 0).await?;
    let mut wild = wild_client(&ctx, "w").await?;
    let levels = dollar.split('/').count();
    let plus_filter = vec!["+"; levels].join("/");
    ctx.subscribe(&mut wild, 1, &plus_filter, 0).await?;
    let (mut p, _) = ctx.client("p").await?;
    ctx.publish0(&mut p, &dollar, b"x").await?;
    match direct.next_event(ctx.read_timeout).await? {
        Event::Packet(Packet::Publish(_)) => {}
        _ => {
            return Err(Failure::NotApplicable(
                "broker does not route client publications to '$' topics".into(),
            ))
        }
    }
    let got = wild.drain(ctx.quiet).await?;
    check!(
        !got.iter().any(|m| m.topic == dollar),
        "'{plus_filter}' matched the '$' topic {dollar} [MQTT-4.7.2-1]"
    );
    p.disconnect().await?;
    wild.disconnect().await?;
    direct.disconnect().await
}

async fn t004(ctx: Ctx) -> Step {
    let upper = ctx.topic("Case");
    let composed = ctx.topic("caf\u{e9}");
    let bom = ctx.topic("\u{feff}b");
    let (mut sub, _) = ctx.client("a").await?;
    ctx.subscribe(&mut sub, 1, &upper, 0).await?;
    ctx.subscribe(&mut sub, 2, &composed, 0).await?;
    ctx.subscribe(&mut sub, 3, &bom, 0).await?;
    let topics = vec![
        ctx.topic("case"),
        ctx.topic("CASE"),
        ctx.topic("cafe\u{301}"),
        ctx.topic("b"),
        upper.clone(),
        composed.clone(),
        bom.clone(),
    ];
    let got = delivered(&ctx, &mut sub, &topics).await?;
    check!(
        got == [upper.clone(), composed.clone(), bom.clone()],
        "delivered {got:?}; only exact matches allowed [MQTT-4.7.3-4]"
    );
    sub.disconnect().await
}

/// A SUBSCRIBE to `filter` must be refused: a SUBACK failure code or a
/// closed connection (5.0: optionally after DISCONNECT 0x8F/0x81/0x82).
async fn refused(ctx: &Ctx, filter: &str) -> Step {
    let (mut cl, _) = ctx.client("bad").await?;
    cl.send_lenient(&wire::subscribe(
        ctx.version,
        3,
        &[(filter, 0)],
        &Props::new(),
    ))
    .await?;
    match cl.next_event(ctx.read_timeout).await? {
        Event::Closed => {}
        Event::Packet(Packet::Suback { codes, .. }) => {
            check!(
                codes.len() == 1 && codes[0] >= 0x80,
                "filter {filter:?} accepted with SUBACK {codes:02x?}"
            );
            cl.disconnect().await?;
        }
        Event::Packet(Packet::Disconnect { code, .. }) if ctx.version.is_v5() => {
            check!(
                [0x8F, 0x81, 0x82].contains(&code),
                "DISCONNECT {code:#04x} for invalid filter {filter:?}"
            );
            cl.closed_within(ctx.close_deadline()).await?;
        }
        other => {
            return Err(Failure::Spec(format!(
                "invalid filter {filter:?}: expected SUBACK failure or close, got {other:?}"
            )))
        }
    }
    Ok(())
}

async fn t005(ctx: Ctx) -> Step {
    let base = ctx.topic("f");
    for f in [
        format!("{base}/#/x"),
        format!("{base}/a#"),
        format!("{base}/a+/x"),
        format!("{base}/+a"),
    ] {
        refused(&ctx, &f).await?;
    }
    ctx.still_served().await
}

async fn t006(ctx: Ctx) -> Step {
    refused(&ctx, "").await?;
    ctx.still_served().await
}

async fn t007(ctx: Ctx) -> Step {
    let base = ctx.topic("e");
    let (mut sub, _) = ctx.client("a").await?;
    let exact = format!("{base}/a/b");
    ctx.subscribe(&mut sub, 1, &exact, 0).await?;
    let topics = vec![
        format!("{base}/a//b"),
        format!("{base}/a/b/"),
        format!("{base}//a/b"),
        exact.clone(),
    ];
    let got = delivered(&ctx, &mut sub, &topics).await?;
    check!(
        got == [exact.clone()],
        "delivered {got:?}; empty levels must count [MQTT-4.7.3-4]"
    );
    sub.disconnect().await
}

async fn t008(ctx: Ctx) -> Step {
    let dollar = format!("${}", ctx.topic("d"));
    let mut all = wild_client(&ctx, "w").await?;
    ctx.subscribe(&mut all, 1, "#", 0).await?;
    let mut direct = wild_client(&ctx, "d").await?;
    let root = dollar.split('/').next().unwrap_or_default().to_owned();
    ctx.subscribe(&mut direct, 1, &format!("{root}/#"), 0)
        .await?;
    let (mut p, _) = ctx.client("p").await?;
    ctx.publish0(&mut p, &dollar, b"x").await?;
    match direct.next_event(ctx.read_timeout).await? {
        Event::Packet(Packet::Publish(_)) => {}
        _ => {
            return Err(Failure::NotApplicable(
                "broker does not route client publications to '$' topics".into(),
            ))
        }
    }
    let got = all.drain(ctx.quiet).await?;
    check!(
        !got.iter().any(|m| m.topic.starts_with('$')),
        "'#' delivered '$' topics {:?} [MQTT-4.7.2-1]",
        got.iter().map(|m| &m.topic).collect::<Vec<_>>()
    );
    p.disconnect().await?;
    direct.disconnect().await?;
    all.disconnect().await
}
