//! The handle the broker uses to apply commands.
//!
//! Applying is synchronous, under one lock, in submission order: the
//! in-memory copy of the state ([`MemState`]) answers at once. Durability
//! is separate: each submission gets a [`Ticket`] that completes once its
//! change is on disk. For the RocksDB store, the change of every command is
//! turned into writes while the lock is held and queued, in order, to a
//! writer thread; that thread drains every queued batch into one RocksDB
//! `WriteBatch` and writes it with one sync (group commit), so under load
//! many commands share one fsync.
//!
//! Faults: a failed write turns the store failed for good: the ticket of
//! that write and every later one fail, [`Store::is_healthy`] is false, and
//! one error is logged. The in-memory copy still answers, but nothing it
//! says after the failure is durable.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::command::{Command, Outcome};
use crate::mem::{Changes, MemState, QueueLimits};
use crate::model::{Message, SessionRecord};
use crate::rocks::{self, Op, OpenError};

/// Errors of the durable store. A failed write is fatal for durability: the
/// broker must stop acknowledging QoS 1/2 when it sees one.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// This write failed (disk full, I/O error).
    #[error("storage write failed: {0}")]
    WriteFailed(String),
    /// An earlier write failed; the store accepts no durable write since.
    #[error("storage has failed earlier; nothing is written any more")]
    Failed,
    /// The store was closed before the write completed.
    #[error("storage is closed")]
    Closed,
}

/// Completes when the commands it was returned for are durable.
#[derive(Debug)]
#[must_use = "a ticket tells when the commands are durable"]
pub struct Ticket {
    inner: TicketInner,
}

/// A ticket is also a future of its result; polling it does not consume it
/// (so it can wait in a `select!` across loop turns).
impl std::future::Future for Ticket {
    type Output = Result<(), StoreError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match &mut self.inner {
            TicketInner::Done(r) => std::task::Poll::Ready(r.clone()),
            TicketInner::Pending(rx) => std::pin::Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(StoreError::Closed))),
        }
    }
}

#[derive(Debug)]
enum TicketInner {
    Done(Result<(), StoreError>),
    /// Completed by the writer thread after the sync.
    Pending(oneshot::Receiver<Result<(), StoreError>>),
}

impl Ticket {
    /// Waits until the batch is durable.
    pub async fn wait(self) -> Result<(), StoreError> {
        match self.inner {
            TicketInner::Done(r) => r,
            TicketInner::Pending(rx) => rx.await.unwrap_or(Err(StoreError::Closed)),
        }
    }

    /// Blocks the thread until the batch is durable. Not for use on an
    /// async runtime thread (use [`Ticket::wait`] there).
    pub fn wait_blocking(self) -> Result<(), StoreError> {
        match self.inner {
            TicketInner::Done(r) => r,
            TicketInner::Pending(rx) => rx.blocking_recv().unwrap_or(Err(StoreError::Closed)),
        }
    }

    /// The result if the batch is already settled, without waiting.
    pub fn try_result(&mut self) -> Option<Result<(), StoreError>> {
        match &mut self.inner {
            TicketInner::Done(r) => Some(r.clone()),
            TicketInner::Pending(rx) => match rx.try_recv() {
                Ok(r) => Some(r),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => Some(Err(StoreError::Closed)),
            },
        }
    }

    /// A ticket that is already complete.
    pub fn ready() -> Ticket {
        Ticket::done(Ok(()))
    }

    fn done(result: Result<(), StoreError>) -> Ticket {
        Ticket {
            inner: TicketInner::Done(result),
        }
    }
}

/// Health shared between the handle and the writer thread.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Set once, by the first failed write; never cleared.
    pub(crate) failed: AtomicBool,
    /// Fault injection for tests: the next write fails as a full disk would.
    pub(crate) inject_failure: AtomicBool,
    /// Group writes done (each one write and, with sync, one fsync).
    pub(crate) writes: AtomicU64,
}

/// A batch queued for the writer thread.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) ops: Vec<Op>,
    /// Index of the last command applied when the batch was queued.
    pub(crate) last_applied: u64,
    pub(crate) done: oneshot::Sender<Result<(), StoreError>>,
}

/// State under the store's lock.
#[derive(Debug)]
struct Core {
    state: MemState,
    /// Index of the last applied command.
    last_applied: u64,
    /// To the writer thread; `None` for the in-memory store.
    tx: Option<mpsc::Sender<Pending>>,
}

#[derive(Debug)]
struct Inner {
    core: Mutex<Core>,
    health: Arc<Health>,
    /// The writer thread, joined on drop so that the database is closed
    /// (and its lock released) when the last handle goes.
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop once it has drained.
        self.core.get_mut().tx = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The store: the state machine behind one lock, applied in submission order.
///
/// Applying is synchronous and returns the outcomes at once (sequence
/// numbers, session records); durability is the separate [`Ticket`], so the
/// broker can deliver to online subscribers while a batch is being synced
/// and send PUBACK only once the ticket completes.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// An in-memory store with the given queue limits: the test double.
    /// Its tickets complete at once (and fail once a failure is injected).
    pub fn in_memory(limits: QueueLimits) -> Store {
        Store {
            inner: Arc::new(Inner {
                core: Mutex::new(Core {
                    state: MemState::new(limits),
                    last_applied: 0,
                    tx: None,
                }),
                health: Arc::new(Health::default()),
                writer: None,
            }),
        }
    }

