//! The connection budget: read from the server, and a warning at start when the pool's floor
//! does not fit what the role has left.
mod common;

use std::time::Duration;

use pool_core::Pool;
use pool_postgres::{Budget, PgManager};

#[tokio::test(flavor = "current_thread")]
async fn the_budget_reads_the_servers_limits_and_warns_when_the_floor_does_not_fit() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let budget = Budget::read(&admin).await.unwrap();
    let max: String = admin
        .query_one("SHOW max_connections", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(budget.max_connections.to_string(), max);
    assert!(budget.superuser);
    assert!(budget.open_total >= 1);
    eprintln!("shared server: {budget}");

    let role = common::unique("budget");
    common::create_limited_role(&admin, &role, 3).await;
    let (capture, guard) = pool_testkit::Capture::install();
    for (floor, app) in [(5, "budget_tight"), (2, "budget_fits")] {
        let app = common::unique(app);
        // The pool's min_size is the floor compared (PgManager::budget_floor can set another).
        let manager = PgManager::from_url(&common::with_app(&url, &app, Some(&role))).unwrap();
        let pool = Pool::builder(manager)
            .min_size(floor)
            .max_size(floor)
            .wait_timeout(Some(Duration::from_secs(2)))
            .build()
            .unwrap();
        // The floor of 5 cannot be opened (the role allows 3); wait for the first connect.
        let _ = pool.wait_ready(Duration::from_secs(2)).await;
        pool.close_and_wait().await;
    }
    drop(guard);
    let text = capture.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("does not fit in the connection budget"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, for the floor of 5 only:\n{text}"
    );
    let w = warnings[0];
    assert!(
        w.contains("floor=5") && w.contains("headroom=2") && w.contains("limit=\"role\""),
        "{w}"
    );
    common::drop_role(&admin, &role).await;
}
