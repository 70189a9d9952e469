//! Benchmarks for `pool-core`, side by side with deadpool, bb8, mobc and qp and a bare
//! `tokio::sync::Semaphore` as the floor. Everything lives in `benches/pool_compare.rs`; run
//! it with `cargo bench -p benches` (`BENCH_QUICK=1` for the quick mode). This library target
//! holds the workspace's Markdown examples (the READMEs and `docs/usage.md`), compiled and run
//! as doctests by `cargo test --workspace`: this crate is never published, so they do not need
//! to build from a packaged crate.

/// The workspace's Markdown examples, compiled and run as doctests.
#[cfg(doctest)]
mod markdown {
    #[doc = include_str!("../../README.md")]
    mod readme {}
    #[doc = include_str!("../../pool-postgres/README.md")]
    mod pool_postgres_readme {}
    #[doc = include_str!("../../pool-compat/README.md")]
    mod pool_compat_readme {}
    #[doc = include_str!("../../docs/usage.md")]
    mod usage {}
}
