//! Bytes -> a sequence of pool operations on the fake backend, checked against the same
//! reference model as the proptest (`pool_testkit::model`).
#![no_main]

use std::time::Duration;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use pool_testkit::model::{run_blocking, Op};
use pool_testkit::Step;

fn step(u: &mut Unstructured<'_>) -> Result<Step> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => Step::Ok,
        1 => Step::Transient,
        2 => Step::Fatal,
        3 => Step::Slow(Duration::from_millis(u.int_in_range(1..=300u64)?)),
        _ => Step::Never,
    })
}

fn op(u: &mut Unstructured<'_>) -> Result<Op> {
    Ok(match u.int_in_range(0..=10u8)? {
        0 => Op::StartGet(if u.arbitrary()? { Some(u.int_in_range(1..=2000u16)?) } else { None }),
        1 => Op::Cancel(u.arbitrary()?),
        2 => Op::Return(u.arbitrary()?),
        3 => Op::Break(u.arbitrary()?),
        4 => Op::Discard(u.arbitrary()?),
        5 => Op::Advance(u.int_in_range(0..=1500u16)?),
        6 => Op::Connect(step(u)?),
        7 => Op::Check(if u.arbitrary()? { Step::Ok } else { Step::Transient }),
        8 => Op::Resize(u.int_in_range(0..=5usize)?, u.int_in_range(0..=6usize)?),
        9 => Op::Get,
        _ => Op::Close,
    })
}

fn ops(data: &[u8]) -> Result<Vec<Op>> {
    let mut u = Unstructured::new(data);
    let mut v = Vec::new();
    while !u.is_empty() && v.len() < 120 {
        v.push(op(&mut u)?);
    }
    Ok(v)
}

fuzz_target!(|data: &[u8]| {
    let Ok(ops) = ops(data) else { return };
    if let Err(violation) = run_blocking(ops.clone()) {
        panic!("model violation: {violation}\nops: {ops:?}");
    }
});
