//! 07: keep alive.

use std::time::{Duration, Instant};

use crate::case;
use crate::check;
use crate::client::{Failure, Step};
use crate::decode::Packet;
use crate::suite::{Ctx, TestCase};
use crate::wire::{self, prop, Will};

pub fn cases() -> Vec<TestCase> {
    vec![
        case!(
            "07-keepalive/001",
            "a silent client is disconnected after 1.5 times its keep alive",
            ["MQTT-3.1.2-24 (3.1.1)", "MQTT-3.1.2-22 (5.0)"],
            Both,
            [],
            t001
        ),
        case!(
            "07-keepalive/002",
            "PINGREQ within the keep alive keeps the connection open",
            ["MQTT-3.1.2-23 (3.1.1)", "MQTT-3.12.4-1"],
            Both,
            [],
            t002
        ),
        case!(
            "07-keepalive/003",
            "a keep alive timeout publishes the will",
            [
                "MQTT-3.1.2-8",
                "MQTT-3.1.2-24 (3.1.1)",
                "MQTT-3.1.2-22 (5.0)"
            ],
            Both,
            [],
            t003
        ),
    ]
}

/// The keep alive in force: the client's 1 s, or the 5.0 Server Keep Alive.
fn effective(ctx: &Ctx, ack: &crate::client::Connack) -> Step<u64> {
    let ka = if ctx.version.is_v5() {
        ack.props.int(prop::SERVER_KEEP_ALIVE).map_or(1, u64::from)
    } else {
        1
    };
    if ka == 0 || ka > 5 {
        return Err(Failure::NotApplicable(format!(
            "server keep alive {ka} s overrides the 1 s the test asks for"
        )));
    }
    Ok(ka)
}

/// Margin over 1.5 x keep alive for the server's timer granularity.
const MARGIN: Duration = Duration::from_millis(1500);

async fn t001(ctx: Ctx) -> Step {
    // Twice in a row: the second client connects right after the first was
    // closed, so a server that checks keep alives only now and then (in
    // phase with the first close) cannot pass by luck.
    for round in 0..2 {
        let mut c = ctx.connect_packet(&format!("a{round}"));
        c.keep_alive = 1;
        let (mut cl, ack) = ctx.connect(&c).await?;
        let ka = effective(&ctx, &ack)?;
        let start = Instant::now();
        let limit = Duration::from_millis(1500 * ka) + MARGIN;
        let seen = cl.closed_within(limit).await.map_err(|e| {
            Failure::Spec(format!(
                "client {round}: not disconnected within 1.5 x {ka} s keep alive (+{MARGIN:?} \
                 margin): {e} [MQTT-3.1.2-24]"
            ))
        })?;
        let took = start.elapsed();
        check!(
            took >= Duration::from_millis(900 * ka),
            "closed after {took:?}, before the keep alive of {ka} s had passed"
        );
        match seen.as_slice() {
            [] => {}
            [Packet::Disconnect { code: 0x8D, .. }] if ctx.version.is_v5() => {}
            _ => {
                return Err(Failure::Spec(format!(
                    "expected close (5.0: optionally DISCONNECT 0x8D), got {seen:?}"
                )))
            }
        }
    }
    Ok(())
}

async fn t002(ctx: Ctx) -> Step {
    let mut c = ctx.connect_packet("a");
    c.keep_alive = 1;
    let (mut cl, ack) = ctx.connect(&c).await?;
    let ka = effective(&ctx, &ack)?;
    let period = Duration::from_millis(500 * ka);
    for _ in 0..6 {
        tokio::time::sleep(period).await;
        cl.send(&wire::pingreq()).await?;
        match cl.recv("PINGRESP").await? {
            Packet::Pingresp => {}
            other => return Err(Failure::Spec(format!("expected PINGRESP, got {other:?}"))),
        }
    }
    cl.disconnect().await
}

async fn t003(ctx: Ctx) -> Step {
    let topic = ctx.topic("will");
    let (mut s, _) = ctx.client("w").await?;
    ctx.subscribe(&mut s, 1, &topic, 0).await?;
    let mut c = ctx.connect_packet("a");
    c.keep_alive = 1;
    c.will = Some(Will {
        topic: topic.clone(),
        payload: b"timeout".to_vec(),
        qos: 0,
        retain: false,
        props: wire::Props::new(),
    });
    let (mut cl, ack) = ctx.connect(&c).await?;
    let ka = effective(&ctx, &ack)?;
    // Timing is 07-keepalive/001's business; here only the will matters.
    cl.closed_within(Duration::from_millis(1500 * ka) + Duration::from_secs(10))
        .await?;
    let m = s.publish().await?;
    check!(m.payload == b"timeout", "wrong will {m:?}");
    s.disconnect().await
}
