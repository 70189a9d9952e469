//! The housekeeping task: the idle sweep, idle shrink, lifetime retirement, the ceiling after
//! a resize, the leak watch, and the one timer that expires waiters.
//!
//! # Implementation details
//!
//! One task per pool, holding only a `Weak`. Each pass takes the state lock once
//! ([`State::housekeep`](crate::state::State::housekeep)), moves out what to close, log and
//! wake, and sleeps until the next deadline it knows of: the longest-idle connection's
//! `max_idle`, the next lifetime, the next leak report, or the head waiter's deadline,
//! whichever comes first, and at most `housekeeping_interval`. Waiters queued under the
//! pool-wide wait timeout have their deadlines in queue order, so this one timer serves the
//! whole queue; a waiter whose deadline is earlier than the task's next look wakes it
//! (`Signals::housekeeper`).
//!
//! **Idle sweep.** Each pass first asks `has_broken` of every idle connection, outside the
//! lock: the idle list is moved out ([`State::sweep_out`](crate::state::State::sweep_out)),
//! looked at, and put back in the same pass, without an `.await` in between
//! ([`State::sweep_in`](crate::state::State::sweep_in)). Broken ones are closed and counted
//! in `connections_lost`, so after a server loss the connector refills the floor before the
//! next caller comes. Callers that queue during the look are served by the connections put
//! back, not by new connects.
//!
//! A connection past its lifetime is closed at once when the pool is above its floor; at the
//! floor it stays until the connector has opened its replacement, so retirement never takes
//! the pool below `min_size` when the ceiling leaves room.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use crate::manager::Manager;
use crate::rt;
use crate::shared::Shared;
use crate::signals::Signals;
use crate::state::Chores;

pub(crate) async fn run<M: Manager>(pool: Weak<Shared<M>>, signals: Arc<Signals>) {
    let mut chores = Chores::new();
    loop {
        if signals.shutdown.load(Ordering::Acquire) {
            return;
        }
        let wake_at = {
            let Some(shared) = pool.upgrade() else { return };
            match shared.housekeep(&mut chores) {
                Some(at) => at,
                None => return,
            }
        };
        let _ = rt::timeout_at(wake_at, signals.housekeeper.notified()).await;
    }
}
