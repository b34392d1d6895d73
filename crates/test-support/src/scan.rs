//! Scans for personal data left behind (erasure tests): every row of every table as
//! text, every file under a directory as bytes.

use std::io::Read;
use std::path::Path;

use sea_orm::{ConnectionTrait, DbBackend, Statement};

/// Whether `needle` (non-empty) occurs in `haystack`.
#[must_use]
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, recursively, with its bytes (`.gz` files decompressed); a
/// missing directory holds none.
///
/// # Panics
/// When a directory entry cannot be read.
#[must_use]
pub fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
            continue;
        }
        // A file removed while scanning (a temporary file) is not there any more.
        let Ok(mut bytes) = std::fs::read(&path) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "gz") {
            let mut plain = Vec::new();
            if flate2::read::GzDecoder::new(bytes.as_slice())
                .read_to_end(&mut plain)
                .is_ok()
            {
                bytes = plain;
            }
        }
        out.push((path.display().to_string(), bytes));
    }
    out
}

/// Every row of every table of `conn` as text, tagged with its table (PostgreSQL:
/// `t::text`, which shows `bytea` as hex; SQLite: each column cast to text, blobs as
/// hex — a raw file scan covers their bytes). Connect as a superuser on PostgreSQL so
/// row-level security hides nothing.
///
/// # Panics
/// When a query fails.
pub async fn table_texts<C: ConnectionTrait>(conn: &C) -> Vec<(String, String)> {
    let backend = conn.get_database_backend();
    let tables_sql = match backend {
        DbBackend::Postgres => {
            "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1",
    };
    let names = |rows: Vec<sea_orm::QueryResult>| -> Vec<String> {
        rows.iter()
            .map(|r| r.try_get::<String>("", "name").expect("a name"))
            .collect()
    };
    let tables = names(
        conn.query_all_raw(Statement::from_string(backend, tables_sql))
            .await
            .expect("list the tables"),
    );
    let mut out = Vec::new();
    for table in tables {
        let sql = if backend == DbBackend::Postgres {
            format!("SELECT t::text AS row FROM \"{table}\" t")
        } else {
            let columns = names(
                conn.query_all_raw(Statement::from_string(
                    backend,
                    format!("SELECT name FROM pragma_table_info('{table}')"),
                ))
                .await
                .expect("list the columns"),
            );
            if columns.is_empty() {
                continue;
            }
            let cells: Vec<String> = columns
                .iter()
                .map(|c| {
                    format!(
                        "coalesce(CASE WHEN typeof(\"{c}\") = 'blob' THEN hex(\"{c}\") \
                         ELSE CAST(\"{c}\" AS TEXT) END, '')"
                    )
                })
                .collect();
            format!(
                "SELECT {} AS row FROM \"{table}\"",
                cells.join(" || '|' || ")
            )
        };
        for row in conn
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .expect("read a table")
        {
            let text: Option<String> = row.try_get("", "row").expect("a row as text");
            out.push((table.clone(), text.unwrap_or_default()));
        }
    }
    out
}
