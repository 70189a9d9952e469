//! Hiding passwords in connection strings (read by the one parser, `conninfo.rs`).

use crate::conninfo::Conninfo;

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
    Conninfo::parse(conn).redacted()
}
