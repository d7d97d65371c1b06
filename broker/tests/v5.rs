//! MQTT 5.0 features: flow control, sizes, topic aliases, subscription
//! options, properties, message expiry, shared subscriptions, CONNACK
//! properties and enhanced authentication refusals.

mod common;

use std::time::Duration;

use common::wire::{self, Connect};
use common::{bounded, stat, Got, Raw, TestServer, QUIET, V5};
use herald::codec::{reason, Packet, QoS};
use rumqttc::v5::mqttbytes::v5::PublishProperties;

/// SUBSCRIBE options byte (5.0 section 3.8.3.1).
fn opts(qos: u8, no_local: bool, rap: bool, retain_handling: u8) -> u8 {
    qos | (u8::from(no_local) << 2) | (u8::from(rap) << 3) | (retain_handling << 4)
}

#[tokio::test]
async fn broker_respects_the_clients_receive_maximum() {
    bounded(async {
        let srv = TestServer::start().await;
        let c = Connect::v5("rm2").prop(wire::p_u16(wire::RECEIVE_MAXIMUM, 2));
        let (mut sub, _) = Raw::connect(srv.addr, &c).await;
        sub.subscribe(1, &[("rm/#", 1)]).await;
        let mut publisher = Raw::v5(srv.addr, "rm-pub").await;
        for i in 1..=5u16 {
            publisher
                .publish_acked("rm/t", 1, false, i, &[i as u8])
                .await;
        }
        // [MQTT-3.3.4-9]: never more than Receive Maximum unacknowledged.
        let a = sub.expect_publish().await;
        let b = sub.expect_publish().await;
        sub.expect_quiet(QUIET).await;
        assert_eq!((a.payload[0], b.payload[0]), (1, 2));
        // Each PUBACK makes room for one more, in order.
        sub.send(&wire::puback(a.packet_id.expect("QoS 1"))).await;
        let c3 = sub.expect_publish().await;
        assert_eq!(c3.payload[0], 3);
        sub.expect_quiet(QUIET).await;
        for p in [b, c3] {
            sub.send(&wire::puback(p.packet_id.expect("QoS 1"))).await;
        }
        let d = sub.expect_publish().await;
        let e = sub.expect_publish().await;
        assert_eq!((d.payload[0], e.payload[0]), (4, 5));
    })
    .await;
}

