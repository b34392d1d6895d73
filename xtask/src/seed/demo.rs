//! `seed --demo`: a small, realistic tenant for local use, written through the stores
//! (so every change is audited exactly as if it was made through the API).
//!
//! Springfield Unified (`SPRINGFIELD-USD`) with Sunset Elementary and Maple Middle;
//! "Sunset Elementary PTO" under Sunset Elementary (signup code `SUNSET2024`) with eight
//! members in every role — including a custom "Treasurer" role (counts as board member,
//! plus `budget.approve`, at most one holder) — one direct grant, a district admin, and
//! two district template settings, one of them locked.
//!
//! Passwords are generated per run and printed once. Seeding twice is refused: if the
//! district code exists, nothing is written. The steps are separate audited
//! transactions, so the e-mail addresses and the signup code are checked first, to fail
//! before writing anything rather than halfway.

use districts::ports::{CreateDistrictRequest, CreateSchoolRequest, DistrictRepository as _};
use districts::{DisplayName, DistrictCode, DistrictStaffRole, GradeLevels, SubscriptionTier};
use districts_store::SeaOrmDistrictRepository;
use permissions::{BuiltinRole, KeySet, PermissionKey, ScopedSetting};
use permissions_store::SeaOrmPermissionStore;
use persistence::Database;
use sea_orm::{ConnectionTrait as _, Statement, Value};
use tenancy::ports::{
    AuditContext, ChangeMemberRequest, CreateOrgRequest, CreateRoleRequest, CreateUserRequest,
    OrgRepository as _, PasswordHasher as _, RoleChoice, UserRepository as _,
};
use tenancy::{Email, OrgKind, Password, PersonName, SignupCode, UserId};
use tenancy_store::{SeaOrmOrgRepository, SeaOrmUserRepository};
use uuid::Uuid;

use super::enterprise::district_exists;
use super::rng::random_password;

/// The demo district's code: its presence means "already seeded".
pub const DISTRICT_CODE: &str = "SPRINGFIELD-USD";
/// The demo org's signup code.
pub const SIGNUP_CODE: &str = "SUNSET2024";
/// The demo org's name.
pub const ORG_NAME: &str = "Sunset Elementary PTO";

/// A member's role in the demo org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DemoRole {
    Builtin(BuiltinRole),
    Treasurer,
    DistrictAdmin,
}

/// The people: first name, last name, e-mail, role.
const PEOPLE: [(&str, &str, &str, DemoRole); 9] = [
    (
        "Maria",
        "Lopez",
        "maria.lopez@sunset-pto.example.org",
        DemoRole::Builtin(BuiltinRole::Admin),
    ),
    (
        "James",
        "Carter",
        "james.carter@sunset-pto.example.org",
        DemoRole::Builtin(BuiltinRole::BoardMember),
    ),
    (
        "Priya",
        "Shah",
        "priya.shah@sunset-pto.example.org",
        DemoRole::Treasurer,
    ),
    (
        "Daniel",
        "Kim",
        "daniel.kim@sunset-pto.example.org",
        DemoRole::Builtin(BuiltinRole::CommitteeLead),
    ),
    (
        "Aisha",
        "Johnson",
        "aisha.johnson@sunset-pto.example.org",
        DemoRole::Builtin(BuiltinRole::CommitteeLead),
    ),
    (
        "Tom",
        "Nguyen",
        "tom.nguyen@sunset-pto.example.org",
        DemoRole::Builtin(BuiltinRole::Volunteer),
    ),
    (
        "Emily",
        "Brown",
        "emily.brown@sunset-pto.example.org",
        DemoRole::Builtin(BuiltinRole::Volunteer),
    ),
    (
        "Lucas",
        "Meyer",
        "lucas.meyer@sunset-pto.example.org",
        DemoRole::Builtin(BuiltinRole::Volunteer),
    ),
    (
        "Dana",
        "Whitfield",
        "dana.whitfield@springfield-usd.example.org",
        DemoRole::DistrictAdmin,
    ),
];

/// One account to sign in with.
#[derive(Debug, Clone)]
pub struct Credential {
    /// Sign-in e-mail.
    pub email: String,
    /// Full name.
    pub name: String,
    /// Role, as shown in the table (`admin`, `Treasurer (board_member)`, …).
    pub role: String,
    /// The generated password.
    pub password: String,
}

/// What the demo seed created.
#[derive(Debug)]
pub struct Report {
    /// The district.
    pub district_id: Uuid,
    /// The schools (name, id).
    pub schools: Vec<(String, Uuid)>,
    /// The org.
    pub org_id: Uuid,
    /// The custom role.
    pub treasurer_role: Uuid,
    /// Every account, the org admin first.
    pub credentials: Vec<Credential>,
}

/// What the demo seed did.
#[derive(Debug)]
pub enum Outcome {
    /// The district exists: nothing was written.
    AlreadySeeded,
    /// Everything was created.
    Seeded(Box<Report>),
}

