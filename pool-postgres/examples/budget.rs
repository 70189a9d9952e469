//! The fleet's connection arithmetic against one server:
//!
//! ```sh
//! cargo run --example budget -- --url postgres://app@db/app --replicas 5 --min 1 --max 4
//! ```
//!
//! Reads what the server allows (`max_connections`, the reserved slots, the role's and the
//! database's connection limits, the backends already open) and prints, for N replicas of a
//! pool with the given floor and ceiling, what fits.

use std::process::ExitCode;

use pool_postgres::tokio_postgres::{self, NoTls};
use pool_postgres::{redact, Budget};

struct Args {
    url: String,
    replicas: u32,
    min: u32,
    max: u32,
}

const USAGE: &str = "usage: budget --url URL --replicas N --min A --max B";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut url, mut replicas, mut min, mut max) = (None, None, None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("{flag} {v:?}: expected a whole number"))
        };
        match flag.as_str() {
            "--url" => url = Some(value),
            "--replicas" => replicas = Some(number(&value)?),
            "--min" => min = Some(number(&value)?),
            "--max" => max = Some(number(&value)?),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    let args = Args {
        url: url.ok_or("--url is missing")?,
        replicas: replicas.ok_or("--replicas is missing")?,
        min: min.ok_or("--min is missing")?,
        max: max.ok_or("--max is missing")?,
    };
    if args.max == 0 || args.min > args.max {
        return Err(format!(
            "--min {} --max {}: need 1 <= max and min <= max",
            args.min, args.max
        ));
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("budget: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (client, conn) = match tokio_postgres::connect(&args.url, NoTls).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("budget: cannot connect to {}: {e}", redact(&args.url));
            return ExitCode::FAILURE;
        }
    };
    tokio::spawn(conn);
    let budget = match Budget::read(&client).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("budget: {e}");
            return ExitCode::FAILURE;
        }
    };
    // This tool's own connection is counted as open; it closes when the tool exits.
    let room = budget.headroom() + 1;
    let lim = |l: Option<u32>| l.map_or("unlimited".to_string(), |l| l.to_string());
    println!("server      max_connections {}, {} reserved for superusers, {} client backends open (this one included)",
        budget.max_connections, budget.reserved, budget.open_total);
    println!(
        "role        {}: limit {}, {} open{}",
        budget.role,
        lim(budget.role_limit),
        budget.open_role,
        if budget.superuser {
            " (superuser: may use the reserved slots)"
        } else {
            ""
        }
    );
    println!(
        "database    {}: limit {}, {} open",
        budget.database,
        lim(budget.database_limit),
        budget.open_database
    );
    println!(
        "headroom    {room} connections (bound by the {})",
        budget.binding_limit()
    );
    println!();
    println!(
        "| {:<8} | {:>8} | {:>10} | {:>8} | {:<5} |",
        "",
        "per pool",
        format!("x {} pods", args.replicas),
        "headroom",
        "fits"
    );
    println!(
        "|{:-<10}|{:->10}|{:->12}|{:->10}|{:-<7}|",
        "", "", "", "", ""
    );
    for (name, per) in [("floor", args.min), ("ceiling", args.max)] {
        let fleet = per.saturating_mul(args.replicas);
        let fits = fleet <= room;
        println!(
            "| {name:<8} | {per:>8} | {fleet:>10} | {room:>8} | {:<5} |",
            if fits { "yes" } else { "NO" }
        );
    }
    println!();
    let floor_fleet = args.min.saturating_mul(args.replicas);
    if floor_fleet > room {
        println!("The floors alone need {floor_fleet} connections, {} more than there is room for: lower --min, or raise the limit.",
            floor_fleet - room);
    } else if args.max.saturating_mul(args.replicas) > room {
        let per_pod = room / args.replicas.max(1);
        println!("The floors fit; at full load the ceilings would need {} connections. A ceiling of {per_pod} per pod fits all at once; \
                  with a higher one, the pools' adaptive ceiling (on by default) backs off when the server says it is full.",
            args.max.saturating_mul(args.replicas));
    } else {
        println!("Everything fits, floors and ceilings at once.");
    }
    ExitCode::SUCCESS
}
