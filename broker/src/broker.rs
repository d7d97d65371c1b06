//! The broker's shared state and the router.
//!
//! [`Broker`] holds what every connection shares: the subscription index,
//! the retained messages, the session registry and the durable store. The
//! router ([`Broker::publish`]) matches a message against the index and
//! hands one [`Delivery`] per matching session to its connection, or — for
//! persistent sessions and QoS 1/2 — appends it to the session's durable
//! queue first. There is no global lock on this path: the index is sharded
//! behind read locks, each session has its own lock, and the store is only
//! touched for persistent sessions and retained messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use herald_storage::{Command, DropReason, Outcome, Store, Target, Ticket};
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::codec::{self, Packet, ProtocolVersion, Publish, PublishProperties, QoS};
use crate::config::Config;
use crate::retained::RetainedTree;
use crate::session::{
    Congestion, Delivery, Msg, MsgProperties, Pushed, SessionHandle, SessionKey, SubOpts,
};
use crate::stats::{Drop, Stats};
use crate::topic::TopicLimits;
use crate::trie::ShardedIndex;

/// State shared by every connection.
#[derive(Debug)]
pub struct Broker {
    pub config: Arc<Config>,
    pub stats: Stats,
    /// Password file, ACL, failed-login limiter, client-id owners.
    pub security: crate::security::Security,
    /// Plain and shared subscriptions of every session (online or not).
    pub(crate) index: ShardedIndex<SessionKey, SubOpts>,
    /// Retained messages by topic.
    pub(crate) retained: RwLock<RetainedTree<Arc<Msg>>>,
    /// Client id → session. Touched on connect and close, never on publish.
    pub(crate) registry: crate::registry::Registry,
    /// The durable state machine.
    pub(crate) store: Store,
    next_epoch: AtomicU64,
    /// Flips to true when the broker shuts down.
    pub(crate) shutdown: watch::Sender<bool>,
    pub started: Instant,
    /// Publish-to-deliver latency (a no-op handle when no recorder is installed).
    pub(crate) deliver_latency: metrics::Histogram,
    /// Notified when the last open connection closes (shutdown waits here).
    no_connections: tokio::sync::Notify,
}

/// One open connection, counted against `limits.max_connections` and in
/// `herald_connections` from accept until it is dropped. A connection owns
/// its slot (and reaches the broker through it), so counting costs no
/// per-connection bookkeeping beyond the broker reference it needs anyway.
pub struct ConnSlot(Arc<Broker>);

impl ConnSlot {
    /// A slot if fewer than `limits.max_connections` are open.
    pub fn take(broker: &Arc<Broker>) -> Option<ConnSlot> {
        let max = broker.config.limits.max_connections as u64;
        broker
            .stats
            .connections_current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(ConnSlot(Arc::clone(broker)))
    }
}

impl std::fmt::Debug for ConnSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnSlot")
    }
}

impl std::ops::Deref for ConnSlot {
    type Target = Arc<Broker>;
    fn deref(&self) -> &Arc<Broker> {
        &self.0
    }
}

impl std::ops::Drop for ConnSlot {
    fn drop(&mut self) {
        if self
            .0
            .stats
            .connections_current
            .fetch_sub(1, Ordering::AcqRel)
            == 1
        {
            self.0.no_connections.notify_waiters();
        }
    }
}

/// Result of routing one message.
#[derive(Debug)]
pub struct Routed {
    /// Sessions the message was handed or queued to.
    pub matched: usize,
    /// Completes when every durable effect is durable.
    pub ticket: Ticket,
    /// Connections this message left above their high-water mark: a
    /// QoS 1/2 publisher pauses until they drain (backpressure), so nothing
    /// it was acknowledged for has to be dropped.
    pub congested: Vec<Congestion>,
    /// A persistent session's stored queue was full and refused the
    /// message (5.0 publishers get PUBACK/PUBREC 0x97).
    pub refused: bool,
}

impl Broker {
    /// The broker over `store` (opened by the server), with its sessions,
    /// subscriptions and retained messages recovered from it. Must run on
    /// a tokio runtime: recovered sessions get their expiry timers.
    pub fn new(config: Config, store: Store) -> Arc<Broker> {
        let (shutdown, _) = watch::channel(false);
        let security = crate::security::Security::new(&config.auth);
        let broker = Arc::new(Broker {
            security,
            config: Arc::new(config),
            stats: Stats::default(),
            index: ShardedIndex::default(),
            retained: RwLock::new(RetainedTree::new()),
            registry: crate::registry::Registry::default(),
            store,
            next_epoch: AtomicU64::new(1),
            shutdown,
            started: Instant::now(),
            deliver_latency: metrics::histogram!(crate::metrics::DELIVER_LATENCY),
            no_connections: tokio::sync::Notify::new(),
        });
        broker.recover();
        broker
    }

