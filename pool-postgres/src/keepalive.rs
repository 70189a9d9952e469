//! TCP keepalive settings.

use std::time::Duration;

/// TCP keepalive settings. The defaults (idle 60 s, interval 10 s, 6 probes) notice a dead
/// peer within about two minutes instead of Linux's two hours and eleven minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Keepalives {
    /// Idle time before the first probe (`TCP_KEEPIDLE`).
    pub idle: Duration,
    /// Time between probes (`TCP_KEEPINTVL`).
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`).
    pub retries: u32,
}

impl Keepalives {
    /// Keepalives with these settings (the struct is `#[non_exhaustive]`: build it here, or
    /// from [`Default`] and set fields).
    pub fn new(idle: Duration, interval: Duration, retries: u32) -> Self {
        Keepalives {
            idle,
            interval,
            retries,
        }
    }
}

impl Default for Keepalives {
    fn default() -> Self {
        Keepalives {
            idle: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            retries: 6,
        }
    }
}
