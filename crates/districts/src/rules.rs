//! Pure rules of the district tier: who may do what, and what moving a school means.
//!
//! Authority (see the spec's "Tenancy hierarchy"): a **platform admin** manages
//! districts (creates and deletes them, sets their tier and code) and may do anything
//! below; a **district admin** manages their district's name, settings, schools and
//! staff; a **district viewer** only sees the district. A standalone school (no
//! district) is managed by platform admins only, so moving a school between districts
//! needs authority over both ends.

use crate::{DistrictId, DistrictSettings, DistrictStaffRole};

/// Something a caller wants to do to (or in) one district.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistrictAction {
    /// Create a district.
    CreateDistrict,
    /// Delete a district.
    DeleteDistrict,
    /// Change a district's subscription tier or code.
    ChangeTierOrCode,
    /// Change a district's name or settings.
    EditDistrict,
    /// Create, edit or move schools of the district.
    ManageSchools,
    /// Add, change or remove the district's staff.
    ManageStaff,
    /// Move an org into or out of the district (see [`authorize_org_move`]).
    MoveOrg,
    /// See the district, its schools and staff.
    View,
}

/// The caller may not do this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not allowed to {action:?}")]
pub struct Forbidden {
    /// What was refused.
    pub action: DistrictAction,
}

/// The district setting by which its staff act only from sessions opened with a second
/// factor (`{"require_two_factor": true}`).
pub const REQUIRE_TWO_FACTOR: &str = "require_two_factor";

/// Whether a district's settings require a second factor of its staff.
#[must_use]
pub fn requires_second_factor(settings: &DistrictSettings) -> bool {
    settings
        .get(REQUIRE_TWO_FACTOR)
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

/// District settings the rules read must have their type (the rest is free-form).
///
/// # Errors
/// A sentence naming the key, when [`REQUIRE_TWO_FACTOR`] is not a boolean.
pub fn check_settings(settings: &DistrictSettings) -> Result<(), String> {
    match settings.get(REQUIRE_TWO_FACTOR) {
        None | Some(serde_json::Value::Bool(_)) => Ok(()),
        Some(_) => Err(format!("`{REQUIRE_TWO_FACTOR}` must be true or false")),
    }
}

/// The caller's standing needs a session opened with a second factor (TOTP or a
/// recovery code), which this one was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this needs a session opened with a second factor: turn two-factor sign-in on and sign in again"
)]
pub struct SecondFactorRequired;

/// The staff role a caller may act with in a district: theirs, unless the district
/// requires a second factor and their session had none (then they may not act as staff
/// at all, rather than silently as an outsider).
///
/// # Errors
/// [`SecondFactorRequired`].
pub fn usable_staff_role(
    role: Option<DistrictStaffRole>,
    district_requires: bool,
    second_factor: bool,
) -> Result<Option<DistrictStaffRole>, SecondFactorRequired> {
    match role {
        Some(_) if district_requires && !second_factor => Err(SecondFactorRequired),
        role => Ok(role),
    }
}

/// Whether a caller may act as platform admin: they are one, and, when the platform
/// requires it, their session had a second factor.
///
/// # Errors
/// [`SecondFactorRequired`] for a platform admin without one where it is required.
pub fn usable_platform_admin(
    is_platform_admin: bool,
    platform_requires: bool,
    second_factor: bool,
) -> Result<bool, SecondFactorRequired> {
    if is_platform_admin && platform_requires && !second_factor {
        Err(SecondFactorRequired)
    } else {
        Ok(is_platform_admin)
    }
}

/// Whether a caller with the given standing may perform `action` on one district.
///
/// `platform_admin` wins everything; otherwise `role` is the caller's staff role in
/// that district, if any.
///
/// # Errors
/// [`Forbidden`] when the standing is not enough.
pub fn authorize(
    action: DistrictAction,
    platform_admin: bool,
    role: Option<DistrictStaffRole>,
) -> Result<(), Forbidden> {
    let allowed = platform_admin
        || match (role, action) {
            (Some(DistrictStaffRole::DistrictAdmin), a) => matches!(
                a,
                DistrictAction::EditDistrict
                    | DistrictAction::ManageSchools
                    | DistrictAction::ManageStaff
                    | DistrictAction::MoveOrg
                    | DistrictAction::View
            ),
            (Some(DistrictStaffRole::DistrictViewer), a) => a == DistrictAction::View,
            (None, _) => false,
        };
    if allowed {
        Ok(())
    } else {
        Err(Forbidden { action })
    }
}

