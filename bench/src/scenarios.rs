//! The scenarios. Each one is bounded in time and returns a [`Report`].
//!
//! | scenario | what it measures |
//! |---|---|
//! | [`throughput`] | QoS 0/1 msg/s for 1→1, N pairs, fan-in N→1 on `+`, fan-out 1→N |
//! | [`latency`] | latency percentiles at a fixed publish rate |
//! | [`connections`] | connect rate and broker memory per idle connection |
//! | [`persistent`] | QoS 1 to subscribers with persistent sessions |
//! | [`seed`] | the seed paper's experiment, per-client table |
//! | [`retained`] | wildcard subscriptions over many retained messages |

use std::time::Duration;

use bytes::BytesMut;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{now_ns, BenchError, Conn, STAMP_LEN};
use crate::codec::{self, Packet};
use crate::flow::{run_flow, Common, FlowOutcome, FlowSpec};
use crate::report::{Better, ClientRow, Report};
use crate::stats::{percentile_sorted, Histogram};

/// Who publishes to whom in a throughput run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pattern {
    /// N publishers each to its own subscriber (N = 1 is 1→1).
    Pairs,
    /// N publishers on distinct topics, one subscriber on a `+` wildcard.
    FanIn,
    /// One publisher, N subscribers on its topic.
    FanOut,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Pattern::Pairs => "pairs",
            Pattern::FanIn => "fanin",
            Pattern::FanOut => "fanout",
        }
    }
}

/// Parameters of a message-flow scenario.
#[derive(Debug, Clone)]
pub struct FlowParams {
    pub qos: u8,
    pub payload_bytes: usize,
    /// QoS 1 messages in flight per publisher.
    pub window: usize,
    pub duration: Duration,
    /// Longest wait for stragglers after publishing stops.
    pub drain_max: Duration,
}

/// Generator CPU above which a note warns that the tool, not the broker,
/// may be the limit.
const GENERATOR_CPU_WARN_PCT: f64 = 80.0;

/// Adds the metrics every flow scenario reports.
fn flow_metrics(r: &mut Report, o: &FlowOutcome) {
    let sent = o.total_sent() as f64;
    let unique = o.total_unique() as f64;
    let lost = o.expected.saturating_sub(o.total_unique()) as f64;
    r.metric("sent_msgs", sent, "msg", Better::Neither);
    r.metric("publish_secs", o.publish_secs, "s", Better::Neither);
    r.metric(
        "published_msgs_per_sec",
        sent / o.publish_secs,
        "msg/s",
        Better::Higher,
    );
    r.metric(
        "delivered_while_publishing_msgs_per_sec",
        o.delivered_while_publishing as f64 / o.publish_secs,
        "msg/s",
        Better::Higher,
    );
    let overall = if o.delivery_secs > 0.0 {
        unique / o.delivery_secs
    } else {
        0.0
    };
    r.metric("delivered_msgs_per_sec", overall, "msg/s", Better::Higher);
    r.metric("expected_msgs", o.expected as f64, "msg", Better::Neither);
    r.metric("delivered_msgs", unique, "msg", Better::Neither);
    r.metric("lost_msgs", lost, "msg", Better::Lower);
    let loss_pct = if o.expected > 0 {
        lost / o.expected as f64 * 100.0
    } else {
        0.0
    };
    r.metric("loss_pct", loss_pct, "%", Better::Lower);
    r.metric(
        "duplicate_msgs",
        (o.total_received() - o.total_unique()) as f64,
        "msg",
        Better::Lower,
    );
    latency_metrics(r, &o.latency());
    r.metric(
        "generator_cpu_pct",
        o.generator_cpu_pct,
        "% of a core",
        Better::Neither,
    );
    r.metric(
        "broker_cpu_pct",
        o.broker_cpu_pct,
        "% of a core",
        Better::Neither,
    );
    r.metric(
        "broker_rss_peak_mib",
        o.broker_rss_peak.map(|b| b as f64 / 1048576.0),
        "MiB",
        Better::Lower,
    );
    if let Some(cpu) = o.generator_cpu_pct {
        if cpu > GENERATOR_CPU_WARN_PCT {
            r.notes.push(format!(
                "the generator used {cpu:.0}% of a core: it may be the bottleneck"
            ));
        }
    }
    if o.drain_timed_out {
        r.notes.push(format!(
            "drain stopped before every message arrived ({} of {} delivered, {} of {} acknowledged)",
            o.total_unique(),
            o.expected,
            o.acked.iter().sum::<u64>(),
            o.total_sent()
        ));
    }
}

