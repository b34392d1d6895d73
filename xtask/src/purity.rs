//! The domain crates must not depend (directly or transitively) on any framework,
//! database, cache or async-runtime crate. Checked from `cargo metadata`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};

/// The pure domain crates.
pub const DOMAIN_CRATES: &[&str] = &["tenancy", "permissions", "audit", "districts"];

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

/// Returns each violating (domain crate, forbidden dependency) pair.
pub fn violations() -> anyhow::Result<Vec<(String, String)>> {
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
