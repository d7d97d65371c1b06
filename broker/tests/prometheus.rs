//! The Grafana dashboards and Prometheus alert rules in `grafana/`, checked
//! two ways:
//!
//! - statically: every metric their expressions name is one Herald exports
//!   (`herald::metrics::DEFS`), so a renamed metric cannot leave a dashboard
//!   silently empty;
//! - against a real Prometheus from Debian (`/usr/bin/prometheus`,
//!   `/usr/bin/promtool`, installed by `scripts/deps`): it scrapes a live
//!   Herald under a short load, and every PromQL expression of every panel
//!   must evaluate without error and return data; `promtool` must accept the
//!   example scrape config and the rules, and pass the rules' unit tests.
//!
//! Without the binaries the live tests print why and pass, unless `CI` is
//! set: there they must be present.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Raw, TestServer};
use herald::codec::QoS;
use herald::metrics::{Kind, DEFS};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Pulls the metric names out of PromQL expressions, enough for the
/// expressions we write: label matchers, range selectors, strings, function
/// and aggregation names, grouping label lists and keywords are skipped;
/// every other identifier names a metric.
mod promql {
    use std::collections::BTreeSet;

    /// Keywords that are not metric names (binary operators, modifiers,
    /// literals).
    const KEYWORDS: &[&str] = &[
        "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2",
    ];
    /// Keywords followed by a parenthesised list of label names.
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];

    /// Skips from an opening delimiter at `i` to just past its closing one,
    /// stepping over quoted strings (a `}` inside a regex must not end it).
    fn skip_group(s: &[char], mut i: usize, open: char, close: char) -> usize {
        let mut depth = 0usize;
        while i < s.len() {
            let c = s[i];
            if c == '"' || c == '\'' || c == '`' {
                i = skip_string(s, i);
                continue;
            }
            if c == open {
                depth += 1;
            } else if c == close {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            i += 1;
        }
        i
    }

    /// Skips a quoted string starting at `i` (backslash escapes except in
    /// backtick strings).
    fn skip_string(s: &[char], i: usize) -> usize {
        let quote = s[i];
        let mut j = i + 1;
        while j < s.len() {
            if s[j] == '\\' && quote != '`' {
                j += 2;
                continue;
            }
            if s[j] == quote {
                return j + 1;
            }
            j += 1;
        }
        j
    }

    fn is_ident_start(c: char) -> bool {
        c.is_ascii_alphabetic() || c == '_' || c == ':'
    }

    fn is_ident(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_' || c == ':'
    }

    /// The metric names `expr` selects.
    pub fn metric_names(expr: &str) -> BTreeSet<String> {
        let s: Vec<char> = expr.chars().collect();
        let mut names = BTreeSet::new();
        let mut i = 0;
        while i < s.len() {
            let c = s[i];
            if c == '"' || c == '\'' || c == '`' {
                i = skip_string(&s, i);
            } else if c == '{' {
                i = skip_group(&s, i, '{', '}');
            } else if c == '[' {
                i = skip_group(&s, i, '[', ']');
            } else if c == '#' {
                while i < s.len() && s[i] != '\n' {
                    i += 1;
                }
            } else if c.is_ascii_digit()
                || (c == '.' && s.get(i + 1).is_some_and(char::is_ascii_digit))
            {
                // A number or a duration (`0.99`, `1e-3`, `5m`).
                while i < s.len() && (is_ident(s[i]) || s[i] == '.') {
                    i += 1;
                }
            } else if c == '$' {
                // A Grafana variable: not PromQL, replaced before evaluation.
                i += 1;
                while i < s.len() && is_ident(s[i]) {
                    i += 1;
                }
            } else if is_ident_start(c) {
                let start = i;
                while i < s.len() && is_ident(s[i]) {
                    i += 1;
                }
                let word: String = s[start..i].iter().collect();
                let mut next = i;
                while next < s.len() && s[next].is_whitespace() {
                    next += 1;
                }
                // A function or aggregation: `name(`, or `sum by (..) (`.
                let following: String = s[next..].iter().take_while(|c| is_ident(**c)).collect();
                let call = s.get(next) == Some(&'(') || following == "by" || following == "without";
                if LABEL_LISTS.contains(&word.as_str()) {
                    if call {
                        i = skip_group(&s, next, '(', ')');
                    }
                } else if !call && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            } else {
                i += 1;
            }
        }
        names
    }

    #[test]
    fn finds_metrics_and_only_metrics() {
        let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
        assert_eq!(
            names(
                r#"sum by (reason) (rate(herald_a_total{reason="x}", job=~"$job"}[$__rate_interval]))"#
            ),
            ["herald_a_total"]
        );
        assert_eq!(
            names("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) > 0.1"),
            ["h_bucket"]
        );
        assert_eq!(
            names("sum(rate(a_sum[1m])) / on (instance) group_left (version) sum(b) offset 5m"),
            ["a_sum", "b"]
        );
        assert_eq!(
            names("up == 0 and bool absent(x{a='}'}) or sum(c) without (type)"),
            ["c", "up", "x"]
        );
        assert_eq!(names("1e-3 * 2 + .5"), Vec::<String>::new());
    }
}

