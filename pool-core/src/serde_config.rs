//! `Config` as serde data (the `serde` feature): the field names, with the values the
//! environment variables take (durations as `"300s"`, `"5m"`, `"250ms"` or a number of
//! seconds, `"off"` or null for none, `"always"`, `"never"`, `"lifo"`, `"fifo"`, booleans),
//! parsed by the same code as the environment table, so a TOML file, the `config` crate or
//! JSON say what they mean the same way. Written back with human durations.

use std::fmt;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{CheckPolicy, Config, QueueMode};
use crate::env::{human, ENV_VARS};

/// One field's value as it came: rendered as the environment variable would be written.
struct Raw(String);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a string, a boolean or null")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw(if v { "on" } else { "off" }.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
                Ok(Raw("off".into()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
                Ok(Raw("off".into()))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Config {
    /// Fields left out keep their defaults; an unknown field, a value that does not parse, or
    /// a configuration that fails [`Config::validate`] is an error naming the field.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Config, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Config;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a pool configuration (a map of Config fields)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Config, A::Error> {
                let mut config = Config::default();
                while let Some(key) = map.next_key::<String>()? {
                    let Some(var) = ENV_VARS.iter().find(|v| v.field == key) else {
                        let fields: Vec<&str> = ENV_VARS.iter().map(|v| v.field).collect();
                        return Err(de::Error::custom(format!(
                            "unknown pool setting {key:?} (known: {})",
                            fields.join(", ")
                        )));
                    };
                    let Raw(value) = map.next_value()?;
                    var.set(&mut config, &value).map_err(|why| {
                        de::Error::custom(format!(
                            "pool setting {key} = {value:?}: {why} (expected {})",
                            var.expects
                        ))
                    })?;
                }
                config.validate().map_err(de::Error::custom)?;
                Ok(config)
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for Config {
    /// Every field, in the form [`Deserialize`] reads back: human durations (`"5m"`), `"off"`
    /// for none.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let dur = |d: Duration| Out::Str(human(d));
        let opt = |d: Option<Duration>| d.map_or(Out::Str("off".into()), dur);
        for var in ENV_VARS {
            let value = match var.field {
                "min_size" => Out::Int(self.min_size as u64),
                "max_size" => Out::Int(self.max_size as u64),
                "max_idle" => opt(self.max_idle),
                "max_lifetime" => opt(self.max_lifetime),
                "max_uses" => self.max_uses.map_or(Out::Str("off".into()), Out::Int),
                "wait_timeout" => opt(self.wait_timeout),
                "connect_timeout" => dur(self.connect_timeout),
                "check" => match self.check {
                    CheckPolicy::Always => Out::Str("always".into()),
                    CheckPolicy::Never => Out::Str("never".into()),
                    CheckPolicy::IdleLongerThan(d) => dur(d),
                },
                "check_timeout" => dur(self.check_timeout),
                "queue_mode" => Out::Str(
                    match self.queue_mode {
                        QueueMode::Lifo => "lifo",
                        QueueMode::Fifo => "fifo",
                    }
                    .into(),
                ),
                "max_waiting" => self
                    .max_waiting
                    .map_or(Out::Str("off".into()), |n| Out::Int(n as u64)),
                "connect_concurrency" => Out::Int(self.connect_concurrency as u64),
                "backoff_base" => dur(self.backoff_base),
                "backoff_cap" => dur(self.backoff_cap),
                "slow_acquire_threshold" => opt(self.slow_acquire_threshold),
                "housekeeping_interval" => dur(self.housekeeping_interval),
                "leak_threshold" => opt(self.leak_threshold),
                "hook_timeout" => dur(self.hook_timeout),
                "adaptive_ceiling" => Out::Bool(self.adaptive_ceiling),
                other => unreachable!("ENV_VARS names a field the serializer does not: {other}"),
            };
            m.serialize_entry(var.field, &value)?;
        }
        m.end()
    }
}

enum Out {
    Int(u64),
    Str(String),
    Bool(bool),
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Int(n) => s.serialize_u64(*n),
            Out::Str(v) => s.serialize_str(v),
            Out::Bool(b) => s.serialize_bool(*b),
        }
    }
}
