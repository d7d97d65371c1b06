//! Listeners other than the default one, with real clients: TLS with a test
//! CA made at test time (openssl CLI) and Debian's mosquitto_pub /
//! mosquitto_sub, a client certificate's CN as the username, WebSocket and
//! WebSocket over TLS with paho-mqtt (PyPI) and with a raw WebSocket client,
//! the PROXY protocol, and handshakes that never finish.
//!
//! Where a tool is missing the test is skipped with a message, unless `CI`
//! is set (CI installs them: `scripts/deps`).

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::pki::{have, have_openssl_and_mosquitto, Pki, PUB, SUB};
use common::{bounded, stat, wait_for, wire, Got, Raw, TestServer, READ_DEADLINE};
use futures_util::{SinkExt, StreamExt};
use herald::config::{ListenerConfig, ListenerKind};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

async fn mosquitto(tool: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(tool)
        .args(args)
        .output()
        .await
        .expect("mosquitto client runs")
}

/// mosquitto_pub and mosquitto_sub over TLS, verifying the server against
/// the test CA, in 3.1.1 and 5.0.
#[tokio::test]
async fn tls_with_mosquitto_clients() {
    if !have_openssl_and_mosquitto() {
        return;
    }
    bounded(async {
        let pki = Pki::new();
        let server =
            TestServer::start_with(|c| c.listeners.push(pki.listener(ListenerKind::Tls))).await;
        let port = server.listeners[0].port().to_string();
        let ca = pki.arg("ca.pem");
        for (version, topic) in [("mqttv311", "tls/3"), ("mqttv5", "tls/5")] {
            let common = [
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "--cafile",
                &ca,
                "-V",
                version,
            ];
            let out = mosquitto(
                PUB,
                &[&common[..], &["-q", "1", "-r", "-t", topic, "-m", "secret"]].concat(),
            )
            .await;
            assert!(out.status.success(), "mosquitto_pub over TLS: {out:?}");
            let out = mosquitto(
                SUB,
                &[&common[..], &["-t", topic, "-C", "1", "-W", "10"]].concat(),
            )
            .await;
            assert!(out.status.success(), "mosquitto_sub over TLS: {out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "secret");
        }
        // A client that does not trust the server's CA fails the handshake.
        let out = mosquitto(
            PUB,
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "--cafile",
                &pki.arg("server.pem"),
                "-t",
                "x",
                "-m",
                "y",
            ],
        )
        .await;
        assert!(!out.status.success());
        // The plain listener is unaffected.
        Raw::v311(server.addr, "plain").await;
        server.stop().await;
    })
    .await;
}

/// A client certificate's CN is the username (no password needed even with
/// a password file), and the ACL applies to it; without a certificate the
/// handshake fails.
#[tokio::test]
async fn tls_client_certificate_cn_is_the_username() {
    if !have_openssl_and_mosquitto() {
        return;
    }
    bounded(async {
        let pki = Pki::new();
        let pw = pki.path("passwd");
        std::fs::write(&pw, "").expect("write");
        let acl = pki.path("acl");
        std::fs::write(&acl, "user alice\ntopic readwrite alice/#\n").expect("write");
        let server = TestServer::start_with(|c| {
            let mut l = pki.listener(ListenerKind::Tls);
            l.client_ca_file = Some(pki.path("ca.pem"));
            l.require_client_cert = true;
            l.use_identity_as_username = true;
            c.listeners.push(l);
            c.auth.password_file = Some(pw);
            c.auth.acl_file = Some(acl);
        })
        .await;
        let port = server.listeners[0].port().to_string();
        let (ca, cert, key) = (
            pki.arg("ca.pem"),
            pki.arg("client.pem"),
            pki.arg("client.key"),
        );
        let tls = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--cafile",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
        ];
        let out = mosquitto(
            PUB,
            &[&tls[..], &["-q", "1", "-r", "-t", "alice/x", "-m", "hi"]].concat(),
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        let out = mosquitto(
            SUB,
            &[&tls[..], &["-t", "alice/#", "-C", "1", "-W", "10"]].concat(),
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi");
        // The ACL applies to the CN: another tree is refused (SUBACK 0x80).
        let out = mosquitto(
            SUB,
            &[&tls[..], &["-t", "bob/#", "-C", "1", "-W", "3"]].concat(),
        )
        .await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("denied"), "{out:?}");
        // No client certificate: refused.
        let out = mosquitto(
            PUB,
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "--cafile",
                &ca,
                "-t",
                "alice/x",
                "-m",
                "y",
            ],
        )
        .await;
        assert!(!out.status.success());
        wait_for("the failed handshake is counted", READ_DEADLINE, || {
            stat(&server.broker.stats.handshakes_failed) >= 1
        })
        .await;
        server.stop().await;
    })
    .await;
}

