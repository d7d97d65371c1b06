//! A broker that accepts connections and then says nothing must make tests
//! fail within their deadlines, not hang the suite.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use conformance::runner::{self, Config, Outcome};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

#[tokio::test]
async fn a_silent_broker_fails_every_test_quickly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts, reads and discards, never answers, never closes.
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                }
            });
        }
    });
    let mut config = Config::new(&addr.to_string());
    config.only = vec![
        "01-connect/001@".into(),
        "03-qos/001@".into(),
        "13-malformed/004@".into(),
        "13-malformed/001@5".into(),
    ];
    config.read_timeout = Duration::from_millis(200);
    config.quiet = Duration::from_millis(50);
    config.test_timeout = Duration::from_secs(5);
    let start = Instant::now();
    let report = runner::run(&config, |r| eprintln!("{}", r.line())).await;
    assert_eq!(report.records.len(), 7);
    for r in &report.records {
        assert!(
            matches!(r.outcome, Outcome::Fail(_)),
            "{} did not fail against a silent broker: {:?}",
            r.key,
            r.outcome
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}
