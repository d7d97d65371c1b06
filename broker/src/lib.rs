//! Herald: a highly-available MQTT 3.1 / 3.1.1 / 5.0 broker.
//!
//! Module map:
//! - [`codec`]: the MQTT packet types, decoder and encoder.
//! - [`topic`]: topic name and filter validation, shared-filter parsing and
//!   the reference matcher.
//! - [`trie`]: the subscription index (plain and shared subscriptions, sharded
//!   for concurrent publishes).
//! - [`retained`]: retained messages as a tree of topic levels.
pub mod codec;
pub mod retained;
pub mod topic;
pub mod trie;
