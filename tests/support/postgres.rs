//! Throwaway PostgreSQL clusters for the store tests: `initdb` in a fresh folder under
//! `target/pg-test/`, started with `pg_ctl` on a free loopback port (trust auth, superuser
//! `payhsm`, fsync on because the tests measure durability), one database per test.
//!
//! A test binary shares one cluster across its threads ([`shared`], [`fresh_database`]); a
//! fault test that stops PostgreSQL under load starts its own ([`PgCluster::start`]). Statics
//! are never dropped, so every cluster has a watchdog: a shell, in its own process group, that
//! blocks reading a pipe whose only writer is the test process. When that process ends, however
//! it ends (exit, panic, Ctrl-C, SIGKILL), the pipe closes and the watchdog stops the cluster
//! and removes its folder. Dropping a [`PgCluster`] closes the pipe early and waits for it.
//!
//! As root, every PostgreSQL binary runs as the `postgres` user (created by the Debian package):
//! the server refuses to run as root. `PAYHSM_PG_BIN` overrides the binary folder (default: the
//! newest `/usr/lib/postgresql/*/bin`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The superuser the clusters are created with.
pub const USER: &str = "payhsm";

/// Connections the server accepts: several replicas' pools at once.
pub const MAX_CONNECTIONS: u32 = 300;

/// A running throwaway PostgreSQL cluster.
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// `Some("postgres")` when the tests run as root.
    run_as: Option<&'static str>,
    /// The watchdog's stdin: closing it stops the cluster and removes `dir`.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

/// The process-wide cluster, started on first use and stopped when the process ends.
pub fn shared() -> &'static PgCluster {
    static SHARED: OnceLock<PgCluster> = OnceLock::new();
    SHARED.get_or_init(PgCluster::start)
}

/// A new empty database on the [`shared`] cluster: its URL.
pub fn fresh_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    shared().create_database(&format!("test_{n}"))
}

