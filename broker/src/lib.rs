//! Herald: a highly-available MQTT 3.1 / 3.1.1 / 5.0 broker.
//!
//! Module map:
//! - [`codec`]: the MQTT packet types, decoder and encoder.
pub mod codec;