#[tokio::test]
async fn a_client_exceeding_our_receive_maximum_is_disconnected() {
    bounded(async {
        let srv = TestServer::start_with(|c| c.limits.max_inflight_messages = 2).await;
        let (mut raw, ack) = Raw::connect(srv.addr, &Connect::v5("greedy")).await;
        assert_eq!(ack.properties.receive_maximum, Some(2));
        // Two QoS 2 exchanges left open, then a third: [MQTT-3.3.4-8] → 0x93.
        for id in 1..=2u16 {
            raw.publish("rx", 2, false, id, b"x").await;
            assert!(matches!(raw.expect_packet().await, Packet::PubRec(_)));
        }
        raw.publish("rx", 2, false, 3, b"x").await;
        raw.expect_disconnect(reason::RECEIVE_MAXIMUM_EXCEEDED)
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_message_over_the_clients_maximum_packet_size_is_not_sent() {
    bounded(async {
        let srv = TestServer::start().await;
        let c = Connect::v5("small").prop(wire::p_u32(wire::MAXIMUM_PACKET_SIZE, 100));
        let (mut sub, _) = Raw::connect(srv.addr, &c).await;
        sub.subscribe(1, &[("mps", 1)]).await;
        let mut publisher = Raw::v5(srv.addr, "mps-pub").await;
        publisher
            .publish_acked("mps", 1, false, 1, &[7u8; 200])
            .await;
        publisher.publish_acked("mps", 1, false, 2, b"fits").await;
        // [MQTT-3.1.2-25]: the large one is discarded, the small one arrives.
        let p = sub.expect_publish().await;
        assert_eq!(&p.payload[..], b"fits");
        sub.send(&wire::puback(p.packet_id.expect("QoS 1"))).await;
        sub.expect_quiet(QUIET).await;
        assert_eq!(stat(&srv.broker.stats.dropped_too_large), 1);
    })
    .await;
}

#[tokio::test]
async fn inbound_topic_aliases_are_resolved() {
    bounded(async {
        let srv = TestServer::start_with(|c| c.mqtt.topic_alias_maximum = 5).await;
        let mut sub = Raw::v5(srv.addr, "ta-sub").await;
        sub.subscribe(1, &[("ta/#", 0)]).await;
        let mut publisher = Raw::v5(srv.addr, "ta-pub").await;
        let alias = [wire::p_u16(wire::TOPIC_ALIAS, 5)];
        // Set the alias with the topic, then use it with an empty topic [MQTT-3.3.2-12].
        publisher
            .send(&wire::publish(
                "ta/x",
                0,
                false,
                false,
                0,
                Some(&alias),
                b"1",
            ))
            .await;
        publisher
            .send(&wire::publish("", 0, false, false, 0, Some(&alias), b"2"))
            .await;
        publisher.sync().await;
        for payload in [b"1", b"2"] {
            let p = sub.expect_publish().await;
            assert_eq!(&*p.topic, "ta/x");
            assert_eq!(&p.payload[..], payload);
            // Aliases are per connection and not forwarded.
            assert_eq!(p.properties.topic_alias, None);
        }
        // Over the maximum: DISCONNECT 0x94 [MQTT-3.3.2-10].
        let over = [wire::p_u16(wire::TOPIC_ALIAS, 6)];
        publisher
            .send(&wire::publish(
                "ta/y",
                0,
                false,
                false,
                0,
                Some(&over),
                b"3",
            ))
            .await;
        publisher
            .expect_disconnect(reason::TOPIC_ALIAS_INVALID)
            .await;
        // Alias 0 is not permitted [MQTT-3.3.2-8]; 0x94 is defined for an
        // alias over the maximum, so this is a plain Protocol Error 0x82.
        let mut p2 = Raw::v5(srv.addr, "ta-pub2").await;
        let zero = [wire::p_u16(wire::TOPIC_ALIAS, 0)];
        p2.send(&wire::publish(
            "ta/z",
            0,
            false,
            false,
            0,
            Some(&zero),
            b"4",
        ))
        .await;
        p2.expect_disconnect(reason::PROTOCOL_ERROR).await;
        sub.expect_quiet(QUIET).await;
    })
    .await;
}

#[tokio::test]
async fn subscription_identifiers_are_returned_and_overlaps_send_one_copy() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut sub = Raw::v5(srv.addr, "sid").await;
        let id7 = [wire::p_varint(wire::SUBSCRIPTION_ID, 7)];
        let id9 = [wire::p_varint(wire::SUBSCRIPTION_ID, 9)];
        sub.subscribe_with(1, Some(&id7), &[("sid/+", 1)]).await;
        sub.subscribe_with(2, Some(&id9), &[("sid/#", 2)]).await;
        sub.subscribe(3, &[("sid/a", 0)]).await;
        let mut publisher = Raw::v5(srv.addr, "sid-pub").await;
        publisher.publish_acked("sid/a", 1, false, 1, b"m").await;
        // One copy [MQTT-3.3.4-2] carrying every identifier [MQTT-3.3.4-3], at the highest QoS.
        let p = sub.expect_publish().await;
        let mut ids = p.properties.subscription_identifiers.clone();
        ids.sort_unstable();
        assert_eq!(ids, [7, 9]);
        assert_eq!(p.qos, QoS::AtLeastOnce);
        sub.send(&wire::puback(p.packet_id.expect("QoS 1"))).await;
        sub.expect_quiet(QUIET).await;
        // Only the matching subscription's identifier.
        publisher.publish_acked("sid/a/b", 0, false, 0, b"n").await;
        let p = sub.expect_publish().await;
        assert_eq!(p.properties.subscription_identifiers, [9]);
    })
    .await;
}

#[tokio::test]
async fn no_local_skips_the_clients_own_messages() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut me = Raw::v5(srv.addr, "nl").await;
        me.subscribe(1, &[("nl/t", opts(0, true, false, 0))]).await;
        let mut other = Raw::v5(srv.addr, "nl-other").await;
        // [MQTT-3.8.3-3]: not forwarded to the connection that published it.
        me.publish("nl/t", 0, false, 0, b"mine").await;
        me.sync().await;
        other.publish("nl/t", 0, false, 0, b"theirs").await;
        let p = me.expect_publish().await;
        assert_eq!(&p.payload[..], b"theirs");
        me.expect_quiet(QUIET).await;
        // No Local on a shared subscription is a protocol error [MQTT-3.8.3-4].
        me.send(&wire::subscribe(
            2,
            Some(&[]),
            &[("$share/g/nl", opts(0, true, false, 0))],
        ))
        .await;
        me.expect_disconnect(reason::PROTOCOL_ERROR).await;
    })
    .await;
}

