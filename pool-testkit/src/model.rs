//! The reference model the pool is checked against, shared by the model-based proptest
//! (`pool-core/tests/pool_model.rs`) and the `pool_ops` fuzz target.
//!
//! [`run`] plays a sequence of [`Op`]s against a pool on the fake backend (under a paused
//! Tokio clock, current-thread runtime), polling every caller by hand after each step, and
//! checks after every step: sizes add up, the backend's open connections are the pool's, no
//! caller waits while a connection is idle, the ceiling holds, callers are served in arrival
//! order (except where a failed health check sent an older caller back), errors are ones the
//! model allows, and at the end every caller is served and every connection closes.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use pool_core::{Object, Pool, PoolError};
use tokio_test::task::{self, Spawn};

use crate::fake::{FakeError, FakeHandle, FakeManager, Step};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What the pool and the backend show from outside; unchanged over a few scheduler ticks means
/// every task woken by the last step has run.
#[derive(PartialEq, Eq)]
struct Fingerprint {
    status: pool_core::Status,
    stats: pool_core::Stats,
    backend: (u64, u64, u64, u64, usize),
}

fn fingerprint(pool: &Pool<FakeManager>, backend: &FakeHandle) -> Fingerprint {
    Fingerprint {
        status: pool.status(),
        stats: pool.stats(),
        backend: (
            backend.connect_attempts(),
            backend.connects(),
            backend.checks(),
            backend.closed(),
            backend.live(),
        ),
    }
}

/// Lets spawned tasks run without moving the (paused) clock, until nothing visible has changed
/// for `QUIET_TICKS` scheduler ticks in a row (each tick runs every task that was woken),
/// or at most 50 ticks.
async fn settle(pool: &Pool<FakeManager>, backend: &FakeHandle) {
    const QUIET_TICKS: u32 = 3;
    let mut last = fingerprint(pool, backend);
    let mut quiet = 0;
    for _ in 0..50 {
        tokio::task::yield_now().await;
        let now = fingerprint(pool, backend);
        if now == last {
            quiet += 1;
            if quiet == QUIET_TICKS {
                return;
            }
        } else {
            quiet = 0;
            last = now;
        }
    }
}

/// A model violation, described.
pub type Violation = String;

macro_rules! ensure_eq {
    ($a:expr, $b:expr $(,)?) => {
        ensure_eq!($a, $b, "")
    };
    ($a:expr, $b:expr, $($fmt:tt)+) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err(format!("{} != {} ({:?} vs {:?}): {}", stringify!($a), stringify!($b), a, b, format!($($fmt)+)));
        }
    }};
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// The recovery at the end of a run lets up to `RECOVERY_STEPS` x `RECOVERY_STEP` pass.
const RECOVERY_STEPS: usize = 20;
const RECOVERY_STEP: Duration = Duration::from_millis(500);

/// The wait timeout the model's pool is built with.
pub const POOL_WAIT: Duration = Duration::from_millis(700);

