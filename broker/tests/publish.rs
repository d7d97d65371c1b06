//! Publish/subscribe: QoS flows, topic matching and retained messages.

mod common;

use common::wire::{self, Connect};
use common::{bounded, Raw, TestServer, QUIET, V4, V5};
use herald::codec::{reason, Packet, QoS};

fn q4(n: u8) -> rumqttc::QoS {
    match n {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn q5(n: u8) -> rumqttc::v5::mqttbytes::QoS {
    match n {
        0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        1 => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        _ => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

#[tokio::test]
async fn qos_0_1_2_flow_both_ways_with_rumqttc_3_1_1() {
    bounded(async {
        let srv = TestServer::start().await;
        for sub_qos in 0..=2u8 {
            let mut sub = V4::connect(srv.addr, &format!("sub{sub_qos}"), true).await;
            let filter = format!("q4/{sub_qos}/#");
            sub.subscribe(&filter, q4(sub_qos)).await;
            let publisher = V4::connect(srv.addr, &format!("pub{sub_qos}"), true).await;
            for pub_qos in 0..=2u8 {
                let topic = format!("q4/{sub_qos}/{pub_qos}");
                publisher
                    .client
                    .publish(&topic, q4(pub_qos), false, vec![pub_qos; 3])
                    .await
                    .expect("publish queued");
                let p = sub.next_publish().await;
                assert_eq!(p.topic, topic);
                assert_eq!(&p.payload[..], &[pub_qos; 3]);
                // min(published QoS, granted QoS) [MQTT-3.8.4-6].
                assert_eq!(p.qos, q4(pub_qos.min(sub_qos)));
                assert!(!p.retain);
            }
            sub.expect_no_publish(QUIET).await;
            publisher.disconnect().await;
            sub.disconnect().await;
        }
    })
    .await;
}

#[tokio::test]
async fn qos_0_1_2_flow_both_ways_with_rumqttc_5() {
    bounded(async {
        let srv = TestServer::start().await;
        for sub_qos in 0..=2u8 {
            let mut sub = V5::connect(srv.addr, &format!("sub5-{sub_qos}")).await;
            let filter = format!("q5/{sub_qos}/+");
            sub.subscribe(&filter, q5(sub_qos)).await;
            let publisher = V5::connect(srv.addr, &format!("pub5-{sub_qos}")).await;
            for pub_qos in 0..=2u8 {
                let topic = format!("q5/{sub_qos}/{pub_qos}");
                publisher
                    .client
                    .publish(&topic, q5(pub_qos), false, vec![pub_qos; 2])
                    .await
                    .expect("publish queued");
                let p = sub.next_publish().await;
                assert_eq!(&p.topic[..], topic.as_bytes());
                assert_eq!(p.qos, q5(pub_qos.min(sub_qos)), "[MQTT-3.8.4-8]");
            }
            sub.expect_no_publish(QUIET).await;
        }
    })
    .await;
}

#[tokio::test]
async fn raw_qos_handshakes_towards_the_subscriber() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut sub = Raw::v311(srv.addr, "rawsub").await;
        assert_eq!(sub.subscribe(1, &[("h/#", 2)]).await, vec![2]);
        let mut publisher = Raw::v311(srv.addr, "rawpub").await;

        publisher.publish_acked("h/1", 1, false, 10, b"one").await;
        let p = sub.expect_publish().await;
        assert_eq!(p.qos, QoS::AtLeastOnce);
        let pid = p.packet_id.expect("QoS 1 has a packet id");
        assert_ne!(pid, 0, "[MQTT-2.3.1-1]");
        sub.send(&wire::puback(pid)).await;

        publisher.publish_acked("h/2", 2, false, 11, b"two").await;
        let p = sub.expect_publish().await;
        assert_eq!(p.qos, QoS::ExactlyOnce);
        let pid = p.packet_id.expect("QoS 2 has a packet id");
        sub.send(&wire::pubrec(pid)).await;
        // [MQTT-4.3.3-1]: PUBREL with the same id (flags 0010).
        match sub.expect_packet().await {
            Packet::PubRel(r) => assert_eq!(r.packet_id, pid),
            other => panic!("expected PUBREL, got {other:?}"),
        }
        sub.send(&wire::pubcomp(pid)).await;
        assert!(sub.sync().await.is_empty(), "nothing resent after PUBCOMP");
    })
    .await;
}

#[tokio::test]
async fn inbound_qos_2_is_delivered_exactly_once() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut sub = Raw::v311(srv.addr, "once-sub").await;
        sub.subscribe(1, &[("once", 0)]).await;
        for v5 in [false, true] {
            let mut publisher = if v5 {
                Raw::v5(srv.addr, "once-pub5").await
            } else {
                Raw::v311(srv.addr, "once-pub").await
            };
            let props: Option<&[Vec<u8>]> = if v5 { Some(&[]) } else { None };
            // First copy, then the same id again with DUP before PUBREL.
            publisher
                .send(&wire::publish("once", 2, false, false, 42, props, b"x"))
                .await;
            assert!(
                matches!(publisher.expect_packet().await, Packet::PubRec(r) if r.packet_id == 42)
            );
            publisher
                .send(&wire::publish("once", 2, false, true, 42, props, b"x"))
                .await;
            assert!(
                matches!(publisher.expect_packet().await, Packet::PubRec(r) if r.packet_id == 42)
            );
            publisher.send(&wire::pubrel(42)).await;
            assert!(
                matches!(publisher.expect_packet().await, Packet::PubComp(r) if r.packet_id == 42)
            );
            // One delivery only [MQTT-4.3.3-2] (3.1.1) / [MQTT-4.3.3-9] (5.0).
            let p = sub.expect_publish().await;
            assert_eq!(&p.payload[..], b"x");
            sub.expect_quiet(QUIET).await;
        }
    })
    .await;
}

