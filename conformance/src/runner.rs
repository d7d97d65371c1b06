//! Runs the catalogue against one address and collects a report.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::client::Failure;
use crate::suite::{catalogue, Ctx, Feature, TestCase};
use crate::wire::Version;

/// What to run and how patiently.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` of the broker under test.
    pub addr: String,
    /// Versions to run, in order.
    pub versions: Vec<Version>,
    /// Substrings of test keys (`01-connect/003@5`); empty runs everything.
    pub only: Vec<String>,
    /// Features not declared absent.
    pub features: BTreeSet<Feature>,
    /// Deadline for each read that expects a packet.
    pub read_timeout: Duration,
    /// How long silence must last to count as "nothing sent".
    pub quiet: Duration,
    /// Hard limit for a whole test: a broker that hangs fails it.
    pub test_timeout: Duration,
}

impl Config {
    /// Defaults: both versions, all features, 3 s reads, 0.5 s quiet, 30 s
    /// per test.
    pub fn new(addr: &str) -> Config {
        Config {
            addr: addr.to_owned(),
            versions: vec![Version::V311, Version::V5],
            only: Vec::new(),
            features: Feature::ALL.into_iter().collect(),
            read_timeout: Duration::from_secs(3),
            quiet: Duration::from_millis(500),
            test_timeout: Duration::from_secs(30),
        }
    }
}

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    NotApplicable(String),
}

/// One test's result.
#[derive(Debug, Clone)]
pub struct Record {
    /// `id@version`, e.g. `01-connect/003@5`.
    pub key: String,
    pub title: &'static str,
    pub refs: &'static [&'static str],
    pub outcome: Outcome,
    pub elapsed: Duration,
}

impl Record {
    /// The one line the runner prints for this test.
    pub fn line(&self) -> String {
        let refs: String = self.refs.iter().map(|r| format!(" [{r}]")).collect();
        let ms = self.elapsed.as_millis();
        match &self.outcome {
            Outcome::Pass => format!("PASS {} {}{refs} ({ms} ms)", self.key, self.title),
            Outcome::Fail(why) => {
                format!("FAIL {} {}{refs} ({ms} ms): {why}", self.key, self.title)
            }
            Outcome::NotApplicable(why) => {
                format!("N/A  {} {}{refs}: {why}", self.key, self.title)
            }
        }
    }
}

/// All results of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub records: Vec<Record>,
}

impl Report {
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.records.iter().filter(|r| f(&r.outcome)).count()
    }

    pub fn passed(&self) -> usize {
        self.count(|o| *o == Outcome::Pass)
    }

    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail(_)))
    }

    pub fn not_applicable(&self) -> usize {
        self.count(|o| matches!(o, Outcome::NotApplicable(_)))
    }

    /// Keys of the failed tests.
    pub fn failing(&self) -> BTreeSet<String> {
        self.records
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
            .map(|r| r.key.clone())
            .collect()
    }

    /// The report as JSON (hand-written: the suite needs no JSON crate).
    pub fn to_json(&self, addr: &str) -> String {
        let mut s = String::from("{\n");
        let _ = writeln!(s, "  \"addr\": {},", json_str(addr));
        let _ = writeln!(s, "  \"passed\": {},", self.passed());
        let _ = writeln!(s, "  \"failed\": {},", self.failed());
        let _ = writeln!(s, "  \"not_applicable\": {},", self.not_applicable());
        s.push_str("  \"tests\": [\n");
        for (i, r) in self.records.iter().enumerate() {
            let (outcome, detail) = match &r.outcome {
                Outcome::Pass => ("pass", ""),
                Outcome::Fail(d) => ("fail", d.as_str()),
                Outcome::NotApplicable(d) => ("not_applicable", d.as_str()),
            };
            let refs: Vec<String> = r.refs.iter().map(|x| json_str(x)).collect();
            let _ = write!(
                s,
                "    {{\"key\": {}, \"title\": {}, \"refs\": [{}], \"outcome\": \"{outcome}\", \
                 \"detail\": {}, \"elapsed_ms\": {}}}",
                json_str(&r.key),
                json_str(r.title),
                refs.join(", "),
                json_str(detail),
                r.elapsed.as_millis()
            );
            s.push_str(if i + 1 < self.records.len() {
                ",\n"
            } else {
                "\n"
            });
        }
        s.push_str("  ]\n}\n");
        s
    }
}

/// A JSON string literal.
pub fn json_str(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// An alphanumeric tag that differs between runs.
fn run_tag() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut n = (nanos ^ (u128::from(std::process::id()) << 40)) as u64;
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = String::from("q");
    for _ in 0..5 {
        s.push(char::from(DIGITS[(n % 36) as usize]));
        n /= 36;
    }
    s
}

