//! After the pool is closed or dropped, its backends leave `pg_stat_activity`.
mod common;

use std::time::Duration;

use pool_core::Pool;
use pool_postgres::PgManager;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_or_dropping_the_pool_ends_its_backends() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    for how in ["close", "drop"] {
        let app = common::unique(how);
        let manager = PgManager::from_url(&common::with_app(&url, &app, None)).unwrap();
        let pool = Pool::builder(manager)
            .min_size(3)
            .max_size(3)
            .build()
            .unwrap();
        pool.wait_ready(Duration::from_secs(10)).await.unwrap();
        let held = pool.get().await.unwrap();
        assert_eq!(common::backends(&admin, &app).await, 3);
        match how {
            "close" => pool.close(),
            _ => drop(pool),
        }
        // The idle two go at once; the checked-out one when it comes back.
        assert!(
            common::eventually(Duration::from_secs(5), || async {
                common::backends(&admin, &app).await == 1
            })
            .await,
            "{how}: idle backends still there"
        );
        drop(held);
        assert!(
            common::eventually(Duration::from_secs(5), || async {
                common::backends(&admin, &app).await == 0
            })
            .await,
            "{how}: backends still there after the last connection came back"
        );
    }
}
