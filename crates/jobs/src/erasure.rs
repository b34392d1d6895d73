//! A person's traces in background jobs, erased in the caller's transaction (issue
//! #17): import and export rows that name them, and every stored export file of the
//! orgs concerned — a file is a copy of many records and cannot be edited row by row,
//! so it is withdrawn whole (the job stays, its download answers 404).

use std::collections::BTreeSet;

use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Value};
use uuid::Uuid;

use crate::JobStoreError;
use crate::entity::job_files;

/// What [`erase_person_in`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobErasure {
    /// Job rows (import items, failed rows) naming the person.
    pub records: u64,
    /// Stored export file parts withdrawn.
    pub file_parts: u64,
}

/// Where an erasure reaches in the job tables.
#[derive(Debug, Clone, Copy)]
pub enum JobScope<'a> {
    /// Rows in any org (an account's erasure); files of these orgs and of every org
    /// whose rows named the person.
    Everywhere(&'a [Uuid]),
    /// Rows and files of these orgs only.
    Orgs(&'a [Uuid]),
}

/// Removes every job row whose payload contains one of `needles` (compared
/// case-insensitively: pass the address and the id) and the stored files, as `scope`
/// says.
///
/// # Errors
/// Storage failures; roll back then.
pub async fn erase_person_in<C: ConnectionTrait>(
    conn: &C,
    scope: JobScope<'_>,
    needles: &[String],
) -> Result<JobErasure, JobStoreError> {
    let backend = conn.get_database_backend();
    let matches = if backend == DbBackend::Postgres {
        "strpos(lower(payload::text), ?) > 0"
    } else {
        "instr(lower(payload), ?) > 0"
    };
    let (listed, everywhere) = match scope {
        JobScope::Everywhere(orgs) => (orgs, true),
        JobScope::Orgs(orgs) => (orgs, false),
    };
    let mut orgs: BTreeSet<Uuid> = listed.iter().copied().collect();
    let mut done = JobErasure::default();
    for table in ["job_items", "job_errors"] {
        for needle in needles.iter().filter(|n| !n.is_empty()) {
            let needle: Value = needle.to_lowercase().into();
            if everywhere {
                let rows = conn
                    .query_all_raw(persistence::statement(
                        backend,
                        &format!("SELECT DISTINCT org_id FROM {table} WHERE {matches}"),
                        vec![needle.clone()],
                    ))
                    .await?;
                for row in rows {
                    orgs.insert(row.try_get::<Uuid>("", "org_id")?);
                }
            }
            for &org in &orgs {
                let sql = format!("DELETE FROM {table} WHERE {matches} AND org_id = ?");
                done.records += conn
                    .execute_raw(persistence::statement(
                        backend,
                        &sql,
                        vec![needle.clone(), org.into()],
                    ))
                    .await?
                    .rows_affected();
            }
        }
    }
    for org in orgs {
        done.file_parts += job_files::Entity::delete_many()
            .filter(job_files::Column::OrgId.eq(org))
            .exec(conn)
            .await?
            .rows_affected;
    }
    Ok(done)
}
