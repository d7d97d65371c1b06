//! 13: the malformed and protocol-violating input catalogue.
//!
//! Every entry sends one bad input, checks the broker closes that connection
//! as the version requires (see [`Close`]), and then checks that a fresh
//! client is still served. 5.0 reason codes: where the specification names
//! one for the error, a DISCONNECT (or CONNACK) that the broker chooses to
//! send must carry that code or the generic 0x81 (Malformed Packet) / 0x82
//! (Protocol Error); sending none is allowed, because 4.13 makes it a
//! SHOULD (CONNACK: MAY).

use crate::case;
use crate::check;
use crate::client::{Failure, Step};
use crate::suite::{
    expect_close_rigor, observe_close, Close, Closing, Ctx, Feature, Rigor, TestCase,
    MALFORMED_OR_PROTOCOL,
};
use crate::wire::{self, frame, kind, prop, string, string_bytes, Props, Publish, Version, Will};

const M_P: &[u8] = MALFORMED_OR_PROTOCOL;
const TOPIC_INVALID: &[u8] = &[0x81, 0x82, 0x90];
const ID_INVALID: &[u8] = &[0x81, 0x82, 0x85];
const ALIAS_INVALID: &[u8] = &[0x81, 0x82, 0x94];

/// A bad CONNECT (or bad first packet) on a new connection.
async fn bad_connect(ctx: Ctx, bytes: Vec<u8>, codes: &'static [u8], rigor: Rigor) -> Step {
    let mut cl = ctx.raw(&bytes).await?;
    expect_close_rigor(&ctx, &mut cl, Close::Connect(codes), rigor).await?;
    ctx.still_served().await
}

/// A bad packet after a successful CONNECT.
async fn bad_packet(ctx: Ctx, bytes: Vec<u8>, codes: &'static [u8], rigor: Rigor) -> Step {
    let (mut cl, _) = ctx.client("m").await?;
    cl.send_lenient(&bytes).await?;
    expect_close_rigor(&ctx, &mut cl, Close::Packet(codes), rigor).await?;
    ctx.still_served().await
}

/// A bad packet on an already connected client.
async fn bad_on(
    ctx: &Ctx,
    cl: &mut crate::client::Client,
    bytes: &[u8],
    codes: &'static [u8],
) -> Step {
    cl.send_lenient(bytes).await?;
    expect_close_rigor(ctx, cl, Close::Packet(codes), DISC).await?;
    ctx.still_served().await
}

const REQ: Rigor = Rigor::Required;
const DISC: Rigor = Rigor::Discretionary5;

/// A CONNECT body from parts, so any field can be wrong.
fn connect_raw(v: Version, flags: u8, props: &Props, client_id: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut body = string("MQTT");
    body.push(v.level());
    body.push(flags);
    body.extend_from_slice(&60u16.to_be_bytes());
    body.extend(props.encode(v));
    body.extend(string_bytes(client_id));
    body.extend_from_slice(rest);
    frame(kind::CONNECT << 4, &body)
}

/// A PUBLISH with a raw topic.
fn publish_raw(v: Version, first: u8, topic: &[u8], pid: Option<u16>, props: &Props) -> Vec<u8> {
    let mut body = string_bytes(topic);
    if let Some(p) = pid {
        body.extend_from_slice(&p.to_be_bytes());
    }
    body.extend(props.encode(v));
    body.extend_from_slice(b"payload");
    frame(first, &body)
}

/// A SUBSCRIBE with a raw filter and options byte.
fn subscribe_raw(
    v: Version,
    first: u8,
    pid: u16,
    filter: &[u8],
    opts: u8,
    props: &Props,
) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend(props.encode(v));
    body.extend(string_bytes(filter));
    body.push(opts);
    frame(first, &body)
}

/// An UNSUBSCRIBE with raw filters.
fn unsubscribe_raw(v: Version, first: u8, pid: u16, filters: &[&[u8]]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend(Props::new().encode(v));
    for f in filters {
        body.extend(string_bytes(f));
    }
    frame(first, &body)
}

/// Declares a bad-CONNECT test: `|ctx| bytes`.
macro_rules! connect_test {
    ($name:ident, $codes:expr, $rigor:expr, |$ctx:ident| $bytes:expr) => {
        async fn $name($ctx: Ctx) -> Step {
            let bytes = $bytes;
            bad_connect($ctx, bytes, $codes, $rigor).await
        }
    };
}

/// Declares a bad-packet-after-CONNECT test: `|ctx| bytes`.
macro_rules! packet_test {
    ($name:ident, $codes:expr, $rigor:expr, |$ctx:ident| $bytes:expr) => {
        async fn $name($ctx: Ctx) -> Step {
            let bytes = $bytes;
            bad_packet($ctx, bytes, $codes, $rigor).await
        }
    };
}

