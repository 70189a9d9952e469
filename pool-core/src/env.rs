//! Environment overrides: `{prefix}_MIN`, `{prefix}_MAX`, `{prefix}_MAX_IDLE` and the rest.
//!
//! Every variable that is set must parse; a bad value is an error naming the variable and the
//! value, never silently ignored. Unset variables leave the field as it was.

use std::ffi::OsString;
use std::str::FromStr;
use std::time::Duration;

use crate::config::{CheckPolicy, Config, QueueMode};
use crate::error::ConfigError;

/// One environment variable the pool reads: `{prefix}_{suffix}` sets the [`Config`] field
/// `field`. The whole list is [`ENV_VARS`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct EnvVar {
    /// The name's suffix, after `{prefix}_`.
    pub suffix: &'static str,
    /// The [`Config`] field it sets.
    pub field: &'static str,
    /// What it takes, as error messages say it.
    pub expects: &'static str,
    /// Parses the value and sets the field; the error says what is wrong with the value.
    apply: fn(&mut Config, &str) -> Result<(), String>,
    /// The field's value, as this variable would be written.
    show: fn(&Config) -> Shown,
}

impl EnvVar {
    /// Parses `value` as this variable takes it and sets the field.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn set(&self, config: &mut Config, value: &str) -> Result<(), String> {
        (self.apply)(config, value)
    }

    /// The field's value in `config`, written as this variable takes it (`5m`, `off`,
    /// `always`, `lifo`, `on`, a number): what `{prefix}_{suffix}` would be set to for this
    /// configuration.
    pub fn value_in(&self, config: &Config) -> String {
        (self.show)(config).to_string()
    }

    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn shown(&self, config: &Config) -> Shown {
        (self.show)(config)
    }
}

impl std::fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvVar")
            .field("suffix", &self.suffix)
            .field("field", &self.field)
            .field("expects", &self.expects)
            .finish_non_exhaustive()
    }
}

/// The one table of configuration fields: each [`Config`] field with its environment
/// variable's suffix and what it takes. It drives [`ENV_VARS`] (the environment and serde
/// both ways, and the README's table, which `tests/docs_tables.rs` compares with it) and the
/// builder's setters: a new field is added to [`Config`] (with its default and validation)
/// and here, nowhere else.
macro_rules! config_fields {
    ($then:ident) => {
        $then! {
            min_size: usize = "MIN", "a whole number";
            max_size: usize = "MAX", "a whole number, at least 1";
            max_idle: Option<Duration> = "MAX_IDLE", "seconds (e.g. 300 or 0.5), or 'off'";
            max_lifetime: Option<Duration> = "MAX_LIFETIME", "seconds, or 'off'";
            max_uses: Option<u64> = "MAX_USES", "a whole number, at least 1, or 'off'";
            wait_timeout: Option<Duration> = "WAIT_TIMEOUT", "seconds, or 'off' to wait forever";
            connect_timeout: Duration = "CONNECT_TIMEOUT", "seconds";
            check: CheckPolicy = "CHECK", "'always', 'never', or seconds of idleness after which to check";
            check_timeout: Duration = "CHECK_TIMEOUT", "seconds";
            queue_mode: QueueMode = "QUEUE", "'lifo' or 'fifo'";
            max_waiting: Option<usize> = "MAX_WAITING", "a whole number, or 'off'";
            connect_concurrency: usize = "CONNECT_CONCURRENCY", "a whole number, at least 1";
            leak_threshold: Option<Duration> = "LEAK_THRESHOLD", "seconds, or 'off'";
            backoff_base: Duration = "BACKOFF_BASE", "seconds";
            backoff_cap: Duration = "BACKOFF_CAP", "seconds";
            slow_acquire_threshold: Option<Duration> = "SLOW_ACQUIRE_THRESHOLD", "seconds, or 'off'";
            housekeeping_interval: Duration = "HOUSEKEEPING_INTERVAL", "seconds";
            hook_timeout: Duration = "HOOK_TIMEOUT", "seconds";
            adaptive_ceiling: bool = "ADAPTIVE_CEILING", "'on' or 'off'";
        }
    };
}
pub(crate) use config_fields;

