//! Fuzzes the decoder on MQTT 5.0 packets after CONNECT, whole and in two parts.
#![no_main]

use herald::codec::ProtocolVersion;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    herald_fuzz::check(data, Some(ProtocolVersion::V5));
});