#[tokio::test]
async fn publish_properties_are_forwarded_to_rumqttc() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut sub = V5::connect(srv.addr, "props-sub").await;
        sub.subscribe("props/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
            .await;
        let publisher = V5::connect(srv.addr, "props-pub").await;
        let props = PublishProperties {
            payload_format_indicator: Some(1),
            content_type: Some("text/plain".into()),
            response_topic: Some("props/reply".into()),
            correlation_data: Some(bytes::Bytes::from_static(b"corr-1")),
            user_properties: vec![
                ("b".into(), "2".into()),
                ("a".into(), "1".into()),
                ("b".into(), "3".into()),
            ],
            ..PublishProperties::default()
        };
        publisher
            .client
            .publish_with_properties(
                "props/x",
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                "hello",
                props.clone(),
            )
            .await
            .expect("publish queued");
        let p = sub.next_publish().await;
        let got = p.properties.expect("properties forwarded");
        // [MQTT-3.3.2-4], [MQTT-3.3.2-15], [MQTT-3.3.2-16], [MQTT-3.3.2-17],
        // [MQTT-3.3.2-18], [MQTT-3.3.2-20]: forwarded unaltered, user
        // properties in order.
        assert_eq!(got.payload_format_indicator, Some(1));
        assert_eq!(got.content_type.as_deref(), Some("text/plain"));
        assert_eq!(got.response_topic.as_deref(), Some("props/reply"));
        assert_eq!(got.correlation_data.as_deref(), Some(&b"corr-1"[..]));
        assert_eq!(got.user_properties, props.user_properties);
        assert_eq!(got.message_expiry_interval, None);
    })
    .await;
}

fn persistent(id: &str) -> Connect {
    Connect::v5(id)
        .clean(false)
        .prop(wire::p_u32(wire::SESSION_EXPIRY, 300))
}

#[tokio::test]
async fn message_expiry_is_counted_down_while_queued() {
    bounded(async {
        let srv = TestServer::start().await;
        let (mut sub, _) = Raw::connect(srv.addr, &persistent("mx")).await;
        sub.subscribe(1, &[("mx", 1)]).await;
        sub.send(&wire::disconnect5(0, &[])).await;
        sub.expect_close().await;
        let mut publisher = Raw::v5(srv.addr, "mx-pub").await;
        let expiry = [wire::p_u32(wire::MESSAGE_EXPIRY, 10)];
        publisher
            .send(&wire::publish(
                "mx",
                1,
                false,
                false,
                1,
                Some(&expiry),
                b"m",
            ))
            .await;
        assert!(matches!(publisher.expect_packet().await, Packet::PubAck(_)));
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let (mut sub, _) = Raw::connect(srv.addr, &persistent("mx")).await;
        // [MQTT-3.3.2-6]: the interval received minus the time spent waiting.
        let p = sub.expect_publish().await;
        let left = p
            .properties
            .message_expiry_interval
            .expect("expiry forwarded");
        assert!((1..=8).contains(&left), "expiry {left}, expected at most 8");
    })
    .await;
}

#[tokio::test]
async fn expired_messages_are_never_delivered() {
    bounded(async {
        let srv = TestServer::start().await;
        let (mut sub, _) = Raw::connect(srv.addr, &persistent("mx2")).await;
        sub.subscribe(1, &[("mx2", 2)]).await;
        sub.send(&wire::disconnect5(0, &[])).await;
        sub.expect_close().await;
        let mut publisher = Raw::v5(srv.addr, "mx2-pub").await;
        let expiry = [wire::p_u32(wire::MESSAGE_EXPIRY, 1)];
        publisher
            .send(&wire::publish(
                "mx2",
                1,
                false,
                false,
                1,
                Some(&expiry),
                b"old",
            ))
            .await;
        assert!(matches!(publisher.expect_packet().await, Packet::PubAck(_)));
        // A retained message with an expiry, too.
        publisher
            .send(&wire::publish(
                "mx2",
                0,
                true,
                false,
                0,
                Some(&expiry),
                b"ret",
            ))
            .await;
        publisher.sync().await;
        tokio::time::sleep(Duration::from_millis(2200)).await;
        // [MQTT-3.3.2-5]: once expired it is not delivered to any subscriber.
        let (mut sub, ack) = Raw::connect(srv.addr, &persistent("mx2")).await;
        assert!(ack.session_present);
        sub.expect_quiet(QUIET).await;
        let mut fresh = Raw::v5(srv.addr, "mx2-fresh").await;
        fresh.subscribe(1, &[("mx2", 1)]).await;
        fresh.expect_quiet(QUIET).await;
        assert!(stat(&srv.broker.stats.dropped_expired) >= 1);
    })
    .await;
}

