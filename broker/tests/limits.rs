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

/// Reads packets from a raw stream until `n` PUBLISH packets arrived,
/// acknowledging QoS 1 ones; returns their payloads.
async fn read_publishes(stream: &mut tokio::net::TcpStream, n: usize) -> Vec<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = bytes::BytesMut::new();
    let mut got = Vec::new();
    while got.len() < n {
        while let Some(p) = herald::codec::decode_as_client(
            &mut buf,
            Some(herald::codec::ProtocolVersion::V3_1_1),
            u32::MAX,
        )
        .expect("well-formed")
        {
            if let Packet::Publish(p) = p {
                if let Some(id) = p.packet_id {
                    stream.write_all(&wire::puback(id)).await.expect("puback");
                }
                got.push(p.payload.to_vec());
            }
        }
        if got.len() >= n {
            break;
        }
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut buf))
            .await
            .expect("delivery within 10 s")
            .expect("read");
        assert!(read > 0, "subscriber closed after {} messages", got.len());
    }
    got
}

/// Connects a raw 3.1.1 client and subscribes it at QoS 1.
async fn raw_subscriber(srv: &TestServer, id: &str, filter: &str) -> tokio::net::TcpStream {
    let mut sub = Raw::v311(srv.addr, id).await;
    assert_eq!(sub.subscribe(1, &[(filter, 1)]).await, [1]);
    sub.stream
}

#[tokio::test]
async fn a_qos1_publisher_faster_than_its_subscriber_is_slowed_not_dropped() {
    // DESIGN 4.6: nothing is dropped after an acknowledgement that promised
    // delivery. A subscriber that reads late gets every message; the
    // publisher is held back meanwhile (backpressure).
    bounded(async {
        let srv = TestServer::start_with(|c| c.limits.max_outbound_bytes = 64 * 1024).await;
        let mut sub = raw_subscriber(&srv, "late-reader", "bp/t").await;
        const N: usize = 2_000;
        let addr = srv.addr;
        let publisher = tokio::spawn(async move {
            let mut p = Raw::v311(addr, "bp-pub").await;
            let payload = vec![b'p'; 512];
            for i in 0..N {
                let id = (i % 60_000 + 1) as u16;
                p.send(&wire::publish3("bp/t", 1, false, id, &payload))
                    .await;
            }
            let mut acked = 0;
            while acked < N {
                match p.expect_packet().await {
                    Packet::PubAck(_) => acked += 1,
                    other => panic!("expected PUBACK, got {other:?}"),
                }
            }
            acked
        });
        // Let the publisher run into the limit before reading anything:
        // 2,000 × 512 bytes is far above the 64 KiB bound.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = read_publishes(&mut sub, N).await;
        assert_eq!(got.len(), N);
        assert_eq!(publisher.await.expect("publisher"), N);
        assert_eq!(stat(&srv.broker.stats.dropped_queue_full), 0);
        assert_eq!(stat(&srv.broker.stats.dropped_slow_consumer), 0);
        assert_eq!(stat(&srv.broker.stats.slow_consumers), 0);
    })
    .await;
}

#[tokio::test]
async fn a_stalled_qos1_subscriber_is_disconnected_and_its_publisher_resumes() {
    bounded(async {
        let srv = TestServer::start_with(|c| {
            c.limits.max_outbound_bytes = 64 * 1024;
            c.limits.slow_consumer_timeout_secs = 1;
        })
        .await;
        // Subscribes, then never reads again.
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(srv.addr).await.expect("connect");
        let mut stalled = Raw::from_stream(stream);
        stalled.send(&Connect::v311("stalled").bytes()).await;
        assert!(matches!(stalled.expect_packet().await, Packet::ConnAck(a) if a.code == 0));
        assert_eq!(stalled.subscribe(1, &[("st/t", 1)]).await, [1]);
        // A healthy subscriber on the same topic.
        let mut healthy = raw_subscriber(&srv, "healthy", "st/t").await;
        let reader = tokio::spawn(async move { read_publishes(&mut healthy, 400).await.len() });

        let mut p = Raw::v311(srv.addr, "st-pub").await;
        let payload = vec![b's'; 1024];
        for i in 0..400u16 {
            p.publish_acked("st/t", 1, false, i + 1, &payload).await;
        }
        // The stalled one was disconnected as a slow consumer; the healthy
        // one and the publisher went on to the end.
        assert_eq!(stat(&srv.broker.stats.slow_consumers), 1);
        assert_eq!(reader.await.expect("reader"), 400);
    })
    .await;
}