impl PgCluster {
    /// Creates and starts a new cluster in a fresh folder; panics with the server log if it
    /// cannot.
    pub fn start() -> Self {
        let bin = bin_dir();
        let run_as = running_as_root().then_some("postgres");
        let base = base_dir(run_as);
        std::fs::create_dir_all(&base).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("pg-")
            .tempdir_in(&base)
            .unwrap()
            .keep();
        // Before anything can fail: from here on the folder goes away with the test process.
        let watchdog = spawn_watchdog(&bin, &dir, run_as);
        if let Some(user) = run_as {
            let ok = Command::new("chown")
                .args([&format!("{user}:"), dir.to_str().unwrap()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown {user} {} failed", dir.display());
        }
        let mut cluster = Self {
            bin,
            dir,
            port: 0,
            run_as,
            watchdog: Mutex::new(Some(watchdog)),
        };
        cluster.init();
        cluster.port = cluster.start_on_a_free_port();
        cluster
    }

    /// The URL of the `postgres` database, as the superuser.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this cluster.
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates the empty database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        let out = self.run(
            self.tool("createdb")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .arg(name),
        );
        assert!(out.status.success(), "createdb {name}: {}", text(&out));
        self.database_url(name)
    }

    /// Runs `sql` with psql against `url`: its unaligned, tuples-only output, trimmed.
    /// Panics if psql fails.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        match self.try_psql(url, sql) {
            Ok(out) => out,
            Err(e) => panic!("psql {sql:?}: {e}"),
        }
    }

    /// Runs `sql` with psql against `url`: its output, or what psql said when it failed (the
    /// server is stopped, the SQL is wrong).
    pub fn try_psql(&self, url: &str, sql: &str) -> Result<String, String> {
        let out = self.run(self.tool("psql").args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ]));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(text(&out))
        }
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`: sessions are cut, a checkpoint is
    /// written); [`PgCluster::start_again`] brings it back on the same port.
    pub fn stop(&self) {
        self.pg_ctl_stop("fast");
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: no checkpoint, the next
    /// start replays the WAL).
    pub fn crash(&self) {
        self.pg_ctl_stop("immediate");
    }

    /// Starts the server again after [`PgCluster::stop`] or [`PgCluster::crash`], on the same
    /// port and data.
    pub fn start_again(&self) {
        if let Err(log) = self.pg_ctl_start() {
            panic!(
                "PostgreSQL did not start again on port {}:\n{log}",
                self.port
            );
        }
    }

    /// Turns TLS on, with a certificate from a fresh dev PKI (`localhost`, `127.0.0.1`) in
    /// the cluster's folder, and restarts the server; returns the CA file that verifies it.
    pub fn enable_tls(&self) -> PathBuf {
        let pki = self.dir.join("pki");
        payhsm::pki::generate_dev_pki(&pki).unwrap();
        if let Some(user) = self.run_as {
            // The server reads its key only if it owns it.
            let ok = Command::new("chown")
                .args(["-R", &format!("{user}:"), pki.to_str().unwrap()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown {user} {} failed", pki.display());
        }
        self.append_conf(&format!(
            "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            pki.join("server.pem").display(),
            pki.join("server.key").display()
        ));
        self.stop();
        self.start_again();
        pki.join("ca.pem")
    }

    /// The postmaster's process id while the server runs (from `postmaster.pid`).
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The cluster's folder (data directory, unix socket, server log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn init(&self) {
        // --no-sync only spares initdb's own flush of the new files (a throwaway cluster
        // need not survive a power cut during set-up); the server runs with fsync on.
        let out = self.run(
            self.tool("initdb")
                .arg("-D")
                .arg(self.data())
                .args(["-A", "trust", "-U", USER, "-E", "UTF8", "--locale=C"])
                .arg("--no-sync"),
        );
        assert!(out.status.success(), "initdb: {}", text(&out));
        let conf = format!(
            "\n# payhsm test cluster\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\nunix_socket_permissions = 0700\nfsync = on\nsynchronous_commit = on\n\
             max_connections = {MAX_CONNECTIONS}\n",
            self.dir.display()
        );
        self.append_conf(&conf);
    }

    /// Picks a free port (bind port 0, read it, let it go) and starts there; another process
    /// may take the port in between, so a failed start tries a new one.
    fn start_on_a_free_port(&mut self) -> u16 {
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            // The last `port` line wins.
            self.append_conf(&format!("port = {port}\n"));
            self.port = port;
            match self.pg_ctl_start() {
                Ok(()) => return port,
                Err(log) => last_log = log,
            }
        }
        panic!("PostgreSQL did not start:\n{last_log}");
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let out = self.run(
            self.tool("pg_ctl")
                .arg("start")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.join("postgres.log"))
                .args(["-w", "-t", "60"]),
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}\n{}", text(&out), self.log()))
        }
    }

    fn pg_ctl_stop(&self, mode: &str) {
        let out = self.run(
            self.tool("pg_ctl")
                .arg("stop")
                .arg("-D")
                .arg(self.data())
                .args(["-m", mode, "-w", "-t", "60"]),
        );
        assert!(
            out.status.success(),
            "pg_ctl stop -m {mode}: {}",
            text(&out)
        );
    }

    fn append_conf(&self, lines: &str) {
        // Appending keeps the file's owner (`postgres` when the tests run as root).
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.data().join("postgresql.conf"))
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
    }

    /// A command for PostgreSQL binary `name`, as the `postgres` user when root.
    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        // A folder the `postgres` user may enter (the tools complain otherwise).
        cmd.current_dir(&self.dir);
        cmd
    }

    fn run(&self, cmd: &mut Command) -> Output {
        cmd.stdin(Stdio::null()).output().unwrap()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let watchdog = self.watchdog.lock().map(|mut w| w.take());
        if let Ok(Some((mut child, stdin))) = watchdog {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Starts the watchdog of the cluster in `dir`: when its stdin closes it stops the server
/// (immediate mode; nothing to keep) and removes `dir`.
fn spawn_watchdog(bin: &Path, dir: &Path, run_as: Option<&str>) -> (Child, ChildStdin) {
    const SCRIPT: &str = r#"
        cat >/dev/null
        if [ -n "$RUN_AS" ]; then set -- runuser -u "$RUN_AS" --; else set --; fi
        if [ -e "$DIR/data/postmaster.pid" ]; then
          "$@" "$PG_CTL" stop -D "$DIR/data" -m immediate -w >/dev/null 2>&1
        fi
        rm -rf "$DIR"
    "#;
    let mut child = std::os::unix::process::CommandExt::process_group(
        Command::new("sh")
            .args(["-c", SCRIPT])
            .env("PG_CTL", bin.join("pg_ctl"))
            .env("DIR", dir)
            .env("RUN_AS", run_as.unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        // Its own process group: a Ctrl-C to the test run must not kill it before it has
        // stopped the server (pg_ctl puts the server in a session of its own).
        0,
    )
    .spawn()
    .unwrap();
    // std opens the pipe close-on-exec: no other child inherits the write end and keeps the
    // watchdog waiting.
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// `PAYHSM_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` that has `initdb`.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PAYHSM_PG_BIN") {
        return PathBuf::from(dir);
    }
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    versions
        .into_iter()
        .map(|v| (v, PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .max_by_key(|(v, _)| *v)
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/*/bin/initdb: run scripts/setup, or set PAYHSM_PG_BIN")
}

/// `target/pg-test`; as root, a folder under the system temp dir instead when the `postgres`
/// user cannot reach `target/` (a checkout under /root).
fn base_dir(run_as: Option<&str>) -> PathBuf {
    let target = super::repo().join("target");
    let Some(user) = run_as else {
        return target.join("pg-test");
    };
    std::fs::create_dir_all(&target).unwrap();
    let reachable = Command::new("runuser")
        .args(["-u", user, "--", "test", "-x"])
        .arg(&target)
        .status()
        .is_ok_and(|s| s.success());
    if reachable {
        target.join("pg-test")
    } else {
        std::env::temp_dir().join("payhsm-pg-test")
    }
}

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn text(out: &Output) -> String {
    format!(
        "{} {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
