//! The RocksDB side of the store: opening and loading a database, the
//! writes that carry each command's change, and the group-commit writer.
//!
//! Column families (layouts in [`crate::encoding`]):
//! - `sessions`: client id → session record without its queue;
//! - `queue`: client id + big-endian seq → queue entry (with a message id);
//! - `messages`: message id → reference count + body; deleted with the
//!   last reference, so a fan-out stores its payload once;
//! - `retained`: topic → message;
//! - `meta`: format version, index of the last applied command, next
//!   message id.
//!
//! The database is the durable copy; [`MemState`] is loaded from it at open
//! and is the working copy afterwards. Each command's writes are derived
//! from the keys it touched (`mem::Changes`), read back from the working
//! copy right after applying it, so the two never disagree on a key.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use bytes::Bytes;
use rocksdb::{
    ColumnFamilyDescriptor, DBCompressionType, ErrorKind, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};

use crate::encoding::{self, DecodeError, StoredEntry};
use crate::mem::{Changes, MemState, QueueLimits, StoredBody};
use crate::model::{QueueEntry, SessionRecord};
use crate::store::{Health, Pending, StoreError};

/// Why a database directory could not be opened. The broker must not start
/// on any of these: starting empty would lose what the directory holds.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("database {path} is locked by another process")]
    Locked { path: PathBuf },
    #[error("database {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("database {path} has format version {found}; this herald reads version {expected}")]
    FormatVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("cannot open database {path}: {detail}")]
    Io { path: PathBuf, detail: String },
}

/// A column family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cf {
    Sessions,
    Queue,
    Messages,
    Retained,
    Meta,
}

const CFS: [Cf; 5] = [
    Cf::Sessions,
    Cf::Queue,
    Cf::Messages,
    Cf::Retained,
    Cf::Meta,
];

impl Cf {
    fn name(self) -> &'static str {
        match self {
            Cf::Sessions => "sessions",
            Cf::Queue => "queue",
            Cf::Messages => "messages",
            Cf::Retained => "retained",
            Cf::Meta => "meta",
        }
    }
}

/// One write of a command's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Put(Cf, Vec<u8>, Vec<u8>),
    Delete(Cf, Vec<u8>),
}

/// A database opened and loaded.
pub(crate) struct Loaded {
    pub(crate) db: DB,
    pub(crate) state: MemState,
    pub(crate) last_applied: u64,
}

fn corrupt(path: &Path, detail: impl Into<String>) -> OpenError {
    OpenError::Corrupt {
        path: path.to_owned(),
        detail: detail.into(),
    }
}

fn from_rocks(path: &Path, e: rocksdb::Error) -> OpenError {
    let detail = e.to_string();
    match e.kind() {
        ErrorKind::Corruption => corrupt(path, detail),
        ErrorKind::IOError if detail.to_ascii_lowercase().contains("lock") => OpenError::Locked {
            path: path.to_owned(),
        },
        // A missing or extra column family, options that do not parse:
        // not a database this broker wrote.
        ErrorKind::InvalidArgument | ErrorKind::NotSupported => corrupt(path, detail),
        _ => OpenError::Io {
            path: path.to_owned(),
            detail,
        },
    }
}

/// Files RocksDB may leave before a database exists (its lock and info
/// log): a directory holding only these is still "empty".
fn is_pre_creation_file(name: &str) -> bool {
    name == "LOCK" || name == "LOG" || name.starts_with("LOG.old")
}

fn options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_paranoid_checks(true);
    // Keep RocksDB's own info log small: it is for post-mortems only.
    o.set_keep_log_file_num(2);
    o.set_max_log_file_size(1024 * 1024);
    o
}