pub fn cases() -> Vec<TestCase> {
    vec![
        // --- ordering -------------------------------------------------------
        case!(
            "13-malformed/001",
            "first packet is PUBLISH, not CONNECT",
            ["MQTT-3.1.0-1"],
            Both,
            [],
            m001
        ),
        case!(
            "13-malformed/002",
            "first packet is PINGREQ, not CONNECT",
            ["MQTT-3.1.0-1"],
            Both,
            [],
            m002
        ),
        case!(
            "13-malformed/003",
            "a second CONNECT on the same connection",
            ["MQTT-3.1.0-2"],
            Both,
            [],
            m003
        ),
        // --- CONNECT flags and fields -----------------------------------------
        case!(
            "13-malformed/004",
            "CONNECT reserved flag bit 0 set",
            ["MQTT-3.1.2-3"],
            Both,
            [],
            m004
        ),
        case!(
            "13-malformed/005",
            "CONNECT will QoS 1 without the will flag",
            ["MQTT-3.1.2-13 (3.1.1)", "MQTT-3.1.2-11 (5.0)"],
            Both,
            [],
            m005
        ),
        case!(
            "13-malformed/006",
            "CONNECT will retain without the will flag",
            ["MQTT-3.1.2-15 (3.1.1)", "MQTT-3.1.2-13 (5.0)"],
            Both,
            [],
            m006
        ),
        case!(
            "13-malformed/007",
            "CONNECT will QoS 3",
            ["MQTT-3.1.2-14 (3.1.1)", "MQTT-3.1.2-12 (5.0)"],
            Both,
            [],
            m007
        ),
        case!(
            "13-malformed/008",
            "3.1.1 CONNECT password flag without user name flag",
            ["MQTT-3.1.2-22 (3.1.1)"],
            Only311,
            [],
            m008
        ),
        case!(
            "13-malformed/009",
            "CONNECT user name flag set, user name missing",
            [
                "MQTT-3.1.2-19 (3.1.1)",
                "MQTT-3.1.2-17 (5.0)",
                "MQTT-3.1.4-1"
            ],
            Both,
            [],
            m009
        ),
        case!(
            "13-malformed/010",
            "CONNECT password flag set, password missing",
            [
                "MQTT-3.1.2-21 (3.1.1)",
                "MQTT-3.1.2-19 (5.0)",
                "MQTT-3.1.4-1"
            ],
            Both,
            [],
            m010
        ),
        case!(
            "13-malformed/011",
            "CONNECT will flag set, will topic and payload missing",
            ["MQTT-3.1.2-9", "MQTT-3.1.4-1"],
            Both,
            [],
            m011
        ),
        case!(
            "13-malformed/012",
            "CONNECT client id is ill-formed UTF-8 (overlong)",
            ["MQTT-3.1.3-4", "MQTT-1.5.3-1 (3.1.1)", "MQTT-1.5.4-1 (5.0)"],
            Both,
            [],
            m012
        ),
        case!(
            "13-malformed/013",
            "CONNECT client id contains U+0000",
            ["MQTT-1.5.3-2 (3.1.1)", "MQTT-1.5.4-2 (5.0)"],
            Both,
            [],
            m013
        ),
        case!(
            "13-malformed/014",
            "CONNECT will topic contains a wildcard",
            ["MQTT-4.7.1-1 (3.1.1)", "MQTT-4.7.0-1 (5.0)", "MQTT-3.1.4-1"],
            Both,
            [],
            m014
        ),
        case!(
            "13-malformed/015",
            "CONNECT will topic is ill-formed UTF-8",
            ["MQTT-3.1.3-10 (3.1.1)", "MQTT-3.1.3-11 (5.0)"],
            Both,
            [],
            m015
        ),
        case!(
            "13-malformed/016",
            "CONNECT user name is ill-formed UTF-8",
            ["MQTT-3.1.3-11 (3.1.1)", "MQTT-3.1.3-12 (5.0)"],
            Both,
            [],
            m016
        ),
        case!(
            "13-malformed/017",
            "CONNECT with bytes after its last field",
            ["MQTT-3.1.4-1"],
            Both,
            [],
            m017
        ),
        case!(
            "13-malformed/018",
            "CONNECT fixed header flags not 0000",
            [
                "MQTT-2.2.2-1 (3.1.1)",
                "MQTT-2.2.2-2 (3.1.1)",
                "MQTT-2.1.3-1 (5.0)"
            ],
            Both,
            [],
            m018
        ),
        case!(
            "13-malformed/019",
            "truncated CONNECT (shorter than its protocol name)",
            ["MQTT-3.1.4-1"],
            Both,
            [],
            m019
        ),
        case!(
            "13-malformed/020",
            "CONNECT with an unknown property identifier",
            ["MQTT-3.1.4-1", "MQTT-2.2.2-1 (5.0)"],
            Only5,
            [],
            m020
        ),
        case!(
            "13-malformed/021",
            "CONNECT with Session Expiry Interval twice",
            ["MQTT-3.1.4-1"],
            Only5,
            [],
            m021
        ),
        case!(
            "13-malformed/022",
            "CONNECT with Receive Maximum 0",
            ["MQTT-3.1.4-1"],
            Only5,
            [],
            m022
        ),
        case!(
            "13-malformed/023",
            "CONNECT with Maximum Packet Size 0",
            ["MQTT-3.1.4-1"],
            Only5,
            [],
            m023
        ),
        case!(
            "13-malformed/024",
            "CONNECT with Request Problem Information 2",
            ["MQTT-3.1.4-1"],
            Only5,
            [],
            m024
        ),
        case!(
            "13-malformed/025",
            "CONNECT property length beyond the packet",
            ["MQTT-3.1.4-1"],
            Only5,
            [],
            m025
        ),
        case!(
            "13-malformed/026",
            "CONNECT with Authentication Data but no Authentication Method",
            ["MQTT-3.1.4-1"],
            Only5,
            [],
            m026
        ),
        case!(
            "13-malformed/027",
            "CONNECT with an unsupported Authentication Method",
            ["MQTT-4.12.0-1 (5.0)", "MQTT-3.1.4-2 (5.0)"],
            Only5,
            [],
            m027
        ),
        case!(
            "13-malformed/028",
            "CONNECT will properties with Will Delay Interval twice",
            ["MQTT-3.1.4-1"],
            Only5,
            [],
            m028
        ),
        // --- fixed header ------------------------------------------------------
        case!(
            "13-malformed/029",
            "Remaining Length encoded in five bytes",
            [
                "MQTT-4.8.0-1 (3.1.1)",
                "MQTT-4.13.1-1 (5.0)",
                "MQTT-1.5.5-1 (5.0)"
            ],
            Both,
            [],
            m029
        ),
        case!(
            "13-malformed/030",
            "reserved packet type 0",
            ["MQTT-4.8.0-1 (3.1.1)", "MQTT-4.13.1-1 (5.0)"],
            Both,
            [],
            m030
        ),
        case!(
            "13-malformed/031",
            "packet type 15 (3.1.1: reserved; 5.0: AUTH without an Authentication Method)",
            ["MQTT-4.8.0-1 (3.1.1)", "MQTT-4.12.0-7 (5.0)"],
            Both,
            [],
            m031
        ),
        // --- PUBLISH -----------------------------------------------------------
        case!(
            "13-malformed/032",
            "PUBLISH with QoS 3",
            ["MQTT-3.3.1-4"],
            Both,
            [],
            m032
        ),
        case!(
            "13-malformed/033",
            "PUBLISH topic contains '+'",
            ["MQTT-3.3.2-2", "MQTT-4.7.1-1 (3.1.1)", "MQTT-4.7.0-1 (5.0)"],
            Both,
            [],
            m033
        ),
        case!(
            "13-malformed/034",
            "PUBLISH topic contains '#'",
            ["MQTT-3.3.2-2", "MQTT-4.7.1-1 (3.1.1)", "MQTT-4.7.0-1 (5.0)"],
            Both,
            [],
            m034
        ),
        case!(
            "13-malformed/035",
            "PUBLISH with a zero-length topic (and no Topic Alias)",
            ["MQTT-4.7.3-1", "MQTT-3.3.2-1"],
            Both,
            [],
            m035
        ),
        case!(
            "13-malformed/036",
            "PUBLISH topic is ill-formed UTF-8",
            ["MQTT-3.3.2-1", "MQTT-1.5.3-1 (3.1.1)", "MQTT-1.5.4-1 (5.0)"],
            Both,
            [],
            m036
        ),
        case!(
            "13-malformed/037",
            "PUBLISH topic contains U+0000",
            ["MQTT-4.7.3-2", "MQTT-1.5.3-2 (3.1.1)", "MQTT-1.5.4-2 (5.0)"],
            Both,
            [],
            m037
        ),
        case!(
            "13-malformed/038",
            "PUBLISH topic contains an encoded UTF-16 surrogate",
            ["MQTT-1.5.3-1 (3.1.1)", "MQTT-1.5.4-1 (5.0)"],
            Both,
            [],
            m038
        ),
        case!(
            "13-malformed/039",
            "PUBLISH QoS 1 with packet identifier 0",
            ["MQTT-2.3.1-1 (3.1.1)", "MQTT-2.2.1-3 (5.0)"],
            Both,
            [],
            m039
        ),
        case!(
            "13-malformed/040",
            "PUBLISH QoS 0 with DUP 1",
            ["MQTT-3.3.1-2"],
            Both,
            [],
            m040
        ),
        case!(
            "13-malformed/041",
            "PUBLISH topic length runs past the packet",
            ["MQTT-4.8.0-1 (3.1.1)", "MQTT-4.13.1-1 (5.0)"],
            Both,
            [],
            m041
        ),
        // --- SUBSCRIBE / UNSUBSCRIBE --------------------------------------------
        case!(
            "13-malformed/042",
            "SUBSCRIBE fixed header flags 0000",
            ["MQTT-3.8.1-1"],
            Both,
            [],
            m042
        ),
        case!(
            "13-malformed/043",
            "SUBSCRIBE without any topic filter",
            ["MQTT-3.8.3-3 (3.1.1)", "MQTT-3.8.3-2 (5.0)"],
            Both,
            [],
            m043
        ),
        case!(
            "13-malformed/044",
            "SUBSCRIBE requesting QoS 3",
            ["MQTT-3-8.3-4 (3.1.1)", "MQTT-3.8.3-5 (5.0)"],
            Both,
            [],
            m044
        ),
        case!(
            "13-malformed/045",
            "SUBSCRIBE options with reserved bits set",
            ["MQTT-3-8.3-4 (3.1.1)", "MQTT-3.8.3-5 (5.0)"],
            Both,
            [],
            m045
        ),
        case!(
            "13-malformed/046",
            "SUBSCRIBE with packet identifier 0",
            ["MQTT-2.3.1-1 (3.1.1)", "MQTT-2.2.1-3 (5.0)"],
            Both,
            [],
            m046
        ),
        case!(
            "13-malformed/047",
            "SUBSCRIBE topic filter is ill-formed UTF-8",
            ["MQTT-3.8.3-1"],
            Both,
            [],
            m047
        ),
        case!(
            "13-malformed/048",
            "SUBSCRIBE topic filter contains U+0000",
            ["MQTT-4.7.3-2", "MQTT-1.5.3-2 (3.1.1)", "MQTT-1.5.4-2 (5.0)"],
            Both,
            [],
            m048
        ),
        case!(
            "13-malformed/049",
            "SUBSCRIBE filter length runs past the packet",
            ["MQTT-4.8.0-1 (3.1.1)", "MQTT-4.13.1-1 (5.0)"],
            Both,
            [],
            m049
        ),
        case!(
            "13-malformed/050",
            "UNSUBSCRIBE fixed header flags 0000",
            ["MQTT-3.10.1-1"],
            Both,
            [],
            m050
        ),
        case!(
            "13-malformed/051",
            "UNSUBSCRIBE without any topic filter",
            ["MQTT-3.10.3-2"],
            Both,
            [],
            m051
        ),
        case!(
            "13-malformed/052",
            "UNSUBSCRIBE with packet identifier 0",
            ["MQTT-2.3.1-1 (3.1.1)", "MQTT-2.2.1-3 (5.0)"],
            Both,
            [],
            m052
        ),
        case!(
            "13-malformed/053",
            "UNSUBSCRIBE topic filter is ill-formed UTF-8",
            ["MQTT-3.10.3-1"],
            Both,
            [],
            m053
        ),
        // --- other packets -------------------------------------------------------
        case!(
            "13-malformed/054",
            "PUBREL fixed header flags 0000",
            ["MQTT-3.6.1-1"],
            Both,
            [],
            m054
        ),
        case!(
            "13-malformed/055",
            "PINGREQ with a non-zero Remaining Length",
            ["MQTT-4.8.0-1 (3.1.1)", "MQTT-4.13.1-1 (5.0)"],
            Both,
            [],
            m055
        ),
        case!(
            "13-malformed/056",
            "PINGREQ fixed header flags not 0000",
            ["MQTT-2.2.2-2 (3.1.1)", "MQTT-2.1.3-1 (5.0)"],
            Both,
            [],
            m056
        ),
        case!(
            "13-malformed/057",
            "PUBACK fixed header flags not 0000",
            ["MQTT-2.2.2-2 (3.1.1)", "MQTT-2.1.3-1 (5.0)"],
            Both,
            [],
            m057
        ),
        case!(
            "13-malformed/058",
            "CONNACK sent by a client",
            ["MQTT-4.8.0-1 (3.1.1)", "MQTT-4.13.1-1 (5.0)"],
            Both,
            [],
            m058
        ),
        // --- 5.0 properties and limits -------------------------------------------
        case!(
            "13-malformed/059",
            "PUBLISH with Topic Alias 0",
            ["MQTT-3.3.2-8 (5.0)"],
            Only5,
            [],
            m059
        ),
        case!(
            "13-malformed/060",
            "PUBLISH with a Topic Alias above the server's maximum",
            ["MQTT-3.3.2-9 (5.0)"],
            Only5,
            [],
            m060
        ),
        case!(
            "13-malformed/061",
            "PUBLISH uses a Topic Alias set on another connection",
            ["MQTT-3.3.2-7 (5.0)"],
            Only5,
            [],
            m061
        ),
        case!(
            "13-malformed/062",
            "PUBLISH from a client carrying a Subscription Identifier",
            ["MQTT-3.3.4-6 (5.0)"],
            Only5,
            [],
            m062
        ),
        case!(
            "13-malformed/063",
            "PUBLISH Response Topic contains a wildcard",
            ["MQTT-3.3.2-14 (5.0)"],
            Only5,
            [],
            m063
        ),
        case!(
            "13-malformed/064",
            "PUBLISH with Payload Format Indicator twice",
            ["MQTT-4.13.1-1 (5.0)"],
            Only5,
            [],
            m064
        ),
        case!(
            "13-malformed/065",
            "PUBLISH user property name is ill-formed UTF-8",
            ["MQTT-1.5.4-1 (5.0)"],
            Only5,
            [],
            m065
        ),
        case!(
            "13-malformed/066",
            "PUBLISH with an unknown property identifier",
            ["MQTT-4.13.1-1 (5.0)"],
            Only5,
            [],
            m066
        ),
        case!(
            "13-malformed/067",
            "SUBSCRIBE with Retain Handling 3",
            ["MQTT-3.8.3-5 (5.0)"],
            Only5,
            [],
            m067
        ),
        case!(
            "13-malformed/068",
            "SUBSCRIBE with No Local on a shared subscription",
            ["MQTT-3.8.3-4 (5.0)"],
            Only5,
            [SharedSubscriptions],
            m068
        ),
        case!(
            "13-malformed/069",
            "SUBSCRIBE with Subscription Identifier 0",
            ["MQTT-4.13.1-1 (5.0)"],
            Only5,
            [],
            m069
        ),
        case!(
            "13-malformed/070",
            "DISCONNECT sets a session expiry when CONNECT had none",
            ["MQTT-3.14.2-2 (5.0)"],
            Only5,
            [],
            m070
        ),
        case!(
            "13-malformed/071",
            "more QoS 2 publications in flight than the server's Receive Maximum",
            ["MQTT-3.3.4-7 (5.0)"],
            Only5,
            [Qos2],
            m071
        ),
        case!(
            "13-malformed/072",
            "packet larger than the server's Maximum Packet Size",
            ["MQTT-3.2.2-15 (5.0)"],
            Only5,
            [],
            m072
        ),
        case!(
            "13-malformed/073",
            "PUBLISH above the server's Maximum QoS",
            ["MQTT-3.2.2-11 (5.0)"],
            Only5,
            [],
            m073
        ),
        case!(
            "13-malformed/074",
            "retained PUBLISH when Retain Available is 0",
            ["MQTT-3.2.2-14 (5.0)"],
            Only5,
            [],
            m074
        ),
    ]
}

