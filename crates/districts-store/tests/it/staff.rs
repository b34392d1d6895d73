use districts::ports::{DistrictRepository, RemoveStaffError, SetStaffError};
use districts::{DistrictId, DistrictStaffRole};
use tenancy::UserId;

use crate::district_crud::request;
use crate::harness::{TestDb, ctx, district_chain};

async fn staff_add_change_remove(t: &TestDb) {
    let repo = t.repo();
    let a = repo
        .create_district(&ctx(), request("A", "DIST-A"))
        .await
        .unwrap();
    let b = repo
        .create_district(&ctx(), request("B", "DIST-B"))
        .await
        .unwrap();
    let ann = t.insert_user().await;
    let bob = t.insert_user().await;

    let added = repo
        .set_staff(&ctx(), a.id, ann, DistrictStaffRole::DistrictAdmin, None)
        .await
        .unwrap();
    assert_eq!(
        (added.district_id, added.user_id, added.role),
        (a.id, ann, DistrictStaffRole::DistrictAdmin)
    );
    repo.set_staff(&ctx(), a.id, bob, DistrictStaffRole::DistrictViewer, None)
        .await
        .unwrap();
    repo.set_staff(&ctx(), b.id, ann, DistrictStaffRole::DistrictViewer, None)
        .await
        .unwrap();

    // Same role again: nothing written.
    let same = repo
        .set_staff(&ctx(), a.id, ann, DistrictStaffRole::DistrictAdmin, None)
        .await
        .unwrap();
    assert_eq!(same, added);
    assert_eq!(t.events("district_staff.add").await.len(), 3);
    assert!(t.events("district_staff.change").await.is_empty());

    assert_eq!(
        repo.staff_role(a.id, ann).await.unwrap(),
        Some(DistrictStaffRole::DistrictAdmin)
    );
    assert_eq!(
        repo.staff_role(a.id, bob).await.unwrap(),
        Some(DistrictStaffRole::DistrictViewer)
    );
    assert_eq!(repo.staff_role(b.id, bob).await.unwrap(), None);
    let listed: Vec<(UserId, DistrictStaffRole)> = repo
        .list_staff(a.id)
        .await
        .unwrap()
        .iter()
        .map(|s| (s.user_id, s.role))
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&(ann, DistrictStaffRole::DistrictAdmin)));
    assert!(listed.contains(&(bob, DistrictStaffRole::DistrictViewer)));
    let mut of_ann = repo.districts_of(ann).await.unwrap();
    of_ann.sort_by_key(|(d, _)| *d);
    let mut expected = vec![
        (a.id, DistrictStaffRole::DistrictAdmin),
        (b.id, DistrictStaffRole::DistrictViewer),
    ];
    expected.sort_by_key(|(d, _)| *d);
    assert_eq!(of_ann, expected);

    // Change a role.
    let changed = repo
        .set_staff(&ctx(), a.id, bob, DistrictStaffRole::DistrictAdmin, None)
        .await
        .unwrap();
    assert_eq!(changed.role, DistrictStaffRole::DistrictAdmin);
    assert_eq!(changed.version, 2, "added at 1, changed once");
    // Conditional: a stale version (or 0 for someone who is staff) is refused.
    for stale in [1, 0] {
        let err = repo
            .set_staff(
                &ctx(),
                a.id,
                bob,
                DistrictStaffRole::DistrictViewer,
                Some(stale),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, SetStaffError::VersionMismatch { current: 2 }),
            "{err:?}"
        );
    }
    assert_eq!(
        changed.created_at,
        repo.list_staff(a.id)
            .await
            .unwrap()
            .iter()
            .find(|s| s.user_id == bob)
            .unwrap()
            .created_at
    );
    assert_eq!(
        repo.staff_role(a.id, bob).await.unwrap(),
        Some(DistrictStaffRole::DistrictAdmin)
    );
    let changes = t.events("district_staff.change").await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].0, district_chain(a.id));
    assert_eq!(changes[0].1, bob.to_string());

    // Remove.
    let removed = repo.remove_staff(&ctx(), a.id, ann).await.unwrap();
    assert_eq!(removed.role, DistrictStaffRole::DistrictAdmin);
    assert_eq!(repo.staff_role(a.id, ann).await.unwrap(), None);
    assert_eq!(
        repo.districts_of(ann).await.unwrap(),
        vec![(b.id, DistrictStaffRole::DistrictViewer)]
    );
    let err = repo.remove_staff(&ctx(), a.id, ann).await.unwrap_err();
    assert!(matches!(err, RemoveStaffError::NotFound), "{err:?}");
    assert_eq!(t.events("district_staff.remove").await.len(), 1);

    // Unknown user or district.
    let err = repo
        .set_staff(
            &ctx(),
            a.id,
            UserId::new(),
            DistrictStaffRole::DistrictViewer,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SetStaffError::UserNotFound), "{err:?}");
    let err = repo
        .set_staff(
            &ctx(),
            DistrictId::new(),
            ann,
            DistrictStaffRole::DistrictViewer,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SetStaffError::DistrictNotFound), "{err:?}");
}

crate::both_backends!(staff_add_change_remove);
