//! The checkpointer preset: its defaults and its environment overrides.
mod common;

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Duration;

use pool_core::{CheckPolicy, ConfigError};
use pool_postgres::{checkpointer_config, Keepalives, PgManager, CHECKPOINTER_ENV_PREFIX};

fn env(pairs: &[(&str, &str)]) -> impl FnMut(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.into()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn the_preset_defaults() {
    let c = checkpointer_config();
    assert_eq!((c.min_size, c.max_size), (1, 4));
    assert_eq!(c.max_idle, Some(Duration::from_secs(300)));
    assert_eq!(c.check, CheckPolicy::Always);
    assert_eq!(c.wait_timeout, Some(Duration::from_secs(30)));
    assert_eq!(c.max_lifetime, Some(Duration::from_secs(3600)));
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(CHECKPOINTER_ENV_PREFIX, "DEERFLOW_CHECKPOINTER_POOL");
    let manager = PgManager::from_url("postgres://app@db.invalid/x").unwrap();
    assert_eq!(
        manager.keepalive_settings(),
        Some(Keepalives::new(
            Duration::from_secs(60),
            Duration::from_secs(10),
            6
        ))
    );
}

#[test]
fn env_overrides_apply_on_top_of_the_preset() {
    let c = checkpointer_config()
        .with_env_lookup(
            CHECKPOINTER_ENV_PREFIX,
            env(&[
                ("DEERFLOW_CHECKPOINTER_POOL_MIN", "2"),
                ("DEERFLOW_CHECKPOINTER_POOL_MAX", "8"),
                ("DEERFLOW_CHECKPOINTER_POOL_MAX_IDLE", "120"),
                ("DEERFLOW_CHECKPOINTER_POOL_WAIT_TIMEOUT", "5"),
            ]),
        )
        .unwrap();
    assert_eq!((c.min_size, c.max_size), (2, 8));
    assert_eq!(c.max_idle, Some(Duration::from_secs(120)));
    assert_eq!(c.wait_timeout, Some(Duration::from_secs(5)));
    assert_eq!(
        c.check,
        CheckPolicy::Always,
        "untouched fields keep the preset"
    );
}

#[test]
fn bad_env_values_name_the_variable_and_the_value() {
    let cases: &[(&str, &str, &str)] = &[
        ("DEERFLOW_CHECKPOINTER_POOL_MIN", "one", "\"one\""),
        ("DEERFLOW_CHECKPOINTER_POOL_MAX", "0", "max_size"),
        ("DEERFLOW_CHECKPOINTER_POOL_MAX", "-4", "\"-4\""),
        ("DEERFLOW_CHECKPOINTER_POOL_MAX_IDLE", "5 min", "\"5 min\""),
        (
            "DEERFLOW_CHECKPOINTER_POOL_MIN",
            "9",
            "must not exceed max_size (4)",
        ),
    ];
    for &(var, value, shown) in cases {
        let err = checkpointer_config()
            .with_env_lookup(CHECKPOINTER_ENV_PREFIX, env(&[(var, value)]))
            .unwrap_err();
        assert_eq!(err.var(), Some(var), "{err}");
        let text = err.to_string();
        assert!(text.contains(var) && text.contains(shown), "{text}");
    }
    // A ceiling lowered below the preset's floor is the ceiling's fault.
    let err = checkpointer_config()
        .with_env_lookup(
            CHECKPOINTER_ENV_PREFIX,
            env(&[("DEERFLOW_CHECKPOINTER_POOL_MAX", "0")]),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                field: "max_size",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn other_deployments_choose_their_prefix() {
    let c = checkpointer_config()
        .with_env_lookup(
            "BILLING_DB_POOL",
            env(&[
                ("BILLING_DB_POOL_MAX", "2"),
                ("DEERFLOW_CHECKPOINTER_POOL_MAX", "9"),
            ]),
        )
        .unwrap();
    assert_eq!(c.max_size, 2);
}

/// The neutral preset: the same elastic defaults under a prefix of the service's choosing.
#[test]
fn the_elastic_preset_reads_its_own_prefix() {
    assert_eq!(
        format!("{:?}", pool_postgres::elastic_config()),
        format!("{:?}", checkpointer_config())
    );
    std::env::set_var("ORDERS_DB_POOL_MAX", "9");
    let manager = PgManager::from_url("postgres://app@db.invalid/x").unwrap();
    let builder = pool_postgres::elastic(manager, "ORDERS_DB_POOL").unwrap();
    let c = builder.current_config();
    assert_eq!((c.min_size, c.max_size), (1, 9));
    assert_eq!(c.max_idle, Some(Duration::from_secs(300)));
    assert_eq!(c.check, CheckPolicy::Always);
}
