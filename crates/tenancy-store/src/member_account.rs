//! A member's account (names, phone, e-mail) changed through their org, inside the
//! membership change's transaction (`OrgRepository::change_member`).

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use tenancy::ports::{AccountChanges, ChangeMemberError, StorageFailure};
use tenancy::rules::{self, AccountEdit};
use tenancy::{Email, Membership, OrgId};

use crate::convert::failure;
use crate::entity::{memberships, users};
use crate::orgs::{directory_fields, is_unique_violation};
use persistence::{Database, WriteTx, now_micros};

/// An account changed: its fields before and after (for the audit event) and the new
/// row (for the membership's directory columns).
pub(crate) struct AccountChanged {
    /// Names, phone and address before.
    pub before: serde_json::Value,
    /// Names, phone and address after.
    pub after: serde_json::Value,
    /// The account as stored now.
    pub user: users::Model,
    /// Whether the account is a member of other orgs (their directory columns follow).
    pub elsewhere: bool,
}

fn fields(u: &users::Model) -> serde_json::Value {
    serde_json::json!({
        "first_name": u.first_name,
        "last_name": u.last_name,
        "phone": u.phone,
        "email": u.email,
    })
}

/// Applies `changes` to `target`'s account as `actor` asks, under
/// [`rules::check_account_edit`]; `None` when nothing was asked.
pub(crate) async fn apply(
    db: &Database,
    txn: &WriteTx,
    org: OrgId,
    actor: &Membership,
    target: &Membership,
    changes: &AccountChanges,
) -> Result<Option<AccountChanged>, ChangeMemberError> {
    let edit = AccountEdit {
        profile: changes.first_name.is_some()
            || changes.last_name.is_some()
            || changes.phone.is_some(),
        email: changes.email.is_some(),
    };
    if !edit.profile && !edit.email {
        return Ok(None);
    }
    let user = target.user_id.as_uuid();
    let row = users::Entity::find_by_id(user)
        .one(txn)
        .await
        .map_err(failure)?
        .ok_or(ChangeMemberError::NotFound)?;
    // Read in the system scope: the change's transaction sees only this org's rows
    // (row-level security). A join elsewhere racing this check is harmless: the name
    // is then right everywhere anyway.
    let other_orgs = memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user))
        .filter(memberships::Column::OrgId.ne(org.as_uuid()))
        .count(db.primary())
        .await
        .map_err(failure)?;
    rules::check_account_edit(
        actor,
        target,
        other_orgs,
        row.email_verified_at.is_some(),
        edit,
    )?;
    let taken = |email: &Email| ChangeMemberError::EmailTaken {
        email: email.clone(),
    };
    if let Some(email) = &changes.email
        && email.as_str() != row.email
        && users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .filter(users::Column::Id.ne(user))
            .count(txn)
            .await
            .map_err(failure)?
            > 0
    {
        return Err(taken(email));
    }
    let before = fields(&row);
    let mut active: users::ActiveModel = row.clone().into();
    if let Some(n) = &changes.first_name {
        active.first_name = Set(n.to_string());
    }
    if let Some(n) = &changes.last_name {
        active.last_name = Set(n.to_string());
    }
    if let Some(phone) = &changes.phone {
        active.phone = Set(phone.clone());
    }
    if let Some(email) = &changes.email
        && email.as_str() != row.email
    {
        active.email = Set(email.as_str().to_owned());
        // Not proven by its owner (the rule allows no other case): stays unproven.
        active.email_verified_at = Set(None);
    }
    active.version = Set(row.version + 1);
    active.updated_at = Set(now_micros());
    let updated = active.update(txn).await.map_err(|e| {
        if is_unique_violation(&e) {
            changes
                .email
                .as_ref()
                .map_or_else(|| failure(e).into(), taken)
        } else {
            failure(e).into()
        }
    })?;
    Ok(Some(AccountChanged {
        before,
        after: fields(&updated),
        user: updated,
        elsewhere: other_orgs > 0,
    }))
}

/// Refreshes the directory columns (sort name, e-mail, search document) of `user`'s
/// memberships in orgs other than `except`, after a change of their account committed.
/// Runs in the system scope (the change's own transaction is confined to one org).
pub(crate) async fn refresh_elsewhere(
    db: &Database,
    user: &users::Model,
    except: OrgId,
) -> Result<(), StorageFailure> {
    let txn = db.begin_write().await.map_err(failure)?;
    refresh_memberships_in(&txn, user, Some(except)).await?;
    txn.commit().await.map_err(failure)?;
    Ok(())
}

/// Refreshes the directory columns of `user`'s memberships (except in `except`) inside
/// `txn`, which must see them all (the system scope).
pub(crate) async fn refresh_memberships_in(
    txn: &WriteTx,
    user: &users::Model,
    except: Option<OrgId>,
) -> Result<(), StorageFailure> {
    let mut q = memberships::Entity::find().filter(memberships::Column::UserId.eq(user.id));
    if let Some(except) = except {
        q = q.filter(memberships::Column::OrgId.ne(except.as_uuid()));
    }
    for row in q.all(txn).await.map_err(failure)? {
        let fresh = directory_fields(user, row.committee.as_deref(), &row.profile);
        let mut active: memberships::ActiveModel = row.into();
        active.search_doc = fresh.search_doc;
        active.sort_name = fresh.sort_name;
        active.email = fresh.email;
        active.update(txn).await.map_err(failure)?;
    }
    Ok(())
}
