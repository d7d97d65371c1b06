//! Property and oracle tests for the MQTT codec.
//!
//! - Round trip: any valid packet of any version encodes, `encoded_len` is
//!   exact, and it decodes back to the same value (3.x packets carry default
//!   5.0-only fields).
//! - Split reads: a stream of packets fed one byte at a time, or cut in two at
//!   every offset, decodes to the same packets, with `Ok(None)` until each
//!   frame is complete.
//! - Robustness: random bytes and mutated valid frames never panic.
//! - Oracles: packets written by mqttbytes 0.6 and by rumqttc 0.25's codec
//!   decode in ours to the equivalent values, and ours decode in theirs.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use herald::codec::{
    decode, decode_as_client, encode, encoded_len, Auth, AuthProperties, ConnAck,
    ConnAckProperties, Connect, ConnectProperties, DecodeError, Disconnect, DisconnectProperties,
    Packet, ProtocolVersion, PubResp, Publish, PublishProperties, QoS, ReasonProperties, SubAck,
    Subscribe, SubscribeFilter, SubscribeProperties, UnsubAck, Unsubscribe, UserProperty, Will,
    WillProperties,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

const MAX: u32 = 1 << 20;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

// ---------------------------------------------------------------------------
// Strategies: valid packets per version.

fn text() -> BoxedStrategy<ByteString> {
    "[^\u{0}]{0,8}".prop_map(ByteString::from).boxed()
}

/// A valid topic name: non-empty, no wildcards.
fn topic() -> BoxedStrategy<ByteString> {
    "[a-z0-9/ _$\u{e9}\u{4e2d}-]{1,12}"
        .prop_map(ByteString::from)
        .boxed()
}

/// Any filter text: the codec does not validate filter syntax.
fn filter() -> BoxedStrategy<ByteString> {
    "[a-z0-9/+#$]{1,12}".prop_map(ByteString::from).boxed()
}

fn bin() -> BoxedStrategy<Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from).boxed()
}

fn users() -> BoxedStrategy<Vec<UserProperty>> {
    vec((text(), text()), 0..3).boxed()
}

fn qos() -> BoxedStrategy<QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
    .boxed()
}

fn flag() -> BoxedStrategy<Option<u8>> {
    option::of(0u8..=1).boxed()
}

fn pkid() -> BoxedStrategy<u16> {
    (1u16..=u16::MAX).boxed()
}

fn sub_id() -> BoxedStrategy<u32> {
    (1u32..=268_435_455).boxed()
}

fn reason_properties(v: ProtocolVersion) -> BoxedStrategy<ReasonProperties> {
    if !v.is_v5() {
        return Just(ReasonProperties::default()).boxed();
    }
    (option::of(text()), users())
        .prop_map(|(reason_string, user_properties)| ReasonProperties {
            reason_string,
            user_properties,
        })
        .boxed()
}

fn connect_properties() -> BoxedStrategy<ConnectProperties> {
    (
        option::of(any::<u32>()),
        option::of(1u16..),
        option::of(1u32..),
        option::of(any::<u16>()),
        flag(),
        flag(),
        users(),
        option::of(text()),
        option::of(bin()),
    )
        .prop_map(|(sei, rm, mps, tam, rri, rpi, up, am, ad)| {
            let authentication_method = if ad.is_some() && am.is_none() {
                Some(ByteString::from_static("m"))
            } else {
                am
            };
            ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties: up,
                authentication_method,
                authentication_data: ad,
            }
        })
        .boxed()
}

fn will_properties() -> BoxedStrategy<WillProperties> {
    (
        option::of(any::<u32>()),
        flag(),
        option::of(any::<u32>()),
        option::of(text()),
        option::of(topic()),
        option::of(bin()),
        users(),
    )
        .prop_map(|(wdi, pfi, mei, ct, rt, cd, up)| WillProperties {
            will_delay_interval: wdi,
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
        })
        .boxed()
}

fn connect(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let props = if v.is_v5() {
        connect_properties()
    } else {
        Just(ConnectProperties::default()).boxed()
    };
    let will_props = if v.is_v5() {
        will_properties()
    } else {
        Just(WillProperties::default()).boxed()
    };
    let will = option::of((topic(), bin(), qos(), any::<bool>(), will_props).prop_map(
        |(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        },
    ));
    (
        any::<bool>(),
        any::<u16>(),
        props,
        text(),
        will,
        option::of(text()),
        option::of(bin()),
    )
        .prop_map(
            move |(clean_start, keep_alive, properties, client_id, will, username, password)| {
                // [MQTT-3.1.2-22]: 3.x has no password without a user name.
                let username = if !v.is_v5() && password.is_some() && username.is_none() {
                    Some(ByteString::from_static("user"))
                } else {
                    username
                };
                Packet::Connect(Box::new(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    properties,
                    client_id,
                    will,
                    username,
                    password,
                }))
            },
        )
        .boxed()
}

fn connack_properties() -> BoxedStrategy<ConnAckProperties> {
    (
        (
            option::of(any::<u32>()),
            option::of(1u16..),
            flag(),
            flag(),
            option::of(1u32..),
            option::of(text()),
            option::of(any::<u16>()),
            option::of(text()),
        ),
        (
            users(),
            flag(),
            flag(),
            flag(),
            option::of(any::<u16>()),
            option::of(text()),
            option::of(text()),
            option::of(text()),
            option::of(bin()),
        ),
    )
        .prop_map(
            |((sei, rm, mq, ra, mps, aci, tam, rs), (up, wsa, sia, ssa, ska, ri, sr, am, ad))| {
                ConnAckProperties {
                    session_expiry_interval: sei,
                    receive_maximum: rm,
                    maximum_qos: mq,
                    retain_available: ra,
                    maximum_packet_size: mps,
                    assigned_client_identifier: aci,
                    topic_alias_maximum: tam,
                    reason_string: rs,
                    user_properties: up,
                    wildcard_subscription_available: wsa,
                    subscription_identifiers_available: sia,
                    shared_subscription_available: ssa,
                    server_keep_alive: ska,
                    response_information: ri,
                    server_reference: sr,
                    authentication_method: am,
                    authentication_data: ad,
                }
            },
        )
        .boxed()
}

fn connack(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let props = if v.is_v5() {
        connack_properties()
    } else {
        Just(ConnAckProperties::default()).boxed()
    };
    (any::<bool>(), any::<u8>(), props)
        .prop_map(|(session_present, code, properties)| {
            Packet::ConnAck(ConnAck {
                session_present,
                code,
                properties,
            })
        })
        .boxed()
}

fn publish_properties() -> BoxedStrategy<PublishProperties> {
    (
        flag(),
        option::of(any::<u32>()),
        option::of(1u16..),
        option::of(topic()),
        option::of(bin()),
        users(),
        vec(sub_id(), 0..3),
        option::of(text()),
    )
        .prop_map(|(pfi, mei, ta, rt, cd, up, si, ct)| PublishProperties {
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            topic_alias: ta,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
            subscription_identifiers: si,
            content_type: ct,
        })
        .boxed()
}

