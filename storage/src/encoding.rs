//! The on-disk encoding of the records the RocksDB store keeps.
//!
//! Hand-written and compact: integers are big-endian and fixed-size, byte
//! strings and lists carry a `u32` length, an optional value is a presence
//! byte (0 or 1) followed by the value. Every decoder consumes its input
//! exactly and reports anything else as [`DecodeError`], which the store
//! turns into "corrupt database" rather than guessing.
//!
//! Keys:
//! - `sessions`: the client id (UTF-8) → [`encode_session`] (no queue).
//! - `queue`: `u16` length of the client id, the client id, `u64` seq →
//!   [`encode_entry`] (the body is referenced by its message id).
//! - `messages`: `u64` message id → `u32` reference count + [`encode_message`].
//! - `retained`: the topic → [`encode_message`].
//! - `meta`: fixed names ([`META_FORMAT_VERSION`], ...) → `u32` / `u64`.
//!
//! Changing any layout here means bumping [`FORMAT_VERSION`]. Version 2
//! added the session's owner at the end of a session record; version 1
//! databases are read (their sessions have no owner) and marked version 2
//! when opened, so an older binary refuses them rather than misreading.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::model::{Message, SessionRecord, Subscription, Will};

/// Version of everything this module writes; stored in `meta`.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest version this module still reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// `meta` key: the format version (`u32`).
pub const META_FORMAT_VERSION: &[u8] = b"format_version";
/// `meta` key: index of the last applied command (`u64`).
pub const META_LAST_APPLIED: &[u8] = b"last_applied";
/// `meta` key: the next message id to assign (`u64`).
pub const META_NEXT_MESSAGE_ID: &[u8] = b"next_message_id";

/// A record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable {what}: {why}")]
pub struct DecodeError {
    pub what: &'static str,
    pub why: &'static str,
}

/// A queue entry as stored: everything but the body, which is referenced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub message_id: u64,
    pub qos: u8,
    pub retain: bool,
    pub pubrec_received: bool,
    pub subscription_ids: Vec<u32>,
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, what }
    }

    fn err(&self, why: &'static str) -> DecodeError {
        DecodeError {
            what: self.what,
            why,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(self.err("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.err("bad boolean")),
        }
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > self.buf.len() {
            return Err(self.err("length past the end"));
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.len()?;
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.len()?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("invalid UTF-8"))
    }

    fn opt_u32(&mut self) -> Result<Option<u32>, DecodeError> {
        Ok(if self.bool()? {
            Some(self.u32()?)
        } else {
            None
        })
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        Ok(if self.bool()? {
            Some(self.u64()?)
        } else {
            None
        })
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // Record parts are bounded far below 4 GiB (MQTT packets are at most
    // 256 MiB), so the length always fits.
    out.extend_from_slice(&(n.min(u32::MAX as usize) as u32).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn put_opt_u32(out: &mut Vec<u8>, v: Option<u32>) {
    match v {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_be_bytes());
        }
        None => out.push(0),
    }
}

fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_be_bytes());
        }
        None => out.push(0),
    }
}

fn put_message(out: &mut Vec<u8>, m: &Message) {
    put_bytes(out, &m.topic);
    put_bytes(out, &m.payload);
    out.push(m.qos);
    out.push(u8::from(m.retain));
    put_bytes(out, &m.properties);
    put_opt_u64(out, m.expires_at_ms);
}

fn read_message(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let topic = r.bytes()?;
    let payload = r.bytes()?;
    let qos = r.u8()?;
    if qos > 2 {
        return Err(r.err("QoS above 2"));
    }
    Ok(Message {
        topic,
        payload,
        qos,
        retain: r.bool()?,
        properties: r.bytes()?,
        expires_at_ms: r.opt_u64()?,
    })
}

/// A message (retained value, or the body part of a `messages` value).
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.size() + 24);
    put_message(&mut out, m);
    out
}

pub fn decode_message(buf: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader::new(buf, "message");
    let m = read_message(&mut r)?;
    r.end()?;
    Ok(m)
}

/// A `messages` value: the reference count, then the message.
pub fn encode_body(refs: u32, m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.size() + 28);
    out.extend_from_slice(&refs.to_be_bytes());
    put_message(&mut out, m);
    out
}

pub fn decode_body(buf: &[u8]) -> Result<(u32, Message), DecodeError> {
    let mut r = Reader::new(buf, "message body");
    let refs = r.u32()?;
    let m = read_message(&mut r)?;
    r.end()?;
    Ok((refs, m))
}

/// A session record without its queue (the client id is the key).
pub fn encode_session(s: &SessionRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(s.protocol_level);
    out.extend_from_slice(&s.expiry_secs.to_be_bytes());
    put_opt_u64(&mut out, s.connected_epoch);
    put_opt_u64(&mut out, s.disconnected_at_ms);
    out.extend_from_slice(&s.next_seq.to_be_bytes());
    put_len(&mut out, s.subscriptions.len());
    for (filter, sub) in &s.subscriptions {
        put_bytes(&mut out, filter.as_bytes());
        out.push(sub.options);
        put_opt_u32(&mut out, sub.identifier);
    }
    match &s.will {
        Some(w) => {
            out.push(1);
            put_message(&mut out, &w.message);
            out.extend_from_slice(&w.delay_secs.to_be_bytes());
        }
        None => out.push(0),
    }
    put_len(&mut out, s.inbound_qos2.len());
    for id in &s.inbound_qos2 {
        out.extend_from_slice(&id.to_be_bytes());
    }
    match &s.owner {
        Some(owner) => {
            out.push(1);
            put_bytes(&mut out, owner.as_bytes());
        }
        None => out.push(0),
    }
    out
}

