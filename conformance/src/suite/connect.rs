//! 01: CONNECT, CONNACK and DISCONNECT.

use crate::case;
use crate::check;
use crate::client::{Failure, Step};
use crate::suite::{Ctx, TestCase};
use crate::wire::{self, prop, Props, Publish};

pub fn cases() -> Vec<TestCase> {
    vec![
        case!(
            "01-connect/001",
            "a valid CONNECT gets CONNACK success first, session present 0 when clean",
            [
                "MQTT-3.2.0-1",
                "MQTT-3.1.4-4 (3.1.1)",
                "MQTT-3.1.4-5 (5.0)",
                "MQTT-3.2.2-1 (3.1.1)",
                "MQTT-3.2.2-2 (5.0)"
            ],
            Both,
            [],
            t001
        ),
        case!(
            "01-connect/002",
            "a 23-character alphanumeric client id is accepted",
            ["MQTT-3.1.3-5"],
            Both,
            [],
            t002
        ),
        case!(
            "01-connect/003",
            "zero-length client id with clean session 0 is refused with code 0x02",
            ["MQTT-3.1.3-8 (3.1.1)", "MQTT-3.2.2-5 (3.1.1)"],
            Only311,
            [],
            t003
        ),
        case!(
            "01-connect/004",
            "zero-length client id: the server assigns a unique id or refuses it",
            [
                "MQTT-3.1.3-6",
                "MQTT-3.1.3-7 (5.0)",
                "MQTT-3.2.2-16 (5.0)",
                "MQTT-3.1.3-9 (3.1.1)",
                "MQTT-3.1.3-8 (5.0)"
            ],
            Both,
            [ZeroLengthClientId],
            t004
        ),
        case!(
            "01-connect/005",
            "unsupported protocol level: CONNACK 0x01 (3.1.1) / optional 0x84 (5.0), then close",
            ["MQTT-3.1.2-2"],
            Both,
            [],
            t005
        ),
        case!(
            "01-connect/006",
            "data sent after a refused CONNECT is not processed",
            ["MQTT-3.1.4-5 (3.1.1)", "MQTT-3.1.4-6 (5.0)"],
            Both,
            [Retain],
            t006
        ),
        case!(
            "01-connect/007",
            "DISCONNECT from the client: the server closes and sends nothing more",
            ["MQTT-3.14.4-1 (5.0)", "MQTT-3.14.4-2 (3.1.1)"],
            Both,
            [],
            t007
        ),
        case!(
            "01-connect/008",
            "CONNACK properties are well formed and in range",
            ["MQTT-3.2.2-9 (5.0)", "MQTT-3.2.2-8 (5.0)"],
            Only5,
            [],
            t008
        ),
        case!(
            "01-connect/009",
            "no Response Information in CONNACK unless requested",
            ["MQTT-3.1.2-28 (5.0)"],
            Only5,
            [],
            t009
        ),
        case!(
            "01-connect/010",
            "username and password fields are accepted or refused with a CONNACK code",
            [
                "MQTT-3.1.2-19 (3.1.1)",
                "MQTT-3.1.2-21 (3.1.1)",
                "MQTT-3.1.2-17 (5.0)",
                "MQTT-3.1.2-19 (5.0)",
                "MQTT-3.2.2-5 (3.1.1)",
                "MQTT-3.2.2-7 (5.0)"
            ],
            Both,
            [],
            t010
        ),
        case!(
            "01-connect/011",
            "5.0 password without user name is legal",
            ["MQTT-3.1.2-19 (5.0)"],
            Only5,
            [],
            t011
        ),
    ]
}

async fn t001(ctx: Ctx) -> Step {
    let (cl, ack) = ctx.client("a").await?;
    check!(
        !ack.session_present,
        "session present 1 for a clean CONNECT [MQTT-3.2.2-1]"
    );
    cl.disconnect().await
}

async fn t002(ctx: Ctx) -> Step {
    let mut id = ctx.cid("L");
    while id.len() < 23 {
        id.push('Z');
    }
    let c = wire::Connect::new(ctx.version, &id);
    let (cl, _) = ctx.connect(&c).await?;
    cl.disconnect().await
}

