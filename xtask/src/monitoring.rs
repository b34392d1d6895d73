//! The shipped monitoring (part of `lint`): every metric the Grafana dashboard
//! (`deploy/grafana/pto-connect.json`) and the Prometheus alert rules
//! (`deploy/prometheus/alerts.yml`) query is one the server exports, and every alert's
//! `runbook_url` points at a section of `docs/operations.md`.
//!
//! The server's metric names are read from `apps/server/src` (every `ptoc_…`,
//! `http_server_…` or `process_…` word in it); the queried names are scanned out of the expressions:
//! quoted strings, label matchers `{…}`, ranges `[…]`, the label lists of `by`,
//! `without`, `on`, `ignoring`, `group_left` and `group_right`, function calls, keywords
//! and numbers are removed; what is left are metric names. A histogram's `_bucket`,
//! `_sum` and `_count` series count as its name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// PromQL words that are not metric names (the aggregations may be followed by `by`
/// rather than their parenthesis), besides those of [`LABEL_LISTS`].
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// Words after which a parenthesised list holds label names, not an expression.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL (or Grafana-templated PromQL) expression queries.
#[must_use]
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    // Strings, label matchers and ranges go first (they hold label values, `$job`,
    // `$__rate_interval`).
    let mut plain = String::with_capacity(expr.len());
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        let close = match c {
            '"' | '\'' | '`' => c,
            '{' => '}',
            '[' => ']',
            _ => {
                plain.push(c);
                continue;
            }
        };
        let mut escaped = false;
        for d in chars.by_ref() {
            if escaped {
                escaped = false;
            } else if d == '\\' {
                escaped = true;
            } else if d == close {
                break;
            }
        }
        plain.push(' ');
    }
    // Words, with what follows each (a call or a label list).
    let bytes = plain.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_list = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'(' && skip_list {
            // A label list: skip to its `)`.
            while i < bytes.len() && bytes[i] != b')' {
                i += 1;
            }
            skip_list = false;
            i += 1;
            continue;
        }
        let word_start = c.is_ascii_alphabetic() || c == b'_' || c == b':';
        if !word_start {
            // A number (`0.5`, `1e3`) is one token: skip its digits and letters.
            if c.is_ascii_digit() || c == b'.' {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                continue;
            }
            if !c.is_ascii_whitespace() {
                skip_list = false;
            }
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
        {
            i += 1;
        }
        let word = &plain[start..i];
        let next = plain[i..].trim_start().chars().next();
        let lower = word.to_ascii_lowercase();
        if LABEL_LISTS.contains(&lower.as_str()) {
            skip_list = true;
            continue;
        }
        skip_list = false;
        if next == Some('(') || KEYWORDS.contains(&lower.as_str()) {
            continue;
        }
        names.insert(word.to_owned());
    }
    names
}

/// Every `ptoc_…` and `http_server_…` word in the Rust files under `dir`.
fn exported_names(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)?;
                out.extend(words_with_prefix(
                    &text,
                    &["ptoc_", "http_server_", "process_"],
                ));
            }
        }
    }
    Ok(out)
}

fn words_with_prefix(text: &str, prefixes: &[&str]) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| prefixes.iter().any(|p| w.starts_with(p)))
        .map(str::to_owned)
        .collect()
}

/// Whether `name` is exported (a histogram's series by its base name).
fn is_exported(name: &str, exported: &BTreeSet<String>) -> bool {
    exported.contains(name)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name.strip_suffix(s).is_some_and(|b| exported.contains(b)))
}

/// Every `"expr"` string in a Grafana dashboard (panels, rows' panels, targets).
fn dashboard_exprs(json: &serde_json::Value, out: &mut Vec<String>) {
    match json {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                dashboard_exprs(v, out);
            }
        }
        _ => {}
    }
}

/// The value of every `key:` in a rules file: inline, or a block (`|`, `>`) of the lines
/// indented deeper than the key.
fn yaml_values(text: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start().trim_start_matches("- ");
        i += 1;
        let Some(value) = body.strip_prefix(key).and_then(|r| r.strip_prefix(':')) else {
            continue;
        };
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let mut block = String::new();
            while i < lines.len() {
                let l = lines[i];
                let deeper = l.len() - l.trim_start().len() > indent;
                if !l.trim().is_empty() && !deeper {
                    break;
                }
                block.push_str(l.trim());
                block.push('\n');
                i += 1;
            }
            out.push(block);
        } else {
            out.push(value.trim_matches('"').trim_matches('\'').to_owned());
        }
    }
    out
}

