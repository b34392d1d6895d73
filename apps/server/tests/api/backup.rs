//! Backup and restore as docs/operations.md tells an operator to do it: the database
//! dumped while the instance serves (`pg_dump` as the superuser; SQLite's online
//! `.backup`), restored into a new database (`pg_restore` into one owned by the app's
//! role), and the `DATA_DIR` keys and digests copied. A new instance on the restore
//! signs in the same accounts, honours the same sessions and API keys, and finds the
//! audit chains intact; restored without its keys, it refuses the API keys.

use std::path::{Path, PathBuf};
use std::process::Command;

use actix_web::http::Method;
use actix_web::test;
use pto_server::config::Settings;
use pto_server::startup::{HashingCost, app, build_state};
use sea_orm::{ConnectionTrait, Database};

use crate::backend_tests;
use crate::directory::{ids, join_as, new_org};
use crate::helpers::{APP_ROLE, Backend, TestContext, login, send, with_database, with_user};

backend_tests!(
    a_restored_backup_with_its_keys_serves_accounts_sessions_api_keys_and_an_intact_audit,
);

/// Runs an operator's command; fails the test with its output when it fails.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not start (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies what docs/operations.md says to back up from `DATA_DIR` (keys, digests,
/// archive) — never the live SQLite files, which are backed up online.
fn copy_data_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("pto.sqlite3") || name == "tmp" || name == "outbox" {
            continue;
        }
        let target = to.join(&*name);
        if entry.file_type().unwrap().is_dir() {
            copy_data_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Settings of a new instance on `data_dir` and `database_url` (`None`: the embedded
/// SQLite file in `data_dir`), standing alone (no Redis).
fn restored_settings(data_dir: &Path, database_url: Option<&str>) -> Settings {
    let mut env = std::collections::BTreeMap::new();
    env.insert("DATA_DIR".to_owned(), data_dir.display().to_string());
    env.insert("BIND_ADDR".to_owned(), "127.0.0.1:0".to_owned());
    env.insert("DATABASE_MAX_CONNECTIONS".to_owned(), "4".to_owned());
    env.insert("RATE_LIMIT_ENABLED".to_owned(), "false".to_owned());
    if let Some(url) = database_url {
        env.insert("DATABASE_URL".to_owned(), url.to_owned());
    }
    Settings::from_sources(&env, false).expect("restored settings are valid")
}

/// A scratch directory and (on PostgreSQL) database, removed when dropped.
struct Scratch {
    dirs: Vec<PathBuf>,
    pg: Option<(String, String)>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((admin_url, name)) = self.pg.take() {
            test_support::block_on_side_thread(async move {
                test_support::drop_database(&admin_url, &name).await;
            });
        }
    }
}

/// Whether the operator's tool `program` is installed; skipped with a note when not
/// (a fresh machine with only Rust), except under `CI=true`, where `.ci/run` installs it.
fn installed(program: &str) -> bool {
    let found = Command::new(program).arg("--version").output().is_ok();
    assert!(
        found || !test_support::in_ci(),
        "{program} is required under CI=true (.ci/run installs it)"
    );
    if !found {
        eprintln!("{program} not installed: backup test skipped");
    }
    found
}

async fn a_restored_backup_with_its_keys_serves_accounts_sessions_api_keys_and_an_intact_audit(
    ctx: TestContext,
) {
    let tools: &[&str] = match ctx.backend {
        Backend::Postgres => &["pg_dump", "pg_restore"],
        Backend::Sqlite => &["sqlite3"],
    };
    if !tools.iter().all(|t| installed(t)) {
        return;
    }
    let live = ctx.service().await;
    let (org, _, admin) = new_org(&live, "backup-admin@example.org", "BACKUP1").await;
    let (ada, _) = join_as(
        &live,
        "BACKUP1",
        "Ada",
        "Lovelace",
        "ada-backup@example.org",
    )
    .await;
    let (status, key) = send(
        &live,
        Method::POST,
        &format!("/api/v2/orgs/{org}/api-keys"),
        Some(&admin),
        Some(serde_json::json!({"name": "sync", "permissions": ["users.view"], "expires_in_days": 30})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let api_key = key["data"]["token"].as_str().unwrap().to_owned();

    // The backup, taken while the instance serves.
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let backup = std::env::temp_dir().join(format!("ptoc-backup-{run_id}"));
    let restored_dir = std::env::temp_dir().join(format!("ptoc-restored-{run_id}"));
    let keyless_dir = std::env::temp_dir().join(format!("ptoc-keyless-{run_id}"));
    let mut scratch = Scratch {
        dirs: vec![backup.clone(), restored_dir.clone(), keyless_dir.clone()],
        pg: None,
    };
    std::fs::create_dir_all(&backup).unwrap();
    copy_data_dir(&ctx.settings.data_dir, &restored_dir);
    let database_url = match ctx.backend {
        Backend::Postgres => {
            let (_, superuser) = ctx.postgres_urls().unwrap();
            let dump = backup.join("pto.dump");
            run(
                "pg_dump",
                &[
                    "--format=custom",
                    "--file",
                    dump.to_str().unwrap(),
                    &superuser,
                ],
            );
            // Restore into a new, empty database owned by the app's role.
            let admin_url = test_support::postgres_admin_url().unwrap();
            let name = format!("ptoc_t_{run_id}");
            let admin = Database::connect(&admin_url).await.unwrap();
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\" OWNER {APP_ROLE}"))
                .await
                .unwrap();
            admin.close().await.ok();
            scratch.pg = Some((admin_url.clone(), name.clone()));
            let restored_superuser = with_database(&admin_url, &name);
            run(
                "pg_restore",
                &[
                    "--exit-on-error",
                    "--dbname",
                    &restored_superuser,
                    dump.to_str().unwrap(),
                ],
            );
            Some(with_user(&restored_superuser, APP_ROLE))
        }
        Backend::Sqlite => {
            let live_file = ctx.settings.data_dir.join("pto.sqlite3");
            let copy = restored_dir.join("pto.sqlite3");
            run(
                "sqlite3",
                &[
                    live_file.to_str().unwrap(),
                    &format!(".backup '{}'", copy.display()),
                ],
            );
            std::fs::create_dir_all(&keyless_dir).unwrap();
            std::fs::copy(&copy, keyless_dir.join("pto.sqlite3")).unwrap();
            None
        }
    };

    // A new instance on the restore, with the keys.
    let state = build_state(
        &restored_settings(&restored_dir, database_url.as_deref()),
        &ctx.api,
        HashingCost::FastForTests,
    )
    .await
    .expect("the restored instance starts");
    let restored = test::init_service(app(state, ctx.api.clone())).await;
    let users = format!("/api/v2/orgs/{org}/users");
    // The API key and the session taken before the backup still work …
    let (status, body) = send(&restored, Method::GET, &users, Some(&api_key), None).await;
    assert_eq!(status, 200, "the API key after restore: {body}");
    assert!(
        ids(body["data"].as_array().unwrap()).contains(&ada),
        "{body}"
    );
    let (status, body) = send(&restored, Method::GET, "/api/v2/me", Some(&admin), None).await;
    assert_eq!(status, 200, "the session after restore: {body}");
    // … a member signs in with her password …
    let ada_token = login(&restored, "ada-backup@example.org", "correct horse battery").await;
    let (status, _) = send(&restored, Method::GET, &users, Some(&ada_token), None).await;
    assert_eq!(status, 200);
    // … and the audit chain verifies, against the digests and key that were copied.
    let (status, report) = send(
        &restored,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs/verify"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["data"]["intact"], true, "{report}");
    // A write on the restore is audited on the same chain.
    let (status, body) = crate::helpers::patch_current(
        &restored,
        &format!("{users}/{ada}"),
        Some(&admin),
        Some(serde_json::json!({"committee": "Garden"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, report) = send(
        &restored,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs/verify"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(report["data"]["intact"], true, "{report}");

    // Restored without its keys (a new DATA_DIR: a new signing key is made), the same
    // data refuses the API key — why the keys are backed up with the database.
    let keyless = build_state(
        &restored_settings(&keyless_dir, database_url.as_deref()),
        &ctx.api,
        HashingCost::FastForTests,
    )
    .await
    .expect("the keyless instance starts");
    let keyless = test::init_service(app(keyless, ctx.api.clone())).await;
    let (status, _) = send(&keyless, Method::GET, &users, Some(&api_key), None).await;
    assert_eq!(status, 401, "an API key verified without the signing key");
    drop(scratch);
}
