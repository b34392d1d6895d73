//! Examples for every operation of the OpenAPI document: each JSON request body and
//! each JSON success response gets an `example`. A type's own example (`#[schemars(example
//! = …)]`) is used where it has one — the request bodies users type by hand have
//! hand-written ones — and the rest is derived from the schema: properties filled
//! recursively, formats honoured (uuid, date-time, email), realistic values for the
//! fields this API uses everywhere (names, codes, permission keys).

use aide::openapi::{MediaType, OpenApi, Operation, ReferenceOr, StatusCode};
use indexmap::IndexMap;
use serde_json::{Map, Value, json};

/// Deepest nesting an example is derived to (schemas may be recursive).
const MAX_DEPTH: usize = 16;

/// Fills in the missing examples of every operation.
pub fn fill(api: &mut OpenApi) {
    let schemas: IndexMap<String, Value> = api
        .components
        .as_ref()
        .map(|c| {
            c.schemas
                .iter()
                .map(|(name, s)| (name.clone(), s.json_schema.as_value().clone()))
                .collect()
        })
        .unwrap_or_default();
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
            fill_operation(op, &schemas);
        }
    }
}

fn fill_operation(op: &mut Operation, schemas: &IndexMap<String, Value>) {
    if let Some(ReferenceOr::Item(body)) = op.request_body.as_mut() {
        for media in json_media(&mut body.content) {
            fill_media(media, schemas);
        }
    }
    if let Some(responses) = op.responses.as_mut() {
        for (status, response) in &mut responses.responses {
            let success = matches!(status, StatusCode::Code(c) if (200..300).contains(c));
            if let (true, ReferenceOr::Item(response)) = (success, response) {
                for media in json_media(&mut response.content) {
                    fill_media(media, schemas);
                }
            }
        }
    }
}

fn json_media(content: &mut IndexMap<String, MediaType>) -> impl Iterator<Item = &mut MediaType> {
    content
        .iter_mut()
        .filter(|(ct, _)| ct.starts_with("application/json"))
        .map(|(_, m)| m)
}

fn fill_media(media: &mut MediaType, schemas: &IndexMap<String, Value>) {
    if media.example.is_some() || !media.examples.is_empty() {
        return;
    }
    if let Some(schema) = &media.schema {
        media.example = Some(example(schema.json_schema.as_value(), schemas, None, 0));
    }
}

/// An example value of `schema`; `field` is the property it is for, if any.
#[must_use]
pub fn example(
    schema: &Value,
    schemas: &IndexMap<String, Value>,
    field: Option<&str>,
    depth: usize,
) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let Some(obj) = schema.as_object() else {
        return Value::Null;
    };
    if let Some(first) = obj
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    if let Some(v) = obj
        .get("example")
        .or_else(|| obj.get("default"))
        .filter(|v| !v.is_null())
    {
        return v.clone();
    }
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        return schemas
            .get(name)
            .map_or(Value::Null, |s| example(s, schemas, field, depth + 1));
    }
    if let Some(c) = obj.get("const") {
        return c.clone();
    }
    if let Some(first) = obj
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(variants) = obj.get(key).and_then(Value::as_array) {
            let chosen = variants
                .iter()
                .find(|v| v.get("type") != Some(&json!("null")))
                .or_else(|| variants.first());
            if let Some(v) = chosen {
                return example(v, schemas, field, depth + 1);
            }
        }
    }
    if let Some(parts) = obj.get("allOf").and_then(Value::as_array) {
        if let [only] = parts.as_slice() {
            return example(only, schemas, field, depth + 1);
        }
        let mut merged = Map::new();
        for part in parts {
            if let Value::Object(m) = example(part, schemas, field, depth + 1) {
                merged.extend(m);
            }
        }
        return Value::Object(merged);
    }
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if obj.contains_key("properties") => "object",
        _ => return Value::Null,
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    out.insert(name.clone(), example(prop, schemas, Some(name), depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => match obj.get("items") {
            Some(items) => json!([example(items, schemas, field, depth + 1)]),
            None => json!([]),
        },
        "string" => Value::String(string_example(
            field,
            obj.get("format").and_then(Value::as_str),
        )),
        "integer" => obj.get("minimum").and_then(Value::as_i64).map_or_else(
            || json!(integer_example(field)),
            |m| json!(m.max(integer_example(field))),
        ),
        "number" => json!(1.5),
        "boolean" => json!(true),
        _ => Value::Null,
    }
}

