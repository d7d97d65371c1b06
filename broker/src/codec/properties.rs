//! MQTT 5.0 properties (spec section 2.2.2): decoding with validation, and
//! encoding with exact sizes.
//!
//! A property block is a variable byte integer length followed by
//! `identifier, value` pairs. Decoding rejects an unknown identifier or one
//! not allowed in the packet at hand (Malformed Packet, section 2.2.2.2), a
//! property repeated where it may appear once, and out-of-range values
//! (Protocol Error). Encoding and sizing share one traversal per property set
//! ([`Props::visit`]) so `encoded_len` can never disagree with `encode`.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::decode::{DResult, DecodeError, Reader};
use super::encode::{put_binary, put_varint, varint_len};
use super::{
    AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties, PublishProperties,
    ReasonProperties, SubscribeProperties, UserProperty, WillProperties,
};

// Property identifiers (5.0 table 2-4).
const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
const SERVER_KEEP_ALIVE: u8 = 0x13;
const AUTHENTICATION_METHOD: u8 = 0x15;
const AUTHENTICATION_DATA: u8 = 0x16;
const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
const WILL_DELAY_INTERVAL: u8 = 0x18;
const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
const RESPONSE_INFORMATION: u8 = 0x1A;
const SERVER_REFERENCE: u8 = 0x1C;
const REASON_STRING: u8 = 0x1F;
const RECEIVE_MAXIMUM: u8 = 0x21;
const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
const TOPIC_ALIAS: u8 = 0x23;
const MAXIMUM_QOS: u8 = 0x24;
const RETAIN_AVAILABLE: u8 = 0x25;
const USER_PROPERTY: u8 = 0x26;
const MAXIMUM_PACKET_SIZE: u8 = 0x27;
const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// Bit set of every identifier the specification defines (all are < 64).
const KNOWN: u64 = bit(PAYLOAD_FORMAT_INDICATOR)
    | bit(MESSAGE_EXPIRY_INTERVAL)
    | bit(CONTENT_TYPE)
    | bit(RESPONSE_TOPIC)
    | bit(CORRELATION_DATA)
    | bit(SUBSCRIPTION_IDENTIFIER)
    | bit(SESSION_EXPIRY_INTERVAL)
    | bit(ASSIGNED_CLIENT_IDENTIFIER)
    | bit(SERVER_KEEP_ALIVE)
    | bit(AUTHENTICATION_METHOD)
    | bit(AUTHENTICATION_DATA)
    | bit(REQUEST_PROBLEM_INFORMATION)
    | bit(WILL_DELAY_INTERVAL)
    | bit(REQUEST_RESPONSE_INFORMATION)
    | bit(RESPONSE_INFORMATION)
    | bit(SERVER_REFERENCE)
    | bit(REASON_STRING)
    | bit(RECEIVE_MAXIMUM)
    | bit(TOPIC_ALIAS_MAXIMUM)
    | bit(TOPIC_ALIAS)
    | bit(MAXIMUM_QOS)
    | bit(RETAIN_AVAILABLE)
    | bit(USER_PROPERTY)
    | bit(MAXIMUM_PACKET_SIZE)
    | bit(WILDCARD_SUBSCRIPTION_AVAILABLE)
    | bit(SUBSCRIPTION_IDENTIFIER_AVAILABLE)
    | bit(SHARED_SUBSCRIPTION_AVAILABLE);

const fn bit(id: u8) -> u64 {
    1u64 << id
}

const NOT_ALLOWED: DecodeError =
    DecodeError::Malformed("property not allowed in this packet (5.0 section 2.2.2.2)");

// ---------------------------------------------------------------------------
// Decoding

/// Iterates over one property block, rejecting unknown and repeated
/// identifiers.
struct PropReader {
    /// The block's bytes (its length prefix already consumed).
    r: Reader,
    /// Identifiers seen so far, to refuse repeats of single-use properties.
    seen: u64,
}

