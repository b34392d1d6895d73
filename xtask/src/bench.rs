//! `cargo xtask bench`: the speed goals, measured (release builds). Results are
//! recorded in docs/benchmarks.md with the machine and date.

use std::process::Command;

use anyhow::bail;

fn run(name: &str, cmd: &mut Command) -> anyhow::Result<()> {
    println!("==> bench: {name}");
    let status = cmd.status()?;
    if !status.success() {
        bail!("bench {name} failed (a target was missed, or engines disagreed)");
    }
    Ok(())
}

pub fn run_all() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    run(
        "permission check vs casbin-rs and cedar-policy (writes benches/engine-peers/RESULTS.md)",
        Command::new(env!("CARGO")).current_dir(root).args([
            "run",
            "--release",
            "--manifest-path",
            "benches/engine-peers/Cargo.toml",
        ]),
    )?;
    run(
        "warm check through the permission cache",
        Command::new(env!("CARGO")).current_dir(root).args([
            "run",
            "--release",
            "-p",
            "permissions-cache",
            "--example",
            "warm_check",
        ]),
    )?;
    run(
        "HTTP check under load, cold checks, propagation between instances",
        Command::new(env!("CARGO")).current_dir(root).args([
            "run",
            "--release",
            "-p",
            "xtask",
            "--",
            "bench-http",
        ]),
    )?;
    println!("bench: copy the results into docs/benchmarks.md with the machine and date");
    Ok(())
}
