//! `cargo xtask openapi [--check]`: docs/openapi.json is generated from the route
//! table, never written by hand; `--check` fails when the committed file is stale.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// The committed document's path.
pub fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

/// The document as generated from the code, pretty-printed with a final newline.
pub fn generate() -> anyhow::Result<String> {
    let api = pto_server::routes::api();
    let mut text = serde_json::to_string_pretty(api.document().as_ref())?;
    text.push('\n');
    Ok(text)
}

pub fn run(check: bool) -> anyhow::Result<()> {
    let fresh = generate()?;
    let path = path();
    if check {
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != fresh {
            bail!(
                "{} is stale: run `cargo xtask openapi` and commit the result",
                path.display()
            );
        }
        println!("openapi: {} is up to date", path.display());
    } else {
        std::fs::write(&path, fresh).with_context(|| format!("writing {}", path.display()))?;
        println!("openapi: wrote {}", path.display());
    }
    Ok(())
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
