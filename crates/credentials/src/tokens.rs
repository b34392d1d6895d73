//! Bearer tokens: session tokens and attenuated API keys, as Biscuit tokens signed by the
//! server's [`SigningKey`].
//!
//! # Token layout
//!
//! Every token's **authority block** (block 0) is signed by the server key and holds the
//! facts we trust:
//!
//! | kind | authority block (block 0) | further blocks |
//! |---|---|---|
//! | session | `kind("session")`, `user("<uuid>")`, `session("<uuid>")`, `expires(<date>)`, `check if time($t), $t < <date>`, and `amr("otp")` when the sign-in passed a second factor | none when issued |
//! | API key | `kind("api_key")`, `org("<uuid>")`, `api_key("<uuid>")`, `expires(<date>)`, one `permission("<key>")` per allowed key | block 1: `check if time($t), $t < <date>`, `check if operation_org("<uuid>")` |
//!
//! UUIDs are stored as their lowercase hyphenated strings; dates are whole seconds, so an
//! expiry is truncated to the second when issued.
//!
//! ## API keys are attenuated tokens
//!
//! An API key is issued in two steps: the server signs an authority block that only says
//! *what the key is* (its org, its id and the permissions it grants), then appends — with
//! Biscuit's public-key attenuation ([`Biscuit::append`]) — a second block that says *where
//! and until when it may be used*: before its expiry and only on operations whose target org
//! (`operation_org`, supplied by the verifier) is the key's org. Block 1 is signed with an
//! ephemeral key whose successor secret is the token's proof, so the holder cannot remove
//! or rewrite it, only append further restricting blocks; the intermediate one-block token
//! never leaves [`TokenIssuer::issue_api_key`]. The org binding is therefore enforced by
//! the Datalog of the token itself, not by our code: [`TokenIssuer::verify_for_org`] only
//! states the request's org as a fact.
//!
//! ## Trust
//!
//! Anyone holding a token can append blocks to it, so facts from blocks other than the
//! authority block are never trusted: the identity and permissions are read with rules
//! `trusting authority`, and the allow policies only see the authority block and the
//! authorizer. Appended blocks can only *restrict* a token (their checks are enforced).
//!
//! ## Revocation
//!
//! Each block has a revocation id (its signature). The id to store and check is the
//! authority block's ([`IssuedToken::revocation_id`], the first of
//! [`VerifiedToken::revocation_ids`]): every token derived from a revoked token by
//! appending blocks shares it, so revoking it revokes them all.
//!
//! ## Canonical encoding
//!
//! Biscuit signs the decoded content of each block, not the bytes of the protobuf envelope
//! around it, and protobuf decoding tolerates variants (a skipped unknown field in place of
//! a default-valued one, an unsigned root key id hint). Verification therefore re-encodes
//! the parsed token and refuses it unless that gives back exactly the text presented, and
//! refuses any root key id hint: no byte of a token can change without it being refused,
//! and a token has one accepted text, so [`hash_token`] identifies it. (A holder who
//! attenuates a token with another Biscuit implementation whose encoder differs would see
//! it refused; this crate's encoder is the reference.)
//!
//! ## Secrecy
//!
//! A token is a bearer credential: it never appears in an error, a log line or a `Debug`
//! output of this module. Use [`hash_token`] for cache keys.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use biscuit_auth::builder::{self, Rule, Term};
use biscuit_auth::error::{self, Format};
use biscuit_auth::macros::{authorizer, biscuit, block, rule};
use biscuit_auth::{Authorizer, AuthorizerLimits, Biscuit, PublicKey};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SigningKey;

/// The longest token text [`TokenIssuer::verify`] accepts (and the longest
/// [`TokenIssuer`] issues), in bytes: longer input is rejected as
/// [`TokenError::Malformed`] before any decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

const KIND_SESSION: &str = "session";
const KIND_API_KEY: &str = "api_key";