fn latency_metrics(r: &mut Report, h: &Histogram) {
    let s = h.summary();
    if s.count == 0 {
        return;
    }
    r.metric("latency_mean_ms", s.mean_ms, "ms", Better::Lower);
    r.metric("latency_p50_ms", s.p50_ms, "ms", Better::Lower);
    r.metric("latency_p90_ms", s.p90_ms, "ms", Better::Lower);
    r.metric("latency_p99_ms", s.p99_ms, "ms", Better::Lower);
    r.metric("latency_p999_ms", s.p999_ms, "ms", Better::Lower);
    r.metric("latency_max_ms", s.max_ms, "ms", Better::Lower);
}

fn flow_params(r: &mut Report, p: &FlowParams) {
    r.param("qos", p.qos)
        .param("payload_bytes", p.payload_bytes)
        .param("duration_secs", p.duration.as_secs_f64());
    if p.qos > 0 {
        r.param("window", p.window);
    }
}

/// QoS 0 or 1 throughput for `pattern` with `n` clients on the many side.
pub async fn throughput(
    common: &Common,
    pattern: Pattern,
    n: usize,
    p: &FlowParams,
) -> Result<Report, BenchError> {
    let n = n.max(1);
    let name = format!("qos{}-{}-{n}", p.qos, pattern.name());
    let (publishers, subscribers): (Vec<String>, Vec<(String, Vec<usize>)>) = match pattern {
        Pattern::Pairs => (0..n)
            .map(|i| {
                let t = common.topic(&format!("pair/{i}"));
                (t.clone(), (t, vec![i]))
            })
            .unzip(),
        Pattern::FanIn => (
            (0..n).map(|i| common.topic(&format!("in/{i}"))).collect(),
            vec![(common.topic("in/+"), (0..n).collect())],
        ),
        Pattern::FanOut => (
            vec![common.topic("out")],
            (0..n).map(|_| (common.topic("out"), vec![0])).collect(),
        ),
    };
    let npubs = publishers.len();
    let nsubs = subscribers.len();
    let outcome = run_flow(
        common,
        FlowSpec {
            label: name.clone(),
            pub_qos: p.qos,
            sub_qos: p.qos,
            publishers,
            subscribers,
            payload_bytes: p.payload_bytes,
            window: p.window,
            rate_per_publisher: None,
            max_messages: None,
            duration: p.duration,
            drain_max: p.drain_max,
            persistent: false,
            keep_samples: false,
        },
    )
    .await?;
    let mut r = Report::new(name);
    flow_params(&mut r, p);
    r.param("publishers", npubs).param("subscribers", nsubs);
    flow_metrics(&mut r, &outcome);
    Ok(r)
}

/// Latency of 1→1 at `rate` messages per second.
pub async fn latency(common: &Common, rate: f64, p: &FlowParams) -> Result<Report, BenchError> {
    if rate <= 0.0 {
        return Err(BenchError::Param("rate must be positive".into()));
    }
    let name = format!("latency-qos{}-{}", p.qos, rate.round());
    let topic = common.topic("lat");
    let outcome = run_flow(
        common,
        FlowSpec {
            label: name.clone(),
            pub_qos: p.qos,
            sub_qos: p.qos,
            publishers: vec![topic.clone()],
            subscribers: vec![(topic, vec![0])],
            payload_bytes: p.payload_bytes,
            window: p.window,
            rate_per_publisher: Some(rate),
            max_messages: None,
            duration: p.duration,
            drain_max: p.drain_max,
            persistent: false,
            keep_samples: false,
        },
    )
    .await?;
    let mut r = Report::new(name);
    flow_params(&mut r, p);
    r.param("rate_msgs_per_sec", rate);
    flow_metrics(&mut r, &outcome);
    let achieved = outcome.total_sent() as f64 / outcome.publish_secs;
    if achieved < rate * 0.95 {
        r.notes.push(format!(
            "the publisher reached only {achieved:.0} of {rate:.0} msg/s"
        ));
    }
    Ok(r)
}

