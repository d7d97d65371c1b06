//! Sessions: wills, redelivery on resume, offline queueing and expiry.

mod common;

use std::time::{Duration, Instant};

use common::wire::{self, Connect, Will};
use common::{bounded, stat, wait_for, Raw, TestServer, QUIET};
use herald::codec::{reason, Packet, QoS};

fn will(topic: &str, payload: &[u8]) -> Will {
    Will {
        topic: topic.to_owned(),
        payload: payload.to_vec(),
        ..Will::default()
    }
}

#[tokio::test]
async fn will_is_published_on_abnormal_close_only() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut watcher = Raw::v311(srv.addr, "watcher").await;
        watcher.subscribe(1, &[("will/#", 0)]).await;

        // Socket dropped without DISCONNECT: the will goes [MQTT-3.1.2-8].
        let (raw, _) = Raw::connect(
            srv.addr,
            &Connect::v311("dies").will(will("will/dies", b"gone")),
        )
        .await;
        drop(raw);
        let p = watcher.expect_publish().await;
        assert_eq!(&*p.topic, "will/dies");
        assert_eq!(&p.payload[..], b"gone");

        // Normal DISCONNECT: the will is discarded [MQTT-3.1.2-10], [MQTT-3.14.4-3].
        let (mut raw, _) = Raw::connect(
            srv.addr,
            &Connect::v311("leaves").will(will("will/leaves", b"x")),
        )
        .await;
        raw.send(&wire::disconnect3()).await;
        raw.expect_close().await;
        let (mut raw, _) = Raw::connect(
            srv.addr,
            &Connect::v5("leaves5").will(will("will/leaves5", b"x")),
        )
        .await;
        raw.send(&wire::disconnect5(0, &[])).await;
        raw.expect_close().await;
        watcher.expect_quiet(QUIET).await;

        // 5.0 DISCONNECT 0x04 (Disconnect with Will Message): the will goes.
        let (mut raw, _) = Raw::connect(
            srv.addr,
            &Connect::v5("asks").will(will("will/asks", b"please")),
        )
        .await;
        raw.send(&wire::disconnect5(reason::DISCONNECT_WITH_WILL, &[]))
            .await;
        raw.expect_close().await;
        let p = watcher.expect_publish().await;
        assert_eq!(&*p.topic, "will/asks");

        // A protocol violation is an abnormal close too [MQTT-3.1.2-8].
        let (mut raw, _) = Raw::connect(
            srv.addr,
            &Connect::v311("breaks").will(will("will/breaks", b"b")),
        )
        .await;
        raw.send(&[0x30, 0x02, 0x00, 0x05]).await;
        raw.expect_close().await;
        let p = watcher.expect_publish().await;
        assert_eq!(&*p.topic, "will/breaks");
        assert_eq!(stat(&srv.broker.stats.wills_published), 3);
    })
    .await;
}

#[tokio::test]
async fn will_keeps_its_qos_and_retain_flag() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut watcher = Raw::v311(srv.addr, "w-qos").await;
        watcher.subscribe(1, &[("wr/#", 2)]).await;
        let w = Will {
            qos: 1,
            retain: true,
            ..will("wr/x", b"retained will")
        };
        let (raw, _) = Raw::connect(srv.addr, &Connect::v311("wr").will(w)).await;
        drop(raw);
        // Published at its Will QoS (section 3.1.2.6); a live delivery has RETAIN 0.
        let p = watcher.expect_publish().await;
        assert_eq!(p.qos, QoS::AtLeastOnce);
        assert!(!p.retain);
        watcher
            .send(&wire::puback(p.packet_id.expect("QoS 1")))
            .await;
        // Retained [MQTT-3.1.2-17]: a later subscriber gets it with RETAIN 1.
        let mut late = Raw::v311(srv.addr, "w-late").await;
        late.subscribe(1, &[("wr/x", 2)]).await;
        let p = late.expect_publish().await;
        assert!(p.retain);
        assert_eq!(&p.payload[..], b"retained will");
    })
    .await;
}

