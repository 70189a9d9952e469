//! A pool built and used under Valgrind: the clock the pool stamps with must not depend on
//! reading the vDSO itself (Valgrind maps none, and a program that parses it crashes).
//!
//! The test runs this same test binary again under `valgrind` (memcheck), where the child
//! builds a pool on a running clock, checks connections out and back and reads its stats.
//! Valgrind comes from Debian's `valgrind` package (`.ci/run` installs it when missing); under
//! `CI` its absence fails the test, elsewhere the test says it was skipped.
mod common;

use std::process::Command;

use common::*;

const CHILD: &str = "POOL_TEST_UNDER_VALGRIND";

/// What the child does under Valgrind.
fn child() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (builder, backend) = fake(1, 2);
        let pool = builder.build().unwrap();
        pool.wait_ready(secs(5)).await.unwrap();
        for _ in 0..20 {
            let a = pool.get().await.unwrap();
            let b = pool.get().await.unwrap();
            drop((a, b));
        }
        let stats = pool.stats();
        assert_eq!(stats.requests_num, 40);
        assert_eq!(backend.live(), 2);
        drop(pool);
        common::settle().await;
        assert_eq!(backend.live(), 0);
    });
}

#[test]
fn a_pool_runs_under_valgrind() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let run = Command::new("valgrind")
        .args(["--quiet", "--error-exitcode=97"])
        .arg(&exe)
        .args(["--exact", "a_pool_runs_under_valgrind", "--test-threads=1"])
        .env(CHILD, "1")
        .output();
    let out = match run {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
            eprintln!("skipped: valgrind is not installed (apt-get install valgrind)");
            return;
        }
        Err(e) => panic!("could not run valgrind: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the pool failed under valgrind ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run:\n{stdout}\n{stderr}"
    );
}