connect_test!(m001, &[], DISC, |ctx| Publish::new(&ctx.topic("x"), b"x")
    .encode(ctx.version));
connect_test!(m002, &[], DISC, |ctx| {
    let _ = &ctx;
    wire::pingreq()
});

async fn m003(ctx: Ctx) -> Step {
    let bytes = ctx.connect_packet("m").encode();
    bad_packet(ctx, bytes, M_P, REQ).await
}

connect_test!(m004, M_P, REQ, |ctx| {
    let c = ctx.connect_packet("m");
    c.encode_with_flags(c.flags() | 0x01)
});
connect_test!(m005, M_P, REQ, |ctx| {
    let c = ctx.connect_packet("m");
    c.encode_with_flags(c.flags() | 0x08)
});
connect_test!(m006, M_P, REQ, |ctx| {
    let c = ctx.connect_packet("m");
    c.encode_with_flags(c.flags() | 0x20)
});
connect_test!(m007, M_P, REQ, |ctx| {
    let mut c = ctx.connect_packet("m");
    c.will = Some(Will {
        topic: ctx.topic("w"),
        payload: b"w".to_vec(),
        qos: 0,
        retain: false,
        props: Props::new(),
    });
    c.encode_with_flags(c.flags() | 0x18)
});
connect_test!(m008, M_P, REQ, |ctx| {
    let mut c = ctx.connect_packet("m");
    c.password = Some(b"pw".to_vec());
    c.encode()
});
connect_test!(m009, M_P, REQ, |ctx| {
    let c = ctx.connect_packet("m");
    c.encode_with_flags(c.flags() | 0x80)
});
connect_test!(m010, M_P, REQ, |ctx| {
    let mut c = ctx.connect_packet("m");
    c.username = Some("user".into());
    c.encode_with_flags(c.flags() | 0x40)
});
connect_test!(m011, M_P, REQ, |ctx| {
    let c = ctx.connect_packet("m");
    c.encode_with_flags(c.flags() | 0x04)
});
connect_test!(m012, ID_INVALID, REQ, |ctx| connect_raw(
    ctx.version,
    0x02,
    &Props::new(),
    &[b'a', 0xC0, 0xAF],
    &[]
));
connect_test!(m013, ID_INVALID, REQ, |ctx| connect_raw(
    ctx.version,
    0x02,
    &Props::new(),
    b"a\0b",
    &[]
));
connect_test!(m014, TOPIC_INVALID, REQ, |ctx| {
    let mut c = ctx.connect_packet("m");
    c.will = Some(Will {
        topic: format!("{}/#", ctx.topic("w")),
        payload: b"w".to_vec(),
        qos: 0,
        retain: false,
        props: Props::new(),
    });
    c.encode()
});
connect_test!(m015, TOPIC_INVALID, REQ, |ctx| {
    let mut rest = Props::new().encode(ctx.version);
    rest.extend(string_bytes(&[b'w', 0xFF]));
    rest.extend(string("payload"));
    connect_raw(
        ctx.version,
        0x06,
        &Props::new(),
        ctx.cid("m").as_bytes(),
        &rest,
    )
});
connect_test!(m016, M_P, REQ, |ctx| connect_raw(
    ctx.version,
    0x82,
    &Props::new(),
    ctx.cid("m").as_bytes(),
    &string_bytes(&[b'u', 0xC3, 0x28])
));
connect_test!(m017, M_P, REQ, |ctx| {
    // The template CONNECT is shorter than 128 bytes: a 1-byte length.
    let mut body = ctx.connect_packet("m").encode()[2..].to_vec();
    body.extend_from_slice(&[0xDE, 0xAD]);
    frame(kind::CONNECT << 4, &body)
});
connect_test!(m018, M_P, REQ, |ctx| {
    let mut bytes = ctx.connect_packet("m").encode();
    bytes[0] |= 0x02;
    bytes
});
connect_test!(m019, M_P, REQ, |ctx| {
    let _ = &ctx;
    vec![0x10, 0x03, 0x00, 0x04, b'M']
});
connect_test!(m020, M_P, REQ, |ctx| connect_raw(
    ctx.version,
    0x02,
    &Props::new().byte(0x7F, 1),
    ctx.cid("m").as_bytes(),
    &[]
));
connect_test!(m021, M_P, REQ, |ctx| connect_raw(
    ctx.version,
    0x02,
    &Props::new()
        .u32(prop::SESSION_EXPIRY, 10)
        .u32(prop::SESSION_EXPIRY, 20),
    ctx.cid("m").as_bytes(),
    &[]
));
connect_test!(m022, M_P, REQ, |ctx| connect_raw(
    ctx.version,
    0x02,
    &Props::new().u16(prop::RECEIVE_MAXIMUM, 0),
    ctx.cid("m").as_bytes(),
    &[]
));
connect_test!(m023, M_P, REQ, |ctx| connect_raw(
    ctx.version,
    0x02,
    &Props::new().u32(prop::MAXIMUM_PACKET_SIZE, 0),
    ctx.cid("m").as_bytes(),
    &[]
));
connect_test!(m024, M_P, REQ, |ctx| connect_raw(
    ctx.version,
    0x02,
    &Props::new().byte(prop::REQUEST_PROBLEM_INFO, 2),
    ctx.cid("m").as_bytes(),
    &[]
));
connect_test!(m025, M_P, REQ, |ctx| {
    let mut body = string("MQTT");
    body.extend_from_slice(&[ctx.version.level(), 0x02, 0, 60, 100]);
    body.extend(string(&ctx.cid("m")));
    frame(kind::CONNECT << 4, &body)
});
connect_test!(m026, M_P, REQ, |ctx| connect_raw(
    ctx.version,
    0x02,
    &Props::new().binary(prop::AUTH_DATA, b"data"),
    ctx.cid("m").as_bytes(),
    &[]
));
connect_test!(m027, &[0x8C, 0x87], REQ, |ctx| connect_raw(
    ctx.version,
    0x02,
    &Props::new().string(prop::AUTH_METHOD, "x-conformance-no-such-method"),
    ctx.cid("m").as_bytes(),
    &[]
));
connect_test!(m028, M_P, REQ, |ctx| {
    let mut c = ctx.connect_packet("m");
    c.will = Some(Will {
        topic: ctx.topic("w"),
        payload: b"w".to_vec(),
        qos: 0,
        retain: false,
        props: Props::new()
            .u32(prop::WILL_DELAY, 1)
            .u32(prop::WILL_DELAY, 2),
    });
    c.encode()
});

