//! Every invalid config field and every bad environment value gives an error naming it.
mod common;

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Duration;

use common::*;
use pool_core::{CheckPolicy, Config, ConfigError, QueueMode};

fn invalid_field(config: Config) -> (&'static str, String) {
    match config.validate().unwrap_err() {
        ConfigError::Invalid {
            field, value, var, ..
        } => {
            assert_eq!(var, None);
            (field, value)
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn every_invalid_field_is_named_with_its_value() {
    let d = Config::default;
    let zero = Duration::ZERO;
    let cases: Vec<(Config, &str, &str)> = vec![
        (
            {
                let mut c = d();
                c.max_size = 0;
                c
            },
            "max_size",
            "0",
        ),
        (
            {
                let mut c = d();
                c.min_size = 11;
                c.max_size = 10;
                c
            },
            "min_size",
            "11",
        ),
        (
            {
                let mut c = d();
                c.max_idle = Some(zero);
                c
            },
            "max_idle",
            "0s",
        ),
        (
            {
                let mut c = d();
                c.max_lifetime = Some(zero);
                c
            },
            "max_lifetime",
            "0s",
        ),
        (
            {
                let mut c = d();
                c.connect_timeout = zero;
                c
            },
            "connect_timeout",
            "0s",
        ),
        (
            {
                let mut c = d();
                c.check_timeout = zero;
                c
            },
            "check_timeout",
            "0s",
        ),
        (
            {
                let mut c = d();
                c.check = CheckPolicy::IdleLongerThan(zero);
                c
            },
            "check",
            "IdleLongerThan(0s)",
        ),
        (
            {
                let mut c = d();
                c.connect_concurrency = 0;
                c
            },
            "connect_concurrency",
            "0",
        ),
        (
            {
                let mut c = d();
                c.backoff_base = zero;
                c
            },
            "backoff_base",
            "0s",
        ),
        (
            {
                let mut c = d();
                c.backoff_base = Duration::from_secs(3);
                c.backoff_cap = Duration::from_secs(2);
                c
            },
            "backoff_cap",
            "2s",
        ),
        (
            {
                let mut c = d();
                c.housekeeping_interval = zero;
                c
            },
            "housekeeping_interval",
            "0s",
        ),
    ];
    for (config, field, value) in cases {
        let err = config.validate().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(field) && text.contains(value),
            "{field}: {text}"
        );
        assert_eq!(invalid_field(config), (field, value.to_string()));
    }
    assert_eq!(Config::default().validate(), Ok(()));
    // Zero where zero means something is accepted.
    let ok = {
        let mut c = d();
        c.wait_timeout = Some(Duration::ZERO);
        c.max_waiting = Some(0);
        c.min_size = 0;
        c
    };
    assert_eq!(ok.validate(), Ok(()));
}

#[tokio::test]
async fn build_rejects_an_invalid_config_naming_the_field() {
    let (builder, backend) = fake(5, 2);
    let err = builder.build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pool config: min_size = 5: must not exceed max_size (2)"
    );
    assert_eq!(backend.connect_attempts(), 0);
}

fn env(pairs: &[(&str, &str)]) -> impl FnMut(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn env_overrides_every_knob() {
    let config = Config::default()
        .with_env_lookup(
            "APP_POOL",
            env(&[
                ("APP_POOL_MIN", "1"),
                ("APP_POOL_MAX", "4"),
                ("APP_POOL_MAX_IDLE", "300"),
                ("APP_POOL_MAX_LIFETIME", "off"),
                ("APP_POOL_WAIT_TIMEOUT", "2.5"),
                ("APP_POOL_CONNECT_TIMEOUT", "7"),
                ("APP_POOL_CHECK", "always"),
                ("APP_POOL_CHECK_TIMEOUT", "0.25"),
                ("APP_POOL_QUEUE", "FIFO"),
                ("APP_POOL_MAX_WAITING", "100"),
                ("APP_POOL_CONNECT_CONCURRENCY", "2"),
                ("APP_POOL_LEAK_THRESHOLD", "30"),
                ("APP_POOL_ADAPTIVE_CEILING", "off"),
            ]),
        )
        .unwrap();
    assert_eq!(config.min_size, 1);
    assert_eq!(config.max_size, 4);
    assert_eq!(config.max_idle, Some(Duration::from_secs(300)));
    assert_eq!(config.max_lifetime, None);
    assert_eq!(config.wait_timeout, Some(Duration::from_millis(2500)));
    assert_eq!(config.connect_timeout, Duration::from_secs(7));
    assert_eq!(config.check, CheckPolicy::Always);
    assert_eq!(config.check_timeout, Duration::from_millis(250));
    assert_eq!(config.queue_mode, QueueMode::Fifo);
    assert_eq!(config.max_waiting, Some(100));
    assert_eq!(config.connect_concurrency, 2);
    assert_eq!(config.leak_threshold, Some(Duration::from_secs(30)));
    assert!(!config.adaptive_ceiling);
    assert!(Config::default().adaptive_ceiling, "on by default");

    let config = Config::default()
        .with_env_lookup("APP_POOL", env(&[("APP_POOL_CHECK", "0.5")]))
        .unwrap();
    assert_eq!(
        config.check,
        CheckPolicy::IdleLongerThan(Duration::from_millis(500))
    );
    // Unset variables leave the base alone.
    let base = {
        let mut c = Config::default();
        c.min_size = 3;
        c
    };
    assert_eq!(
        base.clone().with_env_lookup("APP_POOL", env(&[])).unwrap(),
        base
    );
}

#[test]
fn every_bad_env_value_names_the_variable_and_the_value() {
    let cases: &[(&str, &str)] = &[
        ("APP_POOL_MIN", "lots"),
        ("APP_POOL_MIN", "-1"),
        ("APP_POOL_MAX", "4.5"),
        ("APP_POOL_MAX", ""),
        ("APP_POOL_MAX_IDLE", "five minutes"),
        ("APP_POOL_MAX_IDLE", "-3"),
        ("APP_POOL_MAX_IDLE", "NaN"),
        ("APP_POOL_MAX_IDLE", "inf"),
        ("APP_POOL_MAX_IDLE", "1e300"),
        ("APP_POOL_MAX_LIFETIME", "never"),
        ("APP_POOL_WAIT_TIMEOUT", "30 sec"),
        ("APP_POOL_CONNECT_TIMEOUT", "off"),
        ("APP_POOL_CHECK", "sometimes"),
        ("APP_POOL_CHECK_TIMEOUT", "x"),
        ("APP_POOL_QUEUE", "random"),
        ("APP_POOL_MAX_WAITING", "-"),
        ("APP_POOL_CONNECT_CONCURRENCY", "99999999999999999999999"),
        ("APP_POOL_LEAK_THRESHOLD", "soon"),
        ("APP_POOL_ADAPTIVE_CEILING", "maybe"),
    ];
    for &(var, value) in cases {
        let err = Config::default()
            .with_env_lookup("APP_POOL", env(&[(var, value)]))
            .unwrap_err();
        assert_eq!(err.var(), Some(var), "{var}={value}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(var), "{text}");
        assert!(text.contains(&format!("{value:?}")), "{text}");
    }
}

#[test]
fn env_values_that_parse_but_are_invalid_name_the_variable() {
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static str,
    );
    let cases: &[Case] = &[
        (&[("APP_POOL_MAX", "0")], "APP_POOL_MAX", "max_size"),
        (
            &[("APP_POOL_MAX_IDLE", "0")],
            "APP_POOL_MAX_IDLE",
            "max_idle",
        ),
        (
            &[("APP_POOL_CONNECT_TIMEOUT", "0")],
            "APP_POOL_CONNECT_TIMEOUT",
            "connect_timeout",
        ),
        (
            &[("APP_POOL_CONNECT_CONCURRENCY", "0")],
            "APP_POOL_CONNECT_CONCURRENCY",
            "connect_concurrency",
        ),
        (&[("APP_POOL_MIN", "20")], "APP_POOL_MIN", "min_size"),
        // The default floor is 0; a ceiling below a floor from elsewhere is the ceiling's fault.
        (
            &[("APP_POOL_MIN", "3"), ("APP_POOL_MAX", "2")],
            "APP_POOL_MIN",
            "min_size",
        ),
    ];
    for &(pairs, var, field) in cases {
        let err = Config::default()
            .with_env_lookup("APP_POOL", env(pairs))
            .unwrap_err();
        let ConfigError::Invalid {
            field: f, var: v, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((*f, v.as_deref()), (field, Some(var)), "{err}");
        assert!(err.to_string().contains(var), "{err}");
    }
    let base = {
        let mut c = Config::default();
        c.min_size = 3;
        c
    };
    let err = base
        .with_env_lookup("APP_POOL", env(&[("APP_POOL_MAX", "2")]))
        .unwrap_err();
    assert_eq!(err.var(), Some("APP_POOL_MAX"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_non_utf8_env_value_is_named_not_ignored() {
    use std::os::unix::ffi::OsStringExt;
    let err = Config::default()
        .with_env_lookup("APP_POOL", |name| {
            (name == "APP_POOL_MAX").then(|| OsString::from_vec(vec![0x34, 0xff]))
        })
        .unwrap_err();
    assert_eq!(err.var(), Some("APP_POOL_MAX"));
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn from_env_reads_the_process_environment() {
    // A prefix no other test uses; set before reading, in this test only.
    std::env::set_var("CONFIG_ENV_TEST_POOL_MAX", "7");
    let config = Config::from_env("CONFIG_ENV_TEST_POOL").unwrap();
    assert_eq!(config.max_size, 7);
    std::env::remove_var("CONFIG_ENV_TEST_POOL_MAX");
}

/// Regression: a misspelt variable under the prefix used to change nothing and say nothing.
/// It is now warned about, naming the nearest known variable.
#[test]
fn a_misspelt_variable_under_the_prefix_is_warned_about() {
    let (capture, _guard) = pool_testkit::Capture::install();
    // A prefix of this test's own: the process environment is shared by the binary's tests.
    std::env::set_var("PAPERCUT_POOL_MAXIDLE", "30");
    std::env::set_var("PAPERCUT_POOL_COLOUR", "blue");
    std::env::set_var("PAPERCUT_POOL_MAX", "3");
    let config = pool_core::Config::from_env("PAPERCUT_POOL").unwrap();
    assert_eq!(config.max_size, 3, "the known one applies");
    assert_eq!(
        config.max_idle,
        pool_core::Config::default().max_idle,
        "the unknown one does not"
    );
    let text = capture.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(
        text.contains("PAPERCUT_POOL_MAXIDLE is set but no pool setting reads it (did you mean PAPERCUT_POOL_MAX_IDLE?)"),
        "{text}"
    );
    assert!(
        text.contains("PAPERCUT_POOL_COLOUR is set but no pool setting reads it; it is ignored"),
        "{text}"
    );
    assert!(!text.contains("PAPERCUT_POOL_MAX is set"), "{text}");
}

#[test]
fn unknown_names_are_matched_to_the_nearest_known_one() {
    let names = [
        "P_MIN",
        "P_MAXIDLE",
        "P_MAX_LIFE_TIME",
        "P_CHEK",
        "P_WHATEVER",
        "Q_MAXX",
    ];
    let found = pool_core::unknown_env_vars("P", names.map(String::from));
    let found: Vec<(&str, Option<&str>)> = found
        .iter()
        .map(|(n, k)| (n.as_str(), k.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            ("P_MAXIDLE", Some("P_MAX_IDLE")),
            ("P_MAX_LIFE_TIME", Some("P_MAX_LIFETIME")),
            ("P_CHEK", Some("P_CHECK")),
            ("P_WHATEVER", None),
        ]
    );
}

/// The effective configuration is readable in full from the pool, after a resize too.
#[tokio::test(start_paused = true)]
async fn the_effective_configuration_is_readable_from_the_pool() {
    let (manager, _backend) = pool_testkit::FakeManager::new();
    let pool = pool_core::Pool::builder(manager)
        .min_size(1)
        .max_size(4)
        .max_idle(Some(std::time::Duration::from_secs(42)))
        .build()
        .unwrap();
    pool.resize(2, 6).unwrap();
    let c = pool.effective_config();
    assert_eq!((c.min_size, c.max_size), (2, 6));
    assert_eq!(c.max_idle, Some(std::time::Duration::from_secs(42)));
    assert_eq!(pool.config().max_size, 4, "config() stays as built");
}