    /// Rebuilds the registry, the subscription index and the retained
    /// messages from the store, and re-arms the timers of the recovered
    /// sessions: session expiry and will delay count from when the session
    /// was disconnected (`disconnected_at_ms`), or from now for a session
    /// whose connection the restart cut.
    fn recover(self: &Arc<Self>) {
        for m in self.store.retained() {
            let msg = Arc::new(msg_from_stored(&m));
            self.retained.write().insert(&msg.topic.clone(), msg);
        }
        let now = now_ms();
        let mut max_epoch = 0;
        let mut timers = Vec::new();
        {
            for record in self.store.sessions() {
                max_epoch = max_epoch.max(record.connected_epoch.unwrap_or(0));
                let handle = SessionHandle::new(Arc::from(record.client_id.as_str()));
                let epoch = {
                    let mut st = handle.state.lock();
                    st.persistent = true;
                    st.owner = record.owner.as_deref().map(Arc::from);
                    // Whatever was queued before the restart may have been sent.
                    st.sent_up_to = record.next_seq.saturating_sub(1);
                    for (filter, sub) in &record.subscriptions {
                        let opts = SubOpts::from_byte(sub.options, sub.identifier);
                        st.subscriptions.insert(filter.clone(), opts);
                    }
                    st.epoch
                };
                // Index after releasing the session lock: the publish path
                // takes index locks before session locks, never the reverse.
                for (filter, sub) in &record.subscriptions {
                    let opts = SubOpts::from_byte(sub.options, sub.identifier);
                    self.index_insert(filter, &handle, opts);
                }
                let away_ms = now.saturating_sub(record.disconnected_at_ms.unwrap_or(now));
                let left = |secs: u32| {
                    Duration::from_millis((u64::from(secs) * 1000).saturating_sub(away_ms))
                };
                timers.push((
                    Arc::clone(&handle),
                    epoch,
                    (record.expiry_secs != u32::MAX).then(|| left(record.expiry_secs)),
                    record.will.map(|w| (w.message, left(w.delay_secs))),
                ));
                self.registry.lock(&handle.client_id).insert(handle);
            }
        }
        // New connections take epochs above every stored owner's.
        self.next_epoch.store(max_epoch + 1, Ordering::Relaxed);
        for (handle, epoch, expiry, will) in timers {
            if let Some((message, delay)) = will {
                self.schedule_recovered_will(Arc::clone(&handle), epoch, message, delay);
            }
            if let Some(after) = expiry {
                self.schedule_expiry_after(handle, epoch, after);
            }
        }
    }