fn delayed(id: &str, delay: u32) -> Connect {
    Connect::v5(id)
        .clean(false)
        .prop(wire::p_u32(wire::SESSION_EXPIRY, 60))
        .will(Will {
            props: vec![wire::p_u32(wire::WILL_DELAY, delay)],
            ..will(&format!("wd/{id}"), b"late")
        })
}

#[tokio::test]
async fn will_delay_is_cancelled_by_a_resume() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut watcher = Raw::v311(srv.addr, "wd-watch").await;
        watcher.subscribe(1, &[("wd/#", 0)]).await;
        let (raw, _) = Raw::connect(srv.addr, &delayed("back", 2)).await;
        drop(raw);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Back within the delay: no will [MQTT-3.1.3-9].
        let (_raw, ack) = Raw::connect(srv.addr, &delayed("back", 2)).await;
        assert!(ack.session_present);
        watcher.expect_quiet(Duration::from_millis(2500)).await;
        assert_eq!(stat(&srv.broker.stats.wills_published), 0);
    })
    .await;
}

#[tokio::test]
async fn will_delay_publishes_after_the_delay() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut watcher = Raw::v311(srv.addr, "wd-watch2").await;
        watcher.subscribe(1, &[("wd/#", 0)]).await;
        let (raw, _) = Raw::connect(srv.addr, &delayed("away", 1)).await;
        let start = Instant::now();
        drop(raw);
        let p = watcher.expect_publish().await;
        assert_eq!(&*p.topic, "wd/away");
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "published after {:?}, before its delay",
            start.elapsed()
        );
    })
    .await;
}

/// A persistent 3.1.1 or 5.0 subscriber connection.
fn persistent(id: &str, v5: bool) -> Connect {
    if v5 {
        Connect::v5(id)
            .clean(false)
            .prop(wire::p_u32(wire::SESSION_EXPIRY, 300))
    } else {
        Connect::v311(id).clean(false)
    }
}

#[tokio::test]
async fn unacknowledged_publish_is_resent_with_dup_on_resume() {
    bounded(async {
        let srv = TestServer::start().await;
        for v5 in [false, true] {
            let id = if v5 { "dup5" } else { "dup3" };
            let topic = format!("dup/{id}");
            let (mut sub, _) = Raw::connect(srv.addr, &persistent(id, v5)).await;
            sub.subscribe(1, &[(&topic, 1)]).await;
            let mut publisher = Raw::v311(srv.addr, &format!("{id}-pub")).await;
            publisher.publish_acked(&topic, 1, false, 1, b"m1").await;
            let first = sub.expect_publish().await;
            assert!(!first.dup);
            let pid = first.packet_id.expect("QoS 1");
            // Gone before PUBACK.
            drop(sub);
            let (mut sub, ack) = Raw::connect(srv.addr, &persistent(id, v5)).await;
            assert!(ack.session_present);
            // [MQTT-4.4.0-1]: resent with DUP=1 [MQTT-3.3.1-1] and the same packet id.
            let again = sub.expect_publish().await;
            assert!(again.dup, "resent PUBLISH has DUP=1 (v5={v5})");
            assert_eq!(again.packet_id, Some(pid));
            assert_eq!(&again.payload[..], b"m1");
            sub.send(&wire::puback(pid)).await;
            assert!(sub.sync().await.is_empty());
            drop(sub);
            // Acknowledged: not sent again.
            let (mut sub, _) = Raw::connect(srv.addr, &persistent(id, v5)).await;
            sub.expect_quiet(QUIET).await;
        }
    })
    .await;
}

