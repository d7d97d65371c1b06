//! A deliberately small MQTT codec: just the packets a load generator sends
//! and receives, for 3.1.1 and 5.0.
//!
//! It is independent of Herald's own codec on purpose: the benchmark must
//! treat every broker as a black box, and a bug in the broker's codec must
//! not hide itself by being shared with the tool that measures it.
//!
//! Decoding follows the usual framing rule: [`decode`] returns `Ok(None)`
//! while the buffer does not hold a whole packet, and consumes exactly one
//! packet when it does. 5.0 properties sent by the broker are skipped; the
//! only property the generator ever sends is Session Expiry Interval.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Protocol level in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

/// The packets the generator uses. Fields carry only what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect {
        version: Version,
        client_id: String,
        /// 3.1.1 Clean Session / 5.0 Clean Start.
        clean: bool,
        keep_alive_secs: u16,
        /// 5.0 only: Session Expiry Interval property, sent when non-zero.
        session_expiry_secs: u32,
    },
    ConnAck {
        session_present: bool,
        /// 3.1.1 return code or 5.0 reason code; 0 is success in both.
        code: u8,
    },
    Publish(Publish),
    PubAck {
        packet_id: u16,
    },
    PubRec {
        packet_id: u16,
    },
    PubRel {
        packet_id: u16,
    },
    PubComp {
        packet_id: u16,
    },
    Subscribe {
        packet_id: u16,
        /// (topic filter, requested QoS).
        filters: Vec<(String, u8)>,
    },
    SubAck {
        packet_id: u16,
        /// Granted QoS or failure/reason code per filter.
        codes: Vec<u8>,
    },
    PingReq,
    PingResp,
    Disconnect {
        /// 5.0 reason code (0 = normal); always 0 for 3.1.1.
        reason: u8,
    },
}

/// A PUBLISH. Topic and payload are slices of the read buffer, so decoding
/// one costs no copy of the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: Bytes,
    /// Present exactly when `qos > 0`.
    pub packet_id: Option<u16>,
    pub payload: Bytes,
}

/// Why a buffer could not be decoded. Any of these ends the connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("remaining length uses more than 4 bytes")]
    BadRemainingLength,
    #[error("packet type {0} is not one the generator understands")]
    UnknownPacket(u8),
    #[error("packet body is shorter than its fields: {0}")]
    Truncated(&'static str),
    #[error("invalid fixed-header flags {flags:#x} for packet type {kind}")]
    BadFlags { kind: u8, flags: u8 },
    #[error("invalid QoS 3 in PUBLISH")]
    BadQos,
    #[error("string is not UTF-8")]
    BadUtf8,
}

/// Largest value the 4-byte variable byte integer can carry.
const MAX_REMAINING: usize = 268_435_455;

/// Appends a variable byte integer.
fn put_varint(buf: &mut BytesMut, mut value: usize) {
    debug_assert!(value <= MAX_REMAINING);
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            break;
        }
    }
}

/// Reads a variable byte integer from the front of `buf` without consuming
/// it: `Ok(None)` when more bytes are needed, else (value, bytes used).
fn peek_varint(buf: &[u8]) -> Result<Option<(usize, usize)>, CodecError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(i) else {
            return Ok(None);
        };
        value += usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Err(CodecError::BadRemainingLength)
}

fn put_str(buf: &mut BytesMut, s: &[u8]) {
    // Topic names, filters and client ids are built by the generator and
    // are far below 64 KiB.
    buf.put_u16(s.len() as u16);
    buf.put_slice(s);
}

/// Size of a PUBLISH once encoded, for callers that pre-size buffers.
pub fn publish_len(version: Version, topic_len: usize, qos: u8, payload_len: usize) -> usize {
    let remaining = publish_remaining(version, topic_len, qos, payload_len);
    1 + varint_len(remaining) + remaining
}

fn publish_remaining(version: Version, topic_len: usize, qos: u8, payload_len: usize) -> usize {
    let props = if version == Version::V5 { 1 } else { 0 };
    2 + topic_len + if qos > 0 { 2 } else { 0 } + props + payload_len
}

fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends one PUBLISH built from borrowed parts: the hot path of every
/// publisher, so it never allocates beyond growing `buf`.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish(
    buf: &mut BytesMut,
    version: Version,
    topic: &[u8],
    qos: u8,
    retain: bool,
    dup: bool,
    packet_id: u16,
    payload: &[u8],
) {
    let mut first = 0x30 | (qos << 1);
    if retain {
        first |= 0x01;
    }
    if dup {
        first |= 0x08;
    }
    buf.put_u8(first);
    put_varint(
        buf,
        publish_remaining(version, topic.len(), qos, payload.len()),
    );
    put_str(buf, topic);
    if qos > 0 {
        buf.put_u16(packet_id);
    }
    if version == Version::V5 {
        buf.put_u8(0);
    }
    buf.put_slice(payload);
}

/// Appends an acknowledgement (PUBACK, PUBREC, PUBREL or PUBCOMP): the
/// short form, which means success in 5.0 as well.
fn encode_ack(buf: &mut BytesMut, first: u8, packet_id: u16) {
    buf.put_u8(first);
    buf.put_u8(2);
    buf.put_u16(packet_id);
}

/// Appends a PUBACK (hot path of QoS 1 subscribers).
pub fn encode_puback(buf: &mut BytesMut, packet_id: u16) {
    encode_ack(buf, 0x40, packet_id);
}

/// Appends `packet` to `buf`.
pub fn encode(buf: &mut BytesMut, packet: &Packet) {
    match packet {
        Packet::Connect {
            version,
            client_id,
            clean,
            keep_alive_secs,
            session_expiry_secs,
        } => {
            let mut body = BytesMut::with_capacity(32 + client_id.len());
            put_str(&mut body, b"MQTT");
            body.put_u8(match version {
                Version::V311 => 4,
                Version::V5 => 5,
            });
            body.put_u8(if *clean { 0x02 } else { 0x00 });
            body.put_u16(*keep_alive_secs);
            if *version == Version::V5 {
                if *session_expiry_secs > 0 {
                    body.put_u8(5);
                    body.put_u8(0x11);
                    body.put_u32(*session_expiry_secs);
                } else {
                    body.put_u8(0);
                }
            }
            put_str(&mut body, client_id.as_bytes());
            buf.put_u8(0x10);
            put_varint(buf, body.len());
            buf.put_slice(&body);
        }
        Packet::ConnAck {
            session_present,
            code,
        } => {
            // Encoded in the 3.1.1 form (no properties); only tests use it.
            buf.put_slice(&[0x20, 2, u8::from(*session_present), *code]);
        }
        Packet::Publish(p) => encode_publish(
            buf,
            Version::V311,
            &p.topic,
            p.qos,
            p.retain,
            p.dup,
            p.packet_id.unwrap_or(0),
            &p.payload,
        ),
        Packet::PubAck { packet_id } => encode_ack(buf, 0x40, *packet_id),
        Packet::PubRec { packet_id } => encode_ack(buf, 0x50, *packet_id),
        Packet::PubRel { packet_id } => encode_ack(buf, 0x62, *packet_id),
        Packet::PubComp { packet_id } => encode_ack(buf, 0x70, *packet_id),
        Packet::Subscribe { packet_id, filters } => {
            // 3.1.1 layout; `encode_subscribe` adds the 5.0 property length.
            encode_subscribe(buf, Version::V311, *packet_id, filters);
        }
        Packet::SubAck { packet_id, codes } => {
            buf.put_u8(0x90);
            put_varint(buf, 2 + codes.len());
            buf.put_u16(*packet_id);
            buf.put_slice(codes);
        }
        Packet::PingReq => buf.put_slice(&[0xc0, 0]),
        Packet::PingResp => buf.put_slice(&[0xd0, 0]),
        Packet::Disconnect { reason } => {
            if *reason == 0 {
                buf.put_slice(&[0xe0, 0]);
            } else {
                buf.put_slice(&[0xe0, 1, *reason]);
            }
        }
    }
}

