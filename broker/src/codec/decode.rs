//! Frame and packet decoding with validation.
//!
//! [`decode`] looks at the fixed header first: the packet type, its flag bits
//! and the remaining length are validated, and the total size is checked
//! against the caller's limit, before the rest of the frame needs to be in the
//! buffer. Only a complete frame is parsed; it is split off the read buffer and
//! frozen, and every topic, string and payload of the decoded packet is a
//! slice of that frame (no payload is copied).
//!
//! Every violation the specification makes a Malformed Packet or a Protocol
//! Error is a [`DecodeError`], whose [`DecodeError::reason_code`] is the 5.0
//! reason code the server sends before closing the connection. Checks that
//! need session state (topic alias mapping, a second CONNECT, packet
//! identifiers in use, filter syntax) are left to the broker.

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;

use super::properties;
use super::{
    Auth, ConnAck, Connect, Disconnect, Packet, ProtocolVersion, PubResp, Publish, QoS, SubAck,
    Subscribe, SubscribeFilter, UnsubAck, Unsubscribe, Will,
};

/// Why a frame could not be decoded. The connection that sent it must be
/// closed (after a CONNACK or DISCONNECT carrying [`DecodeError::reason_code`]
/// for 5.0, or the 3.x CONNACK return code for an unsupported protocol).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes do not form a valid packet (reason code 0x81).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet is well-formed but breaks a protocol rule (reason code 0x82).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The frame is larger than the negotiated limit (reason code 0x95).
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// Total size of the frame, fixed header included.
        size: u64,
        /// The limit it exceeded.
        max: u32,
    },
    /// A PUBLISH or will topic name that is not a valid topic name (reason
    /// code 0x90).
    #[error("topic name invalid: {0}")]
    TopicNameInvalid(&'static str),
    /// CONNECT with a protocol name/level pair this server does not speak
    /// (reason code 0x84; 3.x CONNACK return code 1). `name` is the raw
    /// protocol name as sent (never printed); `level` the level byte.
    #[error("unsupported protocol name or level {level} [MQTT-3.1.2-1] [MQTT-3.1.2-2]")]
    UnsupportedProtocol {
        /// The protocol name field exactly as received.
        name: Bytes,
        /// The protocol level byte as received.
        level: u8,
    },
}

impl DecodeError {
    /// The MQTT 5.0 reason code the server sends (in CONNACK before CONNECT
    /// completed, in DISCONNECT afterwards) before closing the connection.
    pub fn reason_code(&self) -> u8 {
        use super::reason;
        match self {
            DecodeError::Malformed(_) => reason::MALFORMED_PACKET,
            DecodeError::Protocol(_) => reason::PROTOCOL_ERROR,
            DecodeError::PacketTooLarge { .. } => reason::PACKET_TOO_LARGE,
            DecodeError::TopicNameInvalid(_) => reason::TOPIC_NAME_INVALID,
            DecodeError::UnsupportedProtocol { .. } => reason::UNSUPPORTED_PROTOCOL_VERSION,
        }
    }
}

/// Shorthand for the decoder's results.
pub(super) type DResult<T> = Result<T, DecodeError>;

const TOO_SHORT: DecodeError =
    DecodeError::Malformed("packet shorter than its fields (remaining length too small)");

/// Packet type numbers (fixed header bits 7-4).
const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const PUBREC: u8 = 5;
const PUBREL: u8 = 6;
const PUBCOMP: u8 = 7;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const UNSUBSCRIBE: u8 = 10;
const UNSUBACK: u8 = 11;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;
const AUTH: u8 = 15;

/// Decodes one complete packet from the front of `buf`. Ok(None) = frame not
/// complete yet (consume nothing). On Ok(Some) the frame's bytes are split off
/// `buf` (zero-copy: payload/topic are slices of the frame).
///
/// `version`: None before CONNECT (only CONNECT is acceptable then: any other
/// packet type → [`DecodeError::Protocol`]), Some(v) after. `max_packet_size`
/// is the total packet size limit (fixed header included), checked as soon as
/// the fixed header is readable, so an oversize frame is refused before it is
/// buffered ([`DecodeError::PacketTooLarge`]).
///
/// This is the server-side decoder: a PUBLISH carrying a Subscription
/// Identifier is a protocol error. A client reading what a server sends uses
/// [`decode_as_client`].
pub fn decode(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
) -> Result<Option<Packet>, DecodeError> {
    decode_frame(buf, version, max_packet_size, Direction::FromClient)
}

/// Same as [`decode`], for the client side of a connection: PUBLISH packets
/// may carry Subscription Identifiers (which only a server may send).
pub fn decode_as_client(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
) -> Result<Option<Packet>, DecodeError> {
    decode_frame(buf, version, max_packet_size, Direction::FromServer)
}

/// Who sent the bytes being decoded; only a few checks depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    FromClient,
    FromServer,
}

fn decode_frame(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
    direction: Direction,
) -> DResult<Option<Packet>> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let kind = first >> 4;
    let flags = first & 0x0F;
    check_type_and_flags(kind, flags, version)?;

    // Remaining length: a variable byte integer of at most 4 bytes, minimally
    // encoded [MQTT-1.5.5-1].
    let mut remaining: u32 = 0;
    let mut header_len = 1;
    loop {
        let Some(&byte) = buf.get(header_len) else {
            return Ok(None);
        };
        remaining |= u32::from(byte & 0x7F) << (7 * (header_len - 1));
        header_len += 1;
        if byte & 0x80 == 0 {
            if byte == 0 && header_len > 2 {
                return Err(DecodeError::Malformed(
                    "remaining length not minimally encoded [MQTT-1.5.5-1]",
                ));
            }
            break;
        }
        if header_len == 5 {
            return Err(DecodeError::Malformed(
                "remaining length longer than 4 bytes (section 1.5.5)",
            ));
        }
    }

    let total = header_len as u64 + u64::from(remaining);
    if total > u64::from(max_packet_size) {
        return Err(DecodeError::PacketTooLarge {
            size: total,
            max: max_packet_size,
        });
    }
    let total = usize::try_from(total)
        .map_err(|_| DecodeError::Malformed("frame larger than addressable memory"))?;
    if buf.len() < total {
        return Ok(None);
    }

    let mut frame = buf.split_to(total).freeze();
    frame.advance(header_len);
    let mut r = Reader { buf: frame };

    let packet = match (kind, version) {
        (CONNECT, _) => Packet::Connect(Box::new(decode_connect(&mut r)?)),
        (_, None) => {
            return Err(DecodeError::Protocol(
                "first packet must be CONNECT [MQTT-3.1.0-1]",
            ))
        }
        (CONNACK, Some(v)) => Packet::ConnAck(decode_connack(&mut r, v)?),
        (PUBLISH, Some(v)) => Packet::Publish(decode_publish(&mut r, flags, v, direction)?),
        (PUBACK, Some(v)) => Packet::PubAck(decode_pub_resp(&mut r, v, PUBACK)?),
        (PUBREC, Some(v)) => Packet::PubRec(decode_pub_resp(&mut r, v, PUBREC)?),
        (PUBREL, Some(v)) => Packet::PubRel(decode_pub_resp(&mut r, v, PUBREL)?),
        (PUBCOMP, Some(v)) => Packet::PubComp(decode_pub_resp(&mut r, v, PUBCOMP)?),
        (SUBSCRIBE, Some(v)) => Packet::Subscribe(decode_subscribe(&mut r, v)?),
        (SUBACK, Some(v)) => Packet::SubAck(decode_suback(&mut r, v)?),
        (UNSUBSCRIBE, Some(v)) => Packet::Unsubscribe(decode_unsubscribe(&mut r, v)?),
        (UNSUBACK, Some(v)) => Packet::UnsubAck(decode_unsuback(&mut r, v)?),
        (PINGREQ, Some(_)) => Packet::PingReq,
        (PINGRESP, Some(_)) => Packet::PingResp,
        (DISCONNECT, Some(v)) => Packet::Disconnect(decode_disconnect(&mut r, v)?),
        (AUTH, Some(_)) => Packet::Auth(decode_auth(&mut r)?),
        _ => {
            return Err(DecodeError::Malformed(
                "reserved packet type (section 2.1.2)",
            ))
        }
    };
    r.finish()?;
    Ok(Some(packet))
}

