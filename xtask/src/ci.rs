//! `cargo xtask test` and `cargo xtask lint` (together: `cargo xtask ci`).

use std::process::Command;
use std::time::Instant;

use anyhow::bail;

fn cargo() -> Command {
    crate::cargo()
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn step(name: &str, cmd: &mut Command) -> anyhow::Result<()> {
    let start = Instant::now();
    println!("==> {name}");
    let status = cmd.status()?;
    println!(
        "<== {name}: {} in {:.1}s",
        if status.success() { "ok" } else { "FAILED" },
        start.elapsed().as_secs_f64()
    );
    if !status.success() {
        bail!("{name} failed");
    }
    Ok(())
}

/// The backends the API tests will run against, from the environment.
fn backends() -> String {
    let mut list = vec!["sqlite"];
    if std::env::var_os("TEST_DATABASE_URL").is_some() {
        list.push("postgres");
    }
    let redis = if std::env::var_os("TEST_REDIS_URL").is_some() {
        " (+redis)"
    } else {
        ""
    };
    format!("{}{redis}", list.join(", "))
}

pub fn test() -> anyhow::Result<()> {
    println!("test: API backends: {}", backends());
    if has_nextest() {
        step(
            "tests (nextest)",
            cargo().args(["nextest", "run", "--workspace", "--no-fail-fast"]),
        )?;
        step("doc tests", cargo().args(["test", "--workspace", "--doc"]))?;
    } else {
        step(
            "tests (cargo test)",
            cargo().args(["test", "--workspace", "--no-fail-fast"]),
        )?;
    }
    println!("test: done; API backends exercised: {}", backends());
    Ok(())
}

/// `cargo deny check` on the policy in `deny.toml`: bans (the layering), licenses and
/// sources; any error fails the lint. The advisories check is not run: its database is
/// fetched from GitHub, which this project's machines cannot reach (docs/decisions.md,
/// "Hygiene: dependencies as the architecture says"). Missing cargo-deny fails under
/// `CI=true` (`.ci/run` installs it) and is skipped with a warning elsewhere.
fn deny() -> anyhow::Result<()> {
    let installed = cargo()
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return step(
            "cargo-deny",
            cargo()
                .args(["deny", "--locked", "check", "bans", "licenses", "sources"])
                // deny.toml is read from the working directory: the workspace root.
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
        );
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        bail!(
            "cargo-deny is not installed (required under CI=true): `cargo install cargo-deny --locked`"
        );
    }
    println!(
        "WARNING: cargo-deny not installed: dependency policy NOT checked \
         (install with `cargo install cargo-deny --locked`; required under CI=true)"
    );
    Ok(())
}

pub fn lint() -> anyhow::Result<()> {
    step("fmt", cargo().args(["fmt", "--all", "--check"]))?;
    step(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    crate::purity::run()?;
    crate::modgraph::run()?;
    deny()?;
    crate::monitoring::run()?;
    crate::openapi::run(true)
}