/// QoS 1 from one publisher to `subscribers` persistent sessions (3.1.1
/// clean session 0, 5.0 session expiry 3600 s), connected throughout.
/// The sessions are discarded afterwards by reconnecting them clean.
pub async fn persistent(
    common: &Common,
    subscribers: usize,
    p: &FlowParams,
) -> Result<Report, BenchError> {
    let n = subscribers.max(1);
    let name = format!("persistent-qos1-{n}");
    let topic = common.topic("persist");
    let outcome = run_flow(
        common,
        FlowSpec {
            label: name.clone(),
            pub_qos: 1,
            sub_qos: 1,
            publishers: vec![topic.clone()],
            subscribers: (0..n).map(|_| (topic.clone(), vec![0])).collect(),
            payload_bytes: p.payload_bytes,
            window: p.window,
            rate_per_publisher: None,
            max_messages: None,
            duration: p.duration,
            drain_max: p.drain_max,
            persistent: true,
            keep_samples: false,
        },
    )
    .await?;
    for i in 0..n {
        let id = common.client_id("s", i);
        let conn = Conn::connect(&common.target, &id, true, 0).await?;
        conn.disconnect().await;
    }
    let mut r = Report::new(name);
    flow_params(
        &mut r,
        &FlowParams {
            qos: 1,
            ..p.clone()
        },
    );
    r.param("subscribers", n).param("clean_session", 0);
    flow_metrics(&mut r, &outcome);
    Ok(r)
}

/// Parameters of the seed experiment.
#[derive(Debug, Clone)]
pub struct SeedParams {
    pub messages: u64,
    pub interval: Duration,
    pub subscribers: usize,
    pub qos: u8,
    pub payload_bytes: usize,
}

/// The seed paper's experiment: one publisher sends `messages` messages,
/// one every `interval`, to `subscribers` clients; per client the average,
/// maximum and minimum delivery time in ms.
pub async fn seed(common: &Common, p: &SeedParams) -> Result<Report, BenchError> {
    let topic = common.topic("seed");
    let interval = p.interval.max(Duration::from_micros(1));
    let planned = interval.mul_f64(p.messages as f64);
    let outcome = run_flow(
        common,
        FlowSpec {
            label: "seed".into(),
            pub_qos: p.qos,
            sub_qos: p.qos,
            publishers: vec![topic.clone()],
            subscribers: (0..p.subscribers)
                .map(|_| (topic.clone(), vec![0]))
                .collect(),
            payload_bytes: p.payload_bytes,
            window: 100,
            rate_per_publisher: Some(1.0 / interval.as_secs_f64()),
            max_messages: Some(p.messages),
            // Twice the planned time bounds a broker that cannot keep up.
            duration: planned * 2 + Duration::from_secs(1),
            drain_max: Duration::from_secs(5),
            persistent: false,
            keep_samples: true,
        },
    )
    .await?;
    let mut r = Report::new("seed");
    r.param("messages", p.messages)
        .param("interval_ms", interval.as_secs_f64() * 1e3)
        .param("subscribers", p.subscribers)
        .param("qos", p.qos)
        .param("payload_bytes", p.payload_bytes);
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut all = Vec::new();
    for (i, s) in outcome.subs.iter().enumerate() {
        let mut v = s.samples.clone();
        v.sort_unstable();
        let avg = if v.is_empty() {
            f64::NAN
        } else {
            v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64 / 1e6
        };
        r.clients.push(ClientRow {
            client: format!("{}", i + 1),
            average_ms: avg,
            maximum_ms: v.last().map_or(f64::NAN, |&x| ms(x)),
            minimum_ms: v.first().map_or(f64::NAN, |&x| ms(x)),
            received: s.received,
        });
        all.extend(v);
    }
    all.sort_unstable();
    let avg = if all.is_empty() {
        f64::NAN
    } else {
        all.iter().map(|&x| x as f64).sum::<f64>() / all.len() as f64 / 1e6
    };
    r.metric("average_ms", avg, "ms", Better::Lower);
    r.metric(
        "maximum_ms",
        all.last().map(|&x| ms(x)),
        "ms",
        Better::Lower,
    );
    r.metric(
        "minimum_ms",
        all.first().map(|&x| ms(x)),
        "ms",
        Better::Lower,
    );
    r.metric(
        "p99_ms",
        percentile_sorted(&all, 99.0).map(ms),
        "ms",
        Better::Lower,
    );
    let lost = outcome.expected.saturating_sub(outcome.total_unique());
    r.metric("lost_msgs", lost as f64, "msg", Better::Lower);
    r.metric(
        "generator_cpu_pct",
        outcome.generator_cpu_pct,
        "% of a core",
        Better::Neither,
    );
    r.metric(
        "broker_cpu_pct",
        outcome.broker_cpu_pct,
        "% of a core",
        Better::Neither,
    );
    if outcome.total_sent() < p.messages {
        r.notes.push(format!(
            "only {} of {} messages were sent within the time bound",
            outcome.total_sent(),
            p.messages
        ));
    }
    Ok(r)
}

