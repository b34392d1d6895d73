//! cedar-policy, two encodings of the same precomputed effective settings; the bench times
//! both and compares against the faster.
//!
//! Cedar's `Authorizer` evaluates every policy of the set on every request (no index), so a
//! policy per (org, key) effective setting (~56k policies) would be O(policies) per check.
//! Both encodings below use a single policy and put the per-org data into entities.
//!
//! **groups** — the role graph as Cedar entity hierarchy (Cedar precomputes the transitive
//! closure, so `in` is a hash-set lookup):
//!
//! ```text
//! User::"u<user>"        parents: Role::"o<org>#r<rank>" | Role::"o<org>#c:<name>" per active
//!                        membership (active users only), Perm::"o<org>/<key>" per unexpired grant
//!                        of an enabled key
//! Role::"o<org>#r<rank>" parents: Perm::"o<org>/<key>" for each enabled key whose effective
//!                        min rank <= rank
//! Role::"o<org>#c:<name>" parents: Role::"o<org>#r<counts_as>", Perm::"o<org>/<key>" per
//!                        enabled extra key
//! request: principal User::"u<user>", action Action::"<key>", resource Perm::"o<org>/<key>"
//! permit (principal, action, resource) when { principal in resource };
//! ```
//!
//! **tags** — attributes and entity tags, no hierarchy:
//!
//! ```text
//! User::"u<user>"  tags: "o<org>" -> { rank: Long, keys: Set<String> (extra keys ∪ unexpired
//!                  grants) } per active membership (active users only)
//! Org::"o<org>"    attrs: { name: "o<org>" }; tags: "<key>" -> effective min rank, enabled
//!                  keys only
//! request: principal User::"u<user>", action Action::"<key>", resource Org::"o<org>",
//!          context { key: "<key>" }
//! permit (principal, action, resource) when {
//!   resource.hasTag(context.key) && principal.hasTag(resource.name) &&
//!   (principal.getTag(resource.name).rank >= resource.getTag(context.key) ||
//!    principal.getTag(resource.name).keys.contains(context.key)) };
//! ```

use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};
use permissions::{MemberStatus, PermissionKey};

use crate::dataset::{
    CUSTOM_ROLES, Dataset, Role, exception_keys, naive_effective, unexpired_grant_keys,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Groups,
    Tags,
}

impl Encoding {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Groups => "groups (`principal in resource`)",
            Self::Tags => "tags (`getTag` rank vs min rank)",
        }
    }
}

const GROUPS_POLICY: &str = r#"
permit (principal, action, resource) when { principal in resource };
"#;

const TAGS_POLICY: &str = r#"
permit (principal, action, resource) when {
  resource.hasTag(context.key) &&
  principal.hasTag(resource.name) &&
  (principal.getTag(resource.name).rank >= resource.getTag(context.key) ||
   principal.getTag(resource.name).keys.contains(context.key))
};
"#;

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

fn ty(name: &str) -> EntityTypeName {
    EntityTypeName::from_str(name).expect("valid entity type name")
}

pub struct CedarEngine {
    pub encoding: Encoding,
    authorizer: Authorizer,
    policies: PolicySet,
    entities: Entities,
    pub entity_count: usize,
    /// Pre-interned request parts, as an application would keep them.
    users: Vec<EntityUid>,
    actions: Vec<EntityUid>,
    /// Groups: Perm::"o<org>/<key>" at `org * 28 + key`. Tags: Org::"o<org>" at `org`.
    resources: Vec<EntityUid>,
    /// Tags: `{ key: "<key>" }` per key. Groups: one empty context.
    contexts: Vec<Context>,
}

