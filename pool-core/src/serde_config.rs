//! `Config` as serde data (the `serde` feature): the field names, with the values the
//! environment variables take (durations as `"300s"`, `"5m"`, `"250ms"` or a number of
//! seconds, `"off"` or null for none, `"always"`, `"never"`, `"lifo"`, `"fifo"`, booleans),
//! parsed by the same code as the environment table, so a TOML file, the `config` crate or
//! JSON say what they mean the same way. Written back with human durations.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::Config;
use crate::env::{Shown, ENV_VARS};

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

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
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

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl Serialize for Config {
    /// Every field, in the form [`Deserialize`] reads back: human durations (`"5m"`), `"off"`
    /// for none.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for var in ENV_VARS {
            m.serialize_entry(var.field, &Out(var.shown(self)))?;
        }
        m.end()
    }
}

/// A field's value as serde writes it: numbers and booleans as themselves, the rest as text.
struct Out(Shown);

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Shown::Int(n) => s.serialize_u64(*n),
            Shown::Text(v) => s.serialize_str(v),
            Shown::Switch(b) => s.serialize_bool(*b),
        }
    }
}
