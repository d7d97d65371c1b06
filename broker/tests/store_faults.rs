//! A store that failed to write makes the broker stop acknowledging
//! (README "Durability"): 3.x publishers are closed without PUBACK, 5.0 ones
//! get reason 0x80, and new persistent sessions are refused. Packets are
//! built by hand, so that the broker's own codec cannot hide a fault.

use std::time::Duration;

use herald::config::Config;
use herald::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

/// CONNECT: `v5` picks 5.0 (else 3.1.1); `expiry` is the 5.0 Session Expiry
/// Interval, or for 3.1.1 any value above 0 means clean session 0.
fn connect(client_id: &str, v5: bool, expiry: u32) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T'];
    body.push(if v5 { 5 } else { 4 });
    let clean = if v5 || expiry == 0 { 0x02 } else { 0x00 };
    body.extend_from_slice(&[clean, 0, 60]);
    if v5 {
        if expiry > 0 {
            body.push(5);
            body.push(0x11);
            body.extend_from_slice(&expiry.to_be_bytes());
        } else {
            body.push(0);
        }
    }
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    frame(0x10, body)
}

/// PUBLISH QoS 1, retained, packet id 1, to topic `t`.
fn publish_qos1(v5: bool) -> Vec<u8> {
    let mut body = vec![0, 1, b't', 0, 1];
    if v5 {
        body.push(0);
    }
    body.push(b'x');
    frame(0x33, body)
}

fn frame(first: u8, body: Vec<u8>) -> Vec<u8> {
    assert!(body.len() < 128, "one-byte remaining length");
    let mut out = vec![first, body.len() as u8];
    out.extend(body);
    out
}

/// Reads one packet (fixed header and body).
async fn read_packet(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    tokio::time::timeout(WAIT, s.read_exact(&mut head))
        .await
        .expect("answer in time")
        .ok()?;
    assert!(head[1] < 128, "short packets only");
    let mut body = vec![0u8; usize::from(head[1])];
    tokio::time::timeout(WAIT, s.read_exact(&mut body))
        .await
        .expect("answer in time")
        .ok()?;
    Some((head[0], body))
}

async fn start() -> (
    tempfile::TempDir,
    std::net::SocketAddr,
    std::sync::Arc<herald::broker::Broker>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    // Never the fixed default admin port: another broker may hold it.
    config.admin.listen = "127.0.0.1:0".parse().expect("addr");
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr().expect("addr");
    let broker = server.broker();
    tokio::spawn(server.run(std::future::pending()));
    (dir, addr, broker)
}

async fn connected(addr: std::net::SocketAddr, id: &str, v5: bool, expiry: u32) -> (TcpStream, u8) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&connect(id, v5, expiry)).await.expect("send");
    let (kind, body) = read_packet(&mut s).await.expect("CONNACK");
    assert_eq!(kind, 0x20, "CONNACK");
    (s, body[1])
}

#[tokio::test]
async fn a_failed_store_acknowledges_nothing() {
    let (_dir, addr, broker) = start().await;

    // Healthy: a retained QoS 1 publish is acknowledged.
    let (mut s, rc) = connected(addr, "p311", false, 0).await;
    assert_eq!(rc, 0);
    s.write_all(&publish_qos1(false)).await.expect("send");
    assert_eq!(read_packet(&mut s).await.map(|p| p.0), Some(0x40), "PUBACK");

    // The next write fails, as on a full disk.
    broker.store().inject_write_failure();
    s.write_all(&publish_qos1(false)).await.expect("send");
    // 3.1.1 has no failure code: the connection closes, no PUBACK.
    assert_eq!(read_packet(&mut s).await, None, "closed without PUBACK");
    assert!(!broker.store().is_healthy());

    // 5.0: PUBACK with 0x80 (Unspecified error), connection kept.
    let (mut s, rc) = connected(addr, "p5", true, 0).await;
    assert_eq!(rc, 0, "a non-persistent session needs no store");
    s.write_all(&publish_qos1(true)).await.expect("send");
    let (kind, body) = read_packet(&mut s).await.expect("PUBACK");
    assert_eq!((kind, body[..3].to_vec()), (0x40, vec![0, 1, 0x80]));

    // New persistent sessions are refused: 5.0 0x88, 3.1.1 return code 3.
    let (_, rc) = connected(addr, "s5", true, 60).await;
    assert_eq!(rc, 0x88, "Server unavailable");
    let (_, rc) = connected(addr, "s311", false, 1).await;
    assert_eq!(rc, 3, "Server unavailable");
}
