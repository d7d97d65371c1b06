//! Scenario results: a flat list of named metrics (what JSON and the
//! comparison use) plus, for the seed experiment, a per-client table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Which direction is an improvement, so the comparison can say which
/// broker did better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
    /// Context, not a score (a count of messages sent, say).
    Neither,
}

/// One measured value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// snake_case, with the unit in the name where it has one.
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub better: Better,
}

/// One row of the seed experiment's per-client table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRow {
    pub client: String,
    pub average_ms: f64,
    pub maximum_ms: f64,
    pub minimum_ms: f64,
    pub received: u64,
}

/// The result of one scenario run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Stable name, e.g. `qos0-fanout-10`: the comparison matches runs on it.
    pub scenario: String,
    /// The parameters it ran with, for the record.
    pub params: BTreeMap<String, String>,
    pub metrics: Vec<Metric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientRow>,
    /// Problems worth a reader's attention (loss, a time bound reached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(scenario: impl Into<String>) -> Self {
        Report {
            scenario: scenario.into(),
            params: BTreeMap::new(),
            metrics: Vec::new(),
            clients: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn param(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.params.insert(key.to_owned(), value.to_string());
        self
    }

    /// Adds a metric; `None` (e.g. no broker pid given) is left out.
    pub fn metric(
        &mut self,
        name: &str,
        value: impl Into<Option<f64>>,
        unit: &str,
        better: Better,
    ) -> &mut Self {
        if let Some(value) = value.into() {
            self.metrics.push(Metric {
                name: name.to_owned(),
                value,
                unit: unit.to_owned(),
                better,
            });
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    /// The human table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "== {}  ({})", self.scenario, params.join(", "));
        let width = self
            .metrics
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(out, "  {:<width$}  {:>14}  unit", "metric", "value");
        for m in &self.metrics {
            let _ = writeln!(
                out,
                "  {:<width$}  {:>14}  {}",
                m.name,
                format_value(m.value),
                m.unit
            );
        }
        if !self.clients.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "  {:<8}  {:>12}  {:>12}  {:>12}  {:>8}",
                "client", "average(ms)", "maximum(ms)", "minimum(ms)", "received"
            );
            for c in &self.clients {
                let _ = writeln!(
                    out,
                    "  {:<8}  {:>12.3}  {:>12.3}  {:>12.3}  {:>8}",
                    c.client, c.average_ms, c.maximum_ms, c.minimum_ms, c.received
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        out
    }
}

/// A number with as many decimals as are useful for its size.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else if v.abs() >= 1000.0 || (v.fract() == 0.0 && v.abs() < 1e15) {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// What one invocation writes with `--json`: which broker it was run
/// against (a label chosen by the caller) and every scenario's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    pub broker: String,
    pub reports: Vec<Report>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_metrics_and_clients() {
        let mut r = Report::new("seed");
        r.param("subscribers", 5);
        r.metric("average_ms", 0.05, "ms", Better::Lower);
        r.metric("broker_cpu_pct", None, "%", Better::Lower);
        r.clients.push(ClientRow {
            client: "1".into(),
            average_ms: 0.05,
            maximum_ms: 0.2,
            minimum_ms: 0.01,
            received: 1000,
        });
        let t = r.to_table();
        assert!(t.contains("== seed  (subscribers=5)"), "{t}");
        assert!(t.contains("average_ms"), "{t}");
        assert!(!t.contains("broker_cpu_pct"), "absent metrics are omitted");
        assert!(t.contains("0.200"), "{t}");
        assert_eq!(r.get("average_ms"), Some(0.05));
    }

    #[test]
    fn json_round_trip() {
        let mut r = Report::new("qos0-pairs-1");
        r.metric("delivered_msgs_per_sec", 1234.5, "msg/s", Better::Higher);
        let file = RunFile {
            broker: "herald".into(),
            reports: vec![r],
        };
        let text = serde_json::to_string(&file).expect("serialisable");
        let back: RunFile = serde_json::from_str(&text).expect("own output parses");
        assert_eq!(back, file);
    }

    #[test]
    fn value_formatting() {
        assert_eq!(format_value(58123.4), "58123");
        assert_eq!(format_value(12.34), "12.3");
        assert_eq!(format_value(0.4), "0.400");
        assert_eq!(format_value(f64::NAN), "-");
        assert_eq!(format_value(0.0), "0", "counts print as integers");
    }
}
