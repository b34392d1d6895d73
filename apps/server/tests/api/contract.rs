//! The contract of `../shared/spec/api.md` ("One shape for everything"), checked over
//! the committed OpenAPI document (`docs/openapi.json`; that it matches the code is
//! `docs::served_document_matches_committed`), for every operation under `/api/`, so a
//! new route cannot break it:
//! - a create (a `POST` to a collection that is listed by a `GET` on the same path, or
//!   named `create_*`/`add_*`/`register`/`join_*`) answers 201, documents a `Location`
//!   header on it, and no 200; any 201 documents `Location`, takes an
//!   `Idempotency-Key` header and documents its 409 (`IDEMPOTENCY_KEY_IN_USE`) and 422
//!   (`IDEMPOTENCY_KEY_REUSED`);
//! - a `GET` whose 200 `data` is an array documents `meta.pagination` as required and
//!   takes `limit` and `cursor`;
//! - a `PATCH` or `PUT` takes `If-Match` and documents 428 and 412;
//! - every operation documents a 4xx, and every 4xx/5xx it documents is the error
//!   envelope.
//!
//! Exceptions are listed below, each with its reason; keep them few.

use std::collections::BTreeSet;

use serde_json::Value;

/// Creates that keep another answer: (operation id, why).
/// None today: a new one needs a 201 with its resource's `Location` instead.
const CREATE_EXCEPTIONS: &[(&str, &str)] = &[];

/// Writes without a version: (operation id, why). None today: a new one needs a version
/// on its resource instead.
const VERSION_EXCEPTIONS: &[(&str, &str)] = &[];

fn document() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.json"
    ))
    .expect("docs/openapi.json exists (run `cargo xtask openapi`)");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

/// The schema `s` points at (following `$ref`s into the components, and the
/// one-element `allOf` a described reference is wrapped in).
fn resolve<'a>(doc: &'a Value, mut s: &'a Value) -> &'a Value {
    loop {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or_default();
            s = &doc["components"]["schemas"][name];
        } else if let Some([only]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            s = only;
        } else {
            return s;
        }
    }
}

/// The JSON schema of an operation's response `status`, if it has one.
fn response_schema<'a>(doc: &'a Value, op: &'a Value, status: &str) -> Option<&'a Value> {
    op["responses"][status]["content"]["application/json"]
        .get("schema")
        .map(|s| resolve(doc, s))
}

/// Whether the 200 `data` of `op` is an array.
fn answers_a_list(doc: &Value, op: &Value) -> bool {
    response_schema(doc, op, "200")
        .map(|s| resolve(doc, &s["properties"]["data"]))
        .is_some_and(|data| data["type"] == "array")
}

fn parameter_names(op: &Value, location: &str) -> BTreeSet<String> {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == location)
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

fn excepted(list: &[(&str, &str)], id: &str) -> bool {
    list.iter().any(|(name, _)| *name == id)
}

/// Every API operation: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/") {
            continue;
        }
        for (method, op) in item.as_object().expect("path item") {
            out.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    out
}

