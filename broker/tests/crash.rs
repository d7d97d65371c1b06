//! Crash tests against the real `herald` process: `kill -9` at random
//! moments loses no acknowledged message (DESIGN 4.1), persistent sessions
//! with their subscriptions and retained messages come back (4.2), and a
//! data directory that cannot be used stops the broker (never starts empty).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

/// Messages published per round, and rounds (each ends with a kill -9).
const MESSAGES: u32 = 300;
const ROUNDS: u32 = 3;
/// Longest wait for a broker to accept connections, or a subscriber to
/// receive what it must.
const DEADLINE: Duration = Duration::from_secs(30);
/// Silence that tells a subscriber every exchange in progress is over.
const QUIET: Duration = Duration::from_millis(500);

/// A running `herald` on a loopback port over a data directory.
struct Herald {
    child: Child,
    addr: SocketAddr,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn herald_command(data: &Path, addr: SocketAddr, log: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.arg("--listen")
        .arg(addr.to_string())
        .args(["--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    cmd
}

impl Herald {
    /// Starts herald and waits until it accepts connections.
    fn start(data: &Path, log: &Path) -> Herald {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut child = herald_command(data, addr, log)
            .spawn()
            .expect("spawn herald");
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "herald exited with {status}: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(start.elapsed() < DEADLINE, "herald did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Herald { child, addr }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small PRNG seeded from the process's random hasher keys; the seed is
/// printed so a failing run can be told apart.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = RandomState::new().hash_one(Instant::now()) | 1;
        eprintln!("crash test seed {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n)) as u32
    }
}

/// The persistent subscribers: a 3.1.1 one (clean session 0, QoS 1) and a
/// 5.0 one (session expiry 1 h, QoS 2).
#[derive(Clone, Copy, Debug)]
enum Sub {
    V311,
    V5,
}

const SUBS: [Sub; 2] = [Sub::V311, Sub::V5];

impl Sub {
    fn id(self) -> &'static str {
        match self {
            Sub::V311 => "crash-sub-311",
            Sub::V5 => "crash-sub-5",
        }
    }
}

/// Connects `sub` (resuming its session), subscribes when asked, and
/// collects payloads until `done` says it has enough (or the deadline),
/// then disconnects normally so that what follows is queued offline.
/// Returns what it received and the CONNACK's session present flag.
async fn run_sub(
    sub: Sub,
    addr: SocketAddr,
    subscribe: bool,
    done: impl Fn(&BTreeSet<String>) -> bool,
) -> (BTreeSet<String>, bool) {
    let port = addr.port();
    let mut got = BTreeSet::new();
    let start = Instant::now();
    match sub {
        Sub::V311 => {
            let mut o = MqttOptions::new(sub.id(), "127.0.0.1", port);
            o.set_clean_session(false);
            o.set_keep_alive(Duration::from_secs(30));
            let (client, mut ev) = AsyncClient::new(o, 100);
            if subscribe {
                client
                    .subscribe("crash/#", QoS::AtLeastOnce)
                    .await
                    .expect("subscribe");
            }
            let mut present = false;
            let mut ready = !subscribe;
            while start.elapsed() < DEADLINE && !(ready && done(&got)) {
                let polled = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
                match polled {
                    Ok(Ok(Event::Incoming(Packet::ConnAck(c)))) => present = c.session_present,
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => ready = true,
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        got.insert(String::from_utf8_lossy(&p.payload).into_owned());
                    }
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(e)) => panic!("{} connection failed: {e}", sub.id()),
                }
            }
            // Finish every QoS 2 exchange before leaving: the next session
            // of this client id is a fresh rumqttc client, which refuses a
            // PUBREL it has no record of (the broker rightly resends it).
            while let Ok(Ok(e)) = tokio::time::timeout(QUIET, ev.poll()).await {
                if let Event::Incoming(Packet::Publish(p)) = e {
                    got.insert(String::from_utf8_lossy(&p.payload).into_owned());
                }
            }
            client.disconnect().await.expect("disconnect");
            while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(2), ev.poll()).await {
                if e == Event::Outgoing(Outgoing::Disconnect) {
                    break;
                }
            }
            (got, present)
        }
        Sub::V5 => {
            use rumqttc::v5::mqttbytes::v5::Packet as P5;
            use rumqttc::v5::mqttbytes::QoS as Q5;
            use rumqttc::v5::{AsyncClient as C5, Event as E5, MqttOptions as O5};
            let mut o = O5::new(sub.id(), "127.0.0.1", port);
            o.set_clean_start(false);
            o.set_session_expiry_interval(Some(3600));
            o.set_keep_alive(Duration::from_secs(30));
            let (client, mut ev) = C5::new(o, 100);
            if subscribe {
                client
                    .subscribe("crash/#", Q5::ExactlyOnce)
                    .await
                    .expect("subscribe");
            }
            let mut present = false;
            let mut ready = !subscribe;
            while start.elapsed() < DEADLINE && !(ready && done(&got)) {
                let polled = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
                match polled {
                    Ok(Ok(E5::Incoming(P5::ConnAck(c)))) => present = c.session_present,
                    Ok(Ok(E5::Incoming(P5::SubAck(_)))) => ready = true,
                    Ok(Ok(E5::Incoming(P5::Publish(p)))) => {
                        got.insert(String::from_utf8_lossy(&p.payload).into_owned());
                    }
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(e)) => panic!("{} connection failed: {e}", sub.id()),
                }
            }
            while let Ok(Ok(e)) = tokio::time::timeout(QUIET, ev.poll()).await {
                if let E5::Incoming(P5::Publish(p)) = e {
                    got.insert(String::from_utf8_lossy(&p.payload).into_owned());
                }
            }
            v5_disconnect(&client, &mut ev).await;
            (got, present)
        }
    }
}

