//! [`DistrictRepository`] on SeaORM.

use audit::EventType;
use audit::{ChangeType, TenantScope};
use districts::ports::{
    AuditContext, CreateDistrictError, CreateDistrictRequest, CreateSchoolError,
    CreateSchoolRequest, DeleteDistrictError, DeleteSchoolError, DeletedDistrict, DistrictChanges,
    DistrictPage, DistrictPageRequest, DistrictRepository, MoveOrgError, MoveSchoolError, OrgMove,
    OrgPlacement, OrgScope, PlacedOrg, ReadError, RemoveStaffError, SchoolChanges, SchoolMove,
    SetStaffError, UpdateDistrictError, UpdateSchoolError,
};
use districts::rules::{self, MovePlan};
use districts::{District, DistrictId, DistrictStaff, DistrictStaffRole, School, SchoolId};
use persistence::WriteTx;
use persistence::{Database, now_micros};
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::json;
use tenancy::{OrgId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::convert::{
    self, Failure, begin, district_scope, failure, is_foreign_key_violation, is_unique_violation,
    json, record,
};
use crate::entity::{district_rows, district_staff, organizations, schools, users};

/// [`DistrictRepository`] on SeaORM (PostgreSQL or SQLite).
///
/// Every write runs in one transaction together with its audit events
/// (`audit_store::append_event`). Rows being changed are locked first (`SELECT … FOR
/// UPDATE` on PostgreSQL; on SQLite the transaction starts with `BEGIN IMMEDIATE`, which
/// holds the database write lock), so version checks and the denormalized
/// `organizations.district_id` cannot race with another writer of the same rows.
#[derive(Debug, Clone)]
pub struct SeaOrmDistrictRepository {
    db: Database,
}

impl SeaOrmDistrictRepository {
    /// A repository over the given database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

/// `col + 1`.
fn incremented(col: impl sea_orm::sea_query::IntoColumnRef) -> SimpleExpr {
    use sea_orm::sea_query::ExprTrait;
    Expr::col(col).add(1)
}

/// The district an org event is recorded against: where the org is after the change,
/// else where it was.
fn org_scope(org: Uuid, before: Option<Uuid>, after: Option<Uuid>) -> TenantScope {
    match after.or(before) {
        Some(d) => TenantScope::org_in_district(org, d),
        None => TenantScope::org(org),
    }
}

/// The orgs of a district (by their denormalized district) or of a school.
fn org_scope_filter(scope: OrgScope) -> SimpleExpr {
    match scope {
        OrgScope::District(d) => organizations::Column::DistrictId.eq(d.as_uuid()),
        OrgScope::School(s) => organizations::Column::SchoolId.eq(s.as_uuid()),
    }
}

fn placement_of(row: &organizations::Model) -> OrgPlacement {
    OrgPlacement {
        org_id: OrgId::from_uuid(row.id),
        school_id: row.school_id.map(SchoolId::from_uuid),
        district_id: row.district_id.map(DistrictId::from_uuid),
        version: row.version,
    }
}

/// Sets the district of the given (locked) orgs, bumps their `permissions_version`
/// (their effective permissions change now) and records `org.district.change` on each
/// org's chain. Returns their ids.
async fn reassign_orgs(
    conn: &WriteTx,
    ctx: &AuditContext,
    orgs: &[organizations::Model],
    to: Option<DistrictId>,
    now: OffsetDateTime,
) -> Result<Vec<OrgId>, Failure> {
    if orgs.is_empty() {
        return Ok(Vec::new());
    }
    let to = to.map(|d| d.as_uuid());
    organizations::Entity::update_many()
        .col_expr(organizations::Column::DistrictId, Expr::value(to))
        .col_expr(
            organizations::Column::PermissionsVersion,
            incremented(organizations::Column::PermissionsVersion),
        )
        .col_expr(organizations::Column::UpdatedAt, Expr::value(now))
        .filter(organizations::Column::Id.is_in(orgs.iter().map(|o| o.id)))
        .exec(conn)
        .await
        .map_err(failure)?;
    for org in orgs {
        record(
            conn,
            ctx,
            org_scope(org.id, org.district_id, to),
            EventType::OrgDistrictChange,
            ("organization", org.id.to_string()),
            ChangeType::Update,
            (
                Some(json!({ "district_id": org.district_id, "permissions_version": org.permissions_version })),
                Some(json!({ "district_id": to, "permissions_version": org.permissions_version + 1 })),
            ),
        )
        .await?;
    }
    Ok(orgs.iter().map(|o| OrgId::from_uuid(o.id)).collect())
}

impl DistrictRepository for SeaOrmDistrictRepository {
    async fn create_district(
        &self,
        ctx: &AuditContext,
        req: CreateDistrictRequest,
    ) -> Result<District, CreateDistrictError> {
        let txn = begin(&self.db).await?;
        let now = now_micros();
        let row = district_rows::ActiveModel {
            id: Set(DistrictId::new().as_uuid()),
            name: Set(req.name.as_str().to_owned()),
            code: Set(req.code.as_str().to_owned()),
            tier: Set(req.tier.as_str().to_owned()),
            settings: Set(serde_json::Value::Object(req.settings)),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                CreateDistrictError::DuplicateCode {
                    code: req.code.clone(),
                }
            } else {
                failure(e).into()
            }
        })?;
        let district = convert::district(row)?;
        record(
            &txn,
            ctx,
            TenantScope::district(district.id.as_uuid()),
            EventType::DistrictCreate,
            ("district", district.id.to_string()),
            ChangeType::Create,
            (None, json(&district)),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(district)
    }

    async fn get_district(&self, id: DistrictId) -> Result<Option<District>, ReadError> {
        Ok(district_rows::Entity::find_by_id(id.as_uuid())
            .one(self.db.primary())
            .await
            .map_err(failure)?
            .map(convert::district)
            .transpose()?)
    }

    async fn list_districts(&self, page: DistrictPageRequest) -> Result<DistrictPage, ReadError> {
        let mut query = district_rows::Entity::find();
        if let Some(after) = page.after() {
            query = query.filter(district_rows::Column::Id.gt(after.as_uuid()));
        }
        let rows = query
            .order_by_asc(district_rows::Column::Id)
            .limit(u64::from(page.limit()) + 1)
            .all(self.db.primary())
            .await
            .map_err(failure)?
            .into_iter()
            .map(convert::district)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.page(rows))
    }

    async fn update_district(
        &self,
        ctx: &AuditContext,
        id: DistrictId,
        expected_version: Option<i64>,
        changes: DistrictChanges,
    ) -> Result<District, UpdateDistrictError> {
        let txn = begin(&self.db).await?;
        let Some(row) = district_rows::Entity::find_by_id(id.as_uuid())
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Err(UpdateDistrictError::NotFound);
        };
        if let Some(v) = expected_version
            && v != row.version
        {
            return Err(UpdateDistrictError::VersionMismatch {
                current: row.version,
            });
        }
        let before = convert::district(row.clone())?;
        let mut active: district_rows::ActiveModel = row.clone().into();
        if let Some(name) = &changes.name {
            active.name = Set(name.as_str().to_owned());
        }
        if let Some(code) = &changes.code {
            active.code = Set(code.as_str().to_owned());
        }
        if let Some(tier) = changes.tier {
            active.tier = Set(tier.as_str().to_owned());
        }
        if let Some(settings) = changes.settings.clone() {
            active.settings = Set(serde_json::Value::Object(settings));
        }
        active.version = Set(row.version + 1);
        active.updated_at = Set(now_micros());
        let updated = active.update(&txn).await.map_err(|e| match &changes.code {
            Some(code) if is_unique_violation(&e) => {
                UpdateDistrictError::DuplicateCode { code: code.clone() }
            }
            _ => failure(e).into(),
        })?;
        let after = convert::district(updated)?;
        record(
            &txn,
            ctx,
            TenantScope::district(id.as_uuid()),
            EventType::DistrictUpdate,
            ("district", id.to_string()),
            ChangeType::Update,
            (json(&before), json(&after)),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(after)
    }

    async fn delete_district(
        &self,
        ctx: &AuditContext,
        id: DistrictId,
        expected_version: Option<i64>,
    ) -> Result<DeletedDistrict, DeleteDistrictError> {
        let txn = begin(&self.db).await?;
        let Some(row) = district_rows::Entity::find_by_id(id.as_uuid())
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Err(DeleteDistrictError::NotFound);
        };
        if let Some(v) = expected_version
            && v != row.version
        {
            return Err(DeleteDistrictError::VersionMismatch {
                current: row.version,
            });
        }
        let district = convert::district(row)?;
        let now = now_micros();

        // Schools: detached explicitly (rather than by the foreign key's SET NULL) so
        // their version moves too.
        let school_rows = schools::Entity::find()
            .filter(schools::Column::DistrictId.eq(id.as_uuid()))
            .order_by_asc(schools::Column::Id)
            .lock_exclusive()
            .all(&txn)
            .await
            .map_err(failure)?;
        let school_ids: Vec<Uuid> = school_rows.iter().map(|s| s.id).collect();

        // Orgs: by their denormalized district, and (defensively) by their school.
        let mut in_district =
            Condition::any().add(organizations::Column::DistrictId.eq(id.as_uuid()));
        if !school_ids.is_empty() {
            in_district =
                in_district.add(organizations::Column::SchoolId.is_in(school_ids.clone()));
        }
        let org_rows = organizations::Entity::find()
            .filter(in_district)
            .order_by_asc(organizations::Column::Id)
            .lock_exclusive()
            .all(&txn)
            .await
            .map_err(failure)?;
        let staff_rows = district_staff::Entity::find()
            .filter(district_staff::Column::DistrictId.eq(id.as_uuid()))
            .order_by_asc(district_staff::Column::CreatedAt)
            .order_by_asc(district_staff::Column::UserId)
            .all(&txn)
            .await
            .map_err(failure)?;
        let removed_staff = staff_rows
            .into_iter()
            .map(convert::staff)
            .collect::<Result<Vec<_>, _>>()?;

        let detached_orgs = reassign_orgs(&txn, ctx, &org_rows, None, now).await?;
        if !school_ids.is_empty() {
            schools::Entity::update_many()
                .col_expr(
                    schools::Column::DistrictId,
                    Expr::value(Option::<Uuid>::None),
                )
                .col_expr(
                    schools::Column::Version,
                    incremented(schools::Column::Version),
                )
                .col_expr(schools::Column::UpdatedAt, Expr::value(now))
                .filter(schools::Column::Id.is_in(school_ids.clone()))
                .exec(&txn)
                .await
                .map_err(failure)?;
        }
        // Staff and permission templates go with the district (ON DELETE CASCADE).
        district_rows::Entity::delete_by_id(id.as_uuid())
            .exec(&txn)
            .await
            .map_err(failure)?;

        let detached_schools: Vec<SchoolId> =
            school_ids.into_iter().map(SchoolId::from_uuid).collect();
        let deleted = DeletedDistrict {
            district,
            detached_schools,
            detached_orgs,
            removed_staff,
        };
        record(
            &txn,
            ctx,
            TenantScope::district(id.as_uuid()),
            EventType::DistrictDelete,
            ("district", id.to_string()),
            ChangeType::Delete,
            (
                Some(json!({
                    "district": deleted.district,
                    "detached_schools": deleted.detached_schools,
                    "detached_orgs": deleted.detached_orgs,
                    "removed_staff": deleted.removed_staff,
                })),
                None,
            ),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(deleted)
    }

    async fn create_school(
        &self,
        ctx: &AuditContext,
        req: CreateSchoolRequest,
    ) -> Result<School, CreateSchoolError> {
        let txn = begin(&self.db).await?;
        if let Some(d) = req.district_id
            && district_rows::Entity::find_by_id(d.as_uuid())
                .one(&txn)
                .await
                .map_err(failure)?
                .is_none()
        {
            return Err(CreateSchoolError::DistrictNotFound);
        }
        let now = now_micros();
        let row = schools::ActiveModel {
            id: Set(SchoolId::new().as_uuid()),
            district_id: Set(req.district_id.map(|d| d.as_uuid())),
            name: Set(req.name.as_str().to_owned()),
            code: Set(req.code.as_str().to_owned()),
            grade_levels: Set(json!(req.grade_levels.as_slice())),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                CreateSchoolError::DuplicateCode {
                    code: req.code.clone(),
                }
            } else if is_foreign_key_violation(&e) {
                CreateSchoolError::DistrictNotFound
            } else {
                failure(e).into()
            }
        })?;
        let school = convert::school(row)?;
        record(
            &txn,
            ctx,
            district_scope(school.district_id),
            EventType::SchoolCreate,
            ("school", school.id.to_string()),
            ChangeType::Create,
            (None, json(&school)),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(school)
    }

    async fn get_school(&self, id: SchoolId) -> Result<Option<School>, ReadError> {
        Ok(schools::Entity::find_by_id(id.as_uuid())
            .one(self.db.primary())
            .await
            .map_err(failure)?
            .map(convert::school)
            .transpose()?)
    }

    async fn list_schools(&self, district: DistrictId) -> Result<Vec<School>, ReadError> {
        Ok(schools::Entity::find()
            .filter(schools::Column::DistrictId.eq(district.as_uuid()))
            .order_by_asc(schools::Column::Code)
            .order_by_asc(schools::Column::Id)
            .all(self.db.primary())
            .await
            .map_err(failure)?
            .into_iter()
            .map(convert::school)
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn update_school(
        &self,
        ctx: &AuditContext,
        id: SchoolId,
        expected_version: Option<i64>,
        changes: SchoolChanges,
    ) -> Result<School, UpdateSchoolError> {
        let txn = begin(&self.db).await?;
        let Some(row) = schools::Entity::find_by_id(id.as_uuid())
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Err(UpdateSchoolError::NotFound);
        };
        if let Some(v) = expected_version
            && v != row.version
        {
            return Err(UpdateSchoolError::VersionMismatch {
                current: row.version,
            });
        }
        let before = convert::school(row.clone())?;
        let mut active: schools::ActiveModel = row.clone().into();
        if let Some(name) = &changes.name {
            active.name = Set(name.as_str().to_owned());
        }
        if let Some(code) = &changes.code {
            active.code = Set(code.as_str().to_owned());
        }
        if let Some(grades) = &changes.grade_levels {
            active.grade_levels = Set(json!(grades.as_slice()));
        }
        active.version = Set(row.version + 1);
        active.updated_at = Set(now_micros());
        let updated = active.update(&txn).await.map_err(|e| match &changes.code {
            Some(code) if is_unique_violation(&e) => {
                UpdateSchoolError::DuplicateCode { code: code.clone() }
            }
            _ => failure(e).into(),
        })?;
        let after = convert::school(updated)?;
        record(
            &txn,
            ctx,
            district_scope(after.district_id),
            EventType::SchoolUpdate,
            ("school", id.to_string()),
            ChangeType::Update,
            (json(&before), json(&after)),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(after)
    }

    async fn delete_school(
        &self,
        ctx: &AuditContext,
        id: SchoolId,
        expected_version: Option<i64>,
    ) -> Result<School, DeleteSchoolError> {
        let txn = begin(&self.db).await?;
        // Locked, so an org moving in (which locks its new school) waits or is seen.
        let Some(row) = schools::Entity::find_by_id(id.as_uuid())
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Err(DeleteSchoolError::NotFound);
        };
        if let Some(v) = expected_version
            && v != row.version
        {
            return Err(DeleteSchoolError::VersionMismatch {
                current: row.version,
            });
        }
        let count = organizations::Entity::find()
            .filter(organizations::Column::SchoolId.eq(id.as_uuid()))
            .count(&txn)
            .await
            .map_err(failure)?;
        if count > 0 {
            return Err(DeleteSchoolError::HasOrgs { count });
        }
        let school = convert::school(row)?;
        // Its permission templates go with it (ON DELETE CASCADE).
        schools::Entity::delete_by_id(id.as_uuid())
            .exec(&txn)
            .await
            .map_err(failure)?;
        record(
            &txn,
            ctx,
            district_scope(school.district_id),
            EventType::SchoolDelete,
            ("school", id.to_string()),
            ChangeType::Delete,
            (json(&school), None),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(school)
    }

    async fn list_orgs(
        &self,
        scope: OrgScope,
        after: Option<OrgId>,
        limit: u64,
    ) -> Result<Vec<PlacedOrg>, ReadError> {
        let mut query = organizations::Entity::find().filter(org_scope_filter(scope));
        if let Some(after) = after {
            query = query.filter(organizations::Column::Id.gt(after.as_uuid()));
        }
        Ok(query
            .order_by_asc(organizations::Column::Id)
            .limit(limit)
            .all(self.db.primary())
            .await
            .map_err(failure)?
            .into_iter()
            .map(|row| PlacedOrg {
                placement: placement_of(&row),
                name: row.name,
                status: row.status,
            })
            .collect())
    }

    async fn count_orgs(&self, scope: OrgScope) -> Result<u64, ReadError> {
        Ok(organizations::Entity::find()
            .filter(org_scope_filter(scope))
            .count(self.db.primary())
            .await
            .map_err(failure)?)
    }

    async fn move_school(
        &self,
        ctx: &AuditContext,
        id: SchoolId,
        to: Option<DistrictId>,
        expected_version: Option<i64>,
    ) -> Result<SchoolMove, MoveSchoolError> {
        let txn = begin(&self.db).await?;
        let Some(row) = schools::Entity::find_by_id(id.as_uuid())
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Err(MoveSchoolError::NotFound);
        };
        if let Some(v) = expected_version
            && v != row.version
        {
            return Err(MoveSchoolError::VersionMismatch {
                current: row.version,
            });
        }
        let before = convert::school(row.clone())?;
        let from = before.district_id;
        let to = match rules::plan_move(from, to) {
            MovePlan::Unchanged => {
                txn.rollback().await.map_err(failure)?;
                return Ok(SchoolMove {
                    school: before,
                    from,
                    affected_orgs: Vec::new(),
                });
            }
            MovePlan::Move { to, .. } => to,
        };
        if let Some(d) = to
            && district_rows::Entity::find_by_id(d.as_uuid())
                .one(&txn)
                .await
                .map_err(failure)?
                .is_none()
        {
            return Err(MoveSchoolError::DistrictNotFound);
        }
        let now = now_micros();
        let mut active: schools::ActiveModel = row.clone().into();
        active.district_id = Set(to.map(|d| d.as_uuid()));
        active.version = Set(row.version + 1);
        active.updated_at = Set(now);
        let updated = active.update(&txn).await.map_err(|e| {
            if is_unique_violation(&e) {
                MoveSchoolError::DuplicateCode {
                    code: before.code.clone(),
                }
            } else if is_foreign_key_violation(&e) {
                MoveSchoolError::DistrictNotFound
            } else {
                failure(e).into()
            }
        })?;
        let after = convert::school(updated)?;

        let org_rows = organizations::Entity::find()
            .filter(organizations::Column::SchoolId.eq(id.as_uuid()))
            .order_by_asc(organizations::Column::Id)
            .lock_exclusive()
            .all(&txn)
            .await
            .map_err(failure)?;
        let affected_orgs = reassign_orgs(&txn, ctx, &org_rows, to, now).await?;

        // The move belongs to the history of both districts involved.
        let scopes: Vec<TenantScope> = match (from, to) {
            (Some(a), Some(b)) => vec![district_scope(Some(a)), district_scope(Some(b))],
            (a, b) => vec![district_scope(a.or(b))],
        };
        let values = (
            Some(json!({ "school": before, "district_id": from })),
            Some(json!({ "school": after, "district_id": to, "affected_orgs": affected_orgs })),
        );
        for scope in scopes {
            record(
                &txn,
                ctx,
                scope,
                EventType::SchoolMove,
                ("school", id.to_string()),
                ChangeType::Update,
                values.clone(),
            )
            .await?;
        }
        txn.commit().await.map_err(failure)?;
        Ok(SchoolMove {
            school: after,
            from,
            affected_orgs,
        })
    }

    async fn org_placement(&self, org: OrgId) -> Result<Option<OrgPlacement>, ReadError> {
        Ok(organizations::Entity::find_by_id(org.as_uuid())
            .one(self.db.primary())
            .await
            .map_err(failure)?
            .map(|row| placement_of(&row)))
    }

    async fn move_org(
        &self,
        ctx: &AuditContext,
        org: OrgId,
        to: Option<SchoolId>,
        expected_version: Option<i64>,
    ) -> Result<OrgMove, MoveOrgError> {
        let txn = begin(&self.db).await?;
        if !txn.lock_org(org.as_uuid()).await.map_err(failure)? {
            return Err(MoveOrgError::NotFound);
        }
        let Some(row) = organizations::Entity::find_by_id(org.as_uuid())
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Err(MoveOrgError::NotFound);
        };
        if let Some(v) = expected_version
            && v != row.version
        {
            return Err(MoveOrgError::VersionMismatch {
                current: row.version,
            });
        }
        let before = placement_of(&row);
        // The school is locked too, so a concurrent school move cannot leave the org
        // with its school's old district.
        let to_district = match to {
            Some(school) => {
                schools::Entity::find_by_id(school.as_uuid())
                    .lock_exclusive()
                    .one(&txn)
                    .await
                    .map_err(failure)?
                    .ok_or(MoveOrgError::SchoolNotFound)?
                    .district_id
            }
            None => None,
        }
        .map(DistrictId::from_uuid);
        if before.school_id == to && before.district_id == to_district {
            txn.rollback().await.map_err(failure)?;
            return Ok(OrgMove {
                before,
                after: before,
            });
        }
        let mut active: organizations::ActiveModel = row.clone().into();
        active.school_id = Set(to.map(|s| s.as_uuid()));
        active.district_id = Set(to_district.map(|d| d.as_uuid()));
        active.version = Set(row.version + 1);
        active.permissions_version = Set(row.permissions_version + 1);
        active.updated_at = Set(now_micros());
        let updated = active.update(&txn).await.map_err(|e| {
            if is_foreign_key_violation(&e) {
                MoveOrgError::SchoolNotFound
            } else {
                failure(e).into()
            }
        })?;
        let after = placement_of(&updated);
        let values = (
            Some(json!({ "placement": before, "permissions_version": row.permissions_version })),
            Some(json!({ "placement": after, "permissions_version": updated.permissions_version })),
        );
        // The org's own history, and that of each district it leaves or joins.
        let mut scopes = vec![org_scope(
            org.as_uuid(),
            before.district_id.map(|d| d.as_uuid()),
            after.district_id.map(|d| d.as_uuid()),
        )];
        for d in [before.district_id, after.district_id]
            .into_iter()
            .flatten()
        {
            if !scopes.contains(&district_scope(Some(d))) {
                scopes.push(district_scope(Some(d)));
            }
        }
        for scope in scopes {
            record(
                &txn,
                ctx,
                scope,
                EventType::OrgMove,
                ("organization", org.to_string()),
                ChangeType::Update,
                values.clone(),
            )
            .await?;
        }
        txn.commit().await.map_err(failure)?;
        Ok(OrgMove { before, after })
    }

    async fn district_of_school(&self, school: SchoolId) -> Result<Option<DistrictId>, ReadError> {
        Ok(schools::Entity::find_by_id(school.as_uuid())
            .one(self.db.primary())
            .await
            .map_err(failure)?
            .and_then(|s| s.district_id)
            .map(DistrictId::from_uuid))
    }

    async fn set_staff(
        &self,
        ctx: &AuditContext,
        district: DistrictId,
        user: UserId,
        role: DistrictStaffRole,
        expected_version: Option<i64>,
    ) -> Result<DistrictStaff, SetStaffError> {
        let txn = begin(&self.db).await?;
        if district_rows::Entity::find_by_id(district.as_uuid())
            .one(&txn)
            .await
            .map_err(failure)?
            .is_none()
        {
            return Err(SetStaffError::DistrictNotFound);
        }
        let live_user = users::Entity::find_by_id(user.as_uuid())
            .one(&txn)
            .await
            .map_err(failure)?
            .is_some_and(|u| u.deleted_at.is_none());
        if !live_user {
            return Err(SetStaffError::UserNotFound);
        }
        let existing = district_staff::Entity::find_by_id((district.as_uuid(), user.as_uuid()))
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(failure)?;
        let current = existing.as_ref().map_or(0, |row| row.version);
        if expected_version.is_some_and(|v| v != current) {
            txn.rollback().await.map_err(failure)?;
            return Err(SetStaffError::VersionMismatch { current });
        }
        let scope = TenantScope::district(district.as_uuid());
        let entity = ("district_staff", user.to_string());
        let staff = match existing {
            Some(row) if row.role == role.as_str() => {
                txn.rollback().await.map_err(failure)?;
                return Ok(convert::staff(row)?);
            }
            Some(row) => {
                let before = convert::staff(row.clone())?;
                let version = row.version + 1;
                let mut active: district_staff::ActiveModel = row.into();
                active.role = Set(role.as_str().to_owned());
                active.version = Set(version);
                let after = convert::staff(active.update(&txn).await.map_err(failure)?)?;
                record(
                    &txn,
                    ctx,
                    scope,
                    EventType::DistrictStaffChange,
                    entity,
                    ChangeType::Update,
                    (json(&before), json(&after)),
                )
                .await?;
                after
            }
            None => {
                let row = district_staff::ActiveModel {
                    district_id: Set(district.as_uuid()),
                    user_id: Set(user.as_uuid()),
                    role: Set(role.as_str().to_owned()),
                    created_at: Set(now_micros()),
                    version: Set(1),
                }
                .insert(&txn)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        // Both existed a moment ago: the district was deleted meanwhile.
                        SetStaffError::DistrictNotFound
                    } else {
                        failure(e).into()
                    }
                })?;
                let after = convert::staff(row)?;
                record(
                    &txn,
                    ctx,
                    scope,
                    EventType::DistrictStaffAdd,
                    entity,
                    ChangeType::Create,
                    (None, json(&after)),
                )
                .await?;
                after
            }
        };
        txn.commit().await.map_err(failure)?;
        Ok(staff)
    }

    async fn remove_staff(
        &self,
        ctx: &AuditContext,
        district: DistrictId,
        user: UserId,
    ) -> Result<DistrictStaff, RemoveStaffError> {
        let txn = begin(&self.db).await?;
        let Some(row) = district_staff::Entity::find_by_id((district.as_uuid(), user.as_uuid()))
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(failure)?
        else {
            return Err(RemoveStaffError::NotFound);
        };
        let before = convert::staff(row)?;
        district_staff::Entity::delete_by_id((district.as_uuid(), user.as_uuid()))
            .exec(&txn)
            .await
            .map_err(failure)?;
        record(
            &txn,
            ctx,
            TenantScope::district(district.as_uuid()),
            EventType::DistrictStaffRemove,
            ("district_staff", user.to_string()),
            ChangeType::Delete,
            (json(&before), None),
        )
        .await?;
        txn.commit().await.map_err(failure)?;
        Ok(before)
    }

    async fn list_staff(&self, district: DistrictId) -> Result<Vec<DistrictStaff>, ReadError> {
        Ok(district_staff::Entity::find()
            .filter(district_staff::Column::DistrictId.eq(district.as_uuid()))
            .order_by_asc(district_staff::Column::CreatedAt)
            .order_by_asc(district_staff::Column::UserId)
            .all(self.db.primary())
            .await
            .map_err(failure)?
            .into_iter()
            .map(convert::staff)
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn staff_role(
        &self,
        district: DistrictId,
        user: UserId,
    ) -> Result<Option<DistrictStaffRole>, ReadError> {
        Ok(
            district_staff::Entity::find_by_id((district.as_uuid(), user.as_uuid()))
                .one(self.db.primary())
                .await
                .map_err(failure)?
                .map(|row| convert::staff_role(&row.role))
                .transpose()?,
        )
    }

    async fn districts_of(
        &self,
        user: UserId,
    ) -> Result<Vec<(DistrictId, DistrictStaffRole)>, ReadError> {
        Ok(district_staff::Entity::find()
            .filter(district_staff::Column::UserId.eq(user.as_uuid()))
            .order_by_asc(district_staff::Column::CreatedAt)
            .order_by_asc(district_staff::Column::DistrictId)
            .all(self.db.primary())
            .await
            .map_err(failure)?
            .into_iter()
            .map(|row| {
                Ok((
                    DistrictId::from_uuid(row.district_id),
                    convert::staff_role(&row.role)?,
                ))
            })
            .collect::<Result<Vec<_>, Failure>>()?)
    }
}