const PAHO_ROUND_TRIP: &str = r#"
import sys, threading
import paho.mqtt.client as mqtt
port, path, ca, version = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
proto = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311
done = threading.Event()
got = []
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-" + version, transport="websockets", protocol=proto)
c.ws_set_options(path=path)
if ca:
    c.tls_set(ca_certs=ca)
def on_connect(client, userdata, flags, rc, props=None):
    client.subscribe("ws/test", qos=1)
def on_subscribe(client, userdata, mid, rcs, props=None):
    client.publish("ws/test", b"over websocket", qos=1)
def on_message(client, userdata, msg):
    got.append(msg.payload)
    done.set()
c.on_connect = on_connect
c.on_subscribe = on_subscribe
c.on_message = on_message
c.connect("127.0.0.1", port, keepalive=30)
c.loop_start()
ok = done.wait(10)
c.disconnect()
c.loop_stop()
print(got[0].decode() if ok else "TIMEOUT")
"#;

fn paho_available() -> bool {
    let import = || {
        Command::new("python3")
            .args(["-c", "import paho.mqtt.client"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !import() {
        // Installed from PyPI when missing.
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "paho-mqtt>=2,<3"])
            .output();
    }
    have("python3 with paho-mqtt", import)
}

/// paho-mqtt over WebSocket (ws) and WebSocket over TLS (wss), 3.1.1 and
/// 5.0: subscribe, publish, receive.
#[tokio::test]
async fn websocket_with_paho() {
    if !paho_available()
        || !have("openssl", || {
            Command::new("openssl").arg("version").output().is_ok()
        })
    {
        return;
    }
    bounded(async {
        let pki = Pki::new();
        let server = TestServer::start_with(|c| {
            c.listeners.push(ListenerConfig::new(
                ListenerKind::Ws,
                SocketAddr::from(([127, 0, 0, 1], 0)),
            ));
            c.listeners.push(pki.listener(ListenerKind::Wss));
        })
        .await;
        let ca = pki.arg("ca.pem");
        for (addr, ca) in [
            (server.listeners[0], ""),
            (server.listeners[1], ca.as_str()),
        ] {
            for version in ["311", "5"] {
                let out = tokio::process::Command::new("python3")
                    .args([
                        "-c",
                        PAHO_ROUND_TRIP,
                        &addr.port().to_string(),
                        "/mqtt",
                        ca,
                        version,
                    ])
                    .output()
                    .await
                    .expect("python3 runs");
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout).trim(),
                    "over websocket",
                    "paho {version} ca={ca:?}: {out:?}"
                );
            }
        }
        server.stop().await;
    })
    .await;
}