/// Validates everything the first byte alone decides, so a bad frame is
/// refused before its body is buffered.
fn check_type_and_flags(kind: u8, flags: u8, version: Option<ProtocolVersion>) -> DResult<()> {
    if kind == 0 {
        return Err(DecodeError::Malformed(
            "reserved packet type 0 (section 2.1.2)",
        ));
    }
    let Some(v) = version else {
        if kind != CONNECT {
            return Err(DecodeError::Protocol(
                "first packet must be CONNECT [MQTT-3.1.0-1]",
            ));
        }
        return check_flags(kind, flags);
    };
    if kind == AUTH && !v.is_v5() {
        return Err(DecodeError::Malformed(
            "reserved packet type 15 in MQTT 3.x (3.1.1 section 2.2.1)",
        ));
    }
    check_flags(kind, flags)
}

fn check_flags(kind: u8, flags: u8) -> DResult<()> {
    match kind {
        PUBLISH => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::Malformed("PUBLISH with QoS 3 [MQTT-3.3.1-4]"));
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(DecodeError::Malformed(
                    "PUBLISH with DUP set and QoS 0 [MQTT-3.3.1-2]",
                ));
            }
            Ok(())
        }
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => {
            if flags != 0b0010 {
                return Err(DecodeError::Malformed(
                    "PUBREL/SUBSCRIBE/UNSUBSCRIBE flags must be 0010 [MQTT-2.2.2-1] [MQTT-2.2.2-2] [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]",
                ));
            }
            Ok(())
        }
        _ => {
            if flags != 0 {
                return Err(DecodeError::Malformed(
                    "reserved fixed header flags must be 0000 [MQTT-2.2.2-1] [MQTT-2.2.2-2]",
                ));
            }
            Ok(())
        }
    }
}

/// A cursor over the body of one frame. Every read is bounds-checked (a
/// short packet is malformed) and every string or binary it returns shares
/// the frame's memory.
#[derive(Debug)]
pub(super) struct Reader {
    /// The bytes not yet consumed; a slice of the frozen frame.
    buf: Bytes,
}

impl Reader {
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn u8(&mut self) -> DResult<u8> {
        if self.buf.is_empty() {
            return Err(TOO_SHORT);
        }
        Ok(self.buf.get_u8())
    }

    pub(super) fn u16(&mut self) -> DResult<u16> {
        if self.buf.len() < 2 {
            return Err(TOO_SHORT);
        }
        Ok(self.buf.get_u16())
    }

    pub(super) fn u32(&mut self) -> DResult<u32> {
        if self.buf.len() < 4 {
            return Err(TOO_SHORT);
        }
        Ok(self.buf.get_u32())
    }

    /// A variable byte integer: at most 4 bytes, minimally encoded
    /// [MQTT-1.5.5-1].
    pub(super) fn varint(&mut self) -> DResult<u32> {
        let mut value: u32 = 0;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    return Err(DecodeError::Malformed(
                        "variable byte integer not minimally encoded [MQTT-1.5.5-1]",
                    ));
                }
                return Ok(value);
            }
        }
        Err(DecodeError::Malformed(
            "variable byte integer longer than 4 bytes (section 1.5.5)",
        ))
    }

    /// `n` bytes, shared with the frame.
    pub(super) fn take(&mut self, n: usize) -> DResult<Bytes> {
        if self.buf.len() < n {
            return Err(TOO_SHORT);
        }
        Ok(self.buf.split_to(n))
    }

    /// Everything left in the frame.
    pub(super) fn rest(&mut self) -> Bytes {
        self.buf.split_off(0)
    }

    /// Binary data: a two-byte length then that many bytes.
    pub(super) fn binary(&mut self) -> DResult<Bytes> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 encoded string: valid UTF-8 without U+0000 [MQTT-1.5.4-1]
    /// [MQTT-1.5.4-2] (3.1.1 [MQTT-1.5.3-1] [MQTT-1.5.3-2]).
    pub(super) fn string(&mut self) -> DResult<ByteString> {
        let bytes = self.binary()?;
        if bytes.contains(&0) {
            return Err(DecodeError::Malformed(
                "string contains U+0000 [MQTT-1.5.4-2]",
            ));
        }
        ByteString::try_from(bytes)
            .map_err(|_| DecodeError::Malformed("string is not valid UTF-8 [MQTT-1.5.4-1]"))
    }

    /// A sub-reader over the next `n` bytes (used for property blocks).
    pub(super) fn sub(&mut self, n: usize) -> DResult<Reader> {
        Ok(Reader { buf: self.take(n)? })
    }

    /// Fails if bytes are left over after the last field.
    pub(super) fn finish(&self) -> DResult<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed(
                "trailing bytes after the packet's last field (remaining length too large)",
            ))
        }
    }
}

/// A non-zero packet identifier [MQTT-2.2.1-3].
fn packet_id(r: &mut Reader) -> DResult<u16> {
    match r.u16()? {
        0 => Err(DecodeError::Protocol("packet identifier 0 [MQTT-2.2.1-3]")),
        id => Ok(id),
    }
}

/// A topic name: no wildcards [MQTT-3.3.2-2] [MQTT-4.7.0-1].
fn check_topic_name(topic: &ByteString) -> DResult<()> {
    if topic.as_bytes().iter().any(|&b| b == b'+' || b == b'#') {
        return Err(DecodeError::TopicNameInvalid(
            "topic name contains a wildcard [MQTT-3.3.2-2]",
        ));
    }
    Ok(())
}

