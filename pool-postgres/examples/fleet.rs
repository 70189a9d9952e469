//! The fleet simulation: five pools (one per worker) with the checkpointer preset against a
//! role limited to 10 connections on a real server, the same bursty random load on every
//! worker, in three modes (fixed 4/4, elastic 1-4, elastic with the adaptive ceiling).
//!
//! ```sh
//! cargo run --release --example fleet                      # 20 s per mode, local server
//! cargo run --release --example fleet -- --url postgres://postgres@host/db --secs 20 --seed 7
//! ```
//!
//! The URL must be a superuser's (the run creates and drops its own limited role).

#[path = "../tests/common/fleet.rs"]
mod fleet;

use std::process::ExitCode;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let mut url = std::env::var("POOL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (mut secs, mut seed) = (20u64, 7u64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            eprintln!("fleet: {flag} needs a value");
            return ExitCode::from(2);
        };
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag} {v:?}: expected a whole number"))
        };
        let parsed = match flag.as_str() {
            "--url" => {
                url = value;
                Ok(())
            }
            "--secs" => number(&value).map(|n| secs = n),
            "--seed" => number(&value).map(|n| seed = n),
            other => Err(format!("unknown flag {other:?}")),
        };
        if let Err(e) = parsed {
            eprintln!("fleet: {e}\nusage: fleet [--url URL] [--secs N] [--seed N]");
            return ExitCode::from(2);
        }
    }
    let role = fleet::Role::create(&url).await;
    println!(
        "fleet: {} pools (checkpointer preset) against role {} (CONNECTION LIMIT {}), {secs} s of bursty load per mode, seed {seed}",
        fleet::WORKERS,
        role.name,
        fleet::ROLE_LIMIT
    );
    let mut reports = Vec::new();
    for mode in fleet::Mode::ALL {
        let r = fleet::run(&url, &role, mode, secs, seed).await;
        println!("  {}: done ({} checkouts)", mode.name(), r.checkouts);
        reports.push(r);
    }
    role.drop().await;
    println!();
    print!("{}", fleet::table(&reports));
    let (elastic, adaptive) = (&reports[1], &reports[2]);
    println!();
    println!(
        "adaptive vs elastic: refused connects {} vs {} ({:.0} %), p99 wait {:.1} ms vs {:.1} ms, worst pool share of fair {:.2}",
        adaptive.refused,
        elastic.refused,
        100.0 * adaptive.refused as f64 / elastic.refused.max(1) as f64,
        adaptive.p99_wait.as_secs_f64() * 1000.0,
        elastic.p99_wait.as_secs_f64() * 1000.0,
        adaptive.worst_share()
    );
    ExitCode::SUCCESS
}