pub fn decode_session(client_id: String, buf: &[u8]) -> Result<SessionRecord, DecodeError> {
    decode_session_of_version(client_id, buf, FORMAT_VERSION)
}

/// A session record as written by format `version` (version 1 had no owner).
pub fn decode_session_of_version(
    client_id: String,
    buf: &[u8],
    version: u32,
) -> Result<SessionRecord, DecodeError> {
    let mut r = Reader::new(buf, "session");
    let protocol_level = r.u8()?;
    let expiry_secs = r.u32()?;
    let connected_epoch = r.opt_u64()?;
    let disconnected_at_ms = r.opt_u64()?;
    let next_seq = r.u64()?;
    let n = r.u32()?;
    let mut subscriptions = BTreeMap::new();
    for _ in 0..n {
        let filter = r.string()?;
        let options = r.u8()?;
        let identifier = r.opt_u32()?;
        subscriptions.insert(
            filter,
            Subscription {
                options,
                identifier,
            },
        );
    }
    let will = if r.bool()? {
        let message = read_message(&mut r)?;
        Some(Will {
            message,
            delay_secs: r.u32()?,
        })
    } else {
        None
    };
    let n = r.u32()?;
    let mut inbound_qos2 = BTreeSet::new();
    for _ in 0..n {
        inbound_qos2.insert(r.u16()?);
    }
    let owner = if version >= 2 && r.bool()? {
        Some(r.string()?)
    } else {
        None
    };
    r.end()?;
    Ok(SessionRecord {
        client_id,
        protocol_level,
        expiry_secs,
        subscriptions,
        will,
        connected_epoch,
        disconnected_at_ms,
        inbound_qos2,
        queue: BTreeMap::new(),
        next_seq,
        owner,
    })
}

/// A `queue` value.
pub fn encode_entry(e: &StoredEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 4 * e.subscription_ids.len());
    out.extend_from_slice(&e.message_id.to_be_bytes());
    out.push(e.qos);
    out.push(u8::from(e.retain));
    out.push(u8::from(e.pubrec_received));
    put_len(&mut out, e.subscription_ids.len());
    for id in &e.subscription_ids {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out
}

pub fn decode_entry(buf: &[u8]) -> Result<StoredEntry, DecodeError> {
    let mut r = Reader::new(buf, "queue entry");
    let message_id = r.u64()?;
    let qos = r.u8()?;
    if qos > 2 {
        return Err(r.err("QoS above 2"));
    }
    let retain = r.bool()?;
    let pubrec_received = r.bool()?;
    let n = r.u32()?;
    let mut subscription_ids = Vec::new();
    for _ in 0..n {
        subscription_ids.push(r.u32()?);
    }
    r.end()?;
    Ok(StoredEntry {
        message_id,
        qos,
        retain,
        pubrec_received,
        subscription_ids,
    })
}

