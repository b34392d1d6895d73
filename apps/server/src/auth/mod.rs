//! Authentication at the edge: who is calling (a session or an API key), verified
//! from the Biscuit token with a cache in front, and revocation checked on every
//! request against a cached, bus-invalidated view of the session table.

mod caller;
mod org_member;
mod service;

pub(crate) use caller::Authenticated;
pub use caller::{Caller, ClientMeta, MaybeCaller, Principal};
pub use org_member::{OrgActor, OrgMember};
pub use service::{
    AuthService, Authentication, Factor, HowSignedIn, SessionSettings, SessionTokens, SignedIn,
    second_factor_error,
};
