//! A PostgreSQL schema of its own for one test (a random name, so test binaries running at once
//! never meet), and a pool that reaches PostgreSQL directly, for assertions on what the gateway
//! stored.

use std::time::Duration;

/// `SWITCHYARD_TEST_DATABASE_URL`, else the local test database.
pub fn postgres_url() -> String {
    std::env::var("SWITCHYARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_owned())
}

pub struct PgSchema {
    pub admin: sqlx::PgPool,
    pub name: String,
}

impl PgSchema {
    /// A new schema named `<prefix>_<random>`.
    pub async fn new(prefix: &str) -> PgSchema {
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&postgres_url())
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {} is not answering: {e}", postgres_url()));
        let name = format!("{prefix}_{:016x}", fastrand::u64(..));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .unwrap();
        PgSchema { admin, name }
    }

    /// The database URL with this schema as its search path (how an operator keeps Switchyard
    /// in a schema of its own).
    pub fn url(&self) -> String {
        self.url_via("127.0.0.1:5432")
    }

    /// The same, through another host and port (a proxy that can cut the connection).
    pub fn url_via(&self, host_port: &str) -> String {
        let base = postgres_url().replace("127.0.0.1:5432", host_port);
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}options=-c%20search_path%3D{}", self.name)
    }

    pub async fn drop_schema(self) {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            self.name
        )))
        .execute(&self.admin)
        .await;
    }
}
