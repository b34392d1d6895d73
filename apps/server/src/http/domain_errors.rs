//! Domain errors meet HTTP here, once: one `From<DomainError> for ApiError` per domain
//! error type, so every route that meets a condition answers it with the same status,
//! code and message, and routes just use `?`.
//!
//! Storage failures keep their source ([`ApiError::internal`]), which the edge walks to
//! tell an outage (503 with `Retry-After`) from a bug (500).

use tenancy::ports::{
    AddMemberError, ChangeMemberError, CreateOrgError, CreateRoleError, DeleteOrgError,
    DeleteRoleError, JoinOrgError, RestoreMemberError, StorageFailure, UpdateOrgError,
    UpdateRoleError,
};
use tenancy::rules::RoleChangeRefused;

use super::{ApiError, ErrorCode, FieldError};

/// 500, or 503 when the source says the database is unavailable.
impl From<StorageFailure> for ApiError {
    fn from(e: StorageFailure) -> Self {
        Self::internal(e.0)
    }
}

/// 403 for keys an actor tried to hand out without holding them (spec: "Who may hand
/// out what"), naming them in `details.keys_not_held`.
impl From<&permissions::NotHeld> for ApiError {
    fn from(e: &permissions::NotHeld) -> Self {
        Self::new(ErrorCode::PermissionDenied, e.to_string())
            .with_details(serde_json::json!({ "keys_not_held": e.key_names() }))
    }
}

impl From<permissions::NotHeld> for ApiError {
    fn from(e: permissions::NotHeld) -> Self {
        Self::from(&e)
    }
}

/// A rule of "who may hand out what" refused a change: 409 for the org's invariants
/// (last admin, a full role), 403 otherwise (naming unheld keys in
/// `details.keys_not_held`).
impl From<&RoleChangeRefused> for ApiError {
    fn from(r: &RoleChangeRefused) -> Self {
        match r {
            RoleChangeRefused::LastAdmin => Self::new(ErrorCode::Conflict, r.to_string())
                .with_details(serde_json::json!({ "reason": "last_admin" })),
            RoleChangeRefused::RoleFull { .. } => Self::new(ErrorCode::Conflict, r.to_string())
                .with_details(serde_json::json!({ "reason": "role_full" })),
            RoleChangeRefused::KeysNotHeld(e) => Self::from(e),
            RoleChangeRefused::SharedAccount => Self::new(ErrorCode::Conflict, r.to_string())
                .with_details(serde_json::json!({ "reason": "shared_account" })),
            RoleChangeRefused::OwnEmail => Self::validation(vec![FieldError {
                field: "email".into(),
                code: "own_address".into(),
                message: r.to_string(),
            }]),
            RoleChangeRefused::SelfEscalation
            | RoleChangeRefused::OwnTermExtended
            | RoleChangeRefused::AboveOwnRank { .. }
            | RoleChangeRefused::TargetOutranksActor
            | RoleChangeRefused::NotBelowActor
            | RoleChangeRefused::EmailNotEditable => {
                Self::new(ErrorCode::PermissionDenied, r.to_string())
            }
        }
    }
}

impl From<RoleChangeRefused> for ApiError {
    fn from(r: RoleChangeRefused) -> Self {
        Self::from(&r)
    }
}

/// 422 on `role.custom_role_id`: the custom role is not one of the org's.
fn unknown_role() -> ApiError {
    ApiError::validation(vec![FieldError {
        field: "role.custom_role_id".into(),
        code: "unknown".into(),
        message: "no such role in this organization".into(),
    }])
}

impl From<CreateOrgError> for ApiError {
    fn from(e: CreateOrgError) -> Self {
        match e {
            CreateOrgError::SignupCodeTaken => {
                Self::new(ErrorCode::Conflict, "that signup code is in use")
                    .with_details(serde_json::json!({"field": "signup_code"}))
            }
            CreateOrgError::SchoolNotFound => Self::not_found("no such school"),
            CreateOrgError::Unexpected(e) => e.into(),
        }
    }
}