fn decode_connect(r: &mut Reader) -> DResult<Connect> {
    let name = r.binary()?;
    let level = r.u8()?;
    let protocol = match (&name[..], level) {
        (b"MQIsdp", 3) => ProtocolVersion::V3_1,
        (b"MQTT", 4) => ProtocolVersion::V3_1_1,
        (b"MQTT", 5) => ProtocolVersion::V5,
        _ => return Err(DecodeError::UnsupportedProtocol { name, level }),
    };
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::Malformed(
            "CONNECT reserved flag is not 0 [MQTT-3.1.2-3]",
        ));
    }
    let clean_start = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::Malformed(
            "will QoS or will retain set without the will flag [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15]",
        ));
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::Malformed(
        "will QoS 3 [MQTT-3.1.2-14] (5.0 [MQTT-3.1.2-12])",
    ))?;
    if !protocol.is_v5() && password_flag && !username_flag {
        return Err(DecodeError::Malformed(
            "password flag set without user name flag [MQTT-3.1.2-22]",
        ));
    }
    let keep_alive = r.u16()?;
    let properties = if protocol.is_v5() {
        properties::decode_connect(r)?
    } else {
        Default::default()
    };
    let client_id = r.string()?;
    let will = if will_flag {
        let will_properties = if protocol.is_v5() {
            properties::decode_will(r)?
        } else {
            Default::default()
        };
        let topic = r.string()?;
        if topic.is_empty() {
            return Err(DecodeError::TopicNameInvalid(
                "empty will topic [MQTT-4.7.3-1]",
            ));
        }
        check_topic_name(&topic)?;
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties: will_properties,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string()?)
    } else {
        None
    };
    let password = if password_flag {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

fn decode_connack(r: &mut Reader, v: ProtocolVersion) -> DResult<ConnAck> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::Malformed(
            "CONNACK acknowledge flags bits 7-1 are reserved [MQTT-3.2.2-1]",
        ));
    }
    let code = r.u8()?;
    let properties = if v.is_v5() {
        properties::decode_connack(r)?
    } else {
        Default::default()
    };
    Ok(ConnAck {
        session_present: flags & 0x01 != 0,
        code,
        properties,
    })
}

fn decode_publish(
    r: &mut Reader,
    flags: u8,
    v: ProtocolVersion,
    direction: Direction,
) -> DResult<Publish> {
    let qos = QoS::from_u8((flags >> 1) & 0b11)
        .ok_or(DecodeError::Malformed("PUBLISH with QoS 3 [MQTT-3.3.1-4]"))?;
    let topic = r.string()?;
    check_topic_name(&topic)?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(packet_id(r)?)
    };
    let properties = if v.is_v5() {
        let props = properties::decode_publish(r)?;
        if direction == Direction::FromClient && !props.subscription_identifiers.is_empty() {
            return Err(DecodeError::Protocol(
                "PUBLISH from a client carries a subscription identifier [MQTT-3.3.4-6]",
            ));
        }
        if topic.is_empty() && props.topic_alias.is_none() {
            return Err(DecodeError::Protocol(
                "PUBLISH with an empty topic name and no topic alias (5.0 section 3.3.2.1)",
            ));
        }
        props
    } else {
        if topic.is_empty() {
            return Err(DecodeError::TopicNameInvalid(
                "PUBLISH with an empty topic name [MQTT-4.7.3-1]",
            ));
        }
        Default::default()
    };
    let payload = r.rest();
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b0001 != 0,
        topic,
        packet_id,
        properties,
        payload,
    })
}

/// Reason codes a PUBACK / PUBREC may carry (5.0 sections 3.4.2.1, 3.5.2.1).
fn valid_puback_reason(code: u8) -> bool {
    matches!(
        code,
        0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
    )
}

fn decode_pub_resp(r: &mut Reader, v: ProtocolVersion, kind: u8) -> DResult<PubResp> {
    let packet_id = packet_id(r)?;
    if !v.is_v5() || r.is_empty() {
        // 3.x: the packet identifier is the whole body (finish() rejects more);
        // 5.0: remaining length 2 means reason 0 and no properties.
        return Ok(PubResp {
            packet_id,
            ..Default::default()
        });
    }
    let reason = r.u8()?;
    let valid = match kind {
        PUBREL | PUBCOMP => matches!(reason, 0x00 | 0x92),
        _ => valid_puback_reason(reason),
    };
    if !valid {
        return Err(DecodeError::Protocol(
            "invalid reason code for PUBACK/PUBREC/PUBREL/PUBCOMP [MQTT-3.4.2-1] [MQTT-3.5.2-1] [MQTT-3.6.2-1] [MQTT-3.7.2-1]",
        ));
    }
    let properties = if r.is_empty() {
        Default::default()
    } else {
        properties::decode_reason(r)?
    };
    Ok(PubResp {
        packet_id,
        reason,
        properties,
    })
}

fn decode_subscribe(r: &mut Reader, v: ProtocolVersion) -> DResult<Subscribe> {
    let packet_id = packet_id(r)?;
    let properties = if v.is_v5() {
        properties::decode_subscribe(r)?
    } else {
        Default::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let options = r.u8()?;
        let sub = if v.is_v5() {
            if options & 0xC0 != 0 {
                return Err(DecodeError::Malformed(
                    "SUBSCRIBE options reserved bits 7-6 are not 0 [MQTT-3.8.3-5]",
                ));
            }
            let qos = QoS::from_u8(options & 0b11).ok_or(DecodeError::Protocol(
                "SUBSCRIBE maximum QoS 3 (5.0 section 3.8.3.1)",
            ))?;
            let retain_handling = (options >> 4) & 0b11;
            if retain_handling == 3 {
                return Err(DecodeError::Protocol(
                    "SUBSCRIBE retain handling 3 (5.0 section 3.8.3.1)",
                ));
            }
            SubscribeFilter {
                filter,
                qos,
                no_local: options & 0x04 != 0,
                retain_as_published: options & 0x08 != 0,
                retain_handling,
            }
        } else {
            if options & 0xFC != 0 {
                return Err(DecodeError::Malformed(
                    "SUBSCRIBE requested QoS reserved bits are not 0 [MQTT-3.8.3-4]",
                ));
            }
            let qos = QoS::from_u8(options).ok_or(DecodeError::Malformed(
                "SUBSCRIBE requested QoS 3 [MQTT-3.8.3-4]",
            ))?;
            SubscribeFilter {
                filter,
                qos,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            }
        };
        filters.push(sub);
    }
    if filters.is_empty() {
        return Err(DecodeError::Protocol(
            "SUBSCRIBE without a topic filter [MQTT-3.8.3-3]",
        ));
    }
    Ok(Subscribe {
        packet_id,
        properties,
        filters,
    })
}

fn decode_suback(r: &mut Reader, v: ProtocolVersion) -> DResult<SubAck> {
    let packet_id = packet_id(r)?;
    let properties = if v.is_v5() {
        properties::decode_reason(r)?
    } else {
        Default::default()
    };
    let codes = r.rest().to_vec();
    if codes.is_empty() {
        return Err(DecodeError::Protocol(
            "SUBACK without a return code [MQTT-3.9.3-1]",
        ));
    }
    if !v.is_v5()
        && codes
            .iter()
            .any(|c| !matches!(c, 0x00 | 0x01 | 0x02 | 0x80))
    {
        return Err(DecodeError::Malformed(
            "SUBACK return code is reserved [MQTT-3.9.3-2]",
        ));
    }
    Ok(SubAck {
        packet_id,
        properties,
        codes,
    })
}

