//! The search answered from the in-process index (`pto_server::search_index`): typos
//! (transpositions), any script, highlights, and a write found by the next search — on
//! the writing instance at once, on another instance (sharing Redis) within a second.

use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::test;
use pto_server::startup::app;

use crate::backend_tests;
use crate::directory::{ids, join_as, new_org};
use crate::helpers::{TestContext, send};

backend_tests!(
    search_finds_transposed_typos_and_cjk_names_with_highlights,
    members_added_renamed_and_removed_are_replaced_in_the_kept_index,
    a_write_on_one_instance_is_found_on_another_within_a_second,
    hidden_members_and_fields_neither_match_nor_leak_through_suggestions_or_facets,
    every_typo_kind_prefix_order_other_scripts_facets_filters_and_paging,
);

fn search(org: &str, q: &str) -> String {
    format!("/api/v2/orgs/{org}/users/search?q={}", urlencoding(q))
}

/// Percent-encodes a query value (UTF-8 bytes outside the unreserved set).
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn search_finds_transposed_typos_and_cjk_names_with_highlights(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = new_org(&app, "ms-admin@example.org", "MSTYPO").await;
    let (james, member) = join_as(&app, "MSTYPO", "James", "Jones", "jj@example.org").await;
    let (li, _) = join_as(&app, "MSTYPO", "小龙", "李", "bruce@example.org").await;
    let (_other, _) = join_as(&app, "MSTYPO", "Mary", "Major", "mm@example.org").await;

    for token in [&admin, &member] {
        let (status, body) = send(
            &app,
            Method::GET,
            &search(&org, "Jmaes Ojnes"),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            ids(body["data"].as_array().unwrap()).first(),
            Some(&james),
            "{body}"
        );
        let (status, body) = send(
            &app,
            Method::GET,
            &search(&org, "李小龙"),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            ids(body["data"].as_array().unwrap()),
            vec![li.clone()],
            "{body}"
        );
    }
    // Highlights: the matched characters of the shown field.
    let (_, body) = send(&app, Method::GET, &search(&org, "jone"), Some(&admin), None).await;
    let hit = &body["data"][0];
    assert_eq!(hit["user_id"].as_str(), Some(james.as_str()), "{body}");
    assert_eq!(
        hit["highlights"],
        serde_json::json!([{"field": "last_name", "ranges": [[0, 4]]}]),
        "{body}"
    );
    assert_eq!(body["meta"]["pagination"]["total"], 1, "{body}");
}

