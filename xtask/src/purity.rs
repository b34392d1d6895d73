//! The domain crates must not depend (directly or transitively) on any framework,
//! database, cache or async-runtime crate, and no crate may depend on a test-only crate
//! outside its dev-dependencies (nothing test-only is linked into what ships). Checked
//! from `cargo metadata`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};

/// The pure crates: the domain crates, and member search (an in-memory index the
/// server keeps, no I/O of its own).
pub const DOMAIN_CRATES: &[&str] = &[
    "ids",
    "tenancy",
    "permissions",
    "audit",
    "districts",
    "notifications",
    "webhooks",
    "member-search",
];

/// Crates a domain crate may never pull in.
pub const FORBIDDEN: &[&str] = &[
    "sea-orm",
    "sea-query",
    "sqlx",
    "sqlx-core",
    "fred",
    "redis",
    "moka",
    "actix-web",
    "actix-http",
    "actix-rt",
    "tokio",
    "hyper",
    "reqwest",
    "axum",
    "tonic",
    "biscuit-auth",
    "aide",
    "garde",
];

/// Crates for tests only: never a normal dependency of any package.
pub const TEST_ONLY: &[&str] = &["test-support", "mockall", "proptest"];

/// The target triple of this machine's Rust toolchain (`rustc -vV`).
fn host_triple() -> anyhow::Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV names no host")
}

/// The host's resolved graph: package id → name, and package id → the ids of its normal
/// (non-dev, non-build) dependencies.
type Graph = (BTreeMap<String, String>, BTreeMap<String, Vec<String>>);

/// Reads [`Graph`] from `cargo metadata`.
fn graph() -> anyhow::Result<Graph> {
    // The host's dependency graph only: `cargo metadata` needs the manifest of every
    // package it reports, and offline it has only those a build here downloaded (not,
    // say, Android-only crates).
    let out = crate::cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(host_triple()?)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut name_of = BTreeMap::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        name_of.insert(
            p["id"].as_str().unwrap_or_default().to_owned(),
            p["name"].as_str().unwrap_or_default().to_owned(),
        );
    }
    // Normal (non-dev, non-build) dependency edges only: tests may use anything.
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().into_iter().flatten() {
        let id = node["id"].as_str().unwrap_or_default().to_owned();
        let deps = node["deps"].as_array().into_iter().flatten().filter(|d| {
            d["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null())
        });
        edges.insert(
            id,
            deps.filter_map(|d| d["pkg"].as_str().map(str::to_owned))
                .collect(),
        );
    }
    Ok((name_of, edges))
}

/// Returns each violating (domain crate, forbidden dependency) pair.
pub fn violations() -> anyhow::Result<Vec<(String, String)>> {
    let (name_of, edges) = graph()?;
    let mut found = Vec::new();
    for (id, name) in &name_of {
        if !DOMAIN_CRATES.contains(&name.as_str()) {
            continue;
        }
        let mut seen = BTreeSet::new();
        let mut stack = vec![id.clone()];
        while let Some(cur) = stack.pop() {
            if !seen.insert(cur.clone()) {
                continue;
            }
            let dep_name = name_of.get(&cur).cloned().unwrap_or_default();
            if FORBIDDEN.contains(&dep_name.as_str()) {
                found.push((name.clone(), dep_name));
            }
            stack.extend(edges.get(&cur).cloned().unwrap_or_default());
        }
    }
    Ok(found)
}

/// Returns each (package, test-only crate) pair where the package has the test-only
/// crate as a normal dependency.
pub fn test_only_violations() -> anyhow::Result<Vec<(String, String)>> {
    let (name_of, edges) = graph()?;
    Ok(test_only_in(&name_of, &edges))
}

/// [`test_only_violations`] on a given graph.
fn test_only_in(
    name_of: &BTreeMap<String, String>,
    edges: &BTreeMap<String, Vec<String>>,
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (id, deps) in edges {
        for dep in deps {
            let dep_name = name_of.get(dep).map_or("", String::as_str);
            if TEST_ONLY.contains(&dep_name) {
                let name = name_of.get(id).cloned().unwrap_or_default();
                found.push((name, dep_name.to_owned()));
            }
        }
    }
    found
}

pub fn run() -> anyhow::Result<()> {
    let v = violations()?;
    if !v.is_empty() {
        for (krate, dep) in &v {
            eprintln!("domain crate `{krate}` depends on `{dep}`");
        }
        bail!("domain purity violated ({} dependencies)", v.len());
    }
    println!(
        "purity: {} are free of framework, database and cache crates",
        DOMAIN_CRATES.join(", ")
    );
    let t = test_only_violations()?;
    if !t.is_empty() {
        for (krate, dep) in &t {
            eprintln!(
                "`{krate}` depends on the test-only crate `{dep}` outside [dev-dependencies]"
            );
        }
        bail!(
            "test-only crates linked into non-test code ({} dependencies)",
            t.len()
        );
    }
    println!("purity: {} only in dev-dependencies", TEST_ONLY.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn domain_crates_are_pure() {
        let v = super::violations().expect("cargo metadata");
        assert!(
            v.is_empty(),
            "domain crates depend on forbidden crates: {v:?}"
        );
    }

    #[test]
    fn test_only_crates_are_dev_dependencies_only() {
        let v = super::test_only_violations().expect("cargo metadata");
        assert!(
            v.is_empty(),
            "test-only crates as normal dependencies: {v:?}"
        );
    }

    #[test]
    fn the_test_only_check_sees_a_normal_edge() {
        // Guard against a check that cannot fail: the graph as it was before issue 14
        // (pto-server → test-support as a normal dependency) is reported.
        let name_of = [("s", "pto-server"), ("t", "test-support"), ("u", "uuid")]
            .map(|(id, name)| (id.to_owned(), name.to_owned()))
            .into();
        let edges = [
            ("s".to_owned(), vec!["t".to_owned(), "u".to_owned()]),
            ("t".to_owned(), vec!["u".to_owned()]),
        ]
        .into();
        assert_eq!(
            super::test_only_in(&name_of, &edges),
            vec![("pto-server".to_owned(), "test-support".to_owned())]
        );
    }

    #[test]
    fn the_check_sees_the_adapters_dependencies() {
        // Guard against a check that cannot fail: the same walk from an adapter finds
        // forbidden crates.
        let out = std::process::Command::new(env!("CARGO"))
            .args([
                "tree",
                "-p",
                "persistence",
                "-e",
                "normal",
                "--prefix",
                "none",
                "--offline",
            ])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .output()
            .expect("cargo tree");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.lines().any(|l| l.starts_with("sea-orm ")),
            "persistence should depend on sea-orm"
        );
    }
}