packet_test!(m029, M_P, DISC, |ctx| {
    let _ = &ctx;
    vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]
});
packet_test!(m030, M_P, DISC, |ctx| {
    let _ = &ctx;
    vec![0x00, 0x00]
});
packet_test!(m031, M_P, DISC, |ctx| {
    let _ = &ctx;
    vec![0xF0, 0x00]
});

packet_test!(m032, M_P, DISC, |ctx| {
    let mut p = Publish::new(&ctx.topic("x"), b"x").qos(1, 1);
    p.qos = 3;
    p.encode(ctx.version)
});
packet_test!(m033, TOPIC_INVALID, DISC, |ctx| Publish::new(
    &format!("{}/+/x", ctx.topic("x")),
    b"x"
)
.encode(ctx.version));
packet_test!(m034, TOPIC_INVALID, DISC, |ctx| Publish::new(
    &format!("{}/#", ctx.topic("x")),
    b"x"
)
.encode(ctx.version));
packet_test!(m035, TOPIC_INVALID, DISC, |ctx| Publish::new("", b"x")
    .encode(ctx.version));
packet_test!(m036, TOPIC_INVALID, DISC, |ctx| publish_raw(
    ctx.version,
    0x30,
    &[b'a', b'/', 0xFF],
    None,
    &Props::new()
));
packet_test!(m037, TOPIC_INVALID, DISC, |ctx| publish_raw(
    ctx.version,
    0x30,
    b"a/\0/b",
    None,
    &Props::new()
));
packet_test!(m038, TOPIC_INVALID, DISC, |ctx| publish_raw(
    ctx.version,
    0x30,
    &[b'a', b'/', 0xED, 0xA0, 0x80],
    None,
    &Props::new()
));
packet_test!(m039, M_P, DISC, |ctx| publish_raw(
    ctx.version,
    0x32,
    ctx.topic("x").as_bytes(),
    Some(0),
    &Props::new()
));
packet_test!(m040, M_P, DISC, |ctx| publish_raw(
    ctx.version,
    0x38,
    ctx.topic("x").as_bytes(),
    None,
    &Props::new()
));
packet_test!(m041, M_P, DISC, |ctx| {
    let _ = &ctx;
    vec![0x30, 0x05, 0x00, 0x14, b'a', b'b', b'c']
});

