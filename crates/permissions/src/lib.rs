//! Permission domain: the catalog, settings resolution, checks and explain, with their ports.
//!
//! # The model
//!
//! The [catalog](catalog()) lists 28 [`PermissionKey`]s in 7 [`Module`]s, each with a platform
//! default `{min_role, enabled}`. Above an organization sit an optional district and an
//! optional school; each of the three may hold, per key, a [`ScopedSetting`]
//! `{min_role, enabled, locked}`. The [`OrgChain`] gathers those settings for one org.
//!
//! [`resolve`] computes a key's [`Effective`] setting: start from the platform default, walk
//! district → school → org (skipping absent levels); a level's setting replaces the current
//! one, and a *locked* setting stops the walk, so lower levels cannot override it. The
//! effective setting records its `source` and who locked it (`locked_by`). An org write to a
//! key locked above is refused with [`UpdateSettingsError::Locked`]
//! (see [`apply_org_changes`]).
//!
//! [`CompiledOrg`] resolves all 28 keys once into an immutable table, folded into a few key
//! sets (one cache line), so [`check`] is a handful of bit operations, without allocation:
//!
//! ```text
//! check = membership active and user active
//!     and effective.enabled
//!     and ( rank(role) >= rank(effective.min_role)
//!           or ( not effective.locked_above
//!                and ( key in role.extra_keys
//!                      or an active direct grant of key exists ) ) )
//! ```
//!
//! A member ([`MemberContext`]) has one role ([`RoleRef`]): a [`BuiltinRole`] or a custom role
//! that counts as one and may carry extra keys. Direct [`Grant`]s may start later and
//! expire (active when `starts_at <= now < expires_at`). Disabled beats everything; an
//! invited, suspended or removed member, or a disabled user, is denied. Locks bind
//! exceptions too: where a district or school locked a key, extra keys and grants of it
//! do not count, and new ones are refused ([`refuse_locked_exceptions`]).
//!
//! Around the check: [`explain`] reports every step (each level, membership, user, enabled,
//! rank, extra key, grant, decision) and always agrees with [`check`]; [`org_matrix`] and
//! [`member_matrix`] list all 28 keys; [`preview`] says who would gain or lose what;
//! [`members_holding`] is the reverse lookup; [`plan_org_changes`] and [`plan_reset`] turn
//! edits into [`SettingWrite`]s for the [`PermissionStore`] port, which
//! [`PermissionService`] drives.
//!
//! ```
//! use permissions::{check, BuiltinRole, CompiledOrg, MemberContext, OrgChain, PermissionKey, RoleRef};
//! use time::OffsetDateTime;
//! use uuid::Uuid;
//!
//! let org = CompiledOrg::compile(&OrgChain::standalone(Uuid::from_u128(1)), 0);
//! let board = MemberContext::active(Uuid::from_u128(2), RoleRef::builtin(BuiltinRole::BoardMember));
//! assert!(check(&org, &board, PermissionKey::BudgetApprove, OffsetDateTime::now_utc()));
//! ```
//!
//! This crate is pure: no I/O, no async runtime, no framework. The ports are traits whose
//! methods return `impl Future + Send`; adapters live in other crates.

mod catalog;
mod check;
mod compiled;
mod errors;
mod explain;
mod grants;
mod handout;
mod keys;
mod locks;
mod lookup;
mod matrix;
mod member;
mod ports;
mod preview;
mod resolve;
mod role;
mod scope;
mod service;
mod settings;
mod template;

pub use crate::catalog::{
    CATALOG_VERSION, CatalogEntry, DefaultSetting, catalog, platform_default,
};
pub use crate::check::{DecisionReason, allowed_keys, check, decide};
pub use crate::compiled::CompiledOrg;
pub use crate::errors::{
    BoxError, ExceptionKeysError, GrantError, LoadError, MAX_GRANT_REASON_CHARS, RevokeGrantError,
    StoreFailure, TemplateError, UpdateSettingsError,
};
pub use crate::explain::{Exception, ExplainStep, Explanation, GrantState, explain};
pub use crate::grants::NewGrant;
pub use crate::handout::{
    GrantExpired, GrantWindowError, NotHeld, api_key_alive, api_key_allows, check_grant_expiry,
    check_grant_window, check_holds, keys_to_hand_out,
};
pub use crate::keys::{
    KeySet, KeySetIter, Module, PermissionKey, UnknownKeyError, UnknownModuleError,
};
pub use crate::locks::{KeyLock, LockedKeys, locks_above, refuse_locked_exceptions};
pub use crate::lookup::members_holding;
pub use crate::matrix::{MemberMatrixRow, OrgMatrixRow, member_matrix, org_matrix};
pub use crate::member::{Grant, Grants, MemberContext, MemberStatus, RoleRef};
pub use crate::ports::PermissionStore;
pub use crate::preview::{ChangeKind, PermissionChange, preview};
pub use crate::resolve::{Effective, resolve};
pub use crate::role::{BuiltinRole, UnknownRoleError};
pub use crate::scope::{ChainLevel, OrgChain, ScopeLevel, ScopeRef, ScopeSettings, ScopedSetting};
pub use crate::service::PermissionService;
pub use crate::settings::{
    SettingChange, SettingWrite, SettingsUpdate, apply_org_changes, apply_writes, locked_above,
    plan_org_changes, plan_reset, reset_org,
};
pub use crate::template::{
    Template, TemplateChange, TemplateSaved, TemplateScope, TemplateUpdate, TemplateWrite,
    plan_template,
};
