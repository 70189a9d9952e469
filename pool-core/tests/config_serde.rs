//! `Config` from TOML and JSON (the `serde` feature): the same values as the environment
//! variables, errors that name the field, and a round trip.
#![cfg(feature = "serde")]

use std::time::Duration;

use pool_core::{CheckPolicy, Config, QueueMode};

#[test]
fn a_toml_file_sets_the_fields_it_names_and_leaves_the_rest_at_their_defaults() {
    let config: Config = toml::from_str(
        r#"
        min_size = 1
        max_size = 4
        max_idle = "5m"
        max_lifetime = "off"
        wait_timeout = 2.5
        check_timeout = "250ms"
        check = "always"
        queue_mode = "fifo"
        max_uses = 1000
        adaptive_ceiling = false
        "#,
    )
    .unwrap();
    assert_eq!((config.min_size, config.max_size), (1, 4));
    assert_eq!(config.max_idle, Some(Duration::from_secs(300)));
    assert_eq!(config.max_lifetime, None);
    assert_eq!(config.wait_timeout, Some(Duration::from_millis(2500)));
    assert_eq!(config.check_timeout, Duration::from_millis(250));
    assert_eq!(config.check, CheckPolicy::Always);
    assert_eq!(config.queue_mode, QueueMode::Fifo);
    assert_eq!(config.max_uses, Some(1000));
    assert!(!config.adaptive_ceiling);
    assert_eq!(config.connect_timeout, Config::default().connect_timeout);

    let json: Config =
        serde_json::from_str(r#"{"max_size": 8, "leak_threshold": 30, "max_waiting": null}"#)
            .unwrap();
    assert_eq!(json.max_size, 8);
    assert_eq!(json.leak_threshold, Some(Duration::from_secs(30)));
    assert_eq!(json.max_waiting, None);
}

#[test]
fn bad_settings_are_errors_that_name_the_field_and_the_value() {
    let cases = [
        ("max_idel = 300", "unknown pool setting \"max_idel\""),
        ("max_idle = \"five minutes\"", "max_idle = \"five minutes\""),
        ("check = \"sometimes\"", "check = \"sometimes\""),
        ("min_size = -1", "min_size = \"-1\""),
        ("min_size = 5\nmax_size = 2", "min_size"),
    ];
    for (text, expected) in cases {
        let err = toml::from_str::<Config>(text).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn a_configuration_round_trips_through_toml_and_json() {
    let config = {
        let mut c = Config::default();
        c.min_size = 2;
        c.max_size = 9;
        c.max_idle = None;
        c.check = CheckPolicy::IdleLongerThan(Duration::from_millis(250));
        c.max_uses = Some(50);
        c.leak_threshold = Some(Duration::from_secs(60));
        c
    };
    let text = toml::to_string(&config).unwrap();
    assert!(
        text.contains("max_lifetime = \"1h\""),
        "human durations: {text}"
    );
    assert!(text.contains("check = \"250ms\""), "{text}");
    assert_eq!(toml::from_str::<Config>(&text).unwrap(), config, "{text}");
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<Config>(&json).unwrap(),
        config,
        "{json}"
    );
    assert_eq!(
        toml::from_str::<Config>(&toml::to_string(&Config::default()).unwrap()).unwrap(),
        Config::default()
    );
}
