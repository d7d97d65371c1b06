//! The `herald-bench` command: parse flags, run scenarios against one
//! broker, print a table per scenario and optionally write JSON; or
//! summarise JSON files from several rounds as Markdown (`compare`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use herald_bench::client::Target;
use herald_bench::codec::Version;
use herald_bench::compare::compare_markdown;
use herald_bench::flow::Common;
use herald_bench::report::{Report, RunFile};
use herald_bench::scenarios::{
    self, ConnectionsParams, FlowParams, Pattern, RetainedParams, SeedParams,
};

/// Load generator for MQTT brokers (Herald, Mosquitto, any other).
///
/// Every scenario is bounded in time, prints a table and, with --json,
/// appends its result to a JSON file. With --broker-pid it also reports the
/// broker's CPU and memory.
#[derive(Debug, Parser)]
#[command(name = "herald-bench", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Broker host (loopback by default).
    #[arg(long, global = true, default_value = "127.0.0.1")]
    host: String,
    /// Broker port.
    #[arg(long, global = true, default_value_t = 1883)]
    port: u16,
    /// MQTT protocol version of every client.
    #[arg(long = "mqtt", global = true, value_enum, default_value = "3.1.1")]
    mqtt: Proto,
    /// Keep alive of every client, in seconds.
    #[arg(long, global = true, default_value_t = 60)]
    keep_alive_secs: u16,
    /// PID of the broker, to report its CPU and RSS from /proc.
    #[arg(long, global = true)]
    broker_pid: Option<u32>,
    /// Label of the broker in the JSON output (e.g. herald, mosquitto).
    #[arg(long, global = true, default_value = "broker")]
    broker_label: String,
    /// Write every scenario's result to this JSON file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, global = true)]
    no_progress: bool,
    /// Worker threads of the generator (default: the CPUs it may run on).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Publishing time of each throughput, latency and persistent scenario.
    #[arg(long, global = true, default_value_t = 5.0)]
    duration_secs: f64,
    /// Longest wait for the last messages after publishing stops.
    #[arg(long, global = true, default_value_t = 10.0)]
    drain_secs: f64,
    /// Payload size in bytes (at least 16: a timestamp and sequence number).
    #[arg(long, global = true, default_value_t = 64)]
    payload_bytes: usize,
    /// Unacknowledged QoS 1 messages per publisher.
    #[arg(long, global = true, default_value_t = 100)]
    window: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Proto {
    #[value(name = "3.1.1")]
    V311,
    #[value(name = "5")]
    V5,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Throughput at QoS 0 or 1: 1→1 / N pairs, fan-in N→1 on a wildcard,
    /// fan-out 1→N.
    Throughput {
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
        qos: u8,
        #[arg(long, value_enum, default_value = "pairs")]
        pattern: Pattern,
        /// N: pairs, publishers (fan-in) or subscribers (fan-out).
        #[arg(long, default_value_t = 1)]
        clients: usize,
    },
    /// Latency percentiles at a fixed publish rate (1→1).
    Latency {
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
        qos: u8,
        /// Messages per second.
        #[arg(long, default_value_t = 10_000.0)]
        rate: f64,
    },
    /// N idle clients: connect rate and broker memory per connection.
    Connections(ConnectionsArgs),
    /// QoS 1 to subscribers with persistent sessions, connected throughout.
    Persistent {
        #[arg(long, default_value_t = 1)]
        subscribers: usize,
    },
    /// The seed paper's experiment: per-client average/maximum/minimum.
    Seed(SeedArgs),
    /// Wildcard subscriptions over many retained messages.
    Retained(RetainedArgs),
    /// The standard suite (what bench/compare.sh runs).
    All(AllArgs),
    /// Summarise JSON files from several rounds as Markdown: medians per
    /// broker and ratios to the baseline.
    Compare {
        /// Broker label the ratios are taken against.
        #[arg(long, default_value = "mosquitto")]
        baseline: String,
        /// Text file describing the machine, inserted verbatim.
        #[arg(long)]
        machine: Option<PathBuf>,
        /// Write the Markdown here as well as to stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Title line of the Markdown.
        #[arg(long, default_value = "herald-bench results")]
        title: String,
        /// JSON files written by --json.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
struct ConnectionsArgs {
    #[arg(long = "count", default_value_t = 10_000)]
    connections: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Bound on the connecting phase.
    #[arg(long, default_value_t = 30.0)]
    connect_max_secs: f64,
    /// Wait before reading the broker's memory.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
}

#[derive(Debug, Clone, Args)]
struct SeedArgs {
    #[arg(long, default_value_t = 1000)]
    messages: u64,
    #[arg(long, default_value_t = 2.0)]
    interval_ms: f64,
    #[arg(long = "subscribers", default_value_t = 5)]
    seed_subscribers: usize,
    #[arg(long = "seed-qos", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    seed_qos: u8,
}

#[derive(Debug, Clone, Args)]
struct RetainedArgs {
    #[arg(long = "retained-count", default_value_t = 1_000_000)]
    retained_count: u64,
    /// Bound on storing the retained messages.
    #[arg(long, default_value_t = 120.0)]
    store_max_secs: f64,
    /// Bound on each subscription's delivery.
    #[arg(long, default_value_t = 60.0)]
    subscribe_max_secs: f64,
    /// Leave the retained messages on the broker.
    #[arg(long)]
    keep_retained: bool,
}

#[derive(Debug, Clone, Args)]
struct AllArgs {
    /// N for the pairs scenario.
    #[arg(long, default_value_t = 4)]
    pairs: usize,
    /// N for fan-in and fan-out.
    #[arg(long, default_value_t = 10)]
    fan: usize,
    /// Rate of the latency scenarios.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Only these families (comma-separated): connections, throughput,
    /// latency, persistent, seed, retained.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    #[command(flatten)]
    connections: ConnectionsArgs,
    #[command(flatten)]
    seed: SeedArgs,
    #[command(flatten)]
    retained: RetainedArgs,
}

const FAMILIES: [&str; 6] = [
    "connections",
    "throughput",
    "latency",
    "persistent",
    "seed",
    "retained",
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("herald-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn secs(v: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .with_context(|| format!("{what} must be a non-negative number of seconds"))
}

/// Returns whether every scenario succeeded.
fn run(cli: Cli) -> anyhow::Result<bool> {
    let g = cli.global;
    if let Command::Compare {
        baseline,
        machine,
        out,
        title,
        files,
    } = &cli.command
    {
        let mut runs = Vec::new();
        for f in files {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            let run: RunFile =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", f.display()))?;
            runs.push(run);
        }
        let machine = match machine {
            Some(m) => {
                std::fs::read_to_string(m).with_context(|| format!("reading {}", m.display()))?
            }
            None => String::new(),
        };
        let md = format!(
            "# {title}\n\n{}",
            compare_markdown(&runs, baseline, &machine)
        );
        print!("{md}");
        if let Some(out) = out {
            std::fs::write(out, &md).with_context(|| format!("writing {}", out.display()))?;
        }
        return Ok(true);
    }
    if g.payload_bytes < herald_bench::client::STAMP_LEN {
        bail!(
            "--payload-bytes must be at least {}",
            herald_bench::client::STAMP_LEN
        );
    }
    let addr: SocketAddr = (g.host.as_str(), g.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", g.host))?
        .next()
        .with_context(|| format!("{} resolves to no address", g.host))?;
    let threads = g
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let common = Common {
        target: Target {
            addr,
            version: match g.mqtt {
                Proto::V311 => Version::V311,
                Proto::V5 => Version::V5,
            },
            keep_alive_secs: g.keep_alive_secs,
        },
        broker_pid: g.broker_pid,
        progress: !g.no_progress,
        run_id: format!(
            "{:06x}",
            (nanos ^ std::process::id().rotate_left(12)) & 0xff_ffff
        ),
    };
    let flow = FlowParams {
        qos: 0,
        payload_bytes: g.payload_bytes,
        window: g.window,
        duration: secs(g.duration_secs, "--duration-secs")?,
        drain_max: secs(g.drain_secs, "--drain-secs")?,
    };
    let with_qos = |qos: u8| FlowParams {
        qos,
        ..flow.clone()
    };
    let mut file = RunFile {
        broker: g.broker_label.clone(),
        reports: Vec::new(),
    };
    let mut ok = true;
    let mut record = |result: Result<Report, herald_bench::client::BenchError>,
                      what: &str|
     -> anyhow::Result<()> {
        match result {
            Ok(report) => {
                println!("{}", report.to_table());
                file.reports.push(report);
                if let Some(path) = &g.json {
                    let text = serde_json::to_string_pretty(&file)?;
                    std::fs::write(path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            Err(e) => {
                ok = false;
                eprintln!("herald-bench: {what} failed: {e}");
            }
        }
        Ok(())
    };
    runtime.block_on(async {
        match cli.command {
            Command::Throughput {
                qos,
                pattern,
                clients,
            } => record(
                scenarios::throughput(&common, pattern, clients, &with_qos(qos)).await,
                "throughput",
            ),
            Command::Latency { qos, rate } => record(
                scenarios::latency(&common, rate, &with_qos(qos)).await,
                "latency",
            ),
            Command::Connections(a) => record(
                scenarios::connections(&common, &connections_params(&a)?).await,
                "connections",
            ),
            Command::Persistent { subscribers } => record(
                scenarios::persistent(&common, subscribers, &with_qos(1)).await,
                "persistent",
            ),
            Command::Seed(a) => record(
                scenarios::seed(&common, &seed_params(&a, g.payload_bytes)?).await,
                "seed",
            ),
            Command::Retained(a) => record(
                scenarios::retained(&common, &retained_params(&a, &g)?).await,
                "retained",
            ),
            Command::All(a) => {
                for f in &a.only {
                    if !FAMILIES.contains(&f.as_str()) {
                        bail!(
                            "--only: unknown family {f} (known: {})",
                            FAMILIES.join(", ")
                        );
                    }
                }
                let want = |f: &str| a.only.is_empty() || a.only.iter().any(|o| o == f);
                // Connections first, on a fresh broker, so that memory freed
                // by earlier scenarios does not hide the per-connection cost.
                if want("connections") {
                    let r =
                        scenarios::connections(&common, &connections_params(&a.connections)?).await;
                    record(r, "connections")?;
                }
                if want("throughput") {
                    for qos in [0, 1] {
                        for (pattern, n) in [
                            (Pattern::Pairs, 1),
                            (Pattern::Pairs, a.pairs),
                            (Pattern::FanIn, a.fan),
                            (Pattern::FanOut, a.fan),
                        ] {
                            let r =
                                scenarios::throughput(&common, pattern, n, &with_qos(qos)).await;
                            record(r, "throughput")?;
                        }
                    }
                }
                if want("latency") {
                    for qos in [0, 1] {
                        let r = scenarios::latency(&common, a.rate, &with_qos(qos)).await;
                        record(r, "latency")?;
                    }
                }
                if want("persistent") {
                    let r = scenarios::persistent(&common, 1, &with_qos(1)).await;
                    record(r, "persistent")?;
                }
                if want("seed") {
                    let r = scenarios::seed(&common, &seed_params(&a.seed, g.payload_bytes)?).await;
                    record(r, "seed")?;
                }
                if want("retained") {
                    let r = scenarios::retained(&common, &retained_params(&a.retained, &g)?).await;
                    record(r, "retained")?;
                }
                Ok(())
            }
            Command::Compare { .. } => Ok(()),
        }
    })?;
    Ok(ok)
}

fn connections_params(a: &ConnectionsArgs) -> anyhow::Result<ConnectionsParams> {
    Ok(ConnectionsParams {
        count: a.connections,
        concurrency: a.concurrency,
        max_time: secs(a.connect_max_secs, "--connect-max-secs")?,
        settle: Duration::from_millis(a.settle_ms),
    })
}

fn seed_params(a: &SeedArgs, payload_bytes: usize) -> anyhow::Result<SeedParams> {
    Ok(SeedParams {
        messages: a.messages,
        interval: secs(a.interval_ms / 1e3, "--interval-ms")?,
        subscribers: a.seed_subscribers,
        qos: a.seed_qos,
        payload_bytes,
    })
}

fn retained_params(a: &RetainedArgs, g: &Global) -> anyhow::Result<RetainedParams> {
    Ok(RetainedParams {
        count: a.retained_count,
        payload_bytes: g.payload_bytes,
        window: 1000,
        store_max: secs(a.store_max_secs, "--store-max-secs")?,
        subscribe_max: secs(a.subscribe_max_secs, "--subscribe-max-secs")?,
        keep: a.keep_retained,
    })
}
