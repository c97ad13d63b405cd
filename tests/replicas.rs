//! Two replicas of one vault: two dev daemons on one PostgreSQL database and one HSM key set
//! (the same SoftHSM2 token). Whatever one does, the other sees on its very next request;
//! uniqueness and single use hold across them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;

use payhsm::client::Client;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::authenticator::Authenticator;
use support::*;

const DOMAIN: &str = "shop";

/// Replica `a` (it made the token, KEK and first data key), replica `b`, and the database.
struct Pair {
    a: Daemon,
    b: Daemon,
}

fn pair() -> Pair {
    let url = postgres::fresh_database();
    let a = Daemon::start_with(&["--postgres", &url]);
    let b = a.replica(&["--postgres", &url]);
    Pair { a, b }
}

async fn key_change(c: &mut Client, change: &str, purpose: &str) -> u16 {
    post(
        c,
        "/v1/keys/changes",
        serde_json::json!({"change": change, "purpose": purpose}),
    )
    .await
    .status
}

fn keys_of(listing: &serde_json::Value, purpose: &str) -> Vec<serde_json::Value> {
    listing["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["purpose"] == purpose)
        .cloned()
        .collect()
}

fn kids(jwks: &serde_json::Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_pans_tokenized_on_both_replicas_at_once_get_one_token_each() {
    let p = pair();
    let pans: Vec<String> = (0..40).map(|_| random_pan("411111", 16)).collect();
    let mut tasks = Vec::new();
    for (i, d) in [&p.a, &p.b].into_iter().enumerate() {
        // Two connections per replica, each taking every PAN in its own order.
        for c in 0..2 {
            let mut client = d.client("gateway").await;
            let mut mine = pans.clone();
            if (i + c) % 2 == 1 {
                mine.reverse();
            }
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for pan in mine {
                    let r = tokenize(&mut client, &pan, DOMAIN).await;
                    assert!(matches!(r.status, 200 | 201), "{:?}", r.json());
                    out.push((pan, token_of(&r), r.status));
                }
                out
            }));
        }
    }
    let mut by_pan = std::collections::HashMap::<String, HashSet<String>>::new();
    let mut created = 0;
    for t in tasks {
        for (pan, token, status) in t.await.unwrap() {
            by_pan.entry(pan).or_default().insert(token);
            created += usize::from(status == 201);
        }
    }
    assert_eq!(by_pan.len(), pans.len());
    assert!(
        by_pan.values().all(|tokens| tokens.len() == 1),
        "{by_pan:?}"
    );
    // Exactly one of the four requests per PAN created it.
    assert_eq!(created, pans.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_replica_changes_the_other_enforces_on_its_next_request() {
    let p = pair();
    let mut gw_a = p.a.client("gateway").await;
    let mut gw_b = p.b.client("gateway").await;
    let mut reader_b = p.b.client("vault-reader").await;
    let pan = random_pan("411111", 16);
    let token = token_of(&tokenize(&mut gw_a, &pan, DOMAIN).await);

    let r = detokenize(&mut reader_b, &token, DOMAIN).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap()["pan"], pan.as_str());
    // Read on B before the change (a cache would now hold it as active).
    let path = format!("/v1/tokens/{token}?domain={DOMAIN}");
    assert_eq!(
        get(&mut gw_b, &path).await.json().unwrap()["status"],
        "active"
    );

    let suspend = post(
        &mut gw_a,
        &format!("/v1/tokens/{token}/suspend"),
        serde_json::json!({"domain": DOMAIN}),
    )
    .await;
    assert_eq!(suspend.status, 200, "{:?}", suspend.json());
    let r = detokenize(&mut reader_b, &token, DOMAIN).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (409, "token_suspended")
    );
    assert_eq!(
        get(&mut gw_b, &path).await.json().unwrap()["status"],
        "suspended"
    );

    let resume = post(
        &mut gw_a,
        &format!("/v1/tokens/{token}/resume"),
        serde_json::json!({"domain": DOMAIN}),
    )
    .await;
    assert_eq!(resume.status, 200);
    assert_eq!(detokenize(&mut reader_b, &token, DOMAIN).await.status, 200);

    let deleted = gw_a
        .request(hyper::Method::DELETE, &path, None)
        .await
        .unwrap();
    assert_eq!(deleted.status, 200);
    let r = detokenize(&mut reader_b, &token, DOMAIN).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (404, "token_not_found")
    );
    assert_eq!(get(&mut gw_b, &path).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_approved_across_replicas_applies_once_and_both_follow_it() {
    let p = pair();
    let mut gw_a = p.a.client("gateway").await;
    let mut reader_a = p.a.client("vault-reader").await;
    let mut reader_b = p.b.client("vault-reader").await;
    let old_pan = random_pan("411111", 16);
    let old = token_of(&tokenize(&mut gw_a, &old_pan, DOMAIN).await);

    // Custodian 1 on A, custodian 2 on B: one rotation.
    let mut c1 = p.a.client("custodian-1").await;
    let mut c2 = p.b.client("custodian-2").await;
    assert_eq!(key_change(&mut c1, "rotate", "data").await, 202);
    assert_eq!(key_change(&mut c2, "rotate", "data").await, 200);
    let listing = get(&mut c1, "/v1/keys").await.json().unwrap();
    let data = keys_of(&listing, "data");
    assert_eq!(data.len(), 2, "{listing}");
    assert_eq!(
        (data[0]["state"].as_str(), data[1]["state"].as_str()),
        (Some("decrypt_only"), Some("active"))
    );

    // A did not apply it: its next tokenization still seals under the new version (the
    // store refuses its old ring; it reloads), without a restart.
    let new_pan = random_pan("422222", 16);
    let r = tokenize(&mut gw_a, &new_pan, DOMAIN).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let new = token_of(&r);
    let listing = get(&mut c2, "/v1/keys").await.json().unwrap();
    let data = keys_of(&listing, "data");
    assert_eq!(
        (data[0]["records"].as_u64(), data[1]["records"].as_u64()),
        (Some(1), Some(1))
    );
    // The PAN tokenized before the rotation converges on its token on both replicas.
    let again = tokenize(&mut gw_a, &old_pan, DOMAIN).await;
    assert_eq!((again.status, token_of(&again)), (200, old.clone()));

    // Both replicas open both records.
    for (reader, name) in [(&mut reader_a, "A"), (&mut reader_b, "B")] {
        for (token, pan) in [(&old, &old_pan), (&new, &new_pan)] {
            let r = detokenize(reader, token, DOMAIN).await;
            assert_eq!(r.status, 200, "{name}: {:?}", r.json());
            assert_eq!(r.json().unwrap()["pan"], pan.as_str());
        }
    }
    // One audit record of the rotation, in the one chain.
    let mut auditor = p.b.client("auditor").await;
    let page = get(&mut auditor, "/v1/audit").await.json().unwrap();
    let rotations = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "key_rotate" && r["outcome"] == "done")
        .count();
    assert_eq!(rotations, 1, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_rotated_on_one_replica_is_published_by_both() {
    let p = pair();
    let mut gw_a = p.a.client("gateway").await;
    let mut gw_b = p.b.client("gateway").await;
    let before = kids(&get(&mut gw_b, "/v1/keys/jwks").await.json().unwrap());
    assert_eq!(before.len(), 1);
    let mut c1 = p.a.client("custodian-1").await;
    let mut c2 = p.a.client("custodian-2").await;
    assert_eq!(
        key_change(&mut c1, "rotate", "authorization-signing").await,
        202
    );
    assert_eq!(
        key_change(&mut c2, "rotate", "authorization-signing").await,
        200
    );
    let on_a = kids(&get(&mut gw_a, "/v1/keys/jwks").await.json().unwrap());
    assert_eq!(on_a.len(), 2);
    // B follows the stored keys by itself (it reloads them every second).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let on_b = kids(&get(&mut gw_b, "/v1/keys/jwks").await.json().unwrap());
        if on_b == on_a {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B still publishes {on_b:?}, A {on_a:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_assertion_sent_to_both_replicas_at_once_is_approved_once() {
    let p = pair();
    let mut gw_a = p.a.client("gateway").await;
    let auth = Authenticator::new();
    let (token, device_id) = enrol_for_token(&mut gw_a, &auth, DOMAIN).await;
    for counter in 1..=5u32 {
        let r = post(
            &mut gw_a,
            "/v1/authorizations/challenges",
            serde_json::json!({"token": token, "domain": DOMAIN, "device_id": device_id,
                "amount": 1234, "currency": "EUR", "payee": "Shop"}),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        let c = r.json().unwrap();
        let assertion = auth.assert(c["challenge"].as_str().unwrap(), counter, None);
        let body = assertion.body(c["challenge_id"].as_str().unwrap());
        let mut on_a = p.a.client("gateway").await;
        let mut on_b = p.b.client("gateway").await;
        let (ba, bb) = (body.clone(), body);
        let (ra, rb) = tokio::join!(
            async move { post(&mut on_a, "/v1/authorizations", ba).await },
            async move { post(&mut on_b, "/v1/authorizations", bb).await },
        );
        let mut statuses = [(ra.status, error_code(&ra)), (rb.status, error_code(&rb))];
        statuses.sort();
        assert_eq!(statuses[0].0, 201, "{statuses:?}");
        assert_eq!(
            statuses[1],
            (409, "challenge_used".to_owned()),
            "{statuses:?}"
        );
    }
}