/// Why a token could not be issued or was rejected. Never carries the token text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of ours: bad encoding, too long, undecodable, or signed content of an
    /// unexpected shape.
    #[error("the token is malformed")]
    Malformed,
    /// The signature chain does not verify with the server's public key (tampered with,
    /// or signed by another key).
    #[error("the token signature is invalid")]
    InvalidSignature,
    /// The token's expiry has passed.
    #[error("the token has expired")]
    Expired,
    /// The token is genuine and current but its checks failed for this request (e.g. an
    /// API key used on another org, a check added by an attenuating block) or its
    /// evaluation exceeded the [`VerifyLimits`].
    #[error("the token is not valid for this request")]
    Unauthorized,
    /// The token could not be built (e.g. an expiry before 1970 or too many permissions).
    #[error("could not issue the token: {0}")]
    Issue(String),
}

/// Bounds on the Datalog evaluation of one verification, so that a hostile token (anyone
/// holding a token can append blocks with rules) cannot burn CPU or memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyLimits {
    /// Maximum number of facts in the evaluated world.
    pub max_facts: u64,
    /// Maximum number of rule-application iterations.
    pub max_iterations: u64,
    /// Maximum wall-clock time for the evaluation and the checks.
    pub max_time: Duration,
}

impl Default for VerifyLimits {
    /// 1000 facts and 100 iterations — Biscuit's defaults, which bound a hostile token's
    /// work deterministically — and a 50 ms ([`DEFAULT_MAX_TIME`]) backstop. Our own tokens
    /// need about a dozen facts, one iteration and ~5 µs of evaluation in an optimised
    /// build.
    fn default() -> Self {
        Self {
            max_facts: 1000,
            max_iterations: 100,
            max_time: DEFAULT_MAX_TIME,
        }
    }
}

/// The default [`VerifyLimits::max_time`]: 50 ms, a backstop far above any honest
/// evaluation. It is wall-clock time, so it must also hold when the verifying thread is
/// preempted: Biscuit's 1 ms default rejected valid sessions of a loaded server as
/// invalid (`cargo xtask bench-streams`: 10,000 streams opening at once on 2 cores).
pub const DEFAULT_MAX_TIME: Duration = Duration::from_millis(50);

impl VerifyLimits {
    fn to_biscuit(self) -> AuthorizerLimits {
        AuthorizerLimits {
            max_facts: self.max_facts,
            max_iterations: self.max_iterations,
            max_time: self.max_time,
        }
    }
}

/// A freshly issued token, to hand to its holder once.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The Biscuit, URL-safe base64: the bearer credential. Show it once, never log it.
    pub token: String,
    /// Hex of the authority block's revocation id: the one to store and check, since
    /// revoking it revokes every token derived from this one.
    pub revocation_id: String,
    /// Hex revocation ids of all blocks, in order (`revocation_ids[0] == revocation_id`).
    pub revocation_ids: Vec<String>,
    /// When the token expires, truncated to the whole second the token enforces.
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"<redacted>")
            .field("revocation_id", &self.revocation_id)
            .field("revocation_ids", &self.revocation_ids)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Who a verified token speaks for (read from the authority block only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A user's login session.
    Session {
        /// The user.
        user_id: Uuid,
        /// The session (to revoke on logout).
        session_id: Uuid,
        /// Whether the session's sign-in passed a second factor (`amr("otp")`).
        second_factor: bool,
    },
    /// An integration's API key, bound to one org.
    ApiKey {
        /// The org the key belongs to (and is only usable on).
        org_id: Uuid,
        /// The key's id.
        key_id: Uuid,
        /// The permission keys it grants, sorted and deduplicated.
        permissions: Vec<String>,
    },
}

/// A token that passed [`TokenIssuer::verify_for_org`]. Revocation is not checked here:
/// the caller must look [`VerifiedToken::revocation_ids`] up in its revocation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Who the token speaks for.
    pub principal: Principal,
    /// Hex revocation ids of all blocks, in order; the first is the authority block's
    /// (the one stored at issue). Checking that one suffices for tokens we issue;
    /// checking all of them also honours revocation of a holder-attenuated derivative.
    pub revocation_ids: Vec<String>,
    /// The expiry from the authority block. Always `Some` for the tokens this module
    /// issues (a token without one is rejected as malformed).
    pub expires_at: Option<OffsetDateTime>,
}

impl VerifiedToken {
    /// The authority block's revocation id (hex): the one stored when the token was issued.
    #[must_use]
    pub fn authority_revocation_id(&self) -> Option<&str> {
        self.revocation_ids.first().map(String::as_str)
    }
}

