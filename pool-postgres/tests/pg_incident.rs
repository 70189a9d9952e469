//! The incident, reproduced: a role with CONNECTION LIMIT 10 shared by five "workers".
//! Fixed pools of 4 exhaust it (53300); checkpointer-preset pools hold an idle floor of 5
//! backends and still serve a burst.
mod common;

use std::time::Duration;

use pool_core::{ConnectError, Pool, PoolError};
use pool_postgres::{checkpointer_with_prefix, PgManager};
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_pools_exhaust_the_limit_while_elastic_pools_hold_a_small_floor() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let role = common::unique("incident");
    common::create_limited_role(&admin, &role, 10).await;

    // Five workers with fixed pools of 4: 20 connections wanted, 10 allowed.
    let mut fixed = Vec::new();
    for w in 0..5 {
        let app = format!("{role}_fixed{w}");
        let manager = PgManager::from_url(&common::with_app(&url, &app, Some(&role))).unwrap();
        let pool = Pool::builder(manager)
            .min_size(4)
            .max_size(4)
            .wait_timeout(Some(Duration::from_secs(2)))
            .build()
            .unwrap();
        fixed.push(pool);
    }
    let mut short_of_floor = 0;
    let mut saw_53300 = false;
    let mut waits = JoinSet::new();
    for pool in &fixed {
        let pool = pool.clone();
        waits.spawn(async move { pool.wait_ready(Duration::from_secs(3)).await });
    }
    while let Some(r) = waits.join_next().await {
        if let Err(PoolError::Timeout(t)) = r.unwrap() {
            short_of_floor += 1;
            if let Some(ConnectError::Backend(e)) = &t.last_connect_error {
                saw_53300 |= e.code().is_some_and(|c| c.code() == "53300");
            }
        }
    }
    let fixed_backends = common::backends_of_role(&admin, &role).await;
    let fixed_errors: u64 = fixed.iter().map(|p| p.stats().connections_errors).sum();
    assert_eq!(
        fixed_backends, 10,
        "the role's limit is exhausted by idle fixed pools"
    );
    assert!(
        short_of_floor >= 3,
        "{short_of_floor} of 5 fixed pools could not open their 4"
    );
    assert!(saw_53300, "the failing pools report SQLSTATE 53300");
    for pool in &fixed {
        pool.close_and_wait().await;
    }
    drop(fixed);
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            common::backends_of_role(&admin, &role).await == 0
        })
        .await
    );

    // The same five workers with the checkpointer preset (min 1, max 4).
    let prefix = format!("{}_POOL", role.to_uppercase());
    let mut elastic = Vec::new();
    for w in 0..5 {
        let app = format!("{role}_elastic{w}");
        let manager = PgManager::from_url(&common::with_app(&url, &app, Some(&role))).unwrap();
        let pool = checkpointer_with_prefix(manager, &prefix)
            .unwrap()
            .build()
            .unwrap();
        pool.wait_ready(Duration::from_secs(5)).await.unwrap();
        elastic.push(pool);
    }
    let idle_floor = common::backends_of_role(&admin, &role).await;
    assert_eq!(idle_floor, 5, "one idle backend per worker");

    // A burst on every worker at once: 8 tasks x 5 queries each.
    let mut set = JoinSet::new();
    for pool in &elastic {
        for _ in 0..8 {
            let pool = pool.clone();
            set.spawn(async move {
                for _ in 0..5 {
                    let conn = pool.get().await?;
                    conn.simple_query("SELECT pg_sleep(0.02)")
                        .await
                        .expect("query");
                }
                Ok::<_, PoolError<pool_postgres::PgError>>(())
            });
        }
    }
    let mut served_tasks = 0;
    while let Some(r) = set.join_next().await {
        r.unwrap().expect("every burst caller is served");
        served_tasks += 1;
    }
    let queries: u64 = elastic.iter().map(|p| p.stats().requests_num).sum();
    let peak: usize = elastic
        .iter()
        .map(|p| p.stats().connections_num as usize)
        .sum();
    let elastic_errors: u64 = elastic.iter().map(|p| p.stats().connections_errors).sum();
    assert_eq!(served_tasks, 40);
    assert_eq!(queries, 200);
    assert!(common::backends_of_role(&admin, &role).await <= 10);
    let mut report = std::io::stderr();
    use std::io::Write;
    let _ = writeln!(
        report,
        "incident: fixed pools held {fixed_backends} backends, {short_of_floor}/5 short of their floor, \
         {fixed_errors} refused connects (53300); checkpointer pools held an idle floor of {idle_floor} \
         and served {queries} burst queries with 0 errors ({peak} connections opened, {elastic_errors} refused connects)"
    );
    for pool in &elastic {
        pool.close_and_wait().await;
    }
    drop(elastic);
    common::drop_role(&admin, &role).await;
}