packet_test!(m042, M_P, REQ, |ctx| subscribe_raw(
    ctx.version,
    0x80,
    1,
    ctx.topic("x").as_bytes(),
    0,
    &Props::new()
));
packet_test!(m043, M_P, DISC, |ctx| {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend(Props::new().encode(ctx.version));
    frame(0x82, &body)
});
packet_test!(m044, M_P, DISC, |ctx| subscribe_raw(
    ctx.version,
    0x82,
    1,
    ctx.topic("x").as_bytes(),
    3,
    &Props::new()
));
packet_test!(m045, M_P, REQ, |ctx| {
    let opts = if ctx.version.is_v5() { 0x40 } else { 0x04 };
    subscribe_raw(
        ctx.version,
        0x82,
        1,
        ctx.topic("x").as_bytes(),
        opts,
        &Props::new(),
    )
});
packet_test!(m046, M_P, DISC, |ctx| subscribe_raw(
    ctx.version,
    0x82,
    0,
    ctx.topic("x").as_bytes(),
    0,
    &Props::new()
));
packet_test!(m047, M_P, DISC, |ctx| subscribe_raw(
    ctx.version,
    0x82,
    1,
    &[b'a', 0xC3, 0x28],
    0,
    &Props::new()
));
packet_test!(m048, M_P, DISC, |ctx| subscribe_raw(
    ctx.version,
    0x82,
    1,
    b"a/\0",
    0,
    &Props::new()
));
packet_test!(m049, M_P, DISC, |ctx| {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend(Props::new().encode(ctx.version));
    body.extend_from_slice(&[0x00, 0x30, b'a', 0x00]);
    frame(0x82, &body)
});
packet_test!(m050, M_P, REQ, |ctx| unsubscribe_raw(
    ctx.version,
    0xA0,
    1,
    &[ctx.topic("x").as_bytes()]
));
packet_test!(m051, M_P, DISC, |ctx| unsubscribe_raw(
    ctx.version,
    0xA2,
    1,
    &[]
));
packet_test!(m052, M_P, DISC, |ctx| unsubscribe_raw(
    ctx.version,
    0xA2,
    0,
    &[ctx.topic("x").as_bytes()]
));
packet_test!(m053, M_P, DISC, |ctx| unsubscribe_raw(
    ctx.version,
    0xA2,
    1,
    &[&[b'a', 0xFF]]
));

