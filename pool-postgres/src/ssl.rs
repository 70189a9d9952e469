//! The libpq TLS settings tokio-postgres does not parse itself: `sslmode=verify-ca`,
//! `sslmode=verify-full` and `sslrootcert`. They are taken out of the connection string
//! (tokio-postgres is given `sslmode=require` for the verifying modes) and kept for the TLS
//! connector.

use std::path::PathBuf;

use crate::conninfo::Conninfo;
use crate::error::PgError;
use crate::redact::redact;

/// How a connection uses TLS and what it verifies, as libpq's `sslmode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
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
    let bad = |why: String| PgError::Config(format!("{why} (in {:?})", redact(conn)));
    let info = Conninfo::parse(conn);
    let info = if info.is_url() {
        info
    } else {
        info.strict().map_err(bad)?
    };
    let mut settings = SslSettings::default();
    let rebuilt = info
        .rewrite(|p| match p.key.as_str() {
            "sslmode" => {
                let value = &p.value;
                let mode = SslMode::parse(value).ok_or_else(|| {
                    format!(
                        "sslmode={value:?} is not one of disable, prefer, require, verify-ca, verify-full"
                    )
                })?;
                settings.mode = mode;
                // tokio-postgres knows disable, prefer and require; verification is the
                // connector's business.
                Ok(Some(if mode.verifies() { "require".to_string() } else { value.clone() }))
            }
            "sslrootcert" => {
                settings.root_cert = Some(PathBuf::from(&p.value));
                Ok(None)
            }
            _ => Ok(Some(p.value.clone())),
        })
        .map_err(bad)?;
    // A URL without a query is passed through as written.
    let rebuilt = if info.is_url() && info.params().is_empty() {
        conn.to_string()
    } else {
        rebuilt
    };
    Ok((rebuilt, settings))
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
