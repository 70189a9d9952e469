//! What the state's unit tests share: a waker that counts, a backend error, a state.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Duration;

use super::*;

#[derive(Debug)]
pub(super) struct Boom;
impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("boom")
    }
}

pub(super) struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

pub(super) fn waker() -> Waker {
    Waker::from(Arc::new(Count(AtomicUsize::new(0))))
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(super) type S = State<u32, Boom>;

pub(super) fn state(min: usize, max: usize) -> S {
    let config = Config {
        min_size: min,
        max_size: max,
        max_lifetime: None,
        ..Config::default()
    };
    State::new(&config, 7)
}

/// Approves and settles one successful connect, raising the floor for it if nothing
/// else asks for one.
pub(super) fn open(st: &mut S, raw: u32, now: Instant) -> After<u32, Boom> {
    let s = st.status();
    if !st.wants_connect() {
        let _ = st.resize(s.size + 1, s.max_size);
    }
    let Next::Connect(a) = st.approve_connect(now) else {
        panic!("no connect approved: {:?}", st.status())
    };
    let _ = st.resize(s.min_size, s.max_size);
    let (after, failure) = st.settle_connect(a, Ok(raw), now, now);
    assert!(failure.is_none(), "a successful connect");
    after
}

/// A pool of one: its connection checked out, and a caller queued for it.
pub(super) fn one_out_one_queued(t0: Instant) -> (S, Conn<u32>, Queued<Handed<u32, Boom>>) {
    let mut st = state(0, 1);
    let _ = open(&mut st, 1, t0);
    let conn = take_idle(&mut st, t0);
    let Admit::Queued { queued, .. } = st.admit(Arrival::New, t0, || Seat::new(waker()), None)
    else {
        panic!("should queue")
    };
    (st, conn, queued)
}

pub(super) fn take_idle(st: &mut S, now: Instant) -> Conn<u32> {
    match st.admit(Arrival::New, now, || Seat::new(waker()), None) {
        Admit::Idle(c) => c,
        _ => panic!("no idle connection: {:?}", st.status()),
    }
}
