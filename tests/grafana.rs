//! `deploy/grafana/phoenix.json` names only metrics that exist: every `expr` (and the tenant
//! variable's query) is checked against `/metrics` of a fresh server before any traffic,
//! which also shows that every metric is registered at start-up (SPEC §13).

mod common;

use std::collections::{BTreeSet, HashMap};

use common::Server;
use serde_json::Value;

const DASHBOARD: &str = include_str!("../deploy/grafana/phoenix.json");

/// Metric families in Prometheus text: name → type (`untyped` when no `# TYPE` line).
fn families(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                out.insert(name.to_owned(), kind.to_owned());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let name = line
                .split(|c: char| c == '{' || c.is_whitespace())
                .next()
                .unwrap_or("");
            out.entry(name.to_owned())
                .or_insert_with(|| "untyped".to_owned());
        }
    }
    out
}

/// Whether `name` is exported: a family itself, or a histogram's `_bucket`/`_sum`/`_count`.
fn exists(families: &HashMap<String, String>, name: &str) -> bool {
    if families.contains_key(name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix).is_some_and(|base| {
            families
                .get(base)
                .is_some_and(|k| k == "histogram" || k == "summary")
        })
    })
}

/// Every string value under a key named `key`, anywhere in `v`.
fn strings_at(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                match child {
                    Value::String(s) if k == key => out.push(s.clone()),
                    _ => strings_at(child, key, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| strings_at(i, key, out)),
        _ => {}
    }
}

/// Identifiers in a PromQL expression that are metric names: those starting with `phoenix_`,
/// and any identifier written directly before a `{` selector (a metric under another name).
/// Text inside double quotes (label values, legends) is skipped.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let (mut i, mut in_braces) = (0, false);
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if c == '{' {
            in_braces = true;
        } else if c == '}' {
            in_braces = false;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let selector = chars.get(i) == Some(&'{');
            // `$__rate_interval` and other Grafana variables are not metrics.
            let variable = start > 0 && chars[start - 1] == '$';
            if !variable && !in_braces && (ident.starts_with("phoenix_") || selector) {
                names.insert(ident);
            }
            continue;
        }
        i += 1;
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    let got = metric_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(phoenix_fsync_seconds_bucket{tenant=~"$tenant", x="phoenix_not"}[$__rate_interval]))) / up{job="a"}"#,
    );
    let want: BTreeSet<String> = ["phoenix_fsync_seconds_bucket", "up"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
    let fams = families("# TYPE h histogram\nh_bucket{le=\"1\"} 0\nh_sum 0\nh_count 0\nc 1\n");
    assert!(exists(&fams, "h_bucket") && exists(&fams, "h_count") && exists(&fams, "c"));
    assert!(!exists(&fams, "c_bucket") && !exists(&fams, "nope"));
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_with_a_prometheus_input_and_a_tenant_variable() {
    let d: Value = serde_json::from_str(DASHBOARD).expect("valid JSON");
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "{}",
        d["schemaVersion"]
    );
    assert_eq!(d["uid"], "phoenix-overview");
    let vars = d["templating"]["list"].as_array().expect("templating");
    let ds = vars
        .iter()
        .find(|v| v["name"] == "DS_PROMETHEUS")
        .expect("DS_PROMETHEUS");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let tenant = vars
        .iter()
        .find(|v| v["name"] == "tenant")
        .expect("tenant variable");
    assert_eq!(tenant["includeAll"], true);
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id in {p}"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} has no query", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
    // The issue's list of things to show, each by the metric that shows it.
    for needed in [
        "phoenix_events_accepted_total",
        "phoenix_ingest_events_total",
        "phoenix_fsync_seconds",
        "phoenix_fsync_batch_size",
        "phoenix_log_write_seconds",
        "phoenix_leaderboard_apply_lag",
        "phoenix_ws_sessions",
        "phoenix_ws_frames_dropped_total",
        "phoenix_ws_resyncs_total",
    ] {
        assert!(DASHBOARD.contains(needed), "no panel shows {needed}");
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_in_metrics_before_any_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let families = families(&server.metrics().await);

    let d: Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut exprs = Vec::new();
    strings_at(&d, "expr", &mut exprs);
    strings_at(&d, "definition", &mut exprs);
    assert!(exprs.len() >= 20, "only {} queries found", exprs.len());
    let mut missing = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr:?}");
        for name in names {
            if !exists(&families, &name) {
                missing.insert(format!("{name} (in {expr})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not have:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test]
async fn every_registered_metric_is_exported_at_zero_before_any_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let text = server.metrics().await;
    let families = families(&text);
    for name in phoenix::metrics::names() {
        assert!(
            families.contains_key(name),
            "{name} missing from /metrics:\n{text}"
        );
    }
    // Nothing has happened yet: every sample is zero, but for the gauges that measure the
    // machine (free disk space, the store's size) and this very request's connection.
    let measured = [
        "phoenix_disk_free_bytes",
        "phoenix_store_bytes",
        "phoenix_http_connections",
    ];
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter(|l| !measured.iter().any(|m| l.starts_with(m)))
    {
        let value = line.rsplit(' ').next().unwrap();
        assert_eq!(value, "0", "{line}");
    }
}
