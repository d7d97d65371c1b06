//! The admin HTTP listener, Prometheus metrics and `$SYS` topics.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{bounded, Raw, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 GET; returns (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let req = format!("GET {path} HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("writes");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .expect("answers in time")
        .expect("reads");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn health_endpoints_answer() {
    bounded(async {
        let srv = TestServer::start().await;
        let admin = srv.admin.expect("admin enabled by default");
        assert_eq!(get(admin, "/health/live").await.0, 200);
        assert_eq!(get(admin, "/health/ready").await.0, 200);
        assert_eq!(get(admin, "/no/such/page").await.0, 404);
    })
    .await;
}

#[tokio::test]
async fn metrics_export_every_declared_metric_after_traffic() {
    bounded(async {
        let srv = TestServer::start().await;
        let admin = srv.admin.expect("admin enabled by default");
        let mut sub = Raw::v311(srv.addr, "m-sub").await;
        sub.subscribe(1, &[("m/t", 1)]).await;
        let mut publisher = Raw::v311(srv.addr, "m-pub").await;
        publisher.publish_acked("m/t", 1, true, 1, b"x").await;
        sub.expect_publish().await;
        let (status, body) = get(admin, "/metrics").await;
        assert_eq!(status, 200);
        for d in herald::metrics::DEFS {
            assert!(
                body.lines().any(|l| l.starts_with(d.name)),
                "{} missing from /metrics",
                d.name
            );
        }
        // Counters reflect the traffic (labels are bounded: never a client id).
        assert!(body.contains("herald_packets_received_total{type=\"publish\"}"));
        assert!(!body.contains("m-sub") && !body.contains("m/t"));
    })
    .await;
}

#[tokio::test]
async fn sys_topics_are_published_and_retained() {
    bounded(async {
        let srv = TestServer::start_with(|c| c.admin.sys_interval_secs = 1).await;
        let mut sub = Raw::v311(srv.addr, "sys-sub").await;
        sub.subscribe(1, &[("$SYS/broker/clients/connected", 0)])
            .await;
        let count = |p: &herald::codec::Publish| -> u64 {
            assert_eq!(&*p.topic, "$SYS/broker/clients/connected");
            std::str::from_utf8(&p.payload)
                .expect("utf-8")
                .parse()
                .expect("a number")
        };
        // If a tick ran before this client connected, the subscription first
        // gets that tick's retained value, which may count 0 clients; the
        // next tick, a second later, counts the subscriber itself.
        let mut p = sub.expect_publish().await;
        if p.retain {
            count(&p);
            p = sub.expect_publish().await;
        }
        assert!(!p.retain, "a live publication is not marked retained");
        assert!(count(&p) >= 1);
        // A plain '#' subscription never sees them [MQTT-4.7.2-1].
        let mut all = Raw::v311(srv.addr, "sys-all").await;
        all.subscribe(1, &[("#", 0)]).await;
        all.expect_quiet(Duration::from_millis(1500)).await;
    })
    .await;
}

#[tokio::test]
async fn admin_can_be_disabled() {
    bounded(async {
        let srv = TestServer::start_with(|c| c.admin.enabled = false).await;
        assert!(srv.admin.is_none());
    })
    .await;
}