fn publish(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let props = if v.is_v5() {
        publish_properties()
    } else {
        Just(PublishProperties::default()).boxed()
    };
    let topic = if v.is_v5() {
        prop_oneof![3 => topic(), 1 => Just(ByteString::new())].boxed()
    } else {
        topic()
    };
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        topic,
        pkid(),
        props,
        bin(),
    )
        .prop_map(|(dup, qos, retain, topic, id, mut properties, payload)| {
            // 5.0: an empty topic needs a topic alias.
            if topic.is_empty() && properties.topic_alias.is_none() {
                properties.topic_alias = Some(1);
            }
            let at_most_once = qos == QoS::AtMostOnce;
            Packet::Publish(Publish {
                dup: dup && !at_most_once,
                qos,
                retain,
                topic,
                packet_id: (!at_most_once).then_some(id),
                properties,
                payload,
            })
        })
        .boxed()
}

const PUBACK_REASONS: [u8; 9] = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_REASONS: [u8; 2] = [0x00, 0x92];
const DISCONNECT_REASONS: [u8; 29] = [
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];

fn pub_resp(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    (
        0u8..4,
        pkid(),
        any::<prop::sample::Index>(),
        reason_properties(v),
    )
        .prop_map(move |(kind, packet_id, index, properties)| {
            let reasons: &[u8] = if kind < 2 {
                &PUBACK_REASONS
            } else {
                &PUBREL_REASONS
            };
            let reason = if v.is_v5() { *index.get(reasons) } else { 0 };
            let r = PubResp {
                packet_id,
                reason,
                properties,
            };
            match kind {
                0 => Packet::PubAck(r),
                1 => Packet::PubRec(r),
                2 => Packet::PubRel(r),
                _ => Packet::PubComp(r),
            }
        })
        .boxed()
}

fn subscribe(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let props = if v.is_v5() {
        (option::of(sub_id()), users())
            .prop_map(
                |(subscription_identifier, user_properties)| SubscribeProperties {
                    subscription_identifier,
                    user_properties,
                },
            )
            .boxed()
    } else {
        Just(SubscribeProperties::default()).boxed()
    };
    let filters = vec(
        (filter(), qos(), any::<bool>(), any::<bool>(), 0u8..=2).prop_map(
            move |(filter, qos, no_local, rap, rh)| SubscribeFilter {
                filter,
                qos,
                no_local: no_local && v.is_v5(),
                retain_as_published: rap && v.is_v5(),
                retain_handling: if v.is_v5() { rh } else { 0 },
            },
        ),
        1..4,
    );
    (pkid(), props, filters)
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        })
        .boxed()
}

fn suback(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let codes = if v.is_v5() {
        vec(any::<u8>(), 1..5).boxed()
    } else {
        vec(prop::sample::select(vec![0u8, 1, 2, 0x80]), 1..5).boxed()
    };
    (pkid(), reason_properties(v), codes)
        .prop_map(|(packet_id, properties, codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                codes,
            })
        })
        .boxed()
}

fn unsubscribe(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let props = if v.is_v5() {
        users()
    } else {
        Just(Vec::new()).boxed()
    };
    (pkid(), props, vec(filter(), 1..4))
        .prop_map(|(packet_id, user_properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                user_properties,
                filters,
            })
        })
        .boxed()
}

fn unsuback(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let codes = if v.is_v5() {
        vec(any::<u8>(), 1..5).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (pkid(), reason_properties(v), codes)
        .prop_map(|(packet_id, properties, codes)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties,
                codes,
            })
        })
        .boxed()
}

fn disconnect(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    if !v.is_v5() {
        return Just(Packet::Disconnect(Disconnect::default())).boxed();
    }
    (
        prop::sample::select(DISCONNECT_REASONS.to_vec()),
        option::of(any::<u32>()),
        option::of(text()),
        users(),
        option::of(text()),
    )
        .prop_map(|(reason, sei, rs, up, sr)| {
            Packet::Disconnect(Disconnect {
                reason,
                properties: DisconnectProperties {
                    session_expiry_interval: sei,
                    reason_string: rs,
                    user_properties: up,
                    server_reference: sr,
                },
            })
        })
        .boxed()
}

fn auth() -> BoxedStrategy<Packet> {
    (
        prop::sample::select(vec![0x00u8, 0x18, 0x19]),
        option::of(text()),
        option::of(bin()),
        option::of(text()),
        users(),
    )
        .prop_map(|(reason, am, ad, rs, up)| {
            let authentication_method = if ad.is_some() && am.is_none() {
                Some(ByteString::from_static("m"))
            } else {
                am
            };
            Packet::Auth(Auth {
                reason,
                properties: AuthProperties {
                    authentication_method,
                    authentication_data: ad,
                    reason_string: rs,
                    user_properties: up,
                },
            })
        })
        .boxed()
}

/// Any valid packet for `v`.
fn packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        1 => connect(v),
        1 => connack(v),
        3 => publish(v),
        2 => pub_resp(v),
        1 => subscribe(v),
        1 => suback(v),
        1 => unsubscribe(v),
        1 => unsuback(v),
        1 => Just(Packet::PingReq),
        1 => Just(Packet::PingResp),
        1 => disconnect(v),
    ];
    if v.is_v5() {
        prop_oneof![10 => common, 1 => auth()].boxed()
    } else {
        common.boxed()
    }
}

fn version() -> BoxedStrategy<ProtocolVersion> {
    prop::sample::select(VERSIONS.to_vec()).boxed()
}

fn version_and_packet() -> BoxedStrategy<(ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| (Just(v), packet(v))).boxed()
}

fn version_and_packets() -> BoxedStrategy<(ProtocolVersion, Vec<Packet>)> {
    version()
        .prop_flat_map(|v| (Just(v), vec(packet(v), 1..6)))
        .boxed()
}

fn to_bytes(p: &Packet, v: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    encode(p, v, &mut buf);
    buf
}

/// True for a PUBLISH that only a server may send.
fn has_subscription_ids(p: &Packet) -> bool {
    matches!(p, Packet::Publish(p) if !p.properties.subscription_identifiers.is_empty())
}

/// Decodes everything complete in `buf` as a client would (accepting
/// subscription identifiers), appending to `out`.
fn drain(buf: &mut BytesMut, v: ProtocolVersion, out: &mut Vec<Packet>) {
    while let Some(p) = decode_as_client(buf, Some(v), MAX).expect("valid stream") {
        out.push(p);
    }
}

// ---------------------------------------------------------------------------
// Round trip, sizes, split reads, robustness.

