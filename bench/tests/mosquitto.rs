//! End to end: the `herald-bench` binary runs a 1-second QoS 0 scenario
//! against a real Mosquitto started on a free loopback port, and `compare`
//! summarises the JSON it wrote.
//!
//! Skipped (with a message) when /usr/sbin/mosquitto is missing, unless
//! the CI variable is set: CI must have it (scripts/deps installs it).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_bench::report::RunFile;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// Kills the broker when the test ends, however it ends.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("bound socket has an address").port()
}

fn start_mosquitto(dir: &Path) -> (Broker, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    // max_queued_messages 0 = no limit: a 1-second burst must not be cut
    // by Mosquitto's default queue bound, so any loss is the tool's fault.
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n\
             max_queued_messages 0\nlog_dest stderr\nlog_type error\n"
        ),
    )
    .expect("write mosquitto.conf");
    let child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mosquitto");
    let broker = Broker(child);
    // Poll with a deadline until it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (broker, port)
}

fn metric(run: &RunFile, name: &str) -> f64 {
    run.reports[0]
        .get(name)
        .unwrap_or_else(|| panic!("metric {name} missing from {:?}", run.reports[0]))
}

#[test]
fn qos0_one_second_against_mosquitto() {
    if !Path::new(MOSQUITTO).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("{MOSQUITTO} is missing but CI is set: scripts/deps must install it");
        }
        eprintln!("skipping: {MOSQUITTO} is not installed (apt-get install mosquitto)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (broker, port) = start_mosquitto(dir.path());
    let json = dir.path().join("run.json");
    let out = Command::new(env!("CARGO_BIN_EXE_herald-bench"))
        .args(["--port", &port.to_string()])
        .args(["--broker-pid", &broker.0.id().to_string()])
        .args(["--broker-label", "mosquitto", "--no-progress"])
        .args(["--duration-secs", "1", "--drain-secs", "10"])
        .arg("--json")
        .arg(&json)
        .args(["throughput", "--qos", "0"])
        .output()
        .expect("run herald-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "herald-bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("== qos0-pairs-1"),
        "table printed: {stdout}"
    );

    let run: RunFile = serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
        .expect("json parses");
    assert_eq!(run.broker, "mosquitto");
    assert_eq!(run.reports.len(), 1);
    assert_eq!(run.reports[0].scenario, "qos0-pairs-1");
    let sent = metric(&run, "sent_msgs");
    assert!(
        sent > 1000.0,
        "a second of publishing sends thousands: {sent}"
    );
    // QoS 0 on loopback to a connected
    // subscriber with no queue bound loses nothing and duplicates nothing.
    assert_eq!(metric(&run, "expected_msgs"), sent);
    assert_eq!(metric(&run, "delivered_msgs"), sent);
    assert_eq!(metric(&run, "lost_msgs"), 0.0);
    assert_eq!(metric(&run, "duplicate_msgs"), 0.0);
    let while_pub = metric(&run, "delivered_while_publishing_msgs_per_sec");
    assert!(while_pub > 0.0 && while_pub <= metric(&run, "published_msgs_per_sec") * 1.01);
    let (p50, p99, max) = (
        metric(&run, "latency_p50_ms"),
        metric(&run, "latency_p99_ms"),
        metric(&run, "latency_max_ms"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{p50} {p99} {max}");
    assert!(metric(&run, "broker_cpu_pct") > 0.0, "the broker worked");
    assert!(metric(&run, "broker_rss_peak_mib") > 0.0);
    assert!(metric(&run, "generator_cpu_pct") > 0.0);

    // The comparison reads the file back.
    let cmp = Command::new(env!("CARGO_BIN_EXE_herald-bench"))
        .args(["compare", "--baseline", "mosquitto"])
        .arg(&json)
        .output()
        .expect("run herald-bench compare");
    let md = String::from_utf8_lossy(&cmp.stdout);
    assert!(cmp.status.success(), "{md}");
    assert!(md.contains("### qos0-pairs-1"), "{md}");
    assert!(md.contains("| sent_msgs | msg |"), "{md}");
}
