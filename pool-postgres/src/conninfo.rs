//! The one connection-string parser: a `postgres://` URL or libpq key/value pairs (values
//! quoted with `'`, `\` escaping), read once with where each parameter sits, so the readers
//! (the TLS settings, the parameters given explicitly, redaction) agree on what a string says.

use std::ops::Range;

/// A parsed connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conninfo<'a> {
    source: &'a str,
    form: Form,
    params: Vec<Param>,
    /// Problems a strict reader reports (an unterminated quote, a key without `=`); a lenient
    /// one (redaction) reads past them.
    problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Form {
    /// `postgres://...`: the part before the query, where the password of `user:password@`
    /// sits (if any), and the fragment.
    Url {
        base: Range<usize>,
        password: Option<Range<usize>>,
        fragment: Option<Range<usize>>,
    },
    KeyValue,
}

/// One `key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Param {
    /// As written (URL keys and values are percent-decoded).
    pub(crate) key: String,
    pub(crate) value: String,
    /// The whole `key=value` as written, and the value alone (quotes included).
    whole: Range<usize>,
    value_at: Range<usize>,
}

impl<'a> Conninfo<'a> {
    /// Reads `s`, noting problems instead of failing (see [`Conninfo::strict`]).
    pub(crate) fn parse(s: &'a str) -> Conninfo<'a> {
        let start = s.len() - s.trim_start().len();
        let end = start + s[start..].trim_end().len();
        let body = &s[start..end];
        if body.starts_with("postgres://") || body.starts_with("postgresql://") {
            parse_url(s, start, end)
        } else {
            parse_key_values(s, start, end)
        }
    }

    /// The first problem, if any: a strict reader refuses the string.
    pub(crate) fn strict(self) -> Result<Conninfo<'a>, String> {
        match self.problems.first() {
            Some(p) => Err(p.clone()),
            None => Ok(self),
        }
    }

    pub(crate) fn is_url(&self) -> bool {
        matches!(self.form, Form::Url { .. })
    }

    pub(crate) fn params(&self) -> &[Param] {
        &self.params
    }

    /// The string with the password hidden (`***`): `user:password@` in a URL and every
    /// `password` parameter; everything else exactly as written.
    pub(crate) fn redacted(&self) -> String {
        let mut hide: Vec<Range<usize>> = self
            .params
            .iter()
            .filter(|p| p.key.eq_ignore_ascii_case("password"))
            .map(|p| p.value_at.clone())
            .collect();
        if let Form::Url {
            password: Some(p), ..
        } = &self.form
        {
            hide.push(p.clone());
        }
        hide.sort_by_key(|r| r.start);
        let mut out = String::with_capacity(self.source.len());
        let mut at = 0;
        for r in hide {
            out.push_str(&self.source[at..r.start]);
            out.push_str("***");
            at = r.end;
        }
        out.push_str(&self.source[at..]);
        out
    }

    /// The string with each parameter passed through `keep`: `None` drops it, `Some(v)` keeps
    /// it with value `v` (as written if unchanged in a URL; key/value pairs are written
    /// quoted).
    pub(crate) fn rewrite(
        &self,
        mut keep: impl FnMut(&Param) -> Result<Option<String>, String>,
    ) -> Result<String, String> {
        match &self.form {
            Form::Url { base, fragment, .. } => {
                let mut kept = Vec::new();
                for p in &self.params {
                    if let Some(v) = keep(p)? {
                        kept.push(if v == p.value {
                            self.source[p.whole.clone()].to_string()
                        } else {
                            format!("{}={}", p.key, percent_encode(&v))
                        });
                    }
                }
                let mut out = self.source[base.clone()].to_string();
                if !kept.is_empty() {
                    out.push('?');
                    out.push_str(&kept.join("&"));
                }
                if let Some(f) = fragment {
                    out.push('#');
                    out.push_str(&self.source[f.clone()]);
                }
                Ok(out)
            }
            Form::KeyValue => {
                let mut kept = Vec::new();
                for p in &self.params {
                    if let Some(v) = keep(p)? {
                        kept.push(format!(
                            "{}='{}'",
                            p.key,
                            v.replace('\\', "\\\\").replace('\'', "\\'")
                        ));
                    }
                }
                Ok(kept.join(" "))
            }
        }
    }
}

fn parse_url(s: &str, start: usize, end: usize) -> Conninfo<'_> {
    let body = &s[..end];
    let (head_end, fragment) = match body[start..].find('#') {
        Some(i) => (start + i, Some(start + i + 1..end)),
        None => (end, None),
    };
    let (base_end, query) = match body[start..head_end].find('?') {
        Some(i) => (start + i, Some(start + i + 1..head_end)),
        None => (head_end, None),
    };
    // The password: between the first ':' and the last '@' of the authority.
    let scheme_end = body[start..].find("://").map_or(start, |i| start + i + 3);
    let authority_end = body[scheme_end..base_end]
        .find('/')
        .map_or(base_end, |i| scheme_end + i);
    let password = body[scheme_end..authority_end].rfind('@').and_then(|at| {
        let creds = scheme_end..scheme_end + at;
        body[creds.clone()]
            .find(':')
            .map(|colon| creds.start + colon + 1..creds.end)
    });
    let mut params = Vec::new();
    if let Some(q) = query {
        let mut at = q.start;
        for pair in body[q.clone()].split('&') {
            let whole = at..at + pair.len();
            at += pair.len() + 1;
            if pair.is_empty() {
                continue;
            }
            let (k, v, value_at) = match pair.find('=') {
                Some(eq) => (
                    &pair[..eq],
                    &pair[eq + 1..],
                    whole.start + eq + 1..whole.end,
                ),
                None => (pair, "", whole.end..whole.end),
            };
            params.push(Param {
                key: percent_decode(k),
                value: percent_decode(v),
                whole,
                value_at,
            });
        }
    }
    Conninfo {
        source: s,
        form: Form::Url {
            base: 0..base_end,
            password,
            fragment,
        },
        params,
        problems: Vec::new(),
    }
}