/// The (test, version) pairs `config` selects, in run order.
pub fn selection(config: &Config) -> Vec<(TestCase, Version)> {
    let mut out = Vec::new();
    for v in &config.versions {
        for t in catalogue() {
            if !t.versions.includes(*v) {
                continue;
            }
            let key = format!("{}@{}", t.id, v.label());
            if config.only.is_empty() || config.only.iter().any(|p| key.contains(p.as_str())) {
                out.push((t, *v));
            }
        }
    }
    out
}

/// Runs the selected tests one after another, calling `on_result` as each
/// ends.
pub async fn run(config: &Config, mut on_result: impl FnMut(&Record)) -> Report {
    let run = run_tag();
    let features = Arc::new(config.features.clone());
    let mut report = Report::default();
    for (seq, (t, v)) in selection(config).into_iter().enumerate() {
        let key = format!("{}@{}", t.id, v.label());
        let start = Instant::now();
        let missing: Vec<&str> = t
            .features
            .iter()
            .filter(|f| !features.contains(f))
            .map(|f| f.name())
            .collect();
        let outcome = if !missing.is_empty() {
            Outcome::NotApplicable(format!("needs {}", missing.join(", ")))
        } else {
            let ctx = Ctx {
                addr: config.addr.clone(),
                version: v,
                read_timeout: config.read_timeout,
                quiet: config.quiet,
                run: run.clone(),
                seq: seq as u32,
                features: features.clone(),
            };
            // Each test runs in its own task so a panic in a test is a
            // failure of that test, not of the run.
            let task = tokio::spawn((t.run)(ctx));
            let abort = task.abort_handle();
            match tokio::time::timeout(config.test_timeout, task).await {
                Err(_) => {
                    abort.abort();
                    Outcome::Fail(format!(
                        "test exceeded its time limit of {:?} (broker hung?)",
                        config.test_timeout
                    ))
                }
                Ok(Err(join)) => Outcome::Fail(format!("test task failed: {join}")),
                Ok(Ok(Ok(()))) => Outcome::Pass,
                Ok(Ok(Err(Failure::NotApplicable(why)))) => Outcome::NotApplicable(why),
                Ok(Ok(Err(e))) => Outcome::Fail(e.to_string()),
            }
        };
        let rec = Record {
            key,
            title: t.title,
            refs: t.refs,
            outcome,
            elapsed: start.elapsed(),
        };
        on_result(&rec);
        report.records.push(rec);
    }
    report
}

/// The summary lines: `N passed, M failed` alone on its line (CI reads it),
/// then the not-applicable count on the next.
pub fn summary(report: &Report) -> String {
    format!(
        "{} passed, {} failed\n{} not applicable",
        report.passed(),
        report.failed(),
        report.not_applicable()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_ids_well_formed() {
        let mut seen = BTreeSet::new();
        for v in [Version::V311, Version::V5] {
            for t in catalogue() {
                if !t.versions.includes(v) {
                    continue;
                }
                let key = format!("{}@{}", t.id, v.label());
                assert!(seen.insert(key.clone()), "duplicate key {key}");
                let (area, num) = t.id.split_once('/').expect("id has a slash");
                assert!(area.len() > 3 && area.as_bytes()[2] == b'-', "{}", t.id);
                assert!(area[..2].chars().all(|c| c.is_ascii_digit()), "{}", t.id);
                assert!(num.len() == 3 && num.chars().all(|c| c.is_ascii_digit()));
                assert!(!t.refs.is_empty(), "{} cites no statement", t.id);
                for r in t.refs {
                    assert!(r.starts_with("MQTT-"), "{}: bad ref {r}", t.id);
                }
            }
        }
    }

    #[test]
    fn only_filters_by_key_substring() {
        let mut c = Config::new("127.0.0.1:1");
        c.only = vec!["01-connect/001@5".into()];
        let sel = selection(&c);
        assert_eq!(sel.len(), 1);
        assert_eq!(sel[0].1, Version::V5);
    }

    #[test]
    fn malformed_catalogue_has_at_least_40_distinct_inputs() {
        let ids: BTreeSet<&str> = catalogue()
            .iter()
            .filter(|t| t.id.starts_with("13-"))
            .map(|t| t.id)
            .collect();
        assert!(ids.len() >= 40, "only {} malformed inputs", ids.len());
    }

    #[test]
    fn json_escapes_control_characters() {
        assert_eq!(json_str("a\"b\\\n\u{1}"), "\"a\\\"b\\\\\\n\\u0001\"");
    }

    #[test]
    fn summary_keeps_the_ci_line_alone() {
        let r = Report::default();
        let s = summary(&r);
        assert_eq!(s.lines().next(), Some("0 passed, 0 failed"));
    }
}