#[test]
fn every_operation_keeps_one_shape() {
    let doc = document();
    let mut broken = Vec::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        let at = format!("{method} {path} ({id})");
        let responses = op["responses"].as_object().cloned().unwrap_or_default();

        // Creates: 201 + Location.
        let listed_here = doc["paths"][&path]["get"]
            .as_object()
            .is_some_and(|get| answers_a_list(&doc, &Value::Object(get.clone())));
        let named_create = ["create_", "add_", "join_"]
            .iter()
            .any(|p| id.starts_with(p))
            || id == "register";
        let is_create = method == "POST" && (listed_here || named_create);
        if is_create && !excepted(CREATE_EXCEPTIONS, &id) {
            if !responses.contains_key("201") {
                broken.push(format!("{at}: a create without 201"));
            }
            if responses.contains_key("200") {
                broken.push(format!("{at}: a create answering 200"));
            }
        }
        if responses.contains_key("201")
            && op["responses"]["201"]["headers"].get("Location").is_none()
        {
            broken.push(format!("{at}: 201 without a documented Location header"));
        }
        if responses.contains_key("201") {
            if !parameter_names(&op, "header").contains("Idempotency-Key") {
                broken.push(format!("{at}: a create without the Idempotency-Key header"));
            }
            for (status, code) in [
                ("409", "IDEMPOTENCY_KEY_IN_USE"),
                ("422", "IDEMPOTENCY_KEY_REUSED"),
            ] {
                let documented = op["responses"][status]["description"]
                    .as_str()
                    .is_some_and(|d| d.contains(code));
                if !documented {
                    broken.push(format!("{at}: a create without {status} {code}"));
                }
            }
        }

        // Lists: meta.pagination required, limit and cursor taken.
        if method == "GET" && answers_a_list(&doc, &op) {
            let meta = response_schema(&doc, &op, "200")
                .map(|s| resolve(&doc, &s["properties"]["meta"]))
                .cloned()
                .unwrap_or_default();
            let required: Vec<&str> = meta["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !required.contains(&"pagination") {
                broken.push(format!("{at}: a list without meta.pagination"));
            }
            let query = parameter_names(&op, "query");
            for name in ["limit", "cursor"] {
                if !query.contains(name) {
                    broken.push(format!("{at}: a list without `{name}`"));
                }
            }
        }

        // One resource: its GET carries an ETag and honours If-None-Match (304); so does
        // the GET of whatever a PUT/PATCH changes.
        let single_get = method == "GET"
            && path.ends_with('}')
            && response_schema(&doc, &op, "200").is_some()
            && !answers_a_list(&doc, &op);
        let written_get = (method == "PATCH" || method == "PUT")
            && doc["paths"][&path]["get"]
                .as_object()
                .is_some_and(|get| !answers_a_list(&doc, &Value::Object(get.clone())));
        for (get_at, get) in [
            (single_get, op.clone()),
            (written_get, doc["paths"][&path]["get"].clone()),
        ]
        .into_iter()
        .filter(|(applies, _)| *applies)
        .map(|(_, get)| (format!("GET {path}"), get))
        {
            if get["responses"]["200"]["headers"].get("ETag").is_none() {
                broken.push(format!("{get_at}: one resource without an ETag"));
            }
            if get["responses"].get("304").is_none() {
                broken.push(format!("{get_at}: one resource without 304"));
            }
        }

        // Versioned writes: If-Match, 428, 412.
        if (method == "PATCH" || method == "PUT") && !excepted(VERSION_EXCEPTIONS, &id) {
            if !parameter_names(&op, "header").contains("If-Match") {
                broken.push(format!("{at}: a write without If-Match"));
            }
            for status in ["428", "412"] {
                if !responses.contains_key(status) {
                    broken.push(format!("{at}: a write without {status}"));
                }
            }
        }

        // Errors: at least one 4xx, each error response the error envelope.
        if !responses.keys().any(|s| s.starts_with('4')) {
            broken.push(format!("{at}: no 4xx documented"));
        }
        for (status, _) in responses
            .iter()
            .filter(|(s, _)| !s.starts_with('2') && !s.starts_with('3'))
        {
            let envelope = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .is_some_and(|r| r.ends_with("/ErrorEnvelope"));
            if !envelope {
                broken.push(format!("{at}: {status} is not the error envelope"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} contract breaks:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

/// The allow-lists name operations that exist and still need them.
#[test]
fn the_exceptions_are_current() {
    let doc = document();
    let ops = operations(&doc);
    for (id, why) in CREATE_EXCEPTIONS.iter().chain(VERSION_EXCEPTIONS) {
        assert!(!why.is_empty());
        let op = ops
            .iter()
            .find(|(_, _, op)| op["operationId"] == *id)
            .map(|(_, _, op)| op)
            .unwrap_or_else(|| panic!("{id}: no such operation; drop its exception"));
        if excepted(CREATE_EXCEPTIONS, id) {
            assert!(
                op["responses"].get("201").is_none(),
                "{id} answers 201 now; drop its exception"
            );
        } else {
            assert!(
                op["responses"].get("428").is_none(),
                "{id} documents 428 now; drop its exception"
            );
        }
    }
}
