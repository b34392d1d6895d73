//! District use cases over the port: the authority rules of [`crate::rules`] applied
//! before anything is written.

use ids::{OrgId, UserId};

use crate::ports::{
    AuditContext, CreateDistrictError, CreateDistrictRequest, CreateSchoolError,
    CreateSchoolRequest, DeleteDistrictError, DeleteSchoolError, DeletedDistrict, DistrictChanges,
    DistrictRepository, MoveOrgError, MoveSchoolError, OrgMove, OrgPlacement, OrgScope, PlacedOrg,
    ReadError, RemoveStaffError, SchoolChanges, SchoolMove, SetStaffError, UpdateDistrictError,
    UpdateSchoolError,
};
use crate::rules::{
    self, DistrictAction, Forbidden, MovePlan, OrgStanding, Placement, authorize,
    authorize_org_move, authorize_placement,
};
use crate::{District, DistrictId, DistrictStaff, DistrictStaffRole, School, SchoolId};

/// Who is asking, as far as district authority goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The signed-in user.
    pub user: UserId,
    /// Whether they act as platform admin (they are one, with the second factor the
    /// platform may require: [`rules::usable_platform_admin`]).
    pub platform_admin: bool,
    /// Whether their session was opened with a second factor.
    pub second_factor: bool,
}

/// Why a use case failed: refused by the rules, or by the port.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError<E: std::error::Error + 'static> {
    /// The caller may not do this.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The caller's staff role needs a session with a second factor.
    #[error(transparent)]
    SecondFactorRequired(#[from] rules::SecondFactorRequired),
    /// The port refused or failed.
    #[error(transparent)]
    Store(E),
}

/// Why a caller's standing in a district could not be settled.
#[derive(Debug, thiserror::Error)]
pub enum StandingError {
    /// Their role there needs a second factor their session lacks.
    #[error(transparent)]
    SecondFactorRequired(#[from] rules::SecondFactorRequired),
    /// Reading failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl<E: std::error::Error + From<ReadError> + 'static> From<StandingError> for ServiceError<E> {
    fn from(e: StandingError) -> Self {
        match e {
            StandingError::SecondFactorRequired(e) => Self::SecondFactorRequired(e),
            StandingError::Read(e) => Self::Store(E::from(e)),
        }
    }
}

impl<E: std::error::Error + From<ReadError> + 'static> From<ReadError> for ServiceError<E> {
    fn from(e: ReadError) -> Self {
        Self::Store(E::from(e))
    }
}

/// District use cases, generic over the port so tests can use a mock.
#[derive(Debug, Clone)]
pub struct DistrictService<R> {
    repo: R,
}

impl<R: DistrictRepository> DistrictService<R> {
    /// A service over the given repository.
    pub fn new(repo: R) -> Self {
        Self { repo }
    }

    /// The repository, for reads the caller has already authorized.
    pub fn repository(&self) -> &R {
        &self.repo
    }

    /// The staff role the caller may act with in `district` (none for platform admins,
    /// who need none): their role, if the district's second-factor rule lets them use
    /// it ([`rules::usable_staff_role`]). Every path that asks "what is this caller in
    /// that district" asks here.
    ///
    /// # Errors
    /// [`StandingError::SecondFactorRequired`] for staff without the second factor
    /// their district requires; a read failure.
    pub async fn role(
        &self,
        caller: &Caller,
        district: DistrictId,
    ) -> Result<Option<DistrictStaffRole>, StandingError> {
        if caller.platform_admin {
            // Platform admins need no staff role; skip the lookup.
            return Ok(None);
        }
        let role = self.repo.staff_role(district, caller.user).await?;
        if role.is_none() || caller.second_factor {
            return Ok(role);
        }
        let requires = self
            .repo
            .get_district(district)
            .await?
            .is_some_and(|d| rules::requires_second_factor(&d.settings));
        Ok(rules::usable_staff_role(
            role,
            requires,
            caller.second_factor,
        )?)
    }