impl CedarEngine {
    pub fn build(data: &Dataset, encoding: Encoding) -> Self {
        let user_ty = ty("User");
        let action_ty = ty("Action");
        let users: Vec<EntityUid> = (0..data.user_ids.len())
            .map(|u| uid(&user_ty, &format!("u{u}")))
            .collect();
        let actions: Vec<EntityUid> = PermissionKey::ALL
            .iter()
            .map(|k| uid(&action_ty, k.as_str()))
            .collect();
        let exceptions: Vec<permissions::KeySet> = data.chains.iter().map(exception_keys).collect();
        let effective: Vec<[(u8, bool); PermissionKey::COUNT]> = data
            .chains
            .iter()
            .map(|chain| {
                PermissionKey::ALL.map(|k| {
                    let (min, enabled) = naive_effective(chain, k);
                    (min.rank(), enabled)
                })
            })
            .collect();
        let active = |m: &crate::dataset::Membership| {
            m.status == MemberStatus::Active && data.user_active[m.user as usize]
        };

        let (entities, resources, contexts, policy_text, entity_count) = match encoding {
            Encoding::Groups => {
                let role_ty = ty("Role");
                let perm_ty = ty("Perm");
                let perms: Vec<EntityUid> = (0..data.chains.len())
                    .flat_map(|o| {
                        PermissionKey::ALL
                            .iter()
                            .map(move |k| format!("o{o}/{}", k.as_str()))
                    })
                    .map(|id| uid(&perm_ty, &id))
                    .collect();
                let perm = |org: usize, key: PermissionKey| {
                    perms[org * PermissionKey::COUNT + key.index()].clone()
                };
                let mut list: Vec<Entity> = Vec::new();
                for org in 0..data.chains.len() {
                    for rank in 1..=4u8 {
                        let parents: Vec<EntityUid> = PermissionKey::ALL
                            .into_iter()
                            .filter(|k| {
                                let (min, enabled) = effective[org][k.index()];
                                enabled && rank >= min
                            })
                            .map(|k| perm(org, k))
                            .collect();
                        list.push(Entity::new_no_attrs(
                            uid(&role_ty, &format!("o{org}#r{rank}")),
                            parents.into_iter().collect(),
                        ));
                    }
                    for role in &CUSTOM_ROLES {
                        let mut parents =
                            vec![uid(&role_ty, &format!("o{org}#r{}", role.counts_as.rank()))];
                        parents.extend(
                            role.extra_keys
                                .into_iter()
                                .filter(|&k| exceptions[org].contains(k))
                                .map(|k| perm(org, k)),
                        );
                        list.push(Entity::new_no_attrs(
                            uid(&role_ty, &format!("o{org}#c:{}", role.name)),
                            parents.into_iter().collect(),
                        ));
                    }
                }
                let mut parents: Vec<Vec<EntityUid>> = vec![Vec::new(); data.user_ids.len()];
                for m in data.memberships.iter().filter(|m| active(m)) {
                    let org = m.org as usize;
                    let p = &mut parents[m.user as usize];
                    p.push(match m.role {
                        Role::Builtin(r) => uid(&role_ty, &format!("o{org}#r{}", r.rank())),
                        Role::Custom(i) => {
                            uid(&role_ty, &format!("o{org}#c:{}", CUSTOM_ROLES[i].name))
                        }
                    });
                    p.extend(
                        unexpired_grant_keys(m)
                            .iter()
                            .filter(|&k| exceptions[org].contains(k))
                            .map(|k| perm(org, k)),
                    );
                }
                for (u, p) in parents.into_iter().enumerate() {
                    list.push(Entity::new_no_attrs(
                        users[u].clone(),
                        p.into_iter().collect(),
                    ));
                }
                let count = list.len();
                let entities = Entities::from_entities(list, None).expect("groups entities build");
                (
                    entities,
                    perms,
                    vec![Context::empty()],
                    GROUPS_POLICY,
                    count,
                )
            }
            Encoding::Tags => {
                let org_ty = ty("Org");
                let orgs: Vec<EntityUid> = (0..data.chains.len())
                    .map(|o| uid(&org_ty, &format!("o{o}")))
                    .collect();
                let mut list: Vec<Entity> = Vec::new();
                for (org, org_uid) in orgs.iter().enumerate() {
                    let tags: Vec<(String, RestrictedExpression)> = PermissionKey::ALL
                        .into_iter()
                        .filter(|k| effective[org][k.index()].1)
                        .map(|k| {
                            (
                                k.as_str().to_owned(),
                                RestrictedExpression::new_long(i64::from(
                                    effective[org][k.index()].0,
                                )),
                            )
                        })
                        .collect();
                    list.push(
                        Entity::new_with_tags(
                            org_uid.clone(),
                            [(
                                "name".to_owned(),
                                RestrictedExpression::new_string(format!("o{org}")),
                            )],
                            [],
                            tags,
                        )
                        .expect("org entity"),
                    );
                }
                let mut tags: Vec<Vec<(String, RestrictedExpression)>> =
                    vec![Vec::new(); data.user_ids.len()];
                for m in data.memberships.iter().filter(|m| active(m)) {
                    let keys = m
                        .role
                        .extra_keys()
                        .union(unexpired_grant_keys(m))
                        .intersection(exceptions[m.org as usize]);
                    let record = RestrictedExpression::new_record([
                        (
                            "rank".to_owned(),
                            RestrictedExpression::new_long(i64::from(m.role.counts_as().rank())),
                        ),
                        (
                            "keys".to_owned(),
                            RestrictedExpression::new_set(
                                keys.iter().map(|k| {
                                    RestrictedExpression::new_string(k.as_str().to_owned())
                                }),
                            ),
                        ),
                    ])
                    .expect("membership record");
                    tags[m.user as usize].push((format!("o{}", m.org), record));
                }
                for (u, t) in tags.into_iter().enumerate() {
                    list.push(
                        Entity::new_with_tags(users[u].clone(), [], [], t).expect("user entity"),
                    );
                }
                let count = list.len();
                let entities = Entities::from_entities(list, None).expect("tags entities build");
                let contexts = PermissionKey::ALL
                    .iter()
                    .map(|k| {
                        Context::from_pairs([(
                            "key".to_owned(),
                            RestrictedExpression::new_string(k.as_str().to_owned()),
                        )])
                        .expect("context")
                    })
                    .collect();
                (entities, orgs, contexts, TAGS_POLICY, count)
            }
        };

        Self {
            encoding,
            authorizer: Authorizer::new(),
            policies: PolicySet::from_str(policy_text).expect("policy parses"),
            entities,
            entity_count,
            users,
            actions,
            resources,
            contexts,
        }
    }

