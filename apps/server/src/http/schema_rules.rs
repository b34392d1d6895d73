//! Rules every request obeys whatever its route, written into the OpenAPI document so
//! that generated clients and fuzzers know them (schemathesis's "accepts every
//! schema-valid request" check holds us to it).
//!
//! Today one rule: no control characters ([`tenancy::text::is_forbidden`]: Unicode `Cc`
//! less tab, LF and CR) in any string of a JSON request body or a query parameter — the
//! JSON scanner (`json_limits`) and the query parser (`extract`) refuse them with
//! `control_character`. Each free-text string (no `format`, `enum`, `const` or
//! `pattern` of its own) gets [`TEXT_PATTERN`].

use aide::openapi::{OpenApi, Parameter, ParameterSchemaOrContent, ReferenceOr};
use serde_json::Value;
use std::collections::BTreeSet;

/// The strings a request may carry: no Unicode `Cc` character but tab, LF and CR (an
/// ECMA-262 pattern, as JSON Schema takes).
pub const TEXT_PATTERN: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";

/// Writes the request rules into `api`'s request bodies, the component schemas they
/// reach, and query parameters.
pub fn apply(api: &mut OpenApi) {
    let mut reached = BTreeSet::new();
    let Some(paths) = api.paths.as_mut() else {
        return;
    };
    for (_, item) in &mut paths.paths {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            if let Some(ReferenceOr::Item(body)) = op.request_body.as_mut() {
                for (content_type, media) in &mut body.content {
                    if !content_type.starts_with("application/json") {
                        continue;
                    }
                    if let Some(object) = media
                        .schema
                        .as_mut()
                        .and_then(|s| s.json_schema.as_object_mut())
                    {
                        refs_in(&Value::Object(object.clone()), &mut reached);
                        mark_object(object);
                    }
                }
            }
            for parameter in &mut op.parameters {
                let ReferenceOr::Item(Parameter::Query { parameter_data, .. }) = parameter else {
                    continue;
                };
                if let ParameterSchemaOrContent::Schema(schema) = &mut parameter_data.format
                    && let Some(object) = schema.json_schema.as_object_mut()
                {
                    mark_object(object);
                }
            }
        }
    }
    let Some(components) = api.components.as_mut() else {
        return;
    };
    // Close over references between components.
    let mut pending: Vec<String> = reached.iter().cloned().collect();
    while let Some(name) = pending.pop() {
        if let Some(schema) = components.schemas.get(&name) {
            let mut more = BTreeSet::new();
            refs_in(schema.json_schema.as_value(), &mut more);
            for m in more {
                if reached.insert(m.clone()) {
                    pending.push(m);
                }
            }
        }
    }
    for name in &reached {
        if let Some(schema) = components.schemas.get_mut(name)
            && let Some(object) = schema.json_schema.as_object_mut()
        {
            mark_object(object);
        }
    }
}

/// [`mark_text`] on a schema held as a JSON object.
fn mark_object(object: &mut serde_json::Map<String, Value>) {
    let mut v = Value::Object(std::mem::take(object));
    mark_text(&mut v);
    if let Value::Object(o) = v {
        *object = o;
    }
}

/// The component names `v` refers to.
fn refs_in(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            if let Some(r) = o.get("$ref").and_then(Value::as_str)
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                out.insert(name.to_owned());
            }
            o.values().for_each(|x| refs_in(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs_in(x, out)),
        _ => {}
    }
}

/// Adds [`TEXT_PATTERN`] to every free-text string schema in `v` (not through `$ref`s:
/// [`apply`] visits each reached component once).
fn mark_text(v: &mut Value) {
    let Value::Object(o) = v else {
        return;
    };
    if o.contains_key("$ref") {
        return;
    }
    let is_string = match o.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    let constrained = ["format", "enum", "const", "pattern", "contentEncoding"]
        .iter()
        .any(|k| o.contains_key(*k));
    if is_string && !constrained {
        o.insert("pattern".to_owned(), Value::String(TEXT_PATTERN.to_owned()));
    }
    if let Some(Value::Object(props)) = o.get_mut("properties") {
        props.values_mut().for_each(mark_text);
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(inner) = o.get_mut(key) {
            mark_text(inner);
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(all)) = o.get_mut(key) {
            all.iter_mut().for_each(mark_text);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    /// The characters [`TEXT_PATTERN`]'s class excludes, read from its `\uXXXX` ranges.
    fn excluded() -> Vec<(u32, u32)> {
        let class = TEXT_PATTERN
            .trim_start_matches("^[^")
            .trim_end_matches("]*$");
        let points: Vec<u32> = class
            .split("\\u")
            .filter(|s| !s.is_empty())
            .map(|s| u32::from_str_radix(s.trim_end_matches('-'), 16).unwrap())
            .collect();
        let mut ranges = Vec::new();
        let mut parts = class.split("\\u").filter(|s| !s.is_empty()).zip(points);
        while let Some((text, start)) = parts.next() {
            if text.ends_with('-') {
                let (_, end) = parts.next().unwrap();
                ranges.push((start, end));
            } else {
                ranges.push((start, start));
            }
        }
        ranges
    }

    #[test]
    fn the_pattern_excludes_exactly_what_requests_refuse() {
        let ranges = excluded();
        for c in (0..=0x2FFFu32).filter_map(char::from_u32) {
            let in_pattern = ranges.iter().any(|&(a, b)| (a..=b).contains(&u32::from(c)));
            assert_eq!(
                in_pattern,
                tenancy::text::is_forbidden(c),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn free_text_gets_the_pattern_and_typed_strings_do_not() {
        let mut schema = serde_json::json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 10},
                "note": {"type": ["string", "null"]},
                "id": {"type": "string", "format": "uuid"},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "role": {"anyOf": [{"type": "string"}, {"$ref": "#/components/schemas/R"}]},
                "n": {"type": "integer"}
            }
        });
        mark_text(&mut schema);
        let p = &schema["properties"];
        for marked in [
            &p["name"],
            &p["note"],
            &p["tags"]["items"],
            &p["role"]["anyOf"][0],
        ] {
            assert_eq!(marked["pattern"], TEXT_PATTERN, "{marked}");
        }
        for plain in [&p["id"], &p["kind"], &p["n"], &p["role"]["anyOf"][1]] {
            assert!(plain.get("pattern").is_none(), "{plain}");
        }
        let mut refs = BTreeSet::new();
        refs_in(&schema, &mut refs);
        assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["R"]);
    }
}