macro_rules! env_vars {
    ($($field:ident: $ty:ty = $suffix:literal, $expects:literal;)*) => {
        /// Every variable [`Config::from_env`] and [`Config::with_env_lookup`] read, with the
        /// field each sets and what it takes (the same table names the fields serde reads and
        /// writes).
        pub const ENV_VARS: &[EnvVar] = &[
            $(
                EnvVar {
                    suffix: $suffix,
                    field: stringify!($field),
                    expects: $expects,
                    apply: |c, v| <$ty as Setting>::parse(v).map(|x| c.$field = x),
                    show: |c| Setting::show(&c.$field),
                },
            )*
        ];
    };
}
config_fields!(env_vars);

/// A field's value as it is written: in the environment, in serde data, in the docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shown {
    /// A whole number.
    Int(u64),
    /// Text: a duration (`5m`), `off`, `always`, `lifo` ...
    Text(String),
    /// On or off.
    Switch(bool),
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shown::Int(n) => write!(f, "{n}"),
            Shown::Text(t) => f.write_str(t),
            Shown::Switch(b) => f.write_str(if *b { "on" } else { "off" }),
        }
    }
}

/// A type a configuration field has: how its value is read from text and written back.
pub(crate) trait Setting: Sized {
    fn parse(v: &str) -> Result<Self, String>;
    fn show(&self) -> Shown;
}

impl Setting for usize {
    fn parse(v: &str) -> Result<Self, String> {
        count(v)
    }
    fn show(&self) -> Shown {
        Shown::Int(*self as u64)
    }
}

impl Setting for u64 {
    fn parse(v: &str) -> Result<Self, String> {
        count(v).map(|n| n as u64)
    }
    fn show(&self) -> Shown {
        Shown::Int(*self)
    }
}

impl Setting for Duration {
    fn parse(v: &str) -> Result<Self, String> {
        seconds(v)
    }
    fn show(&self) -> Shown {
        Shown::Text(human(*self))
    }
}

impl Setting for bool {
    fn parse(v: &str) -> Result<Self, String> {
        switch(v)
    }
    fn show(&self) -> Shown {
        Shown::Switch(*self)
    }
}

impl Setting for CheckPolicy {
    fn parse(v: &str) -> Result<Self, String> {
        check_policy(v)
    }
    fn show(&self) -> Shown {
        match self {
            CheckPolicy::Always => Shown::Text("always".into()),
            CheckPolicy::Never => Shown::Text("never".into()),
            CheckPolicy::IdleLongerThan(d) => d.show(),
        }
    }
}

impl Setting for QueueMode {
    fn parse(v: &str) -> Result<Self, String> {
        queue_mode(v)
    }
    fn show(&self) -> Shown {
        Shown::Text(
            match self {
                QueueMode::Lifo => "lifo",
                QueueMode::Fifo => "fifo",
            }
            .into(),
        )
    }
}

/// `off` (or `none`) for `None`, else the inner value.
impl<T: Setting> Setting for Option<T> {
    fn parse(v: &str) -> Result<Self, String> {
        if v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        T::parse(v).map(Some)
    }
    fn show(&self) -> Shown {
        match self {
            Some(v) => v.show(),
            None => Shown::Text("off".into()),
        }
    }
}

impl Config {
    /// The defaults, overridden by the environment variables named `{prefix}_MIN`,
    /// `{prefix}_MAX`, `{prefix}_MAX_IDLE` (seconds), and the others in [`ENV_VARS`].
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable and its value when one is set but unparsable or
    /// leaves the configuration invalid.
    ///
    /// A variable under the prefix that no setting reads (a misspelling such as
    /// `{prefix}_MAXIDLE`) is not an error, but it is logged as a warning naming it and the
    /// nearest known name ([`unknown_env_vars`]).
    pub fn from_env(prefix: &str) -> Result<Config, ConfigError> {
        Config::default().with_env(prefix)
    }

