#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod fake;
pub mod model;
mod prometheus;
mod proxy;
mod support;

pub use fake::{FakeConn, FakeError, FakeHandle, FakeManager, Step};
pub use prometheus::{scrape, serve_metrics};
pub use proxy::{Fault, FaultProxy};
pub use support::{Capture, Rng};