#[tokio::test]
async fn shared_subscriptions_deliver_each_message_to_one_member() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut publisher = Raw::v5(srv.addr, "sh-pub").await;
        publisher
            .publish_acked("sh/r", 0, true, 0, b"retained")
            .await;
        publisher.sync().await;
        let mut a = Raw::v5(srv.addr, "sh-a").await;
        let mut b = Raw::v5(srv.addr, "sh-b").await;
        assert_eq!(a.subscribe(1, &[("$share/g/sh/#", 0)]).await, [0]);
        assert_eq!(b.subscribe(1, &[("$share/g/sh/#", 0)]).await, [0]);
        // No retained messages to a shared subscription (section 4.8.2).
        a.expect_quiet(QUIET).await;
        b.expect_quiet(Duration::from_millis(50)).await;
        for i in 0..20u8 {
            publisher.publish("sh/t", 0, false, 0, &[i]).await;
        }
        publisher.sync().await;
        let mut seen = Vec::new();
        for raw in [&mut a, &mut b] {
            loop {
                match raw.recv_within(QUIET).await {
                    Got::Packet(Packet::Publish(p)) => seen.push(p.payload[0]),
                    Got::Timeout => break,
                    other => panic!("expected PUBLISH, got {other:?}"),
                }
            }
        }
        // Each message to exactly one member of the group (section 4.8.2).
        seen.sort_unstable();
        assert_eq!(seen, (0..20).collect::<Vec<u8>>());
    })
    .await;
}

#[tokio::test]
async fn connack_carries_the_servers_limits_and_features() {
    bounded(async {
        let srv = TestServer::start_with(|c| {
            c.limits.max_inflight_messages = 17;
            c.limits.max_packet_size_bytes = 4096;
            c.mqtt.topic_alias_maximum = 9;
        })
        .await;
        let (_raw, ack) = Raw::connect(srv.addr, &Connect::v5("props")).await;
        let p = ack.properties;
        // Section 3.2.2.3.
        assert_eq!(p.receive_maximum, Some(17));
        assert_eq!(p.maximum_packet_size, Some(4096));
        assert_eq!(p.topic_alias_maximum, Some(9));
        assert_eq!(p.retain_available, Some(1));
        assert_eq!(p.wildcard_subscription_available, Some(1));
        assert_eq!(p.subscription_identifiers_available, Some(1));
        assert_eq!(p.shared_subscription_available, Some(1));
        assert_eq!(p.assigned_client_identifier, None);
    })
    .await;
}

#[tokio::test]
async fn auth_without_a_started_exchange_is_a_protocol_error() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut raw = Raw::v5(srv.addr, "auth").await;
        // AUTH 0x18 (Continue authentication) when no exchange was started
        // and without a method (section 4.12): Protocol Error 0x82.
        raw.send(&wire::frame(0xF0, &[0x18, 0x00])).await;
        raw.expect_disconnect(reason::PROTOCOL_ERROR).await;
    })
    .await;
}

#[tokio::test]
async fn connect_with_an_authentication_method_is_refused() {
    bounded(async {
        let srv = TestServer::start().await;
        let c = Connect::v5("am").prop(wire::p_str(wire::AUTH_METHOD, "SCRAM-SHA-1"));
        let (mut raw, ack) = Raw::connect_raw(srv.addr, &c).await;
        // [MQTT-4.12.0-1]: CONNACK 0x8C and close.
        assert_eq!(ack.code, reason::BAD_AUTHENTICATION_METHOD);
        raw.expect_close().await;
    })
    .await;
}

