//! Pure rules of the district tier: who may do what, and what moving a school means.
//!
//! Authority (see the spec's "Tenancy hierarchy"): a **platform admin** manages
//! districts (creates and deletes them, sets their tier and code) and may do anything
//! below; a **district admin** manages their district's name, settings, schools and
//! staff; a **district viewer** only sees the district. A standalone school (no
//! district) is managed by platform admins only, so moving a school between districts
//! needs authority over both ends.

use crate::{DistrictId, DistrictStaffRole};

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