impl From<UpdateOrgError> for ApiError {
    fn from(e: UpdateOrgError) -> Self {
        match e {
            UpdateOrgError::NotFound => Self::not_found("no such organization"),
            UpdateOrgError::VersionMismatch { current } => Self::new(
                ErrorCode::VersionMismatch,
                "the organization changed since you read it",
            )
            .with_details(serde_json::json!({"current_version": current})),
            UpdateOrgError::SignupCodeTaken => {
                Self::new(ErrorCode::Conflict, "that signup code is in use")
                    .with_details(serde_json::json!({"field": "signup_code"}))
            }
            UpdateOrgError::Unexpected(e) => e.into(),
        }
    }
}

impl From<JoinOrgError> for ApiError {
    fn from(e: JoinOrgError) -> Self {
        match e {
            JoinOrgError::UnknownCode => {
                Self::not_found("no organization has that signup code; check it with your PTO")
            }
            JoinOrgError::AlreadyMember => Self::new(
                ErrorCode::Conflict,
                "you are already a member of this organization",
            ),
            JoinOrgError::RemovedByAdmin => Self::new(ErrorCode::PermissionDenied, e.to_string()),
            JoinOrgError::Unexpected(e) => e.into(),
        }
    }
}

impl From<ChangeMemberError> for ApiError {
    fn from(e: ChangeMemberError) -> Self {
        match e {
            ChangeMemberError::NotFound => Self::not_found("no such member"),
            ChangeMemberError::UnknownRole => unknown_role(),
            ChangeMemberError::VersionMismatch { current } => Self::new(
                ErrorCode::VersionMismatch,
                "the member changed since you read it",
            )
            .with_details(serde_json::json!({"current_version": current})),
            ChangeMemberError::Refused(r) => r.into(),
            ChangeMemberError::EmailTaken { .. } => Self::new(
                ErrorCode::Conflict,
                "another account has this e-mail address",
            )
            .with_details(serde_json::json!({"field": "email"})),
            ChangeMemberError::ChildrenNotCollected(e) => children_not_collected(&e),
            ChangeMemberError::Unexpected(e) => e.into(),
        }
    }
}

impl From<RestoreMemberError> for ApiError {
    fn from(e: RestoreMemberError) -> Self {
        match e {
            RestoreMemberError::NotFound => Self::not_found("no removed member to restore"),
            RestoreMemberError::AlreadyMember => {
                Self::new(ErrorCode::Conflict, "the user is already a member")
            }
            RestoreMemberError::Refused(r) => r.into(),
            RestoreMemberError::Unexpected(e) => e.into(),
        }
    }
}

impl From<CreateRoleError> for ApiError {
    fn from(e: CreateRoleError) -> Self {
        match e {
            CreateRoleError::DuplicateName => {
                Self::new(ErrorCode::Conflict, "a role with this name exists")
            }
            CreateRoleError::ReservedName => Self::validation(vec![FieldError {
                field: "name".into(),
                code: "reserved".into(),
                message: "the name of a built-in role cannot be reused".into(),
            }]),
            CreateRoleError::OrgNotFound => Self::not_found("no such organization"),
            CreateRoleError::Unexpected(e) => e.into(),
        }
    }
}

/// 412 with the current version.
fn stale(what: &str, current: i64) -> ApiError {
    ApiError::new(
        ErrorCode::VersionMismatch,
        format!("the {what} changed since you read it"),
    )
    .with_details(serde_json::json!({"current_version": current}))
}

