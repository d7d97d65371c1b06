//! A minimal, strict decoder of what a broker sends: CONNACK, PUBLISH, the
//! acknowledgements, SUBACK, UNSUBACK, PINGRESP, DISCONNECT and AUTH.
//!
//! It is strict on purpose: a broker that sends a packet with wrong fixed
//! header flags, a bad length or a bad property fails the test that reads it
//! (`[MQTT-2.2.2-1]`, `[MQTT-1.5.4-1]`, ...). An incomplete frame is
//! `Ok(None)`, not an error.

use crate::wire::{kind, Version};

/// Why bytes from the broker are not a well-formed packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("Remaining Length uses more than four bytes (section 1.5.5)")]
    RemainingLength,
    #[error("Remaining Length not encoded in the minimum number of bytes [MQTT-1.5.5-1 (5.0)]")]
    NonMinimalLength,
    #[error("packet type {0} is not one a server sends")]
    UnexpectedType(u8),
    #[error("fixed header flags {flags:#06b} are wrong for packet type {kind} [MQTT-2.2.2-1]")]
    Flags { kind: u8, flags: u8 },
    #[error("packet type {kind} is truncated or longer than its fields: {detail}")]
    Length { kind: u8, detail: &'static str },
    #[error("string is not well-formed UTF-8 [MQTT-1.5.4-1]")]
    Utf8,
    #[error("string contains U+0000 [MQTT-1.5.4-2]")]
    NullChar,
    #[error("property {0:#04x} is unknown or not allowed in packet type {1}")]
    Property(u8, u8),
    #[error("property {0:#04x} appears more than once (a Protocol Error, section 2.2.2.2)")]
    DuplicateProperty(u8),
    #[error("PUBLISH has QoS 3 [MQTT-3.3.1-4]")]
    Qos3,
    #[error("PUBLISH with QoS > 0 has packet identifier 0 [MQTT-2.2.1-3]")]
    ZeroPacketId,
}

/// A property value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    Int(u32),
    Str(String),
    Bin(Vec<u8>),
    Pair(String, String),
}

/// The properties of a 5.0 packet, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties(pub Vec<(u8, PropValue)>);

impl Properties {
    /// The integer value of the first property `id`.
    pub fn int(&self, id: u8) -> Option<u32> {
        self.0.iter().find_map(|(i, v)| match v {
            PropValue::Int(n) if *i == id => Some(*n),
            _ => None,
        })
    }

    /// All integer values of property `id` (Subscription Identifier repeats).
    pub fn ints(&self, id: u8) -> Vec<u32> {
        self.0
            .iter()
            .filter_map(|(i, v)| match v {
                PropValue::Int(n) if *i == id => Some(*n),
                _ => None,
            })
            .collect()
    }

    /// The string value of property `id`.
    pub fn str(&self, id: u8) -> Option<&str> {
        self.0.iter().find_map(|(i, v)| match v {
            PropValue::Str(s) if *i == id => Some(s.as_str()),
            _ => None,
        })
    }

    /// The binary value of property `id`.
    pub fn bin(&self, id: u8) -> Option<&[u8]> {
        self.0.iter().find_map(|(i, v)| match v {
            PropValue::Bin(b) if *i == id => Some(b.as_slice()),
            _ => None,
        })
    }

    /// All user properties, in order.
    pub fn user(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter_map(|(_, v)| match v {
                PropValue::Pair(k, v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }

    /// True when property `id` is present.
    pub fn has(&self, id: u8) -> bool {
        self.0.iter().any(|(i, _)| *i == id)
    }
}

/// A PUBLISH as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub pid: Option<u16>,
    pub props: Properties,
    pub payload: Vec<u8>,
}

/// A packet a broker sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connack {
        session_present: bool,
        code: u8,
        props: Properties,
    },
    Publish(Msg),
    /// PUBACK, PUBREC, PUBREL or PUBCOMP (`kind` from [`kind`]).
    Ack {
        kind: u8,
        pid: u16,
        code: u8,
        props: Properties,
    },
    Suback {
        pid: u16,
        codes: Vec<u8>,
        props: Properties,
    },
    Unsuback {
        pid: u16,
        /// 5.0 only; empty for 3.1.1.
        codes: Vec<u8>,
        props: Properties,
    },
    Pingresp,
    Disconnect {
        code: u8,
        props: Properties,
    },
    Auth {
        code: u8,
        props: Properties,
    },
}

impl Packet {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connack { .. } => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::Ack { kind: k, .. } => match *k {
                kind::PUBACK => "PUBACK",
                kind::PUBREC => "PUBREC",
                kind::PUBREL => "PUBREL",
                _ => "PUBCOMP",
            },
            Packet::Suback { .. } => "SUBACK",
            Packet::Unsuback { .. } => "UNSUBACK",
            Packet::Pingresp => "PINGRESP",
            Packet::Disconnect { .. } => "DISCONNECT",
            Packet::Auth { .. } => "AUTH",
        }
    }
}

