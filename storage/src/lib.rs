//! Herald's durable state: a deterministic state machine that applies
//! [`Command`]s.
//!
//! Every durable change the broker makes — a persistent session opened or
//! closed, a subscription added, a message appended to a session's queue and
//! acknowledged, a retained message set — is a [`Command`] applied through
//! [`Store::submit`]. Applying the same sequence of commands to two stores
//! yields the same state, which is what lets the cluster later feed the same
//! commands from a Raft log to every node.
//!
//! This crate knows no MQTT wire types: messages are topic, payload, QoS,
//! flags and an opaque property blob that the broker encodes.
//!
//! Modules:
//! - [`model`]: the records the state is made of (sessions, queues, messages).
//! - [`command`]: the commands and what applying each returns.
//! - [`mem`]: the state machine itself, kept in memory (the working copy).
//! - [`encoding`]: the compact binary layout of the records on disk.
//! - [`rocks`]: the RocksDB database: column families, open and load, the
//!   writes of each command and the group-commit writer.
//! - [`contract`]: the test suite every store implementation must pass.
//! - [`store`]: the handle the broker uses: submit a batch, get the outcomes
//!   at once and a ticket that completes when the batch is durable;
//!   [`Store::open`] (RocksDB) in the broker, [`Store::in_memory`] in tests.

pub mod command;
pub mod contract;
pub mod encoding;
pub mod mem;
pub mod model;
pub mod rocks;
pub mod store;

pub use command::{Command, DropReason, Outcome, Target};
pub use mem::{MemState, QueueLimits};
pub use model::{Message, QueueEntry, SessionRecord, Subscription, Will};
pub use rocks::OpenError;
pub use store::{Store, StoreError, Ticket};
