//! The housekeeping task: idle shrink, lifetime retirement, and the ceiling after a resize.
//!
//! # Implementation details
//!
//! One task per pool, holding only a `Weak`. Each pass takes the state lock once, removes the
//! connections to close (closing them after the lock is released), and sleeps until the next
//! deadline it knows of, at most `housekeeping_interval`. Idle connections sit in return order,
//! so the longest idle is at the front: idle shrink pops from the front while the pool is above
//! `min_size`. A connection past its lifetime is closed at once when the pool is above its floor;
//! at the floor it stays until the connector has opened its replacement (`retire_pending`), so
//! retirement never takes the pool below `min_size` when the ceiling leaves room.

use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::config::Config;
use crate::inner::{Conn, Shared, Signals, State};
use crate::manager::Manager;
use crate::rt::{self, Instant};

pub(crate) async fn run<M: Manager>(pool: Weak<Shared<M>>, signals: Arc<Signals>) {
    let mut closing = Vec::new();
    let mut leaks = Vec::new();
    loop {
        if signals.shutdown.load(Ordering::Acquire) {
            return;
        }
        let wake_at = {
            let Some(shared) = pool.upgrade() else { return };
            let now = rt::now();
            let (next, wake_connector) = {
                let mut st = shared.state.lock();
                if st.closed {
                    return;
                }
                let next = reap(&mut st, &shared.config, now, &mut closing);
                let next = earliest(next, watch_leaks(&mut st, &shared.config, now, &mut leaks));
                (next, st.wants_connect())
            };
            if !closing.is_empty() {
                tracing::debug!(target: "pool_core", closed = closing.len(), "housekeeping closed idle or expired connections");
                closing.clear();
                shared.after_close(wake_connector);
            } else if wake_connector {
                shared.signals.connector.notify_one();
            }
            for (caller, held) in leaks.drain(..) {
                tracing::warn!(
                    target: "pool_core",
                    checked_out_at = %caller,
                    held_ms = crate::stats::millis(held),
                    leak_threshold_ms = shared.config.leak_threshold.map_or(0, crate::stats::millis),
                    "possible connection leak: checked out longer than the leak threshold"
                );
            }
            let cap = now + shared.config.housekeeping_interval;
            next.map_or(cap, |n| n.min(cap))
        };
        let _ = tokio::time::timeout_at(wake_at, signals.housekeeper.notified()).await;
    }
}

/// One pass: moves the connections to close into `out`; returns the next deadline.
pub(crate) fn reap<C, E>(
    st: &mut State<C, E>,
    config: &Config,
    now: Instant,
    out: &mut Vec<Conn<C>>,
) -> Option<Instant> {
    let before = out.len();
    // Above the ceiling (after a resize): close the longest idle first.
    while st.size - (out.len() - before) > st.max_size {
        match st.idle.pop_front() {
            Some(c) => out.push(c),
            None => break,
        }
    }
    // Idle shrink, down to the floor.
    if let Some(max_idle) = config.max_idle {
        while st.size - (out.len() - before) > st.min_size {
            match st.idle.front() {
                Some(c) if c.idle_since + max_idle <= now => out.extend(st.idle.pop_front()),
                _ => break,
            }
        }
    }
    // Lifetime: close expired ones while above the floor; keep the rest for replacement.
    let mut pending = 0;
    let mut i = 0;
    while i < st.idle.len() {
        if st.idle[i].expires.is_some_and(|t| t <= now) {
            let open = st.size - (out.len() - before);
            // Keep it only while a replacement can still be opened below the ceiling.
            let room = open + st.connecting + pending < st.max_size;
            if open > st.min_size || !room {
                out.extend(st.idle.remove(i));
                continue;
            }
            pending += 1;
        }
        i += 1;
    }
    st.retire_pending = pending;
    let closed = out.len() - before;
    st.size -= closed;
    st.stats.connections_closed += closed as u64;

    let mut next: Option<Instant> = None;
    let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
    if let (Some(max_idle), Some(front)) = (config.max_idle, st.idle.front()) {
        if st.size > st.min_size {
            consider(front.idle_since + max_idle);
        }
    }
    for c in &st.idle {
        // Expired ones still here wait for their replacement, which wakes this task.
        if let Some(t) = c.expires.filter(|&t| t > now) {
            consider(t);
        }
    }
    next
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Marks checkouts held past the leak threshold (each once) into `out`; returns when the next
/// one will be due.
pub(crate) fn watch_leaks<C, E>(
    st: &mut State<C, E>,
    config: &Config,
    now: Instant,
    out: &mut Vec<(&'static Location<'static>, Duration)>,
) -> Option<Instant> {
    let threshold = config.leak_threshold?;
    if st.checkouts.len() == 0 {
        return None;
    }
    let mut next: Option<Instant> = None;
    for c in st.checkouts.iter_mut().filter(|c| !c.warned) {
        let due = c.since + threshold;
        if due <= now {
            c.warned = true;
            out.push((c.caller, now.saturating_duration_since(c.since)));
        } else {
            next = Some(next.map_or(due, |n| n.min(due)));
        }
    }
    next
}