packet_test!(m054, M_P, REQ, |ctx| {
    let _ = &ctx;
    vec![0x60, 0x02, 0x00, 0x01]
});
packet_test!(m055, M_P, DISC, |ctx| {
    let _ = &ctx;
    vec![0xC0, 0x01, 0x00]
});
packet_test!(m056, M_P, DISC, |ctx| {
    let _ = &ctx;
    vec![0xC1, 0x00]
});
packet_test!(m057, M_P, DISC, |ctx| {
    let _ = &ctx;
    vec![0x41, 0x02, 0x00, 0x01]
});
packet_test!(m058, M_P, DISC, |ctx| {
    if ctx.version.is_v5() {
        vec![0x20, 0x03, 0x00, 0x00, 0x00]
    } else {
        vec![0x20, 0x02, 0x00, 0x00]
    }
});

packet_test!(m059, ALIAS_INVALID, DISC, |ctx| Publish::new(
    &ctx.topic("x"),
    b"x"
)
.props(Props::new().u16(prop::TOPIC_ALIAS, 0))
.encode(ctx.version));

async fn m060(ctx: Ctx) -> Step {
    let (mut cl, ack) = ctx.client("m").await?;
    let max = ack.props.int(prop::TOPIC_ALIAS_MAXIMUM).unwrap_or(0);
    if max >= 65_535 {
        return Err(Failure::NotApplicable(
            "server accepts every Topic Alias value".into(),
        ));
    }
    let bytes = Publish::new(&ctx.topic("x"), b"x")
        .props(Props::new().u16(prop::TOPIC_ALIAS, (max + 1) as u16))
        .encode(ctx.version);
    bad_on(&ctx, &mut cl, &bytes, ALIAS_INVALID).await
}