impl From<UpdateRoleError> for ApiError {
    fn from(e: UpdateRoleError) -> Self {
        match e {
            UpdateRoleError::NotFound => Self::not_found("no such role"),
            UpdateRoleError::VersionMismatch { current } => stale("role", current),
            UpdateRoleError::DuplicateName => {
                Self::new(ErrorCode::Conflict, "a role with this name exists")
                    .with_details(serde_json::json!({"field": "name"}))
            }
            UpdateRoleError::ReservedName => Self::validation(vec![FieldError {
                field: "name".into(),
                code: "reserved".into(),
                message: "the name of a built-in role cannot be reused".into(),
            }]),
            UpdateRoleError::BelowHolders { holders } => {
                Self::new(ErrorCode::Conflict, e.to_string()).with_details(
                    serde_json::json!({"reason": "below_holders", "holders": holders}),
                )
            }
            UpdateRoleError::Refused(r) => r.into(),
            UpdateRoleError::Unexpected(e) => e.into(),
        }
    }
}

impl From<DeleteRoleError> for ApiError {
    fn from(e: DeleteRoleError) -> Self {
        match e {
            DeleteRoleError::NotFound => Self::not_found("no such role"),
            DeleteRoleError::VersionMismatch { current } => stale("role", current),
            DeleteRoleError::InUse {
                members,
                invitations,
            } => Self::new(
                ErrorCode::Conflict,
                format!(
                    "the role is in use ({members} member(s), {invitations} pending invitation(s)): give them another role first"
                ),
            )
            .with_details(serde_json::json!({
                "reason": "role_in_use",
                "members": members,
                "pending_invitations": invitations,
            })),
            DeleteRoleError::Refused(r) => r.into(),
            DeleteRoleError::Unexpected(e) => e.into(),
        }
    }
}

/// An erasure refused by its rule: 404 for someone who is not there, 409 (with
/// `details.reason`) for the invariants that keep orgs and the platform administered.
impl From<tenancy::erasure::ErasureRefused> for ApiError {
    fn from(r: tenancy::erasure::ErasureRefused) -> Self {
        use tenancy::erasure::ErasureRefused;
        let conflict = |reason: &str| {
            Self::new(ErrorCode::Conflict, r.to_string())
                .with_details(serde_json::json!({ "reason": reason }))
        };
        match &r {
            ErasureRefused::NotFound => Self::not_found("no such member"),
            ErasureRefused::LastAdmin(orgs) => Self::new(ErrorCode::Conflict, r.to_string())
                .with_details(serde_json::json!({
                    "reason": "last_admin",
                    "org_ids": orgs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })),
            ErasureRefused::Yourself => conflict("yourself"),
            ErasureRefused::PlatformAdmin => conflict("platform_admin"),
        }
    }
}

impl From<tenancy::erasure::EraseError> for ApiError {
    fn from(e: tenancy::erasure::EraseError) -> Self {
        match e {
            tenancy::erasure::EraseError::Refused(r) => r.into(),
            tenancy::erasure::EraseError::Storage(e) => e.into(),
        }
    }
}

impl From<tenancy_store::erasure::SetRetentionError> for ApiError {
    fn from(e: tenancy_store::erasure::SetRetentionError) -> Self {
        use tenancy_store::erasure::SetRetentionError;
        match e {
            SetRetentionError::NotFound => Self::not_found("no such organization"),
            SetRetentionError::VersionMismatch { current } => stale("retention period", current),
            SetRetentionError::Storage(e) => e.into(),
        }
    }
}

impl From<DeleteOrgError> for ApiError {
    fn from(e: DeleteOrgError) -> Self {
        match e {
            DeleteOrgError::NotFound => Self::not_found("no such organization"),
            DeleteOrgError::VersionMismatch { current } => stale("organization", current),
            DeleteOrgError::Unexpected(e) => e.into(),
        }
    }
}

/// 422 on `children`: the org keeps no children's data (its directory policy).
fn children_not_collected(e: &tenancy::privacy::ChildrenNotCollected) -> ApiError {
    ApiError::validation(vec![FieldError {
        field: "children".into(),
        code: "not_collected".into(),
        message: e.to_string(),
    }])
}

