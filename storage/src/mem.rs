//! The state machine, in memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use crate::command::{Command, DropReason, Outcome};
use crate::model::{Message, QueueEntry, SessionRecord};

/// Per-session queue bounds. The overflow policy is "refuse the newest": an
/// append that would pass either bound is dropped and reported, and
/// nothing already queued is ever dropped to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_messages: 10_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A message body shared by the queue entries that hold it.
#[derive(Debug, Clone)]
pub(crate) struct StoredBody {
    pub(crate) message: Arc<Message>,
    /// Queue entries referring to it; the body goes when this reaches 0.
    pub(crate) refs: u32,
}

/// The keys a command touched, so a persistent store can write exactly its
/// change: each is written as it now is in the state, or deleted if gone.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Sessions whose record (without the queue) changed or went.
    pub(crate) sessions: BTreeSet<String>,
    /// Queue entries added, changed or removed.
    pub(crate) queue: BTreeSet<(String, u64)>,
    /// Message bodies added, whose reference count changed, or removed.
    pub(crate) messages: BTreeSet<u64>,
    /// Retained topics set or deleted.
    pub(crate) retained: BTreeSet<Bytes>,
    /// The next message id advanced.
    pub(crate) next_message_id: bool,
}

/// The durable state: sessions with their queues, and retained messages.
#[derive(Debug)]
pub struct MemState {
    limits: QueueLimits,
    sessions: HashMap<String, SessionRecord>,
    /// Queued bytes per session, kept alongside so limits cost O(1).
    queued_bytes: HashMap<String, usize>,
    retained: BTreeMap<Bytes, Message>,
    /// Message bodies held by queues, by id, with their reference counts.
    messages: HashMap<u64, StoredBody>,
    /// Id of the next message body stored; ids are never reused.
    next_message_id: u64,
}

impl MemState {
    pub fn new(limits: QueueLimits) -> MemState {
        MemState {
            limits,
            sessions: HashMap::new(),
            queued_bytes: HashMap::new(),
            retained: BTreeMap::new(),
            messages: HashMap::new(),
            next_message_id: 1,
        }
    }

    /// A state rebuilt from stored parts (a store loading from disk). Queue
    /// entries must already share the bodies in `messages`.
    pub(crate) fn restore(
        limits: QueueLimits,
        sessions: HashMap<String, SessionRecord>,
        retained: BTreeMap<Bytes, Message>,
        messages: HashMap<u64, StoredBody>,
        next_message_id: u64,
    ) -> MemState {
        let queued_bytes = sessions
            .iter()
            .map(|(id, r)| (id.clone(), r.queued_bytes()))
            .collect();
        MemState {
            limits,
            sessions,
            queued_bytes,
            retained,
            messages,
            next_message_id,
        }
    }

    pub(crate) fn body(&self, id: u64) -> Option<&StoredBody> {
        self.messages.get(&id)
    }

    pub(crate) fn next_message_id(&self) -> u64 {
        self.next_message_id
    }

    pub(crate) fn retained_message(&self, topic: &[u8]) -> Option<&Message> {
        self.retained.get(topic)
    }

    /// Number of distinct message bodies held by queues.
    pub fn stored_bodies(&self) -> usize {
        self.messages.len()
    }

    pub fn sessions(&self) -> impl Iterator<Item = &SessionRecord> {
        self.sessions.values()
    }

    /// Queue entries and queued bytes over every session, from the byte
    /// totals kept per session (no walk over the entries).
    pub fn queue_totals(&self) -> (usize, usize) {
        let entries = self.sessions.values().map(|r| r.queue.len()).sum();
        (entries, self.queued_bytes.values().sum())
    }

    pub fn session(&self, client_id: &str) -> Option<&SessionRecord> {
        self.sessions.get(client_id)
    }

    pub fn retained(&self) -> impl Iterator<Item = &Message> {
        self.retained.values()
    }

    fn remove_session(&mut self, client_id: &str, ch: &mut Changes) -> bool {
        self.queued_bytes.remove(client_id);
        let Some(record) = self.sessions.remove(client_id) else {
            return false;
        };
        ch.sessions.insert(client_id.to_owned());
        for entry in record.queue.values() {
            ch.queue.insert((client_id.to_owned(), entry.seq));
            self.release(entry.message_id, ch);
        }
        true
    }

    /// Drops one reference to a message body; the body goes with the last.
    fn release(&mut self, id: u64, ch: &mut Changes) {
        ch.messages.insert(id);
        if let Some(body) = self.messages.get_mut(&id) {
            body.refs = body.refs.saturating_sub(1);
            if body.refs == 0 {
                self.messages.remove(&id);
            }
        }
    }

    /// Applies one command.
    pub fn apply(&mut self, command: Command) -> Outcome {
        self.apply_tracked(command, &mut Changes::default())
    }

