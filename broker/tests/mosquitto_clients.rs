//! Interoperability with Debian's mosquitto_pub / mosquitto_sub over MQTT
//! 3.1, 3.1.1 and 5.0, at QoS 0/1/2, live and retained.
//!
//! Where the binaries are missing the test is skipped with a message, unless
//! `CI` is set: CI installs them, so there a missing binary fails the test.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{bounded, Raw, TestServer};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const PUB: &str = "/usr/bin/mosquitto_pub";
const SUB: &str = "/usr/bin/mosquitto_sub";
const VERSIONS: [&str; 3] = ["mqttv31", "mqttv311", "mqttv5"];

/// True when the clients can run; panics in CI when they are missing.
fn clients_available() -> bool {
    let present = Path::new(PUB).exists() && Path::new(SUB).exists();
    if !present {
        if std::env::var_os("CI").is_some() {
            panic!("{PUB} / {SUB} missing in CI (install mosquitto-clients)");
        }
        eprintln!("skipping: {PUB} / {SUB} not installed (apt install mosquitto-clients)");
    }
    present
}

/// A running mosquitto_sub printing each message as
/// `MSG <retain flag> <qos> <topic> <payload>`.
struct Sub {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Sub {
    async fn start(addr: SocketAddr, version: &str, qos: u8, topic: &str) -> Sub {
        let mut child = Command::new(SUB)
            .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
            .args(["-V", version, "-q", &qos.to_string(), "-t", topic])
            .args(["-F", "MSG %r %q %t %p", "-W", "10"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto_sub starts");
        let stdout = child.stdout.take().expect("piped stdout");
        Sub {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// Starts mosquitto_sub and returns once its subscription is active: a
    /// retained marker is put on the topic first (by an in-process client),
    /// and its arrival shows the subscription is in place. (mosquitto_sub's
    /// own debug output is block-buffered on a pipe, so it cannot tell.)
    async fn start_ready(addr: SocketAddr, version: &str, qos: u8, topic: &str) -> Sub {
        let mut raw = Raw::v311(addr, &format!("marker-{version}-{qos}")).await;
        raw.publish(topic, 0, true, 0, b"ready").await;
        raw.sync().await;
        let mut sub = Sub::start(addr, version, qos, topic).await;
        let (retain, _, _, payload) = sub.message().await;
        assert_eq!((retain.as_str(), payload.as_str()), ("1", "ready"));
        // Remove the marker [MQTT-3.3.1-10]; the subscriber sees the empty
        // message go by as a live delivery.
        raw.publish(topic, 0, true, 0, b"").await;
        let (retain, _, _, payload) = sub.message().await;
        assert_eq!((retain.as_str(), payload.as_str()), ("0", ""));
        sub
    }

    /// Reads stdout until a line satisfies `want`.
    async fn wait_line(&mut self, want: impl Fn(&str) -> bool) -> String {
        let read = async {
            loop {
                match self.lines.next_line().await.expect("read mosquitto_sub") {
                    Some(l) if want(&l) => return l,
                    Some(_) => {}
                    None => panic!("mosquitto_sub exited before the expected line"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("mosquitto_sub printed the expected line in time")
    }

    /// The next message as (retain, qos, topic, payload).
    async fn message(&mut self) -> (String, String, String, String) {
        let line = self.wait_line(|l| l.starts_with("MSG ")).await;
        let mut parts = line.splitn(5, ' ').skip(1).map(str::to_owned);
        let mut next = || parts.next().unwrap_or_default();
        (next(), next(), next(), next())
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn publish(
    addr: SocketAddr,
    version: &str,
    qos: u8,
    topic: &str,
    payload: &str,
    retain: bool,
) {
    let mut cmd = Command::new(PUB);
    cmd.args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args([
            "-V",
            version,
            "-q",
            &qos.to_string(),
            "-t",
            topic,
            "-m",
            payload,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if retain {
        cmd.arg("-r");
    }
    let status = tokio::time::timeout(Duration::from_secs(10), cmd.status())
        .await
        .expect("mosquitto_pub finishes in time")
        .expect("mosquitto_pub runs");
    assert!(
        status.success(),
        "mosquitto_pub -V {version} -q {qos} failed: {status}"
    );
}

#[tokio::test]
async fn mosquitto_clients_publish_and_subscribe_in_every_version_and_qos() {
    if !clients_available() {
        return;
    }
    bounded(async {
        let srv = TestServer::start().await;
        for sub_version in VERSIONS {
            for qos in 0..=2u8 {
                let topic = format!("mosq/{sub_version}/{qos}");
                let mut sub = Sub::start_ready(srv.addr, sub_version, qos, &topic).await;
                // Published by each version, received by this one.
                for pub_version in VERSIONS {
                    let payload = format!("from-{pub_version}");
                    publish(srv.addr, pub_version, qos, &topic, &payload, false).await;
                    let (retain, got_qos, got_topic, got_payload) = sub.message().await;
                    assert_eq!(got_topic, topic);
                    assert_eq!(got_payload, payload);
                    assert_eq!(got_qos, qos.to_string());
                    // A live delivery has RETAIN 0 [MQTT-3.3.1-9] (3.1.1).
                    assert_eq!(retain, "0");
                }
                sub.stop().await;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn mosquitto_clients_retained_messages() {
    if !clients_available() {
        return;
    }
    bounded(async {
        let srv = TestServer::start().await;
        for version in VERSIONS {
            for qos in 0..=2u8 {
                let topic = format!("mosq-r/{version}/{qos}");
                let payload = format!("kept-{version}-{qos}");
                publish(srv.addr, version, qos, &topic, &payload, true).await;
                // A new subscription gets it with RETAIN 1 [MQTT-3.3.1-8].
                let mut sub = Sub::start(srv.addr, version, qos, &topic).await;
                let (retain, got_qos, _, got_payload) = sub.message().await;
                assert_eq!(retain, "1");
                assert_eq!(got_qos, qos.to_string());
                assert_eq!(got_payload, payload);
                sub.stop().await;
            }
        }
    })
    .await;
}
