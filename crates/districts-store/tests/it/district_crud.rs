use districts::ports::{
    CreateDistrictError, CreateDistrictRequest, DistrictChanges, DistrictPageRequest,
    DistrictRepository, UpdateDistrictError,
};
use districts::{DisplayName, DistrictCode, DistrictId, DistrictSettings, SubscriptionTier};

use crate::harness::{ACTOR, TestDb, ctx, district_chain};

pub fn request(name: &str, code: &str) -> CreateDistrictRequest {
    CreateDistrictRequest {
        name: DisplayName::parse(name).unwrap(),
        code: DistrictCode::parse(code).unwrap(),
        tier: SubscriptionTier::Basic,
        settings: DistrictSettings::new(),
    }
}

async fn create_get_and_duplicate_code(t: &TestDb) {
    let repo = t.repo();
    let mut req = request("  Springfield   Unified ", "springfield usd");
    req.settings
        .insert("timezone".into(), serde_json::json!("America/Chicago"));
    let d = repo.create_district(&ctx(), req).await.unwrap();
    assert_eq!(d.name, "Springfield Unified");
    assert_eq!(d.code.as_str(), "SPRINGFIELD-USD");
    assert_eq!(d.version, 1);
    assert_eq!(repo.get_district(d.id).await.unwrap(), Some(d.clone()));
    assert_eq!(repo.get_district(DistrictId::new()).await.unwrap(), None);

    // Same code after normalization.
    let err = repo
        .create_district(&ctx(), request("Other", " Springfield-USD"))
        .await
        .unwrap_err();
    match err {
        CreateDistrictError::DuplicateCode { code } => assert_eq!(code.as_str(), "SPRINGFIELD-USD"),
        other => panic!("expected DuplicateCode, got {other:?}"),
    }

    // Audited once, in the district's chain, by the actor.
    let events = t.events("district.create").await;
    assert_eq!(
        events,
        vec![(district_chain(d.id), d.id.to_string(), Some(ACTOR))]
    );
}

async fn list_by_cursor(t: &TestDb) {
    let repo = t.repo();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            repo.create_district(&ctx(), request(&format!("D {i}"), &format!("D{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = repo
            .list_districts(DistrictPageRequest::new(after, 2))
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|d| d.id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

async fn update_with_versions(t: &TestDb) {
    let repo = t.repo();
    let d = repo
        .create_district(&ctx(), request("North", "NORTH"))
        .await
        .unwrap();
    repo.create_district(&ctx(), request("South", "SOUTH"))
        .await
        .unwrap();

    let mut settings = DistrictSettings::new();
    settings.insert("fiscal_year_start".into(), serde_json::json!("07-01"));
    let updated = repo
        .update_district(
            &ctx(),
            d.id,
            Some(1),
            DistrictChanges {
                name: Some(DisplayName::parse("North County").unwrap()),
                tier: Some(SubscriptionTier::Enterprise),
                settings: Some(settings.clone()),
                ..DistrictChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.name, "North County");
    assert_eq!(updated.tier, SubscriptionTier::Enterprise);
    assert_eq!(updated.settings, settings);
    assert_eq!(updated.code, d.code);
    assert_eq!(
        repo.get_district(d.id).await.unwrap(),
        Some(updated.clone())
    );

    // The version the caller saw is stale now.
    let err = repo
        .update_district(
            &ctx(),
            d.id,
            Some(1),
            DistrictChanges {
                name: Some(DisplayName::parse("Lost update").unwrap()),
                ..DistrictChanges::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpdateDistrictError::VersionMismatch { current: 2 }),
        "{err:?}"
    );

    let err = repo
        .update_district(
            &ctx(),
            d.id,
            None,
            DistrictChanges {
                code: Some(DistrictCode::parse("south").unwrap()),
                ..DistrictChanges::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpdateDistrictError::DuplicateCode { .. }),
        "{err:?}"
    );
    // Nothing of the failed attempts stuck.
    assert_eq!(repo.get_district(d.id).await.unwrap(), Some(updated));
    assert_eq!(t.events("district.update").await.len(), 1);

    let err = repo
        .update_district(&ctx(), DistrictId::new(), None, DistrictChanges::default())
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateDistrictError::NotFound), "{err:?}");
}

crate::both_backends!(
    create_get_and_duplicate_code,
    list_by_cursor,
    update_with_versions
);
