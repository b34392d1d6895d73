//! casbin-rs, RBAC with domains (one domain per org).
//!
//! casbin-rs evaluates the matcher once per `p` line (`Enforcer::private_enforce` loops over
//! every policy), so the textbook layout — `p, role, org, key` per (org, key) and a matcher
//! `g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj` — costs O(policy lines) per
//! check (≈ 150k lines here). The efficient layout puts the precomputed effective settings
//! into the *role graph* of each domain, which casbin indexes per domain:
//!
//! ```text
//! g, u<user>, r<rank>, o<org>        active membership of an active user, built-in role
//! g, u<user>, c:<name>, o<org>       ... or custom role
//! g, c:<name>, r<rank>, o<org>       custom role counts as a rank
//! g, c:<name>, <key>, o<org>         custom role's extra key (enabled keys not locked above)
//! g, r<rank>, <key>, o<org>          rank reaches the key's effective min_role (enabled keys only)
//! g, u<user>, <key>, o<org>          active direct grant (enabled keys not locked above)
//! ```
//!
//! with no `p` lines and the matcher `g(r.sub, r.obj, r.dom)`: one role-graph reachability
//! query in the org's domain graph per check (a BFS over at most ~30 nodes). Disabled keys,
//! suspended/invited/removed members, disabled users and expired grants are absence.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use casbin::Adapter;
use casbin::prelude::*;
use permissions::{MemberStatus, PermissionKey};

use crate::dataset::{
    CUSTOM_ROLES, Dataset, Role, exception_keys, naive_effective, unexpired_grant_keys,
};

pub const MODEL: &str = r#"
[request_definition]
r = sub, dom, obj

[policy_definition]
p = sub, dom, obj

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, r.obj, r.dom)
"#;

/// Drives a future that never waits on I/O (model parsing, the memory adapter) to completion
/// without pulling in an async runtime.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::yield_now();
    }
}

pub struct CasbinEngine {
    pub enforcer: Enforcer,
    pub user_names: Vec<String>,
    pub org_names: Vec<String>,
    pub grouping_lines: usize,
}

impl CasbinEngine {
    pub fn build(data: &Dataset) -> Self {
        let user_names: Vec<String> = (0..data.user_ids.len()).map(|u| format!("u{u}")).collect();
        let org_names: Vec<String> = (0..data.chains.len()).map(|o| format!("o{o}")).collect();
        let mut rules: Vec<Vec<String>> = Vec::new();

        for (org, chain) in data.chains.iter().enumerate() {
            let dom = &org_names[org];
            let effective: Vec<(u8, bool)> = PermissionKey::ALL
                .iter()
                .map(|&k| {
                    let (min, enabled) = naive_effective(chain, k);
                    (min.rank(), enabled)
                })
                .collect();
            for rank in 1..=4u8 {
                for key in PermissionKey::ALL {
                    let (min, enabled) = effective[key.index()];
                    if enabled && rank >= min {
                        rules.push(vec![
                            format!("r{rank}"),
                            key.as_str().to_owned(),
                            dom.clone(),
                        ]);
                    }
                }
            }
            for role in &CUSTOM_ROLES {
                let name = format!("c:{}", role.name);
                rules.push(vec![
                    name.clone(),
                    format!("r{}", role.counts_as.rank()),
                    dom.clone(),
                ]);
                let exceptions = exception_keys(chain);
                for key in role.extra_keys {
                    if exceptions.contains(key) {
                        rules.push(vec![name.clone(), key.as_str().to_owned(), dom.clone()]);
                    }
                }
            }
        }

        for m in &data.memberships {
            if m.status != MemberStatus::Active || !data.user_active[m.user as usize] {
                continue;
            }
            let sub = &user_names[m.user as usize];
            let dom = &org_names[m.org as usize];
            let role = match m.role {
                Role::Builtin(r) => format!("r{}", r.rank()),
                Role::Custom(i) => format!("c:{}", CUSTOM_ROLES[i].name),
            };
            rules.push(vec![sub.clone(), role, dom.clone()]);
            let chain = &data.chains[m.org as usize];
            let exceptions = exception_keys(chain);
            for key in unexpired_grant_keys(m).iter() {
                if exceptions.contains(key) {
                    rules.push(vec![sub.clone(), key.as_str().to_owned(), dom.clone()]);
                }
            }
        }
        rules.sort_unstable();
        rules.dedup();
        let grouping_lines = rules.len();

        let enforcer = block_on(async move {
            let model = DefaultModel::from_str(MODEL)
                .await
                .expect("casbin model parses");
            let mut adapter = MemoryAdapter::default();
            adapter
                .add_policies("g", "g", rules)
                .await
                .expect("memory adapter takes the grouping lines");
            Enforcer::new(model, adapter)
                .await
                .expect("casbin enforcer builds")
        });
        Self {
            enforcer,
            user_names,
            org_names,
            grouping_lines,
        }
    }

    #[inline]
    pub fn check(&self, user: u32, org: u32, key: PermissionKey) -> bool {
        self.enforcer
            .enforce((
                self.user_names[user as usize].as_str(),
                self.org_names[org as usize].as_str(),
                key.as_str(),
            ))
            .expect("casbin enforce")
    }
}
