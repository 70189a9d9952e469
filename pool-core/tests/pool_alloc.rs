//! Steady-state checkout and return allocate nothing on the heap, except a checkout that runs a
//! health check (its check runs boxed, so the `get()` future stays small).
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
fn steady_state_checkout_and_return_allocate_nothing_and_get_future_stays_small() {
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
            // What a queued caller holds: the check and the hook are boxed, not in here.
            let get = pool.get();
            let size = std::mem::size_of_val(&get);
            assert!(size <= 288, "a get() future is {size} bytes");
            drop(get);
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
            // A checkout that runs the health check allocates its boxed check, one block;
            // any other allocates nothing.
            let per_round = if check == CheckPolicy::Always {
                20_000
            } else {
                0
            };
            assert_eq!(
                rounds.iter().min(),
                Some(&per_round),
                "{check:?}: allocations per round of 20 000 checkouts: {rounds:?}"
            );
            assert!(
                rounds.iter().all(|&n| n < per_round + 100),
                "{check:?}: {rounds:?}"
            );
            assert_eq!(pool.stats().requests_num, 60_200);
            if check == CheckPolicy::Always {
                assert!(backend.checks() >= 20_000, "the checks really ran");
            }
        }
    });
}
