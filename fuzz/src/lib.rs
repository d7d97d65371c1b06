//! The property every decoder fuzz target checks, shared with the
//! regression test that replays the corpus (`broker/tests/fuzz_corpus.rs`).
//!
//! For an input and a protocol version (`None`: the first packet of a
//! connection, whose CONNECT fixes the version for the rest):
//! 1. decoding never panics, whatever the bytes;
//! 2. the packets and the error decoded from the whole input are exactly
//!    those decoded when it arrives in two parts, split at a point taken
//!    from the input and at its middle (split reads, as on a socket);
//! 3. every packet decoded re-encodes (a CONNECT in its own version) to
//!    bytes that decode to the same packet.

use bytes::BytesMut;
use herald::codec::{self, DecodeError, Packet, ProtocolVersion};

/// The largest packet accepted while fuzzing (small, so inputs that claim
/// a huge length do not just wait for more bytes).
pub const MAX_PACKET: u32 = 64 * 1024;

/// What decoding produced, in order; ends at the first error.
pub fn decode_all(
    chunks: &[&[u8]],
    version: Option<ProtocolVersion>,
) -> Vec<Result<Packet, DecodeError>> {
    let mut buf = BytesMut::new();
    let mut version = version;
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec::decode(&mut buf, version, MAX_PACKET) {
                Ok(Some(p)) => {
                    if let (None, Packet::Connect(c)) = (version, &p) {
                        version = Some(c.protocol);
                    }
                    out.push(Ok(p));
                }
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
}

/// Checks the properties above for one input; panics on a violation.
pub fn check(data: &[u8], version: Option<ProtocolVersion>) {
    let whole = decode_all(&[data], version);
    let from_input = data
        .first()
        .map_or(0, |b| usize::from(*b) % (data.len() + 1));
    for split in [from_input, data.len() / 2] {
        let (a, b) = data.split_at(split);
        let parts = decode_all(&[a, b], version);
        assert_eq!(whole, parts, "split at {split} decodes differently");
    }
    let mut v = version;
    for p in whole.iter().flatten() {
        // A CONNECT carries its own version and is decoded as a first
        // packet (no version known yet).
        let (enc, dec) = match p {
            Packet::Connect(c) => {
                v.get_or_insert(c.protocol);
                (c.protocol, None)
            }
            _ => match v {
                Some(ver) => (ver, Some(ver)),
                None => continue,
            },
        };
        let mut buf = BytesMut::new();
        codec::encode(p, enc, &mut buf);
        match codec::decode(&mut buf, dec, u32::MAX) {
            Ok(Some(q)) => assert_eq!(p, &q, "re-encoded packet decodes differently"),
            other => panic!("re-encoded {p:?} does not decode: {other:?}"),
        }
    }
}
