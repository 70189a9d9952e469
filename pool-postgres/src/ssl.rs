//! The libpq TLS settings tokio-postgres does not parse itself: `sslmode=verify-ca`,
//! `sslmode=verify-full` and `sslrootcert`. They are taken out of the connection string
//! (tokio-postgres is given `sslmode=require` for the verifying modes) and kept for the TLS
//! connector.

use std::path::PathBuf;

use crate::error::PgError;
use crate::redact::redact;

/// How a connection uses TLS and what it verifies, as libpq's `sslmode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, without verifying the certificate (libpq's default).
    #[default]
    Prefer,
    /// TLS, without verifying the certificate.
    Require,
    /// TLS, the certificate chain verified against `sslrootcert` (any host name).
    VerifyCa,
    /// TLS, the chain verified and the certificate valid for the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// Does this mode check the server's certificate?
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// Does this mode refuse a connection without TLS?
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// As `sslmode` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS settings read from a connection string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SslSettings {
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<PathBuf>,
}

/// Splits the TLS settings tokio-postgres cannot parse out of `conn`; returns the string for
/// tokio-postgres and the settings.
pub(crate) fn split_ssl(conn: &str) -> Result<(String, SslSettings), PgError> {
    let trimmed = conn.trim();
    let mut settings = SslSettings::default();
    let mut take = |key: &str, value: &str| -> Result<Option<String>, PgError> {
        match key {
            "sslmode" => {
                let mode = SslMode::parse(value).ok_or_else(|| {
                    PgError::Config(format!(
                        "sslmode={value:?} is not one of disable, prefer, require, verify-ca, verify-full (in {:?})",
                        redact(conn)
                    ))
                })?;
                settings.mode = mode;
                // tokio-postgres knows disable, prefer and require; verification is the
                // connector's business.
                Ok(Some(
                    if mode.verifies() { "require" } else { value }.to_string(),
                ))
            }
            "sslrootcert" => {
                settings.root_cert = Some(PathBuf::from(value));
                Ok(None)
            }
            _ => Ok(Some(value.to_string())),
        }
    };
    let rebuilt = if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        let (head, fragment) = match trimmed.split_once('#') {
            Some((h, f)) => (h, Some(f)),
            None => (trimmed, None),
        };
        let Some((base, query)) = head.split_once('?') else {
            return Ok((conn.to_string(), settings));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(v);
            if let Some(new) = take(k, &value)? {
                kept.push(if new == value {
                    pair.to_string()
                } else {
                    format!("{k}={new}")
                });
            }
        }
        let mut out = base.to_string();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        out
    } else {
        let pairs = key_values(trimmed)
            .map_err(|e| PgError::Config(format!("{e} (in {:?})", redact(conn))))?;
        let mut kept = Vec::new();
        for (k, v) in pairs {
            if let Some(new) = take(&k, &v)? {
                kept.push(format!(
                    "{k}='{}'",
                    new.replace('\\', "\\\\").replace('\'', "\\'")
                ));
            }
        }
        kept.join(" ")
    };
    Ok((rebuilt, settings))
}

/// libpq key/value pairs: `key=value`, `key = 'quoted \' value'`.
fn key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("expected '=' after {key:?}"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quote in the value of {key:?}")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    value.extend(chars.next());
                } else {
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((key, value));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifying_modes_and_the_root_certificate_are_taken_out() {
        let (s, t) = split_ssl(
            "postgres://u:p@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.crt&application_name=x",
        )
        .unwrap();
        assert_eq!(s, "postgres://u:p@h/db?sslmode=require&application_name=x");
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(t.root_cert, Some(PathBuf::from("/tmp/ca.crt")));

        let (s, t) = split_ssl(
            "host=h user=u sslmode = verify-ca sslrootcert='/a b/ca.crt' password='it\\'s'",
        )
        .unwrap();
        assert_eq!(s, "host='h' user='u' sslmode='require' password='it\\'s'");
        assert_eq!(t.mode, SslMode::VerifyCa);
        assert_eq!(t.root_cert, Some(PathBuf::from("/a b/ca.crt")));
        let parsed: tokio_postgres::Config = s.parse().unwrap();
        assert_eq!(parsed.get_password(), Some(&b"it's"[..]));
    }

    #[test]
    fn other_modes_pass_through_and_bad_ones_are_named() {
        let (s, t) = split_ssl("postgres://h/db?sslmode=disable").unwrap();
        assert_eq!(
            (s.as_str(), t.mode),
            ("postgres://h/db?sslmode=disable", SslMode::Disable)
        );
        let (_, t) = split_ssl("host=h").unwrap();
        assert_eq!(t.mode, SslMode::Prefer);
        let err = split_ssl("postgres://u:secret@h/db?sslmode=verify").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sslmode=\"verify\""), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
