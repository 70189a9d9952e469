//! Returning a connection after the runtime is gone, or from a plain thread.
mod common;

use common::*;

#[test]
fn returning_after_the_runtime_is_gone_does_not_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (builder, backend) = fake(1, 2);
    let (pool, conn, broken) = rt.block_on(async {
        let pool = builder.build().unwrap();
        pool.wait_ready(secs(1)).await.unwrap();
        let conn = pool.get().await.unwrap();
        let broken = pool.get().await.unwrap();
        (pool, conn, broken)
    });
    drop(rt);
    drop(conn);
    broken.break_it();
    drop(broken); // closed; the replacement waits for a runtime
    let s = pool.status();
    assert_eq!((s.size, s.idle, s.in_use), (1, 1, 0));
    assert_eq!(backend.live(), 1);
    drop(pool);
    assert_eq!(backend.live(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returning_from_a_plain_thread_does_not_panic() {
    let (builder, backend) = fake(0, 4);
    let pool = builder.build().unwrap();
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(pool.get().await.unwrap());
    }
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await.map(|c| c.id()) })
    };
    tokio::task::yield_now().await;
    std::thread::spawn(move || drop(conns)).join().unwrap();
    let served = waiter
        .await
        .unwrap()
        .expect("the waiter is served by a return from a thread");
    assert!(served >= 1);
    let s = pool.status();
    assert_eq!(s.size, 4);
    assert_eq!(backend.live(), 4);
}