/// Opens the database in `dir` (creating it when the directory is absent
/// or empty) and loads it.
pub(crate) fn open(dir: &Path, limits: QueueLimits) -> Result<Loaded, OpenError> {
    let io = |e: std::io::Error| OpenError::Io {
        path: dir.to_owned(),
        detail: e.to_string(),
    };
    let exists = dir.join("CURRENT").exists();
    if !exists && dir.exists() {
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            let name = name.to_string_lossy();
            if !is_pre_creation_file(&name) {
                return Err(corrupt(
                    dir,
                    format!("holds files (such as {name}) but no database (no CURRENT file)"),
                ));
            }
        }
    }
    let mut opts = options();
    opts.create_if_missing(!exists);
    opts.create_missing_column_families(!exists);
    let descriptors = CFS
        .iter()
        .map(|cf| ColumnFamilyDescriptor::new(cf.name(), options()));
    let db = DB::open_cf_descriptors(&opts, dir, descriptors).map_err(|e| from_rocks(dir, e))?;
    let found = if exists {
        let version = get(&db, dir, Cf::Meta, encoding::META_FORMAT_VERSION)?
            .ok_or_else(|| corrupt(dir, "no format version"))?;
        let found = encoding::decode_u32(&version, "format version").map_err(|e| dec(dir, e))?;
        if !(encoding::OLDEST_READABLE_VERSION..=encoding::FORMAT_VERSION).contains(&found) {
            return Err(OpenError::FormatVersion {
                path: dir.to_owned(),
                found,
                expected: encoding::FORMAT_VERSION,
            });
        }
        found
    } else {
        encoding::FORMAT_VERSION
    };
    let (state, last_applied) = load(&db, dir, limits, found)?;
    if !exists || found != encoding::FORMAT_VERSION {
        // A new database gets the current version. An older one is
        // upgraded in one atomic write: its session records rewritten in
        // the current layout, and the version marked current.
        let mut batch = WriteBatch::default();
        batch.put_cf(
            handle(&db, Cf::Meta),
            encoding::META_FORMAT_VERSION,
            encoding::FORMAT_VERSION.to_be_bytes(),
        );
        for record in state.sessions() {
            batch.put_cf(
                handle(&db, Cf::Sessions),
                record.client_id.as_bytes(),
                encoding::encode_session(record),
            );
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        db.write_opt(batch, &wo).map_err(|e| from_rocks(dir, e))?;
    }
    Ok(Loaded {
        db,
        state,
        last_applied,
    })
}

fn handle(db: &DB, cf: Cf) -> &rocksdb::ColumnFamily {
    db.cf_handle(cf.name())
        .expect("every column family is opened with the database")
}

fn dec(path: &Path, e: DecodeError) -> OpenError {
    corrupt(path, e.to_string())
}

fn get(db: &DB, path: &Path, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, OpenError> {
    db.get_cf(handle(db, cf), key)
        .map_err(|e| from_rocks(path, e))
}

/// A key and its value, as read back.
type Kv = (Box<[u8]>, Box<[u8]>);

/// Every key and value of a column family, in key order.
fn scan<'a>(
    db: &'a DB,
    path: &'a Path,
    cf: Cf,
) -> impl Iterator<Item = Result<Kv, OpenError>> + 'a {
    db.iterator_cf(handle(db, cf), IteratorMode::Start)
        .map(move |r| r.map_err(|e| from_rocks(path, e)))
}

/// Loads the working copy, checking that the parts agree: every queue entry
/// belongs to a stored session and refers to a stored body, and every
/// body's reference count is the number of entries referring to it.
fn load(
    db: &DB,
    path: &Path,
    limits: QueueLimits,
    version: u32,
) -> Result<(MemState, u64), OpenError> {
    let meta_u64 = |key: &[u8], what: &'static str, default: u64| -> Result<u64, OpenError> {
        match get(db, path, Cf::Meta, key)? {
            Some(v) => encoding::decode_u64(&v, what).map_err(|e| dec(path, e)),
            None => Ok(default),
        }
    };
    let last_applied = meta_u64(encoding::META_LAST_APPLIED, "last applied index", 0)?;
    let next_message_id = meta_u64(encoding::META_NEXT_MESSAGE_ID, "next message id", 1)?;

    let mut bodies: HashMap<u64, (u32, StoredBody)> = HashMap::new();
    for kv in scan(db, path, Cf::Messages) {
        let (k, v) = kv?;
        let id = encoding::decode_u64(&k, "message id").map_err(|e| dec(path, e))?;
        if id >= next_message_id {
            return Err(corrupt(path, format!("message {id} is past the next id")));
        }
        let (refs, message) = encoding::decode_body(&v).map_err(|e| dec(path, e))?;
        let body = StoredBody {
            message: Arc::new(message),
            refs: 0,
        };
        bodies.insert(id, (refs, body));
    }

    let mut sessions: HashMap<String, SessionRecord> = HashMap::new();
    for kv in scan(db, path, Cf::Sessions) {
        let (k, v) = kv?;
        let id =
            String::from_utf8(k.to_vec()).map_err(|_| corrupt(path, "session key is not UTF-8"))?;
        let record = encoding::decode_session_of_version(id.clone(), &v, version)
            .map_err(|e| dec(path, e))?;
        sessions.insert(id, record);
    }

    for kv in scan(db, path, Cf::Queue) {
        let (k, v) = kv?;
        let (client_id, seq) = encoding::decode_queue_key(&k).map_err(|e| dec(path, e))?;
        let e = encoding::decode_entry(&v).map_err(|e| dec(path, e))?;
        let record = sessions
            .get_mut(&client_id)
            .ok_or_else(|| corrupt(path, "a queue entry belongs to no session"))?;
        if seq >= record.next_seq {
            return Err(corrupt(
                path,
                "a queue entry is past its session's next seq",
            ));
        }
        let (_, body) = bodies
            .get_mut(&e.message_id)
            .ok_or_else(|| corrupt(path, "a queue entry refers to a missing message"))?;
        body.refs += 1;
        record.queue.insert(
            seq,
            QueueEntry {
                seq,
                message_id: e.message_id,
                message: Arc::clone(&body.message),
                qos: e.qos,
                retain: e.retain,
                subscription_ids: e.subscription_ids,
                pubrec_received: e.pubrec_received,
            },
        );
    }
    let mut messages = HashMap::with_capacity(bodies.len());
    for (id, (stored_refs, body)) in bodies {
        if stored_refs != body.refs {
            return Err(corrupt(
                path,
                format!(
                    "message {id} counts {stored_refs} references but {} entries hold it",
                    body.refs
                ),
            ));
        }
        messages.insert(id, body);
    }

    let mut retained = BTreeMap::new();
    for kv in scan(db, path, Cf::Retained) {
        let (k, v) = kv?;
        let message = encoding::decode_message(&v).map_err(|e| dec(path, e))?;
        retained.insert(Bytes::copy_from_slice(&k), message);
    }
    let state = MemState::restore(limits, sessions, retained, messages, next_message_id);
    Ok((state, last_applied))
}

