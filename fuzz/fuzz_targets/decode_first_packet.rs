//! Fuzzes the decoder on the first packet of a connection (its CONNECT fixes the version), whole and in two parts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    herald_fuzz::check(data, None);
});