/// Publishes `count` numbered messages (odd numbers QoS 2, even QoS 1) on
/// `crash/<round>` with up to 20 in flight, and records which the broker
/// acknowledged (PUBACK for QoS 1, PUBREC for QoS 2). When `kill_after`
/// acknowledgements have arrived, `on_kill` is called (it kills the
/// broker); the acknowledgements that still arrive before the connection
/// dies are recorded too. Returns the acknowledged payloads.
async fn publish_until_killed(
    addr: SocketAddr,
    round: u32,
    count: u32,
    kill_after: usize,
    on_kill: impl FnOnce(),
) -> BTreeSet<String> {
    let mut o = MqttOptions::new(format!("crash-pub-{round}"), "127.0.0.1", addr.port());
    o.set_clean_session(true);
    o.set_inflight(20);
    let (client, mut ev) = AsyncClient::new(o, 1000);
    // Payloads in the order they were handed to the client; the event loop
    // sends them in that order, which maps packet ids back to payloads.
    let order: Arc<Mutex<VecDeque<String>>> = Arc::default();
    let feeder = {
        let order = Arc::clone(&order);
        tokio::spawn(async move {
            for n in 0..count {
                let qos = if n % 2 == 1 {
                    QoS::ExactlyOnce
                } else {
                    QoS::AtLeastOnce
                };
                let payload = format!("{round}:{n}");
                order.lock().expect("lock").push_back(payload.clone());
                if client
                    .publish(format!("crash/{round}"), qos, false, payload)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    let mut in_flight: HashMap<u16, String> = HashMap::new();
    let mut acked = BTreeSet::new();
    let mut on_kill = Some(on_kill);
    let start = Instant::now();
    loop {
        let polled = tokio::time::timeout(Duration::from_secs(5), ev.poll()).await;
        match polled {
            Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                let payload = order.lock().expect("lock").pop_front();
                if let Some(p) = payload {
                    in_flight.insert(pkid, p);
                }
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(a)))) => {
                acked.extend(in_flight.remove(&a.pkid));
            }
            Ok(Ok(Event::Incoming(Packet::PubRec(r)))) => {
                acked.extend(in_flight.remove(&r.pkid));
            }
            Ok(Ok(_)) => {}
            // The broker is gone (killed), or everything was sent and
            // acknowledged and nothing more comes.
            Ok(Err(_)) | Err(_) => break,
        }
        if acked.len() >= kill_after {
            if let Some(kill) = on_kill.take() {
                kill();
            }
        }
        assert!(start.elapsed() < DEADLINE * 2, "publisher stuck");
    }
    if let Some(kill) = on_kill.take() {
        kill();
    }
    feeder.abort();
    acked
}

/// Publishes one QoS 1 message and waits for its PUBACK.
async fn publish_one(addr: SocketAddr, topic: &str, payload: &str, retain: bool) {
    let mut o = MqttOptions::new(
        format!("crash-one-{}", free_port()),
        "127.0.0.1",
        addr.port(),
    );
    o.set_clean_session(true);
    let (client, mut ev) = AsyncClient::new(o, 10);
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload.to_owned())
        .await
        .expect("publish");
    let start = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("no PUBACK: {other:?}"),
        }
        assert!(start.elapsed() < DEADLINE, "no PUBACK");
    }
    client.disconnect().await.expect("disconnect");
    let _ = tokio::time::timeout(Duration::from_secs(1), ev.poll()).await;
}

