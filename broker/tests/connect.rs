//! CONNECT, CONNACK, keep alive, takeover and shutdown over real TCP.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::wire::{self, Connect};
use common::{bounded, stat, wait_for, Got, Raw, TestServer, QUIET, V4, V5};
use herald::codec::{reason, Packet};

#[tokio::test]
async fn every_supported_version_is_accepted_and_works() {
    bounded(async {
        let srv = TestServer::start().await;
        for (i, c) in [
            Connect::v31("a31"),
            Connect::v311("a311"),
            Connect::v5("a5"),
        ]
        .into_iter()
        .enumerate()
        {
            let (mut raw, ack) = Raw::connect(srv.addr, &c).await;
            // A new session: session present 0 [MQTT-3.2.2-1] (3.1.1) / [MQTT-3.2.2-2] (5.0).
            assert!(!ack.session_present);
            let topic = format!("v/{i}");
            assert_eq!(raw.subscribe(1, &[(&topic, 1)]).await, vec![1]);
            raw.publish_acked(&topic, 1, false, 2, b"hello").await;
            let p = raw.expect_publish().await;
            assert_eq!(&p.payload[..], b"hello");
            assert_eq!(&*p.topic, topic.as_str());
        }
    })
    .await;
}

#[tokio::test]
async fn unsupported_protocol_level_is_refused_then_closed() {
    bounded(async {
        let srv = TestServer::start().await;
        // Level 6 of "MQTT": 3.x CONNACK return code 1 then close [MQTT-3.1.2-2].
        let c = Connect {
            level: 6,
            ..Connect::v311("lvl6")
        };
        let (mut raw, ack) = Raw::connect_raw(srv.addr, &c).await;
        assert_eq!(ack.code, 1);
        assert!(!ack.session_present);
        raw.expect_close().await;

        // Level 5 under a name that is not "MQTT": 5.0 CONNACK 0x84 then close.
        let c = Connect {
            name: "MQIsdp",
            level: 5,
            ..Connect::v5("lvl5")
        };
        let (mut raw, ack) = Raw::connect_raw(srv.addr, &c).await;
        assert_eq!(ack.code, reason::UNSUPPORTED_PROTOCOL_VERSION);
        raw.expect_close().await;

        // 3.1 switched off: refused with return code 1.
        let srv31 = TestServer::start_with(|c| c.mqtt.allow_mqtt_3_1 = false).await;
        let (mut raw, ack) = Raw::connect_raw(srv31.addr, &Connect::v31("old")).await;
        assert_eq!(ack.code, 1);
        raw.expect_close().await;
    })
    .await;
}

#[tokio::test]
async fn empty_client_id_is_assigned_in_v5() {
    bounded(async {
        let srv = TestServer::start().await;
        // [MQTT-3.1.3-6], [MQTT-3.2.2-16]: the server assigns an identifier and returns it.
        let (_raw, ack) = Raw::connect(srv.addr, &Connect::v5("")).await;
        let id = ack
            .properties
            .assigned_client_identifier
            .expect("Assigned Client Identifier present");
        assert!(!id.is_empty());
        let (_raw2, ack2) = Raw::connect(srv.addr, &Connect::v5("")).await;
        let id2 = ack2
            .properties
            .assigned_client_identifier
            .expect("assigned");
        assert_ne!(id, id2, "assigned identifiers are unique");

        // rumqttc sees it too.
        let c = V5::connect(srv.addr, "").await;
        let props = c.connack.properties.clone().expect("CONNACK properties");
        assert!(props.assigned_client_identifier.is_some());
    })
    .await;
}

#[tokio::test]
async fn empty_client_id_in_3_1_1_needs_clean_session() {
    bounded(async {
        let srv = TestServer::start().await;
        // Clean session 1: accepted [MQTT-3.1.3-7].
        let (_ok, ack) = Raw::connect(srv.addr, &Connect::v311("")).await;
        assert!(!ack.session_present);
        // Clean session 0: return code 2, session present 0, close
        // [MQTT-3.1.3-8], [MQTT-3.2.2-4].
        let (mut raw, ack) = Raw::connect_raw(srv.addr, &Connect::v311("").clean(false)).await;
        assert_eq!(ack.code, 2);
        assert!(!ack.session_present);
        raw.expect_close().await;
    })
    .await;
}

