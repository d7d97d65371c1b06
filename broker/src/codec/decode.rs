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
