//! The handle the broker uses to apply commands.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::command::{Command, Outcome};
use crate::mem::{MemState, QueueLimits};
use crate::model::{Message, SessionRecord};

/// Errors of the durable store. A failed write is fatal for durability: the
/// broker must stop acknowledging QoS 1/2 when it sees one.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("storage write failed: {0}")]
    WriteFailed(String),
}

/// Completes when the commands it was returned for are durable.
#[derive(Debug)]
#[must_use = "a ticket tells when the commands are durable"]
pub struct Ticket {
    result: Result<(), StoreError>,
}

impl Ticket {
    /// Waits until the batch is durable.
    pub async fn wait(self) -> Result<(), StoreError> {
        self.result
    }

    /// A ticket that is already complete.
    pub fn ready() -> Ticket {
        Ticket { result: Ok(()) }
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
    state: Arc<Mutex<MemState>>,
}

impl Store {
    /// An in-memory store with the given queue limits.
    pub fn in_memory(limits: QueueLimits) -> Store {
        Store {
            state: Arc::new(Mutex::new(MemState::new(limits))),
        }
    }

    /// Applies `commands` in order; returns one outcome per command and a
    /// ticket for their durability.
    pub fn submit(&self, commands: Vec<Command>) -> (Vec<Outcome>, Ticket) {
        let mut state = self.state.lock();
        let outcomes = commands.into_iter().map(|c| state.apply(c)).collect();
        (outcomes, Ticket::ready())
    }

    /// Applies one command.
    pub fn submit_one(&self, command: Command) -> (Outcome, Ticket) {
        let outcome = self.state.lock().apply(command);
        (outcome, Ticket::ready())
    }

    /// Every stored session, for rebuilding the subscription index at start.
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.state.lock().sessions().cloned().collect()
    }

    /// One stored session.
    pub fn session(&self, client_id: &str) -> Option<SessionRecord> {
        self.state.lock().session(client_id).cloned()
    }

    /// Every retained message, for rebuilding the retained index at start.
    pub fn retained(&self) -> Vec<Message> {
        self.state.lock().retained().cloned().collect()
    }
}
