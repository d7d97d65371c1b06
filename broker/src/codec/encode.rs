//! Packet encoding and exact encoded sizes.
//!
//! Encoding is infallible: the caller (the broker) only builds packets whose
//! strings and binaries fit in 65535 bytes and whose values are in range;
//! debug builds assert it. The size of every part is computed once
//! (`Layout`) and used both for the remaining length and by
//! [`encoded_len`], so the two cannot disagree.
//!
//! Version rules: for 3.x every property and 5.0-only field is ignored, a
//! 3.x DISCONNECT has no body and a 3.x UNSUBACK no payload. For 5.0 the
//! short forms are used: PUBACK..PUBCOMP with reason 0 and no properties have
//! remaining length 2, DISCONNECT and AUTH with reason 0 and no properties
//! have remaining length 0, and a non-zero reason without properties omits
//! the property length.

use bytes::{BufMut, BytesMut};

use super::properties::{self, block_len, Props};
use super::{Packet, ProtocolVersion, PubResp, QoS};

/// Largest value a variable byte integer can hold (section 1.5.5).
const VARINT_MAX: usize = 268_435_455;

/// Appends the packet's encoding for `version` (3.x: properties and 5.0-only
/// fields ignored; v3.x DISCONNECT has no body; 3.x UNSUBACK has no payload).
/// Infallible: the caller guarantees string/binary lengths <= 65535 and values
/// in range (debug-asserted).
pub fn encode(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) {
    let layout = layout(packet, version);
    debug_assert!(
        layout.remaining <= VARINT_MAX,
        "remaining length exceeds the protocol maximum"
    );
    buf.reserve(1 + varint_len(layout.remaining) + layout.remaining);
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => {
            buf.put_u8(0x10);
            put_varint(buf, layout.remaining);
            debug_assert_eq!(c.protocol, version, "CONNECT encoded for another version");
            match version {
                ProtocolVersion::V3_1 => put_binary(buf, b"MQIsdp"),
                ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => put_binary(buf, b"MQTT"),
            }
            buf.put_u8(version.level());
            let mut flags = 0u8;
            if c.clean_start {
                flags |= 0x02;
            }
            if let Some(will) = &c.will {
                flags |= 0x04 | ((will.qos as u8) << 3);
                if will.retain {
                    flags |= 0x20;
                }
            }
            if c.password.is_some() {
                flags |= 0x40;
            }
            if c.username.is_some() {
                flags |= 0x80;
            }
            buf.put_u8(flags);
            buf.put_u16(c.keep_alive);
            if v5 {
                properties::put(&c.properties, layout.props, buf);
            }
            put_binary(buf, c.client_id.as_bytes());
            if let Some(will) = &c.will {
                if v5 {
                    properties::put(&will.properties, layout.will_props, buf);
                }
                put_binary(buf, will.topic.as_bytes());
                put_binary(buf, &will.payload);
            }
            if let Some(username) = &c.username {
                put_binary(buf, username.as_bytes());
            }
            if let Some(password) = &c.password {
                put_binary(buf, password);
            }
        }
        Packet::ConnAck(c) => {
            buf.put_u8(0x20);
            put_varint(buf, layout.remaining);
            buf.put_u8(u8::from(c.session_present));
            buf.put_u8(c.code);
            if v5 {
                properties::put(&c.properties, layout.props, buf);
            }
        }
        Packet::Publish(p) => {
            debug_assert!(
                (p.qos == QoS::AtMostOnce) == p.packet_id.is_none(),
                "PUBLISH packet id present iff QoS > 0"
            );
            debug_assert!(
                !(p.dup && p.qos == QoS::AtMostOnce),
                "DUP must be 0 for QoS 0"
            );
            let mut first = 0x30 | ((p.qos as u8) << 1);
            if p.dup {
                first |= 0x08;
            }
            if p.retain {
                first |= 0x01;
            }
            buf.put_u8(first);
            put_varint(buf, layout.remaining);
            put_binary(buf, p.topic.as_bytes());
            if p.qos != QoS::AtMostOnce {
                buf.put_u16(p.packet_id.unwrap_or(0));
            }
            if v5 {
                properties::put(&p.properties, layout.props, buf);
            }
            buf.put_slice(&p.payload);
        }
        Packet::PubAck(r) => put_pub_resp(buf, 0x40, r, &layout, v5),
        Packet::PubRec(r) => put_pub_resp(buf, 0x50, r, &layout, v5),
        Packet::PubRel(r) => put_pub_resp(buf, 0x62, r, &layout, v5),
        Packet::PubComp(r) => put_pub_resp(buf, 0x70, r, &layout, v5),
        Packet::Subscribe(s) => {
            buf.put_u8(0x82);
            put_varint(buf, layout.remaining);
            buf.put_u16(s.packet_id);
            if v5 {
                properties::put(&s.properties, layout.props, buf);
            }
            for f in &s.filters {
                put_binary(buf, f.filter.as_bytes());
                let mut options = f.qos as u8;
                if v5 {
                    debug_assert!(f.retain_handling < 3, "retain handling is 0, 1 or 2");
                    if f.no_local {
                        options |= 0x04;
                    }
                    if f.retain_as_published {
                        options |= 0x08;
                    }
                    options |= (f.retain_handling & 0b11) << 4;
                }
                buf.put_u8(options);
            }
        }
        Packet::SubAck(s) => {
            buf.put_u8(0x90);
            put_varint(buf, layout.remaining);
            buf.put_u16(s.packet_id);
            if v5 {
                properties::put(&s.properties, layout.props, buf);
            }
            buf.put_slice(&s.codes);
        }
        Packet::Unsubscribe(u) => {
            buf.put_u8(0xA2);
            put_varint(buf, layout.remaining);
            buf.put_u16(u.packet_id);
            if v5 {
                properties::put(&u.user_properties[..], layout.props, buf);
            }
            for f in &u.filters {
                put_binary(buf, f.as_bytes());
            }
        }
        Packet::UnsubAck(u) => {
            buf.put_u8(0xB0);
            put_varint(buf, layout.remaining);
            buf.put_u16(u.packet_id);
            if v5 {
                properties::put(&u.properties, layout.props, buf);
                buf.put_slice(&u.codes);
            }
        }
        Packet::PingReq => {
            buf.put_u8(0xC0);
            buf.put_u8(0);
        }
        Packet::PingResp => {
            buf.put_u8(0xD0);
            buf.put_u8(0);
        }
        Packet::Disconnect(d) => {
            buf.put_u8(0xE0);
            put_varint(buf, layout.remaining);
            if layout.remaining > 0 {
                buf.put_u8(d.reason);
                if layout.remaining > 1 {
                    properties::put(&d.properties, layout.props, buf);
                }
            }
        }
        Packet::Auth(a) => {
            debug_assert!(v5, "AUTH exists only in MQTT 5.0");
            buf.put_u8(0xF0);
            put_varint(buf, layout.remaining);
            if layout.remaining > 0 {
                buf.put_u8(a.reason);
                if layout.remaining > 1 {
                    properties::put(&a.properties, layout.props, buf);
                }
            }
        }
    }
}