#[tokio::test]
async fn pubrel_is_resent_on_resume_after_pubrec() {
    bounded(async {
        let srv = TestServer::start().await;
        let (mut sub, _) = Raw::connect(srv.addr, &persistent("rel", false)).await;
        sub.subscribe(1, &[("rel", 2)]).await;
        let mut publisher = Raw::v311(srv.addr, "rel-pub").await;
        publisher.publish_acked("rel", 2, false, 1, b"x").await;
        let p = sub.expect_publish().await;
        let pid = p.packet_id.expect("QoS 2");
        sub.send(&wire::pubrec(pid)).await;
        assert!(matches!(sub.expect_packet().await, Packet::PubRel(r) if r.packet_id == pid));
        drop(sub);
        // [MQTT-4.4.0-1]: PUBREL (not the PUBLISH) is resent.
        let (mut sub, _) = Raw::connect(srv.addr, &persistent("rel", false)).await;
        assert!(matches!(sub.expect_packet().await, Packet::PubRel(r) if r.packet_id == pid));
        sub.send(&wire::pubcomp(pid)).await;
        assert!(sub.sync().await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn messages_queue_for_an_offline_persistent_session() {
    bounded(async {
        let srv = TestServer::start().await;
        for v5 in [false, true] {
            let id = if v5 { "off5" } else { "off3" };
            let topic = format!("off/{id}");
            let (mut sub, _) = Raw::connect(srv.addr, &persistent(id, v5)).await;
            sub.subscribe(1, &[(&topic, 2)]).await;
            if v5 {
                sub.send(&wire::disconnect5(0, &[])).await;
            } else {
                sub.send(&wire::disconnect3()).await;
            }
            sub.expect_close().await;
            let mut publisher = Raw::v311(srv.addr, &format!("{id}-pub")).await;
            for (i, qos) in [1u8, 2, 1].into_iter().enumerate() {
                let payload = [b'0' + i as u8];
                publisher
                    .publish_acked(&topic, qos, false, i as u16 + 1, &payload)
                    .await;
            }
            // [MQTT-3.1.2-5] (3.1.1) / [MQTT-3.1.2-4] (5.0): QoS 1 and 2 kept for the session, in order.
            let (mut sub, ack) = Raw::connect(srv.addr, &persistent(id, v5)).await;
            assert!(ack.session_present);
            let mut got = Vec::new();
            for (i, qos) in [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtLeastOnce]
                .into_iter()
                .enumerate()
            {
                let p = sub.expect_publish().await;
                assert_eq!(p.payload[..], [b'0' + i as u8]);
                assert_eq!(p.qos, qos);
                got.push((qos, p.packet_id.expect("QoS > 0")));
            }
            for (qos, pid) in got {
                if qos == QoS::AtLeastOnce {
                    sub.send(&wire::puback(pid)).await;
                } else {
                    sub.send(&wire::pubrec(pid)).await;
                    assert!(
                        matches!(sub.expect_packet().await, Packet::PubRel(r) if r.packet_id == pid)
                    );
                    sub.send(&wire::pubcomp(pid)).await;
                }
            }
            assert!(sub.sync().await.is_empty());
        }
    })
    .await;
}

#[tokio::test]
async fn a_clean_session_keeps_nothing() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut sub = Raw::v311(srv.addr, "clean").await;
        sub.subscribe(1, &[("clean/t", 1)]).await;
        sub.send(&wire::disconnect3()).await;
        sub.expect_close().await;
        let mut publisher = Raw::v311(srv.addr, "clean-pub").await;
        publisher.publish_acked("clean/t", 1, false, 1, b"x").await;
        // [MQTT-3.1.2-6]: the session ended with the connection.
        let (mut sub, ack) = Raw::connect(srv.addr, &Connect::v311("clean").clean(false)).await;
        assert!(!ack.session_present);
        sub.expect_quiet(QUIET).await;
    })
    .await;
}

#[tokio::test]
async fn session_expires_after_its_interval() {
    bounded(async {
        let srv = TestServer::start().await;
        let c = || {
            Connect::v5("exp1")
                .clean(false)
                .prop(wire::p_u32(wire::SESSION_EXPIRY, 1))
        };
        let (mut sub, _) = Raw::connect(srv.addr, &c()).await;
        sub.subscribe(1, &[("exp/t", 1)]).await;
        sub.send(&wire::disconnect5(0, &[])).await;
        sub.expect_close().await;
        // Still there right after the disconnect.
        assert_eq!(srv.broker.session_count(), 1);
        // [MQTT-3.1.2-23]: gone once the interval has passed.
        wait_for("session expired", Duration::from_secs(4), || {
            srv.broker.session_count() == 0
        })
        .await;
        assert_eq!(stat(&srv.broker.stats.sessions_expired), 1);
        let mut publisher = Raw::v311(srv.addr, "exp-pub").await;
        publisher.publish_acked("exp/t", 1, false, 1, b"x").await;
        let (mut sub, ack) = Raw::connect(srv.addr, &c()).await;
        assert!(!ack.session_present);
        sub.expect_quiet(QUIET).await;
    })
    .await;
}

#[tokio::test]
async fn disconnect_can_shorten_the_session_expiry() {
    bounded(async {
        let srv = TestServer::start().await;
        let c = |id: &str| {
            Connect::v5(id)
                .clean(false)
                .prop(wire::p_u32(wire::SESSION_EXPIRY, 300))
        };
        // DISCONNECT with expiry 0: the session ends now [MQTT-3.14.2-2] (section 3.14.2.2.2).
        let (mut raw, _) = Raw::connect(srv.addr, &c("short0")).await;
        raw.send(&wire::disconnect5(
            0,
            &[wire::p_u32(wire::SESSION_EXPIRY, 0)],
        ))
        .await;
        raw.expect_close().await;
        let (_raw, ack) = Raw::connect(srv.addr, &c("short0")).await;
        assert!(!ack.session_present);

        // DISCONNECT with expiry 1: gone a second later.
        let (mut raw, _) = Raw::connect(srv.addr, &c("short1")).await;
        raw.send(&wire::disconnect5(
            0,
            &[wire::p_u32(wire::SESSION_EXPIRY, 1)],
        ))
        .await;
        raw.expect_close().await;
        wait_for("session short1 expired", Duration::from_secs(4), || {
            stat(&srv.broker.stats.sessions_expired) == 1
        })
        .await;
        let (_raw, ack) = Raw::connect(srv.addr, &c("short1")).await;
        assert!(!ack.session_present);
    })
    .await;
}

#[tokio::test]
async fn disconnect_cannot_make_a_non_persistent_session_persistent() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut watcher = Raw::v311(srv.addr, "np-watch").await;
        watcher.subscribe(1, &[("np/#", 0)]).await;
        // Expiry 0 at CONNECT, non-zero at DISCONNECT: protocol error
        // [MQTT-3.14.2-2]; the server answers DISCONNECT 0x82 and the
        // will is published (not a normal disconnect).
        let (mut raw, _) =
            Raw::connect(srv.addr, &Connect::v5("np").will(will("np/will", b"w"))).await;
        raw.send(&wire::disconnect5(
            0,
            &[wire::p_u32(wire::SESSION_EXPIRY, 30)],
        ))
        .await;
        raw.expect_disconnect(reason::PROTOCOL_ERROR).await;
        let p = watcher.expect_publish().await;
        assert_eq!(&*p.topic, "np/will");
        let (_raw, ack) = Raw::connect(srv.addr, &Connect::v5("np").clean(false)).await;
        assert!(!ack.session_present);
    })
    .await;
}

