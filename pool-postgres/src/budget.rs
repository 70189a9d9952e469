//! The connection budget: what the server lets this role open on this database, and what is
//! left of it.

use std::fmt;

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::PgError;

/// What the server allows and what is already open, read from one connection
/// ([`Budget::read`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Budget {
    /// `max_connections`.
    pub max_connections: u32,
    /// Slots only superusers may use (`superuser_reserved_connections`, plus
    /// `reserved_connections` on PostgreSQL 16 and later).
    pub reserved: u32,
    /// The role connected as.
    pub role: String,
    /// Is it a superuser (the reserved slots are open to it)?
    pub superuser: bool,
    /// The role's `CONNECTION LIMIT` (`None`: unlimited).
    pub role_limit: Option<u32>,
    /// The database connected to.
    pub database: String,
    /// The database's `CONNECTION LIMIT` (`None`: unlimited).
    pub database_limit: Option<u32>,
    /// Client backends open on the server, counting the one that read this.
    pub open_total: u32,
    /// Of those, the role's.
    pub open_role: u32,
    /// Of those, the database's.
    pub open_database: u32,
}

const QUERY: &str = "SELECT \
    current_setting('max_connections'), \
    current_setting('superuser_reserved_connections')::int \
      + coalesce(current_setting('reserved_connections', true)::int, 0), \
    current_user, \
    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)::text, \
    (SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user), \
    current_database(), \
    (SELECT datconnlimit FROM pg_database WHERE datname = current_database()), \
    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = current_user), \
    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = current_database())";

impl Budget {
    /// Reads the budget over `client` (one simple query; any role can run it, though without
    /// `pg_read_all_stats` the counts of other roles' backends may be incomplete).
    ///
    /// # Errors
    /// The query's error, or [`PgError::Config`] if a value cannot be read.
    pub async fn read(client: &Client) -> Result<Budget, PgError> {
        let rows = client.simple_query(QUERY).await?;
        let row = rows
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .ok_or_else(|| PgError::Config("the budget query returned no row".into()))?;
        let text = |i: usize| row.get(i).unwrap_or("");
        let num = |i: usize| -> Result<i64, PgError> {
            text(i).parse::<i64>().map_err(|_| {
                PgError::Config(format!(
                    "budget: unreadable value {:?} in column {i}",
                    text(i)
                ))
            })
        };
        let limit = |v: i64| u32::try_from(v).ok();
        Ok(Budget {
            max_connections: limit(num(0)?).unwrap_or(0),
            reserved: limit(num(1)?).unwrap_or(0),
            role: text(2).to_string(),
            superuser: text(3) == "true",
            role_limit: limit(num(4)?),
            database: text(5).to_string(),
            database_limit: limit(num(6)?),
            open_total: limit(num(7)?).unwrap_or(0),
            open_role: limit(num(8)?).unwrap_or(0),
            open_database: limit(num(9)?).unwrap_or(0),
        })
    }

    /// Slots left on the server for this role (the reserved ones only for a superuser).
    pub fn server_room(&self) -> u32 {
        let usable = if self.superuser {
            self.max_connections
        } else {
            self.max_connections.saturating_sub(self.reserved)
        };
        usable.saturating_sub(self.open_total)
    }

    /// Connections this role can still open on this database now: the least of the server's,
    /// the role's and the database's room.
    pub fn headroom(&self) -> u32 {
        let role = self
            .role_limit
            .map_or(u32::MAX, |l| l.saturating_sub(self.open_role));
        let db = self
            .database_limit
            .map_or(u32::MAX, |l| l.saturating_sub(self.open_database));
        self.server_room().min(role).min(db)
    }

    /// What limits [`Budget::headroom`]: `"server"`, `"role"` or `"database"`.
    pub fn binding_limit(&self) -> &'static str {
        let h = self.headroom();
        if self
            .role_limit
            .is_some_and(|l| l.saturating_sub(self.open_role) == h)
        {
            "role"
        } else if self
            .database_limit
            .is_some_and(|l| l.saturating_sub(self.open_database) == h)
        {
            "database"
        } else {
            "server"
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lim = |l: Option<u32>| l.map_or("unlimited".to_string(), |l| l.to_string());
        write!(
            f,
            "max_connections {} ({} reserved), {} open; role {} limit {} ({} open); database {} limit {} ({} open); headroom {} (bound by the {})",
            self.max_connections,
            self.reserved,
            self.open_total,
            self.role,
            lim(self.role_limit),
            self.open_role,
            self.database,
            lim(self.database_limit),
            self.open_database,
            self.headroom(),
            self.binding_limit()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget {
            max_connections: 100,
            reserved: 3,
            role: "app".into(),
            superuser: false,
            role_limit: Some(10),
            database: "db".into(),
            database_limit: None,
            open_total: 40,
            open_role: 6,
            open_database: 30,
        }
    }

    #[test]
    fn headroom_is_the_tightest_limit() {
        let b = budget();
        assert_eq!(b.server_room(), 57);
        assert_eq!((b.headroom(), b.binding_limit()), (4, "role"));
        let b = Budget {
            role_limit: None,
            database_limit: Some(32),
            ..budget()
        };
        assert_eq!((b.headroom(), b.binding_limit()), (2, "database"));
        let b = Budget {
            role_limit: None,
            open_total: 99,
            ..budget()
        };
        assert_eq!((b.headroom(), b.binding_limit()), (0, "server"));
        let b = Budget {
            superuser: true,
            role_limit: None,
            open_total: 98,
            ..budget()
        };
        assert_eq!(b.headroom(), 2, "a superuser may use the reserved slots");
    }
}
