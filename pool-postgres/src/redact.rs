//! Hiding passwords in connection strings.

/// The connection string with any password replaced by `***`: the `user:password@` part of a
/// URL, and `password=` parameters in a URL query or a key/value string.
///
/// ```
/// use pool_postgres::redact;
/// assert_eq!(redact("postgres://app:s3cret@db/x"), "postgres://app:***@db/x");
/// assert_eq!(redact("postgres://db/x?password=s3cret&sslmode=disable"), "postgres://db/x?password=***&sslmode=disable");
/// assert_eq!(redact("host=db password='s 3cret' user=app"), "host=db password=*** user=app");
/// ```
pub fn redact(conn: &str) -> String {
    let trimmed = conn.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        redact_url(conn)
    } else {
        redact_key_values(conn)
    }
}

fn redact_url(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let (head, rest) = url.split_at(scheme_end);
    // The authority ends at the first '/', '?' or '#'; credentials end at its last '@'.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (creds, hosts) = authority.split_at(at);
            match creds.find(':') {
                Some(colon) => format!("{}:***{}", &creds[..colon], hosts),
                None => authority.to_string(),
            }
        }
        None => authority.to_string(),
    };
    let tail = match tail.find('?') {
        Some(q) => {
            let (path, query) = tail.split_at(q + 1);
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{head}{authority}{tail}")
}

fn redact_key_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = find_password_key(rest) {
        out.push_str(&rest[..pos]);
        let after_key = &rest[pos..];
        let eq = after_key.find('=').map_or(after_key.len(), |i| i + 1);
        out.push_str(&after_key[..eq]);
        out.push_str("***");
        let value = after_key[eq..].trim_start();
        rest = skip_value(value);
    }
    out.push_str(rest);
    out
}

/// Position of a `password` key followed by optional spaces and `=`, at a word start.
fn find_password_key(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("password") {
        let at = from + i;
        let word_start = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = lower[at + "password".len()..].trim_start();
        if word_start && after.starts_with('=') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The text after a key/value value (quoted with `'` and `\` escapes, or up to whitespace).
fn skip_value(value: &str) -> &str {
    if let Some(quoted) = value.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '\'' if !escaped => return &quoted[i + 1..],
                _ => escaped = false,
            }
        }
        ""
    } else {
        value.find(char::is_whitespace).map_or("", |i| &value[i..])
    }
}
