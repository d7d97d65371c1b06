//! `herald-bench`: a load generator for MQTT brokers.
//!
//! It speaks MQTT itself over tokio TCP with a minimal codec, so that no
//! client library's event loop limits what it can measure, and it links no
//! Herald crate: Herald and Mosquitto are measured the same way, as black
//! boxes on a socket.
//!
//! Modules:
//! - [`codec`]: the few MQTT 3.1.1 / 5.0 packets the generator needs;
//! - [`client`]: one connection, the payload time stamp, the error type;
//! - [`flow`]: the publish/subscribe engine behind the message scenarios;
//! - [`scenarios`]: every scenario, each bounded in time, each a [`report::Report`];
//! - [`stats`]: latency histogram and percentiles;
//! - [`procstat`]: CPU and memory of the generator and the broker from `/proc`;
//! - [`report`]: results as a human table and JSON;
//! - [`compare`]: medians and ratios over rounds, as Markdown.

pub mod client;
pub mod codec;
pub mod compare;
pub mod flow;
pub mod procstat;
pub mod report;
pub mod scenarios;
pub mod stats;