/// Seeds the demo tenant on `db` (migrated), hashing passwords with `hasher`.
pub async fn run(db: &Database, hasher: &credentials::Argon2Hasher) -> anyhow::Result<Outcome> {
    if district_exists(db.primary(), DISTRICT_CODE).await? {
        return Ok(Outcome::AlreadySeeded);
    }
    preflight(db).await?;

    let ctx = AuditContext {
        actor: audit::Actor::System,
        request: audit::RequestMeta::default(),
    };
    let users = SeaOrmUserRepository::new(db.clone());
    let orgs = SeaOrmOrgRepository::new(db.clone());
    let districts = SeaOrmDistrictRepository::new(db.clone());
    let permissions = SeaOrmPermissionStore::new(db.clone());

    // The district and its schools.
    let district = districts
        .create_district(
            &ctx,
            CreateDistrictRequest {
                name: DisplayName::parse("Springfield Unified")?,
                code: DistrictCode::parse(DISTRICT_CODE)?,
                tier: SubscriptionTier::Enterprise,
                settings: serde_json::Map::new(),
            },
        )
        .await?;
    let mut schools = Vec::new();
    for (name, code, grades) in [
        (
            "Sunset Elementary",
            "SUNSET-ES",
            &["K", "1", "2", "3", "4", "5"][..],
        ),
        ("Maple Middle", "MAPLE-MS", &["6", "7", "8"][..]),
    ] {
        let school = districts
            .create_school(
                &ctx,
                CreateSchoolRequest {
                    district_id: Some(district.id),
                    name: DisplayName::parse(name)?,
                    code: DistrictCode::parse(code)?,
                    grade_levels: GradeLevels::parse(grades)?,
                },
            )
            .await?;
        schools.push((school.name.clone(), school.id.as_uuid()));
    }
    let sunset = schools[0].1;

    // The accounts, each with a fresh random password.
    let mut people = Vec::new();
    for (first, last, email, role) in PEOPLE {
        let password = random_password();
        let hash = hasher
            .hash(Password::parse(password.clone())?)
            .await
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
        let user = users
            .create_user(
                &ctx,
                CreateUserRequest {
                    email: Email::parse(email)?,
                    first_name: PersonName::parse(first)?,
                    last_name: PersonName::parse(last)?,
                    password_hash: hash,
                    locale: None,
                },
            )
            .await?;
        people.push((user.id, format!("{first} {last}"), email, role, password));
    }
    let admin: UserId = people[0].0;

    // The org, under Sunset Elementary; its creator becomes its admin.
    let (org, _) = orgs
        .create_org(
            &ctx,
            CreateOrgRequest {
                name: ORG_NAME.to_owned(),
                kind: OrgKind::Pto,
                school_id: Some(sunset),
                signup_code: SignupCode::parse(SIGNUP_CODE)?,
                creator: admin,
            },
        )
        .await?;
    let treasurer = orgs
        .create_role(
            &ctx,
            CreateRoleRequest {
                org_id: org.id,
                name: "Treasurer".to_owned(),
                counts_as: BuiltinRole::BoardMember,
                extra_keys: [PermissionKey::BudgetApprove]
                    .into_iter()
                    .collect::<KeySet>(),
                max_holders: Some(1),
            },
        )
        .await?;

    // Everyone else joins with the signup code (as a volunteer), then the admin gives
    // them their role.
    let code = SignupCode::parse(SIGNUP_CODE)?;
    for (id, _, _, role, _) in &people[1..] {
        let choice = match role {
            DemoRole::DistrictAdmin => continue,
            DemoRole::Builtin(BuiltinRole::Volunteer) => None,
            DemoRole::Builtin(r) => Some(RoleChoice::Builtin(*r)),
            DemoRole::Treasurer => Some(RoleChoice::Custom(treasurer.id)),
        };
        orgs.join_by_code(&ctx, &code, *id).await?;
        if let Some(choice) = choice {
            orgs.change_member(
                &ctx,
                ChangeMemberRequest {
                    org_id: org.id,
                    actor: admin,
                    target: *id,
                    expected_version: None,
                    role: Some(choice),
                    status: None,
                    role_ends_at: None,
                    committee: None,
                    children: None,
                    account: tenancy::ports::AccountChanges::default(),
                },
            )
            .await?;
        }
    }

    // The district: its admin and two template settings, one locked.
    for (id, _, _, role, _) in &people {
        if *role == DemoRole::DistrictAdmin {
            districts
                .set_staff(
                    &ctx,
                    district.id,
                    *id,
                    DistrictStaffRole::DistrictAdmin,
                    None,
                )
                .await?;
        }
    }
    permissions
        .set_district_setting(
            &ctx,
            district.id.as_uuid(),
            PermissionKey::FundraisingManage,
            ScopedSetting {
                min_role: BuiltinRole::BoardMember,
                enabled: true,
                locked: true,
            },
        )
        .await?;
    permissions
        .set_district_setting(
            &ctx,
            district.id.as_uuid(),
            PermissionKey::CommunicationsSend,
            ScopedSetting {
                min_role: BuiltinRole::CommitteeLead,
                enabled: true,
                locked: false,
            },
        )
        .await?;

    // One direct grant: a volunteer who runs an event.
    let volunteer = people
        .iter()
        .find(|p| p.3 == DemoRole::Builtin(BuiltinRole::Volunteer))
        .map(|p| p.0)
        .ok_or_else(|| anyhow::anyhow!("the demo has a volunteer"))?;
    permissions
        .grant(
            &ctx,
            org.id.as_uuid(),
            volunteer.as_uuid(),
            PermissionKey::EventsCreate,
            None,
            Some("Coordinates the fall festival".to_owned()),
            Some(admin.as_uuid()),
        )
        .await?;

    let credentials = people
        .into_iter()
        .map(|(_, name, email, role, password)| Credential {
            email: email.to_owned(),
            name,
            role: match role {
                DemoRole::Builtin(r) => r.as_str().to_owned(),
                DemoRole::Treasurer => "Treasurer (board_member)".to_owned(),
                DemoRole::DistrictAdmin => "district_admin".to_owned(),
            },
            password,
        })
        .collect();
    Ok(Outcome::Seeded(Box::new(Report {
        district_id: district.id.as_uuid(),
        schools,
        org_id: org.id.as_uuid(),
        treasurer_role: treasurer.id.0,
        credentials,
    })))
}