/// The repository's `grafana/` directory.
fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana")
}

/// Every dashboard: (file name, parsed JSON).
fn dashboards() -> Vec<(String, Value)> {
    let dir = grafana_dir().join("dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("grafana/dashboards exists") {
        let path = entry.expect("directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("dashboard readable");
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
        let name = path
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        out.push((name, json));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no dashboards in {}", dir.display());
    out
}

/// One PromQL expression of a dashboard: where it is and what it says.
#[derive(Debug, Clone)]
struct Query {
    origin: String,
    expr: String,
}

/// The expressions of every panel (rows included, collapsed or not) and the
/// selectors of `label_values` template variables. Panics on a panel without
/// a query.
fn dashboard_queries(file: &str, dash: &Value) -> Vec<Query> {
    fn walk(file: &str, panels: &[Value], out: &mut Vec<Query>) {
        for p in panels {
            let title = p["title"].as_str().unwrap_or("?");
            if p["type"] == "row" {
                walk(file, p["panels"].as_array().map_or(&[], |v| v), out);
                continue;
            }
            let targets = p["targets"].as_array().map_or(&[][..], |v| v);
            assert!(!targets.is_empty(), "{file}: panel {title:?} has no query");
            for t in targets {
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}: panel {title:?} has a target without expr"));
                assert!(
                    !expr.trim().is_empty(),
                    "{file}: panel {title:?} has an empty expr"
                );
                out.push(Query {
                    origin: format!("{file}: panel {title:?} ({})", t["refId"]),
                    expr: expr.to_owned(),
                });
            }
        }
    }
    let mut out = Vec::new();
    let panels = dash["panels"].as_array().expect("dashboard has panels");
    walk(file, panels, &mut out);
    for v in dash["templating"]["list"].as_array().map_or(&[][..], |v| v) {
        if v["type"] != "query" {
            continue;
        }
        let name = v["name"].as_str().unwrap_or("?");
        let q = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .unwrap_or_else(|| panic!("{file}: variable {name} has no query"));
        // `label_values(SELECTOR, LABEL)`: the selector is PromQL.
        let selector = q
            .strip_prefix("label_values(")
            .and_then(|rest| rest.rsplit_once(','))
            .map(|(sel, _)| sel.trim())
            .unwrap_or_else(|| panic!("{file}: variable {name}: expected label_values(..): {q}"));
        out.push(Query {
            origin: format!("{file}: variable {name}"),
            expr: selector.to_owned(),
        });
    }
    out
}

/// The alert rules file.
fn rules_path() -> PathBuf {
    grafana_dir().join("prometheus/herald-alerts.yml")
}

/// The `expr` of every rule in a rules file. The file is YAML; rule
/// expressions are either on the `expr:` line or a block scalar (`|`, `>`)
/// under it, which is all this reads. Checks that one expression was found
/// per rule, so a form it does not understand fails instead of being skipped.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut rules = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start().trim_start_matches("- ");
        if trimmed.starts_with("alert:") || trimmed.starts_with("record:") {
            rules += 1;
        }
        if let Some(value) = trimmed.strip_prefix("expr:") {
            let value = value.trim();
            if value.starts_with('|') || value.starts_with('>') {
                let indent = line.len() - line.trim_start().len();
                let mut body = Vec::new();
                i += 1;
                while i < lines.len()
                    && (lines[i].trim().is_empty()
                        || lines[i].len() - lines[i].trim_start().len() > indent)
                {
                    body.push(lines[i].trim());
                    i += 1;
                }
                out.push(body.join(" ").trim().to_owned());
                continue;
            }
            let unquoted = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(value);
            out.push(unquoted.to_owned());
        }
        i += 1;
    }
    assert_eq!(out.len(), rules, "one expr per rule");
    out
}

