//! What workloads F and G measure: one request and its response through a pool (or a raw
//! client) to a real server.

use std::future::Future;

pub trait Service: Clone + Send + Sync + 'static {
    /// One call: a checkout, the request, its response, the return.
    fn call(&self) -> impl Future<Output = Result<(), String>> + Send;
}