    /// Applies one command and records the keys it touched in `ch`.
    pub(crate) fn apply_tracked(&mut self, command: Command, ch: &mut Changes) -> Outcome {
        match command {
            Command::Open {
                client_id,
                epoch,
                clean_start,
                protocol_level,
                expiry_secs,
                will,
                username,
                now_ms: _,
            } => {
                if clean_start {
                    self.remove_session(&client_id, ch);
                }
                ch.sessions.insert(client_id.clone());
                let session_present = self.sessions.contains_key(&client_id);
                let record =
                    self.sessions
                        .entry(client_id.clone())
                        .or_insert_with(|| SessionRecord {
                            client_id: client_id.clone(),
                            next_seq: 1,
                            ..SessionRecord::default()
                        });
                record.protocol_level = protocol_level;
                record.expiry_secs = expiry_secs;
                record.will = will;
                record.owner = username;
                record.connected_epoch = Some(epoch);
                record.disconnected_at_ms = None;
                Outcome::Opened {
                    session_present,
                    session: Box::new(record.clone()),
                }
            }
            Command::Close {
                client_id,
                epoch,
                expiry_secs,
                will,
                now_ms,
            } => {
                let Some(record) = self.sessions.get_mut(&client_id) else {
                    return Outcome::Closed {
                        removed: false,
                        owned: false,
                    };
                };
                if record.connected_epoch != Some(epoch) {
                    return Outcome::Closed {
                        removed: false,
                        owned: false,
                    };
                }
                if expiry_secs == 0 {
                    self.remove_session(&client_id, ch);
                    return Outcome::Closed {
                        removed: true,
                        owned: true,
                    };
                }
                ch.sessions.insert(client_id.clone());
                record.connected_epoch = None;
                record.disconnected_at_ms = Some(now_ms);
                record.expiry_secs = expiry_secs;
                record.will = will;
                Outcome::Closed {
                    removed: false,
                    owned: true,
                }
            }
            Command::Discard { client_id } => Outcome::Done {
                existed: self.remove_session(&client_id, ch),
            },
            Command::Subscribe {
                client_id,
                filter,
                subscription,
            } => {
                ch.sessions.insert(client_id.clone());
                let existed = self
                    .sessions
                    .get_mut(&client_id)
                    .map(|r| r.subscriptions.insert(filter, subscription).is_some())
                    .unwrap_or(false);
                Outcome::Done { existed }
            }
            Command::Unsubscribe { client_id, filter } => {
                ch.sessions.insert(client_id.clone());
                let existed = self
                    .sessions
                    .get_mut(&client_id)
                    .map(|r| r.subscriptions.remove(&filter).is_some())
                    .unwrap_or(false);
                Outcome::Done { existed }
            }
            Command::Publish { message, targets } => {
                let size = message.size();
                let message = Arc::new(message);
                let message_id = self.next_message_id;
                let mut refs = 0u32;
                let appended: Vec<_> = targets
                    .into_iter()
                    .map(|t| {
                        let record = self
                            .sessions
                            .get_mut(&t.client_id)
                            .ok_or(DropReason::NoSession)?;
                        let bytes = self.queued_bytes.entry(t.client_id.clone()).or_insert(0);
                        if record.queue.len() >= self.limits.max_messages {
                            return Err(DropReason::QueueFullMessages);
                        }
                        if *bytes + size > self.limits.max_bytes {
                            return Err(DropReason::QueueFullBytes);
                        }
                        let seq = record.next_seq;
                        record.next_seq += 1;
                        *bytes += size;
                        refs += 1;
                        ch.sessions.insert(t.client_id.clone());
                        ch.queue.insert((t.client_id, seq));
                        record.queue.insert(
                            seq,
                            QueueEntry {
                                seq,
                                message_id,
                                message: Arc::clone(&message),
                                qos: t.qos,
                                retain: t.retain,
                                subscription_ids: t.subscription_ids,
                                pubrec_received: false,
                            },
                        );
                        Ok(seq)
                    })
                    .collect();
                if refs > 0 {
                    self.next_message_id += 1;
                    ch.next_message_id = true;
                    ch.messages.insert(message_id);
                    self.messages
                        .insert(message_id, StoredBody { message, refs });
                }
                Outcome::Published { appended }
            }
            Command::Retain { topic, message } => {
                ch.retained.insert(topic.clone());
                let existed = match message {
                    Some(m) => self.retained.insert(topic, m).is_some(),
                    None => self.retained.remove(&topic).is_some(),
                };
                Outcome::Done { existed }
            }
            Command::Ack { client_id, seq } => {
                let removed = self
                    .sessions
                    .get_mut(&client_id)
                    .and_then(|r| r.queue.remove(&seq));
                if let (Some(entry), Some(bytes)) =
                    (removed.as_ref(), self.queued_bytes.get_mut(&client_id))
                {
                    *bytes = bytes.saturating_sub(entry.message.size());
                }
                if let Some(entry) = &removed {
                    ch.queue.insert((client_id, seq));
                    self.release(entry.message_id, ch);
                }
                Outcome::Done {
                    existed: removed.is_some(),
                }
            }
            Command::PubRec { client_id, seq } => {
                let entry = self
                    .sessions
                    .get_mut(&client_id)
                    .and_then(|r| r.queue.get_mut(&seq));
                let existed = entry.is_some();
                if let Some(entry) = entry {
                    entry.pubrec_received = true;
                    ch.queue.insert((client_id, seq));
                }
                Outcome::Done { existed }
            }
            Command::InboundQos2 {
                client_id,
                packet_id,
                received,
            } => {
                ch.sessions.insert(client_id.clone());
                let existed = self
                    .sessions
                    .get_mut(&client_id)
                    .map(|r| {
                        if received {
                            !r.inbound_qos2.insert(packet_id)
                        } else {
                            r.inbound_qos2.remove(&packet_id)
                        }
                    })
                    .unwrap_or(false);
                Outcome::Done { existed }
            }
            Command::ClearWill { client_id } => {
                ch.sessions.insert(client_id.clone());
                let existed = self
                    .sessions
                    .get_mut(&client_id)
                    .map(|r| r.will.take().is_some())
                    .unwrap_or(false);
                Outcome::Done { existed }
            }
        }
    }
}