/// The WebSocket upgrade: the `mqtt` subprotocol is required and echoed
/// [MQTT-6.0.0-3], the path must match, and MQTT bytes split across
/// binary messages are reassembled [MQTT-6.0.0-2].
#[tokio::test]
async fn websocket_upgrade_rules_and_split_packets() {
    bounded(async {
        let server = TestServer::start_with(|c| {
            let mut l =
                ListenerConfig::new(ListenerKind::Ws, SocketAddr::from(([127, 0, 0, 1], 0)));
            l.path = "/custom".into();
            c.listeners.push(l);
        })
        .await;
        let addr = server.listeners[0];
        let open = |path: &str, proto: Option<&str>| {
            let mut req = format!("ws://{addr}{path}")
                .into_client_request()
                .expect("request");
            if let Some(p) = proto {
                req.headers_mut().insert(
                    "sec-websocket-protocol",
                    HeaderValue::from_str(p).expect("header"),
                );
            }
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
                tokio_tungstenite::client_async(req, tcp).await
            }
        };
        assert!(open("/custom", None).await.is_err(), "no subprotocol");
        assert!(open("/mqtt", Some("mqtt")).await.is_err(), "wrong path");
        let (mut ws, resp) = open("/custom", Some("mqtt")).await.expect("upgrade");
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .map(|v| v.as_bytes()),
            Some(&b"mqtt"[..])
        );
        let connect = wire::Connect::v311("ws-raw").bytes();
        let (a, b) = connect.split_at(5);
        ws.send(Message::binary(a.to_vec())).await.expect("send");
        ws.send(Message::binary(b.to_vec())).await.expect("send");
        let mut got = Vec::new();
        while got.len() < 4 {
            match tokio::time::timeout(READ_DEADLINE, ws.next()).await {
                Ok(Some(Ok(Message::Binary(data)))) => got.extend_from_slice(&data),
                other => panic!("expected CONNACK bytes, got {other:?}"),
            }
        }
        assert_eq!(got, [0x20, 0x02, 0x00, 0x00], "CONNACK accepted");
        // A text message is a protocol error [MQTT-6.0.0-1]: closed.
        ws.send(Message::text("hello")).await.expect("send");
        let end = tokio::time::timeout(READ_DEADLINE, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(end.is_ok(), "the connection is closed after a text message");
        server.stop().await;
    })
    .await;
}

fn v1_header(src: &str) -> Vec<u8> {
    format!("PROXY TCP4 {src} 127.0.0.1 40000 1883\r\n").into_bytes()
}