#[tokio::test]
async fn retain_handling_and_retain_as_published() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut publisher = Raw::v5(srv.addr, "rh-pub").await;
        publisher.publish_acked("rh/t", 0, true, 0, b"kept").await;
        publisher.sync().await;
        let mut sub = Raw::v5(srv.addr, "rh").await;

        // 0: sent at every subscribe [MQTT-3.3.1-9].
        sub.subscribe(1, &[("rh/t", opts(0, false, false, 0))])
            .await;
        assert!(sub.expect_publish().await.retain);
        sub.subscribe(2, &[("rh/t", opts(0, false, false, 0))])
            .await;
        assert!(sub.expect_publish().await.retain);
        // 1: only when the subscription is new [MQTT-3.3.1-10].
        sub.subscribe(3, &[("rh/t", opts(0, false, false, 1))])
            .await;
        sub.expect_quiet(QUIET).await;
        sub.subscribe(4, &[("rh/+", opts(0, false, false, 1))])
            .await;
        assert!(sub.expect_publish().await.retain);
        // 2: never [MQTT-3.3.1-11].
        sub.subscribe(5, &[("rh/#", opts(0, false, false, 2))])
            .await;
        sub.expect_quiet(QUIET).await;

        // Retain As Published: live deliveries keep RETAIN 1 only with it
        // set [MQTT-3.3.1-12], [MQTT-3.3.1-13].
        let mut rap = Raw::v5(srv.addr, "rap").await;
        rap.subscribe(1, &[("rap/t", opts(0, false, true, 2))])
            .await;
        let mut plain = Raw::v5(srv.addr, "norap").await;
        plain
            .subscribe(1, &[("rap/t", opts(0, false, false, 2))])
            .await;
        publisher.publish("rap/t", 0, true, 0, b"r").await;
        assert!(rap.expect_publish().await.retain);
        assert!(!plain.expect_publish().await.retain);
        publisher.publish("rap/t", 0, false, 0, b"n").await;
        assert!(!rap.expect_publish().await.retain);
    })
    .await;
}

#[tokio::test]
async fn session_expiry_over_the_maximum_is_capped_in_connack() {
    bounded(async {
        let srv = TestServer::start_with(|c| c.mqtt.session_expiry_max_secs = 10).await;
        let c = Connect::v5("capx").prop(wire::p_u32(wire::SESSION_EXPIRY, 100));
        let (_raw, ack) = Raw::connect(srv.addr, &c).await;
        // Section 3.2.2.3.2: the server tells the value it uses.
        assert_eq!(ack.properties.session_expiry_interval, Some(10));
        let c = Connect::v5("capy").prop(wire::p_u32(wire::SESSION_EXPIRY, 5));
        let (_raw, ack) = Raw::connect(srv.addr, &c).await;
        assert_eq!(ack.properties.session_expiry_interval, None);
    })
    .await;
}

#[tokio::test]
async fn unsuback_reports_each_filter() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut raw = Raw::v5(srv.addr, "unsub5").await;
        raw.subscribe(1, &[("u/a", 0)]).await;
        raw.send(&wire::unsubscribe(2, true, &["u/a", "u/b"])).await;
        // [MQTT-3.11.3-1]: one reason code per filter, in order.
        match raw.expect_packet().await {
            Packet::UnsubAck(a) => {
                assert_eq!(a.packet_id, 2);
                assert_eq!(a.codes, [reason::SUCCESS, reason::NO_SUBSCRIPTION_EXISTED]);
            }
            other => panic!("expected UNSUBACK, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn no_matching_subscribers_is_reported_in_puback() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut raw = Raw::v5(srv.addr, "nms").await;
        raw.publish("nobody/here", 1, false, 3, b"x").await;
        // 0x10 No matching subscribers (section 3.4.2.1).
        match raw.expect_packet().await {
            Packet::PubAck(a) => assert_eq!(a.reason, reason::NO_MATCHING_SUBSCRIBERS),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn a_shared_group_keeps_delivering_when_a_member_leaves() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut a = Raw::v5(srv.addr, "shl-a").await;
        let mut b = Raw::v5(srv.addr, "shl-b").await;
        a.subscribe(1, &[("$share/grp/shl", 1)]).await;
        b.subscribe(1, &[("$share/grp/shl", 1)]).await;
        a.send(&wire::disconnect5(0, &[])).await;
        a.expect_close().await;
        let mut publisher = Raw::v5(srv.addr, "shl-pub").await;
        for i in 0..5u16 {
            publisher
                .publish_acked("shl", 1, false, i + 1, &[i as u8])
                .await;
        }
        // Every message reaches the remaining member.
        for i in 0..5u8 {
            let p = b.expect_publish().await;
            assert_eq!(p.payload[0], i);
            b.send(&wire::puback(p.packet_id.expect("QoS 1"))).await;
        }
    })
    .await;
}