impl PropReader {
    /// Reads the property length and takes that many bytes off `r`.
    fn open(r: &mut Reader) -> DResult<PropReader> {
        let len = r.varint()?;
        let len = usize::try_from(len)
            .map_err(|_| DecodeError::Malformed("property length overflows"))?;
        if len > r.remaining() {
            return Err(DecodeError::Malformed(
                "property length exceeds the packet (5.0 section 2.2.2.1)",
            ));
        }
        Ok(PropReader {
            r: r.sub(len)?,
            seen: 0,
        })
    }

    /// The next identifier, or None at the end of the block. User Property
    /// and (in PUBLISH) Subscription Identifier may repeat; every other
    /// property is a protocol error the second time.
    fn next_id(&mut self) -> DResult<Option<u8>> {
        if self.r.is_empty() {
            return Ok(None);
        }
        // Identifiers are variable byte integers, but every defined one is
        // below 128 and so a single byte; a byte >= 64 is unknown.
        let id = self.r.u8()?;
        if id >= 64 || KNOWN & bit(id) == 0 {
            return Err(DecodeError::Malformed(
                "unknown property identifier (5.0 section 2.2.2.2)",
            ));
        }
        if id != USER_PROPERTY && id != SUBSCRIPTION_IDENTIFIER {
            if self.seen & bit(id) != 0 {
                return Err(DecodeError::Protocol(
                    "property that may appear once included twice (5.0 section 3, per property)",
                ));
            }
            self.seen |= bit(id);
        }
        Ok(Some(id))
    }

    /// A byte that may only be 0 or 1.
    fn flag(&mut self, what: &'static str) -> DResult<u8> {
        match self.r.u8()? {
            v @ (0 | 1) => Ok(v),
            _ => Err(DecodeError::Protocol(what)),
        }
    }

    fn u16(&mut self) -> DResult<u16> {
        self.r.u16()
    }

    fn u32(&mut self) -> DResult<u32> {
        self.r.u32()
    }

    fn string(&mut self) -> DResult<ByteString> {
        self.r.string()
    }

    fn binary(&mut self) -> DResult<Bytes> {
        self.r.binary()
    }

    fn user(&mut self) -> DResult<UserProperty> {
        let name = self.r.string()?;
        let value = self.r.string()?;
        Ok((name, value))
    }

    /// A Response Topic: a topic name, so no wildcards.
    fn response_topic(&mut self) -> DResult<ByteString> {
        let topic = self.r.string()?;
        if topic.is_empty() || topic.as_bytes().iter().any(|&b| b == b'+' || b == b'#') {
            return Err(DecodeError::Protocol(
                "response topic is not a valid topic name (5.0 section 3.3.2.3.5)",
            ));
        }
        Ok(topic)
    }
}

const PFI: &str = "payload format indicator other than 0 or 1 (5.0 section 3.3.2.3.2)";
const AUTH_DATA_WITHOUT_METHOD: DecodeError = DecodeError::Protocol(
    "authentication data without an authentication method (5.0 section 3.1.2.11.10)",
);

pub(super) fn decode_connect(r: &mut Reader) -> DResult<ConnectProperties> {
    let mut p = PropReader::open(r)?;
    let mut out = ConnectProperties::default();
    while let Some(id) = p.next_id()? {
        match id {
            SESSION_EXPIRY_INTERVAL => out.session_expiry_interval = Some(p.u32()?),
            RECEIVE_MAXIMUM => match p.u16()? {
                0 => {
                    return Err(DecodeError::Protocol(
                        "receive maximum 0 (5.0 section 3.1.2.11.3)",
                    ))
                }
                v => out.receive_maximum = Some(v),
            },
            MAXIMUM_PACKET_SIZE => out.maximum_packet_size = Some(max_packet_size(&mut p)?),
            TOPIC_ALIAS_MAXIMUM => out.topic_alias_maximum = Some(p.u16()?),
            REQUEST_RESPONSE_INFORMATION => {
                out.request_response_information = Some(p.flag(
                    "request response information other than 0 or 1 (5.0 section 3.1.2.11.6)",
                )?)
            }
            REQUEST_PROBLEM_INFORMATION => {
                out.request_problem_information = Some(p.flag(
                    "request problem information other than 0 or 1 (5.0 section 3.1.2.11.7)",
                )?)
            }
            USER_PROPERTY => out.user_properties.push(p.user()?),
            AUTHENTICATION_METHOD => out.authentication_method = Some(p.string()?),
            AUTHENTICATION_DATA => out.authentication_data = Some(p.binary()?),
            _ => return Err(NOT_ALLOWED),
        }
    }
    if out.authentication_data.is_some() && out.authentication_method.is_none() {
        return Err(AUTH_DATA_WITHOUT_METHOD);
    }
    Ok(out)
}

