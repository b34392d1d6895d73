//! A tiny SQL text builder: the same statement text for both backends, with placeholders
//! numbered for PostgreSQL (`$1`, `$2`, …) and positional for SQLite (`?`).

use std::fmt::Write as _;

use sea_orm::{DbBackend, Statement, Value};

/// SQL text plus its bound values, for one backend.
#[derive(Debug)]
pub(crate) struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    /// An empty statement for `backend`.
    pub(crate) fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            text: String::new(),
            values: Vec::new(),
        }
    }

    /// Appends literal SQL text (never user input).
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.text.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                // Writing to a `String` cannot fail.
                let _ = write!(self.text, "${}", self.values.len());
            }
            _ => self.text.push('?'),
        }
        self
    }

    /// Appends `(p1, p2, …)` bound to `values`; `values` must not be empty.
    pub(crate) fn bind_list<V: Into<Value>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Self {
        self.text.push('(');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(value);
        }
        self.text.push(')');
        self
    }

    /// The finished statement.
    pub(crate) fn build(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_backend() {
        let build = |backend| {
            let mut sql = Sql::new(backend);
            sql.push("SELECT 1 WHERE a = ")
                .bind(1_i64)
                .push(" AND b IN ")
                .bind_list(["x", "y"]);
            sql.build()
        };
        let pg = build(DbBackend::Postgres);
        assert_eq!(pg.sql, "SELECT 1 WHERE a = $1 AND b IN ($2, $3)");
        let lite = build(DbBackend::Sqlite);
        assert_eq!(lite.sql, "SELECT 1 WHERE a = ? AND b IN (?, ?)");
        assert_eq!(lite.values.map(|v| v.0.len()), Some(3));
    }
}
