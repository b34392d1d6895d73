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
    a_member_added_is_found_by_the_next_search,
    a_write_on_one_instance_is_found_on_another_within_a_second,
    hidden_members_and_fields_neither_match_nor_leak_through_suggestions_or_facets,
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

async fn a_member_added_is_found_by_the_next_search(ctx: TestContext) {
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
    // … and dropped by the join's commit.
    let (grace, _) = join_as(&app, "MSINVAL", "Grace", "Hopper", "grace@example.org").await;
    let metrics = crate::observability::scrape(&app).await;
    assert_eq!(
        series(&metrics, "ptoc_search_indexes"),
        Some(0.0),
        "{metrics}"
    );
    let (_, body) = send(
        &app,
        Method::GET,
        &search(&org, "Hoppr"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(ids(body["data"].as_array().unwrap()), vec![grace], "{body}");
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
