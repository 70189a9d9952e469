//! Model-based test: random operation sequences against the pool, checked against a reference
//! model after every step.
//!
//! Cases: 64 by default; set `PROPTEST_CASES` for more. Failures are kept in
//! `proptest-regressions/pool_model.txt` and replayed first.
mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use common::*;
use pool_core::{Object, Pool, PoolError};
use pool_testkit::{FakeError, FakeHandle, FakeManager, Step};
use proptest::prelude::*;
use tokio_test::task::{self, Spawn};

#[derive(Debug, Clone)]
enum Op {
    /// A new caller, with or without a wait timeout (ms).
    StartGet(Option<u16>),
    /// Cancel (drop) the i-th pending caller.
    Cancel(usize),
    /// Return the i-th held connection.
    Return(usize),
    /// Break the i-th held connection, then return it.
    Break(usize),
    /// Discard the i-th held connection.
    Discard(usize),
    /// Let time pass (ms).
    Advance(u16),
    /// The outcome of the next connect.
    Connect(Step),
    /// The outcome of the next check.
    Check(Step),
    Resize(usize, usize),
    Close,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Ok),
        2 => Just(Step::Transient),
        1 => Just(Step::Fatal),
        2 => (1u64..300).prop_map(|ms| Step::Slow(Duration::from_millis(ms))),
        1 => Just(Step::Never),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::option::of(1u16..2000).prop_map(Op::StartGet),
        1 => any::<usize>().prop_map(Op::Cancel),
        5 => any::<usize>().prop_map(Op::Return),
        1 => any::<usize>().prop_map(Op::Break),
        1 => any::<usize>().prop_map(Op::Discard),
        4 => (0u16..1500).prop_map(Op::Advance),
        2 => step().prop_map(Op::Connect),
        2 => prop_oneof![Just(Step::Ok), Just(Step::Transient)].prop_map(Op::Check),
        1 => (0usize..4, 1usize..6).prop_map(|(a, b)| (a.min(b), b)).prop_map(|(a, b)| Op::Resize(a, b)),
        1 => Just(Op::Close).prop_filter("rare", |_| true),
    ]
}

type GetFut<'a> =
    Pin<Box<dyn Future<Output = Result<Object<FakeManager>, PoolError<FakeError>>> + 'a>>;

struct Caller<'a> {
    seq: u64,
    fut: Spawn<GetFut<'a>>,
    deadline: Option<tokio::time::Instant>,
}

/// The reference model: what the pool must look like.
struct Model {
    min: usize,
    max: usize,
    closed: bool,
    fatal_scripted: bool,
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (manager, backend) = FakeManager::new();
    let pool = Pool::builder(manager)
        .min_size(1)
        .max_size(3)
        .check(pool_core::CheckPolicy::Always)
        .connect_timeout(secs(1))
        .wait_timeout(None)
        .max_idle(Some(secs(5)))
        .max_lifetime(Some(secs(20)))
        .build()
        .unwrap();
    let mut model = Model {
        min: 1,
        max: 3,
        closed: false,
        fatal_scripted: false,
    };
    let mut callers: VecDeque<Caller<'_>> = VecDeque::new();
    let mut held: Vec<Object<FakeManager>> = Vec::new();
    let mut seq = 0u64;

    for op in ops {
        match op {
            Op::StartGet(t) => {
                let timeout = t.map(|ms| Duration::from_millis(u64::from(ms)));
                let fut: GetFut<'_> = Box::pin(pool.get_timeout(timeout));
                seq += 1;
                let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
                callers.push_back(Caller {
                    seq,
                    fut: task::spawn(fut),
                    deadline,
                });
            }
            Op::Cancel(i) if !callers.is_empty() => {
                let i = i % callers.len();
                drop(callers.remove(i));
            }
            Op::Return(i) if !held.is_empty() => {
                drop(held.swap_remove(i % held.len()));
            }
            Op::Break(i) if !held.is_empty() => {
                let c = held.swap_remove(i % held.len());
                c.break_it();
                drop(c);
            }
            Op::Discard(i) if !held.is_empty() => {
                Object::discard(held.swap_remove(i % held.len()));
            }
            Op::Advance(ms) => {
                tokio::time::advance(Duration::from_millis(u64::from(ms))).await;
            }
            Op::Connect(s) => {
                model.fatal_scripted |= s == Step::Fatal;
                backend.script_connect([s]);
            }
            Op::Check(s) => backend.script_check([s]),
            Op::Resize(min, max) => {
                pool.resize(min, max).unwrap();
                model.min = min;
                model.max = max;
            }
            Op::Close => {
                pool.close();
                model.closed = true;
            }
            _ => {}
        }
        settle().await;
        poll_all(&pool, &mut callers, &mut held, &model)?;
        settle().await;
        poll_all(&pool, &mut callers, &mut held, &model)?;
        check(&pool, &backend, &model, callers.len(), held.len())?;
    }