async fn m061(ctx: Ctx) -> Step {
    let (mut first, ack) = ctx.client("a").await?;
    let supported = ack.props.int(prop::TOPIC_ALIAS_MAXIMUM).unwrap_or(0) > 0;
    if supported {
        first
            .send(
                &Publish::new(&ctx.topic("x"), b"x")
                    .props(Props::new().u16(prop::TOPIC_ALIAS, 1))
                    .encode(ctx.version),
            )
            .await?;
    }
    first.disconnect().await?;
    let bytes = Publish::new("", b"x")
        .props(Props::new().u16(prop::TOPIC_ALIAS, 1))
        .encode(ctx.version);
    bad_packet(ctx, bytes, ALIAS_INVALID, DISC).await
}

packet_test!(m062, M_P, DISC, |ctx| Publish::new(&ctx.topic("x"), b"x")
    .props(Props::new().varint(prop::SUBSCRIPTION_ID, 1))
    .encode(ctx.version));
packet_test!(m063, TOPIC_INVALID, DISC, |ctx| Publish::new(
    &ctx.topic("x"),
    b"x"
)
.props(Props::new().string(prop::RESPONSE_TOPIC, "reply/#"))
.encode(ctx.version));
packet_test!(m064, M_P, DISC, |ctx| Publish::new(&ctx.topic("x"), b"x")
    .props(
        Props::new()
            .byte(prop::PAYLOAD_FORMAT, 0)
            .byte(prop::PAYLOAD_FORMAT, 0)
    )
    .encode(ctx.version));
packet_test!(m065, M_P, DISC, |ctx| {
    let mut raw = vec![prop::USER_PROPERTY];
    raw.extend(string_bytes(&[b'k', 0xFF]));
    raw.extend(string("v"));
    Publish::new(&ctx.topic("x"), b"x")
        .props(Props::new().raw(&raw))
        .encode(ctx.version)
});
packet_test!(m066, M_P, DISC, |ctx| Publish::new(&ctx.topic("x"), b"x")
    .props(Props::new().byte(0x7F, 0))
    .encode(ctx.version));
packet_test!(m067, M_P, DISC, |ctx| subscribe_raw(
    ctx.version,
    0x82,
    1,
    ctx.topic("x").as_bytes(),
    wire::sub_opts(0, false, false, 3),
    &Props::new()
));

async fn m068(ctx: Ctx) -> Step {
    let (mut cl, ack) = ctx.client("m").await?;
    ctx.need_in_connack(&ack, Feature::SharedSubscriptions)?;
    let filter = format!("$share/g/{}", ctx.topic("x"));
    cl.send_lenient(&wire::subscribe(
        ctx.version,
        1,
        &[(&filter, wire::sub_opts(0, true, false, 0))],
        &Props::new(),
    ))
    .await?;
    expect_close_rigor(&ctx, &mut cl, Close::Packet(M_P), DISC).await?;
    ctx.still_served().await
}

packet_test!(m069, M_P, DISC, |ctx| subscribe_raw(
    ctx.version,
    0x82,
    1,
    ctx.topic("x").as_bytes(),
    0,
    &Props::new().varint(prop::SUBSCRIPTION_ID, 0)
));

async fn m070(ctx: Ctx) -> Step {
    let (mut cl, _) = ctx.client("m").await?;
    cl.send_lenient(&wire::disconnect(
        ctx.version,
        0,
        &Props::new().u32(prop::SESSION_EXPIRY, 300),
    ))
    .await?;
    expect_close_rigor(&ctx, &mut cl, Close::Packet(M_P), DISC).await?;
    // The illegal change must not have been applied.
    let mut c = ctx.connect_packet("m");
    c.clean = false;
    let (cl, ack) = ctx.connect(&c).await?;
    cl.disconnect().await?;
    ctx.still_served().await?;
    if ack.session_present {
        // It applied the illegal value instead of treating it as a protocol
        // error: an unchecked input, which 4.13.1 permits.
        return Err(Failure::NotApplicable(
            "broker applied a Session Expiry Interval from DISCONNECT to a session created \
             with none (not checked; section 4.13.1)"
                .into(),
        ));
    }
    Ok(())
}