#[tokio::test]
async fn pubrel_for_an_unknown_id_gets_pubcomp() {
    bounded(async {
        let srv = TestServer::start().await;
        // 5.0: PUBCOMP 0x92 Packet Identifier not found.
        let mut raw = Raw::v5(srv.addr, "unk5").await;
        raw.send(&wire::pubrel(77)).await;
        match raw.expect_packet().await {
            Packet::PubComp(c) => {
                assert_eq!(c.packet_id, 77);
                assert_eq!(c.reason, reason::PACKET_IDENTIFIER_NOT_FOUND);
            }
            other => panic!("expected PUBCOMP, got {other:?}"),
        }
        // 3.1.1: PUBCOMP all the same [MQTT-4.3.3-1], connection kept.
        let mut raw = Raw::v311(srv.addr, "unk3").await;
        raw.send(&wire::pubrel(78)).await;
        assert!(matches!(raw.expect_packet().await, Packet::PubComp(c) if c.packet_id == 78));
        assert!(raw.sync().await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn wildcards_match_levels() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut plus = Raw::v311(srv.addr, "plus").await;
        plus.subscribe(1, &[("w/+/c", 0)]).await;
        let mut hash = Raw::v311(srv.addr, "hash").await;
        hash.subscribe(1, &[("w/#", 0)]).await;
        let mut publisher = Raw::v311(srv.addr, "wpub").await;
        for t in ["w/b/c", "w/b/d", "w/b/c/d", "w", "w/", "w//c"] {
            publisher.publish(t, 0, false, 0, t.as_bytes()).await;
        }
        publisher.sync().await;
        // `+` matches exactly one level, empty ones included [MQTT-4.7.1-3].
        let got: Vec<String> = collect_topics(&mut plus).await;
        assert_eq!(got, ["w/b/c", "w//c"]);
        // `#` matches the parent and any number of levels [MQTT-4.7.1-2].
        let got = collect_topics(&mut hash).await;
        assert_eq!(got, ["w/b/c", "w/b/d", "w/b/c/d", "w", "w/", "w//c"]);
    })
    .await;
}

/// Topics of the PUBLISH packets that arrive until a quiet period.
async fn collect_topics(raw: &mut Raw) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match raw.recv_within(QUIET).await {
            common::Got::Packet(Packet::Publish(p)) => out.push(p.topic.to_string()),
            common::Got::Timeout => return out,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn sys_topics_are_not_matched_by_leading_wildcards() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut all = Raw::v311(srv.addr, "all").await;
        all.subscribe(1, &[("#", 0), ("+/x", 0)]).await;
        let mut sys = Raw::v311(srv.addr, "sys").await;
        sys.subscribe(1, &[("$SYS/#", 0)]).await;
        let mut publisher = Raw::v311(srv.addr, "syspub").await;
        publisher.publish("$SYS/x", 0, false, 0, b"s").await;
        publisher.publish("a/x", 0, false, 0, b"a").await;
        publisher.sync().await;
        // [MQTT-4.7.2-1]: `#` and `+/…` do not match topics starting with `$`.
        assert_eq!(collect_topics(&mut all).await, ["a/x"]);
        assert_eq!(collect_topics(&mut sys).await, ["$SYS/x"]);
    })
    .await;
}

#[tokio::test]
async fn invalid_filters_get_a_failure_code() {
    bounded(async {
        let srv = TestServer::start().await;
        let bad = ["a/#/b", "a+/b", "#/a", "a/b#"];
        // 3.1.1: 0x80 per invalid filter, the valid one granted [MQTT-3.9.3-2].
        let mut raw = Raw::v311(srv.addr, "bad3").await;
        let mut filters: Vec<(&str, u8)> = bad.iter().map(|f| (*f, 1)).collect();
        filters.push(("ok/+", 1));
        let codes = raw.subscribe(1, &filters).await;
        assert_eq!(codes, [0x80, 0x80, 0x80, 0x80, 1]);
        // 5.0: 0x8F Topic Filter invalid.
        let mut raw = Raw::v5(srv.addr, "bad5").await;
        let codes = raw.subscribe(1, &filters).await;
        assert_eq!(codes, [0x8F, 0x8F, 0x8F, 0x8F, 1]);
        assert!(raw.sync().await.is_empty(), "connection kept");
    })
    .await;
}