    // Recovery: the backend heals, everything is returned, and every caller left is served.
    backend.set_connect_default(Step::Ok);
    backend.set_check_default(Step::Ok);
    held.clear();
    for _ in 0..100 {
        tokio::time::advance(ms(100)).await;
        settle().await;
        poll_all(&pool, &mut callers, &mut held, &model)?;
        held.clear();
    }
    prop_assert!(
        callers.is_empty(),
        "callers never served: {}; {:?}",
        callers.len(),
        pool.status()
    );
    check(&pool, &backend, &model, 0, 0)?;
    pool.close_and_wait().await;
    prop_assert_eq!(backend.live(), 0);
    Ok(())
}

fn poll_all<'a>(
    pool: &Pool<FakeManager>,
    callers: &mut VecDeque<Caller<'a>>,
    held: &mut Vec<Object<FakeManager>>,
    model: &Model,
) -> Result<(), TestCaseError> {
    let lost_before = pool.stats().connections_lost;
    let mut served: Vec<u64> = Vec::new();
    let mut i = 0;
    while i < callers.len() {
        match callers[i].fut.poll() {
            Poll::Pending => i += 1,
            Poll::Ready(r) => {
                let c = callers.remove(i).unwrap();
                match r {
                    Ok(obj) => {
                        served.push(c.seq);
                        held.push(obj);
                    }
                    Err(PoolError::Timeout(_)) => {
                        let due = c.deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                        prop_assert!(due, "caller {} timed out before its deadline", c.seq);
                    }
                    Err(PoolError::Closed) => {
                        prop_assert!(model.closed, "Closed from an open pool")
                    }
                    Err(PoolError::Backend(_)) => {
                        prop_assert!(model.fatal_scripted, "Backend error with no fatal connect")
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
                }
            }
        }
    }
    // FIFO: nobody was served while an older caller is still waiting. Connections are handed
    // over in queue order; only a failed health check in this round (the older caller's
    // connection was dead, and it went back to the head of the queue) lets a younger caller
    // finish first.
    let check_failed = pool.stats().connections_lost > lost_before;
    if check_failed {
        return Ok(());
    }
    if let (Some(&newest), Some(oldest_waiting)) =
        (served.iter().max(), callers.iter().map(|c| c.seq).min())
    {
        prop_assert!(
            newest < oldest_waiting,
            "caller {newest} was served while older caller {oldest_waiting} still waits"
        );
    }
    Ok(())
}

fn check(
    pool: &Pool<FakeManager>,
    backend: &FakeHandle,
    model: &Model,
    pending: usize,
    held: usize,
) -> Result<(), TestCaseError> {
    let s = pool.status();
    prop_assert_eq!(s.size, s.idle + s.in_use, "{:?}", s);
    prop_assert_eq!(s.in_use, held, "in use vs held: {:?}", s);
    prop_assert_eq!(s.waiting, pending, "waiting vs pending callers: {:?}", s);
    prop_assert_eq!(backend.live(), s.size, "backend live vs size: {:?}", s);
    prop_assert_eq!((s.min_size, s.max_size), (model.min, model.max));
    prop_assert!(s.size <= model.max.max(held), "over the ceiling: {:?}", s);
    if s.waiting > 0 {
        prop_assert_eq!(
            s.idle,
            0,
            "a caller waits while a connection is idle: {:?}",
            s
        );
    }
    if model.closed {
        prop_assert_eq!(s.idle, 0, "idle connections in a closed pool: {:?}", s);
        prop_assert_eq!(s.waiting, 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/pool_model.txt"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn pool_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(ops))?;
    }
}
