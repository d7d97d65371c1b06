//! The suite's own packet encoder: every byte a test sends is built here by
//! hand, never by a broker's codec, so a codec bug cannot hide itself.
//!
//! The builders produce well-formed packets; malformed tests start from them
//! and corrupt bytes, or use [`frame`] and the field helpers directly.

/// Protocol version a test speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// MQTT 3.1.1, protocol level 4.
    V311,
    /// MQTT 5.0, protocol level 5.
    V5,
}

impl Version {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Version::V311 => 4,
            Version::V5 => 5,
        }
    }

    /// True for 5.0, the only version with properties and reason codes.
    pub fn is_v5(self) -> bool {
        self == Version::V5
    }

    /// The label used in test keys and on the command line.
    pub fn label(self) -> &'static str {
        match self {
            Version::V311 => "3.1.1",
            Version::V5 => "5",
        }
    }
}

/// Packet type numbers (the high nibble of the first byte).
pub mod kind {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
    pub const AUTH: u8 = 15;
}

/// Property identifiers (MQTT 5.0 section 2.2.2.2).
pub mod prop {
    pub const PAYLOAD_FORMAT: u8 = 0x01;
    pub const MESSAGE_EXPIRY: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_ID: u8 = 0x0B;
    pub const SESSION_EXPIRY: u8 = 0x11;
    pub const ASSIGNED_CLIENT_ID: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTH_METHOD: u8 = 0x15;
    pub const AUTH_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFO: u8 = 0x17;
    pub const WILL_DELAY: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFO: u8 = 0x19;
    pub const RESPONSE_INFO: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_ID_AVAILABLE: u8 = 0x29;
    pub const SHARED_AVAILABLE: u8 = 0x2A;
}

/// Encodes a Variable Byte Integer (section 1.5.5 / 2.2.3). Values above
/// 268_435_455 cannot be encoded; callers pass protocol values only.
pub fn varint(mut n: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(4);
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return out;
        }
    }
}

/// A two-byte-length-prefixed UTF-8 string, from raw bytes so tests can send
/// ill-formed UTF-8.
pub fn string_bytes(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
    out
}

/// A two-byte-length-prefixed UTF-8 string.
pub fn string(s: &str) -> Vec<u8> {
    string_bytes(s.as_bytes())
}

/// Frames a body: first byte, Remaining Length, body.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len() as u32));
    out.extend_from_slice(body);
    out
}

/// A property block under construction (5.0). For 3.1.1 it encodes to
/// nothing, so builders can take properties regardless of version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props {
    /// Encoded properties without the length prefix, in insertion order.
    bytes: Vec<u8>,
}

impl Props {
    /// An empty block.
    pub fn new() -> Props {
        Props::default()
    }

    /// Adds a one-byte property.
    pub fn byte(mut self, id: u8, v: u8) -> Props {
        self.bytes.push(id);
        self.bytes.push(v);
        self
    }

    /// Adds a two-byte-integer property.
    pub fn u16(mut self, id: u8, v: u16) -> Props {
        self.bytes.push(id);
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Adds a four-byte-integer property.
    pub fn u32(mut self, id: u8, v: u32) -> Props {
        self.bytes.push(id);
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Adds a variable-byte-integer property.
    pub fn varint(mut self, id: u8, v: u32) -> Props {
        self.bytes.push(id);
        self.bytes.extend(varint(v));
        self
    }

    /// Adds a UTF-8 string property.
    pub fn string(mut self, id: u8, v: &str) -> Props {
        self.bytes.push(id);
        self.bytes.extend(string(v));
        self
    }

    /// Adds a binary-data property.
    pub fn binary(mut self, id: u8, v: &[u8]) -> Props {
        self.bytes.push(id);
        self.bytes.extend(string_bytes(v));
        self
    }

    /// Adds a user property (a string pair).
    pub fn user(mut self, k: &str, v: &str) -> Props {
        self.bytes.push(prop::USER_PROPERTY);
        self.bytes.extend(string(k));
        self.bytes.extend(string(v));
        self
    }

    /// Appends raw bytes to the block (for malformed properties).
    pub fn raw(mut self, b: &[u8]) -> Props {
        self.bytes.extend_from_slice(b);
        self
    }

    /// Property Length followed by the properties, or nothing for 3.1.1.
    pub fn encode(&self, v: Version) -> Vec<u8> {
        if !v.is_v5() {
            return Vec::new();
        }
        let mut out = varint(self.bytes.len() as u32);
        out.extend_from_slice(&self.bytes);
        out
    }
}

/// A Will message in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    /// Will properties (5.0 only).
    pub props: Props,
}

/// A CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub version: Version,
    pub client_id: String,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean: bool,
    pub keep_alive: u16,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    pub props: Props,
}

