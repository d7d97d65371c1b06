//! The state machine, in memory.

use std::collections::{BTreeMap, HashMap};
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

/// The durable state: sessions with their queues, and retained messages.
#[derive(Debug)]
pub struct MemState {
    limits: QueueLimits,
    sessions: HashMap<String, SessionRecord>,
    /// Queued bytes per session, kept alongside so limits cost O(1).
    queued_bytes: HashMap<String, usize>,
    retained: BTreeMap<Bytes, Message>,
}

impl MemState {
    pub fn new(limits: QueueLimits) -> MemState {
        MemState {
            limits,
            sessions: HashMap::new(),
            queued_bytes: HashMap::new(),
            retained: BTreeMap::new(),
        }
    }

    pub fn sessions(&self) -> impl Iterator<Item = &SessionRecord> {
        self.sessions.values()
    }

    pub fn session(&self, client_id: &str) -> Option<&SessionRecord> {
        self.sessions.get(client_id)
    }

    pub fn retained(&self) -> impl Iterator<Item = &Message> {
        self.retained.values()
    }

    fn remove_session(&mut self, client_id: &str) -> bool {
        self.queued_bytes.remove(client_id);
        self.sessions.remove(client_id).is_some()
    }

    /// Applies one command.
    pub fn apply(&mut self, command: Command) -> Outcome {
        match command {
            Command::Open {
                client_id,
                epoch,
                clean_start,
                protocol_level,
                expiry_secs,
                will,
                now_ms: _,
            } => {
                if clean_start {
                    self.remove_session(&client_id);
                }
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
                    self.remove_session(&client_id);
                    return Outcome::Closed {
                        removed: true,
                        owned: true,
                    };
                }
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
                existed: self.remove_session(&client_id),
            },
            Command::Subscribe {
                client_id,
                filter,
                subscription,
            } => {
                let existed = self
                    .sessions
                    .get_mut(&client_id)
                    .map(|r| r.subscriptions.insert(filter, subscription).is_some())
                    .unwrap_or(false);
                Outcome::Done { existed }
            }
            Command::Unsubscribe { client_id, filter } => {
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
                let appended = targets
                    .into_iter()
                    .map(|t| {
                        let record = self
                            .sessions
                            .get_mut(&t.client_id)
                            .ok_or(DropReason::NoSession)?;
                        let bytes = self.queued_bytes.entry(t.client_id).or_insert(0);
                        if record.queue.len() >= self.limits.max_messages {
                            return Err(DropReason::QueueFullMessages);
                        }
                        if *bytes + size > self.limits.max_bytes {
                            return Err(DropReason::QueueFullBytes);
                        }
                        let seq = record.next_seq;
                        record.next_seq += 1;
                        *bytes += size;
                        record.queue.insert(
                            seq,
                            QueueEntry {
                                seq,
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
                Outcome::Published { appended }
            }
            Command::Retain { topic, message } => {
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
                }
                Outcome::Done { existed }
            }
            Command::InboundQos2 {
                client_id,
                packet_id,
                received,
            } => {
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