async fn m071(ctx: Ctx) -> Step {
    let (mut cl, ack) = ctx.client("m").await?;
    let rm = ack.props.int(prop::RECEIVE_MAXIMUM).unwrap_or(65_535);
    if rm > 1000 {
        return Err(Failure::NotApplicable(format!(
            "server Receive Maximum {rm} is too large to exceed quickly"
        )));
    }
    let topic = ctx.topic("x");
    for i in 0..=rm {
        let bytes = Publish::new(&topic, b"x")
            .qos(2, (i + 1) as u16)
            .encode(ctx.version);
        cl.send_lenient(&bytes).await?;
    }
    // The broker answers up to `rm` PUBRECs, then closes (5.0 leaves the
    // check to the server: see [`Rigor::Discretionary5`]).
    let (closed, seen) = match observe_close(&ctx, &mut cl).await? {
        Closing::Closed(seen) => (true, seen),
        Closing::Open(seen) => (false, seen),
    };
    let mut recs = 0;
    for p in &seen {
        match p {
            crate::decode::Packet::Ack {
                kind: kind::PUBREC, ..
            } => recs += 1,
            crate::decode::Packet::Disconnect { code, .. } => check!(
                [0x93, 0x81, 0x82].contains(code),
                "DISCONNECT {code:#04x}; Receive Maximum exceeded calls for 0x93 [MQTT-3.3.4-7]"
            ),
            other => {
                return Err(Failure::Spec(format!(
                    "unexpected {} [MQTT-3.3.4-7]",
                    other.name()
                )))
            }
        }
    }
    if !closed {
        ctx.still_served().await?;
        return Err(Failure::NotApplicable(format!(
            "5.0 broker tolerates exceeding its Receive Maximum of {rm} (answered {recs} \
             PUBRECs); section 4.13.1 leaves the rigor of checks to the server"
        )));
    }
    check!(
        recs <= rm as usize,
        "{recs} PUBRECs for a Receive Maximum of {rm}"
    );
    ctx.still_served().await
}

async fn m072(ctx: Ctx) -> Step {
    let (mut cl, ack) = ctx.client("m").await?;
    let Some(max) = ack.props.int(prop::MAXIMUM_PACKET_SIZE) else {
        return Err(Failure::NotApplicable(
            "server declares no Maximum Packet Size".into(),
        ));
    };
    if max > 16 * 1024 * 1024 {
        return Err(Failure::NotApplicable(format!(
            "server Maximum Packet Size {max} too large to exceed in a test"
        )));
    }
    let payload = vec![b'x'; max as usize + 1];
    let bytes = Publish::new(&ctx.topic("x"), &payload).encode(ctx.version);
    bad_on(&ctx, &mut cl, &bytes, &[0x95, 0x81, 0x82]).await
}

async fn m073(ctx: Ctx) -> Step {
    let (mut cl, ack) = ctx.client("m").await?;
    let Some(max) = ack.props.int(prop::MAXIMUM_QOS) else {
        return Err(Failure::NotApplicable(
            "server supports QoS 2 (no Maximum QoS)".into(),
        ));
    };
    let bytes = Publish::new(&ctx.topic("x"), b"x")
        .qos(max as u8 + 1, 1)
        .encode(ctx.version);
    bad_on(&ctx, &mut cl, &bytes, &[0x9B, 0x81, 0x82]).await
}

async fn m074(ctx: Ctx) -> Step {
    let (mut cl, ack) = ctx.client("m").await?;
    if ack.props.int(prop::RETAIN_AVAILABLE) != Some(0) {
        return Err(Failure::NotApplicable("server supports retain".into()));
    }
    let bytes = Publish::new(&ctx.topic("x"), b"x")
        .retain(true)
        .encode(ctx.version);
    bad_on(&ctx, &mut cl, &bytes, &[0x9A, 0x81, 0x82]).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Connect;

    #[test]
    fn raw_builders_frame_lengths_correctly() {
        let b = connect_raw(Version::V311, 0x02, &Props::new(), b"ab", &[]);
        assert_eq!(b[1] as usize, b.len() - 2);
        let s = subscribe_raw(Version::V5, 0x82, 1, b"t", 0, &Props::new());
        assert_eq!(s, vec![0x82, 7, 0, 1, 0, 0, 1, b't', 0]);
        let u = unsubscribe_raw(Version::V311, 0xA2, 1, &[]);
        assert_eq!(u, vec![0xA2, 2, 0, 1]);
        let p = publish_raw(Version::V311, 0x30, b"a", None, &Props::new());
        assert_eq!(&p[..5], &[0x30, 10, 0, 1, b'a']);
    }

    #[test]
    fn connect_with_will_qos_3_sets_both_qos_bits() {
        let mut c = Connect::new(Version::V311, "x");
        c.will = Some(Will {
            topic: "t".into(),
            payload: vec![],
            qos: 0,
            retain: false,
            props: Props::new(),
        });
        let b = c.encode_with_flags(c.flags() | 0x18);
        assert_eq!(b[9], 0x02 | 0x04 | 0x18);
    }
}
