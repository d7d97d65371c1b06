//! Side-by-side summary: medians over rounds per broker, and the ratio of
//! one broker's median to the baseline's, as Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{format_value, Better, RunFile};
use crate::stats::median;

/// Values of one metric over the rounds, per broker label.
type Samples = BTreeMap<String, Vec<f64>>;

/// Builds the Markdown comparison of `runs` (any number of rounds per
/// broker). `baseline` is the label ratios are taken against (Mosquitto);
/// every other label is compared with it. `machine` is inserted verbatim.
pub fn compare_markdown(runs: &[RunFile], baseline: &str, machine: &str) -> String {
    // scenario -> metric -> (unit, better, broker -> values), in the order
    // they first appear.
    let mut order: Vec<(String, Vec<String>)> = Vec::new();
    let mut data: BTreeMap<(String, String), (String, Better, Samples)> = BTreeMap::new();
    let mut brokers: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    // Per-client tables (the seed experiment): (scenario, broker, client)
    // -> [average, maximum, minimum] samples over the rounds.
    let mut clients: BTreeMap<(String, String, String), [Vec<f64>; 3]> = BTreeMap::new();
    for run in runs {
        if !brokers.contains(&run.broker) {
            brokers.push(run.broker.clone());
        }
        for rep in &run.reports {
            let pos = match order.iter().position(|(s, _)| *s == rep.scenario) {
                Some(p) => p,
                None => {
                    order.push((rep.scenario.clone(), Vec::new()));
                    order.len() - 1
                }
            };
            for m in &rep.metrics {
                if !order[pos].1.contains(&m.name) {
                    order[pos].1.push(m.name.clone());
                }
                let entry = data
                    .entry((rep.scenario.clone(), m.name.clone()))
                    .or_insert_with(|| (m.unit.clone(), m.better, Samples::new()));
                entry.2.entry(run.broker.clone()).or_default().push(m.value);
            }
            for c in &rep.clients {
                let e = clients
                    .entry((rep.scenario.clone(), run.broker.clone(), c.client.clone()))
                    .or_default();
                e[0].push(c.average_ms);
                e[1].push(c.maximum_ms);
                e[2].push(c.minimum_ms);
            }
            for n in &rep.notes {
                notes.push(format!("{} / {}: {n}", run.broker, rep.scenario));
            }
        }
    }
    // Rounds per broker: the most samples any metric has (a round may be
    // split over several files, one per scenario family).
    let mut rounds: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, samples) in data.values() {
        for (b, v) in samples {
            let r = rounds.entry(b.clone()).or_default();
            *r = (*r).max(v.len());
        }
    }
    // Baseline last so that "X / baseline" columns read naturally.
    brokers.sort_by_key(|b| b == baseline);
    let others: Vec<&String> = brokers.iter().filter(|b| *b != baseline).collect();

    let mut out = String::new();
    let _ = writeln!(out, "## Machine\n\n```\n{}\n```\n", machine.trim_end());
    let _ = writeln!(
        out,
        "Rounds: {}. Each cell is the median over the rounds.\n",
        rounds
            .iter()
            .map(|(b, n)| format!("{b} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (scenario, metrics) in &order {
        let _ = writeln!(out, "### {scenario}\n");
        let mut header = String::from("| metric | unit |");
        let mut rule = String::from("|---|---|");
        for b in &brokers {
            let _ = write!(header, " {b} |");
            rule.push_str("---:|");
        }
        for b in &others {
            let _ = write!(header, " {b} / {baseline} |");
            rule.push_str("---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for name in metrics {
            let Some((unit, better, samples)) = data.get(&(scenario.clone(), name.clone())) else {
                continue;
            };
            let med = |b: &str| samples.get(b).and_then(|v| median(v));
            let mut row = format!("| {name} | {unit} |");
            for b in &brokers {
                let _ = write!(row, " {} |", med(b).map_or("-".into(), format_value));
            }
            for b in &others {
                let cell = match (med(b), med(baseline)) {
                    (Some(x), Some(y)) if y != 0.0 => {
                        let ratio = x / y;
                        let mark = match better {
                            _ if (ratio - 1.0).abs() < 0.005 => "",
                            Better::Higher if ratio >= 1.0 => " (better)",
                            Better::Lower if ratio <= 1.0 => " (better)",
                            Better::Neither => "",
                            _ => " (worse)",
                        };
                        format!("{ratio:.2}{mark}")
                    }
                    _ => "-".into(),
                };
                let _ = write!(row, " {cell} |");
            }
            let _ = writeln!(out, "{row}");
        }
        let _ = writeln!(out);
        for b in &brokers {
            let mut rows: Vec<_> = clients
                .iter()
                .filter(|((s, br, _), _)| s == scenario && br == b)
                .collect();
            // Client 10 after client 9, not after client 1.
            rows.sort_by_key(|((_, _, c), _)| (c.parse::<u64>().unwrap_or(u64::MAX), c.clone()));
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "{b}, per client (medians over the rounds):\n\n\
                 | client | average (ms) | maximum (ms) | minimum (ms) |\n|---|---:|---:|---:|"
            );
            for ((_, _, client), v) in rows {
                let m = |i: usize| median(&v[i]).map_or("-".into(), |x| format!("{x:.3}"));
                let _ = writeln!(out, "| {client} | {} | {} | {} |", m(0), m(1), m(2));
            }
            let _ = writeln!(out);
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "### Notes from the runs\n");
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;

    fn run(broker: &str, rate: f64, p99: f64) -> RunFile {
        let mut r = Report::new("qos0-pairs-1");
        r.metric("delivered_msgs_per_sec", rate, "msg/s", Better::Higher);
        r.metric("latency_p99_ms", p99, "ms", Better::Lower);
        RunFile {
            broker: broker.into(),
            reports: vec![r],
        }
    }

    #[test]
    fn medians_and_ratios() {
        let runs = vec![
            run("herald", 100.0, 0.2),
            run("mosquitto", 50.0, 0.4),
            run("herald", 300.0, 0.3),
            run("mosquitto", 70.0, 0.5),
            run("herald", 200.0, 0.1),
            run("mosquitto", 60.0, 0.6),
        ];
        let md = compare_markdown(&runs, "mosquitto", "nproc: 2");
        assert!(md.contains("nproc: 2"));
        assert!(
            md.contains("| metric | unit | herald | mosquitto | herald / mosquitto |"),
            "{md}"
        );
        // Medians: herald 200 vs mosquitto 60 -> 3.33, better.
        assert!(
            md.contains("| delivered_msgs_per_sec | msg/s | 200 | 60 | 3.33 (better) |"),
            "{md}"
        );
        // p99: herald 0.2 vs 0.5 -> 0.40, lower is better.
        assert!(
            md.contains("| latency_p99_ms | ms | 0.200 | 0.500 | 0.40 (better) |"),
            "{md}"
        );
        assert!(md.contains("Rounds: herald 3, mosquitto 3."), "{md}");
    }

    #[test]
    fn rounds_split_over_files_count_once() {
        // One round written as two files (two scenario families).
        let mut other = run("herald", 1.0, 1.0);
        other.reports[0].scenario = "seed".into();
        let md = compare_markdown(&[run("herald", 1.0, 1.0), other], "mosquitto", "");
        assert!(md.contains("Rounds: herald 1."), "{md}");
        assert!(md.contains("### seed"), "{md}");
    }

    #[test]
    fn equal_values_are_neither_better_nor_worse() {
        let md = compare_markdown(
            &[run("herald", 5.0, 1.0), run("mosquitto", 5.0, 2.0)],
            "mosquitto",
            "",
        );
        assert!(
            md.contains("| delivered_msgs_per_sec | msg/s | 5 | 5 | 1.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| latency_p99_ms | ms | 1 | 2 | 0.50 (better) |"),
            "{md}"
        );
    }

    #[test]
    fn per_client_tables_use_medians() {
        let seed = |broker: &str, avg: f64| {
            let mut r = Report::new("seed");
            r.metric("average_ms", avg, "ms", Better::Lower);
            r.clients.push(crate::report::ClientRow {
                client: "1".into(),
                average_ms: avg,
                maximum_ms: avg * 2.0,
                minimum_ms: avg / 2.0,
                received: 1000,
            });
            RunFile {
                broker: broker.into(),
                reports: vec![r],
            }
        };
        let runs = [
            seed("herald", 0.1),
            seed("herald", 0.3),
            seed("herald", 0.2),
        ];
        let md = compare_markdown(&runs, "mosquitto", "");
        assert!(
            md.contains("herald, per client (medians over the rounds):"),
            "{md}"
        );
        assert!(md.contains("| 1 | 0.200 | 0.400 | 0.100 |"), "{md}");
    }

    #[test]
    fn missing_baseline_gives_dash() {
        let md = compare_markdown(&[run("herald", 1.0, 1.0)], "mosquitto", "");
        assert!(
            md.contains("| delivered_msgs_per_sec | msg/s | 1 | - |"),
            "{md}"
        );
    }
}
