use districts::DistrictId;
use districts::ports::{DistrictRepository, MoveSchoolError};
use tenancy::OrgId;

use crate::district_crud::request;
use crate::harness::{TestDb, ctx, district_chain, org_chain};
use crate::schools::school;

fn sorted(mut v: Vec<OrgId>) -> Vec<OrgId> {
    v.sort();
    v
}

async fn moving_a_school_moves_its_orgs(t: &TestDb) {
    let repo = t.repo();
    let a = repo
        .create_district(&ctx(), request("A", "DIST-A"))
        .await
        .unwrap();
    let b = repo
        .create_district(&ctx(), request("B", "DIST-B"))
        .await
        .unwrap();
    let s = repo
        .create_school(&ctx(), school(Some(a.id), "LINCOLN"))
        .await
        .unwrap();
    let pto = t.insert_org(Some(s.id), Some(a.id)).await;
    let pta = t.insert_org(Some(s.id), Some(a.id)).await;
    // An org of another school of A, and a standalone org: untouched.
    let other_school = repo
        .create_school(&ctx(), school(Some(a.id), "ADAMS"))
        .await
        .unwrap();
    let bystander = t.insert_org(Some(other_school.id), Some(a.id)).await;
    let standalone = t.insert_org(None, None).await;

    let moved = repo
        .move_school(&ctx(), s.id, Some(b.id), Some(1))
        .await
        .unwrap();
    assert_eq!(moved.from, Some(a.id));
    assert_eq!(moved.school.district_id, Some(b.id));
    assert_eq!(moved.school.version, 2);
    assert_eq!(sorted(moved.affected_orgs.clone()), sorted(vec![pto, pta]));
    assert_eq!(
        repo.get_school(s.id).await.unwrap(),
        Some(moved.school.clone())
    );
    assert_eq!(repo.district_of_school(s.id).await.unwrap(), Some(b.id));

    // Every org of the school follows it, with a new permissions version.
    for org in [pto, pta] {
        assert_eq!(t.org_state(org).await, (Some(b.id.as_uuid()), 2));
    }
    assert_eq!(t.org_state(bystander).await, (Some(a.id.as_uuid()), 1));
    assert_eq!(t.org_state(standalone).await, (None, 1));
    assert_eq!(
        repo.list_schools(a.id).await.unwrap(),
        vec![other_school.clone()]
    );
    assert_eq!(
        repo.list_schools(b.id).await.unwrap(),
        vec![moved.school.clone()]
    );

    // Audited in both districts' chains and in each org's chain.
    let moves = t.events("school.move").await;
    let mut chains: Vec<&str> = moves.iter().map(|e| e.0.as_str()).collect();
    chains.sort_unstable();
    let mut expected = [district_chain(a.id), district_chain(b.id)];
    expected.sort();
    assert_eq!(
        chains,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(moves.iter().all(|e| e.1 == s.id.to_string()));
    let mut org_events: Vec<String> = t
        .events("org.district.change")
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    org_events.sort();
    let mut expected = vec![org_chain(pto), org_chain(pta)];
    expected.sort();
    assert_eq!(org_events, expected);

    // Stale version: refused, nothing changes.
    let err = repo
        .move_school(&ctx(), s.id, Some(a.id), Some(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MoveSchoolError::VersionMismatch { current: 2 }),
        "{err:?}"
    );
    // Unknown target district.
    let err = repo
        .move_school(&ctx(), s.id, Some(DistrictId::new()), None)
        .await
        .unwrap_err();
    assert!(matches!(err, MoveSchoolError::DistrictNotFound), "{err:?}");
    assert_eq!(t.org_state(pto).await, (Some(b.id.as_uuid()), 2));

    // Moving it where it already is writes nothing.
    let same = repo
        .move_school(&ctx(), s.id, Some(b.id), Some(2))
        .await
        .unwrap();
    assert!(same.affected_orgs.is_empty());
    assert_eq!(same.school.version, 2);
    assert_eq!(t.org_state(pto).await, (Some(b.id.as_uuid()), 2));
    assert_eq!(t.events("school.move").await.len(), 2);

    // Out of any district: the orgs lose their district too.
    let out = repo.move_school(&ctx(), s.id, None, None).await.unwrap();
    assert_eq!(out.from, Some(b.id));
    assert_eq!(out.school.district_id, None);
    assert_eq!(sorted(out.affected_orgs), sorted(vec![pto, pta]));
    assert_eq!(t.org_state(pto).await, (None, 3));
    assert_eq!(t.org_state(pta).await, (None, 3));
    assert_eq!(t.events("school.move").await.len(), 3);

    let err = repo
        .move_school(&ctx(), districts::SchoolId::new(), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, MoveSchoolError::NotFound), "{err:?}");
}

async fn a_refused_move_changes_nothing(t: &TestDb) {
    let repo = t.repo();
    let a = repo
        .create_district(&ctx(), request("A", "DIST-A"))
        .await
        .unwrap();
    let b = repo
        .create_district(&ctx(), request("B", "DIST-B"))
        .await
        .unwrap();
    let s = repo
        .create_school(&ctx(), school(Some(a.id), "LINCOLN"))
        .await
        .unwrap();
    repo.create_school(&ctx(), school(Some(b.id), "LINCOLN"))
        .await
        .unwrap();
    let org = t.insert_org(Some(s.id), Some(a.id)).await;

    // B already has a LINCOLN: the unique index refuses, the transaction rolls back.
    let err = repo
        .move_school(&ctx(), s.id, Some(b.id), None)
        .await
        .unwrap_err();
    match err {
        MoveSchoolError::DuplicateCode { code } => assert_eq!(code.as_str(), "LINCOLN"),
        other => panic!("expected DuplicateCode, got {other:?}"),
    }
    assert_eq!(repo.get_school(s.id).await.unwrap(), Some(s));
    assert_eq!(t.org_state(org).await, (Some(a.id.as_uuid()), 1));
    assert!(t.events("school.move").await.is_empty());
    assert!(t.events("org.district.change").await.is_empty());

    // A standalone school joins a district: its orgs gain the district.
    let solo = repo
        .create_school(&ctx(), school(None, "SOLO"))
        .await
        .unwrap();
    let solo_org = t.insert_org(Some(solo.id), None).await;
    let joined = repo
        .move_school(&ctx(), solo.id, Some(a.id), None)
        .await
        .unwrap();
    assert_eq!(joined.from, None);
    assert_eq!(joined.affected_orgs, vec![solo_org]);
    assert_eq!(t.org_state(solo_org).await, (Some(a.id.as_uuid()), 2));
    let moves = t.events("school.move").await;
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0].0, district_chain(a.id));
}

crate::both_backends!(
    moving_a_school_moves_its_orgs,
    a_refused_move_changes_nothing
);
