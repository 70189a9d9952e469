//! What a manager's connections tell each other: the suspect epoch after a backend went away,
//! the demoted servers, the counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the manager's connections tell each other.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Bumped when a pooled connection sees its backend go away: connections checked in an
    /// older epoch are doubted.
    pub(crate) suspect_epoch: AtomicU64,
    /// Opening order of connections.
    pub(crate) next_seq: AtomicU64,
    /// Demoted servers: the newest connection known to have been on the server when it was
    /// found read-only; it and every older connection to that server are broken.
    pub(crate) demoted: Mutex<Vec<(Arc<str>, u64)>>,
    pub(crate) demotions: AtomicU64,
    pub(crate) auth_retries: AtomicU64,
    /// The connection budget has been read (once, at the first connect).
    pub(crate) budget_read: AtomicBool,
    /// The hint about prepared statements behind a transaction pooler was logged.
    pub(crate) prepared_hint: AtomicBool,
}

impl Health {
    pub(crate) fn demote(&self, server: &Arc<str>, seq: u64) {
        let mut d = self.demoted.lock().unwrap_or_else(|e| e.into_inner());
        match d.iter_mut().find(|(s, _)| s == server) {
            Some((_, newest)) => *newest = (*newest).max(seq),
            None => d.push((Arc::clone(server), seq)),
        }
        self.demotions.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn is_demoted(&self, server: &Arc<str>, seq: u64) -> bool {
        if self.demotions.load(Ordering::Acquire) == 0 {
            return false;
        }
        let d = self.demoted.lock().unwrap_or_else(|e| e.into_inner());
        d.iter().any(|(s, newest)| s == server && seq <= *newest)
    }
}