impl Connect {
    /// A clean CONNECT with keep alive 60 s and nothing optional.
    pub fn new(version: Version, client_id: &str) -> Connect {
        Connect {
            version,
            client_id: client_id.to_owned(),
            clean: true,
            keep_alive: 60,
            will: None,
            username: None,
            password: None,
            props: Props::new(),
        }
    }

    /// The Connect Flags byte these fields produce.
    pub fn flags(&self) -> u8 {
        let mut f = 0u8;
        if self.clean {
            f |= 0x02;
        }
        if let Some(w) = &self.will {
            f |= 0x04 | ((w.qos & 0x03) << 3);
            if w.retain {
                f |= 0x20;
            }
        }
        if self.password.is_some() {
            f |= 0x40;
        }
        if self.username.is_some() {
            f |= 0x80;
        }
        f
    }

    /// Encodes with the given Connect Flags byte instead of the derived one
    /// (malformed tests set reserved or inconsistent flags this way).
    pub fn encode_with_flags(&self, flags: u8) -> Vec<u8> {
        let mut body = string("MQTT");
        body.push(self.version.level());
        body.push(flags);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        body.extend(self.props.encode(self.version));
        body.extend(string(&self.client_id));
        if let Some(w) = &self.will {
            body.extend(w.props.encode(self.version));
            body.extend(string(&w.topic));
            body.extend(string_bytes(&w.payload));
        }
        if let Some(u) = &self.username {
            body.extend(string(u));
        }
        if let Some(p) = &self.password {
            body.extend(string_bytes(p));
        }
        frame(kind::CONNECT << 4, &body)
    }

    /// Encodes the packet.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_flags(self.flags())
    }
}

/// A PUBLISH packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    /// Present for QoS 1 and 2.
    pub pid: Option<u16>,
    pub payload: Vec<u8>,
    pub props: Props,
}

impl Publish {
    /// A QoS 0 publish; set `qos` and `pid` for higher levels.
    pub fn new(topic: &str, payload: &[u8]) -> Publish {
        Publish {
            topic: topic.to_owned(),
            qos: 0,
            retain: false,
            dup: false,
            pid: None,
            payload: payload.to_vec(),
            props: Props::new(),
        }
    }

    /// Sets QoS and packet identifier.
    pub fn qos(mut self, qos: u8, pid: u16) -> Publish {
        self.qos = qos;
        self.pid = if qos > 0 { Some(pid) } else { None };
        self
    }

    /// Sets the RETAIN flag.
    pub fn retain(mut self, r: bool) -> Publish {
        self.retain = r;
        self
    }

    /// Sets the properties.
    pub fn props(mut self, p: Props) -> Publish {
        self.props = p;
        self
    }

    /// The first byte these flags produce.
    pub fn first_byte(&self) -> u8 {
        (kind::PUBLISH << 4)
            | (u8::from(self.dup) << 3)
            | ((self.qos & 0x03) << 1)
            | u8::from(self.retain)
    }

    /// Encodes the packet for `v`.
    pub fn encode(&self, v: Version) -> Vec<u8> {
        let mut body = string(&self.topic);
        if let Some(pid) = self.pid {
            body.extend_from_slice(&pid.to_be_bytes());
        }
        body.extend(self.props.encode(v));
        body.extend_from_slice(&self.payload);
        frame(self.first_byte(), &body)
    }
}

/// SUBSCRIBE: `filters` are (filter, options byte); for 3.1.1 the options
/// byte is the requested QoS.
pub fn subscribe(v: Version, pid: u16, filters: &[(&str, u8)], props: &Props) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend(props.encode(v));
    for (f, o) in filters {
        body.extend(string(f));
        body.push(*o);
    }
    frame((kind::SUBSCRIBE << 4) | 0x02, &body)
}