#[tokio::test]
async fn retained_on_subscribe_carries_the_subscription_identifier() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut publisher = Raw::v5(srv.addr, "rsi-pub").await;
        publisher.publish_acked("rsi/t", 0, true, 0, b"r").await;
        publisher.sync().await;
        let mut sub = Raw::v5(srv.addr, "rsi").await;
        let id = [wire::p_varint(wire::SUBSCRIPTION_ID, 300)];
        sub.subscribe_with(1, Some(&id), &[("rsi/#", 0)]).await;
        // [MQTT-3.3.4-3]: the identifier of the subscription that caused it.
        let p = sub.expect_publish().await;
        assert!(p.retain);
        assert_eq!(p.properties.subscription_identifiers, [300]);
    })
    .await;
}

#[tokio::test]
async fn receive_maximum_applies_to_a_resumed_queue() {
    bounded(async {
        let srv = TestServer::start().await;
        let c = || {
            Connect::v5("rmq")
                .clean(false)
                .prop(wire::p_u32(wire::SESSION_EXPIRY, 60))
                .prop(wire::p_u16(wire::RECEIVE_MAXIMUM, 2))
        };
        let (mut sub, _) = Raw::connect(srv.addr, &c()).await;
        sub.subscribe(1, &[("rmq", 1)]).await;
        sub.send(&wire::disconnect5(0, &[])).await;
        sub.expect_close().await;
        let mut publisher = Raw::v5(srv.addr, "rmq-pub").await;
        for i in 1..=5u16 {
            publisher
                .publish_acked("rmq", 1, false, i, &[i as u8])
                .await;
        }
        let (mut sub, _) = Raw::connect(srv.addr, &c()).await;
        // [MQTT-3.3.4-9] holds for queued messages too, in order [MQTT-4.6.0-6].
        let mut next = 1u8;
        while next <= 5 {
            let a = sub.expect_publish().await;
            let b = if next < 5 {
                Some(sub.expect_publish().await)
            } else {
                None
            };
            sub.expect_quiet(QUIET).await;
            assert_eq!(a.payload[0], next);
            sub.send(&wire::puback(a.packet_id.expect("QoS 1"))).await;
            next += 1;
            if let Some(b) = b {
                assert_eq!(b.payload[0], next);
                sub.send(&wire::puback(b.packet_id.expect("QoS 1"))).await;
                next += 1;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn will_properties_are_forwarded() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut watcher = Raw::v5(srv.addr, "wp-watch").await;
        watcher.subscribe(1, &[("wp/#", 0)]).await;
        let c = Connect::v5("wp").will(common::wire::Will {
            topic: "wp/w".into(),
            payload: b"{}".to_vec(),
            props: vec![
                wire::p_u8(wire::PAYLOAD_FORMAT, 1),
                wire::p_str(wire::CONTENT_TYPE, "application/json"),
                wire::p_str(wire::RESPONSE_TOPIC, "wp/reply"),
                wire::p_bin(wire::CORRELATION_DATA, b"c"),
                wire::p_pair("k", "v"),
            ],
            ..Default::default()
        });
        let (raw, _) = Raw::connect(srv.addr, &c).await;
        drop(raw);
        // Section 3.1.3.2: will properties go out with the will message.
        let p = watcher.expect_publish().await;
        assert_eq!(p.properties.payload_format_indicator, Some(1));
        assert_eq!(
            p.properties.content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(p.properties.response_topic.as_deref(), Some("wp/reply"));
        assert_eq!(p.properties.correlation_data.as_deref(), Some(&b"c"[..]));
        assert_eq!(p.properties.user_properties.len(), 1);
        assert_eq!(&*p.properties.user_properties[0].0, "k");
    })
    .await;
}
