//! The member directory: sorted, filtered, keyset-paged lists and typo-tolerant search.

use std::collections::{BTreeMap, HashSet};

use actix_web::http::Method;

use crate::backend_tests;
use crate::helpers::{Rng, TestContext, login, send, signed_up};

backend_tests!(
    lists_sort_filter_and_page_without_gaps_or_duplicates,
    search_tolerates_typos_and_ranks_exact_matches_first,
    search_never_crosses_orgs,
);

/// Registers `first last <email>`, signs in and joins the org with `code`; returns the
/// user id and token.
pub(crate) async fn join_as<S, B>(
    app: &S,
    code: &str,
    first: &str,
    last: &str,
    email: &str,
) -> (String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/auth/register",
        None,
        Some(serde_json::json!({"email": email, "password": "correct horse battery", "first_name": first, "last_name": last})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let token = login(app, email, "correct horse battery").await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs/join",
        Some(&token),
        Some(serde_json::json!({"signup_code": code})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (id, token)
}

pub(crate) async fn new_org<S, B>(
    app: &S,
    admin_email: &str,
    code: &str,
) -> (String, String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (admin_id, admin) = signed_up(app, admin_email).await;
    let (status, body) = send(
        app,
        Method::POST,
        "/api/v2/orgs",
        Some(&admin),
        Some(serde_json::json!({"name": "Directory PTO", "signup_code": code})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["data"]["org"]["id"].as_str().unwrap().to_owned(),
        admin_id,
        admin,
    )
}

/// Every page of `uri` from `start` (a cursor, or the first page), following `next_cursor`.
async fn pages_from<S, B>(
    app: &S,
    token: &str,
    uri: &str,
    start: Option<String>,
) -> Vec<serde_json::Value>
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let mut out = Vec::new();
    let mut next = start;
    for _ in 0..100 {
        let page_uri = match &next {
            Some(c) => format!("{uri}&cursor={c}"),
            None => uri.to_owned(),
        };
        let (status, body) = send(app, Method::GET, &page_uri, Some(token), None).await;
        assert_eq!(status, 200, "{page_uri}: {body}");
        out.extend(body["data"].as_array().unwrap().iter().cloned());
        match body["meta"]["pagination"]["next_cursor"].as_str() {
            Some(c) => next = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("more than 100 pages");
}

pub(crate) fn ids(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["user_id"].as_str().unwrap().to_owned())
        .collect()
}

const LAST: [&str; 6] = ["Garcia", "Smith", "Nguyen", "O'Brien", "Smith", "Ávila"];
const FIRST: [&str; 5] = ["Ana", "ben", "Chloé", "Dev", "Eli"];

async fn lists_sort_filter_and_page_without_gaps_or_duplicates(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin_id, admin) = new_org(&app, "dir-admin@example.org", "DIRLIST").await;
    // (user id, last, first, email) in join order.
    let mut people = vec![(
        admin_id,
        "user".to_owned(),
        "test".to_owned(),
        "dir-admin@example.org".to_owned(),
    )];
    for i in 0..17 {
        let (first, last) = (FIRST[i % FIRST.len()], LAST[i % LAST.len()]);
        let email = format!("p{:02}-{}@example.org", (i * 7) % 17, i);
        let (id, _) = join_as(&app, "DIRLIST", first, last, &email).await;
        people.push((id, last.to_lowercase(), first.to_lowercase(), email));
    }
    let by_join: Vec<String> = people.iter().map(|p| p.0.clone()).collect();
    let mut by_name = people.clone();
    by_name.sort_by(|a, b| (&a.1, &a.2, &a.0).cmp(&(&b.1, &b.2, &b.0)));
    let mut by_email = people.clone();
    by_email.sort_by(|a, b| (&a.3, &a.0).cmp(&(&b.3, &b.0)));
    let expected: BTreeMap<&str, Vec<String>> = BTreeMap::from([
        ("name", by_name.iter().map(|p| p.0.clone()).collect()),
        ("email", by_email.iter().map(|p| p.0.clone()).collect()),
        ("joined", by_join.clone()),
        // Everyone signed in once, in join order.
        ("last_active", by_join.clone()),
    ]);
    let users = format!("/api/v2/orgs/{org}/users");
    for (sort, want) in &expected {
        for (order, want) in [
            ("asc", want.clone()),
            ("desc", want.iter().rev().cloned().collect()),
        ] {
            let got = ids(&pages_from(
                &app,
                &admin,
                &format!("{users}?sort={sort}&order={order}&limit=4"),
                None,
            )
            .await);
            if *sort == "name" && ctx.backend == crate::helpers::Backend::Postgres {
                // Accented and apostrophe names may collate differently per database;
                // the page walk must still be complete and duplicate-free.
                let unique: HashSet<&String> = got.iter().collect();
                assert_eq!(
                    (got.len(), unique.len()),
                    (want.len(), want.len()),
                    "{sort} {order}"
                );
            } else {
                assert_eq!(got, want, "sort={sort} order={order}");
            }
        }
    }

    // Members joining and leaving between page fetches: no duplicates, and everyone
    // present throughout appears exactly once.
    let (status, first) = send(
        &app,
        Method::GET,
        &format!("{users}?sort=joined&limit=5"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut seen = ids(first["data"].as_array().unwrap());
    let (late_id, _) = join_as(&app, "DIRLIST", "Zed", "Late", "late@example.org").await;
    let leaving = by_join[7].clone();
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("{users}/{leaving}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let cursor = first["meta"]["pagination"]["next_cursor"].as_str().unwrap();
    seen.extend(ids(&pages_from(
        &app,
        &admin,
        &format!("{users}?sort=joined&limit=5"),
        Some(cursor.to_owned()),
    )
    .await));
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    for id in by_join.iter().filter(|id| **id != leaving) {
        assert!(seen.contains(id), "{id} missing");
    }
    assert!(
        seen.contains(&late_id),
        "a member joining after the cursor is on a later page"
    );
    assert!(!seen[5..].contains(&leaving));

    // Filters.
    let (_, page) = send(
        &app,
        Method::GET,
        &format!("{users}?role=admin"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        ids(page["data"].as_array().unwrap()),
        vec![people[0].0.clone()]
    );
    let target = by_join[3].clone();
    crate::helpers::patch_current(
        &app,
        &format!("{users}/{target}"),
        Some(&admin),
        Some(serde_json::json!({"committee": "Book Fair", "status": "suspended"})),
    )
    .await;
    let (_, page) = send(
        &app,
        Method::GET,
        &format!("{users}?committee=book%20fair"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(ids(page["data"].as_array().unwrap()), vec![target.clone()]);
    let (_, page) = send(
        &app,
        Method::GET,
        &format!("{users}?status=suspended&role=volunteer"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(ids(page["data"].as_array().unwrap()), vec![target]);
    let (_, page) = send(
        &app,
        Method::GET,
        &format!("{users}?joined_from=2000-01-01T00:00:00Z&joined_to=2001-01-01T00:00:00Z"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 0);

    // Bad input is a clear 422.
    for bad in [
        "sort=height",
        "order=sideways",
        "role=wizard",
        "limit=0",
        "cursor=zz",
        "joined_from=yesterday",
        "colour=red",
    ] {
        let (status, body) = send(
            &app,
            Method::GET,
            &format!("{users}?{bad}"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("VALIDATION_FAILED")),
            "{bad}: {body}"
        );
    }
    // A cursor of one sort order is refused by another.
    let (_, p1) = send(
        &app,
        Method::GET,
        &format!("{users}?sort=email&limit=2"),
        Some(&admin),
        None,
    )
    .await;
    let c = p1["meta"]["pagination"]["next_cursor"].as_str().unwrap();
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("{users}?sort=name&limit=2&cursor={c}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 422);
}

async fn search_tolerates_typos_and_ranks_exact_matches_first(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, _, admin) = new_org(&app, "search-admin@example.org", "DIRSEARCH").await;
    let (john, _) = join_as(&app, "DIRSEARCH", "John", "Smith", "jsmith@example.org").await;
    let (johan, _) = join_as(&app, "DIRSEARCH", "Johan", "Schmidt", "johan@example.org").await;
    let (jane, jane_token) =
        join_as(&app, "DIRSEARCH", "Jane", "Smithers", "jane@example.org").await;
    let (_mo, _) = join_as(&app, "DIRSEARCH", "Mo", "Farah", "mo@example.org").await;
    crate::helpers::patch_current(&app, &format!("/api/v2/orgs/{org}/me"), Some(&jane_token), Some(serde_json::json!({"committee": "Fundraising", "children": [{"name": "Ava", "grade": "2"}]}))).await;
    let search = |q: &str| {
        format!(
            "/api/v2/orgs/{org}/users/search?q={}",
            q.replace(' ', "%20")
        )
    };

    let (status, body) = send(&app, Method::GET, &search("Jonh Smiht"), Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    let found = ids(body["data"].as_array().unwrap());
    assert_eq!(found.first(), Some(&john), "{body}");
    assert!(
        !found.contains(&johan),
        "Schmidt is two edits from smiht: {body}"
    );

    let (_, body) = send(&app, Method::GET, &search("smith"), Some(&admin), None).await;
    let found = ids(body["data"].as_array().unwrap());
    assert_eq!(
        found,
        vec![john.clone(), jane.clone()],
        "exact before prefix"
    );

    // Children, committee and e-mail are searchable; so are accents.
    for (q, who) in [
        ("ava", &jane),
        ("fundraising", &jane),
        ("johan@example.org", &johan),
        ("j%C3%B6hn", &john),
    ] {
        let (_, body) = send(&app, Method::GET, &search(q), Some(&admin), None).await;
        assert_eq!(
            ids(body["data"].as_array().unwrap()).first(),
            Some(who),
            "{q}: {body}"
        );
    }
    // Filters combine with search; positional pages.
    let (_, body) = send(
        &app,
        Method::GET,
        &format!("{}&committee=fundraising", search("smith")),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(ids(body["data"].as_array().unwrap()), vec![jane.clone()]);
    let (_, p1) = send(
        &app,
        Method::GET,
        &format!("{}&limit=1", search("j")),
        Some(&admin),
        None,
    )
    .await;
    let c = p1["meta"]["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, p2) = send(
        &app,
        Method::GET,
        &format!("{}&limit=1&cursor={c}", search("j")),
        Some(&admin),
        None,
    )
    .await;
    assert_ne!(
        ids(p1["data"].as_array().unwrap()),
        ids(p2["data"].as_array().unwrap())
    );

    // Nothing matches: an empty page, not an error; no searchable text: 422.
    let (status, body) = send(&app, Method::GET, &search("zzyzx"), Some(&admin), None).await;
    assert_eq!(
        (status, body["data"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status, _) = send(&app, Method::GET, &search("..."), Some(&admin), None).await;
    assert_eq!(status, 422);
    // Once the org keeps the directory to its board, a volunteer cannot search it.
    let (_, matrix) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/permissions"),
        Some(&admin),
        None,
    )
    .await;
    let version = matrix["data"]["version"].as_u64().unwrap();
    let (status, _) = send(&app, Method::PUT, &format!("/api/v2/orgs/{org}/permissions/settings"), Some(&admin), Some(serde_json::json!({"version": version, "changes": [{"key": "users.view", "min_role": "board_member"}]}))).await;
    assert_eq!(status, 200);
    let (status, _) = send(&app, Method::GET, &search("smith"), Some(&jane_token), None).await;
    assert_eq!(status, 403);
}

async fn search_never_crosses_orgs(ctx: TestContext) {
    let app = ctx.service().await;
    let (org_a, _, admin_a) = new_org(&app, "xa@example.org", "DIRXA").await;
    let (org_b, _, admin_b) = new_org(&app, "xb@example.org", "DIRXB").await;
    let names = ["Lee", "Li", "Leigh", "Lea", "Levi", "Lena", "Leon", "Lewis"];
    let mut rng = Rng(0x5eed_d1c7);
    let mut members: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for i in 0..12 {
        let (code, org) = if rng.next().is_multiple_of(2) {
            ("DIRXA", &org_a)
        } else {
            ("DIRXB", &org_b)
        };
        let first = names[(rng.next() % names.len() as u64) as usize];
        let last = names[(rng.next() % names.len() as u64) as usize];
        let (id, _) = join_as(&app, code, first, last, &format!("x{i}@example.org")).await;
        members.entry(org.clone()).or_default().insert(id);
    }
    for (org, admin) in [(&org_a, &admin_a), (&org_b, &admin_b)] {
        let own = members.get(org.as_str()).cloned().unwrap_or_default();
        let mut found_any = false;
        for _ in 0..10 {
            let q = names[(rng.next() % names.len() as u64) as usize];
            let (status, body) = send(
                &app,
                Method::GET,
                &format!("/api/v2/orgs/{org}/users/search?q={q}&limit=100"),
                Some(admin),
                None,
            )
            .await;
            assert_eq!(status, 200);
            for id in ids(body["data"].as_array().unwrap()) {
                found_any = true;
                assert!(own.contains(&id), "{id} is not a member of {org}");
            }
        }
        assert!(
            found_any || own.is_empty(),
            "searches found nobody in {org}"
        );
        // The other org's admin gets 404 on this org's search.
        let other = if org == &org_a { &admin_b } else { &admin_a };
        let (status, _) = send(
            &app,
            Method::GET,
            &format!("/api/v2/orgs/{org}/users/search?q=lee"),
            Some(other),
            None,
        )
        .await;
        assert_eq!(status, 404);
    }
}
