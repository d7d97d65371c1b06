//! The RocksDB store: the contract suite, restarts, on-disk fixtures and
//! faults (corrupt, locked, foreign, other format version, failed write).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use herald_storage::{
    contract, Command, Message, OpenError, Outcome, QueueLimits, SessionRecord, Store, StoreError,
    Subscription, Target, Will,
};

fn open(dir: &Path) -> Store {
    Store::open(dir, QueueLimits::default(), true).expect("open")
}

fn msg(topic: &str, payload: &str, expires_at_ms: Option<u64>) -> Message {
    Message {
        topic: Bytes::copy_from_slice(topic.as_bytes()),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos: 2,
        retain: false,
        properties: Bytes::from_static(b"\x01\x02"),
        expires_at_ms,
    }
}

fn target(id: &str, qos: u8) -> Target {
    Target {
        client_id: id.to_owned(),
        qos,
        retain: false,
        subscription_ids: vec![3, 4],
    }
}

/// A little of everything the state holds: an online and an offline
/// session, subscriptions, a delayed will, an inbound QoS 2 id, a shared
/// body, an acknowledged and a PUBREC'd entry, retained messages.
fn workload() -> Vec<Command> {
    vec![
        Command::Open {
            client_id: "online".into(),
            epoch: 7,
            clean_start: false,
            protocol_level: 5,
            expiry_secs: 300,
            will: None,
            username: Some("owner".into()),
            now_ms: 1_000,
        },
        Command::Open {
            client_id: "offline".into(),
            epoch: 8,
            clean_start: true,
            protocol_level: 4,
            expiry_secs: u32::MAX,
            will: None,
            username: None,
            now_ms: 1_000,
        },
        Command::Subscribe {
            client_id: "online".into(),
            filter: "a/+".into(),
            subscription: Subscription {
                options: 0b10_1110,
                identifier: Some(42),
            },
        },
        Command::Subscribe {
            client_id: "offline".into(),
            filter: "$share/g/a/#".into(),
            subscription: Subscription {
                options: 1,
                identifier: None,
            },
        },
        Command::Publish {
            message: msg("a/b", "fan-out", Some(9_999_999)),
            targets: vec![target("online", 2), target("offline", 1)],
        },
        Command::Publish {
            message: msg("a/c", "second", None),
            targets: vec![target("online", 2)],
        },
        Command::Publish {
            message: msg("a/d", "third", None),
            targets: vec![target("online", 1)],
        },
        Command::PubRec {
            client_id: "online".into(),
            seq: 2,
        },
        Command::Ack {
            client_id: "online".into(),
            seq: 3,
        },
        Command::InboundQos2 {
            client_id: "online".into(),
            packet_id: 77,
            received: true,
        },
        Command::Close {
            client_id: "offline".into(),
            epoch: 8,
            expiry_secs: u32::MAX,
            will: Some(Will {
                message: msg("w", "bye", None),
                delay_secs: 30,
            }),
            now_ms: 2_000,
        },
        Command::Retain {
            topic: Bytes::from_static(b"r/1"),
            message: Some(msg("r/1", "kept", None)),
        },
        Command::Retain {
            topic: Bytes::from_static(b"r/2"),
            message: Some(msg("r/2", "gone", None)),
        },
        Command::Retain {
            topic: Bytes::from_static(b"r/2"),
            message: None,
        },
    ]
}

fn sorted_sessions(s: &Store) -> Vec<SessionRecord> {
    let mut v = s.sessions();
    v.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    v
}

fn sorted_retained(s: &Store) -> Vec<Message> {
    let mut v = s.retained();
    v.sort_by(|a, b| a.topic.cmp(&b.topic));
    v
}

#[test]
fn rocks_store_passes_the_contract() {
    let root = tempfile::tempdir().expect("tempdir");
    let n = Cell::new(0);
    contract::run_all(&|limits| {
        n.set(n.get() + 1);
        Store::open(&root.path().join(n.get().to_string()), limits, true).expect("open")
    });
}

#[test]
fn contract_holds_without_sync_too() {
    let root = tempfile::tempdir().expect("tempdir");
    let n = Cell::new(0);
    contract::run_all(&|limits| {
        n.set(n.get() + 1);
        Store::open(&root.path().join(n.get().to_string()), limits, false).expect("open")
    });
}