/// SHA-256 of a token's text, for cache keys and lookups: the raw token must never be a
/// cache key nor be logged.
#[must_use]
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Issues and verifies the server's tokens. Cheap to clone (the key is shared).
#[derive(Clone)]
pub struct TokenIssuer {
    key: Arc<SigningKey>,
    public: PublicKey,
    limits: VerifyLimits,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("public", &self.key.public_hex())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// An issuer signing with `key` and verifying against its public key, with the
    /// default [`VerifyLimits`].
    #[must_use]
    pub fn new(key: Arc<SigningKey>) -> Self {
        let public = key.key_pair().public();
        Self {
            key,
            public,
            limits: VerifyLimits::default(),
        }
    }

    /// The same issuer with other evaluation limits for verification.
    #[must_use]
    pub fn with_limits(mut self, limits: VerifyLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The evaluation limits applied by verification.
    #[must_use]
    pub fn limits(&self) -> VerifyLimits {
        self.limits
    }

    /// Issues a session token for `user_id`'s session `session_id`, valid until
    /// `expires_at` (truncated to the second), saying whether its sign-in passed a
    /// `second_factor`. See the [module docs](self) for its content.
    pub fn issue_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        expires_at: OffsetDateTime,
        second_factor: bool,
    ) -> Result<IssuedToken, TokenError> {
        let (expires_at, exp) = expiry(expires_at)?;
        let user = user_id.to_string();
        let session = session_id.to_string();
        let mut builder = biscuit!(
            r#"
            kind("session");
            user({user});
            session({session});
            expires({exp});
            check if time($t), $t < {exp};
            "#
        );
        if second_factor {
            builder = builder
                .fact(builder::fact("amr", &[builder::string("otp")]))
                .map_err(issue_error)?;
        }
        let token = builder.build(self.key.key_pair()).map_err(issue_error)?;
        finish(&token, expires_at)
    }

    /// Issues an API key `key_id` of org `org_id` granting `permissions` (deduplicated),
    /// valid until `expires_at` (truncated to the second): a server-signed authority block
    /// attenuated by a second block binding it to its org and expiry (see the
    /// [module docs](self)).
    pub fn issue_api_key(
        &self,
        org_id: Uuid,
        key_id: Uuid,
        permissions: &[String],
        expires_at: OffsetDateTime,
    ) -> Result<IssuedToken, TokenError> {
        let (expires_at, exp) = expiry(expires_at)?;
        let org = org_id.to_string();
        let key = key_id.to_string();
        let mut authority = biscuit!(
            r#"
            kind("api_key");
            org({org});
            api_key({key});
            expires({exp});
            "#,
            org = org.as_str(),
            exp = exp.clone(),
        );
        let mut granted: Vec<&str> = permissions.iter().map(String::as_str).collect();
        granted.sort_unstable();
        granted.dedup();
        for permission in granted {
            authority = authority
                .fact(builder::fact("permission", &[builder::string(permission)]))
                .map_err(issue_error)?;
        }
        let authority = authority.build(self.key.key_pair()).map_err(issue_error)?;
        let attenuated = authority
            .append(block!(
                r#"
                check if time($t), $t < {exp};
                check if operation_org({org});
                "#
            ))
            .map_err(issue_error)?;
        finish(&attenuated, expires_at)
    }