/// Receives the retained message of `topic` with a new clean session.
async fn fetch_retained(addr: SocketAddr, topic: &str) -> Option<String> {
    let mut o = MqttOptions::new(
        format!("crash-ret-{}", free_port()),
        "127.0.0.1",
        addr.port(),
    );
    o.set_clean_session(true);
    let (client, mut ev) = AsyncClient::new(o, 10);
    client
        .subscribe(topic, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
            tokio::time::timeout(Duration::from_millis(500), ev.poll()).await
        {
            if p.retain {
                return Some(String::from_utf8_lossy(&p.payload).into_owned());
            }
        }
    }
    None
}

/// Every acknowledged QoS 1/2 message reaches both persistent subscribers
/// after kill -9 and a restart, round after round; so do subscriptions
/// (a probe published after the restart arrives without resubscribing)
/// and retained messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_loses_no_acknowledged_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let log = tmp.path().join("herald.log");
    let mut rng = Rng::new();

    let mut herald = Herald::start(&data, &log);
    for sub in SUBS {
        let (_, present) = run_sub(sub, herald.addr, true, |_| true).await;
        assert!(!present, "a fresh session");
    }
    publish_one(herald.addr, "crash/retained", "kept", true).await;

    for round in 0..ROUNDS {
        let kill_after = 1 + rng.below(MESSAGES - 50) as usize;
        let addr = herald.addr;
        let killed = Arc::new(Mutex::new(Some(herald)));
        let acked = {
            let killed = Arc::clone(&killed);
            publish_until_killed(addr, round, MESSAGES, kill_after, move || {
                if let Some(h) = killed.lock().expect("lock").take() {
                    h.kill9();
                }
            })
            .await
        };
        assert!(
            acked.len() >= kill_after.min(MESSAGES as usize),
            "round {round}: {} acknowledged before the kill",
            acked.len()
        );
        eprintln!(
            "round {round}: killed after {} acknowledged messages",
            acked.len()
        );

        herald = Herald::start(&data, &log);
        let probe = format!("probe:{round}");
        for sub in SUBS {
            let (got, present) = run_sub(sub, herald.addr, false, |got| {
                acked.iter().all(|m| got.contains(m))
            })
            .await;
            assert!(
                present,
                "{sub:?}: session present after restart [MQTT-3.2.2-2]"
            );
            let lost: Vec<_> = acked.iter().filter(|m| !got.contains(*m)).collect();
            assert!(
                lost.is_empty(),
                "round {round}: {sub:?} lost {} of {} acknowledged messages, e.g. {:?}",
                lost.len(),
                acked.len(),
                &lost[..lost.len().min(5)]
            );
        }
        // The subscriptions came back with the sessions: a message
        // published now is queued for both (they are offline).
        publish_one(herald.addr, "crash/probe", &probe, false).await;
        for sub in SUBS {
            let (got, _) = run_sub(sub, herald.addr, false, |got| got.contains(&probe)).await;
            assert!(got.contains(&probe), "{sub:?}: subscription lost");
        }
    }
    assert_eq!(
        fetch_retained(herald.addr, "crash/retained")
            .await
            .as_deref(),
        Some("kept"),
        "retained message back after kill -9 [MQTT-3.3.1-5]"
    );
    herald.kill9();
}

/// Waits for a herald that must refuse to start; returns its stderr.
fn expect_refusal(data: &Path, log: &Path) -> String {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = herald_command(data, addr, log).spawn().expect("spawn");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("herald did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "herald must exit non-zero");
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens after a refusal"
    );
    std::fs::read_to_string(log).expect("log")
}

#[test]
fn second_herald_on_the_same_data_dir_refuses_to_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let first = Herald::start(&data, &tmp.path().join("first.log"));
    let err = expect_refusal(&data, &tmp.path().join("second.log"));
    assert!(err.contains("in use by another herald"), "{err}");
    drop(first);
}

