//! Loads a hierarchy (district, school and org settings, members with roles and grants) from
//! a JSON file and answers checks, with an explanation for each.
//!
//! ```text
//! cargo run -p permissions --example check_from_json -- [FILE.json] [MEMBER:KEY ...]
//! ```
//!
//! Without a file, the bundled `examples/hierarchy.json` is used; without queries, a default
//! set that shows locks, custom roles, grants and suspension.

#![allow(clippy::print_stdout, reason = "example CLI output")]

use std::error::Error;
use std::fs;

use permissions::{
    CompiledOrg, MemberContext, OrgChain, PermissionKey, ScopeRef, check, explain, org_matrix,
};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hierarchy.json");

const DEFAULT_QUERIES: [&str; 7] = [
    "carol:budget.approve",
    "alice:events.create",
    "dave:events.create",
    "dave:documents.upload",
    "erin:documents.delete",
    "bob:communications.view",
    "carol:communications.send",
];

/// The input file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hierarchy {
    /// The time checks are evaluated at (RFC 3339); the current time when absent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    now: Option<OffsetDateTime>,
    /// The org and the settings of its district, school and itself.
    chain: OrgChain,
    /// The org's members, with a name to refer to them on the command line.
    members: Vec<NamedMember>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedMember {
    name: String,
    member: MemberContext,
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let path = args
        .next_if(|arg| arg.ends_with(".json"))
        .unwrap_or_else(|| BUNDLED.to_owned());
    let mut queries: Vec<String> = args.collect();
    if queries.is_empty() {
        queries = DEFAULT_QUERIES.map(str::to_owned).to_vec();
    }

    let hierarchy: Hierarchy = serde_json::from_str(&fs::read_to_string(&path)?)
        .map_err(|error| format!("{path}: {error}"))?;
    let now = hierarchy.now.unwrap_or_else(OffsetDateTime::now_utc);
    let org = CompiledOrg::compile(&hierarchy.chain, 1);

    println!("Org {} (from {path})", org.org_id());
    println!("\nSettings that differ from the platform default:");
    for row in org_matrix(&org) {
        if row.source != ScopeRef::Platform {
            let locked = row
                .locked_by
                .map(|scope| format!(", locked by {scope}"))
                .unwrap_or_default();
            println!(
                "  {:<26} min {:<14} {:<8} from {}{locked}",
                row.key.as_str(),
                row.min_role.as_str(),
                if row.enabled { "enabled" } else { "DISABLED" },
                row.source,
            );
        }
    }

    println!("\nChecks at {}:", now.format(&Rfc3339)?);
    let mut explained = Vec::new();
    for query in &queries {
        let (name, key) = query
            .split_once(':')
            .ok_or_else(|| format!("query `{query}` is not MEMBER:KEY"))?;
        let key: PermissionKey = key.parse()?;
        let member = &hierarchy
            .members
            .iter()
            .find(|named| named.name == name)
            .ok_or_else(|| format!("no member named `{name}`"))?
            .member;
        let allowed = check(&org, member, key, now);
        println!(
            "  {name:<6} {key:<26} {}",
            if allowed { "ALLOW" } else { "deny" }
        );
        explained.push((name, explain(&hierarchy.chain, member, key, now)));
    }

    for (name, explanation) in explained {
        println!(
            "\nExplain {name} / {}: {}",
            explanation.key,
            if explanation.allowed {
                "allowed"
            } else {
                "denied"
            }
        );
        for step in &explanation.steps {
            println!("  {}", serde_json::to_string(step)?);
        }
    }
    Ok(())
}
