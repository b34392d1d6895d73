use districts::ports::{
    CreateSchoolError, CreateSchoolRequest, DistrictRepository, SchoolChanges, UpdateSchoolError,
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

crate::both_backends!(codes_unique_within_a_district, update_school);