fn max_packet_size(p: &mut PropReader) -> DResult<u32> {
    match p.u32()? {
        0 => Err(DecodeError::Protocol(
            "maximum packet size 0 (5.0 section 3.1.2.11.4)",
        )),
        v => Ok(v),
    }
}

pub(super) fn decode_will(r: &mut Reader) -> DResult<WillProperties> {
    let mut p = PropReader::open(r)?;
    let mut out = WillProperties::default();
    while let Some(id) = p.next_id()? {
        match id {
            WILL_DELAY_INTERVAL => out.will_delay_interval = Some(p.u32()?),
            PAYLOAD_FORMAT_INDICATOR => out.payload_format_indicator = Some(p.flag(PFI)?),
            MESSAGE_EXPIRY_INTERVAL => out.message_expiry_interval = Some(p.u32()?),
            CONTENT_TYPE => out.content_type = Some(p.string()?),
            RESPONSE_TOPIC => out.response_topic = Some(p.response_topic()?),
            CORRELATION_DATA => out.correlation_data = Some(p.binary()?),
            USER_PROPERTY => out.user_properties.push(p.user()?),
            _ => return Err(NOT_ALLOWED),
        }
    }
    Ok(out)
}

pub(super) fn decode_connack(r: &mut Reader) -> DResult<ConnAckProperties> {
    let mut p = PropReader::open(r)?;
    let mut out = ConnAckProperties::default();
    while let Some(id) = p.next_id()? {
        match id {
            SESSION_EXPIRY_INTERVAL => out.session_expiry_interval = Some(p.u32()?),
            RECEIVE_MAXIMUM => match p.u16()? {
                0 => {
                    return Err(DecodeError::Protocol(
                        "receive maximum 0 (5.0 section 3.2.2.3.3)",
                    ))
                }
                v => out.receive_maximum = Some(v),
            },
            MAXIMUM_QOS => {
                out.maximum_qos =
                    Some(p.flag("maximum QoS other than 0 or 1 (5.0 section 3.2.2.3.4)")?)
            }
            RETAIN_AVAILABLE => {
                out.retain_available =
                    Some(p.flag("retain available other than 0 or 1 (5.0 section 3.2.2.3.5)")?)
            }
            MAXIMUM_PACKET_SIZE => out.maximum_packet_size = Some(max_packet_size(&mut p)?),
            ASSIGNED_CLIENT_IDENTIFIER => out.assigned_client_identifier = Some(p.string()?),
            TOPIC_ALIAS_MAXIMUM => out.topic_alias_maximum = Some(p.u16()?),
            REASON_STRING => out.reason_string = Some(p.string()?),
            USER_PROPERTY => out.user_properties.push(p.user()?),
            WILDCARD_SUBSCRIPTION_AVAILABLE => {
                out.wildcard_subscription_available = Some(p.flag(
                    "wildcard subscription available other than 0 or 1 (5.0 section 3.2.2.3.11)",
                )?)
            }
            SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                out.subscription_identifiers_available = Some(p.flag(
                    "subscription identifiers available other than 0 or 1 (5.0 section 3.2.2.3.12)",
                )?)
            }
            SHARED_SUBSCRIPTION_AVAILABLE => {
                out.shared_subscription_available = Some(p.flag(
                    "shared subscription available other than 0 or 1 (5.0 section 3.2.2.3.13)",
                )?)
            }
            SERVER_KEEP_ALIVE => out.server_keep_alive = Some(p.u16()?),
            RESPONSE_INFORMATION => out.response_information = Some(p.string()?),
            SERVER_REFERENCE => out.server_reference = Some(p.string()?),
            AUTHENTICATION_METHOD => out.authentication_method = Some(p.string()?),
            AUTHENTICATION_DATA => out.authentication_data = Some(p.binary()?),
            _ => return Err(NOT_ALLOWED),
        }
    }
    Ok(out)
}

