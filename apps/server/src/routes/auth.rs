//! Accounts and sessions.

use garde::Validate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::service::{RegisterError, RegisterRequest};
use tenancy::{Email, Password, PersonName, User};

use crate::http::{ApiError, ApiRoutes, Created, ErrorCode, FieldError, Json, RouteDoc, State};

pub(super) fn register(r: &mut ApiRoutes) {
    r.post(
        "/api/v2/auth/register",
        register_account,
        RouteDoc::new("register", "Open an account (no organization yet)", "auth")
            .public()
            .description("Creates a user. Join an organization afterwards with its signup code.")
            .errors(&[ErrorCode::Conflict]),
    );
}

/// A new account.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schemars(example = register_example())]
pub struct RegisterBody {
    /// Sign-in address; unique, case-insensitive (surrounding spaces are trimmed).
    #[garde(length(max = 254), custom(domain_rule(Email::parse)))]
    #[schemars(email)]
    pub email: String,
    /// 12 to 128 characters.
    #[garde(length(chars, min = 12, max = 128), custom(domain_rule(|p: &str| Password::parse(p.to_owned()))))]
    pub password: String,
    /// Given name.
    #[garde(
        length(chars, min = 1, max = 100),
        custom(domain_rule(PersonName::parse))
    )]
    pub first_name: String,
    /// Family name.
    #[garde(
        length(chars, min = 1, max = 100),
        custom(domain_rule(PersonName::parse))
    )]
    pub last_name: String,
}

/// A garde rule from a domain parser, so the domain's rules are reported with all
/// other field errors at once.
fn domain_rule<T, E: std::fmt::Display>(
    parse: impl Fn(&str) -> Result<T, E>,
) -> impl FnOnce(&String, &()) -> garde::Result {
    move |value, ()| {
        parse(value)
            .map(|_| ())
            .map_err(|e| garde::Error::new(e.to_string()))
    }
}

fn register_example() -> serde_json::Value {
    serde_json::json!({
        "email": "jane.doe@example.org",
        "password": "correct horse battery staple",
        "first_name": "Jane",
        "last_name": "Doe"
    })
}

/// A user as the API shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserView {
    /// User id (UUID v7).
    pub id: uuid::Uuid,
    /// Sign-in address (normalized to lower case).
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Creation time, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: time::OffsetDateTime,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.as_uuid(),
            email: u.email.to_string(),
            first_name: u.first_name.to_string(),
            last_name: u.last_name.to_string(),
            status: serde_json::to_value(u.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            created_at: u.created_at,
        }
    }
}

fn field(field: &str, message: impl ToString) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code: "invalid".to_owned(),
        message: message.to_string(),
    }
}

async fn register_account(
    state: State,
    Json(body): Json<RegisterBody>,
) -> Result<Created<UserView>, ApiError> {
    // The extractor ran the domain rules already; parsing again yields the typed values.
    let invalid = |f: &str, e: &dyn std::fmt::Display| ApiError::validation(vec![field(f, e)]);
    let email = Email::parse(&body.email).map_err(|e| invalid("email", &e))?;
    let password = Password::parse(body.password).map_err(|e| invalid("password", &e))?;
    let first_name = PersonName::parse(&body.first_name).map_err(|e| invalid("first_name", &e))?;
    let last_name = PersonName::parse(&body.last_name).map_err(|e| invalid("last_name", &e))?;
    let user = state
        .accounts
        .register(RegisterRequest {
            email,
            password,
            first_name,
            last_name,
        })
        .await
        .map_err(|e| match e {
            RegisterError::EmailTaken { .. } => ApiError::new(
                ErrorCode::Conflict,
                "an account with this email already exists",
            )
            .with_details(serde_json::json!({ "field": "email" })),
            RegisterError::Unexpected(source) => ApiError::internal(source),
        })?;
    Ok(Created(user.into()))
}
