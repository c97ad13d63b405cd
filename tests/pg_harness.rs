//! The PostgreSQL test harness itself (issue 17): a throwaway cluster starts on loopback with
//! fsync on, hands out distinct databases, keeps its data across a stop and a crash on the
//! same port, and leaves nothing running once dropped or once its test process is gone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::postgres::{fresh_database, shared, PgCluster, MAX_CONNECTIONS};

#[test]
fn shared_cluster_listens_on_loopback_only_with_fsync_on() {
    let pg = shared();
    let url = pg.url();
    assert_eq!(pg.psql(&url, "select current_user"), "payhsm");
    assert_eq!(pg.psql(&url, "show listen_addresses"), "127.0.0.1");
    assert_eq!(pg.psql(&url, "show fsync"), "on");
    assert_eq!(pg.psql(&url, "show synchronous_commit"), "on");
    assert_eq!(
        pg.psql(&url, "show max_connections"),
        MAX_CONNECTIONS.to_string()
    );
    let socket_dir = pg.psql(&url, "show unix_socket_directories");
    assert_eq!(Path::new(&socket_dir), pg.dir());
}

#[test]
fn fresh_databases_are_distinct() {
    let pg = shared();
    let a = fresh_database();
    let b = fresh_database();
    assert_ne!(a, b);
    pg.psql(&a, "create table only_in_a (id int)");
    assert_eq!(
        pg.psql(&a, "select to_regclass('only_in_a') is not null"),
        "t"
    );
    assert_eq!(pg.psql(&b, "select to_regclass('only_in_a') is null"), "t");
}

#[test]
fn committed_rows_survive_a_stop_and_a_crash_on_the_same_port() {
    let pg = PgCluster::start();
    let db = pg.create_database("durable");
    pg.psql(
        &db,
        "create table t (v text); insert into t values ('before stop')",
    );

    pg.stop();
    assert!(pg.pid().is_none(), "postmaster.pid left after a stop");
    assert!(
        pg.try_psql(&db, "select 1").is_err(),
        "answered while stopped"
    );
    pg.start_again();
    assert_eq!(pg.psql(&db, "select v from t"), "before stop");

    pg.psql(&db, "insert into t values ('before crash')");
    pg.crash();
    assert!(
        pg.try_psql(&db, "select 1").is_err(),
        "answered after a crash"
    );
    pg.start_again();
    assert_eq!(
        pg.psql(&db, "select string_agg(v, ',' order by v) from t"),
        "before crash,before stop"
    );
}

#[test]
fn nothing_is_left_running_after_drop() {
    let pg = PgCluster::start();
    let pid = pg.pid().expect("running");
    let dir = pg.dir().to_owned();
    assert!(alive(pid));
    drop(pg);
    assert!(!alive(pid), "postmaster {pid} still running after drop");
    assert!(!dir.exists(), "{} left after drop", dir.display());
}

#[test]
fn cluster_stops_when_its_test_process_is_killed() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "holds_the_shared_cluster_until_killed",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("cluster "))
        .expect("the child never reported its cluster");
    let mut words = line.splitn(3, ' ').skip(1);
    let pid: u32 = words.next().unwrap().parse().unwrap();
    let dir = PathBuf::from(words.next().unwrap());
    assert!(alive(pid));

    // SIGKILL: no destructor, no exit handler runs in the test process.
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (alive(pid) || dir.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive(pid), "postmaster {pid} outlived its test process");
    assert!(!dir.exists(), "{} outlived its test process", dir.display());
}

/// Run by `cluster_stops_when_its_test_process_is_killed` in a child process.
#[test]
#[ignore = "a helper process, run by cluster_stops_when_its_test_process_is_killed"]
fn holds_the_shared_cluster_until_killed() {
    let pg = shared();
    println!("cluster {} {}", pg.pid().unwrap(), pg.dir().display());
    std::thread::sleep(Duration::from_secs(120));
}

/// Whether process `pid` runs (a zombie nobody reaped yet does not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
