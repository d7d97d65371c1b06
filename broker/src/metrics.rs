//! Prometheus metrics, served through the `metrics` facade by
//! metrics-exporter-prometheus.
//!
//! Every metric is declared once in [`DEFS`] with its help text; the README's
//! metric list is checked against it by a test. Counters and gauges are
//! copied from [`crate::stats::Stats`] at scrape time ([`render`]), so the
//! hot path only pays relaxed atomic adds; histograms are recorded where the
//! event happens.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::broker::Broker;
use crate::stats::{Stats, CLOSE_REASONS, DROP_REASONS, PACKET_TYPES};

/// What kind of metric a definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric: its name, kind, labels and help text.
#[derive(Debug, Clone, Copy)]
pub struct Def {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn def(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Def {
    Def {
        name,
        kind,
        labels,
        help,
    }
}

/// Publish-to-deliver latency histogram name.
pub const DELIVER_LATENCY: &str = "herald_publish_to_deliver_seconds";

/// Every metric Herald exports.
pub const DEFS: &[Def] = &[
    def(
        "herald_build_info",
        Kind::Gauge,
        &["version"],
        "Always 1; the label carries the Herald version.",
    ),
    def(
        "herald_uptime_seconds",
        Kind::Gauge,
        &[],
        "Seconds since the broker started.",
    ),
    def(
        "herald_ready",
        Kind::Gauge,
        &[],
        "1 while the broker is ready (what /health/ready answers 200 for), else 0.",
    ),
    def(
        "herald_connections",
        Kind::Gauge,
        &[],
        "Open client connections (including ones not yet past CONNECT).",
    ),
    def(
        "herald_connections_accepted_total",
        Kind::Counter,
        &[],
        "TCP connections accepted.",
    ),
    def(
        "herald_connections_refused_total",
        Kind::Counter,
        &["reason"],
        "Connections closed at accept (reason=limit: max_connections reached).",
    ),
    def(
        "herald_connections_closed_total",
        Kind::Counter,
        &["reason"],
        "Connections closed, by reason.",
    ),
    def(
        "herald_packets_received_total",
        Kind::Counter,
        &["type"],
        "MQTT packets received, by packet type.",
    ),
    def(
        "herald_packets_sent_total",
        Kind::Counter,
        &["type"],
        "MQTT packets sent, by packet type.",
    ),
    def(
        "herald_received_bytes_total",
        Kind::Counter,
        &["type"],
        "Bytes of MQTT packets received, by packet type.",
    ),
    def(
        "herald_sent_bytes_total",
        Kind::Counter,
        &["type"],
        "Bytes of MQTT packets sent, by packet type.",
    ),
    def(
        "herald_messages_received_total",
        Kind::Counter,
        &["qos"],
        "Application messages published to the broker (including wills), by QoS.",
    ),
    def(
        "herald_messages_delivered_total",
        Kind::Counter,
        &["qos"],
        "Application messages written to subscribers, by delivered QoS.",
    ),
    def(
        "herald_messages_dropped_total",
        Kind::Counter,
        &["reason"],
        "Messages not delivered to a subscriber, by reason.",
    ),
    def(
        "herald_protocol_errors_total",
        Kind::Counter,
        &[],
        "Connections closed for a malformed packet or a protocol violation.",
    ),
    def(
        "herald_slow_consumers_total",
        Kind::Counter,
        &[],
        "Connections closed because the client stopped reading.",
    ),
    def(
        "herald_takeovers_total",
        Kind::Counter,
        &[],
        "Sessions taken over by a new connection with the same client id.",
    ),
    def(
        "herald_wills_published_total",
        Kind::Counter,
        &[],
        "Will messages published.",
    ),
    def(
        "herald_sessions_expired_total",
        Kind::Counter,
        &[],
        "Persistent sessions ended by their expiry.",
    ),
    def(
        "herald_handshakes_failed_total",
        Kind::Counter,
        &[],
        "Connections closed before MQTT began: a failed TLS or WebSocket handshake, or an invalid PROXY header.",
    ),
    def(
        "herald_logins_failed_total",
        Kind::Counter,
        &["reason"],
        "Logins refused (reason=bad_credentials, not_authorized or rate_limited).",
    ),
    def(
        "herald_acl_denied_total",
        Kind::Counter,
        &["action"],
        "Operations refused by the ACL (action=publish, subscribe or deliver).",
    ),
    def(
        "herald_sessions",
        Kind::Gauge,
        &["state"],
        "Sessions, by state (online: a connection owns it; offline: persistent, waiting).",
    ),
    def(
        "herald_subscriptions",
        Kind::Gauge,
        &[],
        "Subscriptions in the index (plain and shared memberships).",
    ),
    def(
        "herald_retained_messages",
        Kind::Gauge,
        &[],
        "Retained messages stored.",
    ),
    def(
        "herald_inflight_messages",
        Kind::Gauge,
        &[],
        "Outbound QoS 1/2 messages sent and not yet acknowledged.",
    ),
    def(
        "herald_queued_messages",
        Kind::Gauge,
        &[],
        "Messages in persistent sessions' stored queues (offline, or not yet acknowledged).",
    ),
    def(
        "herald_queued_bytes",
        Kind::Gauge,
        &[],
        "Bytes of the messages in persistent sessions' stored queues.",
    ),
    def(
        "herald_storage_healthy",
        Kind::Gauge,
        &[],
        "1 while the store accepts writes; 0 after a failed write or sync.",
    ),
    def(
        "herald_storage_writes_total",
        Kind::Counter,
        &[],
        "Group writes to the store (each one fsync when storage.sync is on).",
    ),
    def(
        "herald_storage_write_seconds",
        Kind::Histogram,
        &[],
        "Time to write one group of commands to the store.",
    ),
    def(
        "herald_storage_sync_seconds",
        Kind::Histogram,
        &[],
        "Time to sync one group write to disk (storage.sync on).",
    ),
    def(
        "herald_storage_group_commit_size",
        Kind::Histogram,
        &[],
        "Submissions carried by one group write.",
    ),
    def(
        DELIVER_LATENCY,
        Kind::Histogram,
        &[],
        "Time from receiving a PUBLISH to writing it to a subscriber (one delivery in 64 per connection is timed).",
    ),
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and declares every
/// metric. Returns `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("herald_storage_group_commit_size".into()),
                    &[
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
                    ],
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[
                        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
                        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ],
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            // Histogram samples wait in lock-free buckets until drained; a
            // broker nobody scrapes must not accumulate them, so they are
            // folded into their distributions every second.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("herald-metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start metrics upkeep; histograms drain at scrape only");
            }
            for d in DEFS {
                match d.kind {
                    Kind::Counter => describe_counter!(d.name, d.help),
                    Kind::Gauge => describe_gauge!(d.name, d.help),
                    Kind::Histogram if d.name.ends_with("_seconds") => {
                        describe_histogram!(d.name, Unit::Seconds, d.help)
                    }
                    Kind::Histogram => describe_histogram!(d.name, d.help),
                }
            }
            Some(handle)
        })
        .as_ref()
}