    /// This configuration, overridden by the process environment under `prefix`, as
    /// [`Config::from_env`] reads it (unknown variables under the prefix are warned about).
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn with_env(self, prefix: &str) -> Result<Config, ConfigError> {
        let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
        for (name, nearest) in unknown_env_vars(prefix, names) {
            match nearest {
                Some(known) => tracing::warn!(
                    target: "pool_core",
                    var = %name,
                    did_you_mean = %known,
                    "{name} is set but no pool setting reads it (did you mean {known}?); it is ignored"
                ),
                None => tracing::warn!(
                    target: "pool_core",
                    var = %name,
                    "{name} is set but no pool setting reads it; it is ignored"
                ),
            }
        }
        self.with_env_lookup(prefix, |name| std::env::var_os(name))
    }

    /// This configuration, overridden by the variables `lookup` finds under `prefix` (pass
    /// `|name| std::env::var_os(name)` for the process environment, or any other source).
    ///
    /// # Errors
    /// As [`Config::from_env`].
    ///
    /// # Example
    /// ```
    /// use pool_core::Config;
    ///
    /// let mut base = Config::default(); // `Config` is non-exhaustive: set fields on a default
    /// base.min_size = 1;
    /// let config = base
    ///     .with_env_lookup("APP_POOL", |name| match name {
    ///         "APP_POOL_MAX" => Some("4".into()),
    ///         "APP_POOL_MAX_IDLE" => Some("300".into()),
    ///         _ => None,
    ///     })
    ///     .unwrap();
    /// assert_eq!((config.min_size, config.max_size), (1, 4));
    ///
    /// let err = Config::default()
    ///     .with_env_lookup("APP_POOL", |name| (name == "APP_POOL_MIN").then(|| "lots".into()))
    ///     .unwrap_err();
    /// assert_eq!(err.var(), Some("APP_POOL_MIN"));
    /// ```
    pub fn with_env_lookup<F>(mut self, prefix: &str, mut lookup: F) -> Result<Config, ConfigError>
    where
        F: FnMut(&str) -> Option<OsString>,
    {
        let mut set: Vec<(&'static str, String)> = Vec::new();
        for var in ENV_VARS {
            let name = format!("{prefix}_{}", var.suffix);
            let Some(raw) = lookup(&name) else { continue };
            let bad = |value: String, why: &str| ConfigError::Env {
                var: name.clone(),
                value,
                reason: format!("{why}; expected {}", var.expects),
            };
            let value = raw
                .into_string()
                .map_err(|raw| bad(raw.to_string_lossy().into_owned(), "is not valid UTF-8"))?;
            let v = value.trim();
            if v.is_empty() {
                return Err(bad(value, "is set but empty"));
            }
            (var.apply)(&mut self, v).map_err(|why| bad(value.clone(), &why))?;
            set.push((var.field, name));
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

/// The names among `names` that start with `{prefix}_` but that no entry of [`ENV_VARS`]
/// reads, each with the nearest known name if one is close (a misspelling), in the order
/// given.
///
/// ```
/// let unknown = pool_core::unknown_env_vars(
///     "APP_POOL",
///     ["APP_POOL_MAX", "APP_POOL_MAXIDLE", "APP_POOL_COLOUR", "OTHER_MAX"].map(String::from),
/// );
/// assert_eq!(
///     unknown,
///     [
///         ("APP_POOL_MAXIDLE".to_string(), Some("APP_POOL_MAX_IDLE".to_string())),
///         ("APP_POOL_COLOUR".to_string(), None),
///     ]
/// );
/// ```
pub fn unknown_env_vars(
    prefix: &str,
    names: impl IntoIterator<Item = String>,
) -> Vec<(String, Option<String>)> {
    let head = format!("{prefix}_");
    names
        .into_iter()
        .filter_map(|name| {
            let suffix = name.strip_prefix(&head)?;
            if ENV_VARS.iter().any(|v| v.suffix == suffix) {
                return None;
            }
            let nearest = ENV_VARS
                .iter()
                .map(|v| (distance(suffix, v.suffix), v.suffix))
                .min()
                .filter(|(d, known)| *d <= 2.max(known.len() / 4))
                .map(|(_, known)| format!("{head}{known}"));
            Some((name, nearest))
        })
        .collect()
}

/// Edit distance (Levenshtein) between two ASCII-ish names, case-insensitively.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_uppercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_uppercase()).collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

fn count(v: &str) -> Result<usize, String> {
    usize::from_str(v).map_err(|e| format!("is not a whole number ({e})"))
}

/// A duration: a number of seconds (`300`, `0.5`), or a number with a unit (`250ms`, `30s`,
/// `5m`, `1h`).
pub(crate) fn seconds(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let (number, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = v.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (v, 1.0)
    };
    let value = f64::from_str(number.trim())
        .map_err(|_| "is not a duration (seconds, or a number with ms, s, m or h)".to_string())?;
    let secs = value * scale;
    if !secs.is_finite() || secs < 0.0 {
        return Err("is not a finite, non-negative duration".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| "is too large".into())
}

/// A duration written the way [`seconds`] reads it back: `1h`, `5m`, `30s`, `250ms`, or
/// fractional seconds.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if d.subsec_nanos() % 1_000_000 != 0 {
        format!("{}s", d.as_secs_f64())
    } else if ms == 0 {
        "0s".into()
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
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

fn switch(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err("expected 'on' or 'off'".into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_each_variable_once_and_each_entry_sets_its_field() {
        let fields = [
            ("MIN", "3"),
            ("MAX", "7"),
            ("MAX_IDLE", "0.5"),
            ("MAX_LIFETIME", "off"),
            ("MAX_USES", "100"),
            ("WAIT_TIMEOUT", "2"),
            ("CONNECT_TIMEOUT", "4"),
            ("CHECK", "always"),
            ("CHECK_TIMEOUT", "6"),
            ("QUEUE", "fifo"),
            ("MAX_WAITING", "9"),
            ("CONNECT_CONCURRENCY", "2"),
            ("LEAK_THRESHOLD", "60"),
            ("ADAPTIVE_CEILING", "off"),
            ("HOOK_TIMEOUT", "9"),
            ("BACKOFF_BASE", "0.5"),
            ("BACKOFF_CAP", "9"),
            ("SLOW_ACQUIRE_THRESHOLD", "off"),
            ("HOUSEKEEPING_INTERVAL", "3"),
        ];
        assert_eq!(ENV_VARS.len(), fields.len());
        for (i, var) in ENV_VARS.iter().enumerate() {
            assert!(
                ENV_VARS[i + 1..].iter().all(|o| o.suffix != var.suffix),
                "{} twice",
                var.suffix
            );
            let (_, value) = fields.iter().find(|(s, _)| *s == var.suffix).unwrap();
            let mut c = Config::default();
            (var.apply)(&mut c, value).unwrap();
            assert_ne!(c, Config::default(), "{} changed nothing", var.suffix);
        }
    }

    #[test]
    fn parsers_say_what_is_wrong() {
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(seconds("-1").unwrap_err().contains("non-negative"));
        assert_eq!(seconds("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(seconds("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(seconds("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(seconds("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(seconds("5 minutes").is_err());
        for d in [1, 250, 1000, 30_000, 300_000, 3_600_000, 5_400_000] {
            let d = Duration::from_millis(d);
            assert_eq!(seconds(&human(d)), Ok(d), "{}", human(d));
        }
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert_eq!(human(Duration::from_millis(10)), "10ms");
        let odd = Duration::from_nanos(1_500_000_123);
        assert_eq!(
            seconds(&human(odd)).map(|d| d.as_micros()),
            Ok(odd.as_micros())
        );
        assert!(seconds("inf").unwrap_err().contains("finite"));
        assert!(seconds("1e300").unwrap_err().contains("too large"));
        assert!(count("x").unwrap_err().contains("whole number"));
        assert_eq!(<Option<usize> as Setting>::parse("OFF"), Ok(None));
        assert_eq!(check_policy("never"), Ok(CheckPolicy::Never));
        assert_eq!(
            check_policy("2"),
            Ok(CheckPolicy::IdleLongerThan(Duration::from_secs(2)))
        );
        assert!(queue_mode("stack").is_err());
    }
}