pub(super) fn decode_publish(r: &mut Reader) -> DResult<PublishProperties> {
    let mut p = PropReader::open(r)?;
    let mut out = PublishProperties::default();
    while let Some(id) = p.next_id()? {
        match id {
            PAYLOAD_FORMAT_INDICATOR => out.payload_format_indicator = Some(p.flag(PFI)?),
            MESSAGE_EXPIRY_INTERVAL => out.message_expiry_interval = Some(p.u32()?),
            TOPIC_ALIAS => match p.u16()? {
                0 => return Err(DecodeError::Protocol("topic alias 0 [MQTT-3.3.2-8]")),
                v => out.topic_alias = Some(v),
            },
            RESPONSE_TOPIC => out.response_topic = Some(p.response_topic()?),
            CORRELATION_DATA => out.correlation_data = Some(p.binary()?),
            USER_PROPERTY => out.user_properties.push(p.user()?),
            SUBSCRIPTION_IDENTIFIER => out
                .subscription_identifiers
                .push(subscription_identifier(&mut p)?),
            CONTENT_TYPE => out.content_type = Some(p.string()?),
            _ => return Err(NOT_ALLOWED),
        }
    }
    Ok(out)
}

fn subscription_identifier(p: &mut PropReader) -> DResult<u32> {
    match p.r.varint()? {
        0 => Err(DecodeError::Protocol(
            "subscription identifier 0 (5.0 section 3.3.2.3.8, 3.8.2.1.2)",
        )),
        v => Ok(v),
    }
}

/// The reason string and user properties of PUBACK..PUBCOMP, SUBACK and
/// UNSUBACK.
pub(super) fn decode_reason(r: &mut Reader) -> DResult<ReasonProperties> {
    let mut p = PropReader::open(r)?;
    let mut out = ReasonProperties::default();
    while let Some(id) = p.next_id()? {
        match id {
            REASON_STRING => out.reason_string = Some(p.string()?),
            USER_PROPERTY => out.user_properties.push(p.user()?),
            _ => return Err(NOT_ALLOWED),
        }
    }
    Ok(out)
}

pub(super) fn decode_subscribe(r: &mut Reader) -> DResult<SubscribeProperties> {
    let mut p = PropReader::open(r)?;
    let mut out = SubscribeProperties::default();
    while let Some(id) = p.next_id()? {
        match id {
            SUBSCRIPTION_IDENTIFIER => {
                if out.subscription_identifier.is_some() {
                    return Err(DecodeError::Protocol(
                        "subscription identifier included more than once (5.0 section 3.8.2.1.2)",
                    ));
                }
                out.subscription_identifier = Some(subscription_identifier(&mut p)?);
            }
            USER_PROPERTY => out.user_properties.push(p.user()?),
            _ => return Err(NOT_ALLOWED),
        }
    }
    Ok(out)
}

pub(super) fn decode_unsubscribe(r: &mut Reader) -> DResult<Vec<UserProperty>> {
    let mut p = PropReader::open(r)?;
    let mut out = Vec::new();
    while let Some(id) = p.next_id()? {
        match id {
            USER_PROPERTY => out.push(p.user()?),
            _ => return Err(NOT_ALLOWED),
        }
    }
    Ok(out)
}

pub(super) fn decode_disconnect(r: &mut Reader) -> DResult<DisconnectProperties> {
    let mut p = PropReader::open(r)?;
    let mut out = DisconnectProperties::default();
    while let Some(id) = p.next_id()? {
        match id {
            SESSION_EXPIRY_INTERVAL => out.session_expiry_interval = Some(p.u32()?),
            REASON_STRING => out.reason_string = Some(p.string()?),
            USER_PROPERTY => out.user_properties.push(p.user()?),
            SERVER_REFERENCE => out.server_reference = Some(p.string()?),
            _ => return Err(NOT_ALLOWED),
        }
    }
    Ok(out)
}