fn decode_unsubscribe(r: &mut Reader, v: ProtocolVersion) -> DResult<Unsubscribe> {
    let packet_id = packet_id(r)?;
    let user_properties = if v.is_v5() {
        properties::decode_unsubscribe(r)?
    } else {
        Vec::new()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::Protocol(
            "UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]",
        ));
    }
    Ok(Unsubscribe {
        packet_id,
        user_properties,
        filters,
    })
}

fn decode_unsuback(r: &mut Reader, v: ProtocolVersion) -> DResult<UnsubAck> {
    let packet_id = packet_id(r)?;
    if !v.is_v5() {
        return Ok(UnsubAck {
            packet_id,
            properties: Default::default(),
            codes: Vec::new(),
        });
    }
    let properties = properties::decode_reason(r)?;
    let codes = r.rest().to_vec();
    if codes.is_empty() {
        return Err(DecodeError::Protocol(
            "UNSUBACK without a reason code [MQTT-3.11.3-1]",
        ));
    }
    Ok(UnsubAck {
        packet_id,
        properties,
        codes,
    })
}

/// DISCONNECT reason codes (5.0 section 3.14.2.1).
fn valid_disconnect_reason(code: u8) -> bool {
    matches!(code, 0x00 | 0x04 | 0x80..=0x83 | 0x87 | 0x89 | 0x8B | 0x8D..=0x90 | 0x93..=0xA2)
}

fn decode_disconnect(r: &mut Reader, v: ProtocolVersion) -> DResult<Disconnect> {
    // 3.x: no body (finish() rejects one); 5.0 remaining length 0 means
    // reason 0x00 and no properties.
    if !v.is_v5() || r.is_empty() {
        return Ok(Disconnect::default());
    }
    let reason = r.u8()?;
    if !valid_disconnect_reason(reason) {
        return Err(DecodeError::Protocol(
            "invalid DISCONNECT reason code [MQTT-3.14.2-1]",
        ));
    }
    let properties = if r.is_empty() {
        Default::default()
    } else {
        properties::decode_disconnect(r)?
    };
    Ok(Disconnect { reason, properties })
}

