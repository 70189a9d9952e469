//! Throwaway PostgreSQL clusters for tests that must stop, restart, fail over or reconfigure a
//! server: the shared test server is never touched.
//!
//! A [`Cluster`] is initdb'd in a temp dir on a free port, with scram-sha-256 password auth on
//! 127.0.0.1 (superuser `postgres`, password [`SUPERUSER_PASSWORD`]) and trust on its own Unix
//! socket, optionally TLS with a certificate signed by a CA it generates. It can stop, start,
//! restart, make a streaming standby (`pg_basebackup -R`) and promote one. Dropping it stops
//! the server (immediate mode) and removes the directory, also when the test panics.
//!
//! When the tests run as root, every server command runs as the `postgres` OS user (initdb
//! refuses root). Binaries come from `pg_config --bindir`, else `/usr/lib/postgresql/*/bin`.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub const SUPERUSER_PASSWORD: &str = "cluster-secret";

/// Certificates made for a TLS cluster (PEM files in the cluster's directory).
#[derive(Debug, Clone)]
pub struct Certs {
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// Another CA, which signed nothing this server presents.
    pub other_ca: PathBuf,
    /// The DNS name in the server certificate (`localhost`; 127.0.0.1 is not in it).
    pub server_name: &'static str,
}

pub struct Cluster {
    dir: PathBuf,
    data: PathBuf,
    pub port: u16,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    pub certs: Option<Certs>,
    running: bool,
}

fn bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("PostgreSQL server binaries (initdb): install the postgresql package")
}

/// uid and gid of the `postgres` OS user when running as root (server commands run as it).
fn owner() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> u32 {
        let out = Command::new("id").args(args).output().expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    if id(&["-u"]) != 0 {
        return None;
    }
    Some((id(&["-u", "postgres"]), id(&["-g", "postgres"])))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn chown_tree(path: &Path, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        check(
            "chown",
            Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(path)
                .output(),
        );
    }
}

impl Cluster {
    /// A new cluster, started.
    pub fn new() -> Cluster {
        Cluster::create(false)
    }

    /// A new cluster with TLS on (`ssl = on`, a certificate for `localhost`), started.
    pub fn with_tls() -> Cluster {
        Cluster::create(true)
    }

    fn empty() -> Cluster {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pool-pgcluster-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let owner = owner();
        chown_tree(&dir, owner);
        Cluster {
            data: dir.join("data"),
            dir,
            port: free_port(),
            bin: bindir(),
            owner,
            certs: None,
            running: false,
        }
    }

    fn create(tls: bool) -> Cluster {
        let mut c = Cluster::empty();
        let pwfile = c.dir.join("pw");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).unwrap();
        chown_tree(&pwfile, c.owner);
        c.run(
            "initdb",
            &[
                "-D",
                c.data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        );
        let mut conf = String::from(
            "\nwal_level = replica\nmax_wal_senders = 10\nhot_standby = on\nfsync = off\n\
             synchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\n\
             shared_buffers = 16MB\nlog_min_messages = warning\n",
        );
        if tls {
            let certs = c.make_certs();
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            c.certs = Some(certs);
        }
        let conf_path = c.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_path, text).unwrap();
        c.start();
        c
    }

    /// A CA, a server certificate for `localhost` signed by it (key and certificate into the
    /// data directory), and a second CA that signed nothing here.
    fn make_certs(&self) -> Certs {
        let d = &self.dir;
        let openssl = |args: &[&str]| {
            check(
                &format!("openssl {}", args.join(" ")),
                Command::new("openssl").args(args).current_dir(d).output(),
            );
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=pool test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ]);
        }
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(d.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ]);
        for f in ["server.crt", "server.key"] {
            std::fs::copy(d.join(f), self.data.join(f)).unwrap();
        }
        let key = self.data.join("server.key");
        chown_tree(&self.data, self.owner);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        Certs {
            ca: d.join("ca.crt"),
            other_ca: d.join("other-ca.crt"),
            server_name: "localhost",
        }
    }

    /// Runs a server binary (as `postgres` when root).
    /// A server binary's command, run as `postgres` when root.
    fn command(&self, bin: &str) -> Command {
        let path = self.bin.join(bin);
        let mut cmd = if self.owner.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        cmd.current_dir(&self.dir);
        cmd
    }

    /// Runs a server binary; a failure panics with its output.
    fn run(&self, bin: &str, args: &[&str]) -> Output {
        let out = self.command(bin).args(args).output();
        check(&format!("{bin} {}", args.join(" ")), out)
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let mut all = vec!["-D", self.data.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    pub fn start(&mut self) {
        let log = self.dir.join("server.log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        self.pg_ctl(&[
            "-l",
            log.to_str().unwrap(),
            "-o",
            &opts,
            "-w",
            "-t",
            "60",
            "start",
        ]);
        self.running = true;
    }

    /// Fast shutdown: sessions are terminated (57P01), the server stops.
    pub fn stop(&mut self) {
        self.pg_ctl(&["-m", "fast", "-w", "-t", "60", "stop"]);
        self.running = false;
    }

    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// A streaming standby of this cluster on a port of its own, started.
    pub fn standby(&self) -> Cluster {
        let mut s = Cluster::empty();
        s.certs = self.certs.clone();
        self.run(
            "pg_basebackup",
            &[
                "-h",
                self.dir.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-D",
                s.data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        s.start();
        s
    }

    /// Promotes a standby; returns once it accepts writes.
    pub fn promote(&self) {
        self.pg_ctl(&["-w", "-t", "60", "promote"]);
    }

    /// The cluster's Unix socket (trust auth).
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join(format!(".s.PGSQL.{}", self.port))
    }

    /// Runs SQL as the superuser over the cluster's Unix socket (psql, no password).
    pub fn sql(&self, sql: &str) -> String {
        let out = self.run(
            "psql",
            &[
                "-h",
                self.dir.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `host=127.0.0.1 port=... user=postgres password=... dbname=postgres` plus `extra`.
    pub fn conninfo(&self, extra: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres {extra}",
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
