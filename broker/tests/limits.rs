//! Resource limits: connections, subscriptions per client, slow consumers.

mod common;

use std::time::Duration;

use common::wire::{self, Connect};
use common::{bounded, stat, wait_for, Got, Raw, TestServer, V4};
use herald::codec::{reason, Packet};
use tokio::net::TcpSocket;

#[tokio::test]
async fn connections_over_the_limit_are_closed() {
    bounded(async {
        let srv = TestServer::start_with(|c| c.limits.max_connections = 2).await;
        let mut a = Raw::v311(srv.addr, "a").await;
        let mut b = Raw::v311(srv.addr, "b").await;
        // The third is closed at accept, before any CONNACK.
        let mut c = Raw::open(srv.addr).await;
        c.send_lossy(&Connect::v311("c").bytes()).await;
        let seen = c.expect_close().await;
        assert!(seen.is_empty(), "no CONNACK for the third: {seen:?}");
        assert_eq!(stat(&srv.broker.stats.connections_refused_limit), 1);
        // The first two are unaffected.
        assert!(a.sync().await.is_empty());
        assert!(b.sync().await.is_empty());
        // A slot freed is a slot available again.
        b.send(&wire::disconnect3()).await;
        b.expect_close().await;
        wait_for("connection released", Duration::from_secs(2), || {
            stat(&srv.broker.stats.connections_current) == 1
        })
        .await;
        let mut d = Raw::v311(srv.addr, "d").await;
        assert!(d.sync().await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn subscriptions_over_the_limit_are_refused() {
    bounded(async {
        let srv = TestServer::start_with(|c| c.limits.max_subscriptions_per_client = 2).await;
        let mut raw = Raw::v311(srv.addr, "subs3").await;
        // 3.1.1 has one failure code, 0x80 [MQTT-3.9.3-2].
        assert_eq!(
            raw.subscribe(1, &[("a", 0), ("b", 1), ("c", 0)]).await,
            [0, 1, 0x80]
        );
        // Replacing an existing subscription is not a new one [MQTT-3.8.4-3].
        assert_eq!(raw.subscribe(2, &[("a", 2)]).await, [2]);
        let mut raw = Raw::v5(srv.addr, "subs5").await;
        // 5.0: Quota exceeded.
        assert_eq!(
            raw.subscribe(1, &[("a", 0), ("b", 0), ("c", 0)]).await,
            [0, 0, reason::QUOTA_EXCEEDED]
        );
        // After an unsubscribe there is room again.
        raw.send(&wire::unsubscribe(2, true, &["a"])).await;
        assert!(matches!(raw.expect_packet().await, Packet::UnsubAck(_)));
        assert_eq!(raw.subscribe(3, &[("c", 1)]).await, [1]);
    })
    .await;
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected() {
    bounded(async {
        // Small enough to keep the flood short, larger than one burst of the
        // publisher below, so only a reader that stopped trips it.
        let srv = TestServer::start_with(|c| c.limits.max_outbound_bytes = 64 * 1024).await;
        // A subscriber with a small receive buffer that never reads.
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(srv.addr).await.expect("connect");
        let mut slow = Raw::from_stream(stream);
        slow.send(&Connect::v311("slow").bytes()).await;
        assert!(matches!(slow.expect_packet().await, Packet::ConnAck(a) if a.code == 0));
        assert_eq!(slow.subscribe(1, &[("flood", 0)]).await, [0]);

        // A subscriber that keeps reading is not affected.
        let mut fast = V4::connect(srv.addr, "fast", true).await;
        fast.subscribe("flood", rumqttc::QoS::AtMostOnce).await;

        let mut publisher = Raw::v311(srv.addr, "flooder").await;
        let payload = vec![b'x'; 512];
        let mut sent = 0;
        while stat(&srv.broker.stats.slow_consumers) == 0 {
            assert!(
                sent < 40_000,
                "no slow consumer detected after {sent} messages"
            );
            publisher.publish("flood", 0, false, 0, &payload).await;
            sent += 1;
            if sent % 10 == 0 {
                publisher.sync().await;
            }
        }
        assert!(sent > 10, "the backlog took {sent} messages to build");
        eprintln!("slow consumer detected after {sent} messages");
        // The slow subscriber is closed (it sees EOF after what was buffered)…
        let closed = async {
            loop {
                match slow.recv_within(Duration::from_secs(10)).await {
                    Got::Packet(_) => {}
                    Got::Closed => return,
                    Got::Timeout => panic!("slow consumer not closed"),
                }
            }
        };
        closed.await;
        // …and the publisher is not.
        assert!(publisher.sync().await.is_empty());
        assert!(stat(&srv.broker.stats.slow_consumers) > 0);
        // The reader got every message, so it was never cut off.
        publisher.publish("flood", 0, false, 0, b"last").await;
        let mut received = 0;
        loop {
            let p = fast.next_publish().await;
            received += 1;
            if &p.payload[..] == b"last" {
                break;
            }
        }
        assert_eq!(received, sent + 1, "the fast subscriber lost messages");
    })
    .await;
}

#[tokio::test]
async fn a_reader_is_not_cut_off_by_one_message_larger_than_the_outbound_bound() {
    bounded(async {
        let srv = TestServer::start_with(|c| c.limits.max_outbound_bytes = 1024).await;
        let mut sub = Raw::v311(srv.addr, "big-reader").await;
        sub.subscribe(1, &[("big", 0)]).await;
        let mut publisher = Raw::v311(srv.addr, "big-pub").await;
        // 4 KiB: over the bound on its own, but nothing is waiting before it.
        publisher.publish("big", 0, false, 0, &[1u8; 4096]).await;
        let p = sub.expect_publish().await;
        assert_eq!(p.payload.len(), 4096);
        assert!(
            sub.sync().await.is_empty(),
            "the subscriber is still connected"
        );
        assert_eq!(stat(&srv.broker.stats.slow_consumers), 0);
    })
    .await;
}

#[tokio::test]
async fn topic_length_and_depth_limits_apply() {
    bounded(async {
        let srv = TestServer::start_with(|c| {
            c.limits.max_topic_levels = 3;
            c.limits.max_topic_length_bytes = 16;
        })
        .await;
        let mut raw = Raw::v5(srv.addr, "tl").await;
        // Filters over the limits are refused in SUBACK, the others granted.
        let codes = raw
            .subscribe(
                1,
                &[("a/b/c/d", 0), ("a/b/c", 0), ("x/0123456789abcdef", 0)],
            )
            .await;
        assert_eq!(
            codes,
            [
                reason::TOPIC_FILTER_INVALID,
                0,
                reason::TOPIC_FILTER_INVALID
            ]
        );
        // A topic name over the limits closes with 0x90.
        raw.publish("a/b/c/d", 0, false, 0, b"x").await;
        raw.expect_disconnect(reason::TOPIC_NAME_INVALID).await;
        let mut raw = Raw::v5(srv.addr, "tl2").await;
        raw.publish("0123456789abcdefg", 0, false, 0, b"x").await;
        raw.expect_disconnect(reason::TOPIC_NAME_INVALID).await;
    })
    .await;
}