/// Exact number of bytes `encode` appends (fixed header included), computed
/// without encoding.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let remaining = layout(packet, version).remaining;
    1 + varint_len(remaining) + remaining
}

/// Sizes computed once per encoding.
#[derive(Debug, Default)]
struct Layout {
    /// The fixed header's remaining length.
    remaining: usize,
    /// Content size of the packet's property block (5.0 only).
    props: usize,
    /// Content size of the will property block (5.0 CONNECT with a will).
    will_props: usize,
}

fn layout(packet: &Packet, version: ProtocolVersion) -> Layout {
    let v5 = version.is_v5();
    // The size of a property block if the version has one, with its content size.
    let block = |content: usize| if v5 { block_len(content) } else { 0 };
    match packet {
        Packet::Connect(c) => {
            let name = match version {
                ProtocolVersion::V3_1 => 2 + 6,
                ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => 2 + 4,
            };
            let props = if v5 { c.properties.content_len() } else { 0 };
            let mut remaining = name + 1 + 1 + 2 + block(props) + 2 + c.client_id.len();
            let mut will_props = 0;
            if let Some(will) = &c.will {
                will_props = if v5 { will.properties.content_len() } else { 0 };
                remaining += block(will_props) + 2 + will.topic.len() + 2 + will.payload.len();
            }
            if let Some(username) = &c.username {
                remaining += 2 + username.len();
            }
            if let Some(password) = &c.password {
                remaining += 2 + password.len();
            }
            Layout {
                remaining,
                props,
                will_props,
            }
        }
        Packet::ConnAck(c) => {
            let props = if v5 { c.properties.content_len() } else { 0 };
            Layout {
                remaining: 2 + block(props),
                props,
                will_props: 0,
            }
        }
        Packet::Publish(p) => {
            let props = if v5 { p.properties.content_len() } else { 0 };
            let id = if p.qos == QoS::AtMostOnce { 0 } else { 2 };
            Layout {
                remaining: 2 + p.topic.len() + id + block(props) + p.payload.len(),
                props,
                will_props: 0,
            }
        }
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            pub_resp_layout(r, v5)
        }
        Packet::Subscribe(s) => {
            let props = if v5 { s.properties.content_len() } else { 0 };
            let filters: usize = s.filters.iter().map(|f| 2 + f.filter.len() + 1).sum();
            Layout {
                remaining: 2 + block(props) + filters,
                props,
                will_props: 0,
            }
        }
        Packet::SubAck(s) => {
            let props = if v5 { s.properties.content_len() } else { 0 };
            Layout {
                remaining: 2 + block(props) + s.codes.len(),
                props,
                will_props: 0,
            }
        }
        Packet::Unsubscribe(u) => {
            let props = if v5 {
                u.user_properties[..].content_len()
            } else {
                0
            };
            let filters: usize = u.filters.iter().map(|f| 2 + f.len()).sum();
            Layout {
                remaining: 2 + block(props) + filters,
                props,
                will_props: 0,
            }
        }
        Packet::UnsubAck(u) => {
            if v5 {
                let props = u.properties.content_len();
                Layout {
                    remaining: 2 + block_len(props) + u.codes.len(),
                    props,
                    will_props: 0,
                }
            } else {
                Layout {
                    remaining: 2,
                    ..Layout::default()
                }
            }
        }
        Packet::PingReq | Packet::PingResp => Layout::default(),
        Packet::Disconnect(d) => {
            if v5 {
                reason_layout(d.reason, d.properties.content_len())
            } else {
                Layout::default()
            }
        }
        Packet::Auth(a) => reason_layout(a.reason, a.properties.content_len()),
    }
}