fn integer_example(field: Option<&str>) -> i64 {
    match field {
        Some("limit") => 50,
        Some("days") => 400,
        Some(f) if f.contains("version") => 3,
        Some(f) if f.ends_with("_seq") || f == "seq" => 42,
        _ => 1,
    }
}

fn string_example(field: Option<&str>, format: Option<&str>) -> String {
    match format {
        Some("uuid") => return "01935c7e-8f3a-7b2c-9d4e-5f6a7b8c9d0e".to_owned(),
        Some("date-time") => return "2026-09-01T15:30:00Z".to_owned(),
        Some("date") => return "2026-09-01".to_owned(),
        Some("email") => return "ana.garcia@example.org".to_owned(),
        Some("uri") => return "https://example.org/".to_owned(),
        _ => {}
    }
    let f = field.unwrap_or_default();
    let s = match f {
        "email" => "ana.garcia@example.org",
        "first_name" => "Ana",
        "last_name" => "García",
        "name" | "org_name" => "Sunset Elementary PTO",
        "code" => "SUNSET",
        "signup_code" => "SUNSET2024",
        "password" | "new_password" | "current_password" => "correct horse battery staple",
        "committee" => "Book Fair",
        "grade" => "3",
        "key" | "keys" | "permission" | "permissions" | "required_permission" => "events.create",
        "version" => "v2",
        "role" | "min_role" => "board_member",
        "status" => "active",
        "token" | "confirmation_token" => "En0KEwoEMTIzNBgDIgkKBwgKEgMYgAgSJAgAEiD…",
        "action" => "member.update",
        "message" => "the member changed since you read it",
        "hash" | "prev_hash" => "3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea",
        "ip" => "203.0.113.7",
        "user_agent" => "Mozilla/5.0",
        "request_id" => "01935c7e-8f3a-7b2c-9d4e-5f6a7b8c9d0f",
        "next_cursor" | "cursor" => "6a6f696e65647c617c30",
        "q" => "Jonh Smiht",
        "phone" => "+1 555 010 2030",
        _ if f.ends_with("_at") || f == "timestamp" => "2026-09-01T15:30:00Z",
        _ if f.ends_with("_id") || f == "id" => "01935c7e-8f3a-7b2c-9d4e-5f6a7b8c9d0e",
        _ => "string",
    };
    s.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_follow_refs_formats_and_fields() {
        let schemas: IndexMap<String, Value> = IndexMap::from([(
            "Child".to_owned(),
            json!({"type": "object", "properties": {"name": {"type": "string"}, "grade": {"type": ["string", "null"]}}}),
        )]);
        let schema = json!({
            "type": "object",
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "email": {"type": "string"},
                "version": {"type": "integer", "minimum": 0},
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Child"}},
                "role": {"oneOf": [{"type": "null"}, {"enum": ["admin", "volunteer"]}]},
                "given": {"type": "string", "examples": ["kept"]}
            }
        });
        let ex = example(&schema, &schemas, None, 0);
        assert_eq!(ex["id"], "01935c7e-8f3a-7b2c-9d4e-5f6a7b8c9d0e");
        assert_eq!(ex["email"], "ana.garcia@example.org");
        assert_eq!(ex["version"], 3);
        assert_eq!(
            ex["children"],
            json!([{"name": "Sunset Elementary PTO", "grade": "3"}])
        );
        assert_eq!(ex["role"], "admin");
        assert_eq!(ex["given"], "kept");
        let one_ref = json!({"allOf": [{"$ref": "#/components/schemas/Child"}], "default": null});
        assert_eq!(example(&one_ref, &schemas, None, 0)["grade"], "3");
    }

    #[test]
    fn recursion_is_bounded() {
        let schemas: IndexMap<String, Value> = IndexMap::from([(
            "Node".to_owned(),
            json!({"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}}),
        )]);
        let ex = example(
            &json!({"$ref": "#/components/schemas/Node"}),
            &schemas,
            None,
            0,
        );
        assert!(ex.is_object());
    }
}
