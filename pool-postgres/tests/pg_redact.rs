//! Passwords never appear in Debug, Display or error messages.
use pool_postgres::{redact, PgError, PgManager};

const SECRET: &str = "hunter2-Sup3rSecret";

#[test]
fn manager_debug_hides_the_password() {
    for url in [
        format!("postgres://app:{SECRET}@db.invalid:5432/x"),
        format!("postgres://app@db.invalid/x?password={SECRET}"),
        format!("host=db.invalid user=app password={SECRET} dbname=x"),
        format!("host=db.invalid user=app password='{SECRET}' dbname=x"),
    ] {
        let manager = PgManager::from_url(&url).unwrap();
        let debug = format!("{manager:?} {:?}", manager.config());
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(!redact(&url).contains(SECRET), "{}", redact(&url));
    }
}

#[test]
fn bad_connection_strings_are_errors_that_hide_the_password() {
    for url in [
        format!("postgres://app:{SECRET}@db.invalid:notaport/x"),
        format!("postgres://app:{SECRET}@db.invalid/x?keepalives_idle=soon"),
        format!("postgres://app:{SECRET}@db.invalid/x?no_such_option=1"),
        format!("host=db.invalid password={SECRET} port=seventy"),
        format!("host=db.invalid password='{SECRET} port=1"),
        format!("password={SECRET}"),
        format!("postgres://app:{SECRET}@/x"),
        "postgres://".to_string(),
        String::new(),
        "\u{0}\u{ffff}%%%".to_string(),
    ] {
        let err = PgManager::from_url(&url).expect_err(&url);
        let text = format!("{err} {err:?}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(matches!(err, PgError::Config(_)), "{err:?}");
    }
}

#[test]
fn redaction_covers_every_password_form() {
    assert_eq!(
        redact("postgresql://u:p%40ss@h/db"),
        "postgresql://u:***@h/db"
    );
    assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(
        redact("postgres://u:pw@h1,h2/db?Password=x&a=b"),
        "postgres://u:***@h1,h2/db?Password=***&a=b"
    );
    assert_eq!(
        redact("user=u password = 'a b\\' c' host=h"),
        "user=u password = *** host=h"
    );
    assert_eq!(redact("passwordless=1 host=h"), "passwordless=1 host=h");
}

#[tokio::test]
async fn log_events_and_pool_errors_hide_the_password() {
    let (capture, _guard) = pool_testkit::Capture::install();

    // Nothing listens on port 1: every connect is refused and logged.
    let url = format!("postgres://app:{SECRET}@127.0.0.1:1/x?connect_timeout=1");
    let manager = PgManager::from_url(&url).unwrap();
    let pool = pool_core::Pool::builder(manager)
        .max_size(1)
        .wait_timeout(Some(std::time::Duration::from_millis(300)))
        .build()
        .unwrap();
    let err = pool.get().await.unwrap_err();
    let text = capture.text();
    assert!(
        text.contains("connect failed"),
        "the failure was logged:\n{text}"
    );
    assert!(text.contains("127.0.0.1:1"), "the log says where:\n{text}");
    assert!(!text.contains(SECRET), "password in the log:\n{text}");
    let shown = format!("{err} {err:?} {pool:?}");
    assert!(!shown.contains(SECRET), "{shown}");
}