    /// [`verify_for_org`](Self::verify_for_org) for a request that targets no org.
    ///
    /// Session tokens verify; API keys are always rejected with
    /// [`TokenError::Unauthorized`], since their attenuation requires the operation's org.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<VerifiedToken, TokenError> {
        self.verify_for_org(token, now, None)
    }

    /// Verifies `token` at `now` for a request on org `org_id` (if it targets one).
    ///
    /// Parses the token once, checking its signature chain against the server's public key
    /// ([`TokenError::Malformed`] / [`TokenError::InvalidSignature`]) and that it is in the
    /// canonical encoding (re-encoding it gives back the same text; see the
    /// [module docs](self#canonical-encoding)), then runs one
    /// bounded Biscuit authorization with the facts `time(now)` and, when `org_id` is
    /// given, `operation_org("<org_id>")`: every check of every block must pass and the
    /// authority block must declare a known kind. A token past its authority expiry is
    /// [`TokenError::Expired`]; any other failed check (an API key on another org or on
    /// no org, a check appended by the holder) or an exceeded [`VerifyLimits`] is
    /// [`TokenError::Unauthorized`]. The principal is read from authority-block facts only.
    ///
    /// Sessions are not org-bound: `org_id` does not affect them (membership is the
    /// caller's business). Revocation is not checked here; see [`VerifiedToken`]. A cache
    /// in front of this must key API-key results by ([`hash_token`], org).
    pub fn verify_for_org(
        &self,
        token: &str,
        now: OffsetDateTime,
        org_id: Option<Uuid>,
    ) -> Result<VerifiedToken, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(reject(TokenError::Malformed, "length"));
        }
        let biscuit = Biscuit::from_base64(token, self.public).map_err(parse_error)?;
        // Protobuf decoding is lenient (unknown fields skipped, defaults implied) and the
        // root key id sits outside the signatures: only the exact encoding we produce is
        // accepted, so that no byte of a token can change without it being refused.
        if biscuit.root_key_id().is_some() || biscuit.to_base64().ok().as_deref() != Some(token) {
            return Err(reject(TokenError::Malformed, "non-canonical encoding"));
        }

        let now_secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let now = Term::Date(now_secs);
        let mut builder = authorizer!(
            r#"
            time({now});
            allow if kind("session");
            allow if kind("api_key");
            "#
        );
        if let Some(org) = org_id {
            builder = builder
                .fact(builder::fact(
                    "operation_org",
                    &[builder::string(&org.to_string())],
                ))
                .map_err(|_| reject(TokenError::Malformed, "authorizer"))?;
        }
        let limits = self.limits.to_biscuit();
        let mut authorizer = builder
            .set_limits(limits.clone())
            .build(&biscuit)
            .map_err(|_| reject(TokenError::Malformed, "blocks"))?;

        let verdict = authorizer.authorize();
        if let Err(error::Token::RunLimit(_) | error::Token::Execution(_)) = verdict {
            // The world could not be evaluated: nothing can be read from it.
            return Err(reject(TokenError::Unauthorized, "evaluation"));
        }
        // If the checks failed, the reading below only serves to tell expiry apart.
        let unreadable = if verdict.is_ok() {
            TokenError::Malformed
        } else {
            TokenError::Unauthorized
        };

        let [kind, expires] = single(query(
            &mut authorizer,
            rule!("token_meta($kind, $exp) <- kind($kind), expires($exp) trusting authority"),
            &limits,
        ))
        .ok_or_else(|| reject(unreadable.clone(), "meta"))?;
        let (Term::Str(kind), Term::Date(expires)) = (kind, expires) else {
            return Err(reject(unreadable, "meta"));
        };
        if now_secs >= expires {
            return Err(reject(TokenError::Expired, "expired"));
        }
        if verdict.is_err() {
            return Err(reject(TokenError::Unauthorized, "checks"));
        }
        let expires_at = i64::try_from(expires)
            .ok()
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
            .ok_or_else(|| reject(TokenError::Malformed, "expiry"))?;

        let principal = match kind.as_str() {
            KIND_SESSION => session_principal(&mut authorizer, &limits),
            KIND_API_KEY => api_key_principal(&mut authorizer, &limits),
            _ => None,
        }
        .ok_or_else(|| reject(TokenError::Malformed, "principal"))?;

        Ok(VerifiedToken {
            principal,
            revocation_ids: revocation_ids(&biscuit),
            expires_at: Some(expires_at),
        })
    }
}

/// The expiry as the token stores it (whole seconds since 1970), and back.
fn expiry(expires_at: OffsetDateTime) -> Result<(OffsetDateTime, Term), TokenError> {
    let secs = expires_at.unix_timestamp();
    let date =
        u64::try_from(secs).map_err(|_| TokenError::Issue("expiry is before 1970".to_owned()))?;
    let truncated = OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|_| TokenError::Issue("expiry out of range".to_owned()))?;
    Ok((truncated, Term::Date(date)))
}