/// Appends a SUBSCRIBE in the layout of `version`.
pub fn encode_subscribe(
    buf: &mut BytesMut,
    version: Version,
    packet_id: u16,
    filters: &[(String, u8)],
) {
    let props = usize::from(version == Version::V5);
    let remaining = 2 + props + filters.iter().map(|(f, _)| 2 + f.len() + 1).sum::<usize>();
    buf.put_u8(0x82);
    put_varint(buf, remaining);
    buf.put_u16(packet_id);
    if props == 1 {
        buf.put_u8(0);
    }
    for (filter, qos) in filters {
        put_str(buf, filter.as_bytes());
        buf.put_u8(*qos);
    }
}

/// Appends a CONNECT for `version`; a small helper over [`encode`].
pub fn encode_connect(
    buf: &mut BytesMut,
    version: Version,
    client_id: &str,
    clean: bool,
    keep_alive_secs: u16,
    session_expiry_secs: u32,
) {
    encode(
        buf,
        &Packet::Connect {
            version,
            client_id: client_id.to_owned(),
            clean,
            keep_alive_secs,
            session_expiry_secs,
        },
    );
}

fn take_u16(body: &mut Bytes, what: &'static str) -> Result<u16, CodecError> {
    if body.remaining() < 2 {
        return Err(CodecError::Truncated(what));
    }
    Ok(body.get_u16())
}

fn take_bytes(body: &mut Bytes, what: &'static str) -> Result<Bytes, CodecError> {
    let len = usize::from(take_u16(body, what)?);
    if body.remaining() < len {
        return Err(CodecError::Truncated(what));
    }
    Ok(body.split_to(len))
}

/// Skips a 5.0 property block (its length, then that many bytes).
fn skip_properties(body: &mut Bytes) -> Result<(), CodecError> {
    let (len, used) = peek_varint(body)?.ok_or(CodecError::Truncated("property length"))?;
    if body.remaining() < used + len {
        return Err(CodecError::Truncated("properties"));
    }
    body.advance(used + len);
    Ok(())
}

/// Decodes one packet from the front of `buf`, consuming it. `Ok(None)`
/// means the buffer holds no whole packet yet (nothing is consumed).
pub fn decode(buf: &mut BytesMut, version: Version) -> Result<Option<Packet>, CodecError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((remaining, used)) = peek_varint(&buf[1..])? else {
        return Ok(None);
    };
    let total = 1 + used + remaining;
    if buf.len() < total {
        // Reserve for the rest so a large packet is read in few syscalls.
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total).freeze();
    frame.advance(1 + used);
    decode_body(first, frame, version).map(Some)
}

fn expect_flags(first: u8, flags: u8) -> Result<(), CodecError> {
    if first & 0x0f != flags {
        return Err(CodecError::BadFlags {
            kind: first >> 4,
            flags: first & 0x0f,
        });
    }
    Ok(())
}

