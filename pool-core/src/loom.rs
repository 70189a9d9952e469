//! The model checker on the hand-off (`--cfg pool_loom`; `.ci/loom` runs it).
//!
//! Under loom, [`crate::sync`]'s lock is loom's mutex: every acquisition of the pool's lock and
//! of a waiter's seat is a point where loom may switch threads, and `loom::model` runs each
//! test once for every interleaving of those points (exhaustively: these models are small
//! enough to need no preemption bound). They drive the real engine, [`Shared`] over a trivial
//! manager, through the paths that race:
//!
//! - the seat hand-off: a return pops the oldest waiter under the pool's lock and fills its
//!   seat after releasing it, while the waiter leaves (cancelled) between the pop and the
//!   fill, or takes what it was handed;
//! - the connect approval: a connect approved and settled by the connector while the caller
//!   it was for leaves;
//! - two returns racing a leaving waiter (three threads).
//!
//! After every interleaving the pool's accounts must hold: every connection is idle or in a
//! caller's hands, none is lost in a seat, nothing is counted as connecting or waiting.

use std::sync::Arc;
use std::task::Waker;

use loom::thread;

use crate::config::Config;
use crate::conn::Conn;
use crate::hooks::Hooks;
use crate::manager::Manager;
use crate::seats::Seat;
use crate::shared::{Came, Shared};
use crate::state::{Admit, Arrival, Handed, Next, Outcome};

/// A backend whose connects are numbers.
#[derive(Debug)]
struct Numbers;

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl Manager for Numbers {
    type Connection = u32;
    type Error = Never;
    async fn connect(&self) -> Result<u32, Never> {
        Ok(0)
    }
    async fn check(&self, _conn: &mut u32) -> Result<(), Never> {
        Ok(())
    }
}

type Pool = Arc<Shared<Numbers>>;
type WaitSeat = Seat<Handed<u32, Never>>;

/// A pool whose floor is `min` (the connects `open` makes are for the floor).
fn pool(min: usize, max: usize) -> Pool {
    let config = Config {
        min_size: min,
        max_size: max,
        max_lifetime: None,
        max_idle: None,
        ..Config::default()
    };
    Arc::new(Shared::new(
        Numbers,
        config,
        Hooks::default(),
        Arc::from("loom"),
    ))
}

/// Opens one connection through the real approval path (the connector's `next_connect` and
/// `connect_done`), numbered `raw`.
fn open(pool: &Pool, raw: u32) {
    let Some(Next::Connect(approval)) = pool.next_connect() else {
        panic!("no connect approved: {:?}", pool.status())
    };
    pool.connect_done(approval, Ok(raw), crate::clock::now());
}

/// A new caller that finds nothing idle and queues: its seat and ticket.
fn queue(pool: &Pool) -> (WaitSeat, u64) {
    let mut since = None;
    match pool.come(
        Arrival::New,
        None,
        &mut since,
        |_| None,
        || Seat::new(Waker::noop().clone()),
    ) {
        Came::Admitted(Admit::Queued { queued, .. }, _) => (queued.seat, queued.ticket),
        _ => panic!("the caller should queue: {:?}", pool.status()),
    }
}

fn take(pool: &Pool) -> Conn<u32> {
    pool.take_idle().expect("an idle connection")
}

/// The accounts after the threads are done: `idle` idle connections, none in use, nobody
/// waiting or connecting.
fn settled(pool: &Pool, size: usize) {
    let s = pool.status();
    assert_eq!(
        (s.size, s.idle, s.in_use, s.waiting, s.connecting),
        (size, size, 0, 0, 0),
        "{s:?}"
    );
}

/// `loom::model`, counting the interleavings it ran: each test asserts it saw more than one
/// and prints how many (`--nocapture`).
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    loom::model(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let runs = runs.load(Ordering::Relaxed);
    println!("{name}: {runs} interleavings");
    assert!(runs > 1, "{name}: loom explored a single interleaving");
}

#[test]
fn a_return_racing_a_cancel_loses_nothing() {
    model("a_return_racing_a_cancel_loses_nothing", || {
        let pool = pool(1, 1);
        open(&pool, 1);
        let conn = take(&pool);
        let (seat, ticket) = queue(&pool);
        let watched = seat.share();
        let returner = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.release(conn, Outcome::Healthy))
        };
        let leaver = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.leave(&seat, ticket))
        };
        returner.join().unwrap();
        leaver.join().unwrap();
        assert!(
            watched.take().is_none(),
            "nothing left in a seat nobody waits in"
        );
        settled(&pool, 1);
    });
}

#[test]
fn a_waiter_takes_what_it_was_handed_or_leaves_and_nothing_is_lost() {
    model(
        "a_waiter_takes_what_it_was_handed_or_leaves_and_nothing_is_lost",
        || {
            let pool = pool(1, 1);
            open(&pool, 1);
            let conn = take(&pool);
            let (seat, ticket) = queue(&pool);
            let returner = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || pool.release(conn, Outcome::Healthy))
            };
            let waiter = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || match seat.poll(Waker::noop()) {
                    // Served: it uses the connection and gives it back.
                    Some(Ok(conn)) => {
                        assert_eq!(conn.raw, 1);
                        pool.release(conn, Outcome::Healthy);
                    }
                    Some(Err(e)) => panic!("{e}"),
                    // Not yet: it gives up (cancelled).
                    None => pool.leave(&seat, ticket),
                })
            };
            returner.join().unwrap();
            waiter.join().unwrap();
            settled(&pool, 1);
        },
    );
}

#[test]
fn a_connect_settling_while_its_caller_leaves_loses_nothing() {
    model(
        "a_connect_settling_while_its_caller_leaves_loses_nothing",
        || {
            let pool = pool(0, 1);
            let (seat, ticket) = queue(&pool);
            let connector = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || match pool.next_connect() {
                    Some(Next::Connect(approval)) => {
                        pool.connect_done(approval, Ok(7), crate::clock::now());
                    }
                    // The caller left first: no demand, no connect.
                    Some(Next::Sleep) => {}
                    other => panic!("unexpected: {:?}", other.map(|_| ())),
                })
            };
            let leaver = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || pool.leave(&seat, ticket))
            };
            connector.join().unwrap();
            leaver.join().unwrap();
            let s = pool.status();
            assert_eq!((s.waiting, s.connecting, s.in_use), (0, 0, 0), "{s:?}");
            assert!(s.size <= 1 && s.idle == s.size, "{s:?}");
        },
    );
}

#[test]
fn two_returns_racing_a_leaving_waiter_lose_nothing() {
    model("two_returns_racing_a_leaving_waiter_lose_nothing", || {
        let pool = pool(2, 2);
        open(&pool, 1);
        open(&pool, 2);
        let (a, b) = (take(&pool), take(&pool));
        let (seat, ticket) = queue(&pool);
        let watched = seat.share();
        let threads = [
            {
                let pool = Arc::clone(&pool);
                thread::spawn(move || pool.release(a, Outcome::Healthy))
            },
            {
                let pool = Arc::clone(&pool);
                thread::spawn(move || pool.release(b, Outcome::Healthy))
            },
            {
                let pool = Arc::clone(&pool);
                thread::spawn(move || pool.leave(&seat, ticket))
            },
        ];
        for t in threads {
            t.join().unwrap();
        }
        assert!(watched.take().is_none());
        settled(&pool, 2);
    });
}
