//! Steady-state checkout and return allocate nothing on the heap.
//!
//! dhat's global allocator counts every allocation in the process; this file holds one test
//! so no other test allocates while it counts.
mod common;

use common::*;
use pool_core::CheckPolicy;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

#[test]
fn steady_state_checkout_and_return_allocate_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for check in [
            CheckPolicy::Never,
            CheckPolicy::Always,
            CheckPolicy::default(),
        ] {
            let (builder, backend) = fake(2, 4);
            let pool = builder.check(check).build().unwrap();
            pool.wait_ready(secs(1)).await.unwrap();
            // Warm up: the first checkouts may size internal buffers.
            for _ in 0..100 {
                let a = pool.get().await.unwrap();
                let b = pool.get().await.unwrap();
                drop((a, b));
            }
            // dhat counts every thread of the process, and the test harness's own threads
            // allocate now and then; so: three rounds of 20 000 checkouts, at least one of them
            // with no allocation at all. An allocation on the checkout path would show up in
            // every round, 20 000 times.
            let mut rounds = Vec::new();
            for _ in 0..3 {
                let before = blocks();
                for _ in 0..10_000 {
                    let a = pool.get().await.unwrap();
                    let b = pool.get().await.unwrap();
                    drop(a);
                    drop(b);
                }
                rounds.push(blocks() - before);
            }
            assert_eq!(
                rounds.iter().min(),
                Some(&0),
                "{check:?}: allocations per round of 20 000 checkouts: {rounds:?}"
            );
            assert!(rounds.iter().all(|&n| n < 100), "{check:?}: {rounds:?}");
            assert_eq!(pool.stats().requests_num, 60_200);
            if check == CheckPolicy::Always {
                assert!(backend.checks() >= 20_000, "the checks really ran");
            }
        }
    });
}
