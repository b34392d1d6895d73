//! Every numeric bound garde enforces on a request field is also written into the
//! OpenAPI document, so a generated client or a fuzzer never sends a schema-valid value
//! we refuse. schemars reads a field's own `#[garde(range(..))]`, but not a range inside
//! `inner(..)` (an `Option`'s or a list's items): those need `#[schemars(range(..))]`
//! beside them. Schemathesis found the first such gap (`limit=24055109`); this test finds
//! the next one when it is written instead of by chance.
//!
//! The check reads the server's own source: for each field of a type deriving
//! `JsonSchema`, the `range(..)` bounds inside a garde `inner(..)` must equal those of
//! its schemars attribute.

use std::path::{Path, PathBuf};

/// One field whose garde range has no matching schemars range.
#[derive(Debug, PartialEq, Eq)]
struct Gap {
    file: String,
    line: usize,
    garde: Vec<String>,
    schemars: Vec<String>,
}

/// The bounds inside each `range(..)` of `attribute`, whitespace and digit separators
/// dropped (`min=1,max=36500`).
fn ranges(attribute: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = attribute;
    while let Some(at) = rest.find("range(") {
        let after = &rest[at + "range(".len()..];
        let end = after.find(')').unwrap_or(after.len());
        found.push(
            after[..end]
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '_')
                .collect(),
        );
        rest = &after[end..];
    }
    found
}

/// The gaps in one source text: fields of `JsonSchema` types whose garde ranges inside
/// `inner(..)` differ from their schemars ranges. Also returns how many such ranges it
/// saw.
fn gaps_in(file: &str, source: &str) -> (Vec<Gap>, usize) {
    let mut gaps = Vec::new();
    let mut seen = 0;
    let mut documented = false;
    let mut attributes: Vec<String> = Vec::new();
    let mut open: Option<String> = None;
    for (index, line) in source.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(text) = open.as_mut() {
            text.push_str(trimmed);
            if balanced(text) {
                attributes.extend(open.take());
            }
            continue;
        }
        if trimmed.starts_with("#[") {
            if trimmed.starts_with("#[derive(") {
                documented = trimmed.contains("JsonSchema");
            }
            let text = trimmed.to_owned();
            if balanced(&text) {
                attributes.push(text);
            } else {
                open = Some(text);
            }
            continue;
        }
        if trimmed.starts_with("///") || trimmed.starts_with("//") {
            continue;
        }
        let garde: Vec<String> = attributes
            .iter()
            .filter(|a| a.starts_with("#[garde(") && a.contains("inner("))
            .flat_map(|a| ranges(a))
            .collect();
        let schemars: Vec<String> = attributes
            .iter()
            .filter(|a| a.starts_with("#[schemars("))
            .flat_map(|a| ranges(a))
            .collect();
        attributes.clear();
        if documented && !garde.is_empty() {
            seen += garde.len();
            if garde != schemars {
                gaps.push(Gap {
                    file: file.to_owned(),
                    line: index + 1,
                    garde,
                    schemars,
                });
            }
        }
    }
    (gaps, seen)
}

/// Whether `text` closes every bracket it opens.
fn balanced(text: &str) -> bool {
    let opened = text.chars().filter(|c| matches!(c, '(' | '[')).count();
    let closed = text.chars().filter(|c| matches!(c, ')' | ']')).count();
    opened == closed
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_garde_range_on_a_documented_field_is_in_the_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut gaps = Vec::new();
    let mut seen = 0;
    // This file's own samples are gaps on purpose.
    for path in files
        .into_iter()
        .filter(|p| !p.ends_with("http/garde_bounds.rs"))
    {
        let source = std::fs::read_to_string(&path).expect("the server's source is readable");
        let (found, count) = gaps_in(&path.display().to_string(), &source);
        gaps.extend(found);
        seen += count;
    }
    assert!(
        seen >= 14,
        "the scan saw only {seen} inner garde ranges; is it still reading the routes?"
    );
    assert!(
        gaps.is_empty(),
        "garde `inner(range(..))` bounds missing from the schema: {gaps:#?}"
    );
}

#[test]
fn a_field_with_a_garde_range_and_no_schema_bound_is_a_gap() {
    let source = r#"
#[derive(Debug, Deserialize, JsonSchema, Validate)]
pub struct Body {
    /// Days (schemars reads this one itself).
    #[garde(range(min = 1, max = 36_500))]
    pub days: u32,
    #[garde(inner(range(min = 1, max = 36_500)))]
    pub every: Option<u32>,
    #[garde(
        inner(range(min = 1, max = 200))
    )]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
    #[garde(inner(range(min = 0)))]
    #[schemars(range(min = 1))]
    pub version: Option<i64>,
}
#[derive(Debug, Deserialize, Validate)]
struct Private {
    #[garde(inner(range(max = 10)))]
    count: Option<u8>,
}
"#;
    let (gaps, seen) = gaps_in("body.rs", source);
    assert_eq!(
        seen, 3,
        "plain ranges and the undocumented type are not counted"
    );
    assert_eq!(
        gaps,
        vec![
            Gap {
                file: "body.rs".into(),
                line: 8,
                garde: vec!["min=1,max=36500".into()],
                schemars: vec![],
            },
            Gap {
                file: "body.rs".into(),
                line: 16,
                garde: vec!["min=0".into()],
                schemars: vec!["min=1".into()],
            },
        ]
    );
}