    #[inline]
    pub fn check(&self, user: u32, org: u32, key: PermissionKey) -> bool {
        let (resource, context) = match self.encoding {
            Encoding::Groups => (
                self.resources[org as usize * PermissionKey::COUNT + key.index()].clone(),
                self.contexts[0].clone(),
            ),
            Encoding::Tags => (
                self.resources[org as usize].clone(),
                self.contexts[key.index()].clone(),
            ),
        };
        let request = Request::new(
            self.users[user as usize].clone(),
            self.actions[key.index()].clone(),
            resource,
            context,
            None,
        )
        .expect("request without schema");
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &self.entities);
        debug_assert!(response.diagnostics().errors().next().is_none());
        response.decision() == Decision::Allow
    }

    /// Evaluation errors on a request (policy errors make Cedar deny silently; the agreement
    /// pass checks there are none).
    pub fn errors(&self, user: u32, org: u32, key: PermissionKey) -> Vec<String> {
        let (resource, context) = match self.encoding {
            Encoding::Groups => (
                self.resources[org as usize * PermissionKey::COUNT + key.index()].clone(),
                self.contexts[0].clone(),
            ),
            Encoding::Tags => (
                self.resources[org as usize].clone(),
                self.contexts[key.index()].clone(),
            ),
        };
        let request = Request::new(
            self.users[user as usize].clone(),
            self.actions[key.index()].clone(),
            resource,
            context,
            None,
        )
        .expect("request without schema");
        self.authorizer
            .is_authorized(&request, &self.policies, &self.entities)
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect()
    }
}
