//! Environment overrides: `{prefix}_MIN`, `{prefix}_MAX`, `{prefix}_MAX_IDLE` and the rest.
//!
//! Every variable that is set must parse; a bad value is an error naming the variable and the
//! value, never silently ignored. Unset variables leave the field as it was.

use std::ffi::OsString;
use std::str::FromStr;
use std::time::Duration;

use crate::config::{CheckPolicy, Config, QueueMode};
use crate::error::ConfigError;

/// The variables read, as `(suffix, field, what it takes)`: `{prefix}_{suffix}` sets `field`.
pub const ENV_VARS: &[(&str, &str, &str)] = &[
    ("MIN", "min_size", "a whole number"),
    ("MAX", "max_size", "a whole number, at least 1"),
    (
        "MAX_IDLE",
        "max_idle",
        "seconds (e.g. 300 or 0.5), or 'off'",
    ),
    ("MAX_LIFETIME", "max_lifetime", "seconds, or 'off'"),
    (
        "WAIT_TIMEOUT",
        "wait_timeout",
        "seconds, or 'off' to wait forever",
    ),
    ("CONNECT_TIMEOUT", "connect_timeout", "seconds"),
    (
        "CHECK",
        "check",
        "'always', 'never', or seconds of idleness after which to check",
    ),
    ("CHECK_TIMEOUT", "check_timeout", "seconds"),
    ("QUEUE", "queue_mode", "'lifo' or 'fifo'"),
    ("MAX_WAITING", "max_waiting", "a whole number, or 'off'"),
    (
        "CONNECT_CONCURRENCY",
        "connect_concurrency",
        "a whole number, at least 1",
    ),
    ("LEAK_THRESHOLD", "leak_threshold", "seconds, or 'off'"),
];

impl Config {
    /// The defaults, overridden by the environment variables named `{prefix}_MIN`,
    /// `{prefix}_MAX`, `{prefix}_MAX_IDLE` (seconds), and the others in [`ENV_VARS`].
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable and its value when one is set but unparsable or
    /// leaves the configuration invalid.
    ///
    /// # Example
    /// ```
    /// let config = pool_core::Config::from_env_with("APP_POOL", |name| match name {
    ///     "APP_POOL_MAX" => Some("4".into()),
    ///     "APP_POOL_MAX_IDLE" => Some("300".into()),
    ///     _ => None,
    /// })
    /// .unwrap();
    /// assert_eq!(config.max_size, 4);
    ///
    /// let err = pool_core::Config::from_env_with("APP_POOL", |name| {
    ///     (name == "APP_POOL_MIN").then(|| "lots".into())
    /// })
    /// .unwrap_err();
    /// assert_eq!(err.var(), Some("APP_POOL_MIN"));
    /// ```
    pub fn from_env(prefix: &str) -> Result<Config, ConfigError> {
        Config::default().with_env(prefix)
    }

    /// [`Config::from_env`] with a custom variable lookup (for tests and other sources).
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_env_with<F>(prefix: &str, lookup: F) -> Result<Config, ConfigError>
    where
        F: FnMut(&str) -> Option<OsString>,
    {
        Config::default().with_env_lookup(prefix, lookup)
    }