fn corrupt_db(data: &Path) -> PathBuf {
    let db = data.join("db");
    std::fs::create_dir_all(&db).expect("mkdir");
    db
}

#[test]
fn corrupt_store_refuses_to_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    // A database made by a real run, then damaged.
    drop(Herald::start(&data, &tmp.path().join("first.log")));
    let db = corrupt_db(&data);
    let manifest = std::fs::read_dir(&db)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("MANIFEST"))
        })
        .expect("a MANIFEST");
    std::fs::write(&manifest, vec![0xA5; 4096]).expect("damage");
    let err = expect_refusal(&data, &tmp.path().join("second.log"));
    assert!(err.contains("corrupt"), "{err}");
    // The damaged files are still there: nothing started over them.
    assert!(manifest.exists());
}

#[test]
fn foreign_files_in_the_store_refuse_to_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let db = corrupt_db(&data);
    std::fs::write(db.join("000001.sst"), b"not a table").expect("write");
    let err = expect_refusal(&data, &tmp.path().join("herald.log"));
    assert!(err.contains("corrupt"), "{err}");
}

/// Connects a 5.0 client with session expiry `expiry_secs` (resuming its
/// session), subscribes to `exp/#` at QoS 1 when asked, collects what
/// arrives until things go quiet, and disconnects normally. Returns the
/// CONNACK's session present flag and the payloads received.
async fn v5_visit(
    addr: SocketAddr,
    id: &str,
    expiry_secs: u32,
    subscribe: bool,
) -> (bool, BTreeSet<String>) {
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::{AsyncClient as C5, Event as E5, MqttOptions as O5};
    let mut o = O5::new(id, "127.0.0.1", addr.port());
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(expiry_secs));
    let (client, mut ev) = C5::new(o, 10);
    if subscribe {
        client
            .subscribe("exp/#", Q5::AtLeastOnce)
            .await
            .expect("subscribe");
    }
    let (mut present, mut got, mut subacked) = (false, BTreeSet::new(), !subscribe);
    let start = Instant::now();
    loop {
        match tokio::time::timeout(QUIET, ev.poll()).await {
            Ok(Ok(E5::Incoming(P5::ConnAck(c)))) => present = c.session_present,
            Ok(Ok(E5::Incoming(P5::SubAck(_)))) => subacked = true,
            Ok(Ok(E5::Incoming(P5::Publish(p)))) => {
                got.insert(String::from_utf8_lossy(&p.payload).into_owned());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{id}: {e}"),
            Err(_) if subacked => break,
            Err(_) => assert!(start.elapsed() < DEADLINE, "{id}: no SUBACK"),
        }
    }
    v5_disconnect(&client, &mut ev).await;
    (present, got)
}

/// Disconnects a 5.0 client normally and polls its event loop until the
/// DISCONNECT has gone out (at most 2 s between events).
async fn v5_disconnect(client: &rumqttc::v5::AsyncClient, ev: &mut rumqttc::v5::EventLoop) {
    client.disconnect().await.expect("disconnect");
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(2), ev.poll()).await {
        if matches!(e, rumqttc::v5::Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
}

/// Logs in as `user` with client id `id` and a persistent 5.0 session;
/// returns the CONNACK: session present, or the refusal.
async fn v5_login(
    addr: SocketAddr,
    id: &str,
    user: &str,
) -> Result<bool, rumqttc::v5::mqttbytes::v5::ConnectReturnCode> {
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::{AsyncClient as C5, ConnectionError, Event as E5, MqttOptions as O5};
    let mut o = O5::new(id, "127.0.0.1", addr.port());
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(3600));
    o.set_credentials(user, "x");
    let (client, mut ev) = C5::new(o, 10);
    let present = loop {
        match tokio::time::timeout(DEADLINE, ev.poll()).await {
            Ok(Ok(E5::Incoming(P5::ConnAck(c)))) => break c.session_present,
            Ok(Ok(_)) => {}
            Ok(Err(ConnectionError::ConnectionRefused(code))) => return Err(code),
            other => panic!("{id}/{user}: no CONNACK: {other:?}"),
        }
    };
    v5_disconnect(&client, &mut ev).await;
    Ok(present)
}

