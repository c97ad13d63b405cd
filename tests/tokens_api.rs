//! Tokenization API v1 end to end: real mTLS, real SoftHSM2, real SQLite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenize_is_convergent_per_domain_and_separate_across_domains() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let pan = random_pan("411111", 16);
    let first = tokenize(&mut gw, &pan, "shop-a").await;
    assert_eq!(first.status, 201, "{:?}", first.json());
    let again = tokenize(&mut gw, &pan, "shop-a").await;
    assert_eq!(again.status, 200);
    assert_eq!(token_of(&first), token_of(&again));
    let other = tokenize(&mut gw, &pan, "shop-b").await;
    assert_eq!(other.status, 201);
    assert_ne!(token_of(&first), token_of(&other));
    let body = first.json().unwrap();
    assert_eq!(body["domain"], "shop-a");
    assert_eq!(body["status"], "active");
    assert_eq!(body["last4"], pan[pan.len() - 4..]);
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_keep_bin_and_last4_are_luhn_invalid_and_unique_over_many_pans() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let mut seen = std::collections::HashSet::new();
    for i in 0..210 {
        let len = 13 + i % 7;
        let pan = random_pan(["4", "51", "37", "6011"][i % 4], len);
        let r = tokenize(&mut gw, &pan, "format").await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        let token = token_of(&r);
        assert_eq!(token.len(), pan.len());
        assert_eq!(token[..6], pan[..6]);
        assert_eq!(token[len - 4..], pan[len - 4..]);
        assert!(!luhn_ok(&token), "token passes Luhn");
        assert_ne!(token, pan);
        assert!(token.bytes().all(|b| b.is_ascii_digit()));
        assert!(seen.insert(token), "duplicate token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_reader_detokenizes_to_the_pan_and_expiry() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let pan = random_pan("5500", 16);
    let r = post(
        &mut gw,
        "/v1/tokens",
        serde_json::json!({"pan": pan, "exp_month": 7, "exp_year": 2031, "domain": "shop"}),
    )
    .await;
    assert_eq!(r.status, 201);
    let token = token_of(&r);
    let mut reader = d.client("vault-reader").await;
    let r = detokenize(&mut reader, &token, "shop").await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let body = r.json().unwrap();
    assert_eq!(body["pan"], pan.as_str());
    assert_eq!(body["exp_month"], 7);
    assert_eq!(body["exp_year"], 2031);
    // The token is scoped to its domain.
    let r = detokenize(&mut reader, &token, "other").await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (404, "token_not_found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_refuses_each_group_what_it_may_not_do() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let pan = random_pan("4000", 16);
    let token = token_of(&tokenize(&mut gw, &pan, "shop").await);

    // gateway may not detokenize
    let r = detokenize(&mut gw, &token, "shop").await;
    assert_eq!((r.status, error_code(&r).as_str()), (403, "forbidden"));
    // vault-reader may not tokenize, suspend or delete
    let mut reader = d.client("vault-reader").await;
    let r = tokenize(&mut reader, &random_pan("4000", 16), "shop").await;
    assert_eq!((r.status, error_code(&r).as_str()), (403, "forbidden"));
    let r = post(
        &mut reader,
        &format!("/v1/tokens/{token}/suspend?domain=shop"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status, 403);
    // vault-reader may read metadata
    let r = get(&mut reader, &format!("/v1/tokens/{token}?domain=shop")).await;
    assert_eq!(r.status, 200);
    // auditor may do none of the token operations
    let mut auditor = d.client("auditor").await;
    for r in [
        tokenize(&mut auditor, &pan, "shop").await,
        detokenize(&mut auditor, &token, "shop").await,
        get(&mut auditor, &format!("/v1/tokens/{token}?domain=shop")).await,
    ] {
        assert_eq!((r.status, error_code(&r).as_str()), (403, "forbidden"));
    }
    // a custodian has no business with tokens either
    let mut custodian = d.client("custodian-1").await;
    let r = tokenize(&mut custodian, &pan, "shop").await;
    assert_eq!(r.status, 403);
    // A refused request has no side effect: the PAN still has exactly its first token.
    let r = tokenize(&mut gw, &pan, "shop").await;
    assert_eq!((r.status, token_of(&r)), (200, token.clone()));
    // and a refused tokenize created nothing
    let r = get(&mut gw, &format!("/v1/tokens/{token}?domain=shop")).await;
    assert_eq!(r.json().unwrap()["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_resume_delete_follow_the_lifecycle() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let mut reader = d.client("vault-reader").await;
    let pan = random_pan("4242", 16);
    let token = token_of(&tokenize(&mut gw, &pan, "shop").await);
    let path = |op: &str| format!("/v1/tokens/{token}/{op}?domain=shop");

    let r = post(&mut gw, &path("suspend"), serde_json::json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json().unwrap()["status"], "suspended");
    let r = detokenize(&mut reader, &token, "shop").await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (409, "token_suspended")
    );
    let r = post(&mut gw, &path("suspend"), serde_json::json!({})).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (409, "token_state_conflict")
    );

    let r = post(&mut gw, &path("resume"), serde_json::json!({})).await;
    assert_eq!(r.json().unwrap()["status"], "active");
    let r = detokenize(&mut reader, &token, "shop").await;
    assert_eq!(r.json().unwrap()["pan"], pan.as_str());

    let r = gw
        .request(
            hyper::Method::DELETE,
            &format!("/v1/tokens/{token}?domain=shop"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap()["status"], "deleted");
    let r = get(&mut gw, &format!("/v1/tokens/{token}?domain=shop")).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (404, "token_not_found")
    );
    let r = detokenize(&mut reader, &token, "shop").await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (404, "token_not_found")
    );
    let r = post(&mut gw, &path("resume"), serde_json::json!({})).await;
    assert_eq!(r.status, 404);
    // After deletion the PAN gets a new token (its derived one is the deleted token, so a
    // random one, kept in the fingerprint index), and keeps it.
    let r = tokenize(&mut gw, &pan, "shop").await;
    assert_eq!(r.status, 201);
    let next = token_of(&r);
    assert_ne!(next, token);
    let r = tokenize(&mut gw, &pan, "shop").await;
    assert_eq!((r.status, token_of(&r)), (200, next));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_stable_codes_and_statuses() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let cases: Vec<(serde_json::Value, u16, &str)> = vec![
        (
            serde_json::json!({"pan": "4111111111111112", "domain": "s"}),
            422,
            "invalid_pan",
        ),
        (
            serde_json::json!({"pan": "411111111111", "domain": "s"}),
            422,
            "invalid_pan",
        ),
        (
            serde_json::json!({"pan": "4111111111111111", "domain": "S P"}),
            422,
            "invalid_domain",
        ),
        (
            serde_json::json!({"pan": "4111111111111111", "exp_month": 13, "exp_year": 2030, "domain": "s"}),
            422,
            "invalid_expiry",
        ),
        (
            serde_json::json!({"pan": "4111111111111111", "exp_month": 1, "domain": "s"}),
            422,
            "invalid_expiry",
        ),
        (
            serde_json::json!({"pan": 4111111111111111u64, "domain": "s"}),
            400,
            "malformed_request",
        ),
        (serde_json::json!({"domain": "s"}), 400, "malformed_request"),
        (
            serde_json::json!({"pan": "4111111111111111", "domain": "s", "cvv": "123"}),
            400,
            "malformed_request",
        ),
    ];
    for (body, status, code) in cases {
        let r = post(&mut gw, "/v1/tokens", body.clone()).await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (status, code),
            "{body}"
        );
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            !text.contains("4111111111111"),
            "error echoes the PAN: {text}"
        );
    }
    let r = gw
        .request(
            hyper::Method::POST,
            "/v1/tokens",
            Some(b"{not json".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "malformed_request")
    );
    let big = serde_json::json!({"pan": "4111111111111111", "domain": "x".repeat(40_000)});
    let r = post(&mut gw, "/v1/tokens", big).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (413, "payload_too_large")
    );
    // The server does not read an oversized body, so it closes that connection.
    let mut gw = d.client("gateway").await;
    let r = get(&mut gw, "/v1/nothing-here").await;
    assert_eq!((r.status, error_code(&r).as_str()), (404, "not_found"));
    let r = get(&mut gw, "/v1/tokens/4111119999991111?domain=shop").await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (404, "token_not_found")
    );
    let r = get(&mut gw, "/v1/tokens/41111x?domain=shop").await;
    assert_eq!((r.status, error_code(&r).as_str()), (422, "invalid_token"));
    let r = gw
        .request(hyper::Method::PUT, "/v1/tokens", None)
        .await
        .unwrap();
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (405, "method_not_allowed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_answer() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let r = get(&mut gw, "/healthz").await;
    assert_eq!(r.status, 200);
    let r = get(&mut gw, "/readyz").await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let ready = r.json().unwrap();
    assert_eq!(ready["checks"]["hsm"], "ok");
    assert_eq!(ready["checks"]["store"], "ok");
    tokenize(&mut gw, &random_pan("4", 16), "m").await;
    // Only the monitoring identity reads the metrics.
    let r = get(&mut gw, "/metrics").await;
    assert_eq!((r.status, error_code(&r).as_str()), (403, "forbidden"));
    let mut scraper = d.client("monitoring").await;
    let r = get(&mut scraper, "/metrics").await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.contains("payhsm_requests_total"), "{text}");
    assert!(text.contains("payhsm_request_duration_seconds"), "{text}");
    assert!(text.contains("payhsm_store_duration_seconds"), "{text}");
    assert!(r.headers.get("x-request-id").is_some());
}