pub(super) fn decode_auth(r: &mut Reader) -> DResult<AuthProperties> {
    let mut p = PropReader::open(r)?;
    let mut out = AuthProperties::default();
    while let Some(id) = p.next_id()? {
        match id {
            AUTHENTICATION_METHOD => out.authentication_method = Some(p.string()?),
            AUTHENTICATION_DATA => out.authentication_data = Some(p.binary()?),
            REASON_STRING => out.reason_string = Some(p.string()?),
            USER_PROPERTY => out.user_properties.push(p.user()?),
            _ => return Err(NOT_ALLOWED),
        }
    }
    if out.authentication_data.is_some() && out.authentication_method.is_none() {
        return Err(AUTH_DATA_WITHOUT_METHOD);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Encoding

/// Receives each present property of a set, in wire order. Implemented by a
/// size counter and by the writer.
pub(super) trait Sink {
    fn byte(&mut self, id: u8, v: Option<u8>);
    fn two(&mut self, id: u8, v: Option<u16>);
    fn four(&mut self, id: u8, v: Option<u32>);
    fn varint(&mut self, id: u8, v: u32);
    fn string(&mut self, id: u8, v: Option<&ByteString>);
    fn binary(&mut self, id: u8, v: Option<&Bytes>);
    fn users(&mut self, v: &[UserProperty]);
}

/// A property set that can be encoded.
pub(super) trait Props {
    /// Feeds every present property to `s`.
    fn visit<S: Sink>(&self, s: &mut S);

    /// Size of the properties alone (without the length prefix).
    fn content_len(&self) -> usize {
        let mut len = Len(0);
        self.visit(&mut len);
        len.0
    }
}

/// Size of a whole property block: the length prefix plus the properties.
pub(super) fn block_len(content_len: usize) -> usize {
    varint_len(content_len) + content_len
}

/// Writes a property block whose content size is `content_len` (as given by
/// [`Props::content_len`]).
pub(super) fn put<P: Props + ?Sized>(p: &P, content_len: usize, buf: &mut BytesMut) {
    put_varint(buf, content_len);
    p.visit(&mut Put(buf));
}

/// Counts encoded bytes.
struct Len(usize);

impl Sink for Len {
    fn byte(&mut self, _: u8, v: Option<u8>) {
        if v.is_some() {
            self.0 += 2;
        }
    }
    fn two(&mut self, _: u8, v: Option<u16>) {
        if v.is_some() {
            self.0 += 3;
        }
    }
    fn four(&mut self, _: u8, v: Option<u32>) {
        if v.is_some() {
            self.0 += 5;
        }
    }
    fn varint(&mut self, _: u8, v: u32) {
        self.0 += 1 + varint_len(v as usize);
    }
    fn string(&mut self, _: u8, v: Option<&ByteString>) {
        if let Some(v) = v {
            self.0 += 3 + v.len();
        }
    }
    fn binary(&mut self, _: u8, v: Option<&Bytes>) {
        if let Some(v) = v {
            self.0 += 3 + v.len();
        }
    }
    fn users(&mut self, v: &[UserProperty]) {
        for (name, value) in v {
            self.0 += 5 + name.len() + value.len();
        }
    }
}

/// Writes properties to a buffer.
struct Put<'a>(&'a mut BytesMut);

impl Sink for Put<'_> {
    fn byte(&mut self, id: u8, v: Option<u8>) {
        if let Some(v) = v {
            self.0.put_u8(id);
            self.0.put_u8(v);
        }
    }
    fn two(&mut self, id: u8, v: Option<u16>) {
        if let Some(v) = v {
            self.0.put_u8(id);
            self.0.put_u16(v);
        }
    }
    fn four(&mut self, id: u8, v: Option<u32>) {
        if let Some(v) = v {
            self.0.put_u8(id);
            self.0.put_u32(v);
        }
    }
    fn varint(&mut self, id: u8, v: u32) {
        self.0.put_u8(id);
        put_varint(self.0, v as usize);
    }
    fn string(&mut self, id: u8, v: Option<&ByteString>) {
        if let Some(v) = v {
            self.0.put_u8(id);
            put_binary(self.0, v.as_bytes());
        }
    }
    fn binary(&mut self, id: u8, v: Option<&Bytes>) {
        if let Some(v) = v {
            self.0.put_u8(id);
            put_binary(self.0, v);
        }
    }
    fn users(&mut self, v: &[UserProperty]) {
        for (name, value) in v {
            self.0.put_u8(USER_PROPERTY);
            put_binary(self.0, name.as_bytes());
            put_binary(self.0, value.as_bytes());
        }
    }
}

