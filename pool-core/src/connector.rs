//! The background connector: the only place connections are opened.
//!
//! # Implementation details
//!
//! One task per pool, holding only a `Weak` to the shared state, so it never keeps a dropped
//! pool alive. It sleeps on `Signals::connector` and, when woken, asks the state whether to
//! connect ([`State::next_connect`](crate::inner::State::next_connect)): the demand is re-checked
//! just before every connect, so a burst that returns connections faster than a connect takes
//! opens nothing more. Each connect runs in its own task (at most `connect_concurrency` at once),
//! bounded by `connect_timeout`, and is never cancelled by a caller giving up. After a failure
//! the next attempt waits for a full-jitter exponential backoff.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use crate::error::ConnectError;
use crate::inner::{Next, Shared, Signals};
use crate::manager::Manager;
use crate::rt;

pub(crate) async fn run<M: Manager>(pool: Weak<Shared<M>>, signals: Arc<Signals>) {
    loop {
        if signals.shutdown.load(Ordering::Acquire) {
            return;
        }
        let next = {
            let Some(shared) = pool.upgrade() else { return };
            let mut st = shared.state.lock();
            if st.closed {
                return;
            }
            let next = st.next_connect(rt::now(), shared.config.connect_concurrency);
            if let Next::Connect = next {
                st.connecting += 1;
                drop(st);
                rt::try_spawn(connect_one(Arc::clone(&shared)));
                continue;
            }
            next
        };
        match next {
            Next::WaitUntil(t) => {
                let _ = tokio::time::timeout_at(t, signals.connector.notified()).await;
            }
            _ => signals.connector.notified().await,
        }
    }
}

async fn connect_one<M: Manager>(shared: Arc<Shared<M>>) {
    let started = rt::now();
    let limit = shared.config.connect_timeout;
    let result = match tokio::time::timeout(limit, shared.manager.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(ConnectError::Backend(Arc::new(e))),
        Err(_) => Err(ConnectError::TimedOut(limit)),
    };
    shared.connect_done(result, started);
}