/// Copies the broker's counters into the registry and renders the
/// Prometheus text exposition.
pub fn render(broker: &Broker) -> String {
    let Some(handle) = install() else {
        return String::new();
    };
    export(broker);
    handle.render()
}

fn export(broker: &Broker) {
    let s = &broker.stats;
    let get = Stats::get;
    gauge!("herald_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    gauge!("herald_uptime_seconds").set(broker.started.elapsed().as_secs_f64());
    gauge!("herald_ready").set(if broker.is_ready() { 1.0 } else { 0.0 });
    gauge!("herald_connections").set(get(&s.connections_current) as f64);
    counter!("herald_connections_accepted_total").absolute(get(&s.connections_accepted));
    counter!("herald_connections_refused_total", "reason" => "limit")
        .absolute(get(&s.connections_refused_limit));
    for (i, reason) in CLOSE_REASONS.iter().enumerate() {
        counter!("herald_connections_closed_total", "reason" => *reason)
            .absolute(get(&s.closed[i]));
    }
    for (i, kind) in PACKET_TYPES.iter().enumerate() {
        counter!("herald_packets_received_total", "type" => *kind)
            .absolute(get(&s.packets_received[i]));
        counter!("herald_packets_sent_total", "type" => *kind).absolute(get(&s.packets_sent[i]));
        counter!("herald_received_bytes_total", "type" => *kind)
            .absolute(get(&s.bytes_received[i]));
        counter!("herald_sent_bytes_total", "type" => *kind).absolute(get(&s.bytes_sent[i]));
    }
    for (qos, label) in ["0", "1", "2"].iter().enumerate() {
        counter!("herald_messages_received_total", "qos" => *label)
            .absolute(get(&s.received_by_qos[qos]));
        counter!("herald_messages_delivered_total", "qos" => *label)
            .absolute(get(&s.delivered_by_qos[qos]));
    }
    for (reason, n) in DROP_REASONS.iter().zip(s.drops()) {
        counter!("herald_messages_dropped_total", "reason" => *reason).absolute(n);
    }
    counter!("herald_protocol_errors_total").absolute(get(&s.protocol_errors));
    counter!("herald_slow_consumers_total").absolute(get(&s.slow_consumers));
    counter!("herald_takeovers_total").absolute(get(&s.takeovers));
    counter!("herald_wills_published_total").absolute(get(&s.wills_published));
    counter!("herald_sessions_expired_total").absolute(get(&s.sessions_expired));
    counter!("herald_handshakes_failed_total").absolute(get(&s.handshakes_failed));
    for (reason, c) in [
        ("bad_credentials", &s.logins_failed_bad_credentials),
        ("not_authorized", &s.logins_failed_not_authorized),
        ("rate_limited", &s.logins_failed_rate_limited),
    ] {
        counter!("herald_logins_failed_total", "reason" => reason).absolute(get(c));
    }
    for (action, c) in [
        ("publish", &s.acl_denied_publish),
        ("subscribe", &s.acl_denied_subscribe),
        ("deliver", &s.acl_denied_deliver),
    ] {
        counter!("herald_acl_denied_total", "action" => action).absolute(get(c));
    }
    let (online, offline) = broker.session_counts();
    gauge!("herald_sessions", "state" => "online").set(online as f64);
    gauge!("herald_sessions", "state" => "offline").set(offline as f64);
    gauge!("herald_subscriptions").set(broker.index.len() as f64);
    gauge!("herald_retained_messages").set(broker.retained.read().len() as f64);
    gauge!("herald_inflight_messages").set(s.inflight.load(Ordering::Relaxed) as f64);
    let store = broker.store();
    let (queued, queued_bytes) = store.queue_totals();
    gauge!("herald_queued_messages").set(queued as f64);
    gauge!("herald_queued_bytes").set(queued_bytes as f64);
    gauge!("herald_storage_healthy").set(if store.is_healthy() { 1.0 } else { 0.0 });
    counter!("herald_storage_writes_total").absolute(store.writes_total());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let mut seen = std::collections::HashSet::new();
        for d in DEFS {
            assert!(d.name.starts_with("herald_"), "{} lacks the prefix", d.name);
            assert!(seen.insert(d.name), "{} declared twice", d.name);
            match d.kind {
                Kind::Counter => assert!(d.name.ends_with("_total"), "{}", d.name),
                Kind::Gauge | Kind::Histogram => {
                    assert!(!d.name.ends_with("_total"), "{}", d.name)
                }
            }
            for l in d.labels {
                assert!(
                    !["client_id", "topic", "client", "username"].contains(l),
                    "{} has an unbounded label {l}",
                    d.name
                );
            }
            assert!(!d.help.is_empty());
        }
    }
}

#[cfg(test)]
mod readme {
    /// The README's metric table lists exactly the metrics declared here.
    #[test]
    fn readme_lists_every_metric() {
        let readme = include_str!("../../README.md");
        let listed: std::collections::BTreeSet<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `herald_"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let declared: std::collections::BTreeSet<&str> = super::DEFS
            .iter()
            .map(|d| d.name.trim_start_matches("herald_"))
            .collect();
        assert_eq!(listed, declared, "README metric table is out of date");
    }
}