impl From<AddMemberError> for ApiError {
    fn from(e: AddMemberError) -> Self {
        match e {
            AddMemberError::NotFound => Self::not_found("no such organization"),
            AddMemberError::AlreadyMember { .. } | AddMemberError::AlreadyInvited { .. } => {
                Self::new(ErrorCode::Conflict, e.to_string())
            }
            AddMemberError::UnknownRole => unknown_role(),
            AddMemberError::Refused(r) => r.into(),
            AddMemberError::ChildrenNotCollected(e) => children_not_collected(&e),
            AddMemberError::Unexpected(e) => e.into(),
        }
    }
}

/// 409 `PERMISSION_LOCKED` naming every locked key and who locked it:
/// `details.locked_keys: [{key, locked_by}]`, and the first one as `details.key` /
/// `details.locked_by`.
impl From<&permissions::LockedKeys> for ApiError {
    fn from(e: &permissions::LockedKeys) -> Self {
        let first = e.first();
        let locked: Vec<serde_json::Value> = e
            .locks()
            .iter()
            .map(|lock| serde_json::json!({"key": lock.key.as_str(), "locked_by": lock.by}))
            .collect();
        Self::new(ErrorCode::PermissionLocked, e.to_string()).with_details(serde_json::json!({
            "key": first.key.as_str(),
            "locked_by": first.by,
            "locked_keys": locked,
        }))
    }
}

impl From<permissions::LockedKeys> for ApiError {
    fn from(e: permissions::LockedKeys) -> Self {
        Self::from(&e)
    }
}

/// 500, or 503 when the store's cause says the database is unavailable (the cause is
/// kept, not flattened).
impl From<permissions::StoreFailure> for ApiError {
    fn from(e: permissions::StoreFailure) -> Self {
        Self::internal(Box::new(e))
    }
}

impl From<permissions::GrantError> for ApiError {
    fn from(e: permissions::GrantError) -> Self {
        use permissions::{GrantError, GrantWindowError};
        match e {
            GrantError::SelfGrant => Self::new(ErrorCode::PermissionDenied, e.to_string()),
            GrantError::Window(window) => Self::validation(vec![FieldError {
                field: "expires_at".into(),
                code: match window {
                    GrantWindowError::Expired(_) => "in_the_past",
                    GrantWindowError::EndsBeforeStart { .. } => "before_start",
                }
                .into(),
                message: window.to_string(),
            }]),
            GrantError::Locked(locked) => locked.into(),
            GrantError::NotHeld(not_held) => not_held.into(),
            GrantError::OrgNotFound => Self::not_found("no such organization"),
            GrantError::NotMember => Self::not_found("no such member"),
            GrantError::ReasonTooLong => Self::validation(vec![FieldError {
                field: "reason".into(),
                code: "length".into(),
                message: e.to_string(),
            }]),
            GrantError::Storage(failure) => failure.into(),
        }
    }
}

impl From<permissions::RevokeGrantError> for ApiError {
    fn from(e: permissions::RevokeGrantError) -> Self {
        match e {
            permissions::RevokeGrantError::OrgNotFound => Self::not_found("no such organization"),
            permissions::RevokeGrantError::Storage(failure) => failure.into(),
        }
    }
}

impl From<permissions::TemplateError> for ApiError {
    fn from(e: permissions::TemplateError) -> Self {
        use permissions::TemplateError;
        match e {
            TemplateError::NotFound => Self::not_found("no such district or school"),
            TemplateError::Locked(locked) => locked.into(),
            TemplateError::VersionMismatch { expected, actual } => Self::new(
                ErrorCode::VersionMismatch,
                "the templates changed since you read them",
            )
            .with_details(
                serde_json::json!({"expected_version": expected, "current_version": actual}),
            ),
            TemplateError::Storage(failure) => failure.into(),
        }
    }
}