/// Where a school is (or would be), as seen by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A school without a district.
    Standalone,
    /// A school in a district in which the caller has this staff role (if any).
    InDistrict {
        /// The caller's staff role in that district.
        caller_role: Option<DistrictStaffRole>,
    },
}

/// Whether the caller may create or change a school at this placement: standalone
/// schools need a platform admin, district schools [`DistrictAction::ManageSchools`].
///
/// # Errors
/// [`Forbidden`] with [`DistrictAction::ManageSchools`].
pub fn authorize_placement(platform_admin: bool, placement: Placement) -> Result<(), Forbidden> {
    match placement {
        Placement::Standalone if platform_admin => Ok(()),
        Placement::Standalone => Err(Forbidden {
            action: DistrictAction::ManageSchools,
        }),
        Placement::InDistrict { caller_role } => {
            authorize(DistrictAction::ManageSchools, platform_admin, caller_role)
        }
    }
}

/// The caller's membership in an org, as far as moving the org goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgStanding {
    /// Not a member.
    Outsider,
    /// A member without the admin role.
    Member,
    /// An admin of the org.
    Admin,
}

/// Whether the caller may move an org from `from` to `to` (the districts of its old
/// and new school). An end in a district needs that district's admin; a standalone end
/// needs the org's own admin, so a district cannot annex a standalone PTO, nor a PTO
/// leave for or join a district, without both sides agreeing (one person holding both
/// roles, or a platform admin, who may do anything).
///
/// # Errors
/// [`Forbidden`] with [`DistrictAction::MoveOrg`].
pub fn authorize_org_move(
    platform_admin: bool,
    standing: OrgStanding,
    from: Placement,
    to: Placement,
) -> Result<(), Forbidden> {
    let end_ok = |end: Placement| match end {
        Placement::Standalone => platform_admin || standing == OrgStanding::Admin,
        Placement::InDistrict { caller_role } => {
            authorize(DistrictAction::MoveOrg, platform_admin, caller_role).is_ok()
        }
    };
    if end_ok(from) && end_ok(to) {
        Ok(())
    } else {
        Err(Forbidden {
            action: DistrictAction::MoveOrg,
        })
    }
}

/// What moving a school from one district (or none) to another (or none) amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovePlan {
    /// It is already there: nothing changes, nothing is written.
    Unchanged,
    /// It changes district: the school and every org of the school get the new
    /// district, and those orgs' effective permissions change (their
    /// `permissions_version` is bumped).
    Move {
        /// The district it leaves, if any.
        from: Option<DistrictId>,
        /// The district it joins, if any.
        to: Option<DistrictId>,
    },
}

