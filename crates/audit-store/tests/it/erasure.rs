//! Erasure ("crypto-shredding"): a data subject's personal fields — live and archived —
//! are never stored in the clear, read back while the subject's key exists, read as
//! `[erased]` once it is deleted, and every chain, digest and archive still verifies.

use std::io::Read;
use std::path::Path;

use audit::{
    Action, Actor, AuditErasure, AuditEvent, AuditFilter, AuditLog, ChainId, ChangeType,
    DataSubject, DigestStore, ERASED, ErasureScope, NewAuditEvent, PageRequest, TenantScope,
};
use audit_store::{
    ArchiveOptions, AuditedTx, Ed25519DigestSigner, FileDigestStore, SeaOrmAuditErasure,
    archive_chain, ensure_subject_keys, erase_subject_in, open_events, reclaim_erased_space,
    verify_archive_dir, verify_live_chain, write_digest,
};
use persistence::Backend;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::harness::TestDb;

/// The erased member's distinctive values: none may be found anywhere afterwards.
const EMAIL: &str = "zebedee.quuxworth-7731@example.test";
const NAME: &str = "Zebedee Quuxworth";
const PHONE: &str = "+1 555 0199 7731";
const NEW_PHONE: &str = "+1 555 0142 8822";
const CHILD: &str = "Ottoline Quuxworth";
const IP: &str = "198.51.100.77";
const USER_AGENT: &str = "QuuxBrowser/9.9 (erasure test)";
const DISTINCTIVE: [&str; 7] = [EMAIL, NAME, PHONE, NEW_PHONE, CHILD, IP, USER_AGENT];

/// Another member's values: they must stay readable.
const OTHER_NAME: &str = "Philippa Control-Person";

fn member_event(
    org: Uuid,
    actor: Actor,
    action: &str,
    member: Uuid,
    change: ChangeType,
    at: OffsetDateTime,
) -> NewAuditEvent {
    NewAuditEvent::audit(
        TenantScope::org(org),
        actor,
        Action::new(action).unwrap(),
        "member",
        member.to_string(),
        change,
    )
    .at(at)
}

async fn record(db: &TestDb, events: Vec<NewAuditEvent>) -> Vec<AuditEvent> {
    let tx = AuditedTx::begin(&db.db).await.unwrap();
    for e in events {
        tx.record(e).await.unwrap();
    }
    tx.commit().await.unwrap()
}

struct Scenario {
    org: Uuid,
    member: Uuid,
    other: Uuid,
    invitation: Uuid,
}

/// The member's life in the audit trail: invited, added (500 days ago, to be archived),
/// edits their own profile (with their IP and browser), changes phone, signs in on the
/// platform; plus another member who is not erased.
async fn populate(db: &TestDb, now: OffsetDateTime) -> Scenario {
    let s = Scenario {
        org: Uuid::now_v7(),
        member: Uuid::now_v7(),
        other: Uuid::now_v7(),
        invitation: Uuid::now_v7(),
    };
    let admin = Actor::User(Uuid::now_v7());
    let old = now - Duration::days(500);
    let profile = json!({
        "email": EMAIL,
        "first_name": "Zebedee",
        "last_name": "Quuxworth",
        "display": NAME,
        "phone": PHONE,
        "children": [{"name": CHILD, "grade": "3"}],
    });
    record(
        db,
        vec![
            NewAuditEvent::audit(
                TenantScope::org(s.org),
                admin,
                Action::new("member.invite").unwrap(),
                "invitation",
                s.invitation.to_string(),
                ChangeType::Create,
            )
            .at(old)
            .with_new_value(
                json!({"email": EMAIL, "first_name": "Zebedee", "last_name": "Quuxworth"}),
            )
            .with_ip("203.0.113.5"),
            member_event(
                s.org,
                admin,
                "member.create",
                s.member,
                ChangeType::Create,
                old,
            )
            .with_new_value(profile.clone())
            .with_ip("203.0.113.5"),
            member_event(
                s.org,
                Actor::User(s.member),
                "member.update",
                s.member,
                ChangeType::Update,
                old + Duration::minutes(5),
            )
            .with_old_value(json!({"display": NAME}))
            .with_new_value(json!({"display": NAME, "children": [CHILD]}))
            .with_ip(IP)
            .with_user_agent(USER_AGENT),
            member_event(
                s.org,
                admin,
                "member.create",
                s.other,
                ChangeType::Create,
                old,
            )
            .with_new_value(json!({"display": OTHER_NAME})),
        ],
    )
    .await;
    record(
        db,
        vec![
            member_event(
                s.org,
                admin,
                "member.update",
                s.member,
                ChangeType::Update,
                now - Duration::days(2),
            )
            .with_old_value(json!({"phone": PHONE}))
            .with_new_value(json!({"phone": NEW_PHONE}))
            .with_ip("203.0.113.5"),
            NewAuditEvent::activity(
                TenantScope::PLATFORM,
                Actor::User(s.member),
                audit::action::activity::SIGN_IN,
                "user",
                s.member.to_string(),
            )
            .at(now - Duration::days(1))
            .with_ip(IP)
            .with_user_agent(USER_AGENT),
            NewAuditEvent::activity(
                TenantScope::PLATFORM,
                Actor::User(s.other),
                audit::action::activity::SIGN_IN,
                "user",
                s.other.to_string(),
            )
            .at(now - Duration::days(1))
            .with_ip("192.0.2.99")
            .with_user_agent(OTHER_NAME),
        ],
    )
    .await;
    s
}

