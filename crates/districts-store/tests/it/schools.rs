use districts::ports::{
    CreateSchoolError, CreateSchoolRequest, DeleteSchoolError, DistrictRepository, OrgScope,
    SchoolChanges, UpdateSchoolError,
};
use districts::{DisplayName, DistrictCode, DistrictId, GradeLevels, SchoolId};

use crate::district_crud::request;
use crate::harness::{TestDb, ctx, district_chain};

pub fn school(district: Option<DistrictId>, code: &str) -> CreateSchoolRequest {
    CreateSchoolRequest {
        district_id: district,
        name: DisplayName::parse(&format!("{code} School")).unwrap(),
        code: DistrictCode::parse(code).unwrap(),
        grade_levels: GradeLevels::parse(["k", "1", "2"]).unwrap(),
    }
}

async fn codes_unique_within_a_district(t: &TestDb) {
    let repo = t.repo();
    let a = repo
        .create_district(&ctx(), request("A", "DIST-A"))
        .await
        .unwrap();
    let b = repo
        .create_district(&ctx(), request("B", "DIST-B"))
        .await
        .unwrap();

    let lincoln_a = repo
        .create_school(&ctx(), school(Some(a.id), "lincoln"))
        .await
        .unwrap();
    assert_eq!(lincoln_a.code.as_str(), "LINCOLN");
    assert_eq!(lincoln_a.district_id, Some(a.id));
    assert_eq!(lincoln_a.grade_levels, vec!["K", "1", "2"]);
    assert_eq!(
        repo.get_school(lincoln_a.id).await.unwrap(),
        Some(lincoln_a.clone())
    );

    let err = repo
        .create_school(&ctx(), school(Some(a.id), "Lincoln"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CreateSchoolError::DuplicateCode { .. }),
        "{err:?}"
    );

    // The same code in another district, and twice standalone, is fine.
    let lincoln_b = repo
        .create_school(&ctx(), school(Some(b.id), "LINCOLN"))
        .await
        .unwrap();
    let solo1 = repo
        .create_school(&ctx(), school(None, "LINCOLN"))
        .await
        .unwrap();
    let solo2 = repo
        .create_school(&ctx(), school(None, "LINCOLN"))
        .await
        .unwrap();
    assert_eq!(solo1.district_id, None);
    assert_ne!(solo1.id, solo2.id);

    let err = repo
        .create_school(&ctx(), school(Some(DistrictId::new()), "X1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CreateSchoolError::DistrictNotFound),
        "{err:?}"
    );

    let washington_a = repo
        .create_school(&ctx(), school(Some(a.id), "WASHINGTON"))
        .await
        .unwrap();
    let listed: Vec<SchoolId> = repo
        .list_schools(a.id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![lincoln_a.id, washington_a.id]);
    assert_eq!(
        repo.list_schools(b.id).await.unwrap(),
        vec![lincoln_b.clone()]
    );

    assert_eq!(
        repo.district_of_school(lincoln_b.id).await.unwrap(),
        Some(b.id)
    );
    assert_eq!(repo.district_of_school(solo1.id).await.unwrap(), None);
    assert_eq!(
        repo.district_of_school(SchoolId::new()).await.unwrap(),
        None
    );

    // school.create events: two in A's chain, one in B's, two on the platform chain.
    let events = t.events("school.create").await;
    let in_chain = |c: &str| events.iter().filter(|e| e.0 == c).count();
    assert_eq!(in_chain(&district_chain(a.id)), 2);
    assert_eq!(in_chain(&district_chain(b.id)), 1);
    assert_eq!(in_chain("platform"), 2);
}

async fn update_school(t: &TestDb) {
    let repo = t.repo();
    let a = repo
        .create_district(&ctx(), request("A", "DIST-A"))
        .await
        .unwrap();
    let s = repo
        .create_school(&ctx(), school(Some(a.id), "ADAMS"))
        .await
        .unwrap();
    repo.create_school(&ctx(), school(Some(a.id), "JEFFERSON"))
        .await
        .unwrap();

    let updated = repo
        .update_school(
            &ctx(),
            s.id,
            Some(1),
            SchoolChanges {
                name: Some(DisplayName::parse("Adams Middle").unwrap()),
                grade_levels: Some(GradeLevels::parse(["6", "7", "8"]).unwrap()),
                ..SchoolChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.name, "Adams Middle");
    assert_eq!(updated.grade_levels, vec!["6", "7", "8"]);

    let err = repo
        .update_school(&ctx(), s.id, Some(1), SchoolChanges::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpdateSchoolError::VersionMismatch { current: 2 }),
        "{err:?}"
    );

    let err = repo
        .update_school(
            &ctx(),
            s.id,
            None,
            SchoolChanges {
                code: Some(DistrictCode::parse("jefferson").unwrap()),
                ..SchoolChanges::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpdateSchoolError::DuplicateCode { .. }),
        "{err:?}"
    );
    assert_eq!(repo.get_school(s.id).await.unwrap(), Some(updated));

    let err = repo
        .update_school(&ctx(), SchoolId::new(), None, SchoolChanges::default())
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateSchoolError::NotFound), "{err:?}");
    assert_eq!(t.events("school.update").await.len(), 1);
}

async fn placed_orgs_and_deleting_a_school(t: &TestDb) {
    let repo = t.repo();
    let a = repo
        .create_district(&ctx(), request("A", "DIST-A"))
        .await
        .unwrap();
    let s = repo
        .create_school(&ctx(), school(Some(a.id), "ADAMS"))
        .await
        .unwrap();
    let other = repo
        .create_school(&ctx(), school(Some(a.id), "POLK"))
        .await
        .unwrap();
    let mut orgs = Vec::new();
    for _ in 0..3 {
        orgs.push(t.insert_org(Some(s.id), Some(a.id)).await);
    }
    t.insert_org(None, None).await;
    orgs.sort_by_key(|o| o.as_uuid());

    // Keyset pages in id order, by district and by school.
    for scope in [OrgScope::District(a.id), OrgScope::School(s.id)] {
        let first = repo.list_orgs(scope, None, 2).await.unwrap();
        let ids: Vec<_> = first.iter().map(|o| o.placement.org_id).collect();
        assert_eq!(ids, orgs[..2]);
        let rest = repo.list_orgs(scope, Some(ids[1]), 2).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].placement.org_id, orgs[2]);
        assert_eq!(rest[0].placement.school_id, Some(s.id));
        assert_eq!(repo.count_orgs(scope).await.unwrap(), 3);
    }
    assert_eq!(
        repo.count_orgs(OrgScope::School(other.id)).await.unwrap(),
        0
    );

    // A school with orgs stays; a stale version is refused; an empty one goes.
    let err = repo.delete_school(&ctx(), s.id, None).await.unwrap_err();
    assert!(
        matches!(err, DeleteSchoolError::HasOrgs { count: 3 }),
        "{err:?}"
    );
    let err = repo
        .delete_school(&ctx(), other.id, Some(2))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeleteSchoolError::VersionMismatch { current: 1 }),
        "{err:?}"
    );
    let deleted = repo.delete_school(&ctx(), other.id, Some(1)).await.unwrap();
    assert_eq!(deleted.id, other.id);
    assert_eq!(repo.get_school(other.id).await.unwrap(), None);
    assert!(repo.get_school(s.id).await.unwrap().is_some());
    let err = repo
        .delete_school(&ctx(), other.id, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DeleteSchoolError::NotFound), "{err:?}");
    let events = t.events("school.delete").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, district_chain(a.id));
}

crate::both_backends!(
    codes_unique_within_a_district,
    update_school,
    placed_orgs_and_deleting_a_school
);