#[tokio::test]
async fn session_present_follows_clean_session_in_3_1_1() {
    bounded(async {
        let srv = TestServer::start().await;
        let id = "sp311";
        // No session yet: 0 [MQTT-3.2.2-3].
        let (mut raw, ack) = Raw::connect(srv.addr, &Connect::v311(id).clean(false)).await;
        assert!(!ack.session_present);
        raw.send(&wire::disconnect3()).await;
        raw.expect_close().await;
        // Resumed: 1 [MQTT-3.2.2-2].
        let (mut raw, ack) = Raw::connect(srv.addr, &Connect::v311(id).clean(false)).await;
        assert!(ack.session_present);
        raw.send(&wire::disconnect3()).await;
        raw.expect_close().await;
        // Clean session 1: always 0 [MQTT-3.2.2-1], and the old one is gone.
        let (mut raw, ack) = Raw::connect(srv.addr, &Connect::v311(id)).await;
        assert!(!ack.session_present);
        raw.send(&wire::disconnect3()).await;
        raw.expect_close().await;
        let (_raw, ack) = Raw::connect(srv.addr, &Connect::v311(id).clean(false)).await;
        assert!(!ack.session_present);
    })
    .await;
}

#[tokio::test]
async fn session_present_follows_clean_start_and_expiry_in_v5() {
    bounded(async {
        let srv = TestServer::start().await;
        let id = "sp5";
        let keep = || {
            Connect::v5(id)
                .clean(false)
                .prop(wire::p_u32(wire::SESSION_EXPIRY, 60))
        };
        let (mut raw, ack) = Raw::connect(srv.addr, &keep()).await;
        assert!(!ack.session_present);
        raw.send(&wire::disconnect5(0, &[])).await;
        raw.expect_close().await;
        let (mut raw, ack) = Raw::connect(srv.addr, &keep()).await;
        assert!(ack.session_present, "[MQTT-3.2.2-2]");
        raw.send(&wire::disconnect5(0, &[])).await;
        raw.expect_close().await;
        // Clean Start 1 discards it: session present 0 [MQTT-3.2.2-2].
        let (mut raw, ack) = Raw::connect(srv.addr, &Connect::v5(id)).await;
        assert!(!ack.session_present);
        raw.send(&wire::disconnect5(0, &[])).await;
        raw.expect_close().await;
        // Expiry 0 (the default): nothing left to resume [MQTT-3.1.2-23].
        let (_raw, ack) = Raw::connect(srv.addr, &Connect::v5(id).clean(false)).await;
        assert!(!ack.session_present);
    })
    .await;
}