    async fn placement(
        &self,
        caller: &Caller,
        district: Option<DistrictId>,
    ) -> Result<Placement, StandingError> {
        Ok(match district {
            None => Placement::Standalone,
            Some(d) => Placement::InDistrict {
                caller_role: self.role(caller, d).await?,
            },
        })
    }

    async fn check<E>(
        &self,
        caller: &Caller,
        district: DistrictId,
        action: DistrictAction,
    ) -> Result<(), ServiceError<E>>
    where
        E: std::error::Error + From<ReadError> + 'static,
    {
        let role = self.role(caller, district).await?;
        authorize(action, caller.platform_admin, role)?;
        Ok(())
    }

    /// Creates a district (platform admins only).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], or the port's [`CreateDistrictError`].
    pub async fn create_district(
        &self,
        caller: &Caller,
        ctx: &AuditContext,
        req: CreateDistrictRequest,
    ) -> Result<District, ServiceError<CreateDistrictError>> {
        authorize(DistrictAction::CreateDistrict, caller.platform_admin, None)?;
        self.repo
            .create_district(ctx, req)
            .await
            .map_err(ServiceError::Store)
    }

    /// Loads a district the caller may see; `None` if it does not exist.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] for a district the caller has no standing in (also
    /// when it does not exist, so its existence is not revealed).
    pub async fn get_district(
        &self,
        caller: &Caller,
        id: DistrictId,
    ) -> Result<Option<District>, ServiceError<ReadError>> {
        let role = self.role(caller, id).await?;
        authorize(DistrictAction::View, caller.platform_admin, role)?;
        self.repo
            .get_district(id)
            .await
            .map_err(ServiceError::Store)
    }

    /// Changes a district: name and settings by its admins, tier and code by platform
    /// admins only.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], or the port's [`UpdateDistrictError`].
    pub async fn update_district(
        &self,
        caller: &Caller,
        ctx: &AuditContext,
        id: DistrictId,
        expected_version: Option<i64>,
        changes: DistrictChanges,
    ) -> Result<District, ServiceError<UpdateDistrictError>> {
        let action = if changes.touches_tier_or_code() {
            DistrictAction::ChangeTierOrCode
        } else {
            DistrictAction::EditDistrict
        };
        self.check(caller, id, action).await?;
        self.repo
            .update_district(ctx, id, expected_version, changes)
            .await
            .map_err(ServiceError::Store)
    }

