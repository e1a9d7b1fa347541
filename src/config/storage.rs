//! Where keys, teams and users are stored, and the Redis that makes counters shared.
//!
//! - No database settings: SQLite in a file, `switchyard.db` next to the config file (created and
//!   migrated at start). Zero setup.
//! - `general_settings.database_url` (or the `DATABASE_URL` environment variable, as LiteLLM
//!   reads it): `postgresql://...` selects PostgreSQL; `sqlite://PATH` picks another SQLite file.
//! - Redis, as LiteLLM's router reads it: `router_settings.redis_url`, else
//!   `router_settings.redis_host` / `redis_port` / `redis_password`, else the `REDIS_URL` or
//!   `REDIS_HOST` / `REDIS_PORT` / `REDIS_PASSWORD` environment variables. Without Redis, counters
//!   and limits are per instance.

use std::path::PathBuf;

use super::Secret;

/// The default SQLite file name, next to the config file.
pub const DEFAULT_SQLITE_FILE: &str = "switchyard.db";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (it may carry a password, hence a secret).
    Postgres(Secret),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    pub database: Database,
    /// `redis://[:password@]host:port[/db]`; `None` keeps counters in this process.
    pub redis_url: Option<Secret>,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            database: Database::Sqlite(PathBuf::from(DEFAULT_SQLITE_FILE)),
            redis_url: None,
        }
    }
}

impl Database {
    /// Reads a `database_url`: PostgreSQL or SQLite by its scheme.
    pub fn from_url(url: &str) -> Result<Database, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(Secret::new(url.to_owned())));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(
                    "a sqlite URL needs a file path (sqlite:///var/lib/switchyard.db)".into(),
                );
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        Err("must start with postgresql://, postgres:// or sqlite://".into())
    }

    /// For logs and `switchyard check`: the kind and where, never a password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("sqlite {}", path.display()),
            Database::Postgres(url) => {
                let url = url.expose();
                let host = url
                    .split_once('@')
                    .map_or_else(|| url.split_once("://").map_or(url, |(_, r)| r), |(_, r)| r);
                format!("postgresql {host}")
            }
        }
    }
}

/// `redis://[:password@]host:port` from LiteLLM's separate settings.
pub fn redis_url(host: &str, port: Option<u16>, password: Option<&str>) -> String {
    let port = port.unwrap_or(6379);
    match password {
        Some(password) if !password.is_empty() => format!("redis://:{password}@{host}:{port}"),
        _ => format!("redis://{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_pick_the_backend_and_never_print_a_password() {
        let pg = Database::from_url("postgresql://app:s3cret@db.internal:5432/gw").unwrap();
        assert!(matches!(pg, Database::Postgres(_)));
        assert_eq!(pg.describe(), "postgresql db.internal:5432/gw");
        assert_eq!(
            Database::from_url("sqlite:///var/lib/sy.db").unwrap(),
            Database::Sqlite(PathBuf::from("/var/lib/sy.db"))
        );
        assert!(Database::from_url("mysql://x").is_err());
        assert_eq!(redis_url("r", None, None), "redis://r:6379");
        assert_eq!(redis_url("r", Some(7000), Some("pw")), "redis://:pw@r:7000");
    }
}