async fn t003(ctx: Ctx) -> Step {
    let mut c = wire::Connect::new(ctx.version, "");
    c.clean = false;
    let mut cl = ctx.open().await?;
    cl.send(&c.encode()).await?;
    super::expect_close(&ctx, &mut cl, super::Close::ConnackThen(0x02, 0x85)).await
}

async fn t004(ctx: Ctx) -> Step {
    let c = wire::Connect::new(ctx.version, "");
    let (mut a, ack) = ctx.connect_any(&c).await?;
    let refused = if ctx.version.is_v5() { 0x85 } else { 0x02 };
    if ack.code == refused {
        a.closed_within(ctx.close_deadline()).await?;
        return Err(Failure::NotApplicable(
            "broker refuses zero-length client ids (allowed)".into(),
        ));
    }
    check!(ack.code == 0, "CONNACK code {:#04x}", ack.code);
    let assigned_a = ack.props.str(prop::ASSIGNED_CLIENT_ID).map(str::to_owned);
    if ctx.version.is_v5() {
        check!(
            assigned_a.as_deref().is_some_and(|s| !s.is_empty()),
            "no Assigned Client Identifier in CONNACK for a zero-length id [MQTT-3.2.2-16]"
        );
    }
    // A second anonymous client must get a different identity: the first
    // stays connected [MQTT-3.1.3-6].
    let (b, ack_b) = ctx.connect(&c).await?;
    if ctx.version.is_v5() {
        check!(
            ack_b.props.str(prop::ASSIGNED_CLIENT_ID).map(str::to_owned) != assigned_a,
            "two clients were assigned the same client id [MQTT-3.1.3-6]"
        );
    }
    a.send(&wire::pingreq()).await?;
    match a.recv("PINGRESP").await {
        Ok(crate::decode::Packet::Pingresp) => {}
        other => {
            return Err(Failure::Spec(format!(
                "first zero-length-id client lost its connection when a second one connected: \
                 {other:?} [MQTT-3.1.3-6]"
            )))
        }
    }
    b.disconnect().await?;
    a.disconnect().await
}

async fn t005(ctx: Ctx) -> Step {
    let c = ctx.connect_packet("a");
    let mut bytes = c.encode();
    // Protocol level is the byte after the 2+4 byte protocol name.
    let level_at = 2 + 6;
    bytes[level_at] = 0x07;
    let mut cl = ctx.raw(&bytes).await?;
    let got = cl.bytes_until_close(ctx.close_deadline()).await?;
    if ctx.version.is_v5() {
        // MAY send CONNACK 0x84 (its format unknown to a client of an
        // unknown level: accept the 3.1.1 form 0x01 too), MUST close.
        let ok = got.is_empty()
            || got == [0x20, 0x02, 0x00, 0x01]
            || got == [0x20, 0x03, 0x00, 0x84, 0x00]
            || got == [0x20, 0x02, 0x00, 0x84];
        check!(
            ok,
            "expected close, optionally after CONNACK 0x84, got {got:02x?} [MQTT-3.1.2-2]"
        );
    } else {
        check!(
            got == [0x20, 0x02, 0x00, 0x01],
            "expected CONNACK 0x01 then close, got {got:02x?} [MQTT-3.1.2-2]"
        );
    }
    ctx.still_served().await
}

async fn t006(ctx: Ctx) -> Step {
    let topic = ctx.topic("refused");
    let c = ctx.connect_packet("a");
    let mut bytes = c.encode();
    bytes[2 + 6] = 0x07;
    bytes.extend(
        Publish::new(&topic, b"must not be stored")
            .retain(true)
            .encode(ctx.version),
    );
    let mut cl = ctx.raw(&bytes).await?;
    let _ = cl.bytes_until_close(ctx.close_deadline()).await?;
    let (mut sub, ack) = ctx.client("s").await?;
    ctx.need_in_connack(&ack, super::Feature::Retain)?;
    ctx.subscribe(&mut sub, 1, &topic, 0).await?;
    let r = sub
        .quiet(
            ctx.quiet,
            "a PUBLISH sent after a refused CONNECT was processed",
        )
        .await;
    ctx.clear_retained(&topic).await?;
    r?;
    sub.disconnect().await
}

