//! A black-box MQTT 3.1.1 / 5.0 conformance suite: it judges any broker at a
//! `host:port` over plain TCP, builds every packet it sends by hand, and
//! names the normative statement each test checks.
//!
//! Modules:
//! - [`wire`]: the hand-built packet encoder.
//! - [`decode`]: a strict decoder of the packets a broker sends.
//! - [`client`]: the test client (tokio `TcpStream`, a deadline per read).
//! - [`suite`]: the test catalogue, grouped and numbered by spec area.
//! - [`runner`]: runs a selection and reports (lines, totals, JSON).
//! - [`coverage`]: reads the expected-failures list from `COVERAGE.md`.

// Tests may unwrap (house rule); library code may not.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
pub mod coverage;
pub mod decode;
pub mod runner;
pub mod suite;
pub mod wire;