/// Appends the writes that make the database match `state` on every key in
/// `ch`: a key present in the state is written as it now is, a key gone
/// from it is deleted.
pub(crate) fn ops_for(state: &MemState, ch: &Changes, ops: &mut Vec<Op>) {
    for id in &ch.sessions {
        let key = id.as_bytes().to_vec();
        match state.session(id) {
            Some(r) => ops.push(Op::Put(Cf::Sessions, key, encoding::encode_session(r))),
            None => ops.push(Op::Delete(Cf::Sessions, key)),
        }
    }
    for (id, seq) in &ch.queue {
        let key = encoding::queue_key(id, *seq);
        match state.session(id).and_then(|r| r.queue.get(seq)) {
            Some(e) => {
                let stored = StoredEntry {
                    message_id: e.message_id,
                    qos: e.qos,
                    retain: e.retain,
                    pubrec_received: e.pubrec_received,
                    subscription_ids: e.subscription_ids.clone(),
                };
                ops.push(Op::Put(Cf::Queue, key, encoding::encode_entry(&stored)));
            }
            None => ops.push(Op::Delete(Cf::Queue, key)),
        }
    }
    for id in &ch.messages {
        let key = id.to_be_bytes().to_vec();
        match state.body(*id) {
            Some(b) => ops.push(Op::Put(
                Cf::Messages,
                key,
                encoding::encode_body(b.refs, &b.message),
            )),
            None => ops.push(Op::Delete(Cf::Messages, key)),
        }
    }
    for topic in &ch.retained {
        let key = topic.to_vec();
        match state.retained_message(topic) {
            Some(m) => ops.push(Op::Put(Cf::Retained, key, encoding::encode_message(m))),
            None => ops.push(Op::Delete(Cf::Retained, key)),
        }
    }
    if ch.next_message_id {
        ops.push(Op::Put(
            Cf::Meta,
            encoding::META_NEXT_MESSAGE_ID.to_vec(),
            state.next_message_id().to_be_bytes().to_vec(),
        ));
    }
}

/// Most batches folded into one write, so one huge backlog does not make
/// one huge write.
const MAX_GROUP: usize = 4096;

/// Starts the writer thread, which owns the database from now on.
pub(crate) fn spawn_writer(
    db: DB,
    rx: mpsc::Receiver<Pending>,
    health: Arc<Health>,
    sync: bool,
) -> Result<JoinHandle<()>, OpenError> {
    let path = db.path().to_owned();
    std::thread::Builder::new()
        .name("herald-store-writer".into())
        .spawn(move || write_loop(&db, &rx, &health, sync))
        .map_err(|e| OpenError::Io {
            path,
            detail: format!("cannot start the writer thread: {e}"),
        })
}

