//! Arbitrary strings into the environment and URL parsing: no panic, errors name the
//! variable they came from, and passwords never show in an error.
#![no_main]

use std::ffi::OsString;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use pool_core::{Config, ConfigError, ENV_VARS};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    // A value for some of the variables (raw bytes, so not always UTF-8).
    let mut set: Vec<(String, Vec<u8>)> = Vec::new();
    for var in ENV_VARS {
        if u.arbitrary::<bool>().unwrap_or(false) {
            let len = u.int_in_range(0..=24usize).unwrap_or(0);
            let bytes = u.bytes(len).unwrap_or(&[]).to_vec();
            set.push((format!("FUZZ_POOL_{}", var.suffix), bytes));
        }
    }
    let lookup = |name: &str| -> Option<OsString> {
        use std::os::unix::ffi::OsStringExt;
        set.iter().find(|(k, _)| k == name).map(|(_, v)| OsString::from_vec(v.clone()))
    };
    match Config::default().with_env_lookup("FUZZ_POOL", lookup) {
        Ok(config) => assert_eq!(config.validate(), Ok(()), "an accepted config validates"),
        Err(ConfigError::NoRuntime) => panic!("parsing never needs a runtime"),
        Err(e) => {
            // An error caused by a variable names one that was set.
            if let Some(var) = e.var() {
                assert!(set.iter().any(|(k, _)| k == var), "{e} names {var}, which was not set");
            }
            assert!(!e.to_string().is_empty());
        }
    }

    // The rest of the input as a connection string, with a known password spliced in.
    let rest = String::from_utf8_lossy(u.take_rest()).into_owned();
    for conn in [rest.clone(), format!("postgres://u:Fuzz3dSecret@{rest}"), format!("{rest} password=Fuzz3dSecret")] {
        let redacted = pool_postgres::redact(&conn);
        if let Err(e) = pool_postgres::PgManager::from_url(&conn) {
            let text = format!("{e} {e:?}");
            if !redacted.contains("Fuzz3dSecret") {
                assert!(!text.contains("Fuzz3dSecret"), "password in an error: {text}");
            }
        }
    }
});
