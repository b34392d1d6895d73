//! Multi-row `INSERT` statements with bound values, and the progress display.
//!
//! Values are bound as SeaORM [`Value`]s (never formatted into the SQL text), so each
//! backend gets exactly the encoding the SeaORM entities write: UUIDs as `uuid` / 16-byte
//! blobs, times as `timestamptz` / sqlx's SQLite text form, JSON as `jsonb` / JSON text.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

/// Bound parameters per statement stay below this (SQLite's default limit is 32,766,
/// PostgreSQL's 65,535).
///
/// Big statements matter on PostgreSQL: besides the per-row work, every statement pays a
/// fixed cost (a round trip, and over TCP, measured here, often a delayed-ACK stall: the
/// same 1,000-row batches ran twice as fast over the Unix socket). With 4,000-row batches
/// a million settings went in 3× faster than with 1,000-row ones.
const MAX_PARAMS: usize = 32_000;

/// Collects rows for one table and writes them `rows_per_statement` at a time, each batch
/// as one multi-row `INSERT` on `conn` (the caller's transaction).
pub struct BulkInsert<'c, C> {
    conn: &'c C,
    backend: DbBackend,
    table: &'static str,
    columns: &'static [&'static str],
    rows_per_statement: usize,
    values: Vec<Value>,
    pending: usize,
    written: u64,
    progress: Progress,
}

impl<'c, C: ConnectionTrait> BulkInsert<'c, C> {
    /// An inserter into `table` (`columns` in the order rows give their values), writing
    /// batches of at most `batch` rows; `total` rows are expected (for the progress bar).
    pub fn new(
        conn: &'c C,
        table: &'static str,
        columns: &'static [&'static str],
        batch: usize,
        total: u64,
    ) -> Self {
        let rows_per_statement = batch.clamp(1, (MAX_PARAMS / columns.len().max(1)).max(1));
        Self {
            conn,
            backend: conn.get_database_backend(),
            table,
            columns,
            rows_per_statement,
            values: Vec::with_capacity(rows_per_statement * columns.len()),
            pending: 0,
            written: 0,
            progress: Progress::start(table, total),
        }
    }

    /// Adds one row (one value per column); writes the batch when it is full.
    pub async fn push<const N: usize>(&mut self, row: [Value; N]) -> anyhow::Result<()> {
        anyhow::ensure!(
            N == self.columns.len(),
            "{}: a row has {N} values for {} columns",
            self.table,
            self.columns.len()
        );
        self.values.extend(row);
        self.pending += 1;
        if self.pending >= self.rows_per_statement {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        let sql = insert_sql(self.backend, self.table, self.columns, self.pending);
        let values = std::mem::replace(
            &mut self.values,
            Vec::with_capacity(self.rows_per_statement * self.columns.len()),
        );
        let stmt = Statement::from_sql_and_values(self.backend, sql, values);
        self.conn
            .execute_raw(stmt)
            .await
            .map_err(|e| anyhow::anyhow!("inserting into {}: {e}", self.table))?;
        self.written += self.pending as u64;
        self.pending = 0;
        self.progress.update(self.written);
        Ok(())
    }

    /// Writes the last batch and prints the phase's summary line; returns the row count.
    pub async fn finish(mut self) -> anyhow::Result<u64> {
        self.flush().await?;
        self.progress.finish(self.written);
        Ok(self.written)
    }
}

/// `INSERT INTO table (a, b) VALUES (p, p), (p, p), …` with `rows` rows of placeholders
/// (`$1, $2, …` on PostgreSQL, `?` on SQLite).
fn insert_sql(backend: DbBackend, table: &str, columns: &[&str], rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(64 + rows * columns.len() * 7);
    sql.push_str("INSERT INTO ");
    sql.push_str(table);
    sql.push_str(" (");
    sql.push_str(&columns.join(", "));
    sql.push_str(") VALUES ");
    let mut n = 0usize;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match backend {
                // Writing to a `String` cannot fail.
                DbBackend::Postgres => {
                    let _ = write!(sql, "${n}");
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

/// One phase's progress: a bar updated per batch on a terminal, and a summary line with
/// the count, the elapsed time and the rate.
pub struct Progress {
    label: &'static str,
    total: u64,
    started: Instant,
    live: bool,
}

impl Progress {
    /// Starts timing a phase of `total` rows.
    pub fn start(label: &'static str, total: u64) -> Self {
        Self {
            label,
            total,
            started: Instant::now(),
            live: std::io::stdout().is_terminal(),
        }
    }

    /// Redraws the bar (terminal only).
    pub fn update(&self, done: u64) {
        if !self.live {
            return;
        }
        const WIDTH: u64 = 30;
        let total = self.total.max(1);
        let filled = (done.min(total) * WIDTH / total) as usize;
        let pct = done.min(total) * 100 / total;
        let bar = format!(
            "{}{}",
            "#".repeat(filled),
            ".".repeat(WIDTH as usize - filled)
        );
        print!(
            "\r  {:<30} [{bar}] {pct:>3}%  {}/{}",
            self.label,
            thousands(done),
            thousands(self.total)
        );
        let _ = std::io::stdout().flush();
    }

    /// Prints the summary line of a step that writes no rows of its own: its time.
    pub fn finish_step(&self) {
        println!(
            "  {:<30} {:>16}  {:>8}",
            self.label,
            "",
            seconds(self.started.elapsed())
        );
    }

    /// Prints the summary line.
    pub fn finish(&self, done: u64) {
        let elapsed = self.started.elapsed();
        if self.live {
            // Clear the bar.
            print!("\r{:<100}\r", "");
        }
        println!(
            "  {:<30} {:>11} rows  {:>8}  {:>11} rows/s",
            self.label,
            thousands(done),
            seconds(elapsed),
            thousands(rate(done, elapsed))
        );
    }
}

/// Rows per second.
fn rate(done: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return done;
    }
    (done as f64 / secs) as u64
}

/// `12.34s`.
pub fn seconds(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_text_per_backend() {
        assert_eq!(
            insert_sql(DbBackend::Postgres, "t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            insert_sql(DbBackend::Sqlite, "t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