/// Parameters of the connections scenario.
#[derive(Debug, Clone)]
pub struct ConnectionsParams {
    pub count: usize,
    /// Connections being opened at once.
    pub concurrency: usize,
    /// Bound on the connecting phase.
    pub max_time: Duration,
    /// Wait before measuring the broker's memory, so it can settle.
    pub settle: Duration,
}

/// Opens `count` idle clients: connect rate, CONNECT→CONNACK latency and
/// broker memory per connection (RSS growth / connections).
pub async fn connections(common: &Common, p: &ConnectionsParams) -> Result<Report, BenchError> {
    let name = format!("connections-{}", p.count);
    let rss_before = common.broker_rss();
    let pb = common.progress_bar(p.count as u64, &name);
    let start = Instant::now();
    let deadline = start + p.max_time;
    let cpu0 = crate::procstat::CpuSample::take(common.broker_pid);
    let mut set: JoinSet<Result<(Conn, u64), BenchError>> = JoinSet::new();
    let mut open = Vec::with_capacity(p.count);
    let mut hist = Histogram::new();
    let mut launched = 0usize;
    let mut first_error = None;
    loop {
        let can_launch = launched < p.count && Instant::now() < deadline;
        if can_launch && set.len() < p.concurrency.max(1) {
            let target = common.target.clone();
            let id = common.client_id("c", launched);
            set.spawn(async move {
                let t0 = now_ns();
                let conn = Conn::connect(&target, &id, true, 0).await?;
                Ok((conn, now_ns() - t0))
            });
            launched += 1;
            continue;
        }
        let next = tokio::time::timeout_at(deadline + Duration::from_secs(5), set.join_next());
        match next.await {
            Ok(Some(Ok(Ok((conn, ns))))) => {
                hist.record(ns);
                open.push(conn);
                pb.set_position(open.len() as u64);
            }
            Ok(Some(Ok(Err(e)))) => {
                first_error.get_or_insert(e.to_string());
            }
            Ok(Some(Err(e))) => {
                first_error.get_or_insert(e.to_string());
            }
            Ok(None) => break,
            Err(_) => {
                first_error.get_or_insert("connections still pending at the time bound".into());
                set.abort_all();
                break;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu1 = crate::procstat::CpuSample::take(common.broker_pid);
    pb.set_message("settling");
    tokio::time::sleep(p.settle).await;
    let rss_after = common.broker_rss();
    pb.finish_and_clear();
    let established = open.len();
    let mut r = Report::new(name);
    r.param("count", p.count)
        .param("concurrency", p.concurrency)
        .param("keep_alive_secs", common.target.keep_alive_secs);
    r.metric("established", established as f64, "conn", Better::Higher);
    r.metric(
        "connects_per_sec",
        established as f64 / elapsed,
        "conn/s",
        Better::Higher,
    );
    latency_metrics(&mut r, &hist);
    r.metric(
        "broker_rss_before_mib",
        rss_before.map(|b| b as f64 / 1048576.0),
        "MiB",
        Better::Neither,
    );
    r.metric(
        "broker_rss_after_mib",
        rss_after.map(|b| b as f64 / 1048576.0),
        "MiB",
        Better::Lower,
    );
    if let (Some(a), Some(b)) = (rss_after, rss_before) {
        if established > 0 {
            r.metric(
                "broker_bytes_per_connection",
                (a as f64 - b as f64) / established as f64,
                "B",
                Better::Lower,
            );
        }
    }
    let (gen_cpu, broker_cpu) = cpu1.percent_since(&cpu0);
    r.metric("generator_cpu_pct", gen_cpu, "% of a core", Better::Neither);
    r.metric("broker_cpu_pct", broker_cpu, "% of a core", Better::Neither);
    // What each connect cost the broker, so that its capacity shows even
    // when the generator's core (which runs both ends of every loopback
    // handshake in the kernel) is the limit of the rate.
    if established > 0 {
        r.metric(
            "broker_cpu_us_per_connect",
            cpu1.broker_secs_since(&cpu0)
                .map(|s| s * 1e6 / established as f64),
            "us",
            Better::Lower,
        );
    }
    if let Some(e) = first_error {
        r.notes.push(format!(
            "{} of {} connections failed; first error: {e}",
            launched - established,
            p.count
        ));
    }
    if launched < p.count {
        r.notes
            .push(format!("time bound reached after {launched} connections"));
    }
    for c in open {
        c.disconnect().await;
    }
    Ok(r)
}

/// Parameters of the retained scenario.
#[derive(Debug, Clone)]
pub struct RetainedParams {
    pub count: u64,
    pub payload_bytes: usize,
    /// QoS 1 PUBLISHes in flight while storing.
    pub window: usize,
    /// Bound on storing the messages (fewer are used if it is reached).
    pub store_max: Duration,
    /// Bound on each subscription's delivery.
    pub subscribe_max: Duration,
    /// Leave the retained messages on the broker instead of clearing them.
    pub keep: bool,
}

/// Topic of retained message `i`: 1000 per second-level group, so that
/// `…/ret/0/#` matches at most 1000 of them.
fn retained_topic(common: &Common, i: u64) -> String {
    common.topic(&format!("ret/{}/{}", i / 1000, i % 1000))
}

/// Publishes `count` retained messages on distinct topics, then times a
/// wildcard subscription that matches a small subset and one that matches
/// all of them: time to SUBACK and to the last retained message.
pub async fn retained(common: &Common, p: &RetainedParams) -> Result<Report, BenchError> {
    if p.payload_bytes < STAMP_LEN {
        return Err(BenchError::Param(format!(
            "payload must be at least {STAMP_LEN} bytes"
        )));
    }
    let name = format!("retained-{}", p.count);
    let rss_before = common.broker_rss();
    let pb = common.progress_bar(p.count, &name);
    pb.set_message("storing");
    let cpu0 = crate::procstat::CpuSample::take(common.broker_pid);
    let store_start = Instant::now();
    let stored = store_retained(common, p, &pb).await?;
    let store_secs = store_start.elapsed().as_secs_f64();
    let rss_stored = common.broker_rss();
    let mut r = Report::new(name);
    r.param("count", p.count)
        .param("payload_bytes", p.payload_bytes)
        .param("window", p.window);
    r.metric("stored_msgs", stored as f64, "msg", Better::Neither);
    r.metric(
        "store_msgs_per_sec",
        stored as f64 / store_secs,
        "msg/s",
        Better::Higher,
    );
    if let (Some(a), Some(b)) = (rss_stored, rss_before) {
        r.metric(
            "broker_rss_stored_mib",
            a as f64 / 1048576.0,
            "MiB",
            Better::Lower,
        );
        if stored > 0 {
            r.metric(
                "broker_bytes_per_retained",
                (a as f64 - b as f64) / stored as f64,
                "B",
                Better::Lower,
            );
        }
    }
    if stored < p.count {
        r.notes.push(format!(
            "time bound reached: {stored} of {} retained messages stored",
            p.count
        ));
    }
    let subset = stored.min(1000);
    for (label, filter, expected) in [
        ("subset", common.topic("ret/0/#"), subset),
        ("all", common.topic("ret/#"), stored),
    ] {
        pb.set_message(format!("subscribing {filter}"));
        pb.set_length(expected);
        pb.set_position(0);
        let (suback, last, got) =
            time_retained_subscribe(common, &filter, expected, p, &pb).await?;
        r.metric(
            &format!("{label}_expected"),
            expected as f64,
            "msg",
            Better::Neither,
        );
        r.metric(
            &format!("{label}_received"),
            got as f64,
            "msg",
            Better::Higher,
        );
        r.metric(&format!("{label}_suback_ms"), suback, "ms", Better::Lower);
        r.metric(&format!("{label}_last_ms"), last, "ms", Better::Lower);
        if let Some(last) = last {
            if last > 0.0 {
                r.metric(
                    &format!("{label}_msgs_per_sec"),
                    got as f64 / (last / 1e3),
                    "msg/s",
                    Better::Higher,
                );
            }
        }
        if got < expected {
            r.notes.push(format!(
                "{label}: {got} of {expected} retained messages arrived within the bound"
            ));
        }
    }
    // Over storing and both subscriptions (clearing is not measured).
    let (gen_cpu, broker_cpu) =
        crate::procstat::CpuSample::take(common.broker_pid).percent_since(&cpu0);
    r.metric("generator_cpu_pct", gen_cpu, "% of a core", Better::Neither);
    r.metric("broker_cpu_pct", broker_cpu, "% of a core", Better::Neither);
    if !p.keep {
        pb.set_message("clearing");
        clear_retained(common, stored, p.store_max).await?;
    }
    pb.finish_and_clear();
    Ok(r)
}

/// Stores retained messages at QoS 1 (so each is known to be stored when
/// acknowledged) with a window; returns how many were acknowledged.
async fn store_retained(
    common: &Common,
    p: &RetainedParams,
    pb: &indicatif::ProgressBar,
) -> Result<u64, BenchError> {
    let mut conn = Conn::connect(&common.target, &common.client_id("r", 0), true, 0).await?;
    let deadline = Instant::now() + p.store_max;
    let window = p.window.max(1) as u64;
    let mut payload = vec![b'r'; p.payload_bytes];
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut packet_id = 0u16;
    while acked < p.count {
        while sent < p.count && sent - acked < window && Instant::now() < deadline {
            crate::client::Stamp {
                sent_ns: now_ns(),
                publisher: 0,
                seq: sent as u32,
            }
            .write(&mut payload);
            packet_id = packet_id % u16::MAX + 1;
            let topic = retained_topic(common, sent);
            codec::encode_publish(
                &mut conn.wbuf,
                conn.version,
                topic.as_bytes(),
                1,
                true,
                false,
                packet_id,
                &payload,
            );
            sent += 1;
        }
        conn.flush().await?;
        if acked == sent {
            break;
        }
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
        match conn
            .recv_timeout(wait, "PUBACK of a retained message")
            .await?
        {
            Packet::PubAck { .. } => acked += 1,
            _ => continue,
        }
        // Drain whatever else is already buffered without waiting.
        while let Some(pk) = codec::decode(&mut conn.rbuf, conn.version)? {
            if let Packet::PubAck { .. } = pk {
                acked += 1;
            }
        }
        pb.set_position(acked);
    }
    conn.disconnect().await;
    Ok(acked)
}

/// Subscribes at QoS 0 and waits for `expected` retained messages:
/// (ms to SUBACK, ms to the last one, how many arrived).
async fn time_retained_subscribe(
    common: &Common,
    filter: &str,
    expected: u64,
    p: &RetainedParams,
    pb: &indicatif::ProgressBar,
) -> Result<(Option<f64>, Option<f64>, u64), BenchError> {
    let mut conn = Conn::connect(&common.target, &common.client_id("w", 0), true, 0).await?;
    codec::encode_subscribe(&mut conn.wbuf, conn.version, 1, &[(filter.to_owned(), 0)]);
    let t0 = Instant::now();
    conn.flush().await?;
    let deadline = t0 + p.subscribe_max;
    let (mut suback, mut last, mut got) = (None, None, 0u64);
    while suback.is_none() || got < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, conn.fill()).await {
            Ok(r) => {
                r?;
            }
            Err(_) => break,
        }
        let now_ms = t0.elapsed().as_secs_f64() * 1e3;
        let before = got;
        while let Some(pk) = codec::decode(&mut conn.rbuf, conn.version)? {
            match pk {
                Packet::SubAck { .. } => suback = Some(now_ms),
                Packet::Publish(pp) if pp.retain => got += 1,
                Packet::Disconnect { reason } => return Err(BenchError::Disconnected(reason)),
                _ => {}
            }
        }
        if got > before {
            last = Some(now_ms);
            pb.set_position(got);
        }
    }
    conn.disconnect().await;
    if expected == 0 {
        last = suback;
    }
    Ok((suback, last, got))
}

/// Deletes the retained messages (empty retained payloads), then waits for
/// a PINGRESP so that the broker has read them all.
async fn clear_retained(common: &Common, stored: u64, bound: Duration) -> Result<(), BenchError> {
    let mut conn = Conn::connect(&common.target, &common.client_id("x", 0), true, 0).await?;
    let deadline = Instant::now() + bound;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    for i in 0..stored {
        let topic = retained_topic(common, i);
        codec::encode_publish(
            &mut buf,
            conn.version,
            topic.as_bytes(),
            0,
            true,
            false,
            0,
            b"",
        );
        if buf.len() >= 60 * 1024 {
            conn.wbuf.extend_from_slice(&buf);
            buf.clear();
            conn.flush().await?;
            if Instant::now() >= deadline {
                break;
            }
        }
    }
    conn.wbuf.extend_from_slice(&buf);
    codec::encode(&mut conn.wbuf, &Packet::PingReq);
    conn.flush().await?;
    loop {
        if let Packet::PingResp = conn.recv_timeout(bound, "PINGRESP").await? {
            break;
        }
    }
    conn.disconnect().await;
    Ok(())
}