impl Props for ConnectProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        s.four(SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        s.two(RECEIVE_MAXIMUM, self.receive_maximum);
        s.four(MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        s.two(TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        s.byte(
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        s.byte(
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        s.users(&self.user_properties);
        s.string(AUTHENTICATION_METHOD, self.authentication_method.as_ref());
        s.binary(AUTHENTICATION_DATA, self.authentication_data.as_ref());
    }
}

impl Props for WillProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        s.four(WILL_DELAY_INTERVAL, self.will_delay_interval);
        s.byte(PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        s.four(MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        s.string(CONTENT_TYPE, self.content_type.as_ref());
        s.string(RESPONSE_TOPIC, self.response_topic.as_ref());
        s.binary(CORRELATION_DATA, self.correlation_data.as_ref());
        s.users(&self.user_properties);
    }
}

impl Props for ConnAckProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        s.four(SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        s.two(RECEIVE_MAXIMUM, self.receive_maximum);
        s.byte(MAXIMUM_QOS, self.maximum_qos);
        s.byte(RETAIN_AVAILABLE, self.retain_available);
        s.four(MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        s.string(
            ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier.as_ref(),
        );
        s.two(TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        s.string(REASON_STRING, self.reason_string.as_ref());
        s.users(&self.user_properties);
        s.byte(
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        s.byte(
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        s.byte(
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
        s.two(SERVER_KEEP_ALIVE, self.server_keep_alive);
        s.string(RESPONSE_INFORMATION, self.response_information.as_ref());
        s.string(SERVER_REFERENCE, self.server_reference.as_ref());
        s.string(AUTHENTICATION_METHOD, self.authentication_method.as_ref());
        s.binary(AUTHENTICATION_DATA, self.authentication_data.as_ref());
    }
}

impl Props for PublishProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        s.byte(PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        s.four(MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        s.two(TOPIC_ALIAS, self.topic_alias);
        s.string(RESPONSE_TOPIC, self.response_topic.as_ref());
        s.binary(CORRELATION_DATA, self.correlation_data.as_ref());
        s.users(&self.user_properties);
        for &id in &self.subscription_identifiers {
            s.varint(SUBSCRIPTION_IDENTIFIER, id);
        }
        s.string(CONTENT_TYPE, self.content_type.as_ref());
    }
}

impl Props for ReasonProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        s.string(REASON_STRING, self.reason_string.as_ref());
        s.users(&self.user_properties);
    }
}

impl Props for SubscribeProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        if let Some(id) = self.subscription_identifier {
            s.varint(SUBSCRIPTION_IDENTIFIER, id);
        }
        s.users(&self.user_properties);
    }
}

impl Props for [UserProperty] {
    fn visit<S: Sink>(&self, s: &mut S) {
        s.users(self);
    }
}

impl Props for DisconnectProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        s.four(SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        s.string(REASON_STRING, self.reason_string.as_ref());
        s.users(&self.user_properties);
        s.string(SERVER_REFERENCE, self.server_reference.as_ref());
    }
}

impl Props for AuthProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        s.string(AUTHENTICATION_METHOD, self.authentication_method.as_ref());
        s.binary(AUTHENTICATION_DATA, self.authentication_data.as_ref());
        s.string(REASON_STRING, self.reason_string.as_ref());
        s.users(&self.user_properties);
    }
}