/// A `queue` key: the client id (length-prefixed, so one client's entries
/// are one contiguous key range) then the sequence number, big-endian so
/// that keys sort in queue order.
pub fn queue_key(client_id: &str, seq: u64) -> Vec<u8> {
    let id = client_id.as_bytes();
    let mut out = Vec::with_capacity(2 + id.len() + 8);
    // MQTT strings are at most 65,535 bytes, so the length fits a u16.
    out.extend_from_slice(&(id.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

pub fn decode_queue_key(key: &[u8]) -> Result<(String, u64), DecodeError> {
    let mut r = Reader::new(key, "queue key");
    let n = r.u16()? as usize;
    let id = r.take(n)?;
    let id = String::from_utf8(id.to_vec()).map_err(|_| r.err("invalid UTF-8"))?;
    let seq = r.u64()?;
    r.end()?;
    Ok((id, seq))
}

/// A fixed-size integer value of `meta`.
pub fn decode_u64(buf: &[u8], what: &'static str) -> Result<u64, DecodeError> {
    let mut r = Reader::new(buf, what);
    let v = r.u64()?;
    r.end()?;
    Ok(v)
}

pub fn decode_u32(buf: &[u8], what: &'static str) -> Result<u32, DecodeError> {
    let mut r = Reader::new(buf, what);
    let v = r.u32()?;
    r.end()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            proptest::collection::vec(any::<u8>(), 0..20),
            proptest::collection::vec(any::<u8>(), 0..40),
            0u8..=2,
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..10),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(t, p, qos, retain, props, exp)| Message {
                topic: Bytes::from(t),
                payload: Bytes::from(p),
                qos,
                retain,
                properties: Bytes::from(props),
                expires_at_ms: exp,
            })
    }

    fn arb_session() -> impl Strategy<Value = SessionRecord> {
        (
            "[a-z0-9]{0,12}",
            3u8..=5,
            any::<u32>(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            any::<u64>(),
            proptest::collection::btree_map(
                "[a-z/+#]{1,10}",
                (any::<u8>(), proptest::option::of(any::<u32>())),
                0..5,
            ),
            proptest::option::of((arb_message(), any::<u32>())),
            proptest::collection::btree_set(any::<u16>(), 0..5),
            proptest::option::of("[a-z0-9]{0,8}"),
        )
            .prop_map(
                |(id, level, expiry, epoch, disc, next_seq, subs, will, inbound, owner)| {
                    SessionRecord {
                        client_id: id,
                        protocol_level: level,
                        expiry_secs: expiry,
                        subscriptions: subs
                            .into_iter()
                            .map(|(f, (options, identifier))| {
                                (
                                    f,
                                    Subscription {
                                        options,
                                        identifier,
                                    },
                                )
                            })
                            .collect(),
                        will: will.map(|(message, delay_secs)| Will {
                            message,
                            delay_secs,
                        }),
                        connected_epoch: epoch,
                        disconnected_at_ms: disc,
                        inbound_qos2: inbound,
                        queue: BTreeMap::new(),
                        next_seq,
                        owner,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn message_round_trips(m in arb_message(), refs in any::<u32>()) {
            prop_assert_eq!(decode_message(&encode_message(&m)), Ok(m.clone()));
            prop_assert_eq!(decode_body(&encode_body(refs, &m)), Ok((refs, m)));
        }

        #[test]
        fn session_round_trips(s in arb_session()) {
            let bytes = encode_session(&s);
            prop_assert_eq!(decode_session(s.client_id.clone(), &bytes), Ok(s));
        }

        #[test]
        fn entry_and_key_round_trip(
            id in "[a-zA-Z0-9/]{0,30}",
            seq in any::<u64>(),
            mid in any::<u64>(),
            qos in 0u8..=2,
            retain in any::<bool>(),
            pubrec in any::<bool>(),
            subs in proptest::collection::vec(any::<u32>(), 0..4),
        ) {
            let e = StoredEntry { message_id: mid, qos, retain, pubrec_received: pubrec, subscription_ids: subs };
            prop_assert_eq!(decode_entry(&encode_entry(&e)), Ok(e));
            prop_assert_eq!(decode_queue_key(&queue_key(&id, seq)), Ok((id, seq)));
        }

        /// No truncation of a valid record decodes: a torn value is always
        /// reported, never read as a different record.
        #[test]
        fn truncated_records_are_refused(s in arb_session(), cut in any::<prop::sample::Index>()) {
            let bytes = encode_session(&s);
            let at = cut.index(bytes.len());
            prop_assert!(decode_session(s.client_id.clone(), &bytes[..at]).is_err());
        }
    }

    /// A version 1 record is the version 2 layout without the owner.
    #[test]
    fn version_1_sessions_decode_without_an_owner() {
        let s = SessionRecord {
            client_id: "c".into(),
            protocol_level: 4,
            next_seq: 3,
            owner: Some("alice".into()),
            ..SessionRecord::default()
        };
        let v2 = encode_session(&s);
        let v1 = &v2[..v2.len() - (1 + 4 + "alice".len())];
        let read = decode_session_of_version("c".into(), v1, 1).expect("v1 decodes");
        assert_eq!(
            read,
            SessionRecord {
                owner: None,
                ..s.clone()
            }
        );
        assert!(decode_session("c".into(), v1).is_err(), "not a v2 record");
        assert!(decode_session_of_version("c".into(), &v2, 1).is_err());
    }

    #[test]
    fn queue_keys_sort_by_client_then_seq() {
        let mut keys = [
            queue_key("b", 1),
            queue_key("a", 256),
            queue_key("a", 2),
            queue_key("ab", 0),
        ];
        keys.sort();
        let decoded: Vec<_> = keys
            .iter()
            .map(|k| decode_queue_key(k).expect("valid key"))
            .collect();
        // Length prefix first: every one-byte id sorts before two-byte ones,
        // and within one client, seq order is key order.
        assert_eq!(
            decoded,
            vec![
                ("a".to_owned(), 2),
                ("a".to_owned(), 256),
                ("b".to_owned(), 1),
                ("ab".to_owned(), 0),
            ]
        );
    }

    #[test]
    fn garbage_is_refused_not_guessed() {
        assert!(decode_session("c".into(), &[9, 9, 9]).is_err());
        assert!(decode_entry(&[0; 3]).is_err());
        // A QoS above 2 is not a message this broker writes.
        let mut m = encode_message(&Message {
            topic: Bytes::from_static(b"t"),
            payload: Bytes::new(),
            qos: 1,
            retain: false,
            properties: Bytes::new(),
            expires_at_ms: None,
        });
        m[4 + 1 + 4] = 3;
        assert!(decode_message(&m).is_err());
        assert!(decode_u64(&[0; 7], "x").is_err());
    }
}
