//! What the tests that start a real broker share.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::process::Child;

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Waits (at most 10 s) until `child`, a broker just started, accepts TCP
/// on `127.0.0.1:port`.
pub async fn listening(child: Child, name: &str, port: u16) -> Child {
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} did not listen on {addr} within 10 s");
}