/// UNSUBSCRIBE.
pub fn unsubscribe(v: Version, pid: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend(Props::new().encode(v));
    for f in filters {
        body.extend(string(f));
    }
    frame((kind::UNSUBSCRIBE << 4) | 0x02, &body)
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP (`k` from [`kind`]), success code.
pub fn ack(k: u8, pid: u16) -> Vec<u8> {
    let flags = if k == kind::PUBREL { 0x02 } else { 0x00 };
    frame((k << 4) | flags, &pid.to_be_bytes())
}

/// An acknowledgement with an explicit reason code (5.0).
pub fn ack_reason(k: u8, pid: u16, reason: u8) -> Vec<u8> {
    let flags = if k == kind::PUBREL { 0x02 } else { 0x00 };
    let mut body = pid.to_be_bytes().to_vec();
    body.push(reason);
    frame((k << 4) | flags, &body)
}

/// PINGREQ.
pub fn pingreq() -> Vec<u8> {
    vec![kind::PINGREQ << 4, 0]
}

/// DISCONNECT: for 5.0 with the given reason code and properties; for 3.1.1
/// always the two-byte form.
pub fn disconnect(v: Version, reason: u8, props: &Props) -> Vec<u8> {
    if !v.is_v5() {
        return vec![kind::DISCONNECT << 4, 0];
    }
    let mut body = vec![reason];
    body.extend(props.encode(v));
    frame(kind::DISCONNECT << 4, &body)
}

/// Subscription options byte (5.0 section 3.8.3.1): QoS, No Local, Retain As
/// Published, Retain Handling.
pub fn sub_opts(qos: u8, no_local: bool, rap: bool, retain_handling: u8) -> u8 {
    qos | (u8::from(no_local) << 2) | (u8::from(rap) << 3) | (retain_handling << 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_boundaries_match_the_table_in_section_1_5_5() {
        assert_eq!(varint(0), vec![0x00]);
        assert_eq!(varint(127), vec![0x7F]);
        assert_eq!(varint(128), vec![0x80, 0x01]);
        assert_eq!(varint(16_383), vec![0xFF, 0x7F]);
        assert_eq!(varint(16_384), vec![0x80, 0x80, 0x01]);
        assert_eq!(varint(2_097_151), vec![0xFF, 0xFF, 0x7F]);
        assert_eq!(varint(2_097_152), vec![0x80, 0x80, 0x80, 0x01]);
        assert_eq!(varint(268_435_455), vec![0xFF, 0xFF, 0xFF, 0x7F]);
    }

    #[test]
    fn connect_311_bytes_are_exact() {
        let c = Connect::new(Version::V311, "ab");
        assert_eq!(
            c.encode(),
            vec![0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 2, b'a', b'b']
        );
    }

    #[test]
    fn connect_5_with_will_and_credentials_has_properties_in_order() {
        let mut c = Connect::new(Version::V5, "c");
        c.will = Some(Will {
            topic: "t".into(),
            payload: b"w".to_vec(),
            qos: 1,
            retain: true,
            props: Props::new().u32(prop::WILL_DELAY, 1),
        });
        c.username = Some("u".into());
        c.password = Some(b"p".to_vec());
        assert_eq!(c.flags(), 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02);
        let bytes = c.encode();
        let expected_body: Vec<u8> = [
            &[0, 4, b'M', b'Q', b'T', b'T', 5, 0xEE, 0, 60, 0][..],
            &[0, 1, b'c'],
            &[5, 0x18, 0, 0, 0, 1],
            &[0, 1, b't', 0, 1, b'w'],
            &[0, 1, b'u', 0, 1, b'p'],
        ]
        .concat();
        assert_eq!(bytes[0], 0x10);
        assert_eq!(bytes[1] as usize, expected_body.len());
        assert_eq!(&bytes[2..], &expected_body[..]);
    }

    #[test]
    fn publish_flags_and_subscribe_reserved_bits() {
        let p = Publish::new("a/b", b"x").qos(2, 7).retain(true);
        assert_eq!(
            p.encode(Version::V311),
            vec![0x35, 8, 0, 3, b'a', b'/', b'b', 0, 7, b'x']
        );
        assert_eq!(
            p.encode(Version::V5),
            vec![0x35, 9, 0, 3, b'a', b'/', b'b', 0, 7, 0, b'x']
        );
        let s = subscribe(Version::V311, 1, &[("a", 1)], &Props::new());
        assert_eq!(s, vec![0x82, 6, 0, 1, 0, 1, b'a', 1]);
        assert_eq!(ack(kind::PUBREL, 9), vec![0x62, 2, 0, 9]);
    }
}