/// Field reader over one packet body.
struct Reader<'a> {
    kind: u8,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn short(&self, detail: &'static str) -> DecodeError {
        DecodeError::Length {
            kind: self.kind,
            detail,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(self.short("byte"))?;
        self.pos += 1;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let s = self.take(2, "two-byte integer")?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let s = self.take(4, "four-byte integer")?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.short(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4 {
            let b = self.u8()?;
            value |= u32::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::RemainingLength)
    }

    fn binary(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.u16()? as usize;
        Ok(self.take(n, "string or binary data")?.to_vec())
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.binary()?;
        let s = String::from_utf8(b).map_err(|_| DecodeError::Utf8)?;
        if s.contains('\0') {
            return Err(DecodeError::NullChar);
        }
        Ok(s)
    }

    fn props(&mut self) -> Result<Properties, DecodeError> {
        let len = self.varint()? as usize;
        let block = self.take(len, "property block")?;
        let mut r = Reader {
            kind: self.kind,
            buf: block,
            pos: 0,
        };
        let mut out = Properties::default();
        while r.remaining() > 0 {
            let id = r.u8()?;
            let v = match id {
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => {
                    PropValue::Int(u32::from(r.u8()?))
                }
                0x13 | 0x21 | 0x22 | 0x23 => PropValue::Int(u32::from(r.u16()?)),
                0x02 | 0x11 | 0x18 | 0x27 => PropValue::Int(r.u32()?),
                0x0B => PropValue::Int(r.varint()?),
                0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => PropValue::Str(r.string()?),
                0x09 | 0x16 => PropValue::Bin(r.binary()?),
                0x26 => PropValue::Pair(r.string()?, r.string()?),
                _ => return Err(DecodeError::Property(id, self.kind)),
            };
            // Only User Property and (in PUBLISH) Subscription Identifier
            // may repeat.
            let may_repeat = id == 0x26 || (id == 0x0B && self.kind == kind::PUBLISH);
            if !may_repeat && out.has(id) {
                return Err(DecodeError::DuplicateProperty(id));
            }
            out.0.push((id, v));
        }
        Ok(out)
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(self.short("bytes left after the last field"));
        }
        Ok(())
    }
}

/// Decodes one packet from the front of `buf`. `Ok(None)` means the frame is
/// not complete yet; otherwise returns the packet and the bytes it used.
pub fn decode(v: Version, buf: &[u8]) -> Result<Option<(Packet, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    let mut i = 1usize;
    loop {
        if i > 4 {
            return Err(DecodeError::RemainingLength);
        }
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7F) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 {
            if b == 0 && i > 2 {
                return Err(DecodeError::NonMinimalLength);
            }
            break;
        }
    }
    if buf.len() < i + len {
        return Ok(None);
    }
    let body = &buf[i..i + len];
    let packet = decode_body(v, first, body)?;
    Ok(Some((packet, i + len)))
}

