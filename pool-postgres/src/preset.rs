//! The checkpointer preset: the elastic pool that fixed the "too many clients" incident.

use std::time::Duration;

use pool_core::{CheckPolicy, Config, ConfigError, Manager, Pool, PoolBuilder};

/// The environment prefix the checkpointer preset reads by default:
/// `DEERFLOW_CHECKPOINTER_POOL_MIN`, `_MAX`, `_MAX_IDLE` and the other `pool_core` variables.
pub const CHECKPOINTER_ENV_PREFIX: &str = "DEERFLOW_CHECKPOINTER_POOL";

/// The recommended starting point for any service: an elastic pool with a small floor that
/// grows under demand and shrinks back when idle. Min 1, max 4, idle connections closed after
/// 300 s, a health check on every checkout, a 30 s wait timeout, and connections retired after
/// an hour. (Keepalives 60/10/6 are the [`PgManager`](crate::PgManager)'s own defaults.)
/// Raise `max_size` for busier services; see [`elastic`] for environment overrides.
pub fn elastic_config() -> Config {
    let mut config = Config::default();
    config.min_size = 1;
    config.max_size = 4;
    config.max_idle = Some(Duration::from_secs(300));
    config.max_lifetime = Some(Duration::from_secs(3600));
    config.wait_timeout = Some(Duration::from_secs(30));
    config.check = CheckPolicy::Always;
    config
}

/// The checkpointer preset's configuration: the same as [`elastic_config`].
pub fn checkpointer_config() -> Config {
    elastic_config()
}

/// A pool builder with the [`elastic_config`] defaults, overridden by the environment
/// variables `{prefix}_MIN`, `{prefix}_MAX`, `{prefix}_MAX_IDLE` and the others in
/// [`pool_core::ENV_VARS`]. A variable under the prefix that no setting reads is logged as a
/// warning naming the nearest known one.
///
/// ```no_run
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = pool_postgres::PgManager::from_url("postgres://app@db/app")?;
/// // ORDERS_DB_POOL_MAX=16 raises the ceiling.
/// let pool = pool_postgres::elastic(manager, "ORDERS_DB_POOL")?.build()?;
/// # drop(pool);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`ConfigError`] naming the variable and its value when one is set but invalid.
pub fn elastic<M: Manager>(manager: M, prefix: &str) -> Result<PoolBuilder<M>, ConfigError> {
    Ok(Pool::builder(manager).config(elastic_config().with_env(prefix)?))
}

/// A pool builder with the checkpointer preset, overridden by the `DEERFLOW_CHECKPOINTER_POOL_*`
/// environment variables.
///
/// # Errors
/// [`ConfigError`] naming the variable and its value when one is set but invalid.
pub fn checkpointer<M: Manager>(manager: M) -> Result<PoolBuilder<M>, ConfigError> {
    checkpointer_with_prefix(manager, CHECKPOINTER_ENV_PREFIX)
}

/// [`checkpointer`] with another deployment's environment prefix.
///
/// # Errors
/// As [`checkpointer`].
pub fn checkpointer_with_prefix<M: Manager>(
    manager: M,
    prefix: &str,
) -> Result<PoolBuilder<M>, ConfigError> {
    elastic(manager, prefix)
}