async fn t007(ctx: Ctx) -> Step {
    let (mut cl, _) = ctx.client("a").await?;
    cl.send(&wire::disconnect(ctx.version, 0, &Props::new()))
        .await?;
    let seen = cl.closed_within(ctx.close_deadline()).await?;
    check!(
        seen.is_empty(),
        "server sent {} after the client's DISCONNECT",
        crate::client::names(&seen)
    );
    Ok(())
}

async fn t008(ctx: Ctx) -> Step {
    let (cl, ack) = ctx.client("a").await?;
    let p = &ack.props;
    for (id, name) in [
        (prop::MAXIMUM_QOS, "Maximum QoS"),
        (prop::RETAIN_AVAILABLE, "Retain Available"),
        (prop::WILDCARD_AVAILABLE, "Wildcard Subscription Available"),
        (
            prop::SUBSCRIPTION_ID_AVAILABLE,
            "Subscription Identifiers Available",
        ),
        (prop::SHARED_AVAILABLE, "Shared Subscription Available"),
    ] {
        if let Some(v) = p.int(id) {
            check!(v <= 1, "{name} is {v}; only 0 or 1 are allowed");
        }
    }
    if let Some(v) = p.int(prop::RECEIVE_MAXIMUM) {
        check!(v > 0, "Receive Maximum 0 is a protocol error");
    }
    if let Some(v) = p.int(prop::MAXIMUM_PACKET_SIZE) {
        check!(v > 0, "Maximum Packet Size 0 is a protocol error");
    }
    for bad in [
        prop::PAYLOAD_FORMAT,
        prop::MESSAGE_EXPIRY,
        prop::TOPIC_ALIAS,
        prop::SUBSCRIPTION_ID,
        prop::WILL_DELAY,
        prop::REQUEST_PROBLEM_INFO,
        prop::REQUEST_RESPONSE_INFO,
    ] {
        check!(
            !p.has(bad),
            "CONNACK carries property {bad:#04x}, which CONNACK may not contain"
        );
    }
    cl.disconnect().await
}

async fn t009(ctx: Ctx) -> Step {
    let (cl, ack) = ctx.client("a").await?;
    check!(
        !ack.props.has(prop::RESPONSE_INFO),
        "Response Information sent though the client did not request it [MQTT-3.1.2-28]"
    );
    cl.disconnect().await
}

async fn t010(ctx: Ctx) -> Step {
    let mut c = ctx.connect_packet("a");
    c.username = Some("conformance".into());
    c.password = Some(b"secret".to_vec());
    let (mut cl, ack) = ctx.connect_any(&c).await?;
    if ack.code != 0 {
        let ok = if ctx.version.is_v5() {
            ack.code >= 0x80
        } else {
            ack.code == 0x04 || ack.code == 0x05
        };
        check!(
            ok,
            "credentials refused with CONNACK code {:#04x}, not a refusal code",
            ack.code
        );
        check!(
            !ack.session_present,
            "session present 1 with a refusal code [MQTT-3.2.2-4 (3.1.1)] [MQTT-3.2.2-6 (5.0)]"
        );
        cl.closed_within(ctx.close_deadline()).await?;
        return Ok(());
    }
    cl.send(&wire::pingreq()).await?;
    match cl.recv("PINGRESP").await? {
        crate::decode::Packet::Pingresp => cl.disconnect().await,
        other => Err(Failure::Spec(format!("expected PINGRESP, got {other:?}"))),
    }
}

async fn t011(ctx: Ctx) -> Step {
    let mut c = ctx.connect_packet("a");
    c.password = Some(b"secret".to_vec());
    let (mut cl, ack) = ctx.connect_any(&c).await?;
    if ack.code != 0 {
        // Refusing the credentials is allowed; treating the packet as
        // malformed (code 0x81) is not.
        check!(
            ack.code != 0x81 && ack.code >= 0x80,
            "password without user name treated as malformed (CONNACK {:#04x}); 5.0 allows it",
            ack.code
        );
        cl.closed_within(ctx.close_deadline()).await?;
        return Ok(());
    }
    cl.disconnect().await
}
