//! `$SYS` topics: the broker's own figures, published as retained messages
//! every `admin.sys_interval_secs`, under the names Mosquitto users know.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;

use crate::broker::Broker;
use crate::codec::QoS;
use crate::session::{Msg, MsgProperties};
use crate::stats::Stats;

/// The `$SYS` topics and their current values.
pub fn snapshot(broker: &Broker) -> Vec<(&'static str, String)> {
    let s = &broker.stats;
    let get = Stats::get;
    let (online, offline) = broker.session_counts();
    let bytes = |a: &[std::sync::atomic::AtomicU64; 15]| a.iter().map(get).sum::<u64>();
    vec![
        (
            "$SYS/broker/version",
            format!("herald {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "$SYS/broker/uptime",
            format!("{} seconds", broker.started.elapsed().as_secs()),
        ),
        ("$SYS/broker/clients/connected", online.to_string()),
        ("$SYS/broker/clients/disconnected", offline.to_string()),
        ("$SYS/broker/clients/total", (online + offline).to_string()),
        (
            "$SYS/broker/messages/received",
            get(&s.messages_received).to_string(),
        ),
        (
            "$SYS/broker/messages/sent",
            get(&s.messages_sent).to_string(),
        ),
        (
            "$SYS/broker/messages/dropped",
            s.drops().iter().sum::<u64>().to_string(),
        ),
        (
            "$SYS/broker/messages/inflight",
            get(&s.inflight).to_string(),
        ),
        (
            "$SYS/broker/retained messages/count",
            broker.retained.read().len().to_string(),
        ),
        (
            "$SYS/broker/subscriptions/count",
            broker.index.len().to_string(),
        ),
        (
            "$SYS/broker/bytes/received",
            bytes(&s.bytes_received).to_string(),
        ),
        ("$SYS/broker/bytes/sent", bytes(&s.bytes_sent).to_string()),
    ]
}

/// Publishes the `$SYS` topics now.
pub fn publish_once(broker: &Broker) {
    for (topic, value) in snapshot(broker) {
        let msg = Msg {
            topic: ByteString::from_static(topic),
            payload: Bytes::from(value),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: MsgProperties::default(),
            expires_at: None,
            origin: None,
            received_at: Instant::now(),
        };
        broker.route(Arc::new(msg), None);
    }
}

/// Publishes the `$SYS` topics every `interval` until the broker shuts down.
pub async fn run(broker: Arc<Broker>, interval: Duration) {
    let mut shutdown = broker.shutdown.subscribe();
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => publish_once(&broker),
            _ = shutdown.changed() => return,
        }
    }
}