fn issue_error(e: error::Token) -> TokenError {
    TokenError::Issue(e.to_string())
}

fn finish(token: &Biscuit, expires_at: OffsetDateTime) -> Result<IssuedToken, TokenError> {
    let text = token.to_base64().map_err(issue_error)?;
    if text.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Issue(format!(
            "token would be {} bytes, over the {MAX_TOKEN_LEN} accepted",
            text.len()
        )));
    }
    let revocation_ids = revocation_ids(token);
    let revocation_id = revocation_ids
        .first()
        .cloned()
        .ok_or_else(|| TokenError::Issue("token has no revocation id".to_owned()))?;
    Ok(IssuedToken {
        token: text,
        revocation_id,
        revocation_ids,
        expires_at,
    })
}

fn revocation_ids(token: &Biscuit) -> Vec<String> {
    token
        .revocation_identifiers()
        .iter()
        .map(hex::encode)
        .collect()
}

/// Maps a parsing error to ours, keeping signature failures apart from the rest.
fn parse_error(e: error::Token) -> TokenError {
    match e {
        error::Token::Format(
            Format::Signature(_) | Format::SealedSignature | Format::UnknownPublicKey,
        ) => reject(TokenError::InvalidSignature, "signature"),
        _ => reject(TokenError::Malformed, "decoding"),
    }
}

/// Logs a rejection (the category only: never the token, nor Biscuit's error text, which
/// can quote bytes of it) and returns the error.
fn reject(error: TokenError, reason: &'static str) -> TokenError {
    tracing::debug!(%error, reason, "bearer token rejected");
    error
}

/// Runs a query over the already evaluated world and returns the distinct rows. The query
/// is our own single-rule lookup over a world already bounded by the limits.
fn query(authorizer: &mut Authorizer, rule: Rule, limits: &AuthorizerLimits) -> Vec<Vec<Term>> {
    let facts: Vec<builder::Fact> = match authorizer.query_with_limits(rule, limits.clone()) {
        Ok(facts) => facts,
        Err(_) => return Vec::new(),
    };
    let mut rows: Vec<Vec<Term>> = facts.into_iter().map(|f| f.predicate.terms).collect();
    rows.sort();
    rows.dedup();
    rows
}

/// The only row of `rows`, as `N` terms; `None` if there are none or several.
fn single<const N: usize>(mut rows: Vec<Vec<Term>>) -> Option<[Term; N]> {
    let row = rows.pop()?;
    if !rows.is_empty() {
        return None;
    }
    row.try_into().ok()
}

fn uuid_of(term: &Term) -> Option<Uuid> {
    match term {
        Term::Str(s) => Uuid::parse_str(s).ok(),
        _ => None,
    }
}

fn session_principal(authorizer: &mut Authorizer, limits: &AuthorizerLimits) -> Option<Principal> {
    let [user, session] = single(query(
        authorizer,
        rule!(
            "session_token($user, $session) <- user($user), session($session) trusting authority"
        ),
        limits,
    ))?;
    let second_factor = query(
        authorizer,
        rule!("session_amr($m) <- amr($m) trusting authority"),
        limits,
    )
    .iter()
    .any(|row| matches!(row.as_slice(), [Term::Str(m)] if m == "otp"));
    Some(Principal::Session {
        user_id: uuid_of(&user)?,
        session_id: uuid_of(&session)?,
        second_factor,
    })
}

fn api_key_principal(authorizer: &mut Authorizer, limits: &AuthorizerLimits) -> Option<Principal> {
    let [org, key] = single(query(
        authorizer,
        rule!("api_key_token($org, $key) <- org($org), api_key($key) trusting authority"),
        limits,
    ))?;
    let mut permissions = Vec::new();
    for row in query(
        authorizer,
        rule!("granted($permission) <- permission($permission) trusting authority"),
        limits,
    ) {
        match <[Term; 1]>::try_from(row).ok()? {
            [Term::Str(permission)] => permissions.push(permission),
            _ => return None,
        }
    }
    permissions.sort();
    Some(Principal::ApiKey {
        org_id: uuid_of(&org)?,
        key_id: uuid_of(&key)?,
        permissions,
    })
}

#[cfg(test)]
mod tests;