#[tokio::test]
async fn a_packet_before_connect_closes_the_connection() {
    bounded(async {
        let srv = TestServer::start().await;
        // [MQTT-3.1.0-1]: the first packet must be CONNECT.
        let mut raw = Raw::open(srv.addr).await;
        raw.send(&wire::pingreq()).await;
        let seen = raw.expect_close().await;
        assert!(seen.is_empty(), "nothing is sent back: {seen:?}");
        let mut raw = Raw::open(srv.addr).await;
        raw.send(&wire::publish3("t", 0, false, 0, b"x")).await;
        raw.expect_close().await;
        wait_for("protocol errors counted", Duration::from_secs(2), || {
            stat(&srv.broker.stats.protocol_errors) >= 2
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_second_connect_closes_the_connection() {
    bounded(async {
        let srv = TestServer::start().await;
        // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
        let mut raw = Raw::v311(srv.addr, "twice").await;
        raw.send(&Connect::v311("twice").bytes()).await;
        raw.expect_close().await;
        // 5.0: DISCONNECT 0x82 first.
        let mut raw = Raw::v5(srv.addr, "twice5").await;
        raw.send(&Connect::v5("twice5").bytes()).await;
        raw.expect_disconnect(reason::PROTOCOL_ERROR).await;
    })
    .await;
}

#[tokio::test]
async fn connect_timeout_closes_an_idle_socket() {
    bounded(async {
        let srv = TestServer::start_with(|c| c.limits.connect_timeout_secs = 1).await;
        let start = Instant::now();
        let mut raw = Raw::open(srv.addr).await;
        let seen = raw.expect_close_within(Duration::from_secs(4)).await;
        assert!(seen.is_empty());
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "closed too early"
        );
        assert_eq!(stat(&srv.broker.stats.connect_timeouts), 1);
    })
    .await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_one_and_a_half_keep_alives() {
    bounded(async {
        let srv = TestServer::start().await;
        // [MQTT-3.1.2-24]: 1.5 × keep alive without a packet → close.
        let (mut raw, _) = Raw::connect(srv.addr, &Connect::v311("ka").keep_alive(1)).await;
        let start = Instant::now();
        let seen = raw.expect_close_within(Duration::from_secs(5)).await;
        assert!(seen.is_empty());
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1400), "closed after {took:?}");
        // 5.0: DISCONNECT 0x8D first.
        let (mut raw, _) = Raw::connect(srv.addr, &Connect::v5("ka5").keep_alive(1)).await;
        let start = Instant::now();
        raw.expect_disconnect(reason::KEEP_ALIVE_TIMEOUT).await;
        assert!(start.elapsed() >= Duration::from_millis(1400));
        assert_eq!(stat(&srv.broker.stats.keep_alive_timeouts), 2);
    })
    .await;
}

#[tokio::test]
async fn a_client_that_pings_stays_connected() {
    bounded(async {
        let srv = TestServer::start().await;
        let (mut raw, _) = Raw::connect(srv.addr, &Connect::v311("pinger").keep_alive(1)).await;
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            raw.send(&wire::pingreq()).await;
            // [MQTT-3.12.4-1]: PINGRESP.
            assert!(matches!(raw.expect_packet().await, Packet::PingResp));
        }
    })
    .await;
}

#[tokio::test]
async fn server_keep_alive_caps_what_the_client_asks() {
    bounded(async {
        let srv = TestServer::start_with(|c| c.mqtt.keep_alive_max_secs = 1).await;
        // Asked 60 (over the cap): Server Keep Alive 1 [MQTT-3.2.2-21] and it is
        // enforced [MQTT-3.2.2-22].
        let (mut raw, ack) = Raw::connect(srv.addr, &Connect::v5("cap").keep_alive(60)).await;
        assert_eq!(ack.properties.server_keep_alive, Some(1));
        raw.expect_disconnect(reason::KEEP_ALIVE_TIMEOUT).await;
        // Asked 0 (none): also capped.
        let (_raw, ack) = Raw::connect(srv.addr, &Connect::v5("cap0").keep_alive(0)).await;
        assert_eq!(ack.properties.server_keep_alive, Some(1));
        // Within the cap: not sent.
        let srv = TestServer::start_with(|c| c.mqtt.keep_alive_max_secs = 30).await;
        let (_raw, ack) = Raw::connect(srv.addr, &Connect::v5("under").keep_alive(10)).await;
        assert_eq!(ack.properties.server_keep_alive, None);
    })
    .await;
}

#[tokio::test]
async fn takeover_closes_the_old_connection() {
    bounded(async {
        let srv = TestServer::start().await;
        // [MQTT-3.1.4-3]: the existing client is disconnected.
        let mut old = Raw::v311(srv.addr, "same").await;
        let _new = Raw::v311(srv.addr, "same").await;
        old.expect_close().await;
        // 5.0: DISCONNECT 0x8E.
        let mut old = Raw::v5(srv.addr, "same5").await;
        let mut new = Raw::v5(srv.addr, "same5").await;
        old.expect_disconnect(reason::SESSION_TAKEN_OVER).await;
        assert!(new.sync().await.is_empty(), "the new connection works");
        assert_eq!(stat(&srv.broker.stats.takeovers), 2);

        // rumqttc: the old client's event loop sees the close.
        let mut a = V4::connect(srv.addr, "rq", true).await;
        let _b = V4::connect(srv.addr, "rq", true).await;
        a.expect_error().await;
    })
    .await;
}

#[tokio::test]
async fn graceful_shutdown_sends_server_shutting_down() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut v5 = Raw::v5(srv.addr, "bye5").await;
        let mut v3 = Raw::v311(srv.addr, "bye3").await;
        srv.stop().await;
        // [MQTT-4.13.1-1] / DISCONNECT 0x8B for 5.0; 3.x is just closed.
        v5.expect_disconnect(reason::SERVER_SHUTTING_DOWN).await;
        let seen = v3.expect_close().await;
        assert!(seen.is_empty(), "3.x gets no DISCONNECT: {seen:?}");
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_a_socket_that_never_sent_connect() {
    bounded(async {
        // A CONNECT timeout far past the test's deadline: only shutdown can
        // close this socket in time.
        let srv = TestServer::start_with(|c| c.limits.connect_timeout_secs = 3600).await;
        let mut raw = Raw::open(srv.addr).await;
        let broker = Arc::clone(&srv.broker);
        wait_for("the connection counted", Duration::from_secs(5), || {
            stat(&broker.stats.connections_current) == 1
        })
        .await;
        srv.stop().await;
        let seen = raw.expect_close_within(Duration::from_secs(10)).await;
        assert!(seen.is_empty(), "nothing is sent before CONNECT: {seen:?}");
        assert_eq!(stat(&broker.stats.connections_current), 0);
    })
    .await;
}

#[tokio::test]
async fn pingreq_is_answered_without_other_traffic() {
    bounded(async {
        let srv = TestServer::start().await;
        let mut raw = Raw::v311(srv.addr, "p").await;
        raw.send(&wire::pingreq()).await;
        match raw.recv().await {
            Got::Packet(Packet::PingResp) => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
        raw.expect_quiet(QUIET).await;
    })
    .await;
}
