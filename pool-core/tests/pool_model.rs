//! Model-based test: random operation sequences against the pool, checked against a reference
//! model after every step.
//!
//! Cases: 512 by default; set `PROPTEST_CASES` for more. Failures are kept in
//! `proptest-regressions/pool_model.txt` and replayed first.
use std::time::Duration;

use pool_testkit::model::{run_blocking, Op};
use pool_testkit::Step;
use proptest::prelude::*;

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Ok),
        2 => Just(Step::Transient),
        1 => Just(Step::Fatal),
        2 => (1u64..300).prop_map(|ms| Step::Slow(Duration::from_millis(ms))),
        1 => Just(Step::Never),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::option::of(1u16..2000).prop_map(Op::StartGet),
        3 => Just(Op::Get),
        1 => any::<usize>().prop_map(Op::Cancel),
        5 => any::<usize>().prop_map(Op::Return),
        1 => any::<usize>().prop_map(Op::Break),
        1 => any::<usize>().prop_map(Op::Discard),
        4 => (0u16..1500).prop_map(Op::Advance),
        2 => step().prop_map(Op::Connect),
        2 => prop_oneof![Just(Step::Ok), Just(Step::Transient)].prop_map(Op::Check),
        1 => (0usize..4, 1usize..6).prop_map(|(a, b)| (a.min(b), b)).prop_map(|(a, b)| Op::Resize(a, b)),
        1 => Just(Op::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/pool_model.txt"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn pool_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run_blocking(ops).map_err(TestCaseError::fail)?;
    }
}