/// Series Prometheus adds to every scrape target itself.
const PROMETHEUS_SERIES: &[&str] = &[
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// Whether Herald exports `name` (a histogram exports `_bucket`, `_sum` and
/// `_count` series, never its bare name) or Prometheus adds it.
fn exported(name: &str) -> bool {
    PROMETHEUS_SERIES.contains(&name)
        || DEFS.iter().any(|d| match d.kind {
            Kind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name.strip_suffix(suffix) == Some(d.name)),
            Kind::Counter | Kind::Gauge => name == d.name,
        })
}

#[test]
fn exported_knows_histogram_series() {
    assert!(exported("herald_publish_to_deliver_seconds_bucket"));
    assert!(exported("herald_publish_to_deliver_seconds_count"));
    assert!(!exported("herald_publish_to_deliver_seconds"));
    assert!(exported("herald_connections"));
    assert!(!exported("herald_connections_total"));
    assert!(exported("up"));
}

#[test]
fn dashboards_and_rules_only_use_metrics_herald_exports() {
    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    for (file, dash) in dashboards() {
        for q in dashboard_queries(&file, &dash) {
            for name in promql::metric_names(&q.expr) {
                if !exported(&name) {
                    unknown.push(format!("{}: {name} in {}", q.origin, q.expr));
                }
                used.insert(name);
            }
        }
    }
    let rules = std::fs::read_to_string(rules_path()).expect("rules readable");
    for expr in rule_exprs(&rules) {
        for name in promql::metric_names(&expr) {
            if !exported(&name) {
                unknown.push(format!("alert rule: {name} in {expr}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics Herald does not export:\n{}",
        unknown.join("\n")
    );
    assert!(used.iter().any(|n| n.starts_with("herald_")));
}

#[test]
fn dashboards_are_well_formed() {
    let mut uids = BTreeSet::new();
    for (file, dash) in dashboards() {
        let uid = dash["uid"].as_str().expect("dashboard has a uid");
        assert!(uids.insert(uid.to_owned()), "{file}: uid {uid} used twice");
        assert!(dash["title"].as_str().is_some(), "{file}: no title");
        // Panels take their data source from the variable, so the dashboard
        // imports into any Grafana whatever its Prometheus is called.
        let vars = dash["templating"]["list"].as_array().expect("variables");
        assert!(
            vars.iter()
                .any(|v| v["name"] == "datasource" && v["type"] == "datasource"),
            "{file}: no datasource variable"
        );
        let queries = dashboard_queries(&file, &dash);
        assert!(!queries.is_empty());
        let text = serde_json::to_string(&dash).expect("serialises");
        assert!(
            !text.contains("\"uid\":\"prometheus\"") && !text.contains("DS_PROMETHEUS"),
            "{file}: hard-wired data source"
        );
    }
}

/// The Prometheus binaries, or `None` (after saying why) when they are
/// missing outside CI. In CI they must be present.
fn prometheus_bins() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| -> Option<PathBuf> {
        let system = Path::new("/usr/bin").join(name);
        if system.is_file() {
            return Some(system);
        }
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    match (find("prometheus"), find("promtool")) {
        (Some(server), Some(tool)) => Some((server, tool)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but prometheus/promtool are missing: run scripts/deps")
        }
        _ => {
            eprintln!(
                "skipping: prometheus and promtool not found (scripts/deps installs Debian's prometheus)"
            );
            None
        }
    }
}

/// Runs promtool; panics with its output unless it succeeds.
fn promtool(tool: &Path, args: &[&str], cwd: &Path) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_config_and_rules_and_their_tests_pass() {
    let Some((_, tool)) = prometheus_bins() else {
        return;
    };
    let dir = grafana_dir().join("prometheus");
    promtool(&tool, &["check", "config", "prometheus.yml"], &dir);
    promtool(&tool, &["check", "rules", "herald-alerts.yml"], &dir);
    promtool(&tool, &["test", "rules", "herald-alerts.test.yml"], &dir);
}

/// A Prometheus server this test started; killed (by its own handle) when
/// dropped, also when the test panics.
struct PrometheusProcess {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl PrometheusProcess {
    fn start(bin: &Path, config: &Path, storage: &Path, log: PathBuf) -> PrometheusProcess {
        // A free loopback port: bind, read it, release it for Prometheus.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", storage.display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("prometheus starts");
        PrometheusProcess { child, addr, log }
    }

    /// Its log so far, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP GET (HTTP/1.0, so the body is never chunked); returns
/// (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// Percent-encodes a query parameter (everything but unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[test]
fn encode_escapes_promql() {
    assert_eq!(
        encode(r#"sum(up{job=~".+"}[1m]) / 2"#),
        "sum%28up%7Bjob%3D~%22.%2B%22%7D%5B1m%5D%29%20%2F%202"
    );
}

/// Evaluates `expr` now through `/api/v1/query`: the answer's `data`, or
/// the error Prometheus gave.
async fn query(prom: SocketAddr, expr: &str) -> Result<Value, String> {
    let (status, body) = http_get(prom, &format!("/api/v1/query?query={}", encode(expr)))
        .await
        .ok_or("no HTTP answer")?;
    let json: Value = serde_json::from_str(&body)
        .map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
    if json["status"] != "success" {
        return Err(format!(
            "HTTP {status}: {} {}",
            json["errorType"], json["error"]
        ));
    }
    Ok(json["data"].clone())
}

/// The values of a query answer (vector, matrix or scalar), as numbers.
fn values(data: &Value) -> Vec<f64> {
    let num = |v: &Value| v[1].as_str().and_then(|s| s.parse::<f64>().ok());
    match data["resultType"].as_str() {
        Some("scalar") => num(&data["result"]).into_iter().collect(),
        Some("vector") => data["result"]
            .as_array()
            .map_or(&[][..], |v| v)
            .iter()
            .filter_map(|s| num(&s["value"]))
            .collect(),
        Some("matrix") => data["result"]
            .as_array()
            .map_or(&[][..], |v| v)
            .iter()
            .flat_map(|s| s["values"].as_array().map_or(&[][..], |v| v))
            .filter_map(num)
            .collect(),
        _ => Vec::new(),
    }
}

/// Polls `expr` until some value satisfies `ok`; panics (with the log)
/// after `deadline`.
async fn wait_for_value(
    prom: &PrometheusProcess,
    what: &str,
    expr: &str,
    deadline: Duration,
    ok: impl Fn(f64) -> bool,
) {
    let end = tokio::time::Instant::now() + deadline;
    let mut last = Err(String::from("not asked yet"));
    while tokio::time::Instant::now() < end {
        last = query(prom.addr, expr).await;
        if let Ok(data) = &last {
            if values(data).into_iter().any(&ok) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "timed out waiting for {what} ({expr}); last answer {last:?}\nprometheus log:\n{}",
        prom.log()
    );
}

/// Replaces the Grafana variables the dashboards use with what Grafana
/// would send for "All" and a short scrape interval; panics on any other.
fn substitute(q: &Query) -> String {
    let expr = q
        .expr
        .replace("$__rate_interval", "1m")
        .replace("$job", ".+")
        .replace("$instance", ".+");
    assert!(
        !expr.contains('$'),
        "{}: unknown Grafana variable in {}",
        q.origin,
        q.expr
    );
    expr
}

/// Publishes `n` messages (every third at QoS 1) from `publisher` to the
/// subscriber of `load/#`, which reads and acknowledges them all.
async fn load(publisher: &mut Raw, subscriber: &mut Raw, first: u16, n: u16) {
    for i in first..first + n {
        let qos = if i % 3 == 0 { 1 } else { 0 };
        let payload = format!("message {i}");
        publisher
            .publish_acked(
                &format!("load/{}", i % 7),
                qos,
                false,
                i,
                payload.as_bytes(),
            )
            .await;
    }
    for _ in 0..n {
        let p = subscriber.expect_publish().await;
        if p.qos != QoS::AtMostOnce {
            let id = p.packet_id.expect("QoS 1 has a packet id");
            subscriber.send(&common::wire::puback(id)).await;
        }
    }
}

/// How long the live test may take: Prometheus start-up plus a few scrapes.
const LIVE_DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let Some((bin, tool)) = prometheus_bins() else {
        return;
    };
    tokio::time::timeout(LIVE_DEADLINE, live(bin, tool))
        .await
        .expect("the live Prometheus test finishes within its deadline");
}

async fn live(bin: PathBuf, tool: PathBuf) {
    let srv = TestServer::start().await;
    let admin = srv.admin.expect("admin listener enabled by default");
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let config = tmp.path().join("prometheus.yml");
    let rules = rules_path().canonicalize().expect("rules file exists");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: herald\n    static_configs:\n      - targets: ['{admin}']\n",
            rules = rules.display()
        ),
    )
    .expect("config written");
    promtool(&tool, &["check", "config", "prometheus.yml"], tmp.path());

    let prom = PrometheusProcess::start(
        &bin,
        &config,
        &tmp.path().join("data"),
        tmp.path().join("prometheus.log"),
    );
    wait_for_value(
        &prom,
        "the first successful scrape",
        r#"up{job="herald"}"#,
        Duration::from_secs(60),
        |v| v == 1.0,
    )
    .await;

    // A short bounded load in two rounds, each seen by a scrape, so that
    // every counter and the latency histogram have risen between two samples.
    // A persistent session (clean session 0): its QoS 1 messages go
    // through the store, so the storage panels have data too.
    let (mut subscriber, _) = Raw::connect(
        srv.addr,
        &common::wire::Connect::v311("prom-sub").clean(false),
    )
    .await;
    subscriber.subscribe(1, &[("load/#", 1)]).await;
    let mut publisher = Raw::v311(srv.addr, "prom-pub").await;
    publisher
        .publish_acked("state/retained", 1, true, 1, b"kept")
        .await;
    let rounds: [(u16, u16); 2] = [(10, 150), (200, 150)];
    let mut sent = 1;
    for (first, n) in rounds {
        load(&mut publisher, &mut subscriber, first, n).await;
        sent += u64::from(n);
        let want = sent as f64;
        wait_for_value(
            &prom,
            "a scrape after the load",
            r#"sum(herald_messages_received_total{job="herald"})"#,
            Duration::from_secs(30),
            move |v| v >= want,
        )
        .await;
    }
    // One more scrape with the clients still connected.
    let scraped = query(prom.addr, r#"count_over_time(up{job="herald"}[1m])"#)
        .await
        .map(|d| values(&d).first().copied().unwrap_or(0.0))
        .unwrap_or(0.0);
    wait_for_value(
        &prom,
        "one more scrape",
        r#"count_over_time(up{job="herald"}[1m])"#,
        Duration::from_secs(30),
        move |v| v > scraped,
    )
    .await;
    wait_for_value(
        &prom,
        "the broker reported ready",
        "herald_ready",
        Duration::from_secs(5),
        |v| v == 1.0,
    )
    .await;

    let mut failures = Vec::new();
    let mut evaluated = 0;
    for (file, dash) in dashboards() {
        for q in dashboard_queries(&file, &dash) {
            let expr = substitute(&q);
            evaluated += 1;
            match query(prom.addr, &expr).await {
                Err(e) => failures.push(format!("{}: error {e}\n    {expr}", q.origin)),
                Ok(data) => {
                    let vs = values(&data);
                    if vs.is_empty() {
                        failures.push(format!("{}: no data\n    {expr}", q.origin));
                    } else if vs.iter().all(|v| v.is_nan()) {
                        failures.push(format!("{}: only NaN\n    {expr}", q.origin));
                    }
                }
            }
        }
    }
    // Alert rules: each evaluates without error (no data is normal: nothing
    // is wrong), and Prometheus loaded and ran them all healthily.
    let rule_text = std::fs::read_to_string(&rules).expect("rules readable");
    let alert_exprs = rule_exprs(&rule_text);
    for expr in &alert_exprs {
        if let Err(e) = query(prom.addr, expr).await {
            failures.push(format!("alert rule: error {e}\n    {expr}"));
        }
    }
    let (_, body) = http_get(prom.addr, "/api/v1/rules")
        .await
        .expect("rules API answers");
    let api: Value = serde_json::from_str(&body).expect("rules API answers JSON");
    let loaded: Vec<&Value> = api["data"]["groups"]
        .as_array()
        .map_or(&[][..], |v| v)
        .iter()
        .flat_map(|g| g["rules"].as_array().map_or(&[][..], |v| v))
        .collect();
    assert_eq!(
        loaded.len(),
        alert_exprs.len(),
        "Prometheus loaded every rule: {body}"
    );
    for r in loaded {
        if r["health"] == "err" {
            failures.push(format!("rule {} unhealthy: {}", r["name"], r["lastError"]));
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {evaluated} dashboard queries (and the rules) failed:\n{}\nprometheus log:\n{}",
        failures.len(),
        failures.join("\n"),
        prom.log()
    );
    drop(prom);
    srv.stop().await;
}

/// The README's alert table lists exactly the rules in the alerts file.
#[test]
fn readme_lists_every_alert() {
    let rules = std::fs::read_to_string(rules_path()).expect("rules readable");
    let defined: BTreeSet<&str> = rules
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(str::trim)
        .collect();
    let readme = include_str!("../../README.md");
    let listed: BTreeSet<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `Herald"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let defined: BTreeSet<&str> = defined
        .iter()
        .filter_map(|a| a.strip_prefix("Herald"))
        .collect();
    assert!(!defined.is_empty(), "no alerts found in the rules file");
    assert_eq!(listed, defined, "README alert table is out of date");
}