/// One step of a model run.
#[derive(Debug, Clone)]
pub enum Op {
    /// A new caller with a timeout of its own (ms; `get_timeout`), or none (waits until
    /// served).
    StartGet(Option<u16>),
    /// A new caller under the pool's own wait timeout ([`POOL_WAIT`]), expired by the
    /// pool-wide timer rather than one of its own.
    Get,
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
    /// `resize(min, max)`; invalid pairs must be rejected and change nothing.
    Resize(usize, usize),
    /// `close()`.
    Close,
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

thread_local! {
    /// One current-thread runtime with the clock paused, reused by every run on this thread:
    /// building a runtime costs more than a short run. Time only: without an I/O driver, a
    /// scheduler tick makes no system call.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
}

/// [`run`] on this thread's paused-clock runtime (built once, reused across calls).
///
/// # Errors
/// The first violation found.
pub fn run_blocking(ops: Vec<Op>) -> Result<(), Violation> {
    RUNTIME.with(|rt| {
        rt.block_on(async {
            run(ops).await?;
            // The pool is gone: its background tasks exit once they next run.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            let alive = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
            ensure!(
                alive == 0,
                "{alive} tasks still alive after the pool was closed and dropped"
            );
            Ok(())
        })
    })
}

/// Plays `ops` against a fresh pool and checks the model after every step.
///
/// # Errors
/// The first violation found.
pub async fn run(ops: Vec<Op>) -> Result<(), Violation> {
    let (manager, backend) = FakeManager::new();
    let pool = Pool::builder(manager)
        .min_size(1)
        .max_size(3)
        .check(pool_core::CheckPolicy::Always)
        .connect_timeout(secs(1))
        .wait_timeout(Some(POOL_WAIT))
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
            Op::Get => {
                let fut: GetFut<'_> = Box::pin(pool.get());
                seq += 1;
                callers.push_back(Caller {
                    seq,
                    fut: task::spawn(fut),
                    deadline: Some(tokio::time::Instant::now() + POOL_WAIT),
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
            Op::Resize(min, max) => match pool.resize(min, max) {
                Ok(()) => {
                    ensure!(min <= max && max >= 1, "resize({min}, {max}) was accepted");
                    model.min = min;
                    model.max = max;
                }
                Err(e) => ensure!(
                    min > max || max == 0,
                    "resize({min}, {max}) was rejected: {e}"
                ),
            },
            Op::Close => {
                pool.close();
                model.closed = true;
            }
            _ => {}
        }
        settle(&pool, &backend).await;
        poll_all(&pool, &mut callers, &mut held, &model)?;
        settle(&pool, &backend).await;
        poll_all(&pool, &mut callers, &mut held, &model)?;
        check(&pool, &backend, &model, callers.len(), held.len())?;
        // Every timer fires on time: nobody is still waiting a millisecond past its deadline.
        let now = tokio::time::Instant::now();
        if let Some(c) = callers
            .iter()
            .find(|c| c.deadline.is_some_and(|d| now >= d + ms(1)))
        {
            return Err(format!(
                "caller {} still waits {:?} past its deadline",
                c.seq,
                now - c.deadline.unwrap_or(now)
            ));
        }
    }

    // Recovery: the backend heals, everything is returned, and every caller left is served.
    backend.clear_scripts();
    backend.set_connect_default(Step::Ok);
    backend.set_check_default(Step::Ok);
    held.clear();
    // Time passes in large steps (a backoff is at most 2 s, a connect times out after 1 s);
    // the recovery ends as soon as every caller is served.
    for _ in 0..RECOVERY_STEPS {
        // Serve and return until no caller is served without time passing.
        loop {
            settle(&pool, &backend).await;
            let before = callers.len();
            poll_all(&pool, &mut callers, &mut held, &model)?;
            held.clear();
            if callers.is_empty() || callers.len() == before {
                break;
            }
        }
        if callers.is_empty() {
            break;
        }
        tokio::time::advance(RECOVERY_STEP).await;
    }
    settle(&pool, &backend).await;
    ensure!(
        callers.is_empty(),
        "callers never served: {}; {:?}",
        callers.len(),
        pool.status()
    );
    check(&pool, &backend, &model, 0, 0)?;
    pool.close_and_wait().await;
    ensure_eq!(backend.live(), 0);
    Ok(())
}

fn poll_all<'a>(
    pool: &Pool<FakeManager>,
    callers: &mut VecDeque<Caller<'a>>,
    held: &mut Vec<Object<FakeManager>>,
    model: &Model,
) -> Result<(), Violation> {
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
                        ensure!(due, "caller {} timed out before its deadline", c.seq);
                    }
                    Err(PoolError::Closed) => {
                        ensure!(model.closed, "Closed from an open pool")
                    }
                    Err(PoolError::Backend(_)) => {
                        ensure!(model.fatal_scripted, "Backend error with no fatal connect")
                    }
                    Err(e) => return Err(format!("unexpected {e:?}")),
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
        ensure!(
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
) -> Result<(), Violation> {
    let s = pool.status();
    ensure_eq!(s.size, s.idle + s.in_use, "{:?}", s);
    ensure_eq!(s.in_use, held, "in use vs held: {:?}", s);
    ensure_eq!(s.waiting, pending, "waiting vs pending callers: {:?}", s);
    ensure_eq!(backend.live(), s.size, "backend live vs size: {:?}", s);
    ensure_eq!((s.min_size, s.max_size), (model.min, model.max));
    ensure!(s.size <= model.max.max(held), "over the ceiling: {:?}", s);
    if s.waiting > 0 {
        ensure_eq!(
            s.idle,
            0,
            "a caller waits while a connection is idle: {:?}",
            s
        );
    }
    if model.closed {
        ensure_eq!(s.idle, 0, "idle connections in a closed pool: {:?}", s);
        ensure_eq!(s.waiting, 0);
    }
    Ok(())
}
