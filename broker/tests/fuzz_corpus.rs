//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and any regression
//! inputs (`fuzz/regressions/<target>/`) through the same check the fuzz
//! targets run, on stable Rust: no panic, the same packets and error when
//! the input arrives in two parts, and re-encoded packets decode the same.

#[path = "../../fuzz/src/lib.rs"]
mod fuzz_check;

use std::path::Path;

use herald::codec::ProtocolVersion;

fn replay(target: &str, version: Option<ProtocolVersion>) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let data = std::fs::read(&path).expect("read input");
            let result = std::panic::catch_unwind(|| fuzz_check::check(&data, version));
            assert!(result.is_ok(), "{} fails the decoder check", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn first_packet_corpus() {
    assert!(
        replay("decode_first_packet", None) > 0,
        "the corpus is there"
    );
}

#[test]
fn v3_1_corpus() {
    assert!(replay("decode_v3_1", Some(ProtocolVersion::V3_1)) > 0);
}

#[test]
fn v3_1_1_corpus() {
    assert!(replay("decode_v3_1_1", Some(ProtocolVersion::V3_1_1)) > 0);
}

#[test]
fn v5_corpus() {
    assert!(replay("decode_v5", Some(ProtocolVersion::V5)) > 0);
}

/// The check itself catches a decoder that loses data across a split: a
/// PUBLISH fed in two parts must come out once, whole.
#[test]
fn the_check_sees_split_packets() {
    let publish = [0x30, 0x05, 0x00, 0x01, b'a', b'h', b'i'];
    let whole = fuzz_check::decode_all(&[&publish], Some(ProtocolVersion::V3_1_1));
    let parts = fuzz_check::decode_all(
        &[&publish[..3], &publish[3..]],
        Some(ProtocolVersion::V3_1_1),
    );
    assert_eq!(whole.len(), 1);
    assert_eq!(whole, parts);
}