#[tokio::test]
async fn takeover_moves_unacknowledged_messages_to_the_new_connection() {
    bounded(async {
        let srv = TestServer::start().await;
        let (mut old, _) = Raw::connect(srv.addr, &persistent("mover", true)).await;
        old.subscribe(1, &[("mv", 1)]).await;
        let mut publisher = Raw::v311(srv.addr, "mover-pub").await;
        publisher.publish_acked("mv", 1, false, 1, b"x").await;
        let first = old.expect_publish().await;
        // Same client id while the first is still connected [MQTT-3.1.4-3].
        let (mut new, ack) = Raw::connect(srv.addr, &persistent("mover", true)).await;
        assert!(ack.session_present);
        old.expect_disconnect(reason::SESSION_TAKEN_OVER).await;
        // [MQTT-4.4.0-1]: the unacknowledged PUBLISH is resent, DUP=1, same id.
        let again = new.expect_publish().await;
        assert!(again.dup);
        assert_eq!(again.packet_id, first.packet_id);
        new.send(&wire::puback(again.packet_id.expect("QoS 1")))
            .await;
        assert!(new.sync().await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn inbound_qos_2_stays_exactly_once_across_a_reconnect() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut sub = Raw::v311(srv.addr, "x-sub").await;
        sub.subscribe(1, &[("xo", 0)]).await;
        let (mut publisher, _) = Raw::connect(srv.addr, &persistent("x-pub", true)).await;
        publisher.publish("xo", 2, false, 9, b"once").await;
        assert!(matches!(publisher.expect_packet().await, Packet::PubRec(r) if r.packet_id == 9));
        assert_eq!(&sub.expect_publish().await.payload[..], b"once");
        // The publisher loses its connection before PUBREL and resumes.
        drop(publisher);
        let (mut publisher, ack) = Raw::connect(srv.addr, &persistent("x-pub", true)).await;
        assert!(ack.session_present);
        // It resends the PUBLISH with DUP: PUBREC again, no second delivery
        // [MQTT-4.3.3-9] (the id is part of the session state, section 4.1).
        publisher
            .send(&wire::publish("xo", 2, false, true, 9, Some(&[]), b"once"))
            .await;
        assert!(matches!(publisher.expect_packet().await, Packet::PubRec(r) if r.packet_id == 9));
        publisher.send(&wire::pubrel(9)).await;
        match publisher.expect_packet().await {
            Packet::PubComp(c) => assert_eq!((c.packet_id, c.reason), (9, reason::SUCCESS)),
            other => panic!("expected PUBCOMP, got {other:?}"),
        }
        sub.expect_quiet(QUIET).await;
    })
    .await;
}

#[tokio::test]
async fn retained_messages_on_subscribe_are_acknowledged_in_a_persistent_session() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut publisher = Raw::v311(srv.addr, "rp-pub").await;
        publisher.publish_acked("rp/a", 1, true, 1, b"A").await;
        let (mut sub, _) = Raw::connect(srv.addr, &persistent("rp", false)).await;
        sub.subscribe(1, &[("rp/#", 1)]).await;
        let p = sub.expect_publish().await;
        assert!(p.retain);
        sub.send(&wire::puback(p.packet_id.expect("QoS 1"))).await;
        assert!(sub.sync().await.is_empty());
        drop(sub);
        // Acknowledged, so not resent on resume.
        let (mut sub, ack) = Raw::connect(srv.addr, &persistent("rp", false)).await;
        assert!(ack.session_present);
        sub.expect_quiet(QUIET).await;
    })
    .await;
}