/// Restart: what was applied and made durable is all back, identical to a
/// store that never stopped (the in-memory store as the reference).
#[test]
fn restart_restores_the_same_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = Store::in_memory(QueueLimits::default());
    let (ref_outcomes, _) = reference.submit(workload());
    {
        let s = open(dir.path());
        let (outcomes, ticket) = s.submit(workload());
        assert_eq!(outcomes, ref_outcomes);
        ticket.wait_blocking().expect("durable");
    }
    let s = open(dir.path());
    assert_eq!(sorted_sessions(&s), sorted_sessions(&reference));
    assert_eq!(sorted_retained(&s), sorted_retained(&reference));
    assert_eq!(s.message_bodies(), reference.message_bodies());
    assert_eq!(s.last_applied(), workload().len() as u64);
    // The fan-out body is loaded once and shared again, not copied.
    let online = s.session("online").expect("online");
    let offline = s.session("offline").expect("offline");
    assert!(Arc::ptr_eq(
        &online.queue[&1].message,
        &offline.queue[&1].message
    ));
    assert!(online.queue[&2].pubrec_received);
    assert!(online.inbound_qos2.contains(&77));
    // The online session stays as it was at the crash (owned by epoch 7);
    // the offline one remembers when it left, so expiry keeps counting.
    assert_eq!(online.connected_epoch, Some(7));
    assert_eq!(offline.disconnected_at_ms, Some(2_000));
    assert_eq!(offline.will.as_ref().map(|w| w.delay_secs), Some(30));
    // Absolute message expiry survives as is.
    assert_eq!(online.queue[&1].message.expires_at_ms, Some(9_999_999));
}

/// After a restart, applying continues where it stopped: sequence numbers
/// and message ids are not reused, acknowledgements of recovered entries
/// collect their bodies, and a replayed log prefix is skipped.
#[test]
fn restart_then_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = open(dir.path());
        s.submit(workload()).1.wait_blocking().expect("durable");
    }
    {
        let s = open(dir.path());
        // Replaying the log from the start changes nothing.
        for (i, c) in workload().into_iter().enumerate() {
            let (o, t) = s.apply_indexed(i as u64 + 1, c);
            assert_eq!(o, None);
            t.wait_blocking().expect("durable");
        }
        let (o, t) = s.submit_one(Command::Publish {
            message: msg("a/e", "after", None),
            targets: vec![target("online", 1)],
        });
        assert_eq!(
            o,
            Outcome::Published {
                appended: vec![Ok(4)]
            }
        );
        t.wait_blocking().expect("durable");
        for seq in [1, 2, 4] {
            s.submit_one(Command::Ack {
                client_id: "online".into(),
                seq,
            })
            .1
            .wait_blocking()
            .expect("durable");
        }
        // Only the fan-out body remains, held by "offline".
        assert_eq!(s.message_bodies(), 1);
    }
    let s = open(dir.path());
    assert!(s.session("online").expect("online").queue.is_empty());
    assert_eq!(s.message_bodies(), 1);
    s.submit_one(Command::Discard {
        client_id: "offline".into(),
    })
    .1
    .wait_blocking()
    .expect("durable");
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.message_bodies(), 0);
    assert!(s.session("offline").is_none());
}

/// A second store on the same directory (as a second broker would) is
/// refused while the first is open.
#[test]
fn locked_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = open(dir.path());
    let err = Store::open(dir.path(), QueueLimits::default(), true).expect_err("locked");
    assert!(matches!(err, OpenError::Locked { .. }), "{err:?}");
    drop(first);
    open(dir.path());
}

/// A directory with other files but no database is not taken over.
#[test]
fn foreign_directory_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), "not a database").expect("write");
    let err = Store::open(dir.path(), QueueLimits::default(), true).expect_err("refused");
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err:?}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("notes.txt")]);
}

/// The database opened directly, to damage it as a bug or a disk would.
fn raw_db(dir: &Path) -> rocksdb::DB {
    let mut opts = rocksdb::Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let cfs = ["sessions", "queue", "messages", "retained", "meta"];
    rocksdb::DB::open_cf(&opts, dir, cfs).expect("raw open")
}

fn raw_put(dir: &Path, cf: &str, key: &[u8], value: &[u8]) {
    let db = raw_db(dir);
    let h = db.cf_handle(cf).expect("cf");
    db.put_cf(h, key, value).expect("raw put");
}

#[test]
fn other_format_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()));
    raw_put(dir.path(), "meta", b"format_version", &99u32.to_be_bytes());
    let err = Store::open(dir.path(), QueueLimits::default(), true).expect_err("refused");
    assert!(
        matches!(
            err,
            OpenError::FormatVersion {
                found: 99,
                expected: 2,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn undecodable_record_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()));
    raw_put(dir.path(), "sessions", b"c", b"\xff\xff");
    let err = Store::open(dir.path(), QueueLimits::default(), true).expect_err("refused");
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err:?}");
}

/// Parts that disagree (an entry whose body is missing) are corruption,
/// not something to paper over.
#[test]
fn dangling_queue_entry_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = open(dir.path());
        s.submit(workload()).1.wait_blocking().expect("durable");
    }
    {
        let db = raw_db(dir.path());
        let h = db.cf_handle("messages").expect("cf");
        db.delete_cf(h, 2u64.to_be_bytes()).expect("delete");
    }
    let err = Store::open(dir.path(), QueueLimits::default(), true).expect_err("refused");
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err:?}");
}

