//! `checkpointer()` reads the real process environment (its own test binary, one test, so
//! setting variables races with nothing).
use std::time::Duration;

use pool_postgres::{checkpointer, PgManager};

#[tokio::test]
async fn checkpointer_reads_the_deerflow_variables() {
    std::env::set_var("DEERFLOW_CHECKPOINTER_POOL_MIN", "0");
    std::env::set_var("DEERFLOW_CHECKPOINTER_POOL_MAX", "3");
    std::env::set_var("DEERFLOW_CHECKPOINTER_POOL_MAX_IDLE", "60");
    let manager = PgManager::from_url("postgres://app@db.invalid/x").unwrap();
    let builder = checkpointer(manager).unwrap();
    let c = builder.current_config();
    assert_eq!(
        (c.min_size, c.max_size, c.max_idle),
        (0, 3, Some(Duration::from_secs(60)))
    );
    let pool = builder.build().unwrap();
    assert_eq!(pool.status().max_size, 3);

    std::env::set_var("DEERFLOW_CHECKPOINTER_POOL_MAX_IDLE", "forever");
    let manager = PgManager::from_url("postgres://app@db.invalid/x").unwrap();
    let err = checkpointer(manager).unwrap_err();
    assert_eq!(err.var(), Some("DEERFLOW_CHECKPOINTER_POOL_MAX_IDLE"));
    assert!(err.to_string().contains("\"forever\""), "{err}");
}