/// Group commit: waits for one batch, takes every batch queued behind it,
/// writes them all (plus the last applied index) in one `WriteBatch` with
/// one sync, then completes their tickets.
///
/// The sync is a separate `flush_wal(true)` after the write (one fsync per
/// group either way), so that write and sync latency are measured apart:
/// `herald_storage_write_seconds`, `herald_storage_sync_seconds` and the
/// group size `herald_storage_group_commit_size` (submissions per write).
fn write_loop(db: &DB, rx: &mpsc::Receiver<Pending>, health: &Health, sync: bool) {
    let wo = WriteOptions::default();
    let write_latency = metrics::histogram!("herald_storage_write_seconds");
    let sync_latency = metrics::histogram!("herald_storage_sync_seconds");
    let group_size = metrics::histogram!("herald_storage_group_commit_size");
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let result = if health.failed.load(Ordering::Acquire) {
            Err(StoreError::Failed)
        } else {
            group_size.record(group.len() as f64);
            let started = std::time::Instant::now();
            let mut r = write_group(db, &group, &wo, health);
            write_latency.record(started.elapsed().as_secs_f64());
            if sync && r.is_ok() {
                let started = std::time::Instant::now();
                r = db
                    .flush_wal(true)
                    .map_err(|e| StoreError::WriteFailed(e.to_string()));
                sync_latency.record(started.elapsed().as_secs_f64());
            }
            if let Err(e) = &r {
                // Logged once: from now on every ticket fails without
                // touching the disk.
                health.failed.store(true, Ordering::Release);
                tracing::error!(
                    error = %e,
                    path = %db.path().display(),
                    "storage write failed; QoS 1/2 messages are no longer acknowledged"
                );
            }
            r
        };
        for p in group {
            let _ = p.done.send(result.clone());
        }
    }
}

fn write_group(
    db: &DB,
    group: &[Pending],
    wo: &WriteOptions,
    health: &Health,
) -> Result<(), StoreError> {
    let mut batch = WriteBatch::default();
    for p in group {
        for op in &p.ops {
            match op {
                Op::Put(cf, k, v) => batch.put_cf(handle(db, *cf), k, v),
                Op::Delete(cf, k) => batch.delete_cf(handle(db, *cf), k),
            }
        }
    }
    let last = group.iter().map(|p| p.last_applied).max().unwrap_or(0);
    batch.put_cf(
        handle(db, Cf::Meta),
        encoding::META_LAST_APPLIED,
        last.to_be_bytes(),
    );
    if health.inject_failure.swap(false, Ordering::AcqRel) {
        return Err(StoreError::WriteFailed(
            "injected failure (as a full disk)".into(),
        ));
    }
    db.write_opt(batch, wo)
        .map_err(|e| StoreError::WriteFailed(e.to_string()))?;
    health.writes.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    /// Batches queued while the writer is busy go out in one write (one
    /// fsync), in order, and all their tickets complete.
    #[test]
    fn queued_batches_share_one_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let loaded = open(dir.path(), QueueLimits::default()).expect("open");
        let (tx, rx) = mpsc::channel();
        let mut tickets = Vec::new();
        for i in 0..100u64 {
            let (done, wait) = oneshot::channel();
            let ops = vec![Op::Put(Cf::Retained, vec![b'k'], i.to_be_bytes().to_vec())];
            tx.send(Pending {
                ops,
                last_applied: i + 1,
                done,
            })
            .expect("writer not started yet; the channel holds them");
            tickets.push(wait);
        }
        drop(tx);
        let health = Arc::new(Health::default());
        let writer = spawn_writer(loaded.db, rx, Arc::clone(&health), true).expect("writer starts");
        for t in tickets {
            assert_eq!(t.blocking_recv().expect("completed"), Ok(()));
        }
        writer.join().expect("writer ends when the channel closes");
        assert_eq!(health.writes.load(Ordering::Relaxed), 1);
        // Later writes won: the last batch's value and index are stored.
        let db = DB::open_cf(&options(), dir.path(), CFS.map(Cf::name)).expect("reopen");
        let v = db
            .get_cf(handle(&db, Cf::Retained), b"k")
            .expect("read")
            .expect("present");
        assert_eq!(v, 99u64.to_be_bytes());
        let last = db
            .get_cf(handle(&db, Cf::Meta), encoding::META_LAST_APPLIED)
            .expect("read")
            .expect("present");
        assert_eq!(last, 100u64.to_be_bytes());
    }
}
