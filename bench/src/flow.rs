//! The engine behind every message-flow scenario: some publishers, some
//! subscribers, a bounded publishing window, then a bounded drain.
//!
//! Lifecycle of one run:
//! 1. subscribers connect and subscribe (SUBACK received), then publishers
//!    connect;
//! 2. every publisher sends for `duration` (or until `max_messages`), as
//!    fast as the socket takes them or at a fixed rate, keeping at most
//!    `window` QoS 1 messages unacknowledged;
//! 3. the moment the last publisher stops, the count of messages delivered
//!    so far is taken: delivered *while publishing*, which a broker that
//!    buffers instead of delivering cannot inflate;
//! 4. the drain waits until every expected message has arrived and every
//!    QoS 1 message is acknowledged, or until nothing moved for a second,
//!    or until `drain_max`;
//! 5. every task is stopped and its counts are merged.
//!
//! Every payload starts with a [`Stamp`], so each subscriber measures
//! latency, loss and duplicates on its own.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::client::{now_ns, BenchError, Conn, Stamp, Target, STAMP_LEN};
use crate::codec::{self, Packet};
use crate::procstat::{self, CpuSample, Pid};
use crate::stats::Histogram;

/// Settings shared by every scenario of one invocation.
#[derive(Debug, Clone)]
pub struct Common {
    pub target: Target,
    /// The broker's process, for its CPU and RSS; `None` leaves them out.
    pub broker_pid: Option<u32>,
    pub progress: bool,
    /// Short unique string in every topic and client id, so that runs never
    /// see each other's retained messages or sessions.
    pub run_id: String,
}

impl Common {
    pub fn topic(&self, rest: &str) -> String {
        format!("hb/{}/{rest}", self.run_id)
    }

    /// Client ids stay within the 23 bytes every 3.1.1 server must accept
    /// ([MQTT-3.1.3-5]) for run ids of up to 8 characters.
    pub fn client_id(&self, role: &str, index: usize) -> String {
        format!("hb{}{role}{index}", self.run_id)
    }

    pub fn broker_rss(&self) -> Option<u64> {
        self.broker_pid
            .and_then(|p| procstat::rss_bytes(Pid::Other(p)))
    }

