use districts::ports::{DeleteDistrictError, DistrictRepository};
use districts::{DistrictId, DistrictStaffRole};
use tenancy::OrgId;

use crate::district_crud::request;
use crate::harness::{TestDb, ctx, district_chain};
use crate::schools::school;

async fn deleting_a_district_detaches_and_cascades(t: &TestDb) {
    let repo = t.repo();
    let a = repo
        .create_district(&ctx(), request("A", "DIST-A"))
        .await
        .unwrap();
    let keep = repo
        .create_district(&ctx(), request("Keep", "KEEP"))
        .await
        .unwrap();
    let s1 = repo
        .create_school(&ctx(), school(Some(a.id), "LINCOLN"))
        .await
        .unwrap();
    let s2 = repo
        .create_school(&ctx(), school(Some(a.id), "ADAMS"))
        .await
        .unwrap();
    let kept_school = repo
        .create_school(&ctx(), school(Some(keep.id), "LINCOLN"))
        .await
        .unwrap();
    let org1 = t.insert_org(Some(s1.id), Some(a.id)).await;
    let org2 = t.insert_org(Some(s2.id), Some(a.id)).await;
    let kept_org = t.insert_org(Some(kept_school.id), Some(keep.id)).await;
    let admin = t.insert_user().await;
    let viewer = t.insert_user().await;
    repo.set_staff(&ctx(), a.id, admin, DistrictStaffRole::DistrictAdmin, None)
        .await
        .unwrap();
    repo.set_staff(
        &ctx(),
        a.id,
        viewer,
        DistrictStaffRole::DistrictViewer,
        None,
    )
    .await
    .unwrap();
    repo.set_staff(
        &ctx(),
        keep.id,
        admin,
        DistrictStaffRole::DistrictViewer,
        None,
    )
    .await
    .unwrap();
    t.insert_template(a.id, "budget.approve").await;
    t.insert_template(keep.id, "budget.approve").await;

    let err = repo
        .delete_district(&ctx(), a.id, Some(7))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeleteDistrictError::VersionMismatch { current: 1 }),
        "{err:?}"
    );

    let deleted = repo.delete_district(&ctx(), a.id, Some(1)).await.unwrap();
    assert_eq!(deleted.district.id, a.id);
    let mut schools = deleted.detached_schools.clone();
    schools.sort();
    let mut expected = vec![s1.id, s2.id];
    expected.sort();
    assert_eq!(schools, expected);
    let mut orgs: Vec<OrgId> = deleted.detached_orgs.clone();
    orgs.sort();
    let mut expected = vec![org1, org2];
    expected.sort();
    assert_eq!(orgs, expected);
    assert_eq!(deleted.removed_staff.len(), 2);

    assert_eq!(repo.get_district(a.id).await.unwrap(), None);
    // Schools and orgs carry on standalone; the orgs' permissions changed.
    for s in [s1.id, s2.id] {
        let after = repo.get_school(s).await.unwrap().unwrap();
        assert_eq!(after.district_id, None);
        assert_eq!(after.version, 2);
    }
    assert_eq!(t.org_state(org1).await, (None, 2));
    assert_eq!(t.org_state(org2).await, (None, 2));
    // Staff and templates went with the district; the other district is untouched.
    assert!(repo.list_staff(a.id).await.unwrap().is_empty());
    assert_eq!(repo.staff_role(a.id, admin).await.unwrap(), None);
    assert_eq!(
        repo.districts_of(admin).await.unwrap(),
        vec![(keep.id, DistrictStaffRole::DistrictViewer)]
    );
    assert_eq!(
        t.count_where("district_staff", "district_id", a.id.as_uuid())
            .await,
        0
    );
    assert_eq!(
        t.count_where(
            "district_permission_settings",
            "district_id",
            a.id.as_uuid()
        )
        .await,
        0
    );
    assert_eq!(
        t.count_where(
            "district_permission_settings",
            "district_id",
            keep.id.as_uuid()
        )
        .await,
        1
    );
    assert_eq!(t.org_state(kept_org).await, (Some(keep.id.as_uuid()), 1));
    assert_eq!(
        repo.get_school(kept_school.id).await.unwrap(),
        Some(kept_school)
    );

    let events = t.events("district.delete").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, district_chain(a.id));
    assert_eq!(t.events("org.district.change").await.len(), 2);

    let err = repo.delete_district(&ctx(), a.id, None).await.unwrap_err();
    assert!(matches!(err, DeleteDistrictError::NotFound), "{err:?}");
    let err = repo
        .delete_district(&ctx(), DistrictId::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, DeleteDistrictError::NotFound), "{err:?}");

    // The detached schools' codes do not collide with anything.
    let again = repo
        .create_district(&ctx(), request("A again", "DIST-A"))
        .await
        .unwrap();
    repo.create_school(&ctx(), school(Some(again.id), "LINCOLN"))
        .await
        .unwrap();
}

crate::both_backends!(deleting_a_district_detaches_and_cascades);