/// DISCONNECT and AUTH: remaining length 0 for reason 0 without properties,
/// 1 for another reason without properties.
fn reason_layout(reason: u8, props: usize) -> Layout {
    let remaining = match (reason, props) {
        (0, 0) => 0,
        (_, 0) => 1,
        _ => 1 + block_len(props),
    };
    Layout {
        remaining,
        props,
        will_props: 0,
    }
}

fn pub_resp_layout(r: &PubResp, v5: bool) -> Layout {
    if !v5 {
        return Layout {
            remaining: 2,
            ..Layout::default()
        };
    }
    let props = r.properties.content_len();
    let remaining = match (r.reason, props) {
        (0, 0) => 2,
        (_, 0) => 3,
        _ => 3 + block_len(props),
    };
    Layout {
        remaining,
        props,
        will_props: 0,
    }
}

fn put_pub_resp(buf: &mut BytesMut, first: u8, r: &PubResp, layout: &Layout, v5: bool) {
    buf.put_u8(first);
    put_varint(buf, layout.remaining);
    buf.put_u16(r.packet_id);
    if v5 && layout.remaining > 2 {
        buf.put_u8(r.reason);
        if layout.remaining > 3 {
            properties::put(&r.properties, layout.props, buf);
        }
    }
}

/// Number of bytes of `v` as a variable byte integer.
pub(super) fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `v` as a variable byte integer (section 1.5.5).
pub(super) fn put_varint(buf: &mut BytesMut, mut v: usize) {
    debug_assert!(v <= VARINT_MAX, "variable byte integer out of range");
    loop {
        let mut byte = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if v == 0 {
            break;
        }
    }
}