async fn members_added_renamed_and_removed_are_replaced_in_the_kept_index(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = new_org(&app, "ms-inv@example.org", "MSINVAL").await;
    let (_, _) = join_as(&app, "MSINVAL", "Ada", "Lovelace", "ada@example.org").await;
    // The org's index is built by this search …
    let (_, body) = send(
        &app,
        Method::GET,
        &search(&org, "Hopper"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(0), "{body}");
    // /metrics shows it kept, with its size.
    let metrics = crate::observability::scrape(&app).await;
    let series = |text: &str, name: &str| crate::observability::series(text, name);
    assert_eq!(
        series(&metrics, "ptoc_search_indexes"),
        Some(1.0),
        "{metrics}"
    );
    let bytes = series(&metrics, "ptoc_search_index_bytes").unwrap();
    assert!(
        bytes > 0.0 && bytes <= series(&metrics, "ptoc_search_index_budget_bytes").unwrap(),
        "{metrics}"
    );
    // … and kept through the join's commit: the new member is added in place.
    let (grace, _) = join_as(&app, "MSINVAL", "Grace", "Hopper", "grace@example.org").await;
    let metrics = crate::observability::scrape(&app).await;
    assert_eq!(
        series(&metrics, "ptoc_search_indexes"),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        series(&metrics, "ptoc_search_document_bytes").unwrap() > 0.0,
        "{metrics}"
    );
    let found = |q: &'static str| {
        let (app, org, admin) = (&app, &org, &admin);
        async move {
            let (status, body) = send(app, Method::GET, &search(org, q), Some(admin), None).await;
            assert_eq!(status, 200, "{q}: {body}");
            ids(body["data"].as_array().unwrap())
        }
    };
    assert_eq!(found("Hoppr").await, vec![grace.clone()]);
    // Renamed: found by the new name only (the profile change replaces her in place).
    let users = format!("/api/v2/orgs/{org}/users/{grace}");
    let (status, body) = crate::helpers::patch_current(
        &app,
        &users,
        Some(&admin),
        Some(serde_json::json!({"last_name": "Brewster"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(found("Brewstr").await, vec![grace.clone()]);
    assert!(found("Hopper").await.is_empty());
    // Removed: found no more; the index was never rebuilt (still one kept).
    let (status, _) = send(&app, Method::DELETE, &users, Some(&admin), None).await;
    assert_eq!(status, 204);
    assert!(found("Brewster").await.is_empty());
    assert_eq!(found("Lovelace").await.len(), 1);
    let metrics = crate::observability::scrape(&app).await;
    assert_eq!(
        series(&metrics, "ptoc_search_indexes"),
        Some(1.0),
        "{metrics}"
    );
}

async fn a_write_on_one_instance_is_found_on_another_within_a_second(ctx: TestContext) {
    let shared = ctx.settings.redis_url.is_some();
    let b_state = ctx.another_instance().await;
    let a = test::init_service(app(ctx.state.clone(), ctx.api.clone())).await;
    let b = test::init_service(app(b_state.clone(), ctx.api.clone())).await;
    let (org, _, admin) = new_org(&a, "ms-two@example.org", "MSTWO").await;
    let (_, _) = join_as(&a, "MSTWO", "Ada", "Lovelace", "ada2@example.org").await;
    // B builds and keeps the org's index.
    let (status, body) = send(
        &b,
        Method::GET,
        &search(&org, "Lovelace"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{body}");
    let (grace, _) = join_as(&a, "MSTWO", "Grace", "Hopper", "grace2@example.org").await;
    if !shared {
        // Without Redis the instances share no bus: only the writer is checked.
        let (_, body) = send(&a, Method::GET, &search(&org, "Hopper"), Some(&admin), None).await;
        assert_eq!(ids(body["data"].as_array().unwrap()), vec![grace], "{body}");
        return;
    }
    let start = Instant::now();
    loop {
        let (_, body) = send(&b, Method::GET, &search(&org, "Hopper"), Some(&admin), None).await;
        if ids(body["data"].as_array().unwrap()) == vec![grace.clone()] {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "not found on the other instance within 1 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A rename on A replaces her in B's kept index too.
    let (status, body) = crate::helpers::patch_current(
        &a,
        &format!("/api/v2/orgs/{org}/users/{grace}"),
        Some(&admin),
        Some(serde_json::json!({"last_name": "Brewster"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let start = Instant::now();
    loop {
        let (_, renamed) = send(
            &b,
            Method::GET,
            &search(&org, "Brewster"),
            Some(&admin),
            None,
        )
        .await;
        let (_, old) = send(&b, Method::GET, &search(&org, "Hopper"), Some(&admin), None).await;
        if ids(renamed["data"].as_array().unwrap()) == vec![grace.clone()]
            && old["data"].as_array().is_some_and(Vec::is_empty)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the rename did not reach the other instance within 1 s: {renamed} {old}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn hidden_members_and_fields_neither_match_nor_leak_through_suggestions_or_facets(
    ctx: TestContext,
) {
    let app = ctx.service().await;
    let (org, _, admin) = new_org(&app, "ms-priv@example.org", "MSPRIV").await;
    let (_, vol) = join_as(&app, "MSPRIV", "Vera", "Volunteer", "vera@example.org").await;
    let (rosa, rosa_token) = join_as(&app, "MSPRIV", "Rosa", "Quintero", "rosa@example.org").await;
    let (otto, otto_token) =
        join_as(&app, "MSPRIV", "Otto", "Field", "zebracorn@example.org").await;
    // Warm the org's index, then Rosa leaves the directory and Otto hides his e-mail.
    let (_, body) = send(
        &app,
        Method::GET,
        &search(&org, "Quintero"),
        Some(&vol),
        None,
    )
    .await;
    assert_eq!(
        ids(body["data"].as_array().unwrap()),
        vec![rosa.clone()],
        "{body}"
    );
    let privacy = format!("/api/v2/orgs/{org}/me/privacy");
    let (status, body) = send(
        &app,
        Method::PUT,
        &privacy,
        Some(&rosa_token),
        Some(serde_json::json!({"listing": "hidden", "version": 0})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &app,
        Method::PUT,
        &privacy,
        Some(&otto_token),
        Some(serde_json::json!({"email": "hidden", "version": 0})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    for q in [
        "Quintero",
        "Quintrro",
        "Quin",
        "Rosa",
        "zebracorn",
        "zebracron",
    ] {
        let (status, body) = send(&app, Method::GET, &search(&org, q), Some(&vol), None).await;
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(
            body["data"].as_array().map(Vec::len),
            Some(0),
            "{q}: {body}"
        );
        let text = body.to_string().to_lowercase();
        assert!(
            !text.contains("quintero") && !text.contains("zebracorn"),
            "{q} leaks through the answer: {body}"
        );
    }
    // Facets count only whom the volunteer may see.
    let (_, body) = send(&app, Method::GET, &search(&org, "o"), Some(&vol), None).await;
    let found = ids(body["data"].as_array().unwrap());
    assert!(!found.contains(&rosa), "{body}");
    let counted: u64 = body["meta"]["search"]["facets"]["status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, found.len() as u64, "{body}");
    // The admins' record: both found, the typo corrected.
    let (_, body) = send(
        &app,
        Method::GET,
        &search(&org, "Quintrro"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(ids(body["data"].as_array().unwrap()), vec![rosa], "{body}");
    assert_eq!(body["meta"]["search"]["did_you_mean"], "quintero", "{body}");
    let (_, body) = send(
        &app,
        Method::GET,
        &search(&org, "zebracorn"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(ids(body["data"].as_array().unwrap()), vec![otto], "{body}");
}

/// The hit ids of a search as `token`, and the whole answer.
async fn hits<S, B>(app: &S, path: &str, token: &str) -> (Vec<String>, serde_json::Value)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (status, body) = send(app, Method::GET, path, Some(token), None).await;
    assert_eq!(status, 200, "{path}: {body}");
    (ids(body["data"].as_array().unwrap()), body)
}

async fn every_typo_kind_prefix_order_other_scripts_facets_filters_and_paging(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = new_org(&app, "ms-kinds@example.org", "MSKINDS").await;
    let code = "MSKINDS";
    let (james, _) = join_as(&app, code, "James", "Jones", "jj@example.org").await;
    let (smit, _) = join_as(&app, code, "Anna", "Smit", "anna@example.org").await;
    let mut smiths = Vec::new();
    let mut smith_tokens = Vec::new();
    for (first, email) in [
        ("Carl", "carl@example.org"),
        ("Dora", "dora@example.org"),
        ("Ezra", "ezra@example.org"),
    ] {
        let (id, token) = join_as(&app, code, first, "Smith", email).await;
        smiths.push(id);
        smith_tokens.push(token);
    }
    let (smart, _) = join_as(&app, code, "Bea", "Smart", "bea@example.org").await;
    let (swit, _) = join_as(&app, code, "Emma", "Swit", "emma@example.org").await;
    let (ivan, _) = join_as(&app, code, "Иван", "Петров", "ivan@example.org").await;
    let (ali, _) = join_as(&app, code, "محمد", "علي", "ali@example.org").await;
    // Two of the Smiths are on the book fair committee.
    for token in &smith_tokens[..2] {
        let (status, body) = crate::helpers::patch_current(
            &app,
            &format!("/api/v2/orgs/{org}/me"),
            Some(token),
            Some(serde_json::json!({"committee": "Book Fair"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    // One typo per word, of each kind: the right person first.
    for q in ["Jamez Jomes", "Jmes Jnes", "Jaames Joness", "Jmaes Ojnes"] {
        let (found, body) = hits(&app, &search(&org, q), &admin).await;
        assert_eq!(found.first(), Some(&james), "{q}: {body}");
    }
    // A whole word before its prefix matches before a fuzzy match (`smit` → Swit, one
    // substitution); `Smart` is two edits away and not found.
    let (found, body) = hits(&app, &search(&org, "smit"), &admin).await;
    assert_eq!(found.first(), Some(&smit), "{body}");
    let mut middle = found[1..4].to_vec();
    middle.sort();
    let mut want = smiths.clone();
    want.sort();
    assert_eq!(middle, want, "the three Smiths by prefix next: {body}");
    assert_eq!(found.get(4), Some(&swit), "the fuzzy match last: {body}");
    assert!(!found.contains(&smart), "{body}");
    // Among equal prefix matches the more common name leads (not the alphabetical
    // first, Smart), and different names then take turns.
    let (found, body) = hits(&app, &search(&org, "sm"), &admin).await;
    assert!(smiths.contains(&found[0]), "a Smith first: {body}");
    assert!(
        found[1..3].contains(&smart) && found[1..3].contains(&smit),
        "then the other names, once each: {body}"
    );
    // Other scripts: Cyrillic with a transposition, Arabic as written.
    let (found, body) = hits(&app, &search(&org, "Иван Петрво"), &admin).await;
    assert_eq!(found.first(), Some(&ivan), "{body}");
    let (found, body) = hits(&app, &search(&org, "محمد"), &admin).await;
    assert_eq!(found, vec![ali.clone()], "{body}");
    // Facets count the whole result by role, status and committee: the three Smiths and,
    // one deletion away, Anna Smit.
    let (found, body) = hits(&app, &search(&org, "smith"), &admin).await;
    assert_eq!(found.len(), 4, "{body}");
    assert_eq!(found.last(), Some(&smit), "{body}");
    let facets = &body["meta"]["search"]["facets"];
    assert_eq!(
        facets["committee"],
        serde_json::json!([{"value": "Book Fair", "count": 2}]),
        "{body}"
    );
    assert_eq!(
        facets["status"],
        serde_json::json!([{"value": "active", "count": 4}]),
        "{body}"
    );
    assert_eq!(
        facets["role"],
        serde_json::json!([{"value": "volunteer", "count": 4}]),
        "{body}"
    );
    // A list filter narrows the ranked result (checked in the database), with its own
    // total and facets.
    let (found, body) = hits(
        &app,
        &format!("{}&committee=book%20fair", search(&org, "smith")),
        &admin,
    )
    .await;
    let mut found_sorted = found.clone();
    found_sorted.sort();
    let mut two = smiths[..2].to_vec();
    two.sort();
    assert_eq!(found_sorted, two, "{body}");
    assert_eq!(body["meta"]["pagination"]["total"], 2, "{body}");
    assert_eq!(
        body["meta"]["search"]["facets"]["committee"],
        serde_json::json!([{"value": "Book Fair", "count": 2}]),
        "{body}"
    );
    // Pages: the same order, no overlap, `total` on every page.
    let (all, _) = hits(&app, &search(&org, "sm"), &admin).await;
    let (first, body) = hits(&app, &format!("{}&limit=2", search(&org, "sm")), &admin).await;
    assert_eq!(first, all[..2].to_vec(), "{body}");
    assert_eq!(body["meta"]["pagination"]["total"], all.len(), "{body}");
    let cursor = body["meta"]["pagination"]["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (second, body) = hits(
        &app,
        &format!("{}&limit=2&cursor={cursor}", search(&org, "sm")),
        &admin,
    )
    .await;
    assert_eq!(second, all[2..4].to_vec(), "{body}");
}