/// Plans a school move.
#[must_use]
pub fn plan_move(current: Option<DistrictId>, target: Option<DistrictId>) -> MovePlan {
    if current == target {
        MovePlan::Unchanged
    } else {
        MovePlan::Move {
            from: current,
            to: target,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DistrictAction::*;
    use DistrictStaffRole::*;

    const ALL: [DistrictAction; 8] = [
        CreateDistrict,
        DeleteDistrict,
        ChangeTierOrCode,
        EditDistrict,
        ManageSchools,
        ManageStaff,
        MoveOrg,
        View,
    ];

    #[test]
    fn platform_admin_may_do_everything() {
        for a in ALL {
            assert_eq!(authorize(a, true, None), Ok(()));
        }
    }

    #[test]
    fn district_admin_manages_but_does_not_own_the_district() {
        for a in [EditDistrict, ManageSchools, ManageStaff, MoveOrg, View] {
            assert_eq!(authorize(a, false, Some(DistrictAdmin)), Ok(()));
        }
        for a in [CreateDistrict, DeleteDistrict, ChangeTierOrCode] {
            assert_eq!(
                authorize(a, false, Some(DistrictAdmin)),
                Err(Forbidden { action: a })
            );
        }
    }

    #[test]
    fn viewer_only_views_and_strangers_nothing() {
        for a in ALL {
            assert_eq!(authorize(a, false, Some(DistrictViewer)).is_ok(), a == View);
            assert!(authorize(a, false, None).is_err());
        }
    }

    #[test]
    fn standalone_schools_belong_to_the_platform() {
        assert!(authorize_placement(true, Placement::Standalone).is_ok());
        assert!(authorize_placement(false, Placement::Standalone).is_err());
        let mine = Placement::InDistrict {
            caller_role: Some(DistrictAdmin),
        };
        let seen = Placement::InDistrict {
            caller_role: Some(DistrictViewer),
        };
        assert!(authorize_placement(false, mine).is_ok());
        assert!(authorize_placement(false, seen).is_err());
    }

    #[test]
    fn moving_an_org_needs_both_ends() {
        let admin_of = Placement::InDistrict {
            caller_role: Some(DistrictAdmin),
        };
        let viewer_of = Placement::InDistrict {
            caller_role: Some(DistrictViewer),
        };
        let stranger_to = Placement::InDistrict { caller_role: None };
        let alone = Placement::Standalone;
        use OrgStanding::*;
        // District to district: admin of both districts; the org's own role is irrelevant.
        assert!(authorize_org_move(false, Outsider, admin_of, admin_of).is_ok());
        assert!(authorize_org_move(false, Admin, admin_of, stranger_to).is_err());
        assert!(authorize_org_move(false, Admin, viewer_of, admin_of).is_err());
        // A standalone end needs the org's admin.
        assert!(authorize_org_move(false, Admin, alone, admin_of).is_ok());
        assert!(authorize_org_move(false, Member, alone, admin_of).is_err());
        assert!(authorize_org_move(false, Outsider, admin_of, alone).is_err());
        assert!(authorize_org_move(false, Admin, admin_of, alone).is_ok());
        assert!(authorize_org_move(false, Admin, alone, alone).is_ok());
        // Platform admins may do anything.
        assert!(authorize_org_move(true, Outsider, stranger_to, alone).is_ok());
    }

    #[test]
    fn moving_to_the_same_place_changes_nothing() {
        let a = DistrictId::new();
        let b = DistrictId::new();
        assert_eq!(plan_move(None, None), MovePlan::Unchanged);
        assert_eq!(plan_move(Some(a), Some(a)), MovePlan::Unchanged);
        assert_eq!(
            plan_move(Some(a), Some(b)),
            MovePlan::Move {
                from: Some(a),
                to: Some(b)
            }
        );
        assert_eq!(
            plan_move(Some(a), None),
            MovePlan::Move {
                from: Some(a),
                to: None
            }
        );
    }
}

#[cfg(test)]
mod second_factor_tests {
    use super::*;

    #[test]
    fn staff_of_a_district_that_requires_it_need_a_second_factor() {
        let admin = Some(DistrictStaffRole::DistrictAdmin);
        assert_eq!(
            usable_staff_role(admin, true, false),
            Err(SecondFactorRequired)
        );
        assert_eq!(usable_staff_role(admin, true, true), Ok(admin));
        assert_eq!(usable_staff_role(admin, false, false), Ok(admin));
        // Outsiders are outsiders either way (no hint that a second factor would help).
        assert_eq!(usable_staff_role(None, true, false), Ok(None));
    }

    #[test]
    fn platform_admins_need_one_only_where_the_platform_requires_it() {
        assert_eq!(
            usable_platform_admin(true, true, false),
            Err(SecondFactorRequired)
        );
        assert_eq!(usable_platform_admin(true, true, true), Ok(true));
        assert_eq!(usable_platform_admin(true, false, false), Ok(true));
        assert_eq!(usable_platform_admin(false, true, false), Ok(false));
    }

    #[test]
    fn the_setting_is_a_boolean() {
        let settings = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
        assert!(requires_second_factor(&settings(
            serde_json::json!({"require_two_factor": true})
        )));
        assert!(!requires_second_factor(&settings(
            serde_json::json!({"theme": "blue"})
        )));
        assert!(
            check_settings(&settings(serde_json::json!({"require_two_factor": "yes"}))).is_err()
        );
        assert!(
            check_settings(&settings(
                serde_json::json!({"require_two_factor": false, "x": 1})
            ))
            .is_ok()
        );
    }
}