    /// A progress bar on stderr (hidden when disabled or not a terminal).
    pub fn progress_bar(&self, len: u64, prefix: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>18} [{bar:30}] {elapsed:>4} {msg}")
        {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_prefix(prefix.to_owned());
        pb
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    /// Label for the progress bar.
    pub label: String,
    pub pub_qos: u8,
    pub sub_qos: u8,
    /// One topic per publisher.
    pub publishers: Vec<String>,
    /// (filter, indexes of the publishers whose messages it must receive).
    pub subscribers: Vec<(String, Vec<usize>)>,
    pub payload_bytes: usize,
    /// Unacknowledged QoS 1 messages per publisher.
    pub window: usize,
    /// Messages per second per publisher; `None` = as fast as possible.
    pub rate_per_publisher: Option<f64>,
    pub max_messages: Option<u64>,
    pub duration: Duration,
    pub drain_max: Duration,
    /// Subscribers use persistent sessions (clean session 0 / expiry > 0).
    pub persistent: bool,
    /// Keep every latency sample (the seed experiment's exact table).
    pub keep_samples: bool,
}

/// Per-subscriber counts.
#[derive(Debug, Clone, Default)]
pub struct SubStats {
    /// PUBLISH packets with a stamp, duplicates included.
    pub received: u64,
    /// Distinct (publisher, seq) pairs.
    pub unique: u64,
    pub latency: Histogram,
    /// Latency in ns of every message, when `keep_samples`.
    pub samples: Vec<u64>,
    /// `now_ns` of the last delivery (0 if none).
    pub last_rx_ns: u64,
}

/// What a run measured.
#[derive(Debug)]
pub struct FlowOutcome {
    pub sent: Vec<u64>,
    pub acked: Vec<u64>,
    pub subs: Vec<SubStats>,
    pub expected: u64,
    pub publish_secs: f64,
    pub delivered_while_publishing: u64,
    /// From the start of publishing to the last delivery.
    pub delivery_secs: f64,
    pub generator_cpu_pct: Option<f64>,
    pub broker_cpu_pct: Option<f64>,
    pub broker_rss_peak: Option<u64>,
    pub drain_timed_out: bool,
}

impl FlowOutcome {
    pub fn total_sent(&self) -> u64 {
        self.sent.iter().sum()
    }
    pub fn total_unique(&self) -> u64 {
        self.subs.iter().map(|s| s.unique).sum()
    }
    pub fn total_received(&self) -> u64 {
        self.subs.iter().map(|s| s.received).sum()
    }
    pub fn latency(&self) -> Histogram {
        let mut h = Histogram::new();
        for s in &self.subs {
            h.merge(&s.latency);
        }
        h
    }
}

/// Counters the tasks update and the coordinator reads.
#[derive(Debug)]
struct Shared {
    /// Unique deliveries over all subscribers.
    delivered: AtomicU64,
    sent: Vec<AtomicU64>,
    acked: Vec<AtomicU64>,
    writers_done: AtomicUsize,
    /// `now_ns` when the last publisher stopped writing: the end of the
    /// publishing window.
    writers_end_ns: AtomicU64,
}

/// Connects everyone, runs the flow and returns the counts.
pub async fn run_flow(common: &Common, spec: FlowSpec) -> Result<FlowOutcome, BenchError> {
    if spec.payload_bytes < STAMP_LEN {
        return Err(BenchError::Param(format!(
            "payload must be at least {STAMP_LEN} bytes to carry the timestamp"
        )));
    }
    if spec.pub_qos > 1 || spec.sub_qos > 1 {
        return Err(BenchError::Param("QoS must be 0 or 1".into()));
    }
    let spec = Arc::new(spec);
    let npubs = spec.publishers.len();
    let shared = Arc::new(Shared {
        delivered: AtomicU64::new(0),
        sent: (0..npubs).map(|_| AtomicU64::new(0)).collect(),
        acked: (0..npubs).map(|_| AtomicU64::new(0)).collect(),
        writers_done: AtomicUsize::new(0),
        writers_end_ns: AtomicU64::new(0),
    });
    let expiry = if spec.persistent { 3600 } else { 0 };

    let mut sub_conns = Vec::with_capacity(spec.subscribers.len());
    for (i, (filter, _)) in spec.subscribers.iter().enumerate() {
        let id = common.client_id("s", i);
        let mut conn = Conn::connect(&common.target, &id, !spec.persistent, expiry).await?;
        conn.subscribe(1, &[(filter.clone(), spec.sub_qos)]).await?;
        sub_conns.push(conn);
    }
    let mut pub_conns = Vec::with_capacity(npubs);
    for i in 0..npubs {
        let id = common.client_id("p", i);
        pub_conns.push(Conn::connect(&common.target, &id, true, 0).await?);
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let start_ns = now_ns();
    let cpu0 = CpuSample::take(common.broker_pid);
    let mut sub_tasks = Vec::new();
    for conn in sub_conns {
        let (shared, spec, stop) = (shared.clone(), spec.clone(), stop_rx.clone());
        let keep_alive = common.target.keep_alive_secs;
        sub_tasks.push(tokio::spawn(async move {
            run_subscriber(conn, npubs, spec.keep_samples, keep_alive, &shared, stop).await
        }));
    }
    let mut pub_tasks = Vec::new();
    for (i, conn) in pub_conns.into_iter().enumerate() {
        let (shared, spec, stop) = (shared.clone(), spec.clone(), stop_rx.clone());
        pub_tasks.push(tokio::spawn(async move {
            run_publisher(conn, i, &spec, &shared, start, stop).await
        }));
    }

    let pb = common.progress_bar(spec.duration.as_millis() as u64, &spec.label);
    let mut rss_peak = common.broker_rss();
    // 5 ms: the delivered count is read at most this long after the last
    // publisher stops.
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut rss_at = Instant::now();
    // Publishing. A publisher that fails still counts itself done.
    while shared.writers_done.load(Ordering::Acquire) < npubs {
        tick.tick().await;
        pb.set_position(start.elapsed().as_millis() as u64);
        pb.set_message(format!(
            "sent {} delivered {}",
            sum(&shared.sent),
            shared.delivered.load(Ordering::Relaxed)
        ));
        if rss_at.elapsed() >= Duration::from_millis(200) {
            rss_at = Instant::now();
            rss_peak = rss_peak.max(common.broker_rss());
        }
    }
    let publish_end = Instant::now();
    let publish_ns = shared
        .writers_end_ns
        .load(Ordering::Acquire)
        .saturating_sub(start_ns)
        .max(1);
    let delivered_while_publishing = shared.delivered.load(Ordering::Acquire);
    let cpu1 = CpuSample::take(common.broker_pid);

    // Draining.
    let expected = |shared: &Shared| -> u64 {
        spec.subscribers
            .iter()
            .flat_map(|(_, pubs)| pubs.iter())
            .map(|&p| shared.sent[p].load(Ordering::Acquire))
            .sum()
    };
    let idle_limit = Duration::from_secs(1).min(spec.drain_max);
    let mut last_seen = (u64::MAX, u64::MAX);
    let mut last_move = Instant::now();
    let mut drain_timed_out = false;
    loop {
        let delivered = shared.delivered.load(Ordering::Acquire);
        let acked = sum(&shared.acked);
        let all_acked = spec.pub_qos == 0 || acked >= sum(&shared.sent);
        if delivered >= expected(&shared) && all_acked {
            break;
        }
        if (delivered, acked) != last_seen {
            last_seen = (delivered, acked);
            last_move = Instant::now();
        }
        if last_move.elapsed() >= idle_limit || publish_end.elapsed() >= spec.drain_max {
            drain_timed_out = true;
            break;
        }
        pb.set_message(format!(
            "draining: delivered {delivered} of {}",
            expected(&shared)
        ));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    rss_peak = rss_peak.max(common.broker_rss());
    let _ = stop_tx.send(true);
    pb.finish_and_clear();

    let mut subs = Vec::new();
    for t in sub_tasks {
        subs.push(t.await.map_err(|e| BenchError::Task(e.to_string()))??);
    }
    for t in pub_tasks {
        t.await.map_err(|e| BenchError::Task(e.to_string()))??;
    }
    let last_rx = subs.iter().map(|s| s.last_rx_ns).max().unwrap_or(0);
    let (generator_cpu_pct, broker_cpu_pct) = cpu1.percent_since(&cpu0);
    Ok(FlowOutcome {
        sent: shared
            .sent
            .iter()
            .map(|a| a.load(Ordering::Acquire))
            .collect(),
        acked: shared
            .acked
            .iter()
            .map(|a| a.load(Ordering::Acquire))
            .collect(),
        expected: expected(&shared),
        subs,
        publish_secs: publish_ns as f64 / 1e9,
        delivered_while_publishing,
        delivery_secs: last_rx.saturating_sub(start_ns) as f64 / 1e9,
        generator_cpu_pct,
        broker_cpu_pct,
        broker_rss_peak: rss_peak,
        drain_timed_out,
    })
}

fn sum(v: &[AtomicU64]) -> u64 {
    v.iter().map(|a| a.load(Ordering::Acquire)).sum()
}

/// Bit set of the sequence numbers seen from one publisher.
#[derive(Debug, Default)]
struct Seen(Vec<u64>);

impl Seen {
    /// Marks `seq`; true if it was new.
    fn insert(&mut self, seq: u32) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let fresh = self.0[word] & (1 << bit) == 0;
        self.0[word] |= 1 << bit;
        fresh
    }
}

async fn run_subscriber(
    mut conn: Conn,
    npubs: usize,
    keep_samples: bool,
    keep_alive_secs: u16,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) -> Result<SubStats, BenchError> {
    let mut stats = SubStats::default();
    let mut seen: Vec<Seen> = (0..npubs).map(|_| Seen::default()).collect();
    // PINGREQ at half the keep alive keeps a QoS 0 subscriber, which
    // otherwise sends nothing, from being timed out in a long run.
    let ping_every = Duration::from_secs(u64::from(keep_alive_secs.max(2)) / 2);
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = ping.tick(), if keep_alive_secs > 0 => {
                codec::encode(&mut conn.wbuf, &Packet::PingReq);
                tokio::select! {
                    r = conn.flush() => r?,
                    _ = stop.changed() => break,
                }
                continue;
            }
            r = conn.fill() => { r?; }
        }
        let now = now_ns();
        let mut fresh = 0u64;
        while let Some(packet) = codec::decode(&mut conn.rbuf, conn.version)? {
            match packet {
                Packet::Publish(p) => {
                    match (p.qos, p.packet_id) {
                        (1, Some(id)) => codec::encode_puback(&mut conn.wbuf, id),
                        (2, Some(id)) => {
                            codec::encode(&mut conn.wbuf, &Packet::PubRec { packet_id: id })
                        }
                        _ => {}
                    }
                    let Some(stamp) = Stamp::read(&p.payload) else {
                        continue;
                    };
                    let Some(seen) = seen.get_mut(stamp.publisher as usize) else {
                        continue;
                    };
                    stats.received += 1;
                    let latency = now.saturating_sub(stamp.sent_ns);
                    stats.latency.record(latency);
                    if keep_samples {
                        stats.samples.push(latency);
                    }
                    if seen.insert(stamp.seq) {
                        fresh += 1;
                    }
                    stats.last_rx_ns = now;
                }
                Packet::PubRel { packet_id } => {
                    codec::encode(&mut conn.wbuf, &Packet::PubComp { packet_id })
                }
                Packet::Disconnect { reason } => return Err(BenchError::Disconnected(reason)),
                _ => {}
            }
        }
        // A broker that stops reading acknowledgements must not keep
        // this task from seeing the stop signal.
        let stopped = tokio::select! {
            r = conn.flush() => { r?; false }
            _ = stop.changed() => true,
        };
        if fresh > 0 {
            stats.unique += fresh;
            shared.delivered.fetch_add(fresh, Ordering::AcqRel);
        }
        if stopped {
            break;
        }
    }
    conn.disconnect().await;
    Ok(stats)
}