#[tokio::test]
async fn a_wildcard_in_a_publish_topic_closes_the_connection() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut watcher = Raw::v311(srv.addr, "watch").await;
        watcher.subscribe(1, &[("#", 0)]).await;
        // [MQTT-3.3.2-2]: a topic name has no wildcards.
        for topic in ["a/+", "a/#"] {
            let mut raw = Raw::v311(srv.addr, "wc3").await;
            raw.send(&wire::publish3(topic, 0, false, 0, b"x")).await;
            raw.expect_close().await;
            let mut raw = Raw::v5(srv.addr, "wc5").await;
            raw.send(&wire::publish5(topic, 0, false, 0, b"x")).await;
            raw.expect_disconnect(reason::TOPIC_NAME_INVALID).await;
        }
        watcher.expect_quiet(QUIET).await;
    })
    .await;
}

#[tokio::test]
async fn retained_messages_are_stored_replaced_and_deleted() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut publisher = Raw::v311(srv.addr, "rpub").await;
        let mut live = Raw::v311(srv.addr, "rlive").await;
        live.subscribe(1, &[("r/#", 1)]).await;

        publisher.publish_acked("r/a", 1, true, 1, b"first").await;
        // A live subscriber gets it with RETAIN 0 [MQTT-3.3.1-9].
        let p = live.expect_publish().await;
        assert!(!p.retain);
        live.send(&wire::puback(p.packet_id.expect("QoS 1"))).await;

        // Stored: a new subscription gets it with RETAIN 1 [MQTT-3.3.1-5], [MQTT-3.3.1-8].
        let mut late = Raw::v311(srv.addr, "rlate").await;
        late.subscribe(1, &[("r/+", 1)]).await;
        let p = late.expect_publish().await;
        assert!(p.retain);
        assert_eq!(&p.payload[..], b"first");
        late.send(&wire::puback(p.packet_id.expect("QoS 1"))).await;

        // Replaced by the next retained message of the topic [MQTT-3.3.1-5].
        publisher.publish_acked("r/a", 0, true, 0, b"second").await;
        publisher.sync().await;
        let mut later = Raw::v311(srv.addr, "rlater").await;
        later.subscribe(1, &[("r/a", 1)]).await;
        let p = later.expect_publish().await;
        assert!(p.retain);
        assert_eq!(&p.payload[..], b"second");
        // Stored at the QoS it was published with.
        assert_eq!(p.qos, QoS::AtMostOnce);
        later.expect_quiet(QUIET).await;

        // An empty retained payload deletes it [MQTT-3.3.1-10] and is not
        // stored itself [MQTT-3.3.1-11]; live subscribers still get it.
        publisher.publish_acked("r/a", 0, true, 0, b"").await;
        publisher.sync().await;
        loop {
            let p = live.expect_publish().await;
            if p.payload.is_empty() {
                assert!(!p.retain);
                break;
            }
            if let Some(id) = p.packet_id {
                live.send(&wire::puback(id)).await;
            }
        }
        let mut last = Raw::v311(srv.addr, "rlast").await;
        last.subscribe(1, &[("r/#", 1)]).await;
        last.expect_quiet(QUIET).await;
    })
    .await;
}

#[tokio::test]
async fn overlapping_subscriptions_get_one_copy_at_the_highest_qos_in_3_1_1() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut sub = Raw::v311(srv.addr, "overlap").await;
        assert_eq!(
            sub.subscribe(1, &[("o/+", 0), ("o/#", 2), ("o/x", 1)])
                .await,
            [0, 2, 1]
        );
        let mut publisher = Raw::v311(srv.addr, "overlap-pub").await;
        publisher.publish_acked("o/x", 2, false, 5, b"m").await;
        // [MQTT-3.3.5-1]: respecting the maximum QoS of all matching subscriptions.
        let p = sub.expect_publish().await;
        assert_eq!(p.qos, QoS::ExactlyOnce);
        let pid = p.packet_id.expect("QoS 2");
        sub.send(&wire::pubrec(pid)).await;
        assert!(matches!(sub.expect_packet().await, Packet::PubRel(_)));
        sub.send(&wire::pubcomp(pid)).await;
        sub.expect_quiet(QUIET).await;
    })
    .await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut sub = Raw::v311(srv.addr, "unsub").await;
        sub.subscribe(1, &[("u/1", 0)]).await;
        sub.send(&wire::unsubscribe(2, false, &["u/1"])).await;
        // [MQTT-3.10.4-4]: UNSUBACK with the same packet id.
        assert!(matches!(sub.expect_packet().await, Packet::UnsubAck(a) if a.packet_id == 2));
        let mut publisher = Raw::v311(srv.addr, "unsub-pub").await;
        publisher.publish("u/1", 0, false, 0, b"x").await;
        publisher.sync().await;
        sub.expect_quiet(QUIET).await;

        // A 3.1 (MQIsdp) client subscribes the same way.
        let (mut old, _) = Raw::connect(srv.addr, &Connect::v31("legacy")).await;
        assert_eq!(old.subscribe(1, &[("u/2", 1)]).await, [1]);
    })
    .await;
}