async fn all_events(db: &TestDb, chain: ChainId) -> Vec<AuditEvent> {
    db.log()
        .find(AuditFilter::new(chain), PageRequest::first(100))
        .await
        .unwrap()
        .items
}

fn text_of(events: &[AuditEvent]) -> String {
    serde_json::to_string(events).unwrap()
}

/// The events of every archive file under `dir`, as stored.
fn archived_events(dir: &Path) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "gz") {
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            out.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<AuditEvent>(l).unwrap()),
            );
        }
    }
    out
}

/// Every file under `dir`, gzip files decompressed: its bytes.
use test_support::scan::{contains, files_under};

/// Every row of every table as text, tagged with its table.
async fn table_texts(db: &TestDb) -> Vec<(String, String)> {
    test_support::scan::table_texts(db.db.primary()).await
}

/// The stored keys of `subject` (hex-free raw bytes).
async fn keys_of(db: &TestDb, subject: DataSubject) -> Vec<Vec<u8>> {
    db.rows(
        "SELECT key FROM audit_subject_keys WHERE subject = ?",
        vec![subject.to_string().into()],
    )
    .await
    .iter()
    .map(|r| r.try_get::<Vec<u8>>("", "key").unwrap())
    .collect()
}

pub async fn erasure_shreds_live_and_archived_fields_and_everything_still_verifies(db: &TestDb) {
    let now = OffsetDateTime::now_utc();
    let signer = Ed25519DigestSigner::generate().unwrap();
    let digests = FileDigestStore::in_data_dir(&db.dir).unwrap();
    let archive_dir = db.dir.join("archive");
    let s = populate(db, now).await;
    let org = ChainId::Org(s.org);
    write_digest(&db.db, &digests, &signer, now).await.unwrap();
    // The oldest four org events go to an archive file.
    let o = archive_chain(
        &db.db,
        &archive_dir,
        &signer,
        org,
        now - Duration::days(400),
        ArchiveOptions::at(now),
    )
    .await
    .unwrap();
    assert_eq!(o.recorded.len(), 1);
    assert_eq!(o.recorded[0].manifest.last_seq, 4);
    write_digest(&db.db, &digests, &signer, now).await.unwrap();

    // Before: readers see the values (live through the log, archived through the keys)…
    let live = text_of(&all_events(db, org).await);
    assert!(live.contains(NEW_PHONE) && live.contains(PHONE), "{live}");
    let platform = text_of(&all_events(db, ChainId::Platform).await);
    assert!(platform.contains(IP) && platform.contains(USER_AGENT));
    let mut archived = archived_events(&archive_dir);
    assert_eq!(archived.len(), 4);
    assert!(
        !text_of(&archived).contains(EMAIL),
        "archives hold ciphertext only"
    );
    open_events(db.db.primary(), &mut archived).await.unwrap();
    let opened = text_of(&archived);
    for value in [EMAIL, NAME, PHONE, CHILD, IP, USER_AGENT, OTHER_NAME] {
        assert!(opened.contains(value), "{value} readable before erasure");
    }
    // …while nothing stores them in the clear.
    for (table, row) in table_texts(db).await {
        for value in DISTINCTIVE {
            assert!(!row.contains(value), "{value} stored in {table}: {row}");
        }
    }
    let member = DataSubject::User(s.member);
    let keys = [
        keys_of(db, member).await,
        keys_of(db, DataSubject::Invitation(s.invitation)).await,
    ]
    .concat();
    assert_eq!(keys.len(), 3, "org and platform keys, and the invitation's");
    if db.backend() == Backend::Sqlite {
        // The scan below can see a key: before the erasure, each is in the files.
        let files = files_under(&db.dir);
        for key in &keys {
            assert!(files.iter().any(|(_, bytes)| contains(bytes, key)));
        }
    }

    // Erase the member everywhere and their invitation, in one transaction.
    let tx = db.db.begin_write().await.unwrap();
    let erased = erase_subject_in(&tx, member, ErasureScope::Everywhere)
        .await
        .unwrap();
    let invitee = erase_subject_in(
        &tx,
        DataSubject::Invitation(s.invitation),
        ErasureScope::Chain(org),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut chains = vec![org, ChainId::Platform];
    chains.sort();
    assert_eq!(erased.chains, chains);
    assert_eq!(invitee.chains, vec![org]);
    assert!(reclaim_erased_space(&db.db).await.unwrap());

    // Reads show `[erased]` for the member's fields, live and archived; others stay.
    let live = all_events(db, org).await;
    let update = live
        .iter()
        .find(|e| e.body.entity_id == s.member.to_string())
        .unwrap();
    assert_eq!(update.body.new_value, Some(json!(ERASED)));
    assert_eq!(update.body.old_value, Some(json!(ERASED)));
    assert_eq!(
        update.body.ip.as_deref(),
        Some("203.0.113.5"),
        "the admin's IP stays"
    );
    let platform = all_events(db, ChainId::Platform).await;
    let sign_in = platform
        .iter()
        .find(|e| e.body.actor == Actor::User(s.member))
        .unwrap();
    assert_eq!(sign_in.body.ip.as_deref(), Some(ERASED));
    assert_eq!(sign_in.body.user_agent.as_deref(), Some(ERASED));
    assert!(text_of(&platform).contains(OTHER_NAME));
    let mut archived = archived_events(&archive_dir);
    open_events(db.db.primary(), &mut archived).await.unwrap();
    let opened = text_of(&archived);
    assert!(
        opened.contains(OTHER_NAME),
        "another member's data stays readable"
    );
    for (i, event) in archived.iter().enumerate() {
        assert_eq!(
            event.compute_hash(),
            event.hash,
            "archived event {i} still hashes"
        );
    }
    let everything = [opened, text_of(&live), text_of(&platform)].concat();
    for value in DISTINCTIVE {
        assert!(!everything.contains(value), "{value} still readable");
    }

    // No table and no file under the data directory holds a value or an erased key.
    for (table, row) in table_texts(db).await {
        for value in DISTINCTIVE {
            assert!(!row.contains(value), "{value} left in {table}: {row}");
        }
    }
    assert!(keys_of(db, member).await.is_empty());
    for (path, bytes) in files_under(&db.dir) {
        for value in DISTINCTIVE {
            assert!(
                !contains(&bytes, value.as_bytes()),
                "{value} left in {path}"
            );
        }
        for key in &keys {
            assert!(!contains(&bytes, key), "an erased key left in {path}");
        }
    }
    if db.backend() == Backend::Sqlite {
        let wal = db.dir.join("db.sqlite3-wal");
        assert!(
            std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
            "the write-ahead log was truncated"
        );
    }

    // The live chains (from their recorded cut, against the signed digests) and the
    // archive still verify.
    let all = digests.list(None, u32::MAX).await.unwrap();
    for chain in [org, ChainId::Platform] {
        let report = verify_live_chain(&db.db, chain, &all, &signer)
            .await
            .unwrap();
        assert!(report.is_intact(), "{chain}: {report:?}");
        assert!(report.checked > 0);
    }
    let archive = verify_archive_dir(&archive_dir, &signer).unwrap();
    assert!(archive.is_intact(), "{archive:?}");
    assert_eq!(archive.chains.len(), 1);
    assert_eq!(archive.chains[0].segments, 1);
}

pub async fn erasing_in_one_chain_keeps_the_subject_readable_elsewhere(db: &TestDb) {
    let now = OffsetDateTime::now_utc();
    let s = populate(db, now).await;
    let org = ChainId::Org(s.org);
    let erasure = SeaOrmAuditErasure::new(db.db.clone());
    let receipt = erasure
        .erase_subject(DataSubject::User(s.member), ErasureScope::Chain(org))
        .await
        .unwrap();
    assert_eq!(receipt.chains, vec![org]);
    assert!(!text_of(&all_events(db, org).await).contains(NEW_PHONE));
    let platform = text_of(&all_events(db, ChainId::Platform).await);
    assert!(platform.contains(IP) && platform.contains(USER_AGENT));
    // Erasing again finds nothing more to erase.
    let again = erasure
        .erase_subject(DataSubject::User(s.member), ErasureScope::Chain(org))
        .await
        .unwrap();
    assert!(again.chains.is_empty());

    // New events about the subject get a new key and are readable until erased again.
    record(
        db,
        vec![
            member_event(
                s.org,
                Actor::System,
                "member.update",
                s.member,
                ChangeType::Update,
                now,
            )
            .with_new_value(json!({"phone": "+1 555 0100 0001"})),
        ],
    )
    .await;
    assert!(text_of(&all_events(db, org).await).contains("+1 555 0100 0001"));
    let report = verify_live_chain(&db.db, org, &[], &crate::atomicity::NoSigner)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
}

pub async fn a_tampered_ciphertext_breaks_the_chain(db: &TestDb) {
    let now = OffsetDateTime::now_utc();
    let s = populate(db, now).await;
    let org = ChainId::Org(s.org);
    // Swap the sealed parts of two events of the same subject: both still decrypt
    // nowhere (their associated data names the event) and the chain breaks.
    let rows = db
        .rows(
            "SELECT seq, sealed FROM audit_events WHERE chain_id = ? AND sealed IS NOT NULL ORDER BY seq",
            vec![org.to_string().into()],
        )
        .await;
    let sealed = |i: usize| -> String {
        match db.backend() {
            Backend::Postgres => rows[i]
                .try_get::<serde_json::Value>("", "sealed")
                .unwrap()
                .to_string(),
            Backend::Sqlite => rows[i].try_get::<String>("", "sealed").unwrap(),
        }
    };
    let (first, second) = (sealed(1), sealed(2));
    assert_ne!(first, second);
    let seq2: i64 = rows[2].try_get("", "seq").unwrap();
    let cast = if db.backend() == Backend::Postgres {
        "CAST(? AS jsonb)"
    } else {
        "?"
    };
    db.exec(
        &format!("UPDATE audit_events SET sealed = {cast} WHERE chain_id = ? AND seq = ?"),
        vec![first.into(), org.to_string().into(), seq2.into()],
    )
    .await;
    let report = verify_live_chain(&db.db, org, &[], &crate::atomicity::NoSigner)
        .await
        .unwrap();
    let broken = report.first_break.expect("the chain breaks");
    assert_eq!(broken.seq, u64::try_from(seq2).unwrap());
    // And reading it is refused rather than shown.
    assert!(
        db.log()
            .find(AuditFilter::new(org), PageRequest::first(100))
            .await
            .is_err()
    );
}

/// Keys made ahead of any event (`ensure_subject_keys`, for a bulk-loaded dataset) are
/// made once, and the appends that come later seal under them instead of adding keys.
pub async fn keys_made_ahead_are_made_once_and_used_by_later_appends(db: &TestDb) {
    let (org, member, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let pairs: std::collections::BTreeSet<_> = [member, other]
        .into_iter()
        .map(|u| (ChainId::Org(org), DataSubject::User(u)))
        .collect();
    ensure_subject_keys(db.db.primary(), &pairs).await.unwrap();
    let first = keys_of(db, DataSubject::User(member)).await;
    assert_eq!(first.len(), 1, "one key for the member");
    assert_eq!(keys_of(db, DataSubject::User(other)).await.len(), 1);
    // Again: nothing new, nothing replaced.
    ensure_subject_keys(db.db.primary(), &pairs).await.unwrap();
    assert_eq!(keys_of(db, DataSubject::User(member)).await, first);
    // An event about the member seals under the key made ahead, and reads back.
    let now = OffsetDateTime::now_utc();
    let admin = Actor::User(other);
    record(
        db,
        vec![
            member_event(org, admin, "member.update", member, ChangeType::Update, now)
                .with_new_value(json!({"display": OTHER_NAME})),
        ],
    )
    .await;
    assert_eq!(keys_of(db, DataSubject::User(member)).await, first);
    let page = db
        .log()
        .find(AuditFilter::new(ChainId::Org(org)), PageRequest::first(10))
        .await
        .unwrap();
    let shown = serde_json::to_string(&page.items).unwrap();
    assert!(
        shown.contains(OTHER_NAME),
        "the sealed value reads back: {shown}"
    );
}

crate::both_backends!(
    erasure_shreds_live_and_archived_fields_and_everything_still_verifies,
    erasing_in_one_chain_keeps_the_subject_readable_elsewhere,
    a_tampered_ciphertext_breaks_the_chain,
    keys_made_ahead_are_made_once_and_used_by_later_appends,
);