/// Writes a two-byte length and the bytes (binary data or a UTF-8 string).
pub(super) fn put_binary(buf: &mut BytesMut, data: &[u8]) {
    debug_assert!(
        data.len() <= usize::from(u16::MAX),
        "string or binary longer than 65535 bytes"
    );
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{
        decode, Connect, ConnectProperties, Disconnect, DisconnectProperties, Publish,
        PublishProperties, ReasonProperties, UnsubAck,
    };
    use bytes::Bytes;

    fn enc(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode(p, v, &mut buf);
        assert_eq!(buf.len(), encoded_len(p, v), "encoded_len is exact");
        buf.to_vec()
    }

    fn connect(v: ProtocolVersion) -> Packet {
        Packet::Connect(Box::new(Connect {
            protocol: v,
            clean_start: true,
            keep_alive: 60,
            properties: ConnectProperties {
                session_expiry_interval: Some(5),
                ..Default::default()
            },
            client_id: "id".into(),
            will: None,
            username: Some("u".into()),
            password: Some(Bytes::from_static(b"p")),
        }))
    }

    #[test]
    fn variable_byte_integer_boundaries() {
        // Section 1.5.5, table 1-1: the boundaries of 1..4 byte encodings.
        let cases: [(usize, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for (v, expected) in cases {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, v);
            assert_eq!(&buf[..], expected, "{v}");
            assert_eq!(varint_len(v), expected.len(), "{v}");
        }
    }

    #[test]
    fn connect_v3_1_uses_mqisdp() {
        // MQTT 3.1: protocol name "MQIsdp", level 3; no properties.
        let bytes = enc(&connect(ProtocolVersion::V3_1), ProtocolVersion::V3_1);
        let expected = [
            &[0x10, 22, 0, 6][..],
            b"MQIsdp",
            &[3, 0xC2, 0, 60, 0, 2],
            b"id",
            &[0, 1, b'u', 0, 1, b'p'],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn connect_v3_1_1_and_v5_bytes() {
        // [MQTT-3.1.2-1]: "MQTT" with level 4, and 5 with a property block in 5.0.
        let bytes = enc(&connect(ProtocolVersion::V3_1_1), ProtocolVersion::V3_1_1);
        let expected = [
            &[0x10, 20, 0, 4][..],
            b"MQTT",
            &[4, 0xC2, 0, 60, 0, 2],
            b"id",
            &[0, 1, b'u', 0, 1, b'p'],
        ]
        .concat();
        assert_eq!(bytes, expected);
        let bytes = enc(&connect(ProtocolVersion::V5), ProtocolVersion::V5);
        let expected = [
            &[0x10, 26, 0, 4][..],
            b"MQTT",
            &[5, 0xC2, 0, 60, 5, 0x11, 0, 0, 0, 5, 0, 2],
            b"id",
            &[0, 1, b'u', 0, 1, b'p'],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn v5_acknowledgement_short_forms() {
        // 5.0 section 3.4.2.1: reason 0 without properties → remaining length 2;
        // another reason without properties → 3 (no property length).
        let ack = |reason: u8, props: ReasonProperties| {
            Packet::PubAck(PubResp {
                packet_id: 0x0102,
                reason,
                properties: props,
            })
        };
        assert_eq!(
            enc(&ack(0, Default::default()), ProtocolVersion::V5),
            [0x40, 2, 1, 2]
        );
        assert_eq!(
            enc(&ack(0x10, Default::default()), ProtocolVersion::V5),
            [0x40, 3, 1, 2, 0x10]
        );
        let props = ReasonProperties {
            reason_string: Some("x".into()),
            user_properties: vec![],
        };
        assert_eq!(
            enc(&ack(0, props.clone()), ProtocolVersion::V5),
            [0x40, 8, 1, 2, 0, 4, 0x1F, 0, 1, b'x']
        );
        // 3.x ignores reason and properties.
        assert_eq!(
            enc(&ack(0x10, props), ProtocolVersion::V3_1_1),
            [0x40, 2, 1, 2]
        );
        let rel = Packet::PubRel(PubResp {
            packet_id: 7,
            ..Default::default()
        });
        assert_eq!(enc(&rel, ProtocolVersion::V3_1_1), [0x62, 2, 0, 7]);
    }

    #[test]
    fn disconnect_forms() {
        // 5.0 section 3.14.2.1: reason 0 without properties → remaining length 0.
        assert_eq!(
            enc(
                &Packet::Disconnect(Disconnect::default()),
                ProtocolVersion::V5
            ),
            [0xE0, 0]
        );
        let d = Packet::Disconnect(Disconnect {
            reason: 0x8E,
            properties: Default::default(),
        });
        assert_eq!(enc(&d, ProtocolVersion::V5), [0xE0, 1, 0x8E]);
        // 3.x DISCONNECT has no body whatever the fields say.
        assert_eq!(enc(&d, ProtocolVersion::V3_1_1), [0xE0, 0]);
        let d = Packet::Disconnect(Disconnect {
            reason: 0,
            properties: DisconnectProperties {
                session_expiry_interval: Some(1),
                ..Default::default()
            },
        });
        assert_eq!(
            enc(&d, ProtocolVersion::V5),
            [0xE0, 7, 0, 5, 0x11, 0, 0, 0, 1]
        );
    }

    #[test]
    fn unsuback_v3_has_no_payload() {
        // 3.1.1 section 3.11: UNSUBACK is the packet identifier only.
        let u = Packet::UnsubAck(UnsubAck {
            packet_id: 3,
            properties: Default::default(),
            codes: vec![0, 0x11],
        });
        assert_eq!(enc(&u, ProtocolVersion::V3_1_1), [0xB0, 2, 0, 3]);
        assert_eq!(enc(&u, ProtocolVersion::V5), [0xB0, 5, 0, 3, 0, 0, 0x11]);
    }

    #[test]
    fn publish_v3_ignores_properties_and_large_payload_header() {
        let p = Packet::Publish(Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: "t".into(),
            packet_id: Some(1),
            properties: PublishProperties {
                message_expiry_interval: Some(10),
                ..Default::default()
            },
            payload: Bytes::from(vec![7u8; 200]),
        });
        let bytes = enc(&p, ProtocolVersion::V3_1_1);
        // 2 + 1 topic + 2 id + 200 payload = 205 → two-byte remaining length.
        assert_eq!(&bytes[..7], &[0x3D, 0xCD, 0x01, 0, 1, b't', 0][..]);
        assert_eq!(bytes.len(), 3 + 205);
        let bytes5 = enc(&p, ProtocolVersion::V5);
        assert_eq!(bytes5.len(), 3 + 205 + 6);
        // And they decode back to the packet (minus the 5.0 fields for 3.x).
        let mut buf = BytesMut::from(&bytes5[..]);
        assert_eq!(
            decode(&mut buf, Some(ProtocolVersion::V5), 1 << 20),
            Ok(Some(p))
        );
    }

    #[test]
    fn ping_packets() {
        assert_eq!(enc(&Packet::PingReq, ProtocolVersion::V3_1), [0xC0, 0]);
        assert_eq!(enc(&Packet::PingResp, ProtocolVersion::V5), [0xD0, 0]);
    }
}
