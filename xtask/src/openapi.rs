//! `cargo xtask openapi [--check]`: docs/openapi.json is generated from the route
//! table, never written by hand, and so is the TypeScript client's schema
//! (`clients/typescript/src/schema.ts`, by openapi-typescript from that document);
//! `--check` fails when either committed file is stale.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The committed document's path.
pub fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

/// The TypeScript client's package directory.
fn client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../clients/typescript")
}

/// The client's committed schema, generated from docs/openapi.json.
fn client_schema_path() -> PathBuf {
    client_dir().join("src/schema.ts")
}

/// The document as generated from the code, pretty-printed with a final newline.
pub fn generate() -> anyhow::Result<String> {
    let api = pto_server::routes::api();
    let mut text = serde_json::to_string_pretty(api.document().as_ref())?;
    text.push('\n');
    Ok(text)
}

pub fn run(check: bool) -> anyhow::Result<()> {
    sync(&path(), &generate()?, check, "")?;
    client(check)
}

/// Writes `fresh` to `path`, or with `check` fails when the committed file differs.
fn sync(path: &Path, fresh: &str, check: bool, relative_to: &str) -> anyhow::Result<()> {
    if check {
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if committed != fresh {
            bail!(
                "{} is stale{relative_to}: run `cargo xtask openapi` and commit the result",
                path.display()
            );
        }
        println!("openapi: {} is up to date", path.display());
    } else {
        std::fs::write(path, fresh).with_context(|| format!("writing {}", path.display()))?;
        println!("openapi: wrote {}", path.display());
    }
    Ok(())
}

/// Regenerates (or, with `check`, compares) the TypeScript client's schema from the
/// committed document. Needs Node and npm: without them the client is skipped with a
/// warning, except under `CI=true`, where that is a failure.
fn client(check: bool) -> anyhow::Result<()> {
    let schema = client_schema_path();
    if !node_tools_present() {
        if std::env::var("CI").as_deref() == Ok("true") {
            bail!(
                "node and npm are required under CI=true to generate and check {}",
                schema.display()
            );
        }
        println!(
            "WARNING: node/npm not found: {} NOT {} (install Node 20 and npm; required under CI=true)",
            schema.display(),
            if check { "checked" } else { "regenerated" }
        );
        return Ok(());
    }
    let dir = client_dir();
    install_client_dependencies(&dir)?;
    let fresh = generate_client_schema(&dir)?;
    sync(&schema, &fresh, check, " relative to docs/openapi.json")
}

/// Whether `node` and `npm` both run.
fn node_tools_present() -> bool {
    ["node", "npm"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// `npm ci` in the client's directory when its dependencies are missing or older than
/// its `package-lock.json`.
fn install_client_dependencies(dir: &Path) -> anyhow::Result<()> {
    let installed = dir.join("node_modules/.package-lock.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let up_to_date = dir.join("node_modules/.bin/openapi-typescript").exists()
        && matches!(
            (modified(&installed), modified(&dir.join("package-lock.json"))),
            (Some(have), Some(want)) if have >= want
        );
    if up_to_date {
        return Ok(());
    }
    println!("openapi: installing the client's dependencies (npm ci)");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .context("running npm ci")?;
    if !status.success() {
        bail!("`npm ci` failed in {}", dir.display());
    }
    Ok(())
}

/// The schema openapi-typescript makes of docs/openapi.json (the package's
/// `generate:stdout` script, so the command line lives in one place).
fn generate_client_schema(dir: &Path) -> anyhow::Result<String> {
    let out = Command::new("npm")
        .args(["run", "--silent", "generate:stdout"])
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .context("running openapi-typescript")?;
    if !out.status.success() {
        bail!("openapi-typescript failed ({})", out.status);
    }
    let text = String::from_utf8(out.stdout).context("openapi-typescript wrote non-UTF-8")?;
    if !text.contains("export interface paths") {
        bail!("openapi-typescript produced no `paths` interface:\n{text}");
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_document_is_fresh() {
        let fresh = super::generate().expect("generate");
        let committed = std::fs::read_to_string(super::path()).expect("docs/openapi.json exists");
        assert!(
            committed == fresh,
            "docs/openapi.json is stale: run `cargo xtask openapi`"
        );
    }
}