/// A failed write (a full disk) fails its ticket and every later one, and
/// the store reports itself unhealthy.
#[test]
fn failed_write_turns_the_store_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    s.submit(workload()).1.wait_blocking().expect("durable");
    assert!(s.is_healthy());
    s.inject_write_failure();
    let (_, t) = s.submit_one(Command::Retain {
        topic: Bytes::from_static(b"r/3"),
        message: Some(msg("r/3", "lost", None)),
    });
    assert!(matches!(t.wait_blocking(), Err(StoreError::WriteFailed(_))));
    assert!(!s.is_healthy());
    let (_, t) = s.submit_one(Command::Ack {
        client_id: "online".into(),
        seq: 1,
    });
    assert_eq!(t.wait_blocking(), Err(StoreError::Failed));
    drop(s);
    // Nothing after the failure reached the disk.
    let s = open(dir.path());
    assert!(s.is_healthy());
    assert_eq!(s.retained().len(), 1);
    assert!(s.session("online").expect("online").queue.contains_key(&1));
}

#[test]
fn in_memory_store_fails_the_same_way() {
    let s = Store::in_memory(QueueLimits::default());
    s.inject_write_failure();
    assert!(!s.is_healthy());
    let (_, t) = s.submit(workload());
    assert_eq!(t.wait_blocking(), Err(StoreError::Failed));
}

/// Many submitters, one writer: everything becomes durable, with fewer
/// writes than submissions when they pile up.
#[test]
fn concurrent_submitters_all_become_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    s.submit_one(Command::Open {
        client_id: "sink".into(),
        epoch: 1,
        clean_start: false,
        protocol_level: 5,
        expiry_secs: 60,
        will: None,
        username: None,
        now_ms: 0,
    })
    .1
    .wait_blocking()
    .expect("durable");
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = s.clone();
            scope.spawn(move || {
                for i in 0..100 {
                    let (_, ticket) = s.submit_one(Command::Publish {
                        message: msg("t", &format!("{t}-{i}"), None),
                        targets: vec![target("sink", 1)],
                    });
                    ticket.wait_blocking().expect("durable");
                }
            });
        }
    });
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.session("sink").expect("sink").queue.len(), 400);
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Copies a fixture to a temporary directory (opening writes to it).
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(fixtures().join(name)).expect("fixture exists") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    dir
}

/// Writes `tests/fixtures/v2` (the current format version): the workload,
/// applied by this version. Run by hand when the format changes (and keep
/// the older fixtures, renamed to their version):
/// `cargo test -p herald-storage --test rocks_store -- --ignored generate`.
#[test]
#[ignore = "writes the committed fixture"]
fn generate_current_fixture() {
    let out = fixtures().join(format!("v{}", herald_storage::encoding::FORMAT_VERSION));
    let _ = std::fs::remove_dir_all(&out);
    {
        let s = open(&out);
        s.submit(workload()).1.wait_blocking().expect("durable");
    }
    // RocksDB's info logs and lock file are not part of the data.
    for entry in std::fs::read_dir(&out).expect("list") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("LOG") || name == "LOCK" {
            std::fs::remove_file(entry.path()).expect("remove");
        }
    }
}

/// A database written by format version 2 loads into the same state: the
/// on-disk format does not drift unnoticed.
#[test]
fn v2_fixture_loads() {
    let dir = copy_fixture("v2");
    let s = open(dir.path());
    let reference = Store::in_memory(QueueLimits::default());
    let _ = reference.submit(workload());
    assert_eq!(sorted_sessions(&s), sorted_sessions(&reference));
    assert_eq!(sorted_retained(&s), sorted_retained(&reference));
    assert_eq!(s.last_applied(), workload().len() as u64);
}

/// A database written by format version 1 (sessions had no owner) loads,
/// is upgraded in place, and still loads the same after the upgrade.
#[test]
fn v1_fixture_loads_and_is_upgraded() {
    let dir = copy_fixture("v1");
    let reference = Store::in_memory(QueueLimits::default());
    let _ = reference.submit(workload());
    let mut expected = sorted_sessions(&reference);
    for s in &mut expected {
        s.owner = None;
    }
    for _ in 0..2 {
        let s = open(dir.path());
        assert_eq!(sorted_sessions(&s), expected);
        assert_eq!(sorted_retained(&s), sorted_retained(&reference));
        assert_eq!(s.last_applied(), workload().len() as u64);
    }
    let db = raw_db(dir.path());
    let meta = db.cf_handle("meta").expect("cf");
    assert_eq!(
        db.get_cf(meta, b"format_version").expect("read").as_deref(),
        Some(&2u32.to_be_bytes()[..]),
        "marked current"
    );
}

/// `tests/fixtures/corrupt`: the v1 fixture with its MANIFEST overwritten by
/// garbage. Refused, and not replaced by an empty database.
#[test]
fn corrupt_fixture_is_refused() {
    let dir = copy_fixture("corrupt");
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    let err = Store::open(dir.path(), QueueLimits::default(), true).expect_err("refused");
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err:?}");
    for name in before {
        assert!(dir.path().join(name).exists(), "nothing was removed");
    }
}
