//! The tables of environment variables and metrics in `docs/usage.md` are the code's own
//! tables (`pool_core::ENV_VARS`, `pool_core::METRICS`), written out: this test fails when they
//! disagree. `BLESS_DOCS=1 cargo test -p pool-core --all-features --test docs_tables`
//! rewrites them in the page from the code.

use std::path::PathBuf;

use pool_core::{Config, ENV_VARS};

fn usage_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/usage.md")
}

/// The usage page's text between `<!-- {name} -->` and `<!-- /{name} -->`, compared with
/// `expected` (or replaced by it under `BLESS_DOCS`).
fn check_block(name: &str, expected: &str) {
    let path = usage_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let open = format!("<!-- {name} -->\n");
    let close = format!("<!-- /{name} -->");
    let start = text
        .find(&open)
        .unwrap_or_else(|| panic!("docs/usage.md has no {open:?} marker"))
        + open.len();
    let end = start
        + text[start..]
            .find(&close)
            .unwrap_or_else(|| panic!("docs/usage.md has no {close:?} marker"));
    let found = &text[start..end];
    if found == expected {
        return;
    }
    if std::env::var_os("BLESS_DOCS").is_some() {
        let mut new = String::with_capacity(text.len());
        new.push_str(&text[..start]);
        new.push_str(expected);
        new.push_str(&text[end..]);
        std::fs::write(&path, new).unwrap();
        return;
    }
    panic!(
        "docs/usage.md's {name} table differs from the code's; run \
         BLESS_DOCS=1 cargo test -p pool-core --all-features --test docs_tables\n\
         --- docs/usage.md\n{found}--- code\n{expected}"
    );
}

#[test]
fn the_usage_pages_environment_table_is_env_vars() {
    let defaults = Config::default();
    let mut t = String::from("| variable | field | takes | default |\n| --- | --- | --- | --- |\n");
    for v in ENV_VARS {
        t.push_str(&format!(
            "| `{{PREFIX}}_{}` | `{}` | {} | `{}` |\n",
            v.suffix,
            v.field,
            v.expects,
            v.value_in(&defaults)
        ));
    }
    check_block("env-vars", &t);
}

#[cfg(feature = "metrics")]
#[test]
fn the_usage_pages_metrics_table_is_metrics() {
    let mut t = String::from("| metric | kind | what |\n|---|---|---|\n");
    for (name, kind, what) in pool_core::METRICS {
        t.push_str(&format!("| `{name}` | {kind} | {what} |\n"));
    }
    check_block("metrics", &t);
}

/// Every field of `Config` has a row: the table is the whole configuration (serde writes
/// one entry per row, so a field missing from it would not survive a round trip).
#[test]
fn every_config_field_is_in_the_table() {
    let debug = format!("{:?}", Config::default());
    let fields: Vec<&str> = debug
        .trim_start_matches("Config { ")
        .split(", ")
        .filter_map(|kv| kv.split_once(": ").map(|(k, _)| k))
        .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    assert!(fields.len() >= 19, "{fields:?}");
    for f in &fields {
        assert!(
            ENV_VARS.iter().any(|v| v.field == *f),
            "Config::{f} has no row in the configuration table (env.rs, config_fields!)"
        );
    }
    assert_eq!(fields.len(), ENV_VARS.len(), "{fields:?}");
}