/// Sets `writers_done` when dropped, so that a publisher that fails still
/// ends the publishing phase.
struct DoneGuard<'a>(&'a Shared, &'a AtomicBool);

impl Drop for DoneGuard<'_> {
    fn drop(&mut self) {
        if !self.1.swap(true, Ordering::AcqRel) {
            self.0.writers_end_ns.fetch_max(now_ns(), Ordering::AcqRel);
            self.0.writers_done.fetch_add(1, Ordering::AcqRel);
        }
    }
}

async fn run_publisher(
    mut conn: Conn,
    index: usize,
    spec: &FlowSpec,
    shared: &Shared,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) -> Result<(), BenchError> {
    let version = conn.version;
    let topic = spec.publishers[index].clone().into_bytes();
    let qos = spec.pub_qos;
    let window = Semaphore::new(if qos > 0 { spec.window.max(1) } else { 0 });
    let (mut rd, mut wr) = conn.stream.split();
    let done_flag = AtomicBool::new(false);

    let writer = async {
        let _done = DoneGuard(shared, &done_flag);
        let deadline = start + spec.duration;
        let max = spec.max_messages.unwrap_or(u64::MAX);
        let msg_len = codec::publish_len(version, topic.len(), qos, spec.payload_bytes);
        let batch_max = (64 * 1024 / msg_len).max(1) as u64;
        let mut payload = vec![b'x'; spec.payload_bytes];
        let mut wbuf = BytesMut::with_capacity(msg_len * batch_max as usize);
        let mut seq = 0u64;
        let mut packet_id = 0u16;
        while seq < max {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let mut n = batch_max.min(max - seq);
            if let Some(rate) = spec.rate_per_publisher {
                let due = (now.duration_since(start).as_secs_f64() * rate) as u64 + 1;
                if due <= seq {
                    let next = start + Duration::from_secs_f64(seq as f64 / rate);
                    tokio::time::sleep_until(next.min(deadline)).await;
                    continue;
                }
                n = n.min(due - seq);
            }
            if qos > 0 {
                let permit = tokio::select! {
                    p = window.acquire() => p,
                    _ = tokio::time::sleep_until(deadline) => break,
                };
                let Ok(permit) = permit else { break };
                permit.forget();
                let extra = (window.available_permits() as u64).min(n - 1);
                if extra > 0 {
                    if let Ok(p) = window.try_acquire_many(extra as u32) {
                        p.forget();
                    }
                }
                n = 1 + extra;
            }
            wbuf.clear();
            for _ in 0..n {
                Stamp {
                    sent_ns: now_ns(),
                    publisher: index as u32,
                    seq: seq as u32,
                }
                .write(&mut payload);
                packet_id = packet_id % u16::MAX + 1;
                codec::encode_publish(
                    &mut wbuf, version, &topic, qos, false, false, packet_id, &payload,
                );
                seq += 1;
            }
            // A broker that stops reading must not hold the run forever.
            match tokio::time::timeout_at(deadline + spec.drain_max, wr.write_all(&wbuf)).await {
                Ok(r) => r?,
                Err(_) => return Err(BenchError::Timeout("the broker to read a PUBLISH")),
            }
            shared.sent[index].fetch_add(n, Ordering::AcqRel);
        }
        Ok::<(), BenchError>(())
    };

    let reader = async {
        let mut rbuf = BytesMut::with_capacity(16 * 1024);
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                r = rd.read_buf(&mut rbuf) => {
                    if r? == 0 {
                        return Err(BenchError::Closed);
                    }
                }
            }
            let mut acks = 0u64;
            while let Some(p) = codec::decode(&mut rbuf, version)? {
                match p {
                    Packet::PubAck { .. } => acks += 1,
                    Packet::Disconnect { reason } => return Err(BenchError::Disconnected(reason)),
                    _ => {}
                }
            }
            if acks > 0 {
                shared.acked[index].fetch_add(acks, Ordering::AcqRel);
                window.add_permits(acks as usize);
            }
        }
        Ok::<(), BenchError>(())
    };
    let (w, r) = tokio::join!(writer, reader);
    w?;
    r?;
    conn.disconnect().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_detects_duplicates() {
        let mut s = Seen::default();
        assert!(s.insert(0));
        assert!(s.insert(200));
        assert!(!s.insert(200));
        assert!(!s.insert(0));
        assert!(s.insert(63));
        assert!(s.insert(64));
    }
}