/// Refuses (before writing anything) when a demo e-mail or the signup code is taken.
async fn preflight(db: &Database) -> anyhow::Result<()> {
    let conn = db.primary();
    let backend = conn.get_database_backend();
    let p = |n: usize| match backend {
        sea_orm::DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    };
    let emails: Vec<Value> = PEOPLE.iter().map(|p| Value::from(p.2)).collect();
    let placeholders: Vec<String> = (1..=emails.len()).map(p).collect();
    let taken = conn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT email FROM users WHERE email IN ({})",
                placeholders.join(", ")
            ),
            emails,
        ))
        .await?;
    if !taken.is_empty() {
        let list: Vec<String> = taken
            .iter()
            .filter_map(|r| r.try_get::<String>("", "email").ok())
            .collect();
        anyhow::bail!(
            "the demo accounts {} already exist (but district {DISTRICT_CODE} does not); \
             seed an empty database",
            list.join(", ")
        );
    }
    let code = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!("SELECT id FROM organizations WHERE signup_code = {}", p(1)),
            [Value::from(SIGNUP_CODE)],
        ))
        .await?;
    anyhow::ensure!(
        code.is_none(),
        "signup code {SIGNUP_CODE} is already used by another organization; seed an empty database"
    );
    Ok(())
}

/// Prints what was created and the sign-in table.
pub fn print(outcome: &Outcome, backend: &str) {
    let r = match outcome {
        Outcome::AlreadySeeded => {
            println!(
                "seed --demo: district {DISTRICT_CODE} already exists in this {backend} database; nothing written.\n\
                 (Passwords are only shown when they are created. To start over: `cargo xtask migrate fresh`.)"
            );
            return;
        }
        Outcome::Seeded(r) => r,
    };
    println!("seed --demo on {backend}: created");
    println!(
        "  district      Springfield Unified ({DISTRICT_CODE}) {}",
        r.district_id
    );
    for (name, id) in &r.schools {
        println!("  school        {name} {id}");
    }
    println!(
        "  organization  {ORG_NAME} {} (school: {}; signup code {SIGNUP_CODE})",
        r.org_id, r.schools[0].0
    );
    println!(
        "  custom role   Treasurer {} (counts as board_member, + budget.approve, max 1 holder)",
        r.treasurer_role
    );
    println!(
        "  district templates: fundraising.manage ≥ board_member (locked), communications.send ≥ committee_lead"
    );
    println!("  direct grant  events.create to the first volunteer");
    println!("  8 members and 1 district admin; every change above is in the audit log.");
    println!();
    println!("Sign in with (generated for this run, for local use only; not shown again):");
    let width = |f: fn(&Credential) -> usize| r.credentials.iter().map(f).max().unwrap_or(0);
    let w_email = width(|c| c.email.len());
    let w_name = width(|c| c.name.len());
    let w_role = width(|c| c.role.len());
    println!(
        "  {:<w_email$}  {:<w_name$}  {:<w_role$}  password",
        "email", "name", "role"
    );
    println!(
        "  {}  {}  {}  {}",
        "-".repeat(w_email),
        "-".repeat(w_name),
        "-".repeat(w_role),
        "-".repeat(23)
    );
    for c in &r.credentials {
        println!(
            "  {:<w_email$}  {:<w_name$}  {:<w_role$}  {}",
            c.email, c.name, c.role, c.password
        );
    }
}