    /// This configuration, overridden by the environment variables under `prefix`.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn with_env(self, prefix: &str) -> Result<Config, ConfigError> {
        self.with_env_lookup(prefix, |name| std::env::var_os(name))
    }

    /// This configuration, overridden by the variables `lookup` finds under `prefix`.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn with_env_lookup<F>(mut self, prefix: &str, mut lookup: F) -> Result<Config, ConfigError>
    where
        F: FnMut(&str) -> Option<OsString>,
    {
        let mut set: Vec<(&'static str, String)> = Vec::new();
        for &(suffix, field, expected) in ENV_VARS {
            let var = format!("{prefix}_{suffix}");
            let Some(raw) = lookup(&var) else { continue };
            let value = match raw.into_string() {
                Ok(v) => v,
                Err(raw) => {
                    return Err(ConfigError::Env {
                        var,
                        value: raw.to_string_lossy().into_owned(),
                        reason: format!("is not valid UTF-8; expected {expected}"),
                    })
                }
            };
            let bad = |why: &str| ConfigError::Env {
                var: var.clone(),
                value: value.clone(),
                reason: format!("{why}; expected {expected}"),
            };
            let v = value.trim();
            if v.is_empty() {
                return Err(bad("is set but empty"));
            }
            match field {
                "min_size" => self.min_size = count(v).map_err(|w| bad(&w))?,
                "max_size" => self.max_size = count(v).map_err(|w| bad(&w))?,
                "max_idle" => self.max_idle = optional(v, seconds).map_err(|w| bad(&w))?,
                "max_lifetime" => self.max_lifetime = optional(v, seconds).map_err(|w| bad(&w))?,
                "wait_timeout" => self.wait_timeout = optional(v, seconds).map_err(|w| bad(&w))?,
                "connect_timeout" => self.connect_timeout = seconds(v).map_err(|w| bad(&w))?,
                "check" => self.check = check_policy(v).map_err(|w| bad(&w))?,
                "check_timeout" => self.check_timeout = seconds(v).map_err(|w| bad(&w))?,
                "queue_mode" => self.queue_mode = queue_mode(v).map_err(|w| bad(&w))?,
                "max_waiting" => self.max_waiting = optional(v, count).map_err(|w| bad(&w))?,
                "connect_concurrency" => {
                    self.connect_concurrency = count(v).map_err(|w| bad(&w))?
                }
                "leak_threshold" => {
                    self.leak_threshold = optional(v, seconds).map_err(|w| bad(&w))?
                }
                other => unreachable!("ENV_VARS names an unknown field {other}"),
            }
            set.push((field, var));
        }
        match self.validate() {
            Ok(()) => Ok(self),
            Err(ConfigError::Invalid {
                field,
                value,
                reason,
                ..
            }) => {
                let var_for = |f: &str| set.iter().find(|(sf, _)| *sf == f).map(|(_, v)| v.clone());
                // min > max is the fault of whichever side the environment set.
                let var = var_for(field).or_else(|| {
                    if field == "min_size" {
                        var_for("max_size")
                    } else {
                        None
                    }
                });
                Err(ConfigError::Invalid {
                    field,
                    value,
                    reason,
                    var,
                })
            }
            Err(other) => Err(other),
        }
    }
}

fn count(v: &str) -> Result<usize, String> {
    usize::from_str(v).map_err(|e| format!("is not a whole number ({e})"))
}

fn seconds(v: &str) -> Result<Duration, String> {
    let secs = f64::from_str(v).map_err(|_| "is not a number of seconds".to_string())?;
    if !secs.is_finite() || secs < 0.0 {
        return Err("is not a finite, non-negative number of seconds".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| "is too large".into())
}

fn optional<T>(v: &str, parse: fn(&str) -> Result<T, String>) -> Result<Option<T>, String> {
    if v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    parse(v).map(Some)
}

fn check_policy(v: &str) -> Result<CheckPolicy, String> {
    if v.eq_ignore_ascii_case("always") {
        Ok(CheckPolicy::Always)
    } else if v.eq_ignore_ascii_case("never") {
        Ok(CheckPolicy::Never)
    } else {
        seconds(v)
            .map(CheckPolicy::IdleLongerThan)
            .map_err(|_| "is not 'always', 'never' or a number of seconds".into())
    }
}

fn queue_mode(v: &str) -> Result<QueueMode, String> {
    if v.eq_ignore_ascii_case("lifo") {
        Ok(QueueMode::Lifo)
    } else if v.eq_ignore_ascii_case("fifo") {
        Ok(QueueMode::Fifo)
    } else {
        Err("is not a queue mode".into())
    }
}