fn decode_auth(r: &mut Reader) -> DResult<Auth> {
    if r.is_empty() {
        return Ok(Auth::default());
    }
    let reason = r.u8()?;
    if !matches!(reason, 0x00 | 0x18 | 0x19) {
        return Err(DecodeError::Protocol(
            "invalid AUTH reason code [MQTT-3.15.2-1]",
        ));
    }
    let properties = if r.is_empty() {
        Default::default()
    } else {
        properties::decode_auth(r)?
    };
    Ok(Auth { reason, properties })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::reason;

    const V31: Option<ProtocolVersion> = Some(ProtocolVersion::V3_1);
    const V311: Option<ProtocolVersion> = Some(ProtocolVersion::V3_1_1);
    const V5: Option<ProtocolVersion> = Some(ProtocolVersion::V5);
    const MAX: u32 = 1 << 20;

    /// A frame: `first` byte, remaining length, body.
    fn frame(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        let mut n = body.len();
        loop {
            let mut b = (n & 0x7F) as u8;
            n >>= 7;
            if n > 0 {
                b |= 0x80;
            }
            out.push(b);
            if n == 0 {
                break;
            }
        }
        out.extend_from_slice(body);
        out
    }

    /// A length-prefixed string or binary.
    fn s(v: &[u8]) -> Vec<u8> {
        let mut out = (v.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(v);
        out
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn dec(bytes: &[u8], v: Option<ProtocolVersion>) -> DResult<Option<Packet>> {
        let mut buf = BytesMut::from(bytes);
        decode(&mut buf, v, MAX)
    }

    fn ok(bytes: &[u8], v: Option<ProtocolVersion>) -> Packet {
        let mut buf = BytesMut::from(bytes);
        let p = decode(&mut buf, v, MAX)
            .expect("valid packet")
            .expect("complete packet");
        assert!(buf.is_empty(), "the whole frame is consumed");
        p
    }

    fn err(bytes: &[u8], v: Option<ProtocolVersion>) -> DecodeError {
        dec(bytes, v).expect_err("packet must be refused")
    }

    fn malformed(bytes: &[u8], v: Option<ProtocolVersion>) {
        let e = err(bytes, v);
        assert!(matches!(e, DecodeError::Malformed(_)), "{e:?}");
        assert_eq!(e.reason_code(), reason::MALFORMED_PACKET);
    }

    fn protocol(bytes: &[u8], v: Option<ProtocolVersion>) {
        let e = err(bytes, v);
        assert!(matches!(e, DecodeError::Protocol(_)), "{e:?}");
        assert_eq!(e.reason_code(), reason::PROTOCOL_ERROR);
    }

    fn topic_invalid(bytes: &[u8], v: Option<ProtocolVersion>) {
        let e = err(bytes, v);
        assert!(matches!(e, DecodeError::TopicNameInvalid(_)), "{e:?}");
        assert_eq!(e.reason_code(), reason::TOPIC_NAME_INVALID);
    }

    /// A 3.1.1 CONNECT body with the given flags, then `tail` (the payload).
    fn connect311(flags: u8, tail: &[u8]) -> Vec<u8> {
        frame(0x10, &cat(&[&s(b"MQTT"), &[4, flags, 0, 60], tail]))
    }

    /// A 5.0 CONNECT with the given flags, properties (without length) and payload.
    fn connect5(flags: u8, props: &[u8], tail: &[u8]) -> Vec<u8> {
        frame(
            0x10,
            &cat(&[
                &s(b"MQTT"),
                &[5, flags, 0, 60, props.len() as u8],
                props,
                tail,
            ]),
        )
    }

    /// A 5.0 QoS 0 PUBLISH with the given topic and properties.
    fn publish5(topic: &[u8], props: &[u8]) -> Vec<u8> {
        frame(0x30, &cat(&[&s(topic), &[props.len() as u8], props, b"hi"]))
    }

    // ----- fixed header ----------------------------------------------------

    #[test]
    fn incomplete_frames_consume_nothing() {
        // Statement: an incomplete frame is not an error; nothing is consumed.
        let full = frame(0x30, &cat(&[&s(b"a/b"), b"payload"]));
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(decode(&mut buf, V311, MAX), Ok(None), "cut at {cut}");
            assert_eq!(&buf[..], &full[..cut]);
        }
        assert!(matches!(ok(&full, V311), Packet::Publish(_)));
    }

    #[test]
    fn remaining_length_longer_than_four_bytes_is_malformed() {
        // [MQTT-1.5.5-1] / section 2.1.4: at most four bytes.
        malformed(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], V311);
        // Refused even before the fifth byte arrives.
        malformed(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF], V311);
    }

    #[test]
    fn remaining_length_not_minimal_is_malformed() {
        // [MQTT-1.5.5-1]: the minimum number of bytes must be used.
        malformed(&[0xC0, 0x80, 0x00], V311);
        malformed(&[0xC0, 0x80, 0x80, 0x00], V5);
        // A four-byte encoding of a large length is fine (refused only by size).
        let e = err(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F], V311);
        assert!(matches!(e, DecodeError::PacketTooLarge { .. }));
    }

    #[test]
    fn reserved_packet_types_are_malformed() {
        // Section 2.1.2: type 0 is reserved; in 3.x type 15 is reserved too.
        malformed(&[0x00, 0x00], V311);
        malformed(&[0x00, 0x00], V5);
        malformed(&[0xF0, 0x00], V31);
        malformed(&[0xF0, 0x00], V311);
        assert_eq!(ok(&[0xF0, 0x00], V5), Packet::Auth(Auth::default()));
    }

    #[test]
    fn only_connect_before_connect() {
        // [MQTT-3.1.0-1]: the first packet from the client must be CONNECT.
        protocol(&[0xC0, 0x00], None);
        protocol(&frame(0x30, &cat(&[&s(b"a"), b"x"])), None);
        protocol(&[0xE0, 0x00], None);
        // Refused on the first byte, before anything else is buffered.
        protocol(&[0x82], None);
        let p = ok(&connect311(0x02, &s(b"id")), None);
        assert!(matches!(p, Packet::Connect(c) if c.protocol == ProtocolVersion::V3_1_1));
    }

    #[test]
    fn reserved_fixed_header_flags_are_malformed() {
        // [MQTT-2.2.2-1] [MQTT-2.2.2-2] (3.1.1 [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]).
        for v in [V311, V5] {
            malformed(&frame(0x60, &[0, 1]), v); // PUBREL must be 0010
            malformed(&frame(0x80, &cat(&[&[0, 1], &[0], &s(b"a"), &[0]])), v);
            malformed(&frame(0xA0, &cat(&[&[0, 1], &[0], &s(b"a")])), v);
            malformed(&frame(0x41, &[0, 1]), v); // PUBACK must be 0000
            malformed(&[0xC1, 0x00], v); // PINGREQ
            malformed(&[0xD8, 0x00], v); // PINGRESP
            malformed(&[0xE2, 0x00], v); // DISCONNECT
            malformed(&frame(0x12, &connect311(0, &s(b"id"))[2..]), v); // CONNECT
        }
        assert!(matches!(ok(&frame(0x62, &[0, 1]), V311), Packet::PubRel(_)));
    }

    #[test]
    fn oversize_frame_is_refused_before_it_is_buffered() {
        // Section 3.1.2.11.4 / 3.2.2.3.6: the size limit covers the whole packet.
        let mut buf = BytesMut::from(&[0x30u8, 0x90, 0x4E][..]); // remaining 10000
        let e = decode(&mut buf, V5, 1000).expect_err("too large");
        assert_eq!(
            e,
            DecodeError::PacketTooLarge {
                size: 10003,
                max: 1000
            }
        );
        assert_eq!(e.reason_code(), reason::PACKET_TOO_LARGE);
        // Exactly the limit is accepted: 2 header bytes + 5 body bytes.
        let p = frame(0x30, &cat(&[&s(b"a"), b"xx"]));
        assert_eq!(p.len(), 7);
        let mut buf = BytesMut::from(&p[..]);
        assert!(decode(&mut buf, V311, 7).expect("fits").is_some());
        let mut buf = BytesMut::from(&p[..]);
        assert!(matches!(
            decode(&mut buf, V311, 6),
            Err(DecodeError::PacketTooLarge { size: 7, max: 6 })
        ));
    }

    #[test]
    fn packet_shorter_than_its_fields_is_malformed() {
        // Section 2.1.4: the remaining length must cover every field.
        malformed(&frame(0x40, &[0]), V311); // PUBACK with half a packet id
        malformed(&frame(0x30, &[0, 5, b'a']), V311); // topic longer than frame
        malformed(&connect311(0x80, &s(b"id")), V311); // user name flag, no user name
        malformed(&frame(0x20, &[0]), V311); // CONNACK
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        // Section 2.1.4 / 3.12.1 / 3.14.1: bytes after the last field.
        malformed(&frame(0xC0, &[0]), V311); // PINGREQ remaining length 0
        malformed(&frame(0xD0, &[0]), V5); // PINGRESP
        malformed(&frame(0xE0, &[0]), V311); // 3.x DISCONNECT has no body
        malformed(&frame(0xE0, &[0]), V31);
        malformed(&frame(0x40, &[0, 1, 0]), V311); // 3.x PUBACK is exactly 2
        malformed(&frame(0xB0, &[0, 1, 0]), V311); // 3.x UNSUBACK is exactly 2
        malformed(&frame(0x20, &[0, 0, 0]), V311); // 3.x CONNACK is exactly 2
        malformed(&connect311(0x02, &cat(&[&s(b"id"), &[0]])), None);
    }

    // ----- strings -----------------------------------------------------------

    #[test]
    fn invalid_utf8_is_malformed() {
        // [MQTT-1.5.4-1] (3.1.1 [MQTT-1.5.3-1]): strings are well-formed UTF-8,
        // and encodings of UTF-16 surrogates are not.
        malformed(&frame(0x30, &cat(&[&s(b"a\xFFb"), b"x"])), V311);
        malformed(&frame(0x30, &cat(&[&s(b"\xED\xA0\x80"), b"x"])), V311);
        malformed(&connect311(0x02, &s(b"\xC3")), None);
        malformed(&frame(0xA2, &cat(&[&[0, 1], &s(b"\x80")])), V311);
    }

    #[test]
    fn nul_character_is_malformed() {
        // [MQTT-1.5.4-2] (3.1.1 [MQTT-1.5.3-2]): no U+0000 in strings.
        malformed(&frame(0x30, &cat(&[&s(b"a\0b"), b"x"])), V311);
        malformed(&connect311(0x02, &s(b"id\0")), None);
        malformed(&frame(0x82, &cat(&[&[0, 1], &s(b"a/\0"), &[0]])), V311);
        // ... also inside 5.0 properties (a user property name).
        malformed(&publish5(b"t", &cat(&[&[0x26], &s(b"k\0"), &s(b"v")])), V5);
    }

    // ----- PUBLISH -----------------------------------------------------------

    #[test]
    fn publish_qos_3_is_malformed() {
        // [MQTT-3.3.1-4]: a PUBLISH must not have both QoS bits set.
        malformed(&frame(0x36, &cat(&[&s(b"a"), &[0, 1]])), V311);
        malformed(&[0x36], V5); // decided on the first byte
    }

    #[test]
    fn publish_dup_with_qos_0_is_malformed() {
        // [MQTT-3.3.1-2]: DUP must be 0 for QoS 0 messages.
        malformed(&frame(0x38, &cat(&[&s(b"a"), b"x"])), V311);
        let p = ok(&frame(0x3A, &cat(&[&s(b"a"), &[0, 7], b"x"])), V311);
        assert!(matches!(p, Packet::Publish(p) if p.dup && p.packet_id == Some(7)));
    }

    #[test]
    fn publish_topic_with_wildcards_is_invalid() {
        // [MQTT-3.3.2-2]: the topic name must not contain wildcard characters.
        topic_invalid(&frame(0x30, &cat(&[&s(b"a/+"), b"x"])), V311);
        topic_invalid(&frame(0x30, &cat(&[&s(b"a/#"), b"x"])), V31);
        topic_invalid(&publish5(b"sport/+/x", &[]), V5);
    }

    #[test]
    fn publish_packet_id_zero_is_a_protocol_error() {
        // [MQTT-2.2.1-3]: QoS > 0 PUBLISH carries a non-zero packet identifier.
        protocol(&frame(0x32, &cat(&[&s(b"a"), &[0, 0]])), V311);
        protocol(&frame(0x34, &cat(&[&s(b"a"), &[0, 0], &[0]])), V5);
    }

    #[test]
    fn publish_empty_topic() {
        // [MQTT-4.7.3-1]: a topic name is at least one character (3.x).
        topic_invalid(&frame(0x30, &cat(&[&s(b""), b"x"])), V311);
        // 5.0 section 3.3.2.1: empty topic without a topic alias is a protocol error.
        protocol(&publish5(b"", &[]), V5);
        // ... and fine with one.
        let p = ok(&publish5(b"", &[0x23, 0, 3]), V5);
        assert!(matches!(p, Packet::Publish(p) if p.topic.is_empty()
            && p.properties.topic_alias == Some(3)));
    }

    #[test]
    fn publish_topic_alias_zero_is_a_protocol_error() {
        // [MQTT-3.3.2-8]: a Topic Alias of 0 is not permitted.
        protocol(&publish5(b"a", &[0x23, 0, 0]), V5);
    }

    #[test]
    fn publish_subscription_identifier_from_client_is_a_protocol_error() {
        // [MQTT-3.3.4-6]: a PUBLISH from a client must not carry a subscription id.
        let bytes = publish5(b"a", &[0x0B, 5]);
        protocol(&bytes, V5);
        // A client reading a server's PUBLISH accepts them (repeated even).
        let bytes = publish5(b"a", &[0x0B, 5, 0x0B, 0x80, 0x01]);
        let mut buf = BytesMut::from(&bytes[..]);
        let p = decode_as_client(&mut buf, V5, MAX)
            .expect("valid")
            .expect("complete");
        assert!(matches!(p, Packet::Publish(p)
            if p.properties.subscription_identifiers == vec![5, 128]));
        // Subscription identifier 0 is a protocol error either way.
        let bytes = publish5(b"a", &[0x0B, 0]);
        let mut buf = BytesMut::from(&bytes[..]);
        assert!(matches!(
            decode_as_client(&mut buf, V5, MAX),
            Err(DecodeError::Protocol(_))
        ));
    }

    #[test]
    fn publish_payload_and_topic_share_the_read_buffer() {
        // Zero-copy: the decoded payload and topic point into the frame.
        let bytes = frame(0x33, &cat(&[&s(b"a/b"), &[0x12, 0x34], b"payload!"]));
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(&bytes);
        let start = buf.as_ptr() as usize;
        let end = start + buf.len();
        let Packet::Publish(p) = decode(&mut buf, V311, MAX).expect("ok").expect("complete") else {
            panic!("not a PUBLISH")
        };
        assert_eq!(&p.payload[..], b"payload!");
        assert_eq!(&p.topic[..], "a/b");
        assert_eq!(p.packet_id, Some(0x1234));
        assert!(p.retain && p.qos == QoS::AtLeastOnce && !p.dup);
        let within = |ptr: *const u8| (start..end).contains(&(ptr as usize));
        assert!(within(p.payload.as_ptr()));
        assert!(within(p.topic.as_bytes().as_ptr()));
    }

    #[test]
    fn publish_property_checks() {
        // 5.0 section 3.3.2.3.2: payload format indicator is 0 or 1.
        protocol(&publish5(b"a", &[0x01, 2]), V5);
        // Section 2.2.2.2: an identifier not valid for PUBLISH is malformed.
        malformed(&publish5(b"a", &[0x11, 0, 0, 0, 1]), V5);
        // An unknown identifier is malformed.
        malformed(&publish5(b"a", &[0x00, 1]), V5);
        malformed(&publish5(b"a", &[0x7F, 1]), V5);
        // A property other than user property/subscription id twice: protocol error.
        protocol(&publish5(b"a", &[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]), V5);
        protocol(&publish5(b"a", &[0x23, 0, 1, 0x23, 0, 1]), V5);
        // Response topic is a topic name (no wildcards).
        protocol(&publish5(b"a", &cat(&[&[0x08], &s(b"r/#")])), V5);
        // A property length beyond the packet is malformed.
        malformed(&frame(0x30, &cat(&[&s(b"a"), &[9, 0x01, 1]])), V5);
        // A value cut short by the property length is malformed.
        malformed(&frame(0x30, &cat(&[&s(b"a"), &[2, 0x02, 0], b"xyz"])), V5);
        // User properties repeat and keep their order.
        let p = ok(
            &publish5(
                b"a",
                &cat(&[&[0x26], &s(b"k"), &s(b"1"), &[0x26], &s(b"k"), &s(b"2")]),
            ),
            V5,
        );
        let Packet::Publish(p) = p else {
            panic!("not a PUBLISH")
        };
        assert_eq!(p.properties.user_properties.len(), 2);
        assert_eq!(&p.properties.user_properties[1].1[..], "2");
    }

    #[test]
    fn property_length_is_a_well_formed_variable_byte_integer() {
        // [MQTT-1.5.5-1] / 5.0 section 2.2.2.1: the property length is a minimal
        // variable byte integer of at most four bytes.
        let publish = |len: &[u8]| frame(0x30, &cat(&[&s(b"a"), len, b"x"]));
        malformed(&publish(&[0x80, 0x00]), V5); // non-minimal 0
        malformed(&publish(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]), V5); // five bytes
        malformed(&frame(0x30, &cat(&[&s(b"a"), &[0x80]])), V5); // cut short
    }

    // ----- CONNECT -----------------------------------------------------------

    #[test]
    fn connect_protocol_names_and_levels() {
        // [MQTT-3.1.2-1] [MQTT-3.1.2-2]: name/level pairs MQIsdp/3, MQTT/4, MQTT/5.
        let mqisdp = frame(0x10, &cat(&[&s(b"MQIsdp"), &[3, 0x02, 0, 10], &s(b"id")]));
        assert!(
            matches!(ok(&mqisdp, None), Packet::Connect(c) if c.protocol == ProtocolVersion::V3_1)
        );
        let cases: [(&[u8], u8); 5] = [
            (b"MQTT", 3),
            (b"MQIsdp", 4),
            (b"MQTT", 6),
            (b"MQTX", 4),
            (b"", 4),
        ];
        for (name, level) in cases {
            let bytes = frame(0x10, &cat(&[&s(name), &[level, 0x02, 0, 10], &s(b"id")]));
            let e = err(&bytes, None);
            assert_eq!(
                e,
                DecodeError::UnsupportedProtocol {
                    name: Bytes::copy_from_slice(name),
                    level
                }
            );
            assert_eq!(e.reason_code(), reason::UNSUPPORTED_PROTOCOL_VERSION);
            assert!(
                !e.to_string().contains("MQTX"),
                "no client bytes in messages"
            );
        }
    }

    #[test]
    fn connect_reserved_flag_is_malformed() {
        // [MQTT-3.1.2-3]: the reserved connect flag must be 0.
        malformed(&connect311(0x03, &s(b"id")), None);
        malformed(&connect5(0x01, &[], &s(b"id")), None);
    }

    #[test]
    fn connect_will_qos_or_retain_without_will_flag_is_malformed() {
        // [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15]
        malformed(&connect311(0x08, &s(b"id")), None); // will QoS 1
        malformed(&connect311(0x10, &s(b"id")), None); // will QoS 2
        malformed(&connect311(0x20, &s(b"id")), None); // will retain
        malformed(&connect5(0x20, &[], &s(b"id")), None);
    }

    #[test]
    fn connect_will_qos_3_is_malformed() {
        // [MQTT-3.1.2-14] (5.0 [MQTT-3.1.2-12]).
        let will = cat(&[&s(b"id"), &s(b"w"), &s(b"bye")]);
        malformed(&connect311(0x1C, &will), None);
        let p = ok(&connect311(0x34, &will), None); // will QoS 2 + retain
        let Packet::Connect(c) = p else {
            panic!("not a CONNECT")
        };
        let w = c.will.expect("will present");
        assert_eq!(
            (w.qos, w.retain, &w.topic[..], &w.payload[..]),
            (QoS::ExactlyOnce, true, "w", &b"bye"[..])
        );
    }

    #[test]
    fn connect_password_without_user_name() {
        // [MQTT-3.1.2-22]: 3.x refuses a password without a user name ...
        let tail = cat(&[&s(b"id"), &s(b"pw")]);
        malformed(&connect311(0x42, &tail), None);
        malformed(
            &frame(0x10, &cat(&[&s(b"MQIsdp"), &[3, 0x42, 0, 10], &tail])),
            None,
        );
        // ... 5.0 allows it (section 3.1.2.9).
        let p = ok(&connect5(0x42, &[], &tail), None);
        assert!(matches!(p, Packet::Connect(c) if c.username.is_none()
            && c.password.as_deref() == Some(&b"pw"[..])));
    }

    #[test]
    fn connect_will_topic_must_be_a_topic_name() {
        // [MQTT-4.7.0-1] [MQTT-4.7.3-1]: no wildcards, not empty.
        topic_invalid(
            &connect311(0x06, &cat(&[&s(b"id"), &s(b"w/#"), &s(b"")])),
            None,
        );
        topic_invalid(
            &connect311(0x06, &cat(&[&s(b"id"), &s(b""), &s(b"")])),
            None,
        );
    }

    #[test]
    fn connect_property_checks() {
        // 5.0 section 3.1.2.11: value ranges and single occurrence.
        protocol(&connect5(0x02, &[0x21, 0, 0], &s(b"id")), None); // receive maximum 0
        protocol(&connect5(0x02, &[0x27, 0, 0, 0, 0], &s(b"id")), None); // max packet size 0
        protocol(&connect5(0x02, &[0x17, 2], &s(b"id")), None); // request problem info 2
        protocol(&connect5(0x02, &[0x19, 2], &s(b"id")), None); // request response info 2
        protocol(
            &connect5(0x02, &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1], &s(b"id")),
            None,
        ); // session expiry twice
        protocol(&connect5(0x02, &cat(&[&[0x16], &s(b"d")]), &s(b"id")), None); // auth data, no method
                                                                                // Section 2.2.2.2: identifiers not valid in CONNECT are malformed.
        malformed(&connect5(0x02, &[0x23, 0, 1], &s(b"id")), None); // topic alias
        malformed(&connect5(0x02, &[0x24, 1], &s(b"id")), None); // maximum QoS
        malformed(&connect5(0x02, &[0x2B, 1], &s(b"id")), None); // unknown
                                                                 // Will properties: payload format indicator 0/1 only; identifiers checked.
        let will =
            |props: &[u8]| cat(&[&s(b"id"), &[props.len() as u8], props, &s(b"w"), &s(b"x")]);
        protocol(&connect5(0x06, &[], &will(&[0x01, 2])), None);
        malformed(&connect5(0x06, &[], &will(&[0x11, 0, 0, 0, 1])), None);
        let p = ok(
            &connect5(
                0x06,
                &cat(&[&[0x11, 0, 0, 0, 9, 0x21, 0, 5, 0x15], &s(b"SCRAM")]),
                &will(&[0x18, 0, 0, 0, 30, 0x01, 1]),
            ),
            None,
        );
        let Packet::Connect(c) = p else {
            panic!("not a CONNECT")
        };
        assert_eq!(c.properties.session_expiry_interval, Some(9));
        assert_eq!(c.properties.receive_maximum, Some(5));
        assert_eq!(c.properties.authentication_method.as_deref(), Some("SCRAM"));
        let w = c.will.expect("will");
        assert_eq!(w.properties.will_delay_interval, Some(30));
        assert_eq!(w.properties.payload_format_indicator, Some(1));
    }

    // ----- SUBSCRIBE / UNSUBSCRIBE ---------------------------------------------

    #[test]
    fn subscribe_without_filters_is_a_protocol_error() {
        // [MQTT-3.8.3-3]: at least one topic filter.
        protocol(&frame(0x82, &[0, 1]), V311);
        protocol(&frame(0x82, &[0, 1, 0]), V5);
    }

    #[test]
    fn subscribe_v3_reserved_bits_and_qos_3_are_malformed() {
        // [MQTT-3.8.3-4]: upper six bits reserved, QoS 0..2.
        malformed(&frame(0x82, &cat(&[&[0, 1], &s(b"a"), &[0x04]])), V311);
        malformed(&frame(0x82, &cat(&[&[0, 1], &s(b"a"), &[0x80]])), V31);
        malformed(&frame(0x82, &cat(&[&[0, 1], &s(b"a"), &[0x03]])), V311);
    }

    #[test]
    fn subscribe_v5_option_checks() {
        let sub = |opts: u8| frame(0x82, &cat(&[&[0, 1, 0], &s(b"a"), &[opts]]));
        // [MQTT-3.8.3-5]: reserved bits 6-7 must be 0 (malformed).
        malformed(&sub(0x40), V5);
        malformed(&sub(0x80), V5);
        // 5.0 section 3.8.3.1: retain handling 3 and QoS 3 are protocol errors.
        protocol(&sub(0x30), V5);
        protocol(&sub(0x03), V5);
        let Packet::Subscribe(s) = ok(&sub(0x2E), V5) else {
            panic!("not a SUBSCRIBE")
        };
        let f = &s.filters[0];
        assert_eq!(
            (f.qos, f.no_local, f.retain_as_published, f.retain_handling),
            (QoS::ExactlyOnce, true, true, 2)
        );
    }

    #[test]
    fn subscribe_subscription_identifier_checks() {
        // 5.0 section 3.8.2.1.2: identifier 0 and a repeated identifier are protocol errors.
        let sub = |props: &[u8]| {
            frame(
                0x82,
                &cat(&[&[0, 1, props.len() as u8], props, &s(b"a"), &[1]]),
            )
        };
        protocol(&sub(&[0x0B, 0]), V5);
        protocol(&sub(&[0x0B, 1, 0x0B, 2]), V5);
        // Non-minimal variable byte integer [MQTT-1.5.5-1].
        malformed(&sub(&[0x0B, 0x81, 0x00]), V5);
        malformed(&sub(&[0x23, 0, 1]), V5); // topic alias not valid in SUBSCRIBE
        let Packet::Subscribe(s) = ok(&sub(&[0x0B, 0xFF, 0xFF, 0xFF, 0x7F]), V5) else {
            panic!("not a SUBSCRIBE")
        };
        assert_eq!(s.properties.subscription_identifier, Some(268_435_455));
    }

    #[test]
    fn subscribe_packet_id_zero_is_a_protocol_error() {
        // [MQTT-2.2.1-3]: SUBSCRIBE and UNSUBSCRIBE carry a non-zero packet identifier.
        protocol(&frame(0x82, &cat(&[&[0, 0], &s(b"a"), &[0]])), V311);
        protocol(&frame(0xA2, &cat(&[&[0, 0], &s(b"a")])), V311);
    }

    #[test]
    fn subscribe_filters_are_not_validated_by_the_codec() {
        // The broker answers a bad filter with a SUBACK failure code (section 4.7).
        let Packet::Subscribe(s) = ok(
            &frame(0x82, &cat(&[&[0, 1], &s(b"a/#/b"), &[1], &s(b""), &[0]])),
            V311,
        ) else {
            panic!("not a SUBSCRIBE")
        };
        assert_eq!(s.filters.len(), 2);
        assert_eq!(&s.filters[0].filter[..], "a/#/b");
    }

    #[test]
    fn unsubscribe_without_filters_is_a_protocol_error() {
        // [MQTT-3.10.3-2]: at least one topic filter.
        protocol(&frame(0xA2, &[0, 1]), V311);
        protocol(&frame(0xA2, &[0, 1, 0]), V5);
        malformed(&frame(0xA2, &cat(&[&[0, 1, 2, 0x1F, 0], &s(b"a")])), V5); // reason string
    }

    // ----- acknowledgements, DISCONNECT, AUTH -----------------------------------

    #[test]
    fn v5_short_forms_mean_success() {
        // 5.0 sections 3.4.2.1, 3.14.2.1, 3.15.2.1: omitted reason = 0, no properties.
        assert_eq!(
            ok(&frame(0x40, &[0, 9]), V5),
            Packet::PubAck(PubResp {
                packet_id: 9,
                ..Default::default()
            })
        );
        let Packet::PubRec(r) = ok(&frame(0x50, &[0, 9, 0x10]), V5) else {
            panic!("not a PUBREC")
        };
        assert_eq!(r.reason, 0x10);
        assert_eq!(
            ok(&[0xE0, 0], V5),
            Packet::Disconnect(Disconnect::default())
        );
        let Packet::Disconnect(d) = ok(&[0xE0, 1, 0x04], V5) else {
            panic!("not a DISCONNECT")
        };
        assert_eq!(d.reason, 0x04);
        assert_eq!(ok(&[0xF0, 0], V5), Packet::Auth(Auth::default()));
    }

    #[test]
    fn invalid_reason_codes_are_protocol_errors() {
        // [MQTT-3.4.2-1] [MQTT-3.6.2-1] [MQTT-3.14.2-1] [MQTT-3.15.2-1]
        protocol(&frame(0x40, &[0, 1, 0x05]), V5);
        protocol(&frame(0x62, &[0, 1, 0x10]), V5); // PUBREL allows only 0x00/0x92
        protocol(&frame(0xE0, &[0x01]), V5);
        protocol(&frame(0xF0, &[0x01]), V5);
    }

    #[test]
    fn disconnect_and_auth_properties() {
        // 5.0 sections 3.14.2.2 and 3.15.2.2.
        let d = frame(
            0xE0,
            &cat(&[&[0x04, 10, 0x11, 0, 0, 0, 60, 0x1F], &s(b"ok")]),
        );
        let Packet::Disconnect(d) = ok(&d, V5) else {
            panic!("not a DISCONNECT")
        };
        assert_eq!(d.properties.session_expiry_interval, Some(60));
        assert_eq!(d.properties.reason_string.as_deref(), Some("ok"));
        malformed(&frame(0xE0, &[0x00, 2, 0x21, 0, 1]), V5); // receive maximum
        protocol(&frame(0xF0, &cat(&[&[0x18, 4, 0x16], &s(b"x")])), V5); // data without method
    }

    #[test]
    fn server_packets_decode_for_clients() {
        // CONNACK [MQTT-3.2.2-1] reserved bits, SUBACK [MQTT-3.9.3-2] return codes.
        assert_eq!(
            ok(&frame(0x20, &[1, 0]), V311),
            Packet::ConnAck(ConnAck {
                session_present: true,
                code: 0,
                properties: Default::default()
            })
        );
        malformed(&frame(0x20, &[2, 0]), V311);
        let Packet::ConnAck(c) = ok(&frame(0x20, &[0, 0x84, 2, 0x24, 1]), V5) else {
            panic!("not a CONNACK")
        };
        assert_eq!((c.code, c.properties.maximum_qos), (0x84, Some(1)));
        protocol(&frame(0x20, &[0, 0, 2, 0x24, 2]), V5); // maximum QoS 2
        let Packet::SubAck(s) = ok(&frame(0x90, &[0, 1, 0, 1, 0x80]), V311) else {
            panic!("not a SUBACK")
        };
        assert_eq!(s.codes, vec![0, 1, 0x80]);
        malformed(&frame(0x90, &[0, 1, 3]), V311);
        let Packet::UnsubAck(u) = ok(&frame(0xB0, &[0, 1, 0, 0x11]), V5) else {
            panic!("not an UNSUBACK")
        };
        assert_eq!(u.codes, vec![0x11]);
        assert_eq!(ok(&[0xD0, 0], V311), Packet::PingResp);
    }

    #[test]
    fn several_packets_in_one_buffer_decode_in_order() {
        let mut bytes = frame(0x30, &cat(&[&s(b"a"), b"1"]));
        bytes.extend_from_slice(&[0xC0, 0]);
        bytes.extend_from_slice(&frame(0x30, &cat(&[&s(b"b"), b"2"]))[..3]);
        let mut buf = BytesMut::from(&bytes[..]);
        assert!(matches!(
            decode(&mut buf, V311, MAX),
            Ok(Some(Packet::Publish(_)))
        ));
        assert_eq!(decode(&mut buf, V311, MAX), Ok(Some(Packet::PingReq)));
        assert_eq!(decode(&mut buf, V311, MAX), Ok(None));
        assert_eq!(buf.len(), 3);
    }
}