/// The anchors of the Markdown headings in `text` (GitHub's rule: lower case, spaces to
/// `-`, punctuation other than `-` and `_` dropped).
fn anchors(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let t = l.trim_start();
            let title = t.trim_start_matches('#');
            (t.starts_with('#') && title.starts_with(' ')).then_some(title.trim())
        })
        .map(|title| {
            title
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// The names in `exprs` the server does not export, with the expression naming each.
fn unknown(exprs: &[String], exported: &BTreeSet<String>) -> Vec<String> {
    let mut bad = Vec::new();
    for e in exprs {
        for name in metric_names(e) {
            if !is_exported(&name, exported) {
                bad.push(format!("{name} (in `{}`)", e.trim().replace('\n', " ")));
            }
        }
    }
    bad
}

/// Checks the dashboard's and the alert rules' metric names and the runbook links.
pub fn run() -> anyhow::Result<()> {
    let root = root();
    let exported = exported_names(&root.join("apps/server/src"))?;
    let dashboard_path = root.join("deploy/grafana/pto-connect.json");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&dashboard_path)
            .with_context(|| format!("reading {}", dashboard_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", dashboard_path.display()))?;
    let mut dash_exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut dash_exprs);
    let rules_path = root.join("deploy/prometheus/alerts.yml");
    let rules = std::fs::read_to_string(&rules_path)
        .with_context(|| format!("reading {}", rules_path.display()))?;
    let rule_exprs = yaml_values(&rules, "expr");
    let alerts = yaml_values(&rules, "alert");
    let operations = std::fs::read_to_string(root.join("docs/operations.md"))
        .context("reading docs/operations.md")?;
    let sections = anchors(&operations);

    let mut problems = Vec::new();
    if dash_exprs.len() < 10 || rule_exprs.len() < alerts.len() || alerts.is_empty() {
        problems.push(format!(
            "found too few expressions ({} in the dashboard, {} for {} alerts): is the scan broken?",
            dash_exprs.len(),
            rule_exprs.len(),
            alerts.len()
        ));
    }
    for bad in unknown(&dash_exprs, &exported) {
        problems.push(format!("dashboard queries an unknown metric: {bad}"));
    }
    for bad in unknown(&rule_exprs, &exported) {
        problems.push(format!("alert rules query an unknown metric: {bad}"));
    }
    let runbooks = yaml_values(&rules, "runbook_url");
    if runbooks.len() != alerts.len() {
        problems.push(format!(
            "{} alerts but {} runbook_url annotations",
            alerts.len(),
            runbooks.len()
        ));
    }
    for url in &runbooks {
        match url.split_once('#') {
            Some(("docs/operations.md", anchor)) if sections.contains(anchor) => {}
            _ => problems.push(format!(
                "runbook_url {url} is not a section of docs/operations.md"
            )),
        }
    }
    if !problems.is_empty() {
        bail!("monitoring:\n  {}", problems.join("\n  "));
    }
    println!(
        "monitoring: {} dashboard and {} alert expressions query exported metrics; {} runbooks found",
        dash_exprs.len(),
        rule_exprs.len(),
        runbooks.len()
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn names_are_scanned_out_of_expressions() {
        let e = r#"histogram_quantile(0.95, sum by (job, http_route, le) (rate(http_server_request_duration_seconds_bucket{job=~"$job",le!="1e3"}[$__rate_interval]))) > 0.5
          and on (job) sum without (instance) (rate(ptoc_cache_misses_total[5m])) / ignoring(layer) group_left(cache) ptoc_db_pool_max offset 5m > 1e3"#;
        assert_eq!(
            metric_names(e),
            set(&[
                "http_server_request_duration_seconds_bucket",
                "ptoc_cache_misses_total",
                "ptoc_db_pool_max"
            ])
        );
    }

    #[test]
    fn an_unknown_name_is_reported() {
        let exported = set(&["http_server_request_duration_seconds", "ptoc_jobs"]);
        let exprs = vec![
            "sum(rate(http_server_request_duration_seconds_count[5m]))".to_owned(),
            "ptoc_jobs{state=\"failed\"} > 0".to_owned(),
            "rate(ptoc_http_requests_total[5m])".to_owned(),
        ];
        let bad = unknown(&exprs, &exported);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].starts_with("ptoc_http_requests_total"), "{bad:?}");
    }

    #[test]
    fn rule_values_are_read_inline_and_as_blocks() {
        let rules = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: |\n          sum(ptoc_a)\n          / ptoc_b\n        for: 5m\n      - alert: B\n        expr: ptoc_c > 1\n";
        assert_eq!(
            yaml_values(rules, "expr"),
            vec![
                "sum(ptoc_a)\n/ ptoc_b\n".to_owned(),
                "ptoc_c > 1".to_owned()
            ]
        );
        assert_eq!(yaml_values(rules, "alert"), vec!["A", "B"]);
    }

    #[test]
    fn heading_anchors_follow_github() {
        let a = anchors(
            "# Operations\n### PtocHighErrorRate\n## Backup and restore (SQLite, PostgreSQL)\n",
        );
        assert!(a.contains("ptochigherrorrate"));
        assert!(a.contains("backup-and-restore-sqlite-postgresql"));
    }

    /// The shipped files pass (the same check `cargo xtask lint` runs).
    #[test]
    fn the_shipped_dashboard_and_rules_query_exported_metrics() {
        run().unwrap();
    }
}
