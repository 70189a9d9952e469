//! Benchmarks for `pool-core`, side by side with deadpool, bb8, mobc and qp and a bare
//! `tokio::sync::Semaphore` as the floor. Everything lives in `benches/pool_compare.rs`; run
//! it with `cargo bench -p benches` (`BENCH_QUICK=1` for the quick mode). This library target
//! is empty.
