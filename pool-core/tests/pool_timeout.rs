//! Wait timeouts: the pool's one timer expires queued callers at their deadlines, in order;
//! a `get_timeout` of its own keeps its own timer. Futures are polled by hand under the paused
//! clock.
mod common;

use common::*;
use pool_core::PoolError;
use tokio_test::{assert_pending, assert_ready, task};

fn timed_out<T>(
    r: Result<T, PoolError<pool_testkit::FakeError>>,
) -> pool_core::TimeoutError<pool_testkit::FakeError> {
    match r {
        Err(PoolError::Timeout(t)) => t,
        Err(e) => panic!("expected a timeout, got {e}"),
        Ok(_) => panic!("expected a timeout, got a connection"),
    }
}

#[tokio::test(start_paused = true)]
async fn queued_callers_time_out_at_their_own_deadlines_in_arrival_order() {
    let (builder, backend) = fake(1, 1);
    let pool = builder.wait_timeout(Some(secs(5))).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let held = pool.get().await.unwrap();

    // Three callers arrive 1 s apart.
    let mut callers = Vec::new();
    for _ in 0..3 {
        let mut c = task::spawn(pool.get());
        assert_pending!(c.poll());
        callers.push(c);
        pass(secs(1)).await;
    }
    // t = 3 s: the first deadline is at 5 s.
    pass(ms(1990)).await;
    for c in &mut callers {
        assert_pending!(c.poll());
    }
    for (i, mut c) in callers.into_iter().enumerate() {
        pass(if i == 0 { ms(10) } else { secs(1) }).await;
        assert!(c.is_woken(), "caller {i} is woken by the pool's timer");
        let t = timed_out(assert_ready!(c.poll()));
        assert_eq!(t.waited, secs(5), "caller {i}");
        assert_eq!(
            t.status.waiting,
            2 - i,
            "caller {i}: the ones behind still wait"
        );
    }
    assert_eq!(pool.stats().requests_errors, 3);
    drop(held);
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn a_wait_timeout_shorter_than_the_housekeeping_interval_is_kept() {
    let (builder, _backend) = fake(1, 1);
    let pool = builder
        .wait_timeout(Some(ms(50)))
        .housekeeping_interval(secs(10))
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let _held = pool.get().await.unwrap();
    let mut c = task::spawn(pool.get());
    assert_pending!(c.poll());
    pass(ms(49)).await;
    assert_pending!(c.poll());
    pass(ms(1)).await;
    assert_eq!(timed_out(assert_ready!(c.poll())).waited, ms(50));
}

#[tokio::test(start_paused = true)]
async fn a_get_timeout_of_its_own_expires_behind_later_pool_deadlines() {
    let (builder, _backend) = fake(1, 1);
    let pool = builder.wait_timeout(Some(secs(30))).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let held = pool.get().await.unwrap();
    let mut pooled = task::spawn(pool.get());
    assert_pending!(pooled.poll());
    let mut own = task::spawn(pool.get_timeout(Some(ms(200))));
    assert_pending!(own.poll());
    let mut forever = task::spawn(pool.get_timeout(None));
    assert_pending!(forever.poll());

    pass(ms(200)).await;
    assert_eq!(timed_out(assert_ready!(own.poll())).waited, ms(200));
    assert_pending!(pooled.poll());
    assert_eq!(pool.status().waiting, 2);

    // The next connection goes to the oldest caller still waiting.
    drop(held);
    let conn = assert_ready!(pooled.poll()).unwrap();
    drop(conn);
    assert!(assert_ready!(forever.poll()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_connection_handed_over_at_the_deadline_is_not_lost() {
    let (builder, backend) = fake(1, 1);
    let pool = builder.wait_timeout(Some(secs(1))).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let held = pool.get().await.unwrap();
    let mut c = task::spawn(pool.get());
    assert_pending!(c.poll());
    // The timer expires the caller; the return a moment later goes back to idle.
    pass(secs(1)).await;
    drop(held);
    assert!(assert_ready!(c.poll()).is_err());
    let s = pool.status();
    assert_eq!((s.size, s.idle, s.waiting), (1, 1, 0));
    assert_accounted(&pool, &backend, 0);
}

/// On a running clock the hot path's stamps come from the kernel's coarse clock, which trails
/// the real one by up to about two ticks: a deadline set from such a stamp is padded by that
/// lag, so no wait ends before its timeout, by the pool's timer or by a caller's own. (Real time, 30 ms a
/// wait: this is the one mode a paused clock cannot show.)
#[tokio::test(flavor = "current_thread")]
async fn on_a_running_clock_no_wait_times_out_early() {
    let limit = ms(30);
    let (builder, _backend) = fake(1, 1);
    let pool = builder.wait_timeout(Some(limit)).build().unwrap();
    pool.wait_ready(secs(5)).await.unwrap();
    let held = pool.get().await.unwrap();
    for _ in 0..3 {
        let start = std::time::Instant::now();
        let t = timed_out(pool.get().await);
        let waited = start.elapsed();
        assert!(
            waited >= limit,
            "the pool's timer ended a wait after {waited:?} < {limit:?}"
        );
        assert!(t.waited >= limit, "the error reports {:?}", t.waited);

        let own = ms(20);
        let start = std::time::Instant::now();
        let _ = timed_out(pool.get_timeout(Some(own)).await);
        let waited = start.elapsed();
        assert!(
            waited >= own,
            "a caller's own timer ended its wait after {waited:?} < {own:?}"
        );
    }
    drop(held);
}

/// A timeout with nothing connecting says why (here: at max_size; backing off after
/// failures). The state's unit tests cover the other causes.
#[tokio::test(start_paused = true)]
async fn a_timeout_with_nothing_connecting_says_why() {
    let (builder, _backend) = fake(0, 1);
    let pool = builder.wait_timeout(Some(ms(100))).build().unwrap();
    let held = pool.get().await.unwrap();
    let err = pool.get().await.unwrap_err();
    let PoolError::Timeout(t) = &err else {
        panic!("{err}")
    };
    assert_eq!(t.stalled, Some(pool_core::Stalled::AtCeiling));
    assert!(
        err.to_string()
            .contains("nothing connecting: the pool is at max_size"),
        "{err}"
    );
    drop(held);

    let (builder, backend2) = fake(0, 1);
    backend2.set_connect_default(pool_testkit::Step::Transient);
    let pool = builder
        .wait_timeout(Some(ms(500)))
        .backoff_base(secs(1))
        .backoff_cap(secs(10))
        .build()
        .unwrap();
    let err = pool.get().await.unwrap_err();
    let PoolError::Timeout(t) = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(t.stalled, Some(pool_core::Stalled::BackingOff { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("backing off after failed connects"),
        "{err}"
    );
}