/// For custom roles: extra keys locked above the org are refused with 409
/// `PERMISSION_LOCKED`, every one named.
impl From<permissions::ExceptionKeysError> for ApiError {
    fn from(e: permissions::ExceptionKeysError) -> Self {
        match e {
            permissions::ExceptionKeysError::OrgNotFound => Self::not_found("no such organization"),
            permissions::ExceptionKeysError::Locked(locked) => locked.into(),
            permissions::ExceptionKeysError::Storage(failure) => failure.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_store_outages_are_503_and_locks_name_every_key() {
        let outage = || {
            permissions::StoreFailure::new(persistence::StorageError::Unavailable(
                "pool timed out".into(),
            ))
        };
        for answer in [
            ApiError::from(permissions::GrantError::Storage(outage())),
            ApiError::from(permissions::RevokeGrantError::Storage(outage())),
            ApiError::from(permissions::TemplateError::Storage(outage())),
            ApiError::from(permissions::ExceptionKeysError::Storage(outage())),
        ] {
            assert_eq!(answer.code, ErrorCode::ServiceUnavailable, "{answer}");
        }
        let bug =
            permissions::StoreFailure::new(persistence::StorageError::Unavailable("x".into()));
        assert!(ApiError::from(bug).source.is_some(), "the cause is kept");
        let district = uuid::Uuid::from_u128(7);
        let locked = permissions::LockedKeys::new(vec![
            permissions::KeyLock {
                key: permissions::PermissionKey::BudgetApprove,
                by: permissions::ScopeRef::District(district),
            },
            permissions::KeyLock {
                key: permissions::PermissionKey::EventsCreate,
                by: permissions::ScopeRef::School(district),
            },
        ])
        .expect("two");
        let answer = ApiError::from(permissions::GrantError::Locked(locked));
        assert_eq!(answer.code, ErrorCode::PermissionLocked);
        let details = answer.details.expect("details");
        assert_eq!(details["key"], "budget.approve");
        assert_eq!(details["locked_by"]["kind"], "district");
        assert_eq!(details["locked_keys"][1]["key"], "events.create");
        assert_eq!(details["locked_keys"][1]["locked_by"]["kind"], "school");
        assert_eq!(
            details["locked_keys"][1]["locked_by"]["id"],
            district.to_string()
        );
    }

    #[test]
    fn a_storage_outage_is_503_whatever_the_domain_error() {
        let outage = || {
            StorageFailure(Box::new(persistence::StorageError::Unavailable(
                "pool timed out".into(),
            )))
        };
        let answers = [
            ApiError::from(CreateOrgError::Unexpected(outage())),
            ApiError::from(UpdateOrgError::Unexpected(outage())),
            ApiError::from(JoinOrgError::Unexpected(outage())),
            ApiError::from(ChangeMemberError::Unexpected(outage())),
            ApiError::from(RestoreMemberError::Unexpected(outage())),
            ApiError::from(CreateRoleError::Unexpected(outage())),
            ApiError::from(AddMemberError::Unexpected(outage())),
        ];
        for answer in answers {
            assert_eq!(answer.code, ErrorCode::ServiceUnavailable, "{answer}");
            assert!(answer.source.is_some(), "the cause is kept for the log");
        }
        let bug = ApiError::from(StorageFailure(Box::new(persistence::StorageError::Query(
            "syntax".into(),
        ))));
        assert_eq!(bug.code, ErrorCode::Internal);
    }

    #[test]
    fn one_refusal_is_one_answer() {
        let full = RoleChangeRefused::RoleFull {
            role: "President".into(),
            max: 1,
        };
        assert_eq!(ApiError::from(&full).code, ErrorCode::Conflict);
        assert_eq!(
            ApiError::from(AddMemberError::Refused(full.clone())).code,
            ErrorCode::Conflict
        );
        assert_eq!(
            ApiError::from(ChangeMemberError::Refused(RoleChangeRefused::LastAdmin)).code,
            ErrorCode::Conflict
        );
        assert_eq!(
            ApiError::from(AddMemberError::Refused(RoleChangeRefused::NotBelowActor)).code,
            ErrorCode::PermissionDenied
        );
    }
}
