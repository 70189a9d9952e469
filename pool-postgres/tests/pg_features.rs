//! `metrics` and `serde` are features of `pool-postgres` too, forwarded to `pool-core`, so a
//! Postgres user turns them on where they depend. (`.ci/run` builds this with both.)
#![cfg(all(feature = "metrics", feature = "serde"))]

#[test]
fn metrics_and_serde_reach_pool_core_through_pool_postgres() {
    // Only there with pool-core's `metrics` feature.
    assert!(pool_core::METRICS
        .iter()
        .any(|(name, _, _)| *name == "pool_connections"));
    // Only implemented with pool-core's `serde` feature.
    fn serializable<T: serde::Serialize + for<'de> serde::Deserialize<'de>>() {}
    serializable::<pool_core::Config>();
}