fn decode_body(first: u8, mut body: Bytes, version: Version) -> Result<Packet, CodecError> {
    let v5 = version == Version::V5;
    let kind = first >> 4;
    let packet = match kind {
        1 => {
            expect_flags(first, 0)?;
            let _name = take_bytes(&mut body, "protocol name")?;
            if body.remaining() < 4 {
                return Err(CodecError::Truncated("connect header"));
            }
            let level = body.get_u8();
            let flags = body.get_u8();
            let keep_alive_secs = body.get_u16();
            let version = if level == 5 {
                Version::V5
            } else {
                Version::V311
            };
            let mut session_expiry_secs = 0;
            if version == Version::V5 {
                let (len, used) =
                    peek_varint(&body)?.ok_or(CodecError::Truncated("property length"))?;
                if body.remaining() < used + len {
                    return Err(CodecError::Truncated("properties"));
                }
                body.advance(used);
                let mut props = body.split_to(len);
                while props.has_remaining() {
                    let id = props.get_u8();
                    if id == 0x11 && props.remaining() >= 4 {
                        session_expiry_secs = props.get_u32();
                    } else {
                        // The generator never sends any other property.
                        return Err(CodecError::Truncated("connect property"));
                    }
                }
            }
            let id = take_bytes(&mut body, "client id")?;
            let client_id = String::from_utf8(id.to_vec()).map_err(|_| CodecError::BadUtf8)?;
            Packet::Connect {
                version,
                client_id,
                clean: flags & 0x02 != 0,
                keep_alive_secs,
                session_expiry_secs,
            }
        }
        2 => {
            expect_flags(first, 0)?;
            if body.remaining() < 2 {
                return Err(CodecError::Truncated("connack"));
            }
            let flags = body.get_u8();
            let code = body.get_u8();
            Packet::ConnAck {
                session_present: flags & 0x01 != 0,
                code,
            }
        }
        3 => {
            let qos = (first >> 1) & 0x03;
            if qos == 3 {
                return Err(CodecError::BadQos);
            }
            let topic = take_bytes(&mut body, "topic")?;
            let packet_id = if qos > 0 {
                Some(take_u16(&mut body, "packet id")?)
            } else {
                None
            };
            if v5 {
                skip_properties(&mut body)?;
            }
            Packet::Publish(Publish {
                dup: first & 0x08 != 0,
                qos,
                retain: first & 0x01 != 0,
                topic,
                packet_id,
                payload: body,
            })
        }
        4..=7 => {
            let flags = if kind == 6 { 2 } else { 0 };
            expect_flags(first, flags)?;
            // 5.0 may append a reason code and properties; the generator
            // only needs the packet id.
            let packet_id = take_u16(&mut body, "ack packet id")?;
            match kind {
                4 => Packet::PubAck { packet_id },
                5 => Packet::PubRec { packet_id },
                6 => Packet::PubRel { packet_id },
                _ => Packet::PubComp { packet_id },
            }
        }
        8 => {
            expect_flags(first, 2)?;
            let packet_id = take_u16(&mut body, "subscribe packet id")?;
            if v5 {
                skip_properties(&mut body)?;
            }
            let mut filters = Vec::new();
            while body.has_remaining() {
                let f = take_bytes(&mut body, "filter")?;
                if !body.has_remaining() {
                    return Err(CodecError::Truncated("subscription options"));
                }
                let qos = body.get_u8();
                let f = String::from_utf8(f.to_vec()).map_err(|_| CodecError::BadUtf8)?;
                filters.push((f, qos));
            }
            Packet::Subscribe { packet_id, filters }
        }
        9 => {
            expect_flags(first, 0)?;
            let packet_id = take_u16(&mut body, "suback packet id")?;
            if v5 {
                skip_properties(&mut body)?;
            }
            Packet::SubAck {
                packet_id,
                codes: body.to_vec(),
            }
        }
        12 => {
            expect_flags(first, 0)?;
            Packet::PingReq
        }
        13 => {
            expect_flags(first, 0)?;
            Packet::PingResp
        }
        14 => {
            expect_flags(first, 0)?;
            Packet::Disconnect {
                reason: body.first().copied().unwrap_or(0),
            }
        }
        other => return Err(CodecError::UnknownPacket(other)),
    };
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(p: &Packet) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode(&mut b, p);
        b.to_vec()
    }

    #[test]
    fn connect_311_bytes() {
        // [MQTT-3.1.2-1] protocol name "MQTT", [MQTT-3.1.2-2] level 4,
        // clean session is bit 1 of the connect flags.
        let bytes = enc(&Packet::Connect {
            version: Version::V311,
            client_id: "ab".into(),
            clean: true,
            keep_alive_secs: 60,
            session_expiry_secs: 0,
        });
        assert_eq!(
            bytes,
            [0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 2, b'a', b'b']
        );
    }

    #[test]
    fn connect_5_carries_session_expiry() {
        // 5.0 section 3.1.2.11.2: Session Expiry Interval is property 0x11, a
        // four byte integer.
        let bytes = enc(&Packet::Connect {
            version: Version::V5,
            client_id: "c".into(),
            clean: false,
            keep_alive_secs: 10,
            session_expiry_secs: 300,
        });
        assert_eq!(
            bytes,
            [
                0x10, 19, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x00, 0, 10, 5, 0x11, 0, 0, 1, 44, 0, 1,
                b'c'
            ]
        );
    }

    #[test]
    fn publish_qos1_bytes_and_decode() {
        // [MQTT-3.3.1-4] QoS in bits 1-2; packet id present only for QoS > 0.
        let mut b = BytesMut::new();
        encode_publish(&mut b, Version::V311, b"a/b", 1, true, false, 7, b"xy");
        assert_eq!(
            b.to_vec(),
            [0x33, 9, 0, 3, b'a', b'/', b'b', 0, 7, b'x', b'y']
        );
        assert_eq!(b.len(), publish_len(Version::V311, 3, 1, 2));
        let p = decode(&mut b, Version::V311)
            .expect("valid packet")
            .expect("complete packet");
        let Packet::Publish(p) = p else {
            panic!("not a publish: {p:?}")
        };
        assert_eq!(p.packet_id, Some(7));
        assert!(p.retain);
        assert_eq!(&p.topic[..], b"a/b");
        assert_eq!(&p.payload[..], b"xy");
        assert!(b.is_empty());
    }

    #[test]
    fn publish_v5_skips_properties() {
        // A broker may add properties (e.g. a subscription identifier).
        let raw = [0x30, 9, 0, 1, b't', 3, 0x0b, 0x01, 0x00, b'h', b'i'];
        let mut b = BytesMut::from(&raw[..]);
        // Property block: length 3, id 0x0b with varint 1, then an extra
        // byte that belongs to the property block (length says 3).
        let Some(Packet::Publish(p)) = decode(&mut b, Version::V5).expect("valid packet") else {
            panic!("expected publish")
        };
        assert_eq!(&p.payload[..], b"hi");
        let mut b = BytesMut::new();
        encode_publish(&mut b, Version::V5, b"t", 0, false, false, 0, b"hi");
        assert_eq!(b.to_vec(), [0x30, 6, 0, 1, b't', 0, b'h', b'i']);
    }

    #[test]
    fn subscribe_bytes_v311_and_v5() {
        // [MQTT-3.8.1-1] SUBSCRIBE fixed header flags are 0010.
        let mut b = BytesMut::new();
        encode_subscribe(&mut b, Version::V311, 1, &[("a/#".into(), 1)]);
        assert_eq!(b.to_vec(), [0x82, 8, 0, 1, 0, 3, b'a', b'/', b'#', 1]);
        let mut b = BytesMut::new();
        encode_subscribe(&mut b, Version::V5, 1, &[("a/#".into(), 1)]);
        assert_eq!(b.to_vec(), [0x82, 9, 0, 1, 0, 0, 3, b'a', b'/', b'#', 1]);
    }

    #[test]
    fn decodes_broker_packets_v5() {
        // CONNACK with properties, SUBACK with properties, PUBACK with a
        // reason code and a DISCONNECT with a reason code.
        let raw = [
            0x20, 6, 1, 0, 3, 0x21, 0, 10, // connack, receive maximum 10
            0x90, 4, 0, 9, 0, 1, // suback id 9, granted 1
            0x40, 3, 0, 5, 0x10, // puback id 5, reason 0x10
            0xe0, 1, 0x8e, // disconnect: session taken over
        ];
        let mut b = BytesMut::from(&raw[..]);
        let mut got = Vec::new();
        while let Some(p) = decode(&mut b, Version::V5).expect("valid packet") {
            got.push(p);
        }
        assert_eq!(
            got,
            vec![
                Packet::ConnAck {
                    session_present: true,
                    code: 0
                },
                Packet::SubAck {
                    packet_id: 9,
                    codes: vec![1]
                },
                Packet::PubAck { packet_id: 5 },
                Packet::Disconnect { reason: 0x8e },
            ]
        );
    }

    #[test]
    fn incomplete_frames_wait_for_more() {
        let mut b = BytesMut::from(&[0x30u8][..]);
        assert_eq!(decode(&mut b, Version::V311), Ok(None));
        let mut b = BytesMut::from(&[0x30u8, 0x80][..]);
        assert_eq!(decode(&mut b, Version::V311), Ok(None));
        let mut b = BytesMut::from(&[0x30u8, 5, 0, 1, b't'][..]);
        assert_eq!(decode(&mut b, Version::V311), Ok(None));
        assert_eq!(b.len(), 5, "nothing is consumed until the frame is whole");
    }

    #[test]
    fn rejects_malformed() {
        // Remaining length longer than four bytes (1.5.5).
        let mut b = BytesMut::from(&[0x30u8, 0xff, 0xff, 0xff, 0xff, 0x01][..]);
        assert_eq!(
            decode(&mut b, Version::V311),
            Err(CodecError::BadRemainingLength)
        );
        // [MQTT-3.3.1-4] QoS 3 is malformed.
        let mut b = BytesMut::from(&[0x36u8, 0][..]);
        assert_eq!(decode(&mut b, Version::V311), Err(CodecError::BadQos));
        // [MQTT-3.6.1-1] PUBREL flags must be 0010.
        let mut b = BytesMut::from(&[0x60u8, 2, 0, 1][..]);
        assert!(matches!(
            decode(&mut b, Version::V311),
            Err(CodecError::BadFlags { kind: 6, .. })
        ));
        let mut b = BytesMut::from(&[0xf0u8, 0][..]);
        assert_eq!(
            decode(&mut b, Version::V311),
            Err(CodecError::UnknownPacket(15))
        );
    }

    #[test]
    fn varint_boundaries() {
        // 1.5.5: the boundaries of 1, 2, 3 and 4 byte encodings.
        for (value, len) in [
            (0usize, 1usize),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (2_097_151, 3),
            (2_097_152, 4),
            (MAX_REMAINING, 4),
        ] {
            let mut b = BytesMut::new();
            put_varint(&mut b, value);
            assert_eq!(b.len(), len, "{value}");
            assert_eq!(varint_len(value), len);
            assert_eq!(peek_varint(&b).expect("valid varint"), Some((value, len)));
        }
    }

    fn arb_packet() -> impl Strategy<Value = Packet> {
        let id = 1u16..=u16::MAX;
        let topic = "[a-z/]{1,20}";
        prop_oneof![
            ("[a-z0-9]{0,23}", any::<bool>(), any::<u16>()).prop_map(|(c, clean, ka)| {
                Packet::Connect {
                    version: Version::V311,
                    client_id: c,
                    clean,
                    keep_alive_secs: ka,
                    session_expiry_secs: 0,
                }
            }),
            (any::<bool>(), any::<u8>()).prop_map(|(s, code)| Packet::ConnAck {
                session_present: s,
                code
            }),
            (
                topic,
                0u8..=2,
                any::<bool>(),
                any::<bool>(),
                id.clone(),
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(t, qos, retain, dup, pid, payload)| {
                    Packet::Publish(Publish {
                        dup,
                        qos,
                        retain,
                        topic: Bytes::from(t),
                        packet_id: (qos > 0).then_some(pid),
                        payload: Bytes::from(payload),
                    })
                }),
            id.clone()
                .prop_map(|packet_id| Packet::PubAck { packet_id }),
            id.clone()
                .prop_map(|packet_id| Packet::PubRec { packet_id }),
            id.clone()
                .prop_map(|packet_id| Packet::PubRel { packet_id }),
            id.clone()
                .prop_map(|packet_id| Packet::PubComp { packet_id }),
            (
                id.clone(),
                proptest::collection::vec(("[a-z/+#]{1,10}", 0u8..=2), 1..5)
            )
                .prop_map(|(packet_id, filters)| Packet::Subscribe { packet_id, filters }),
            (id, proptest::collection::vec(any::<u8>(), 1..5))
                .prop_map(|(packet_id, codes)| Packet::SubAck { packet_id, codes }),
            Just(Packet::PingReq),
            Just(Packet::PingResp),
            Just(Packet::Disconnect { reason: 0 }),
        ]
    }

    proptest! {
        /// Every packet survives encode then decode, even when the bytes
        /// arrive in two parts split at any point.
        #[test]
        fn round_trip_with_split_reads(packets in proptest::collection::vec(arb_packet(), 1..8), cut in any::<prop::sample::Index>()) {
            let mut wire = BytesMut::new();
            for p in &packets {
                encode(&mut wire, p);
            }
            let cut = cut.index(wire.len() + 1);
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(p) = decode(&mut buf, Version::V311).expect("encoded packets decode") {
                got.push(p);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(p) = decode(&mut buf, Version::V311).expect("encoded packets decode") {
                got.push(p);
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, packets);
        }
    }
}