    /// Publishes the stored will of a recovered session after `delay`,
    /// unless its client came back first [MQTT-3.1.3-9].
    fn schedule_recovered_will(
        self: &Arc<Self>,
        handle: Arc<SessionHandle>,
        epoch: u64,
        will: herald_storage::Message,
        delay: Duration,
    ) {
        let broker = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let still_offline = {
                let st = handle.state.lock();
                st.link.is_none() && st.epoch == epoch && !st.ended
            };
            if still_offline {
                Stats::inc(&broker.stats.wills_published);
                let _ = broker.publish(Arc::new(msg_from_stored(&will)), None);
                let _ = broker.store.submit_one(Command::ClearWill {
                    client_id: handle.client_id.to_string(),
                });
            }
        });
    }

    /// The durable store (for health: [`Store::is_healthy`]).
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn topic_limits(&self) -> TopicLimits {
        TopicLimits {
            max_topic_length_bytes: self.config.limits.max_topic_length_bytes,
            max_topic_levels: self.config.limits.max_topic_levels,
        }
    }

    pub(crate) fn next_epoch(&self) -> u64 {
        self.next_epoch.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a subscription to the index (`$share/g/f` goes to the shared part).
    pub(crate) fn index_insert(&self, filter: &str, handle: &Arc<SessionHandle>, opts: SubOpts) {
        let key = SessionKey(Arc::clone(handle));
        match crate::topic::parse_shared(filter).ok().flatten() {
            Some((group, f)) => {
                self.index.insert_shared(group, f, key, opts);
            }
            None => {
                self.index.insert(filter, key, opts);
            }
        }
    }

    /// Removes a subscription from the index.
    pub(crate) fn index_remove(&self, filter: &str, handle: &Arc<SessionHandle>) {
        let key = SessionKey(Arc::clone(handle));
        match crate::topic::parse_shared(filter).ok().flatten() {
            Some((group, f)) => {
                self.index.remove_shared(group, f, &key);
            }
            None => {
                self.index.remove(filter, &key);
            }
        }
    }

    /// Ends a session: its subscriptions leave the index and it leaves the
    /// registry (if it is still the registered one), and the store forgets it.
    pub(crate) fn end_session(&self, handle: &Arc<SessionHandle>) {
        let (subs, persistent) = {
            let mut st = handle.state.lock();
            st.ended = true;
            (std::mem::take(&mut st.subscriptions), st.persistent)
        };
        for filter in subs.keys() {
            self.index_remove(filter, handle);
        }
        self.registry
            .lock(&handle.client_id)
            .remove_if_current(handle);
        if persistent {
            let _ = self.store.submit_one(Command::Discard {
                client_id: handle.client_id.to_string(),
            });
        }
    }

    /// Routes a message to every matching session and applies its retained
    /// effect. `origin` is the publishing session, for No Local.
    pub fn publish(&self, msg: Arc<Msg>, origin: Option<usize>) -> Routed {
        Stats::inc(&self.stats.messages_received);
        Stats::inc(&self.stats.received_by_qos[msg.qos as usize]);
        self.route(msg, origin)
    }

    /// [`Broker::publish`] without counting the message as received (the
    /// broker's own `$SYS` messages).
    pub fn route(&self, msg: Arc<Msg>, origin: Option<usize>) -> Routed {
        let mut commands = Vec::new();
        if msg.retain {
            commands.push(self.update_retained(&msg));
        }

        // Gather matching subscriptions; a session matched by several
        // overlapping filters gets one delivery at the highest QoS carrying
        // every subscription identifier [MQTT-3.3.4-2], [MQTT-3.3.4-3].
        let mut targets: Vec<(SessionKey, SubOpts, Vec<u32>)> = Vec::new();
        self.index.for_each_match(&msg.topic, |key, opts| {
            if opts.no_local && Some(key.id()) == origin {
                return;
            }
            targets.push((
                key.clone(),
                opts.clone(),
                opts.identifier.into_iter().collect(),
            ));
        });
        if targets.len() > 1 {
            targets.sort_by_key(|(k, _, _)| k.id());
            targets.dedup_by(|later, earlier| {
                if later.0 != earlier.0 {
                    return false;
                }
                earlier.1.qos = earlier.1.qos.max(later.1.qos);
                earlier.1.retain_as_published |= later.1.retain_as_published;
                earlier.2.append(&mut later.2);
                true
            });
        }
        // One member of each matching shared subscription, preferring
        // online sessions [MQTT-4.8.2-?]; retained flag never kept there.
        self.index.for_each_shared_match(&msg.topic, |group| {
            let picked = group
                .pick(|k, _| k.0.is_online())
                .or_else(|| group.pick(|_, _| true));
            if let Some((k, o)) = picked {
                let mut opts = o.clone();
                opts.retain_as_published = false;
                targets.push((k.clone(), opts, o.identifier.into_iter().collect()));
            }
        });

        let matched = targets.len();
        let mut congested = Vec::new();
        let mut durable: Vec<(SessionKey, Target, Delivery)> = Vec::new();
        for (key, opts, sub_ids) in targets {
            let delivery = Delivery {
                msg: Arc::clone(&msg),
                qos: msg.qos.min(opts.qos),
                retain: opts.retain_as_published && msg.retain,
                subscription_ids: sub_ids,
                seq: None,
            };
            // One lock of the session decides and, when it can, delivers.
            match key.0.push_unless_durable(delivery) {
                Ok(Pushed::SlowConsumer) => self.stats.dropped(Drop::SlowConsumer),
                Ok(Pushed::Congested(c)) => congested.push(c),
                Ok(Pushed::Offline) if msg.qos == QoS::AtMostOnce => {
                    self.stats.dropped(Drop::OfflineQos0)
                }
                Ok(_) => {}
                Err(delivery) => durable.push((
                    key,
                    Target {
                        client_id: String::new(),
                        qos: delivery.qos as u8,
                        retain: delivery.retain,
                        subscription_ids: delivery.subscription_ids.clone(),
                    },
                    delivery,
                )),
            }
        }
        let mut refused = false;
        let ticket = if durable.is_empty() && commands.is_empty() {
            Ticket::ready()
        } else {
            self.publish_durable(&msg, durable, commands, &mut congested, &mut refused)
        };
        Routed {
            matched,
            ticket,
            congested,
            refused,
        }
    }

    /// Appends a message to persistent sessions' queues (and applies any
    /// retained change in the same batch), then hands it to the online ones.
    fn publish_durable(
        &self,
        msg: &Arc<Msg>,
        mut durable: Vec<(SessionKey, Target, Delivery)>,
        mut commands: Vec<Command>,
        congested: &mut Vec<Congestion>,
        refused: &mut bool,
    ) -> Ticket {
        let has_targets = !durable.is_empty();
        if has_targets {
            let targets = durable
                .iter_mut()
                .map(|(k, t, _)| {
                    t.client_id = k.0.client_id.to_string();
                    t.clone()
                })
                .collect();
            commands.push(Command::Publish {
                message: msg_to_stored(msg),
                targets,
            });
        }
        let (outcomes, ticket) = self.store.submit(commands);
        if let (true, Some(Outcome::Published { appended })) = (has_targets, outcomes.last()) {
            for ((key, _, mut delivery), result) in durable.into_iter().zip(appended) {
                match result {
                    Ok(seq) => {
                        delivery.seq = Some(*seq);
                        if let Some(c) = self.hand_over(&key.0, delivery) {
                            congested.push(c);
                        }
                    }
                    Err(DropReason::NoSession) => self.stats.dropped(Drop::NoSession),
                    Err(_) => {
                        // The session's stored queue is full: the newest is
                        // refused, and the publisher is told where it can be.
                        *refused = true;
                        self.stats.dropped(Drop::QueueFull)
                    }
                }
            }
        }
        ticket
    }

    fn hand_over(&self, handle: &SessionHandle, delivery: Delivery) -> Option<Congestion> {
        match handle.push(delivery) {
            Pushed::Sent | Pushed::Offline => None,
            Pushed::Congested(c) => Some(c),
            Pushed::SlowConsumer => {
                self.stats.dropped(Drop::SlowConsumer);
                None
            }
        }
    }

    /// Stores, replaces or (empty payload) deletes the retained message of
    /// the topic [MQTT-3.3.1-5], [MQTT-3.3.1-10], [MQTT-3.3.1-11].
    fn update_retained(&self, msg: &Arc<Msg>) -> Command {
        let topic = Bytes::copy_from_slice(msg.topic.as_bytes());
        if msg.payload.is_empty() {
            self.retained.write().remove(&msg.topic);
            Command::Retain {
                topic,
                message: None,
            }
        } else {
            // Kept for long: not in the publisher's read buffer. The
            // stored form shares the detached payload: one copy, not two.
            let kept = Arc::new(msg.detached());
            let stored = stored_form(&kept, kept.payload.clone());
            self.retained.write().insert(&kept.topic.clone(), kept);
            Command::Retain {
                topic,
                message: Some(stored),
            }
        }
    }

    /// Retained messages matching `filter`, unexpired.
    pub(crate) fn retained_matching(&self, filter: &str) -> Vec<Arc<Msg>> {
        let now = Instant::now();
        let mut out = Vec::new();
        self.retained.read().for_each_match(filter, |_, m| {
            if !m.is_expired(now) {
                out.push(Arc::clone(m));
            }
        });
        out
    }

    /// The clock of keep-alive deadlines: ms since the broker started.
    pub(crate) fn keep_alive_clock_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Kicks every linked connection whose client has been silent past
    /// its keep-alive deadline.
    pub(crate) fn sweep_keep_alives(&self) {
        let now = self.keep_alive_clock_ms();
        self.registry.for_each(|handle| {
            if let Some(link) = &handle.state.lock().link {
                link.check_keep_alive(now);
            }
        });
    }

    /// Asks every connection to close (5.0 clients get DISCONNECT 0x8B).
    /// Linked connections are kicked; one that links itself after this
    /// sees the flag when its loop starts (links are made under their
    /// registry shard's lock, each taken here after the flag is set).
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
        self.registry.for_each(|handle| {
            if let Some(link) = &handle.state.lock().link {
                link.kick(crate::session::Kick::Shutdown);
            }
        });
    }

    /// Waits until no connection is open.
    pub async fn connections_closed(&self) {
        loop {
            let closed = self.no_connections.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.stats.connections_current.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Number of sessions (online and offline).
    pub fn session_count(&self) -> usize {
        self.registry.len()
    }

    /// Sessions (online, offline).
    pub fn session_counts(&self) -> (usize, usize) {
        let (mut online, mut offline) = (0, 0);
        self.registry.for_each(|h| {
            if h.is_online() {
                online += 1;
            } else {
                offline += 1;
            }
        });
        (online, offline)
    }

    /// Ready for clients: not shutting down and storage healthy.
    pub fn is_ready(&self) -> bool {
        !*self.shutdown.borrow() && self.store.is_healthy()
    }

    /// Arms the expiry of a session that went offline with `epoch`.
    pub(crate) fn schedule_expiry(
        self: &Arc<Self>,
        handle: Arc<SessionHandle>,
        epoch: u64,
        secs: u32,
    ) {
        if secs == u32::MAX {
            return;
        }
        self.schedule_expiry_after(handle, epoch, Duration::from_secs(u64::from(secs)));
    }

    /// Ends the session after `after` unless a connection took it meanwhile.
    fn schedule_expiry_after(
        self: &Arc<Self>,
        handle: Arc<SessionHandle>,
        epoch: u64,
        after: Duration,
    ) {
        let broker = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let expired = {
                let st = handle.state.lock();
                st.link.is_none() && st.epoch == epoch && !st.ended
            };
            if expired {
                Stats::inc(&broker.stats.sessions_expired);
                broker.end_session(&handle);
            }
        });
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The stored form of a message (its expiry made absolute). It owns its
/// buffers: a queued or retained message may be kept for hours, and must
/// not keep the read buffer it was decoded from alive (see
/// [`Msg::detached`]).
pub(crate) fn msg_to_stored(msg: &Msg) -> herald_storage::Message {
    stored_form(msg, Bytes::copy_from_slice(&msg.payload))
}

/// The stored form of `msg` with `payload`, which must own its buffer.
fn stored_form(msg: &Msg, payload: Bytes) -> herald_storage::Message {
    let now = Instant::now();
    herald_storage::Message {
        topic: Bytes::copy_from_slice(msg.topic.as_bytes()),
        payload,
        qos: msg.qos as u8,
        retain: msg.retain,
        properties: properties_to_blob(msg.properties.get()),
        expires_at_ms: msg
            .expires_at
            .map(|at| now_ms() + at.saturating_duration_since(now).as_millis() as u64),
    }
}

/// A message back from the store.
pub(crate) fn msg_from_stored(m: &herald_storage::Message) -> Msg {
    let now = now_ms();
    Msg {
        topic: ByteString::try_from(m.topic.clone()).unwrap_or_default(),
        payload: m.payload.clone(),
        qos: QoS::from_u8(m.qos).unwrap_or(QoS::AtMostOnce),
        retain: m.retain,
        properties: MsgProperties::new(properties_from_blob(&m.properties)),
        expires_at: m
            .expires_at_ms
            .map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(now))),
        origin: None,
        received_at: Instant::now(),
    }
}

/// Property blob: the 5.0 encoding of a QoS 0 PUBLISH to topic `p` with an
/// empty payload that carries the properties; empty when there are none.
fn properties_to_blob(p: &PublishProperties) -> Bytes {
    if p.is_empty() {
        return Bytes::new();
    }
    let packet = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: ByteString::from_static("p"),
        packet_id: None,
        properties: p.clone(),
        payload: Bytes::new(),
    });
    let mut buf = BytesMut::new();
    codec::encode(&packet, ProtocolVersion::V5, &mut buf);
    buf.freeze()
}

fn properties_from_blob(blob: &Bytes) -> PublishProperties {
    if blob.is_empty() {
        return PublishProperties::default();
    }
    let mut buf = BytesMut::from(&blob[..]);
    match codec::decode(&mut buf, Some(ProtocolVersion::V5), u32::MAX) {
        Ok(Some(Packet::Publish(p))) => p.properties,
        _ => PublishProperties::default(),
    }
}
