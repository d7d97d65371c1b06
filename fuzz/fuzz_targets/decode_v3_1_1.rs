//! Fuzzes the decoder on MQTT 3.1.1 packets after CONNECT, whole and in two parts.
#![no_main]

use herald::codec::ProtocolVersion;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    herald_fuzz::check(data, Some(ProtocolVersion::V3_1_1));
});