/// A client id stays bound to the username that opened its session across
/// kill -9: the binding is stored with the session, so after the restart
/// another user is still refused (0x87) and the owner resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_binding_survives_kill9() {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let log = tmp.path().join("herald.log");
    let herald = Herald::start(&data, &log);
    assert_eq!(v5_login(herald.addr, "dev1", "alice").await, Ok(false));
    assert_eq!(
        v5_login(herald.addr, "dev1", "mallory").await,
        Err(ConnectReturnCode::NotAuthorized)
    );
    herald.kill9();
    let herald = Herald::start(&data, &log);
    assert_eq!(
        v5_login(herald.addr, "dev1", "mallory").await,
        Err(ConnectReturnCode::NotAuthorized),
        "the binding came back with the session"
    );
    assert_eq!(v5_login(herald.addr, "dev1", "alice").await, Ok(true));
}

/// Session expiry and message expiry keep counting across kill -9: the
/// restarted broker re-arms the expiry of an offline session from when it
/// was disconnected [MQTT-3.1.2-23], and does not deliver a queued message
/// whose expiry passed meanwhile [MQTT-3.3.2-5].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_keeps_counting_across_a_restart() {
    use rumqttc::v5::mqttbytes::v5::{Packet as P5, PublishProperties};
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::{AsyncClient as C5, Event as E5, MqttOptions as O5};

    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let log = tmp.path().join("herald.log");
    let herald = Herald::start(&data, &log);
    let (present, _) = v5_visit(herald.addr, "exp-short", 3, true).await;
    assert!(!present);
    let (present, _) = v5_visit(herald.addr, "exp-long", 3600, true).await;
    assert!(!present);

    let (client, mut ev) = C5::new(O5::new("exp-pub", "127.0.0.1", herald.addr.port()), 10);
    let short = PublishProperties {
        message_expiry_interval: Some(3),
        ..PublishProperties::default()
    };
    client
        .publish_with_properties("exp/t", Q5::AtLeastOnce, false, "short-lived", short)
        .await
        .expect("publish");
    client
        .publish("exp/t", Q5::AtLeastOnce, false, "lasting")
        .await
        .expect("publish");
    let mut acks = 0;
    while acks < 2 {
        match tokio::time::timeout(DEADLINE, ev.poll()).await {
            Ok(Ok(E5::Incoming(P5::PubAck(_)))) => acks += 1,
            Ok(Ok(_)) => {}
            other => panic!("no PUBACK: {other:?}"),
        }
    }
    // 2 s before the kill, then 1.5 s after the restart: 3.5 s in all,
    // past both 3 s expiries only if the time before the kill counts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    herald.kill9();
    let herald = Herald::start(&data, &log);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (present, _) = v5_visit(herald.addr, "exp-short", 3, false).await;
    assert!(!present, "exp-short's expiry counted from its disconnect");
    let (present, got) = v5_visit(herald.addr, "exp-long", 3600, false).await;
    assert!(present, "exp-long is still there");
    assert!(got.contains("lasting"), "{got:?}");
    assert!(
        !got.contains("short-lived"),
        "an expired message was delivered"
    );
}

/// The will of a persistent session whose connection the crash cut is
/// published after the restart, once its will delay has passed
/// [MQTT-3.1.2-8], [MQTT-3.1.3-9].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_of_a_cut_session_survives_kill9() {
    use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties, Packet as P5};
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::{AsyncClient as C5, Event as E5, MqttOptions as O5};

    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let log = tmp.path().join("herald.log");
    let herald = Herald::start(&data, &log);
    v5_visit(herald.addr, "will-watch", 3600, true).await;

    let mut o = O5::new("will-owner", "127.0.0.1", herald.addr.port());
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(60));
    o.set_last_will(LastWill::new(
        "exp/will",
        "gone",
        Q5::AtLeastOnce,
        false,
        Some(LastWillProperties {
            delay_interval: Some(1),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        }),
    ));
    let (owner, mut ev) = C5::new(o, 10);
    loop {
        match tokio::time::timeout(DEADLINE, ev.poll()).await {
            Ok(Ok(E5::Incoming(P5::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("will-owner did not connect: {other:?}"),
        }
    }
    herald.kill9();
    drop((owner, ev));

    let herald = Herald::start(&data, &log);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (present, got) = v5_visit(herald.addr, "will-watch", 3600, false).await;
    assert!(present);
    assert!(got.contains("gone"), "the will was not published: {got:?}");
}