fn parse_key_values(s: &str, start: usize, end: usize) -> Conninfo<'_> {
    let bytes = s.as_bytes();
    let mut params = Vec::new();
    let mut problems = Vec::new();
    let mut i = start;
    let skip_ws = |mut i: usize| {
        while i < end && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i >= end {
            break;
        }
        let key_start = i;
        while i < end && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = s[key_start..i].to_string();
        i = skip_ws(i);
        if i >= end || bytes[i] != b'=' {
            problems.push(format!("expected '=' after {key:?}"));
            params.push(Param {
                key,
                value: String::new(),
                whole: key_start..i,
                value_at: i..i,
            });
            continue;
        }
        i = skip_ws(i + 1);
        let value_start = i;
        let mut value = String::new();
        if i < end && bytes[i] == b'\'' {
            i += 1;
            let mut closed = false;
            let mut chars = s[i..end].char_indices();
            while let Some((o, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '\'' => {
                        i += o + 1;
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                problems.push(format!("unterminated quote in the value of {key:?}"));
                i = end;
            }
        } else {
            let mut chars = s[i..end].char_indices();
            let mut stop = end - i;
            while let Some((o, c)) = chars.next() {
                if c.is_whitespace() {
                    stop = o;
                    break;
                }
                if c == '\\' {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
            i += stop;
        }
        params.push(Param {
            key,
            value,
            whole: key_start..i,
            value_at: value_start..i,
        });
    }
    Conninfo {
        source: s,
        form: Form::KeyValue,
        params,
        problems,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        Conninfo::parse(s)
            .params()
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect()
    }

    fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Regression (found by the `config_env` fuzz target): a string of whitespace alone
    /// panicked on an out-of-range slice.
    #[test]
    fn empty_and_blank_strings_have_no_parameters() {
        for s in ["", " ", "  \n\t ", " \u{85}"] {
            let c = Conninfo::parse(s);
            assert!(c.params().is_empty(), "{s:?}");
            assert_eq!(c.redacted(), s);
        }
        assert!(Conninfo::parse("  postgres://h/db  ").is_url());
    }

    #[test]
    fn a_quoted_value_with_spaces_and_equals_is_one_value() {
        // The false key a whitespace split would read ("c").
        assert_eq!(
            pairs("host=db password='a b=c' user=app"),
            kv(&[("host", "db"), ("password", "a b=c"), ("user", "app")])
        );
    }

    #[test]
    fn quotes_and_backslashes_escape_as_libpq_reads_them() {
        assert_eq!(
            pairs(r"password='it\'s' dbname=a\ b  sslmode = require"),
            kv(&[
                ("password", "it's"),
                ("dbname", "a b"),
                ("sslmode", "require")
            ])
        );
        assert_eq!(
            pairs(r"password='back\\slash'"),
            kv(&[("password", r"back\slash")])
        );
        assert_eq!(
            pairs("application_name=''"),
            kv(&[("application_name", "")])
        );
    }

    #[test]
    fn problems_are_noted_and_a_strict_reader_refuses_them() {
        assert_eq!(
            Conninfo::parse("host=db password='open")
                .strict()
                .unwrap_err(),
            "unterminated quote in the value of \"password\""
        );
        assert_eq!(
            Conninfo::parse("host db").strict().unwrap_err(),
            "expected '=' after \"host\""
        );
    }

    #[test]
    fn url_parameters_are_percent_decoded_and_the_userinfo_password_found() {
        let c = Conninfo::parse("postgres://app:p%40ss@db:5432/x?sslrootcert=%2Fa%20b&x=1#frag");
        assert!(c.is_url());
        assert_eq!(
            pairs("postgres://app:p%40ss@db:5432/x?sslrootcert=%2Fa%20b&x=1#frag"),
            kv(&[("sslrootcert", "/a b"), ("x", "1")])
        );
        assert_eq!(
            c.redacted(),
            "postgres://app:***@db:5432/x?sslrootcert=%2Fa%20b&x=1#frag"
        );
    }

    #[test]
    fn redaction_hides_every_password_and_keeps_the_rest_as_written() {
        assert_eq!(
            Conninfo::parse("host=db password='a b=c' user=app").redacted(),
            "host=db password=*** user=app"
        );
        assert_eq!(
            Conninfo::parse("postgres://db/x?password=s3cret&PASSWORD=x&sslmode=disable")
                .redacted(),
            "postgres://db/x?password=***&PASSWORD=***&sslmode=disable"
        );
        // A malformed string is still redacted.
        assert_eq!(
            Conninfo::parse("host=db password='never closed").redacted(),
            "host=db password=***"
        );
    }

    #[test]
    fn rewriting_keeps_unchanged_url_pairs_and_quotes_key_values() {
        let c = Conninfo::parse("postgres://h/db?sslmode=verify-full&a=%2F&b=2");
        let out = c
            .rewrite(|p| {
                Ok(match p.key.as_str() {
                    "sslmode" => Some("require".into()),
                    "b" => None,
                    _ => Some(p.value.clone()),
                })
            })
            .unwrap();
        assert_eq!(out, "postgres://h/db?sslmode=require&a=%2F");
        let c = Conninfo::parse(r"host=h password='it\'s'");
        let out = c.rewrite(|p| Ok(Some(p.value.clone()))).unwrap();
        assert_eq!(out, r"host='h' password='it\'s'");
    }
}
