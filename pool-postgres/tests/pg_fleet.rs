//! The fleet simulation, shortened: five checkpointer pools against a role limited to 10
//! connections, the same bursty load in each mode. The full 20 s run and its table:
//! `cargo run --release --example fleet`.
mod common;

use common::fleet::{self, Mode, Role};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adaptive_ceiling_cuts_refused_connects_without_starving_a_pool() {
    let url = require_server!();
    let role = Role::create(&url).await;
    let secs = 8;
    let elastic = fleet::run(&url, &role, Mode::Elastic, secs, 11).await;
    let adaptive = fleet::run(&url, &role, Mode::Adaptive, secs, 11).await;
    role.drop().await;
    eprint!("{}", fleet::table(&[elastic.clone(), adaptive.clone()]));
    assert_eq!(elastic.checkouts, adaptive.checkouts, "the same load");
    assert_eq!(adaptive.caller_errors, 0);
    assert!(adaptive.peak_backends <= i64::from(fleet::ROLE_LIMIT));
    assert!(elastic.refused > 0, "the plain elastic pools hit the limit");
    assert!(
        adaptive.refused * 2 <= elastic.refused,
        "adaptive {} vs elastic {} refused connects",
        adaptive.refused,
        elastic.refused
    );
    assert!(
        adaptive.worst_share() >= 0.5,
        "no pool starved: {:?}",
        adaptive.per_pool
    );
}