proptest! {
    #[test]
    fn round_trip((v, p) in version_and_packet()) {
        let bytes = to_bytes(&p, v);
        // encoded_len is exact.
        prop_assert_eq!(bytes.len(), encoded_len(&p, v));
        // CONNECT is decoded before the version is known; everything else after.
        let known = if matches!(p, Packet::Connect(_)) { None } else { Some(v) };

        let mut buf = bytes.clone();
        let decoded = decode_as_client(&mut buf, known, MAX);
        prop_assert_eq!(decoded, Ok(Some(p.clone())));
        prop_assert!(buf.is_empty());

        let mut buf = bytes.clone();
        let decoded = decode(&mut buf, known, MAX);
        if has_subscription_ids(&p) {
            // [MQTT-3.3.4-6]: a server refuses subscription ids from a client.
            prop_assert!(matches!(decoded, Err(DecodeError::Protocol(_))));
        } else {
            prop_assert_eq!(decoded, Ok(Some(p.clone())));
        }

        // The size limit covers the whole frame, fixed header included.
        let len = u32::try_from(bytes.len()).expect("small packet");
        let mut buf = bytes.clone();
        prop_assert!(decode_as_client(&mut buf, known, len).is_ok());
        let mut buf = bytes.clone();
        let too_large = decode_as_client(&mut buf, known, len - 1);
        prop_assert!(
            matches!(too_large, Err(DecodeError::PacketTooLarge { .. })),
            "{:?}",
            too_large
        );
    }

    #[test]
    fn byte_by_byte_stream((v, packets) in version_and_packets()) {
        let mut bytes = BytesMut::new();
        let mut ends = Vec::new();
        for p in &packets {
            encode(p, v, &mut bytes);
            ends.push(bytes.len());
        }
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for (i, &b) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            drain(&mut buf, v, &mut out);
            // A packet comes out exactly when its last byte has arrived;
            // before that the decoder answers Ok(None).
            let complete = ends.iter().filter(|&&e| e <= i + 1).count();
            prop_assert_eq!(out.len(), complete);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, packets);
    }

    #[test]
    fn stream_cut_in_two_at_every_offset((v, packets) in version_and_packets()) {
        let mut bytes = BytesMut::new();
        for p in &packets {
            encode(p, v, &mut bytes);
        }
        for cut in 0..=bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            let mut out = Vec::new();
            drain(&mut buf, v, &mut out);
            buf.extend_from_slice(&bytes[cut..]);
            drain(&mut buf, v, &mut out);
            prop_assert!(buf.is_empty());
            prop_assert_eq!(&out, &packets);
        }
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..512),
        max in prop_oneof![Just(MAX), 0u32..64],
    ) {
        for v in [None, Some(ProtocolVersion::V3_1), Some(ProtocolVersion::V3_1_1), Some(ProtocolVersion::V5)] {
            for client in [false, true] {
                let mut buf = BytesMut::from(&bytes[..]);
                loop {
                    let before = buf.len();
                    let r = if client {
                        decode_as_client(&mut buf, v, max)
                    } else {
                        decode(&mut buf, v, max)
                    };
                    match r {
                        Ok(Some(_)) => prop_assert!(buf.len() < before, "a packet consumes bytes"),
                        Ok(None) => {
                            prop_assert_eq!(buf.len(), before, "Ok(None) consumes nothing");
                            break;
                        }
                        Err(e) => {
                            let code = e.reason_code();
                            prop_assert!(matches!(code, 0x81 | 0x82 | 0x84 | 0x90 | 0x95));
                            break;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        (v, p) in version_and_packet(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = to_bytes(&p, v);
        for (i, b) in edits {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        for known in [None, Some(v)] {
            let mut buf = bytes.clone();
            // Whatever decodes must re-encode without panicking.
            if let Ok(Some(q)) = decode_as_client(&mut buf, known, MAX) {
                let version = match &q {
                    Packet::Connect(c) => c.protocol,
                    _ => v,
                };
                let again = to_bytes(&q, version);
                prop_assert_eq!(again.len(), encoded_len(&q, version));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Oracles. Each oracle module maps our packets onto the other codec's types
// (`to_theirs`), after `adapt` has moved values the other codec cannot
// represent (e.g. its Login needs both a non-empty user name and a UTF-8
// password) onto ones it can. Then both directions are checked:
// their write → our decode == ours, and our encode → their read == theirs.

/// Moves values a foreign codec cannot represent into its domain.
fn adapt_login(c: &mut Connect) {
    // Both oracles model the login as a pair of non-empty strings.
    if c.username.is_some() || c.password.is_some() {
        let u = c.username.take().filter(|u| !u.is_empty());
        c.username = Some(u.unwrap_or_else(|| ByteString::from_static("user")));
        let pw = c
            .password
            .take()
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "pw".to_owned());
        c.password = Some(Bytes::from(pw));
    }
}

fn password_string(c: &Connect) -> String {
    String::from_utf8(c.password.clone().unwrap_or_default().to_vec()).expect("adapted to UTF-8")
}

fn strings(v: &[UserProperty]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn opt_string(v: &Option<ByteString>) -> Option<String> {
    v.as_ref().map(|s| s.to_string())
}

/// Picks the element of `table` that `code` indexes (a deterministic map of
/// any byte onto the codes a foreign codec knows).
fn pick(code: u8, table: &[u8]) -> u8 {
    if table.contains(&code) {
        code
    } else {
        table[usize::from(code) % table.len()]
    }
}

/// The oracle tests for a 3.1.1 codec with the mqttbytes::v4 shape, which
/// mqttbytes 0.6 and rumqttc 0.25 share.
macro_rules! v4_oracle {
    ($modname:ident, $($m:ident)::+, $($root:ident)::+, $read:path, $write:path) => {
        mod $modname {
            use super::*;
            use $($m)::+ as t;
            use $($root)::+::{Protocol, QoS as TQoS};

            fn tq(q: QoS) -> TQoS {
                match q {
                    QoS::AtMostOnce => TQoS::AtMostOnce,
                    QoS::AtLeastOnce => TQoS::AtLeastOnce,
                    QoS::ExactlyOnce => TQoS::ExactlyOnce,
                }
            }

            pub fn adapt(mut p: Packet) -> Option<Packet> {
                match &mut p {
                    Packet::Connect(c) => adapt_login(c),
                    // Their CONNACK knows the 3.1.1 return codes 0..=5 only.
                    Packet::ConnAck(c) => c.code %= 6,
                    Packet::Auth(_) => return None,
                    _ => {}
                }
                Some(p)
            }

            pub fn to_theirs(p: &Packet) -> t::Packet {
                match p {
                    Packet::Connect(c) => t::Packet::Connect(t::Connect {
                        protocol: Protocol::V4,
                        keep_alive: c.keep_alive,
                        client_id: c.client_id.to_string(),
                        clean_session: c.clean_start,
                        last_will: c.will.as_ref().map(|w| t::LastWill {
                            topic: w.topic.to_string(),
                            message: w.payload.clone(),
                            qos: tq(w.qos),
                            retain: w.retain,
                        }),
                        login: c.username.as_ref().map(|u| t::Login {
                            username: u.to_string(),
                            password: password_string(c),
                        }),
                    }),
                    Packet::ConnAck(c) => t::Packet::ConnAck(t::ConnAck {
                        session_present: c.session_present,
                        code: match c.code {
                            0 => t::ConnectReturnCode::Success,
                            1 => t::ConnectReturnCode::RefusedProtocolVersion,
                            2 => t::ConnectReturnCode::BadClientId,
                            3 => t::ConnectReturnCode::ServiceUnavailable,
                            4 => t::ConnectReturnCode::BadUserNamePassword,
                            _ => t::ConnectReturnCode::NotAuthorized,
                        },
                    }),
                    Packet::Publish(p) => t::Packet::Publish(t::Publish {
                        dup: p.dup,
                        qos: tq(p.qos),
                        retain: p.retain,
                        topic: p.topic.to_string(),
                        pkid: p.packet_id.unwrap_or(0),
                        payload: p.payload.clone(),
                    }),
                    Packet::PubAck(r) => t::Packet::PubAck(t::PubAck { pkid: r.packet_id }),
                    Packet::PubRec(r) => t::Packet::PubRec(t::PubRec { pkid: r.packet_id }),
                    Packet::PubRel(r) => t::Packet::PubRel(t::PubRel { pkid: r.packet_id }),
                    Packet::PubComp(r) => t::Packet::PubComp(t::PubComp { pkid: r.packet_id }),
                    Packet::Subscribe(s) => t::Packet::Subscribe(t::Subscribe {
                        pkid: s.packet_id,
                        filters: s
                            .filters
                            .iter()
                            .map(|f| t::SubscribeFilter {
                                path: f.filter.to_string(),
                                qos: tq(f.qos),
                            })
                            .collect(),
                    }),
                    Packet::SubAck(s) => t::Packet::SubAck(t::SubAck {
                        pkid: s.packet_id,
                        return_codes: s
                            .codes
                            .iter()
                            .map(|&c| match c {
                                0 => t::SubscribeReasonCode::Success(TQoS::AtMostOnce),
                                1 => t::SubscribeReasonCode::Success(TQoS::AtLeastOnce),
                                2 => t::SubscribeReasonCode::Success(TQoS::ExactlyOnce),
                                _ => t::SubscribeReasonCode::Failure,
                            })
                            .collect(),
                    }),
                    Packet::Unsubscribe(u) => t::Packet::Unsubscribe(t::Unsubscribe {
                        pkid: u.packet_id,
                        topics: u.filters.iter().map(|f| f.to_string()).collect(),
                    }),
                    Packet::UnsubAck(u) => t::Packet::UnsubAck(t::UnsubAck { pkid: u.packet_id }),
                    Packet::PingReq => t::Packet::PingReq,
                    Packet::PingResp => t::Packet::PingResp,
                    Packet::Disconnect(_) => t::Packet::Disconnect,
                    Packet::Auth(_) => unreachable!("adapt() drops AUTH"),
                }
            }

            fn v4_packet() -> BoxedStrategy<Packet> {
                packet(ProtocolVersion::V3_1_1)
                    .prop_filter_map("not representable", adapt)
                    .boxed()
            }

            proptest! {
                #[test]
                fn theirs_decode_in_ours(p in v4_packet()) {
                    let mut buf = BytesMut::new();
                    $write(&to_theirs(&p), &mut buf);
                    let known = if matches!(p, Packet::Connect(_)) {
                        None
                    } else {
                        Some(ProtocolVersion::V3_1_1)
                    };
                    prop_assert_eq!(decode(&mut buf, known, MAX), Ok(Some(p)));
                    prop_assert!(buf.is_empty());
                }

                #[test]
                fn ours_decode_in_theirs(p in v4_packet()) {
                    let mut buf = to_bytes(&p, ProtocolVersion::V3_1_1);
                    let theirs = $read(&mut buf).expect("their decoder accepts our frame");
                    prop_assert_eq!(theirs, to_theirs(&p));
                    prop_assert!(buf.is_empty());
                }
            }
        }
    };
}

fn mqttbytes_v4_read(buf: &mut BytesMut) -> Result<mqttbytes::v4::Packet, mqttbytes::Error> {
    mqttbytes::v4::read(buf, MAX as usize)
}

fn mqttbytes_v4_write(p: &mqttbytes::v4::Packet, buf: &mut BytesMut) {
    use mqttbytes::v4::{Disconnect, Packet as P, PingReq, PingResp};
    let r = match p {
        P::Connect(x) => x.write(buf),
        P::ConnAck(x) => x.write(buf),
        P::Publish(x) => x.write(buf),
        P::PubAck(x) => x.write(buf),
        P::PubRec(x) => x.write(buf),
        P::PubRel(x) => x.write(buf),
        P::PubComp(x) => x.write(buf),
        P::Subscribe(x) => x.write(buf),
        P::SubAck(x) => x.write(buf),
        P::Unsubscribe(x) => x.write(buf),
        P::UnsubAck(x) => x.write(buf),
        P::PingReq => PingReq.write(buf),
        P::PingResp => PingResp.write(buf),
        P::Disconnect => Disconnect.write(buf),
    };
    r.expect("mqttbytes writes a valid packet");
}

fn rumqttc_v4_read(
    buf: &mut BytesMut,
) -> Result<rumqttc::mqttbytes::v4::Packet, rumqttc::mqttbytes::Error> {
    rumqttc::mqttbytes::v4::Packet::read(buf, MAX as usize)
}

fn rumqttc_v4_write(p: &rumqttc::mqttbytes::v4::Packet, buf: &mut BytesMut) {
    p.write(buf, MAX as usize)
        .expect("rumqttc writes a valid packet");
}

v4_oracle!(
    oracle_mqttbytes_v4,
    mqttbytes::v4,
    mqttbytes,
    super::mqttbytes_v4_read,
    super::mqttbytes_v4_write
);
v4_oracle!(
    oracle_rumqttc_v4,
    rumqttc::mqttbytes::v4,
    rumqttc::mqttbytes,
    super::rumqttc_v4_read,
    super::rumqttc_v4_write
);

/// The value paired with `code` in a foreign codec's reason-code table.
fn lookup<T: Clone>(code: u8, table: &[(u8, T)]) -> T {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, t)| t.clone())
        .expect("adapt() maps codes into the table")
}

fn codes<T>(table: &[(u8, T)]) -> Vec<u8> {
    table.iter().map(|(c, _)| *c).collect()
}

/// The foreign codecs cannot read a 5.0 DISCONNECT without properties: with
/// remaining length 0 their `read` demands a body, with remaining length 1
/// (reason code only) they demand a property length. 5.0 sections 3.14.2.1
/// and 3.14.2.2.1 allow both short forms, and we send them.
fn theirs_reject_short_disconnect(p: &Packet) -> bool {
    matches!(p, Packet::Disconnect(d) if d.properties == DisconnectProperties::default())
}

mod oracle_mqttbytes_v5 {
    use super::*;
    use mqttbytes::v5 as t;
    use mqttbytes::{Protocol, QoS as TQoS};

    fn tq(q: QoS) -> TQoS {
        match q {
            QoS::AtMostOnce => TQoS::AtMostOnce,
            QoS::AtLeastOnce => TQoS::AtLeastOnce,
            QoS::ExactlyOnce => TQoS::ExactlyOnce,
        }
    }

    fn connack_codes() -> Vec<(u8, t::ConnectReturnCode)> {
        use t::ConnectReturnCode as C;
        [
            C::Success,
            C::UnspecifiedError,
            C::MalformedPacket,
            C::ProtocolError,
            C::ImplementationSpecificError,
            C::UnsupportedProtocolVersion,
            C::ClientIdentifierNotValid,
            C::BadUserNamePassword,
            C::NotAuthorized,
            C::ServerUnavailable,
            C::ServerBusy,
            C::Banned,
            C::BadAuthenticationMethod,
            C::TopicNameInvalid,
            C::PacketTooLarge,
            C::QuotaExceeded,
            C::PayloadFormatInvalid,
            C::RetainNotSupported,
            C::QoSNotSupported,
            C::UseAnotherServer,
            C::ServerMoved,
            C::ConnectionRateExceeded,
        ]
        .into_iter()
        .map(|c| (c as u8, c))
        .collect()
    }

    const SUBACK_CODES: [u8; 12] = [0, 1, 2, 128, 131, 135, 143, 145, 151, 158, 161, 162];

    fn unsuback_codes() -> Vec<(u8, t::UnsubAckReason)> {
        use t::UnsubAckReason as U;
        [
            U::Success,
            U::NoSubscriptionExisted,
            U::UnspecifiedError,
            U::ImplementationSpecificError,
            U::NotAuthorized,
            U::TopicFilterInvalid,
            U::PacketIdentifierInUse,
        ]
        .into_iter()
        .map(|c| (c as u8, c))
        .collect()
    }

    fn puback_reason(code: u8) -> t::PubAckReason {
        use t::PubAckReason as R;
        let table = [
            R::Success,
            R::NoMatchingSubscribers,
            R::UnspecifiedError,
            R::ImplementationSpecificError,
            R::NotAuthorized,
            R::TopicNameInvalid,
            R::PacketIdentifierInUse,
            R::QuotaExceeded,
            R::PayloadFormatInvalid,
        ];
        lookup(code, &table.map(|r| (r as u8, r)))
    }

    fn pubrec_reason(code: u8) -> t::PubRecReason {
        use t::PubRecReason as R;
        let table = [
            R::Success,
            R::NoMatchingSubscribers,
            R::UnspecifiedError,
            R::ImplementationSpecificError,
            R::NotAuthorized,
            R::TopicNameInvalid,
            R::PacketIdentifierInUse,
            R::QuotaExceeded,
            R::PayloadFormatInvalid,
        ];
        lookup(code, &table.map(|r| (r as u8, r)))
    }

    pub fn adapt(mut p: Packet) -> Option<Packet> {
        match &mut p {
            Packet::Connect(c) => adapt_login(c),
            Packet::ConnAck(c) => c.code = pick(c.code, &codes(&connack_codes())),
            Packet::SubAck(s) => s
                .codes
                .iter_mut()
                .for_each(|c| *c = pick(*c, &SUBACK_CODES)),
            Packet::UnsubAck(u) => {
                let table = codes(&unsuback_codes());
                u.codes.iter_mut().for_each(|c| *c = pick(*c, &table));
            }
            // mqttbytes 0.6 has no AUTH packet.
            Packet::Auth(_) => return None,
            _ => {}
        }
        Some(p)
    }

    fn reason_props<T>(
        p: &ReasonProperties,
        f: impl FnOnce(Option<String>, Vec<(String, String)>) -> T,
    ) -> Option<T> {
        (!p.is_empty()).then(|| f(opt_string(&p.reason_string), strings(&p.user_properties)))
    }

    pub fn to_theirs(p: &Packet) -> t::Packet {
        match p {
            Packet::Connect(c) => t::Packet::Connect(t::Connect {
                protocol: Protocol::V5,
                keep_alive: c.keep_alive,
                client_id: c.client_id.to_string(),
                clean_session: c.clean_start,
                last_will: c.will.as_ref().map(|w| {
                    let p = &w.properties;
                    t::LastWill {
                        topic: w.topic.to_string(),
                        message: w.payload.clone(),
                        qos: tq(w.qos),
                        retain: w.retain,
                        properties: (p != &WillProperties::default()).then(|| t::WillProperties {
                            delay_interval: p.will_delay_interval,
                            payload_format_indicator: p.payload_format_indicator,
                            message_expiry_interval: p.message_expiry_interval,
                            content_type: opt_string(&p.content_type),
                            response_topic: opt_string(&p.response_topic),
                            correlation_data: p.correlation_data.clone(),
                            user_properties: strings(&p.user_properties),
                        }),
                    }
                }),
                login: c.username.as_ref().map(|u| t::Login {
                    username: u.to_string(),
                    password: password_string(c),
                }),
                properties: {
                    let p = &c.properties;
                    (p != &ConnectProperties::default()).then(|| t::ConnectProperties {
                        session_expiry_interval: p.session_expiry_interval,
                        receive_maximum: p.receive_maximum,
                        max_packet_size: p.maximum_packet_size,
                        topic_alias_max: p.topic_alias_maximum,
                        request_response_info: p.request_response_information,
                        request_problem_info: p.request_problem_information,
                        user_properties: strings(&p.user_properties),
                        authentication_method: opt_string(&p.authentication_method),
                        authentication_data: p.authentication_data.clone(),
                    })
                },
            }),
            Packet::ConnAck(c) => {
                let p = &c.properties;
                t::Packet::ConnAck(t::ConnAck {
                    session_present: c.session_present,
                    code: lookup(c.code, &connack_codes()),
                    properties: (p != &ConnAckProperties::default()).then(|| {
                        t::ConnAckProperties {
                            session_expiry_interval: p.session_expiry_interval,
                            receive_max: p.receive_maximum,
                            max_qos: p.maximum_qos,
                            retain_available: p.retain_available,
                            max_packet_size: p.maximum_packet_size,
                            assigned_client_identifier: opt_string(&p.assigned_client_identifier),
                            topic_alias_max: p.topic_alias_maximum,
                            reason_string: opt_string(&p.reason_string),
                            user_properties: strings(&p.user_properties),
                            wildcard_subscription_available: p.wildcard_subscription_available,
                            subscription_identifiers_available: p
                                .subscription_identifiers_available,
                            shared_subscription_available: p.shared_subscription_available,
                            server_keep_alive: p.server_keep_alive,
                            response_information: opt_string(&p.response_information),
                            server_reference: opt_string(&p.server_reference),
                            authentication_method: opt_string(&p.authentication_method),
                            authentication_data: p.authentication_data.clone(),
                        }
                    }),
                })
            }
            Packet::Publish(x) => {
                let p = &x.properties;
                t::Packet::Publish(t::Publish {
                    dup: x.dup,
                    qos: tq(x.qos),
                    retain: x.retain,
                    topic: x.topic.to_string(),
                    pkid: x.packet_id.unwrap_or(0),
                    properties: (p != &PublishProperties::default()).then(|| {
                        t::PublishProperties {
                            payload_format_indicator: p.payload_format_indicator,
                            message_expiry_interval: p.message_expiry_interval,
                            topic_alias: p.topic_alias,
                            response_topic: opt_string(&p.response_topic),
                            correlation_data: p.correlation_data.clone(),
                            user_properties: strings(&p.user_properties),
                            subscription_identifiers: p
                                .subscription_identifiers
                                .iter()
                                .map(|&i| i as usize)
                                .collect(),
                            content_type: opt_string(&p.content_type),
                        }
                    }),
                    payload: x.payload.clone(),
                })
            }
            Packet::PubAck(r) => t::Packet::PubAck(t::PubAck {
                pkid: r.packet_id,
                reason: puback_reason(r.reason),
                properties: reason_props(&r.properties, |reason_string, user_properties| {
                    t::PubAckProperties {
                        reason_string,
                        user_properties,
                    }
                }),
            }),
            Packet::PubRec(r) => t::Packet::PubRec(t::PubRec {
                pkid: r.packet_id,
                reason: pubrec_reason(r.reason),
                properties: reason_props(&r.properties, |reason_string, user_properties| {
                    t::PubRecProperties {
                        reason_string,
                        user_properties,
                    }
                }),
            }),
            Packet::PubRel(r) => t::Packet::PubRel(t::PubRel {
                pkid: r.packet_id,
                reason: if r.reason == 0 {
                    t::PubRelReason::Success
                } else {
                    t::PubRelReason::PacketIdentifierNotFound
                },
                properties: reason_props(&r.properties, |reason_string, user_properties| {
                    t::PubRelProperties {
                        reason_string,
                        user_properties,
                    }
                }),
            }),
            Packet::PubComp(r) => t::Packet::PubComp(t::PubComp {
                pkid: r.packet_id,
                reason: if r.reason == 0 {
                    t::PubCompReason::Success
                } else {
                    t::PubCompReason::PacketIdentifierNotFound
                },
                properties: reason_props(&r.properties, |reason_string, user_properties| {
                    t::PubCompProperties {
                        reason_string,
                        user_properties,
                    }
                }),
            }),
            Packet::Subscribe(s) => t::Packet::Subscribe(t::Subscribe {
                pkid: s.packet_id,
                filters: s
                    .filters
                    .iter()
                    .map(|f| t::SubscribeFilter {
                        path: f.filter.to_string(),
                        qos: tq(f.qos),
                        nolocal: f.no_local,
                        preserve_retain: f.retain_as_published,
                        retain_forward_rule: match f.retain_handling {
                            0 => t::RetainForwardRule::OnEverySubscribe,
                            1 => t::RetainForwardRule::OnNewSubscribe,
                            _ => t::RetainForwardRule::Never,
                        },
                    })
                    .collect(),
                properties: (s.properties != SubscribeProperties::default()).then(|| {
                    t::SubscribeProperties {
                        id: s.properties.subscription_identifier.map(|i| i as usize),
                        user_properties: strings(&s.properties.user_properties),
                    }
                }),
            }),
            Packet::SubAck(s) => t::Packet::SubAck(t::SubAck {
                pkid: s.packet_id,
                return_codes: s
                    .codes
                    .iter()
                    .map(|&c| t::SubscribeReasonCode::try_from(c).expect("adapted code"))
                    .collect(),
                properties: reason_props(&s.properties, |reason_string, user_properties| {
                    t::SubAckProperties {
                        reason_string,
                        user_properties,
                    }
                }),
            }),
            Packet::Unsubscribe(u) => t::Packet::Unsubscribe(t::Unsubscribe {
                pkid: u.packet_id,
                filters: u.filters.iter().map(|f| f.to_string()).collect(),
                properties: (!u.user_properties.is_empty()).then(|| t::UnsubscribeProperties {
                    user_properties: strings(&u.user_properties),
                }),
            }),
            Packet::UnsubAck(u) => t::Packet::UnsubAck(t::UnsubAck {
                pkid: u.packet_id,
                reasons: u
                    .codes
                    .iter()
                    .map(|&c| lookup(c, &unsuback_codes()))
                    .collect(),
                properties: reason_props(&u.properties, |reason_string, user_properties| {
                    t::UnsubAckProperties {
                        reason_string,
                        user_properties,
                    }
                }),
            }),
            Packet::PingReq => t::Packet::PingReq,
            Packet::PingResp => t::Packet::PingResp,
            Packet::Disconnect(d) => {
                let p = &d.properties;
                t::Packet::Disconnect(t::Disconnect {
                    reason_code: t::DisconnectReasonCode::try_from(d.reason).expect("valid reason"),
                    properties: (p != &DisconnectProperties::default()).then(|| {
                        t::DisconnectProperties {
                            session_expiry_interval: p.session_expiry_interval,
                            reason_string: opt_string(&p.reason_string),
                            user_properties: strings(&p.user_properties),
                            server_reference: opt_string(&p.server_reference),
                        }
                    }),
                })
            }
            Packet::Auth(_) => unreachable!("adapt() drops AUTH"),
        }
    }

    fn write(p: &t::Packet, buf: &mut BytesMut) {
        use t::Packet as P;
        let r = match p {
            P::Connect(x) => x.write(buf),
            P::ConnAck(x) => x.write(buf),
            P::Publish(x) => x.write(buf),
            P::PubAck(x) => x.write(buf),
            P::PubRec(x) => x.write(buf),
            P::PubRel(x) => x.write(buf),
            P::PubComp(x) => x.write(buf),
            P::Subscribe(x) => x.write(buf),
            P::SubAck(x) => x.write(buf),
            P::Unsubscribe(x) => x.write(buf),
            P::UnsubAck(x) => x.write(buf),
            P::PingReq => t::PingReq.write(buf),
            P::PingResp => t::PingResp.write(buf),
            P::Disconnect(x) => x.write(buf),
        };
        r.expect("mqttbytes writes a valid packet");
    }

    fn v5_packet() -> BoxedStrategy<Packet> {
        packet(ProtocolVersion::V5)
            .prop_filter_map("not representable", adapt)
            .boxed()
    }

    proptest! {
        #[test]
        fn theirs_decode_in_ours(p in v5_packet()) {
            let mut buf = BytesMut::new();
            write(&to_theirs(&p), &mut buf);
            let known = if matches!(p, Packet::Connect(_)) { None } else { Some(ProtocolVersion::V5) };
            prop_assert_eq!(decode_as_client(&mut buf, known, MAX), Ok(Some(p)));
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn ours_decode_in_theirs(p in v5_packet()) {
            if theirs_reject_short_disconnect(&p) {
                return Ok(());
            }
            let mut buf = to_bytes(&p, ProtocolVersion::V5);
            let theirs = t::read(&mut buf, MAX as usize).expect("their decoder accepts our frame");
            prop_assert_eq!(theirs, to_theirs(&p));
            prop_assert!(buf.is_empty());
        }
    }
}

mod oracle_rumqttc_v5 {
    use super::*;
    use rumqttc::v5::mqttbytes::v5 as t;
    use rumqttc::v5::mqttbytes::QoS as TQoS;

    fn tq(q: QoS) -> TQoS {
        match q {
            QoS::AtMostOnce => TQoS::AtMostOnce,
            QoS::AtLeastOnce => TQoS::AtLeastOnce,
            QoS::ExactlyOnce => TQoS::ExactlyOnce,
        }
    }

    fn connack_codes() -> Vec<(u8, t::ConnectReturnCode)> {
        use t::ConnectReturnCode as C;
        vec![
            (0, C::Success),
            (128, C::UnspecifiedError),
            (129, C::MalformedPacket),
            (130, C::ProtocolError),
            (131, C::ImplementationSpecificError),
            (132, C::UnsupportedProtocolVersion),
            (133, C::ClientIdentifierNotValid),
            (134, C::BadUserNamePassword),
            (135, C::NotAuthorized),
            (136, C::ServerUnavailable),
            (137, C::ServerBusy),
            (138, C::Banned),
            (140, C::BadAuthenticationMethod),
            (144, C::TopicNameInvalid),
            (149, C::PacketTooLarge),
            (151, C::QuotaExceeded),
            (153, C::PayloadFormatInvalid),
            (154, C::RetainNotSupported),
            (155, C::QoSNotSupported),
            (156, C::UseAnotherServer),
            (157, C::ServerMoved),
            (159, C::ConnectionRateExceeded),
        ]
    }

    fn suback_codes() -> Vec<(u8, t::SubscribeReasonCode)> {
        use t::SubscribeReasonCode as S;
        vec![
            (0, S::Success(TQoS::AtMostOnce)),
            (1, S::Success(TQoS::AtLeastOnce)),
            (2, S::Success(TQoS::ExactlyOnce)),
            (128, S::Unspecified),
            (131, S::ImplementationSpecific),
            (135, S::NotAuthorized),
            (143, S::TopicFilterInvalid),
            (145, S::PkidInUse),
            (151, S::QuotaExceeded),
            (158, S::SharedSubscriptionsNotSupported),
            (161, S::SubscriptionIdNotSupported),
            (162, S::WildcardSubscriptionsNotSupported),
        ]
    }

    fn unsuback_codes() -> Vec<(u8, t::UnsubAckReason)> {
        use t::UnsubAckReason as U;
        vec![
            (0x00, U::Success),
            (0x11, U::NoSubscriptionExisted),
            (0x80, U::UnspecifiedError),
            (0x83, U::ImplementationSpecificError),
            (0x87, U::NotAuthorized),
            (0x8F, U::TopicFilterInvalid),
            (0x91, U::PacketIdentifierInUse),
        ]
    }

    fn puback_reason(code: u8) -> t::PubAckReason {
        use t::PubAckReason as R;
        let table = [
            (0x00, R::Success),
            (0x10, R::NoMatchingSubscribers),
            (0x80, R::UnspecifiedError),
            (0x83, R::ImplementationSpecificError),
            (0x87, R::NotAuthorized),
            (0x90, R::TopicNameInvalid),
            (0x91, R::PacketIdentifierInUse),
            (0x97, R::QuotaExceeded),
            (0x99, R::PayloadFormatInvalid),
        ];
        lookup(code, &table)
    }

    fn pubrec_reason(code: u8) -> t::PubRecReason {
        use t::PubRecReason as R;
        let table = [
            (0x00, R::Success),
            (0x10, R::NoMatchingSubscribers),
            (0x80, R::UnspecifiedError),
            (0x83, R::ImplementationSpecificError),
            (0x87, R::NotAuthorized),
            (0x90, R::TopicNameInvalid),
            (0x91, R::PacketIdentifierInUse),
            (0x97, R::QuotaExceeded),
            (0x99, R::PayloadFormatInvalid),
        ];
        lookup(code, &table)
    }

    pub fn adapt(mut p: Packet) -> Option<Packet> {
        match &mut p {
            Packet::Connect(c) => adapt_login(c),
            Packet::ConnAck(c) => c.code = pick(c.code, &codes(&connack_codes())),
            Packet::SubAck(s) => {
                let table = codes(&suback_codes());
                s.codes.iter_mut().for_each(|c| *c = pick(*c, &table));
            }
            Packet::UnsubAck(u) => {
                let table = codes(&unsuback_codes());
                u.codes.iter_mut().for_each(|c| *c = pick(*c, &table));
            }
            // rumqttc does not export AUTH's field types, so an AUTH cannot
            // be built for it; AUTH is checked one way in `ours_auth_decodes_in_theirs`.
            Packet::Auth(_) => return None,
            _ => {}
        }
        Some(p)
    }

    fn reason_props<T>(
        p: &ReasonProperties,
        f: impl FnOnce(Option<String>, Vec<(String, String)>) -> T,
    ) -> Option<T> {
        (!p.is_empty()).then(|| f(opt_string(&p.reason_string), strings(&p.user_properties)))
    }

    pub fn to_theirs(p: &Packet) -> t::Packet {
        match p {
            Packet::Connect(c) => {
                let connect = t::Connect {
                    keep_alive: c.keep_alive,
                    client_id: c.client_id.to_string(),
                    clean_start: c.clean_start,
                    properties: {
                        let p = &c.properties;
                        (p != &ConnectProperties::default()).then(|| t::ConnectProperties {
                            session_expiry_interval: p.session_expiry_interval,
                            receive_maximum: p.receive_maximum,
                            max_packet_size: p.maximum_packet_size,
                            topic_alias_max: p.topic_alias_maximum,
                            request_response_info: p.request_response_information,
                            request_problem_info: p.request_problem_information,
                            user_properties: strings(&p.user_properties),
                            authentication_method: opt_string(&p.authentication_method),
                            authentication_data: p.authentication_data.clone(),
                        })
                    },
                };
                let will = c.will.as_ref().map(|w| {
                    let p = &w.properties;
                    t::LastWill {
                        topic: w.topic.as_bytes().clone(),
                        message: w.payload.clone(),
                        qos: tq(w.qos),
                        retain: w.retain,
                        properties: (p != &WillProperties::default()).then(|| {
                            t::LastWillProperties {
                                delay_interval: p.will_delay_interval,
                                payload_format_indicator: p.payload_format_indicator,
                                message_expiry_interval: p.message_expiry_interval,
                                content_type: opt_string(&p.content_type),
                                response_topic: opt_string(&p.response_topic),
                                correlation_data: p.correlation_data.clone(),
                                user_properties: strings(&p.user_properties),
                            }
                        }),
                    }
                });
                let login = c.username.as_ref().map(|u| t::Login {
                    username: u.to_string(),
                    password: password_string(c),
                });
                t::Packet::Connect(connect, will, login)
            }
            Packet::ConnAck(c) => {
                let p = &c.properties;
                t::Packet::ConnAck(t::ConnAck {
                    session_present: c.session_present,
                    code: lookup(c.code, &connack_codes()),
                    properties: (p != &ConnAckProperties::default()).then(|| {
                        t::ConnAckProperties {
                            session_expiry_interval: p.session_expiry_interval,
                            receive_max: p.receive_maximum,
                            max_qos: p.maximum_qos,
                            retain_available: p.retain_available,
                            max_packet_size: p.maximum_packet_size,
                            assigned_client_identifier: opt_string(&p.assigned_client_identifier),
                            topic_alias_max: p.topic_alias_maximum,
                            reason_string: opt_string(&p.reason_string),
                            user_properties: strings(&p.user_properties),
                            wildcard_subscription_available: p.wildcard_subscription_available,
                            subscription_identifiers_available: p
                                .subscription_identifiers_available,
                            shared_subscription_available: p.shared_subscription_available,
                            server_keep_alive: p.server_keep_alive,
                            response_information: opt_string(&p.response_information),
                            server_reference: opt_string(&p.server_reference),
                            authentication_method: opt_string(&p.authentication_method),
                            authentication_data: p.authentication_data.clone(),
                        }
                    }),
                })
            }
            Packet::Publish(x) => {
                let p = &x.properties;
                t::Packet::Publish(t::Publish {
                    dup: x.dup,
                    qos: tq(x.qos),
                    retain: x.retain,
                    topic: x.topic.as_bytes().clone(),
                    pkid: x.packet_id.unwrap_or(0),
                    payload: x.payload.clone(),
                    properties: (p != &PublishProperties::default()).then(|| {
                        t::PublishProperties {
                            payload_format_indicator: p.payload_format_indicator,
                            message_expiry_interval: p.message_expiry_interval,
                            topic_alias: p.topic_alias,
                            response_topic: opt_string(&p.response_topic),
                            correlation_data: p.correlation_data.clone(),
                            user_properties: strings(&p.user_properties),
                            subscription_identifiers: p
                                .subscription_identifiers
                                .iter()
                                .map(|&i| i as usize)
                                .collect(),
                            content_type: opt_string(&p.content_type),
                        }
                    }),
                })
            }
            Packet::PubAck(r) => t::Packet::PubAck(t::PubAck {
                pkid: r.packet_id,
                reason: puback_reason(r.reason),
                properties: reason_props(&r.properties, |reason_string, user_properties| {
                    t::PubAckProperties {
                        reason_string,
                        user_properties,
                    }
                }),
            }),
            Packet::PubRec(r) => t::Packet::PubRec(t::PubRec {
                pkid: r.packet_id,
                reason: pubrec_reason(r.reason),
                properties: reason_props(&r.properties, |reason_string, user_properties| {
                    t::PubRecProperties {
                        reason_string,
                        user_properties,
                    }
                }),
            }),
            Packet::PubRel(r) => t::Packet::PubRel(t::PubRel {
                pkid: r.packet_id,
                reason: if r.reason == 0 {
                    t::PubRelReason::Success
                } else {
                    t::PubRelReason::PacketIdentifierNotFound
                },
                properties: reason_props(&r.properties, |reason_string, user_properties| {
                    t::PubRelProperties {
                        reason_string,
                        user_properties,
                    }
                }),
            }),
            Packet::PubComp(r) => t::Packet::PubComp(t::PubComp {
                pkid: r.packet_id,
                reason: if r.reason == 0 {
                    t::PubCompReason::Success
                } else {
                    t::PubCompReason::PacketIdentifierNotFound
                },
                properties: reason_props(&r.properties, |reason_string, user_properties| {
                    t::PubCompProperties {
                        reason_string,
                        user_properties,
                    }
                }),
            }),
            Packet::Subscribe(s) => t::Packet::Subscribe(t::Subscribe {
                pkid: s.packet_id,
                filters: s
                    .filters
                    .iter()
                    .map(|f| t::Filter {
                        path: f.filter.to_string(),
                        qos: tq(f.qos),
                        nolocal: f.no_local,
                        preserve_retain: f.retain_as_published,
                        retain_forward_rule: match f.retain_handling {
                            0 => t::RetainForwardRule::OnEverySubscribe,
                            1 => t::RetainForwardRule::OnNewSubscribe,
                            _ => t::RetainForwardRule::Never,
                        },
                    })
                    .collect(),
                properties: (s.properties != SubscribeProperties::default()).then(|| {
                    t::SubscribeProperties {
                        id: s.properties.subscription_identifier.map(|i| i as usize),
                        user_properties: strings(&s.properties.user_properties),
                    }
                }),
            }),
            Packet::SubAck(s) => t::Packet::SubAck(t::SubAck {
                pkid: s.packet_id,
                return_codes: s
                    .codes
                    .iter()
                    .map(|&c| lookup(c, &suback_codes()))
                    .collect(),
                properties: reason_props(&s.properties, |reason_string, user_properties| {
                    t::SubAckProperties {
                        reason_string,
                        user_properties,
                    }
                }),
            }),
            Packet::Unsubscribe(u) => t::Packet::Unsubscribe(t::Unsubscribe {
                pkid: u.packet_id,
                filters: u.filters.iter().map(|f| f.to_string()).collect(),
                properties: (!u.user_properties.is_empty()).then(|| t::UnsubscribeProperties {
                    user_properties: strings(&u.user_properties),
                }),
            }),
            Packet::UnsubAck(u) => t::Packet::UnsubAck(t::UnsubAck {
                pkid: u.packet_id,
                reasons: u
                    .codes
                    .iter()
                    .map(|&c| lookup(c, &unsuback_codes()))
                    .collect(),
                properties: reason_props(&u.properties, |reason_string, user_properties| {
                    t::UnsubAckProperties {
                        reason_string,
                        user_properties,
                    }
                }),
            }),
            Packet::PingReq => t::Packet::PingReq(t::PingReq),
            Packet::PingResp => t::Packet::PingResp(t::PingResp),
            Packet::Disconnect(d) => {
                let p = &d.properties;
                t::Packet::Disconnect(t::Disconnect {
                    reason_code: t::DisconnectReasonCode::try_from(d.reason).expect("valid reason"),
                    properties: (p != &DisconnectProperties::default()).then(|| {
                        t::DisconnectProperties {
                            session_expiry_interval: p.session_expiry_interval,
                            reason_string: opt_string(&p.reason_string),
                            user_properties: strings(&p.user_properties),
                            server_reference: opt_string(&p.server_reference),
                        }
                    }),
                })
            }
            Packet::Auth(_) => unreachable!("adapt() drops AUTH"),
        }
    }

    /// rumqttc's `Packet::read` does not dispatch AUTH; its `Auth::read`
    /// does, given the fixed header.
    fn read_auth(buf: &mut BytesMut) -> Result<t::Auth, rumqttc::v5::mqttbytes::Error> {
        let header = t::check(buf.iter(), None)?;
        let frame = buf.split_to(header.frame_length()).freeze();
        t::Auth::read(header, frame)
    }

    fn v5_packet() -> BoxedStrategy<Packet> {
        packet(ProtocolVersion::V5)
            .prop_filter_map("not representable", adapt)
            .boxed()
    }

    proptest! {
        #[test]
        fn theirs_decode_in_ours(p in v5_packet()) {
            // rumqttc 0.25 writes a DISCONNECT with a reason but no properties
            // with remaining length 1 followed by two bytes (reason and an
            // empty property length): a broken frame, not ours to accept.
            if matches!(&p, Packet::Disconnect(d) if d.reason != 0
                && d.properties == DisconnectProperties::default())
            {
                return Ok(());
            }
            let mut buf = BytesMut::new();
            to_theirs(&p).write(&mut buf, None).expect("rumqttc writes a valid packet");
            let known = if matches!(p, Packet::Connect(_)) { None } else { Some(ProtocolVersion::V5) };
            prop_assert_eq!(decode_as_client(&mut buf, known, MAX), Ok(Some(p)));
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn ours_decode_in_theirs(p in v5_packet()) {
            if theirs_reject_short_disconnect(&p) {
                return Ok(());
            }
            let mut buf = to_bytes(&p, ProtocolVersion::V5);
            let theirs = t::Packet::read(&mut buf, None).expect("their decoder accepts our frame");
            prop_assert_eq!(theirs, to_theirs(&p));
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn ours_auth_decodes_in_theirs(p in auth()) {
            let Packet::Auth(mut a) = p else { unreachable!("auth() yields AUTH") };
            // rumqttc 0.25 counts a string property's length without its
            // two-byte prefix when reading AUTH properties (against 5.0
            // section 2.2.2.1), so it misreads Authentication Method and
            // Reason String; only data and user properties are comparable.
            a.properties.authentication_method = None;
            a.properties.reason_string = None;
            // Its Auth::read also demands a reason code and a property
            // length, which 5.0 section 3.15.2.1 lets us omit without
            // properties; those short forms are covered by our unit tests.
            if a.properties == AuthProperties::default() {
                return Ok(());
            }
            let mut buf = to_bytes(&Packet::Auth(a.clone()), ProtocolVersion::V5);
            let theirs = read_auth(&mut buf).expect("their decoder accepts our frame");
            prop_assert!(buf.is_empty());
            let code = match a.reason {
                0x00 => "Success",
                0x18 => "Continue",
                _ => "ReAuthentivate",
            };
            prop_assert_eq!(format!("{:?}", theirs.code), code);
            let tp = theirs.properties.expect("properties present");
            prop_assert_eq!(tp.method, None);
            prop_assert_eq!(tp.data, a.properties.authentication_data.clone());
            prop_assert_eq!(tp.reason, None);
            prop_assert_eq!(tp.user_properties, strings(&a.properties.user_properties));
        }
    }
}