#[tokio::test]
async fn will_delay_is_cancelled_by_a_clean_start_reconnect_too() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut watcher = Raw::v311(srv.addr, "wd-watch3").await;
        watcher.subscribe(1, &[("wd/#", 0)]).await;
        let (raw, _) = Raw::connect(srv.addr, &delayed("fresh", 1)).await;
        drop(raw);
        tokio::time::sleep(Duration::from_millis(200)).await;
        // [MQTT-3.1.2-8]: not published when "a new Network Connection for
        // the ClientID is opened before the Will Delay Interval has elapsed",
        // whatever its Clean Start.
        let (_raw, ack) = Raw::connect(srv.addr, &Connect::v5("fresh")).await;
        assert!(!ack.session_present);
        watcher.expect_quiet(Duration::from_millis(1800)).await;
        assert_eq!(stat(&srv.broker.stats.wills_published), 0);
    })
    .await;
}

#[tokio::test]
async fn will_is_published_when_the_session_expires_before_the_delay() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut watcher = Raw::v311(srv.addr, "wd-watch4").await;
        watcher.subscribe(1, &[("wd/#", 0)]).await;
        // Will delay 30 s, session expiry 1 s: the session ends first.
        let c = Connect::v5("ends")
            .clean(false)
            .prop(wire::p_u32(wire::SESSION_EXPIRY, 1))
            .will(Will {
                props: vec![wire::p_u32(wire::WILL_DELAY, 30)],
                ..will("wd/ends", b"bye")
            });
        let (raw, _) = Raw::connect(srv.addr, &c).await;
        drop(raw);
        // [MQTT-3.1.2-8]: "…the Will Delay Interval has elapsed or the Session ends".
        let p = watcher.expect_publish().await;
        assert_eq!(&*p.topic, "wd/ends");
    })
    .await;
}
