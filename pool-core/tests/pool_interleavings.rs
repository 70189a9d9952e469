//! Every ordering of return, cancel, timeout and close on the hand-off path, with the waiters
//! polled after every event or only at the end, checked for lost connections, broken
//! accounting, queue jumping and answers after close.
//!
//! pool-core has no lock-free parts of its own (one mutex guards all state), so instead of loom
//! this enumerates the orderings with futures polled by hand.
mod common;

use std::future::Future;
use std::task::Poll;

use common::*;
use pool_core::{Object, PoolError};
use pool_testkit::{FakeError, FakeManager};
use tokio_test::task;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    /// The held connection comes back.
    Return,
    /// The first waiter is cancelled.
    Cancel,
    /// Time passes beyond the first waiter's deadline.
    Timeout,
    /// The pool closes.
    Close,
}

const EVENTS: [Ev; 4] = [Ev::Return, Ev::Cancel, Ev::Timeout, Ev::Close];

/// Every ordering of every subset of `EVENTS`.
fn orderings() -> Vec<Vec<Ev>> {
    fn go(rest: &[Ev], prefix: &mut Vec<Ev>, out: &mut Vec<Vec<Ev>>) {
        out.push(prefix.clone());
        for (i, &e) in rest.iter().enumerate() {
            let mut r = rest.to_vec();
            r.remove(i);
            prefix.push(e);
            go(&r, prefix, out);
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    go(&EVENTS, &mut Vec::new(), &mut out);
    out
}

type Outcome = Option<Result<Object<FakeManager>, PoolError<FakeError>>>;

struct Ctx<'a> {
    what: &'a str,
    closed: bool,
    timed: bool,
    /// The connection came back before the pool closed.
    returned_before_close: bool,
}

/// Polls waiter `i` if it is still there; records and checks what it got.
fn poll_one<F>(w: &mut Option<task::Spawn<F>>, out: &mut Outcome, i: usize, ctx: &Ctx<'_>)
where
    F: Future<Output = Result<Object<FakeManager>, PoolError<FakeError>>>,
{
    let Some(t) = w.as_mut() else { return };
    if let Poll::Ready(r) = t.poll() {
        let what = ctx.what;
        match &r {
            Ok(_) if ctx.closed => assert!(
                ctx.returned_before_close,
                "{what}: waiter {i} served after close by a connection returned after close"
            ),
            Ok(_) => {}
            Err(PoolError::Closed) => assert!(ctx.closed, "{what}: Closed from an open pool"),
            Err(PoolError::Timeout(_)) => {
                assert!(i == 0 && ctx.timed, "{what}: waiter {i} timed out early")
            }
            Err(e) => panic!("{what}: unexpected {e:?}"),
        }
        *out = Some(r);
        *w = None;
    }
}

/// Polls both waiters, in order; the second never has the connection while the first still
/// waits (FIFO).
fn poll_both<F>(
    w1: &mut Option<task::Spawn<F>>,
    out1: &mut Outcome,
    w2: &mut Option<task::Spawn<F>>,
    out2: &mut Outcome,
    ctx: &Ctx<'_>,
) where
    F: Future<Output = Result<Object<FakeManager>, PoolError<FakeError>>>,
{
    poll_one(w1, out1, 0, ctx);
    poll_one(w2, out2, 1, ctx);
    if matches!(out2, Some(Ok(_))) {
        assert!(
            w1.is_none(),
            "{}: waiter 2 served while waiter 1 still waits",
            ctx.what
        );
    }
}

async fn scenario(seq: &[Ev], poll_each: bool, broken: bool) {
    let what = format!("{seq:?}, poll after each: {poll_each}, returned broken: {broken}");
    let (builder, backend) = fake(1, 1);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let mut held = Some(pool.get().await.unwrap());
    let mut w1 = Some(task::spawn(pool.get_timeout(Some(ms(100)))));
    let mut w2 = Some(task::spawn(pool.get_timeout(None)));
    assert!(w1.as_mut().unwrap().poll().is_pending());
    assert!(w2.as_mut().unwrap().poll().is_pending());
    let (mut out1, mut out2): (Outcome, Outcome) = (None, None);
    let (mut returned, mut closed, mut timed) = (false, false, false);
    let mut returned_before_close = false;

    for &ev in seq {
        match ev {
            Ev::Return => {
                let c = held.take().unwrap();
                if broken {
                    c.break_it();
                }
                drop(c);
                returned = true;
                returned_before_close |= !closed;
            }
            Ev::Cancel => {
                w1 = None;
            }
            Ev::Timeout => {
                tokio::time::advance(ms(150)).await;
                timed = true;
            }
            Ev::Close => {
                pool.close();
                closed = true;
            }
        }
        settle().await;
        if poll_each {
            let ctx = Ctx {
                what: &what,
                closed,
                timed,
                returned_before_close,
            };
            poll_both(&mut w1, &mut out1, &mut w2, &mut out2, &ctx);
        }
        let s = pool.status();
        assert_eq!(s.size, s.idle + s.in_use, "{what}: {s:?}");
        assert_eq!(backend.live(), s.size, "{what}: backend live vs size {s:?}");
    }
    settle().await;
    let ctx = Ctx {
        what: &what,
        closed,
        timed,
        returned_before_close,
    };
    poll_both(&mut w1, &mut out1, &mut w2, &mut out2, &ctx);
    let served = [&out1, &out2]
        .iter()
        .filter(|o| matches!(o, Some(Ok(_))))
        .count();
    if returned && !closed {
        // The connection (or its replacement, if it came back broken) reached exactly one
        // waiter: the second never leaves on its own.
        assert_eq!(served, 1, "{what}: {:?}", pool.status());
    }
    if !returned {
        assert_eq!(served, 0, "{what}: served without a return");
    }
    // Everything goes back.
    drop((out1, out2, w1, w2, held));
    settle().await;
    let s = pool.status();
    assert_eq!(s.waiting, 0, "{what}: {s:?}");
    assert_eq!(s.in_use, 0, "{what}: {s:?}");
    assert_eq!(backend.live(), s.size, "{what}: {s:?}");
    if closed {
        assert_eq!(s.size, 0, "{what}: a closed pool keeps connections: {s:?}");
    } else {
        assert_eq!(s.size, 1, "{what}: the floor of 1 is kept: {s:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn every_ordering_of_return_cancel_timeout_and_close_keeps_every_invariant() {
    let orders = orderings();
    assert_eq!(orders.len(), 65);
    let mut cases = 0;
    for seq in &orders {
        for poll_each in [true, false] {
            for broken in [false, true] {
                scenario(seq, poll_each, broken).await;
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 260);
}
