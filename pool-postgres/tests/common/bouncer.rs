//! A throwaway PgBouncer in transaction mode in front of the shared test server, on a free
//! port, stopped and removed on drop. Run as the `postgres` OS user when the tests run as root
//! (PgBouncer refuses root). Found as `pgbouncer` on the PATH or in /usr/sbin.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Bouncer {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

fn binary() -> PathBuf {
    for p in [
        "/usr/sbin/pgbouncer",
        "/usr/bin/pgbouncer",
        "/usr/local/bin/pgbouncer",
    ] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("pgbouncer is not installed (Debian: apt-get install pgbouncer; .ci/run does it)")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Bouncer {
    /// PgBouncer in transaction mode in front of `server_port` on 127.0.0.1 (trust auth for
    /// `user`), each server connection reset with `DISCARD ALL` after every transaction, and
    /// at most `pool_size` server connections per database and user.
    pub fn start(server_port: u16, user: &str, pool_size: u32) -> Bouncer {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pool-pgbouncer-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        std::fs::write(dir.join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\n\
                 postgres = host=127.0.0.1 port={server_port} dbname=postgres\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {d}/users.txt\n\
                 pool_mode = transaction\n\
                 default_pool_size = {pool_size}\n\
                 max_client_conn = 1000\n\
                 server_reset_query = DISCARD ALL\n\
                 server_reset_query_always = 1\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 logfile = {d}/pgbouncer.log\n\
                 pidfile = {d}/pgbouncer.pid\n"
            ),
        )
        .unwrap();
        let mut cmd = if is_root() {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(binary());
            c
        } else {
            Command::new(binary())
        };
        let child = cmd
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let bouncer = Bouncer { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not start listening on {port}: {}",
                std::fs::read_to_string(bouncer.dir.join("pgbouncer.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        bouncer
    }

    /// A connection string through this PgBouncer.
    pub fn conninfo(&self, user: &str, app: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres application_name={app}",
            self.port
        )
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        // pgbouncer itself first (runuser does not pass SIGKILL on), then its parent.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
