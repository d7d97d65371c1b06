//! Malformed packets and protocol violations, as raw bytes: each closes its
//! own connection only (5.0: DISCONNECT with the matching reason first),
//! others keep working, and the broker counts it.

mod common;

use std::time::Duration;

use common::wire::{self, frame, string};
use common::{bounded, stat, wait_for, Raw, TestServer};
use herald::codec::reason;

/// Largest packet the test server accepts.
const MAX_PACKET: u32 = 256;

/// A bad packet, sent after a successful CONNECT.
struct Case {
    name: &'static str,
    /// Bytes for a 3.1.1 connection and for a 5.0 one.
    v3: Vec<u8>,
    v5: Vec<u8>,
    /// The DISCONNECT reason a 5.0 client gets.
    code: u8,
}

/// PUBLISH QoS 0 with a raw topic (bytes, not necessarily UTF-8).
fn publish_raw_topic(topic: &[u8], v5: bool) -> Vec<u8> {
    let mut body = string(topic);
    if v5 {
        body.push(0);
    }
    body.extend_from_slice(b"p");
    frame(0x30, &body)
}

fn cases() -> Vec<Case> {
    let both = |name, bytes: Vec<u8>, code| Case {
        name,
        v3: bytes.clone(),
        v5: bytes,
        code,
    };
    let qos1_pid0 = |v5: bool| {
        let mut body = string(b"t");
        body.extend([0, 0]);
        if v5 {
            body.push(0);
        }
        body.push(b'x');
        frame(0x32, &body)
    };
    let qos3 = |v5: bool| {
        let mut body = string(b"t");
        body.extend([0, 1]);
        if v5 {
            body.push(0);
        }
        frame(0x36, &body)
    };
    let oversize = |v5: bool| {
        let payload = vec![0u8; MAX_PACKET as usize];
        if v5 {
            wire::publish5("big", 0, false, 0, &payload)
        } else {
            wire::publish3("big", 0, false, 0, &payload)
        }
    };
    vec![
        // [MQTT-1.5.5-1] / section 2.1.4: at most 4 bytes of remaining length.
        both(
            "remaining length of 5 bytes",
            vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            reason::MALFORMED_PACKET,
        ),
        // [MQTT-3.8.1-1]: SUBSCRIBE flags must be 0010.
        Case {
            name: "reserved flag bits",
            v3: wire::frame(0x80, &[0, 1, 0, 1, b't', 0]),
            v5: wire::frame(0x80, &[0, 1, 0, 0, 1, b't', 0]),
            code: reason::MALFORMED_PACKET,
        },
        // [MQTT-1.5.4-1]: ill-formed UTF-8 is malformed.
        Case {
            name: "invalid UTF-8 in a topic",
            v3: publish_raw_topic(&[b'a', 0xC3, 0x28], false),
            v5: publish_raw_topic(&[b'a', 0xC3, 0x28], true),
            code: reason::MALFORMED_PACKET,
        },
        // [MQTT-1.5.4-2]: U+0000 is malformed.
        Case {
            name: "U+0000 in a topic",
            v3: publish_raw_topic(b"a\0b", false),
            v5: publish_raw_topic(b"a\0b", true),
            code: reason::MALFORMED_PACKET,
        },
        // [MQTT-2.2.1-3]: packet ids are non-zero. The bytes are well formed,
        // the rule is broken: a Protocol Error.
        Case {
            name: "packet id 0",
            v3: qos1_pid0(false),
            v5: qos1_pid0(true),
            code: reason::PROTOCOL_ERROR,
        },
        // [MQTT-3.3.1-4]: QoS 3 is malformed.
        Case {
            name: "QoS 3",
            v3: qos3(false),
            v5: qos3(true),
            code: reason::MALFORMED_PACKET,
        },
        // Over the server's Maximum Packet Size: 0x95 (section 3.2.2.3.6).
        Case {
            name: "oversize packet",
            v3: oversize(false),
            v5: oversize(true),
            code: reason::PACKET_TOO_LARGE,
        },
    ]
}

#[tokio::test]
async fn each_bad_packet_closes_only_its_connection() {
    bounded(async {
        let srv = TestServer::start_with(|c| c.limits.max_packet_size_bytes = MAX_PACKET).await;
        let mut bystander = Raw::v5(srv.addr, "bystander").await;
        bystander.subscribe(1, &[("alive", 1)]).await;
        let mut errors = 0;
        for case in cases() {
            for v5 in [false, true] {
                let id = format!("bad-{}-{v5}", case.name.replace(' ', "-"));
                let mut raw = if v5 {
                    Raw::v5(srv.addr, &id).await
                } else {
                    Raw::v311(srv.addr, &id).await
                };
                raw.send_lossy(if v5 { &case.v5 } else { &case.v3 }).await;
                if v5 {
                    let seen = raw.expect_close().await;
                    match seen.last() {
                        Some(herald::codec::Packet::Disconnect(d)) => assert_eq!(
                            d.reason, case.code,
                            "{}: DISCONNECT 0x{:02X}, wanted 0x{:02X}",
                            case.name, d.reason, case.code
                        ),
                        _ => panic!("{}: no DISCONNECT before close: {seen:?}", case.name),
                    }
                } else {
                    let seen = raw.expect_close().await;
                    assert!(
                        seen.is_empty(),
                        "{}: 3.1.1 gets nothing: {seen:?}",
                        case.name
                    );
                }
                errors += 1;
                wait_for(
                    &format!("{} counted as a protocol error", case.name),
                    Duration::from_secs(2),
                    || stat(&srv.broker.stats.protocol_errors) == errors,
                )
                .await;
                // The other connection is unaffected.
                bystander.publish("alive", 1, false, 7, b"still").await;
                let mut got_ack = false;
                let mut got_msg = false;
                while !(got_ack && got_msg) {
                    match bystander.expect_packet().await {
                        herald::codec::Packet::PubAck(_) => got_ack = true,
                        herald::codec::Packet::Publish(p) => {
                            assert_eq!(&p.payload[..], b"still");
                            bystander
                                .send(&wire::puback(p.packet_id.expect("QoS 1")))
                                .await;
                            got_msg = true;
                        }
                        other => panic!("bystander got {other:?}"),
                    }
                }
            }
        }
    })
    .await;
}

#[tokio::test]
async fn bad_bytes_split_across_reads_are_still_refused() {
    bounded(async {
        let srv = TestServer::start().await;
        // The fixed header arrives one byte at a time.
        let mut raw = Raw::v5(srv.addr, "split").await;
        for b in [0x30u8, 0xFF, 0xFF, 0xFF, 0xFF, 0x01] {
            raw.send_lossy(&[b]).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        raw.expect_disconnect(reason::MALFORMED_PACKET).await;
        assert_eq!(stat(&srv.broker.stats.protocol_errors), 1);
    })
    .await;
}
