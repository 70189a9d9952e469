//! The checkpointer preset: the elastic pool that fixed the "too many clients" incident.

use std::time::Duration;

use pool_core::{CheckPolicy, Config, ConfigError, Manager, Pool, PoolBuilder};

/// The environment prefix the checkpointer preset reads by default:
/// `DEERFLOW_CHECKPOINTER_POOL_MIN`, `_MAX`, `_MAX_IDLE` and the other `pool_core` variables.
pub const CHECKPOINTER_ENV_PREFIX: &str = "DEERFLOW_CHECKPOINTER_POOL";

/// The preset's configuration before environment overrides: min 1, max 4, idle connections
/// closed after 300 s, a health check on every checkout, a 30 s wait timeout, and connections
/// retired after an hour. (Keepalives 60/10/6 are the [`PgManager`](crate::PgManager)'s own
/// defaults.)
pub fn checkpointer_config() -> Config {
    Config {
        min_size: 1,
        max_size: 4,
        max_idle: Some(Duration::from_secs(300)),
        max_lifetime: Some(Duration::from_secs(3600)),
        wait_timeout: Some(Duration::from_secs(30)),
        check: CheckPolicy::Always,
        ..Config::default()
    }
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
    Ok(Pool::builder(manager)
        .config(checkpointer_config().with_env_lookup(prefix, |name| std::env::var_os(name))?))
}