fn decode_body(v: Version, first: u8, body: &[u8]) -> Result<Packet, DecodeError> {
    let k = first >> 4;
    let flags = first & 0x0F;
    let expected_flags = match k {
        kind::PUBLISH => flags,
        kind::PUBREL => 0x02,
        kind::CONNACK
        | kind::PUBACK
        | kind::PUBREC
        | kind::PUBCOMP
        | kind::SUBACK
        | kind::UNSUBACK
        | kind::PINGRESP
        | kind::DISCONNECT
        | kind::AUTH => 0,
        other => return Err(DecodeError::UnexpectedType(other)),
    };
    if flags != expected_flags {
        return Err(DecodeError::Flags { kind: k, flags });
    }
    if k == kind::AUTH && !v.is_v5() {
        return Err(DecodeError::UnexpectedType(k));
    }
    let mut r = Reader {
        kind: k,
        buf: body,
        pos: 0,
    };
    let p = match k {
        kind::CONNACK => {
            let ack_flags = r.u8()?;
            if ack_flags & 0xFE != 0 {
                return Err(DecodeError::Flags {
                    kind: k,
                    flags: ack_flags,
                });
            }
            let code = r.u8()?;
            let props = if v.is_v5() {
                r.props()?
            } else {
                Properties::default()
            };
            Packet::Connack {
                session_present: ack_flags & 1 == 1,
                code,
                props,
            }
        }
        kind::PUBLISH => {
            let qos = (flags >> 1) & 0x03;
            if qos == 3 {
                return Err(DecodeError::Qos3);
            }
            let topic = r.string()?;
            let pid = if qos > 0 {
                let p = r.u16()?;
                if p == 0 {
                    return Err(DecodeError::ZeroPacketId);
                }
                Some(p)
            } else {
                None
            };
            let props = if v.is_v5() {
                r.props()?
            } else {
                Properties::default()
            };
            let payload = body[r.pos..].to_vec();
            r.pos = body.len();
            Packet::Publish(Msg {
                dup: flags & 0x08 != 0,
                qos,
                retain: flags & 0x01 != 0,
                topic,
                pid,
                props,
                payload,
            })
        }
        kind::PUBACK | kind::PUBREC | kind::PUBREL | kind::PUBCOMP => {
            let pid = r.u16()?;
            let (code, props) = if v.is_v5() && r.remaining() > 0 {
                let c = r.u8()?;
                let p = if r.remaining() > 0 {
                    r.props()?
                } else {
                    Properties::default()
                };
                (c, p)
            } else {
                (0, Properties::default())
            };
            Packet::Ack {
                kind: k,
                pid,
                code,
                props,
            }
        }
        kind::SUBACK => {
            let pid = r.u16()?;
            let props = if v.is_v5() {
                r.props()?
            } else {
                Properties::default()
            };
            let codes = body[r.pos..].to_vec();
            r.pos = body.len();
            if codes.is_empty() {
                return Err(r.short("SUBACK without return codes"));
            }
            Packet::Suback { pid, codes, props }
        }
        kind::UNSUBACK => {
            let pid = r.u16()?;
            let (props, codes) = if v.is_v5() {
                let p = r.props()?;
                let c = body[r.pos..].to_vec();
                r.pos = body.len();
                (p, c)
            } else {
                (Properties::default(), Vec::new())
            };
            Packet::Unsuback { pid, codes, props }
        }
        kind::PINGRESP => Packet::Pingresp,
        kind::DISCONNECT => {
            let (code, props) = if v.is_v5() && r.remaining() > 0 {
                let c = r.u8()?;
                let p = if r.remaining() > 0 {
                    r.props()?
                } else {
                    Properties::default()
                };
                (c, p)
            } else {
                (0, Properties::default())
            };
            Packet::Disconnect { code, props }
        }
        _ => {
            let (code, props) = if r.remaining() > 0 {
                let c = r.u8()?;
                (c, r.props()?)
            } else {
                (0, Properties::default())
            };
            Packet::Auth { code, props }
        }
    };
    r.end()?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_frames_are_none_not_errors() {
        assert_eq!(decode(Version::V311, &[]), Ok(None));
        assert_eq!(decode(Version::V311, &[0x20]), Ok(None));
        assert_eq!(decode(Version::V311, &[0x20, 2, 0]), Ok(None));
        assert_eq!(decode(Version::V311, &[0x30, 0x80]), Ok(None));
    }

    #[test]
    fn connack_311_and_5() {
        let (p, n) = decode(Version::V311, &[0x20, 2, 1, 0]).unwrap().unwrap();
        assert_eq!(n, 4);
        assert_eq!(
            p,
            Packet::Connack {
                session_present: true,
                code: 0,
                props: Properties::default()
            }
        );
        let bytes = [0x20, 6, 0, 0, 3, 0x21, 0, 10, 0xFF];
        let (p, n) = decode(Version::V5, &bytes).unwrap().unwrap();
        assert_eq!(n, 8);
        match p {
            Packet::Connack { props, .. } => assert_eq!(props.int(0x21), Some(10)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn wrong_flags_are_rejected_per_mqtt_2_2_2_1() {
        assert!(matches!(
            decode(Version::V311, &[0x60, 2, 0, 1]),
            Err(DecodeError::Flags { .. })
        ));
        assert!(matches!(
            decode(Version::V311, &[0x41, 2, 0, 1]),
            Err(DecodeError::Flags { .. })
        ));
        assert_eq!(
            decode(Version::V311, &[0x36, 5, 0, 1, b'a', 0, 1]),
            Err(DecodeError::Qos3)
        );
    }

    #[test]
    fn publish_5_with_subscription_ids_and_payload() {
        let body = [0, 1, b't', 0, 5, 4, 0x0B, 1, 0x0B, 2, b'h', b'i'];
        let mut bytes = vec![0x33, body.len() as u8];
        bytes.extend_from_slice(&body);
        let (p, _) = decode(Version::V5, &bytes).unwrap().unwrap();
        match p {
            Packet::Publish(Msg {
                qos,
                pid,
                props,
                payload,
                retain,
                ..
            }) => {
                assert_eq!(qos, 1);
                assert!(retain);
                assert_eq!(pid, Some(5));
                assert_eq!(props.ints(0x0B), vec![1, 2]);
                assert_eq!(payload, b"hi");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn short_acks_and_disconnects_in_5_default_to_success() {
        let (p, _) = decode(Version::V5, &[0x40, 2, 0, 9]).unwrap().unwrap();
        assert_eq!(
            p,
            Packet::Ack {
                kind: kind::PUBACK,
                pid: 9,
                code: 0,
                props: Properties::default()
            }
        );
        let (p, _) = decode(Version::V5, &[0xE0, 0]).unwrap().unwrap();
        assert_eq!(
            p,
            Packet::Disconnect {
                code: 0,
                props: Properties::default()
            }
        );
    }

    #[test]
    fn non_minimal_remaining_length_is_rejected() {
        assert_eq!(
            decode(Version::V5, &[0xD0, 0x80, 0x00]),
            Err(DecodeError::NonMinimalLength)
        );
    }

    #[test]
    fn trailing_bytes_and_bad_utf8_are_errors() {
        assert!(matches!(
            decode(Version::V311, &[0xD0, 1, 0]),
            Err(DecodeError::Length { .. })
        ));
        assert_eq!(
            decode(Version::V311, &[0x30, 4, 0, 2, 0xC3, 0x28]),
            Err(DecodeError::Utf8)
        );
    }
}
