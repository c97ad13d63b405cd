//! Fault harness (issue 6): the HSM becomes unavailable under a running daemon and comes back.
//!
//! The fault is real, and the module's own:
//! - SoftHSM2: the dev token's directory is moved out of SoftHSM2's token folder while
//!   `payhsmd dev` runs, then moved back. SoftHSM2 then answers C_GetTokenInfo with
//!   CKR_GENERAL_ERROR and finds no object (its sessions still say "logged in"), and it keeps
//!   the token invalid even once the directory is back, until the library is re-initialized.
//! - kryoptic (`PAYHSM_TEST_PKCS11_MODULE`): another process (this test) holds an exclusive
//!   lock on the token's SQLite file, so every read of a token object fails once kryoptic's
//!   busy timeout runs out, while C_GetTokenInfo, answered from memory, still succeeds. The
//!   lock is then released.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use payhsm::client::{Client, Response};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::authenticator::{Assertion, Authenticator};
use support::softhsm::{kind, Kind};
use support::*;

const DOMAIN: &str = "shop";

/// A real fault of the dev token under a running daemon, until [`Outage::end`].
enum Outage {
    /// SoftHSM2: the token's folder, moved from `present` to `away`.
    Moved { present: PathBuf, away: PathBuf },
    /// kryoptic: a connection in a transaction holding the token file's exclusive lock.
    Locked(rusqlite::Connection),
}

impl Outage {
    fn start(data_dir: &Path) -> Self {
        match kind() {
            // Out of SoftHSM2's token folder, so a re-initialization does not find it either.
            Kind::SoftHsm2 => {
                let present = token_dir(data_dir);
                let away = data_dir.join("token-away");
                std::fs::rename(&present, &away).unwrap();
                Self::Moved { present, away }
            }
            // The token's slot file (`support::softhsm::write_store_config`).
            Kind::Kryoptic => {
                let conn = rusqlite::Connection::open(data_dir.join("kryoptic.sql")).unwrap();
                conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
                Self::Locked(conn)
            }
        }
    }

    fn end(self) {
        match self {
            Self::Moved { present, away } => std::fs::rename(&away, &present).unwrap(),
            Self::Locked(conn) => conn.execute_batch("ROLLBACK").unwrap(),
        }
    }
}

/// The one token directory of a dev data directory.
fn token_dir(data_dir: &Path) -> PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir(data_dir.join("softhsm-tokens"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// A payment challenge for the enrolled device and its assertion with `counter`.
async fn payment(
    gw: &mut Client,
    auth: &Authenticator,
    token: &str,
    device_id: &str,
    counter: u32,
) -> (String, Assertion) {
    let r = post(
        gw,
        "/v1/authorizations/challenges",
        serde_json::json!({"token": token, "domain": DOMAIN, "device_id": device_id,
            "amount": 1234, "currency": "EUR", "payee": "Shop"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let ch = r.json().unwrap();
    let assertion = auth.assert(ch["challenge"].as_str().unwrap(), counter, None);
    (ch["challenge_id"].as_str().unwrap().to_owned(), assertion)
}

/// Sends `f` and prints how long the answer took (measured, not asserted).
async fn timed(what: &str, f: impl std::future::Future<Output = Response>) -> Response {
    let started = Instant::now();
    let r = f.await;
    println!("{what}: {} in {:?}", r.status, started.elapsed());
    r
}

async fn key_change(c: &mut Client) -> Response {
    post(
        c,
        "/v1/keys/changes",
        serde_json::json!({"change": "rotate", "purpose": "data"}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_outage_fails_fast_with_503_and_recovers_without_restart() {
    // The clients stay connected through the outage, which on kryoptic lasts longer than the
    // default idle timeout (each call waits for its busy timeout).
    let d = Daemon::start_with(&["--header-timeout-ms", "120000"]);
    let pid = d.pid();
    let mut gw = d.client("gateway").await;
    let mut reader = d.client("vault-reader").await;
    let mut c1 = d.client("custodian-1").await;
    let mut c2 = d.client("custodian-2").await;
    let auth = Authenticator::new();
    let (token, device_id) = enrol_for_token(&mut gw, &auth, DOMAIN).await;
    let (challenge_id, assertion) = payment(&mut gw, &auth, &token, &device_id, 1).await;
    assert_eq!(get(&mut gw, "/readyz").await.status, 200);

    // The token goes away.
    let outage = Outage::start(&d.data_dir);

    let r = timed(
        "authorize while the HSM is away",
        post(&mut gw, "/v1/authorizations", assertion.body(&challenge_id)),
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (503, "signer_unavailable".to_owned())
    );
    // The cause is logged once, at the edge, with the request id the caller got, and names
    // the failing layer (the HSM's own error, through the signer's).
    let id = r.headers["x-request-id"].to_str().unwrap().to_owned();
    let logs = d.logs();
    let logged: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&id) && l.contains("request failed"))
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    // The route, and the whole source chain: the signer's words, then the HSM's error.
    for part in [
        "authorize",
        "signer_unavailable",
        "the authorization signer is unavailable: authorization key",
        "the HSM failed to sign: ",
    ] {
        assert!(logged[0].contains(part), "{part:?} not in {logged:?}");
    }
    let r = timed("readyz while the HSM is away", get(&mut gw, "/readyz")).await;
    assert_eq!(r.status, 503);
    let checks = &r.json().unwrap()["checks"];
    assert_ne!(checks["hsm"], "ok", "{checks}");
    assert_eq!(checks["store"], "ok", "{checks}");
    // A key change needs the HSM: the first approval is recorded (store only), the second,
    // which applies it, is refused and nothing changes.
    assert_eq!(key_change(&mut c1).await.status, 202);
    let r = timed("key change while the HSM is away", key_change(&mut c2)).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (503, "hsm_unavailable".to_owned())
    );
    // Tokenize and detokenize use the data keys unwrapped at start: they keep serving
    // (docs/decisions.md), while readiness drains the node.
    let pan = random_pan("5100", 16);
    let r = tokenize(&mut gw, &pan, DOMAIN).await;
    assert_eq!(r.status, 201);
    let r = detokenize(&mut reader, &token_of(&r), DOMAIN).await;
    assert_eq!(
        (r.status, r.json().unwrap()["pan"].clone()),
        (200, pan.into())
    );

    // The token comes back; the daemon finds it again by itself (readiness probes drive it).
    outage.end();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(15);
    loop {
        let r = get(&mut gw, "/readyz").await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the HSM never came back: {:?}",
            r.json()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "ready again {:?} after the token returned",
        started.elapsed()
    );

    // A challenge is single-use, even by a refused attempt: a new payment is signed.
    let (challenge_id, assertion) = payment(&mut gw, &auth, &token, &device_id, 2).await;
    let r = post(&mut gw, "/v1/authorizations", assertion.body(&challenge_id)).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.json().unwrap()["decision"], "approved");
    // The key change goes through with two fresh approvals.
    let first = key_change(&mut c1).await;
    assert!([200, 202].contains(&first.status), "{:?}", first.json());
    if first.status == 202 {
        let r = key_change(&mut c2).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
    }
    let keys = get(&mut c1, "/v1/keys").await;
    let data_versions = keys.json().unwrap()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["purpose"] == "data")
        .count();
    assert_eq!(data_versions, 2, "{:?}", keys.json());
    assert_eq!(d.pid(), pid);
    assert!(d.logs().contains("re-initializing the PKCS#11 library"));
}