/// With the PROXY protocol the client address comes from the header: the
/// failed-login limit counts per proxied address, not per proxy. A
/// connection without the header is closed.
#[tokio::test]
async fn proxy_protocol_supplies_the_client_address() {
    bounded(async {
        let dir = TempDir::new().expect("tempdir");
        let pw = dir.path().join("passwd");
        herald::auth::passwd(
            &pw,
            &herald::auth::PasswdOp::Set {
                user: "alice".into(),
                password: "right".into(),
            },
            true,
        )
        .expect("passwd");
        let server = TestServer::start_with(|c| {
            let mut l =
                ListenerConfig::new(ListenerKind::Tcp, SocketAddr::from(([127, 0, 0, 1], 0)));
            l.proxy_protocol = true;
            c.listeners.push(l);
            c.auth.password_file = Some(pw);
            c.auth.max_failed_logins_per_minute = 1;
        })
        .await;
        let addr = server.listeners[0];
        let attempt = |src: &'static str, password: &'static str| async move {
            let mut raw = Raw::open(addr).await;
            raw.send(&v1_header(src)).await;
            raw.send(&wire::Connect::v5("p").login("alice", password).bytes())
                .await;
            raw.set_version(herald::codec::ProtocolVersion::V5);
            match raw.recv().await {
                Got::Packet(herald::codec::Packet::ConnAck(a)) => a.code,
                other => panic!("expected CONNACK, got {other:?}"),
            }
        };
        assert_eq!(attempt("192.0.2.1", "wrong").await, 0x86);
        assert_eq!(
            attempt("192.0.2.1", "right").await,
            0x9F,
            "192.0.2.1 is over its limit"
        );
        assert_eq!(
            attempt("192.0.2.2", "right").await,
            0,
            "another client behind the same proxy"
        );
        // v2 header.
        let mut raw = Raw::open(addr).await;
        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
        v2.extend([198, 51, 100, 7, 127, 0, 0, 1, 0x9c, 0x40, 0x07, 0x5b]);
        raw.send(&v2).await;
        raw.send(&wire::Connect::v311("p2").login("alice", "right").bytes())
            .await;
        match raw.recv().await {
            Got::Packet(herald::codec::Packet::ConnAck(a)) => assert_eq!(a.code, 0),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        // No header: closed without an answer.
        let mut raw = Raw::open(addr).await;
        raw.send(&wire::Connect::v311("p3").bytes()).await;
        assert!(raw.expect_close().await.is_empty());
        wait_for("the bad header is counted", READ_DEADLINE, || {
            stat(&server.broker.stats.handshakes_failed) == 1
        })
        .await;
        server.stop().await;
    })
    .await;
}

/// A client that opens a TLS or WebSocket connection and never completes
/// the handshake is closed by the CONNECT timeout, and so is one that
/// completes it but never sends CONNECT [MQTT-3.1.4-1].
#[tokio::test]
async fn stalled_handshakes_are_bounded_by_the_connect_timeout() {
    if !have("openssl", || {
        Command::new("openssl").arg("version").output().is_ok()
    }) {
        return;
    }
    bounded(async {
        let pki = Pki::new();
        let server = TestServer::start_with(|c| {
            c.limits.connect_timeout_secs = 1;
            c.listeners.push(pki.listener(ListenerKind::Tls));
            c.listeners.push(ListenerConfig::new(
                ListenerKind::Ws,
                SocketAddr::from(([127, 0, 0, 1], 0)),
            ));
        })
        .await;
        let mut silent = Vec::new();
        for addr in &server.listeners {
            silent.push(Raw::open(*addr).await);
        }
        // A WebSocket client that upgrades but never sends CONNECT.
        let mut req = format!("ws://{}/mqtt", server.listeners[1])
            .into_client_request()
            .expect("request");
        req.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
        let tcp = tokio::net::TcpStream::connect(server.listeners[1])
            .await
            .expect("tcp");
        let (mut ws, _) = tokio_tungstenite::client_async(req, tcp)
            .await
            .expect("upgrade");
        for raw in &mut silent {
            raw.expect_close_within(Duration::from_secs(3)).await;
        }
        let closed = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the idle WebSocket client is closed");
        wait_for("three connect timeouts", READ_DEADLINE, || {
            stat(&server.broker.stats.connect_timeouts) == 3
        })
        .await;
        let _ = ws.close(None).await;
        let mut s = tokio::net::TcpStream::connect(server.listeners[0])
            .await
            .expect("tcp");
        let _ = s.shutdown().await;
        server.stop().await;
    })
    .await;
}

/// `max_connections` counts connections on every listener together; one
/// over it is closed at accept whichever listener it arrives on, even
/// before its handshake.
#[tokio::test]
async fn max_connections_spans_every_listener() {
    bounded(async {
        let server = TestServer::start_with(|c| {
            c.limits.max_connections = 2;
            c.listeners.push(ListenerConfig::new(
                ListenerKind::Ws,
                SocketAddr::from(([127, 0, 0, 1], 0)),
            ));
            c.listeners.push(ListenerConfig::new(
                ListenerKind::Tcp,
                SocketAddr::from(([127, 0, 0, 1], 0)),
            ));
        })
        .await;
        let _plain = Raw::v311(server.addr, "a").await;
        let _second = Raw::v311(server.listeners[1], "b").await;
        // A silent connection on the WebSocket listener: closed at accept.
        let mut third = Raw::open(server.listeners[0]).await;
        assert!(third.expect_close().await.is_empty());
        assert_eq!(stat(&server.broker.stats.connections_refused_limit), 1);
        server.stop().await;
    })
    .await;
}
