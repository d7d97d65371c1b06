//! `conformance --addr HOST:PORT`: runs the suite against a broker, prints
//! one line per test and the totals.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use conformance::runner::{self, Config};
use conformance::suite::Feature;
use conformance::wire::Version;

/// Black-box MQTT conformance suite.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Broker address, host:port.
    #[arg(long)]
    addr: String,
    /// Run only this protocol version (3.1.1 or 5); default both.
    #[arg(long)]
    version: Option<String>,
    /// Run only tests whose key (e.g. `01-connect/003@5`) contains this;
    /// may be repeated.
    #[arg(long)]
    only: Vec<String>,
    /// Write a JSON report to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Declare an optional feature present (all are by default).
    #[arg(long = "feature", value_name = "NAME")]
    feature: Vec<String>,
    /// Declare an optional feature absent: its tests become not applicable.
    #[arg(long = "no-feature", value_name = "NAME")]
    no_feature: Vec<String>,
    /// Deadline for each read that expects a packet, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    read_timeout_ms: u64,
    /// Silence that counts as "nothing was sent", in milliseconds.
    #[arg(long, default_value_t = 500)]
    quiet_ms: u64,
    /// Time limit of a whole test, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    test_timeout_ms: u64,
    /// List the selected tests without running them.
    #[arg(long)]
    list: bool,
}

fn parse_feature(name: &str) -> anyhow::Result<Feature> {
    Feature::parse(name).with_context(|| {
        let all: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
        format!("unknown feature {name:?}; known: {}", all.join(", "))
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = Config::new(&args.addr);
    config.versions = match args.version.as_deref() {
        None => vec![Version::V311, Version::V5],
        Some("3.1.1") | Some("4") => vec![Version::V311],
        Some("5") | Some("5.0") => vec![Version::V5],
        Some(other) => bail!("unknown --version {other:?}; use 3.1.1 or 5"),
    };
    config.only = args.only;
    let on: BTreeSet<Feature> = args
        .feature
        .iter()
        .map(|n| parse_feature(n))
        .collect::<anyhow::Result<_>>()?;
    for n in &args.no_feature {
        let f = parse_feature(n)?;
        if on.contains(&f) {
            bail!("feature {n} is both declared present and absent");
        }
        config.features.remove(&f);
    }
    config.read_timeout = Duration::from_millis(args.read_timeout_ms);
    config.quiet = Duration::from_millis(args.quiet_ms);
    config.test_timeout = Duration::from_millis(args.test_timeout_ms);

    if args.list {
        for (t, v) in runner::selection(&config) {
            let refs: String = t.refs.iter().map(|r| format!(" [{r}]")).collect();
            println!("{}@{} {}{refs}", t.id, v.label(), t.title);
        }
        return Ok(());
    }

    let report = runner::run(&config, |r| println!("{}", r.line())).await;
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json(&config.addr))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{}", runner::summary(&report));
    if report.failed() > 0 {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "conformance",
            "--addr",
            "127.0.0.1:1883",
            "--version",
            "5",
            "--only",
            "13-",
            "--no-feature",
            "qos2",
        ])
        .expect("valid arguments parse");
        assert_eq!(a.version.as_deref(), Some("5"));
        assert_eq!(a.no_feature, vec!["qos2".to_string()]);
    }
}