    /// Deletes a district (platform admins only); see
    /// [`DistrictRepository::delete_district`].
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], or the port's [`DeleteDistrictError`].
    pub async fn delete_district(
        &self,
        caller: &Caller,
        ctx: &AuditContext,
        id: DistrictId,
        expected_version: Option<i64>,
    ) -> Result<DeletedDistrict, ServiceError<DeleteDistrictError>> {
        authorize(DistrictAction::DeleteDistrict, caller.platform_admin, None)?;
        self.repo
            .delete_district(ctx, id, expected_version)
            .await
            .map_err(ServiceError::Store)
    }

    /// Creates a school: in a district by its admins, standalone by platform admins.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], or the port's [`CreateSchoolError`].
    pub async fn create_school(
        &self,
        caller: &Caller,
        ctx: &AuditContext,
        req: CreateSchoolRequest,
    ) -> Result<School, ServiceError<CreateSchoolError>> {
        let placement = self.placement(caller, req.district_id).await?;
        authorize_placement(caller.platform_admin, placement)?;
        self.repo
            .create_school(ctx, req)
            .await
            .map_err(ServiceError::Store)
    }

    /// Loads a school the caller may see: staff of its district and platform admins
    /// (only platform admins for a standalone school).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] for a school the caller has no standing towards
    /// (answer it as "not found", so its existence is not revealed).
    pub async fn get_school(
        &self,
        caller: &Caller,
        id: SchoolId,
    ) -> Result<Option<School>, ServiceError<ReadError>> {
        let Some(school) = self.repo.get_school(id).await? else {
            return Ok(None);
        };
        match school.district_id {
            Some(d) => self.check(caller, d, DistrictAction::View).await?,
            None => authorize(DistrictAction::View, caller.platform_admin, None)?,
        }
        Ok(Some(school))
    }

    /// Deletes a school no org is placed at any more (its district's admins, or
    /// platform admins for a standalone school). The write is conditional on the
    /// version the rules were checked against.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], or the port's [`DeleteSchoolError`].
    pub async fn delete_school(
        &self,
        caller: &Caller,
        ctx: &AuditContext,
        id: SchoolId,
        expected_version: Option<i64>,
    ) -> Result<School, ServiceError<DeleteSchoolError>> {
        let school = self
            .managed_school(caller, id, DeleteSchoolError::NotFound)
            .await?;
        let version = expected_version.unwrap_or(school.version);
        self.repo
            .delete_school(ctx, id, Some(version))
            .await
            .map_err(ServiceError::Store)
    }

    /// A page of the orgs placed in a district or school (anyone who may see the
    /// district; platform admins for a standalone school), with their total; `None`
    /// when the district or school does not exist.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] (answer it as "not found"); a read failure.
    pub async fn list_orgs(
        &self,
        caller: &Caller,
        scope: OrgScope,
        after: Option<OrgId>,
        limit: u64,
    ) -> Result<Option<(Vec<PlacedOrg>, u64)>, ServiceError<ReadError>> {
        let exists = match scope {
            OrgScope::District(d) => self.get_district(caller, d).await?.is_some(),
            OrgScope::School(s) => self.get_school(caller, s).await?.is_some(),
        };
        if !exists {
            return Ok(None);
        }
        let rows = self.repo.list_orgs(scope, after, limit).await?;
        let total = self.repo.count_orgs(scope).await?;
        Ok(Some((rows, total)))
    }

    /// A district's staff with their roles, oldest first (anyone who may see the
    /// district).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] (answer it as "not found"); a read failure.
    pub async fn list_staff(
        &self,
        caller: &Caller,
        district: DistrictId,
    ) -> Result<Vec<DistrictStaff>, ServiceError<ReadError>> {
        self.check(caller, district, DistrictAction::View).await?;
        self.repo
            .list_staff(district)
            .await
            .map_err(ServiceError::Store)
    }

    /// Loads a school the caller may manage, or `NotFound`.
    async fn managed_school<E>(
        &self,
        caller: &Caller,
        id: SchoolId,
        not_found: E,
    ) -> Result<School, ServiceError<E>>
    where
        E: std::error::Error + From<ReadError> + 'static,
    {
        let Some(school) = self.repo.get_school(id).await? else {
            return Err(ServiceError::Store(not_found));
        };
        let placement = self.placement(caller, school.district_id).await?;
        authorize_placement(caller.platform_admin, placement)?;
        Ok(school)
    }

    /// Changes a school (its district's admins, or platform admins for a standalone
    /// school). The write is conditional on the version the rules were checked
    /// against, so a concurrent move cannot slip past them.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], or the port's [`UpdateSchoolError`].
    pub async fn update_school(
        &self,
        caller: &Caller,
        ctx: &AuditContext,
        id: SchoolId,
        expected_version: Option<i64>,
        changes: SchoolChanges,
    ) -> Result<School, ServiceError<UpdateSchoolError>> {
        let school = self
            .managed_school(caller, id, UpdateSchoolError::NotFound)
            .await?;
        let version = expected_version.unwrap_or(school.version);
        self.repo
            .update_school(ctx, id, Some(version), changes)
            .await
            .map_err(ServiceError::Store)
    }

    /// Moves a school (and its orgs) to another district or out of any: needs
    /// authority over both the district it leaves and the one it joins (a standalone
    /// end needs a platform admin). Moving it where it already is writes nothing.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], or the port's [`MoveSchoolError`].
    pub async fn move_school(
        &self,
        caller: &Caller,
        ctx: &AuditContext,
        id: SchoolId,
        to: Option<DistrictId>,
        expected_version: Option<i64>,
    ) -> Result<SchoolMove, ServiceError<MoveSchoolError>> {
        let school = self
            .managed_school(caller, id, MoveSchoolError::NotFound)
            .await?;
        if let Some(v) = expected_version
            && v != school.version
        {
            return Err(ServiceError::Store(MoveSchoolError::VersionMismatch {
                current: school.version,
            }));
        }
        match rules::plan_move(school.district_id, to) {
            MovePlan::Unchanged => Ok(SchoolMove {
                from: school.district_id,
                school,
                affected_orgs: Vec::new(),
            }),
            MovePlan::Move { to, .. } => {
                let target = self.placement(caller, to).await?;
                authorize_placement(caller.platform_admin, target)?;
                self.repo
                    .move_school(ctx, id, to, Some(school.version))
                    .await
                    .map_err(ServiceError::Store)
            }
        }
    }

    /// Moves an org to a school (and that school's district) or out of any
    /// (`to: None`). Authority over both ends is needed ([`authorize_org_move`]);
    /// `standing` is the caller's membership in the org. A caller who is neither a
    /// member, nor staff of the org's district, nor a platform admin is told the org
    /// does not exist. Moving it where it already is writes nothing.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], or the port's [`MoveOrgError`].
    pub async fn move_org(
        &self,
        caller: &Caller,
        standing: OrgStanding,
        ctx: &AuditContext,
        org: OrgId,
        to: Option<SchoolId>,
        expected_version: Option<i64>,
    ) -> Result<OrgMove, ServiceError<MoveOrgError>> {
        let (current, from) = self.org_in_reach(caller, standing, org).await?;
        if let Some(v) = expected_version
            && v != current.version
        {
            return Err(ServiceError::Store(MoveOrgError::VersionMismatch {
                current: current.version,
            }));
        }
        let target_district = match to {
            Some(school) => match self.repo.get_school(school).await? {
                Some(s) => s.district_id,
                None => return Err(ServiceError::Store(MoveOrgError::SchoolNotFound)),
            },
            None => None,
        };
        if to == current.school_id && target_district == current.district_id {
            return Ok(OrgMove {
                before: current,
                after: current,
            });
        }
        let target = self.placement(caller, target_district).await?;
        authorize_org_move(caller.platform_admin, standing, from, target)?;
        self.repo
            .move_org(ctx, org, to, Some(current.version))
            .await
            .map_err(ServiceError::Store)
    }

    /// Where an org sits, if the caller has any standing towards it: a member, staff of
    /// its district, or a platform admin. Anyone else is told it does not exist.
    ///
    /// # Errors
    /// [`MoveOrgError::NotFound`], or a storage failure.
    pub async fn org_in_reach(
        &self,
        caller: &Caller,
        standing: OrgStanding,
        org: OrgId,
    ) -> Result<(OrgPlacement, Placement), ServiceError<MoveOrgError>> {
        let Some(current) = self.repo.org_placement(org).await? else {
            return Err(ServiceError::Store(MoveOrgError::NotFound));
        };
        let placement = self.placement(caller, current.district_id).await?;
        let sees_it = caller.platform_admin
            || standing != OrgStanding::Outsider
            || matches!(
                placement,
                Placement::InDistrict {
                    caller_role: Some(_)
                }
            );
        if sees_it {
            Ok((current, placement))
        } else {
            Err(ServiceError::Store(MoveOrgError::NotFound))
        }
    }

    /// Adds a staff member or changes their role (the district's admins).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], or the port's [`SetStaffError`].
    pub async fn set_staff(
        &self,
        caller: &Caller,
        ctx: &AuditContext,
        district: DistrictId,
        user: UserId,
        role: DistrictStaffRole,
        expected_version: Option<i64>,
    ) -> Result<DistrictStaff, ServiceError<SetStaffError>> {
        self.check(caller, district, DistrictAction::ManageStaff)
            .await?;
        self.repo
            .set_staff(ctx, district, user, role, expected_version)
            .await
            .map_err(ServiceError::Store)
    }

    /// Removes a staff member (the district's admins).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], or the port's [`RemoveStaffError`].
    pub async fn remove_staff(
        &self,
        caller: &Caller,
        ctx: &AuditContext,
        district: DistrictId,
        user: UserId,
    ) -> Result<DistrictStaff, ServiceError<RemoveStaffError>> {
        self.check(caller, district, DistrictAction::ManageStaff)
            .await?;
        self.repo
            .remove_staff(ctx, district, user)
            .await
            .map_err(ServiceError::Store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MockDistrictRepository;
    use crate::{DisplayName, DistrictCode, GradeLevels};
    use time::OffsetDateTime;

    fn ctx() -> AuditContext {
        AuditContext {
            actor: audit::Actor::System,
            request: audit::RequestMeta::default(),
        }
    }

    fn platform() -> Caller {
        Caller {
            user: UserId::new(),
            platform_admin: true,
            second_factor: true,
        }
    }

    fn staff() -> Caller {
        Caller {
            user: UserId::new(),
            platform_admin: false,
            second_factor: true,
        }
    }

    fn school(district: Option<DistrictId>, version: i64) -> School {
        School {
            id: SchoolId::new(),
            district_id: district,
            name: "Lincoln Elementary".into(),
            code: DistrictCode::parse("LINCOLN").expect("code"),
            grade_levels: vec!["K".into()],
            version,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// `staff_role` answers `role` for `district` and nothing elsewhere.
    fn with_roles(repo: &mut MockDistrictRepository, roles: Vec<(DistrictId, DistrictStaffRole)>) {
        repo.expect_staff_role().returning(move |d, _| {
            let role = roles.iter().find(|(id, _)| *id == d).map(|(_, r)| *r);
            Box::pin(async move { Ok(role) })
        });
    }

    fn with_school(repo: &mut MockDistrictRepository, s: School) {
        repo.expect_get_school().returning(move |_| {
            let s = s.clone();
            Box::pin(async move { Ok(Some(s)) })
        });
    }

    fn with_org(repo: &mut MockDistrictRepository, placement: crate::ports::OrgPlacement) {
        repo.expect_org_placement()
            .returning(move |_| Box::pin(async move { Ok(Some(placement)) }));
    }

    fn placed(district: Option<DistrictId>) -> crate::ports::OrgPlacement {
        crate::ports::OrgPlacement {
            org_id: OrgId::new(),
            school_id: district.map(|_| SchoolId::new()),
            district_id: district,
            version: 4,
        }
    }

    #[tokio::test]
    async fn an_outsider_is_told_the_org_does_not_exist() {
        let d = DistrictId::new();
        let org = placed(Some(d));
        let mut repo = MockDistrictRepository::new();
        with_org(&mut repo, org);
        with_roles(&mut repo, vec![]);
        repo.expect_move_org().never();
        let err = DistrictService::new(repo)
            .move_org(
                &staff(),
                OrgStanding::Outsider,
                &ctx(),
                org.org_id,
                None,
                None,
            )
            .await
            .expect_err("outsider");
        assert!(matches!(err, ServiceError::Store(MoveOrgError::NotFound)));
    }

    #[tokio::test]
    async fn a_standalone_org_joins_a_district_with_both_admins_agreeing() {
        let d = DistrictId::new();
        let org = placed(None);
        let target = school(Some(d), 1);
        let target_id = target.id;
        let mut repo = MockDistrictRepository::new();
        with_org(&mut repo, org);
        with_school(&mut repo, target);
        with_roles(&mut repo, vec![(d, DistrictStaffRole::DistrictAdmin)]);
        repo.expect_move_org()
            .withf(move |_, o, to, v| *o == org.org_id && *to == Some(target_id) && *v == Some(4))
            .times(1)
            .returning(move |_, _, to, _| {
                let after = crate::ports::OrgPlacement {
                    school_id: to,
                    district_id: Some(d),
                    version: 5,
                    ..org
                };
                Box::pin(async move { Ok(OrgMove { before: org, after }) })
            });
        let service = DistrictService::new(repo);
        // The district admin alone may not annex the PTO…
        let err = service
            .move_org(
                &staff(),
                OrgStanding::Outsider,
                &ctx(),
                org.org_id,
                Some(target_id),
                None,
            )
            .await
            .expect_err("no consent of the org");
        assert!(matches!(err, ServiceError::Store(MoveOrgError::NotFound)));
        let err = service
            .move_org(
                &staff(),
                OrgStanding::Member,
                &ctx(),
                org.org_id,
                Some(target_id),
                None,
            )
            .await
            .expect_err("a plain member does not decide");
        assert!(matches!(err, ServiceError::Forbidden(_)));
        // …but an org admin who is also the district's admin may.
        let moved = service
            .move_org(
                &staff(),
                OrgStanding::Admin,
                &ctx(),
                org.org_id,
                Some(target_id),
                None,
            )
            .await
            .expect("both ends");
        assert!(moved.permissions_changed());
        assert_eq!(moved.after.district_id, Some(d));
    }

    #[tokio::test]
    async fn a_stale_version_or_unknown_school_is_refused_before_writing() {
        let org = placed(None);
        let mut repo = MockDistrictRepository::new();
        with_org(&mut repo, org);
        repo.expect_get_school()
            .returning(|_| Box::pin(async { Ok(None) }));
        repo.expect_move_org().never();
        let service = DistrictService::new(repo);
        let err = service
            .move_org(
                &platform(),
                OrgStanding::Outsider,
                &ctx(),
                org.org_id,
                None,
                Some(3),
            )
            .await
            .expect_err("stale");
        assert!(matches!(
            err,
            ServiceError::Store(MoveOrgError::VersionMismatch { current: 4 })
        ));
        let err = service
            .move_org(
                &platform(),
                OrgStanding::Outsider,
                &ctx(),
                org.org_id,
                Some(SchoolId::new()),
                None,
            )
            .await
            .expect_err("unknown school");
        assert!(matches!(
            err,
            ServiceError::Store(MoveOrgError::SchoolNotFound)
        ));
    }

    #[tokio::test]
    async fn moving_a_school_where_it_is_writes_nothing() {
        let d = DistrictId::new();
        let s = school(Some(d), 3);
        let mut repo = MockDistrictRepository::new();
        with_school(&mut repo, s.clone());
        with_roles(&mut repo, vec![(d, DistrictStaffRole::DistrictAdmin)]);
        repo.expect_move_school().never();
        let moved = DistrictService::new(repo)
            .move_school(&staff(), &ctx(), s.id, Some(d), None)
            .await
            .expect("no-op move");
        assert_eq!(moved.school, s);
        assert_eq!(moved.from, Some(d));
        assert!(moved.affected_orgs.is_empty());
    }

    #[tokio::test]
    async fn moving_needs_authority_over_both_districts() {
        let (a, b) = (DistrictId::new(), DistrictId::new());
        let s = school(Some(a), 1);
        let mut repo = MockDistrictRepository::new();
        with_school(&mut repo, s.clone());
        with_roles(
            &mut repo,
            vec![
                (a, DistrictStaffRole::DistrictAdmin),
                (b, DistrictStaffRole::DistrictViewer),
            ],
        );
        repo.expect_move_school().never();
        let service = DistrictService::new(repo);
        let err = service
            .move_school(&staff(), &ctx(), s.id, Some(b), None)
            .await
            .expect_err("viewer of the target");
        assert!(matches!(err, ServiceError::Forbidden(_)));
        let err = service
            .move_school(&staff(), &ctx(), s.id, None, None)
            .await
            .expect_err("standalone needs a platform admin");
        assert!(matches!(err, ServiceError::Forbidden(_)));
    }

    #[tokio::test]
    async fn a_move_is_conditional_on_the_checked_version() {
        let (a, b) = (DistrictId::new(), DistrictId::new());
        let s = school(Some(a), 7);
        let id = s.id;
        let mut repo = MockDistrictRepository::new();
        with_school(&mut repo, s.clone());
        repo.expect_staff_role().never();
        repo.expect_move_school()
            .withf(move |_, school, to, version| {
                *school == id && *to == Some(b) && *version == Some(7)
            })
            .times(1)
            .returning(move |_, _, to, _| {
                let mut moved = s.clone();
                moved.district_id = to;
                moved.version += 1;
                Box::pin(async move {
                    Ok(SchoolMove {
                        school: moved,
                        from: Some(a),
                        affected_orgs: vec![OrgId::new()],
                    })
                })
            });
        let service = DistrictService::new(repo);
        let moved = service
            .move_school(&platform(), &ctx(), id, Some(b), None)
            .await
            .expect("moved");
        assert_eq!(moved.school.district_id, Some(b));
        assert_eq!(moved.affected_orgs.len(), 1);
        let stale = service
            .move_school(&platform(), &ctx(), id, Some(b), Some(6))
            .await
            .expect_err("stale version");
        assert!(matches!(
            stale,
            ServiceError::Store(MoveSchoolError::VersionMismatch { current: 7 })
        ));
    }

    #[tokio::test]
    async fn district_admins_edit_but_do_not_change_tier() {
        let d = DistrictId::new();
        let mut repo = MockDistrictRepository::new();
        with_roles(&mut repo, vec![(d, DistrictStaffRole::DistrictAdmin)]);
        repo.expect_update_district()
            .withf(|_, _, _, c| c.tier.is_none())
            .times(1)
            .returning(|_, _, _, _| Box::pin(async { Err(UpdateDistrictError::NotFound) }));
        let service = DistrictService::new(repo);
        let rename = DistrictChanges {
            name: Some(DisplayName::parse("New").expect("name")),
            ..DistrictChanges::default()
        };
        let err = service
            .update_district(&staff(), &ctx(), d, None, rename)
            .await
            .expect_err("mock answers NotFound");
        assert!(matches!(
            err,
            ServiceError::Store(UpdateDistrictError::NotFound)
        ));
        let upgrade = DistrictChanges {
            tier: Some(crate::SubscriptionTier::Enterprise),
            ..DistrictChanges::default()
        };
        let err = service
            .update_district(&staff(), &ctx(), d, None, upgrade)
            .await
            .expect_err("tier is a platform decision");
        assert!(matches!(
            err,
            ServiceError::Forbidden(Forbidden {
                action: DistrictAction::ChangeTierOrCode
            })
        ));
    }

    #[tokio::test]
    async fn only_platform_admins_create_standalone_schools_and_districts() {
        let mut repo = MockDistrictRepository::new();
        repo.expect_create_school().never();
        repo.expect_create_district().never();
        let service = DistrictService::new(repo);
        let req = CreateSchoolRequest {
            district_id: None,
            name: DisplayName::parse("Solo").expect("name"),
            code: DistrictCode::parse("SOLO").expect("code"),
            grade_levels: GradeLevels::default(),
        };
        let err = service
            .create_school(&staff(), &ctx(), req)
            .await
            .expect_err("forbidden");
        assert!(matches!(err, ServiceError::Forbidden(_)));
        let err = service
            .create_district(
                &staff(),
                &ctx(),
                CreateDistrictRequest {
                    name: DisplayName::parse("D").expect("name"),
                    code: DistrictCode::parse("DD").expect("code"),
                    tier: crate::SubscriptionTier::Basic,
                    settings: crate::DistrictSettings::new(),
                },
            )
            .await
            .expect_err("forbidden");
        assert!(matches!(err, ServiceError::Forbidden(_)));
    }

    #[tokio::test]
    async fn schools_are_seen_by_staff_and_deleted_by_admins_only() {
        let d = DistrictId::new();
        let s = school(Some(d), 3);
        let id = s.id;
        let mut repo = MockDistrictRepository::new();
        with_school(&mut repo, s);
        with_roles(&mut repo, vec![(d, DistrictStaffRole::DistrictViewer)]);
        repo.expect_delete_school().never();
        repo.expect_list_orgs()
            .returning(|_, _, _| Box::pin(async { Ok(Vec::new()) }));
        repo.expect_count_orgs()
            .returning(|_| Box::pin(async { Ok(0) }));
        let service = DistrictService::new(repo);
        let viewer = staff();
        assert!(
            service
                .get_school(&viewer, id)
                .await
                .expect("seen")
                .is_some()
        );
        let page = service
            .list_orgs(&viewer, OrgScope::School(id), None, 51)
            .await
            .expect("listed");
        assert_eq!(page.map(|(rows, total)| (rows.len(), total)), Some((0, 0)));
        let err = service
            .delete_school(&viewer, &ctx(), id, Some(3))
            .await
            .expect_err("viewers do not delete");
        assert!(matches!(err, ServiceError::Forbidden(_)));
        let err = service
            .list_staff(&staff(), DistrictId::new())
            .await
            .expect_err("a stranger does not see another district's staff");
        assert!(matches!(err, ServiceError::Forbidden(_)));
    }

    #[tokio::test]
    async fn standalone_schools_are_seen_by_platform_admins_only() {
        let s = school(None, 1);
        let id = s.id;
        let mut repo = MockDistrictRepository::new();
        with_school(&mut repo, s);
        repo.expect_staff_role().never();
        let service = DistrictService::new(repo);
        let err = service.get_school(&staff(), id).await.expect_err("hidden");
        assert!(matches!(err, ServiceError::Forbidden(_)));
        assert!(
            service
                .get_school(&platform(), id)
                .await
                .expect("seen")
                .is_some()
        );
    }

    #[tokio::test]
    async fn viewers_cannot_manage_staff_and_strangers_cannot_see() {
        let d = DistrictId::new();
        let mut repo = MockDistrictRepository::new();
        with_roles(&mut repo, vec![(d, DistrictStaffRole::DistrictViewer)]);
        repo.expect_set_staff().never();
        repo.expect_get_district().never();
        let service = DistrictService::new(repo);
        let err = service
            .set_staff(
                &staff(),
                &ctx(),
                d,
                UserId::new(),
                DistrictStaffRole::DistrictAdmin,
                None,
            )
            .await
            .expect_err("viewer");
        assert!(matches!(err, ServiceError::Forbidden(_)));
        let err = service
            .get_district(&staff(), DistrictId::new())
            .await
            .expect_err("stranger");
        assert!(matches!(err, ServiceError::Forbidden(_)));
    }

    #[tokio::test]
    async fn staff_need_the_second_factor_their_district_requires() {
        let (strict, lax) = (DistrictId::new(), DistrictId::new());
        let mut repo = MockDistrictRepository::new();
        with_roles(
            &mut repo,
            vec![
                (strict, DistrictStaffRole::DistrictAdmin),
                (lax, DistrictStaffRole::DistrictAdmin),
            ],
        );
        repo.expect_get_district().returning(move |id| {
            let mut settings = crate::DistrictSettings::new();
            settings.insert(
                rules::REQUIRE_TWO_FACTOR.to_owned(),
                serde_json::Value::Bool(id == strict),
            );
            Box::pin(async move {
                Ok(Some(District {
                    id,
                    name: "D".into(),
                    code: DistrictCode::parse("D1").expect("code"),
                    tier: crate::SubscriptionTier::Basic,
                    settings,
                    version: 1,
                    created_at: OffsetDateTime::UNIX_EPOCH,
                    updated_at: OffsetDateTime::UNIX_EPOCH,
                }))
            })
        });
        let service = DistrictService::new(repo);
        let without = Caller {
            second_factor: false,
            ..staff()
        };
        let err = service.role(&without, strict).await.expect_err("refused");
        assert!(
            matches!(err, StandingError::SecondFactorRequired(_)),
            "{err:?}"
        );
        let err = service
            .get_district(&without, strict)
            .await
            .expect_err("refused");
        assert!(
            matches!(err, ServiceError::SecondFactorRequired(_)),
            "{err:?}"
        );
        assert_eq!(
            service.role(&without, lax).await.expect("lax"),
            Some(DistrictStaffRole::DistrictAdmin)
        );
        assert_eq!(
            service
                .role(&staff(), strict)
                .await
                .expect("with a second factor"),
            Some(DistrictStaffRole::DistrictAdmin)
        );
    }
}