    /// Opens (creating if absent) the RocksDB store in `dir` and loads it.
    /// With `sync`, a ticket completes only after its write is synced to
    /// disk; without, after it reached the operating system (it survives
    /// the process being killed, not the machine losing power).
    ///
    /// Never starts empty over existing data: a directory that is corrupt,
    /// locked by another process, holds another format version or holds
    /// files that are not a database is an [`OpenError`].
    pub fn open(dir: &Path, limits: QueueLimits, sync: bool) -> Result<Store, OpenError> {
        let loaded = rocks::open(dir, limits)?;
        let health = Arc::new(Health::default());
        let (tx, rx) = mpsc::channel();
        let writer = rocks::spawn_writer(loaded.db, rx, Arc::clone(&health), sync)?;
        Ok(Store {
            inner: Arc::new(Inner {
                core: Mutex::new(Core {
                    state: loaded.state,
                    last_applied: loaded.last_applied,
                    tx: Some(tx),
                }),
                health,
                writer: Some(writer),
            }),
        })
    }

    /// Applies `commands` in order; returns one outcome per command and a
    /// ticket for their durability. Each command takes the next index.
    pub fn submit(&self, commands: Vec<Command>) -> (Vec<Outcome>, Ticket) {
        let mut core = self.inner.core.lock();
        let mut ops = Vec::new();
        let outcomes = commands
            .into_iter()
            .map(|c| {
                core.last_applied += 1;
                core.apply(c, &mut ops)
            })
            .collect();
        let ticket = core.enqueue(ops, &self.inner.health);
        (outcomes, ticket)
    }

    /// Applies one command.
    pub fn submit_one(&self, command: Command) -> (Outcome, Ticket) {
        let mut core = self.inner.core.lock();
        let mut ops = Vec::new();
        core.last_applied += 1;
        let outcome = core.apply(command, &mut ops);
        let ticket = core.enqueue(ops, &self.inner.health);
        (outcome, ticket)
    }

    /// Applies the command at log position `index`, unless a command at
    /// that index or later was applied already: then it is skipped
    /// (`None`), so replaying a log over the store is harmless. The ticket
    /// completes when the state up to `index` is durable.
    pub fn apply_indexed(&self, index: u64, command: Command) -> (Option<Outcome>, Ticket) {
        let mut core = self.inner.core.lock();
        let mut ops = Vec::new();
        let outcome = if index <= core.last_applied {
            None
        } else {
            core.last_applied = index;
            Some(core.apply(command, &mut ops))
        };
        let ticket = core.enqueue(ops, &self.inner.health);
        (outcome, ticket)
    }

    /// Index of the last applied command (0 when none).
    pub fn last_applied(&self) -> u64 {
        self.inner.core.lock().last_applied
    }

    /// False once a write has failed: nothing is durable any more.
    pub fn is_healthy(&self) -> bool {
        !self.inner.health.failed.load(Ordering::Acquire)
    }

    /// Group writes done so far (with `sync`, each is one fsync however
    /// many submissions it carried).
    pub fn writes_total(&self) -> u64 {
        self.inner.health.writes.load(Ordering::Relaxed)
    }

    /// Fault injection for tests: the next write fails as it would on a
    /// full disk, turning the store failed.
    #[doc(hidden)]
    pub fn inject_write_failure(&self) {
        if self.inner.writer.is_some() {
            self.inner
                .health
                .inject_failure
                .store(true, Ordering::Release);
        } else {
            self.inner.health.failed.store(true, Ordering::Release);
        }
    }

    /// Every stored session, for rebuilding the subscription index at start.
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.inner.core.lock().state.sessions().cloned().collect()
    }

    /// One stored session.
    pub fn session(&self, client_id: &str) -> Option<SessionRecord> {
        self.inner.core.lock().state.session(client_id).cloned()
    }

    /// Every retained message, for rebuilding the retained index at start.
    pub fn retained(&self) -> Vec<Message> {
        self.inner.core.lock().state.retained().cloned().collect()
    }

    /// Queue entries and their bytes over every stored session (for the
    /// queue gauges, at scrape time).
    pub fn queue_totals(&self) -> (usize, usize) {
        self.inner.core.lock().state.queue_totals()
    }

    /// Number of distinct message bodies held by queues (each stored once,
    /// however many queues hold it).
    pub fn message_bodies(&self) -> usize {
        self.inner.core.lock().state.stored_bodies()
    }
}

impl Core {
    /// Applies one command; for a persistent store, appends its writes.
    fn apply(&mut self, command: Command, ops: &mut Vec<Op>) -> Outcome {
        if self.tx.is_none() {
            return self.state.apply(command);
        }
        let mut changes = Changes::default();
        let outcome = self.state.apply_tracked(command, &mut changes);
        rocks::ops_for(&self.state, &changes, ops);
        outcome
    }

    /// Queues `ops` for the writer (still under the lock, so the writer
    /// sees batches in application order) and returns their ticket.
    fn enqueue(&self, ops: Vec<Op>, health: &Health) -> Ticket {
        if health.failed.load(Ordering::Acquire) {
            return Ticket::done(Err(StoreError::Failed));
        }
        let Some(tx) = &self.tx else {
            return Ticket::ready();
        };
        let (done, rx) = oneshot::channel();
        let pending = Pending {
            ops,
            last_applied: self.last_applied,
            done,
        };
        if tx.send(pending).is_err() {
            return Ticket::done(Err(StoreError::Closed));
        }
        Ticket {
            inner: TicketInner::Pending(rx),
        }
    }
}
