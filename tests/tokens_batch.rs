//! Token batches end to end (`POST /v1/tokens/batch`, `POST /v1/tokens/detokenize/batch`):
//! real mTLS, real SoftHSM2, real SQLite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use serde_json::{json, Value};
use support::*;

/// The exported audit records of `action`.
fn audit_records(d: &Daemon, action: &str) -> Vec<Value> {
    audit_export(d)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["action"] == action)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_item_and_audits_each_good_one() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let known = random_pan("411111", 16);
    let first = token_of(&tokenize(&mut gw, &known, "shop").await);
    let fresh = random_pan("550000", 16);
    let mut bad_luhn = random_pan("400000", 16);
    let last = bad_luhn.pop().unwrap();
    bad_luhn.push(if last == '9' {
        '0'
    } else {
        char::from(last as u8 + 1)
    });
    let items = json!([
        {"pan": fresh, "exp_month": 7, "exp_year": 2031},
        {"pan": bad_luhn},
        {"pan": known},
        {"pan": "41111"},
        {"pan": random_pan("601100", 16), "exp_month": 13, "exp_year": 2031},
        {"pan": "4111 1111 1111 1111"},
        {"pan": fresh},
    ]);
    let r = post(
        &mut gw,
        "/v1/tokens/batch",
        json!({"domain": "shop", "items": items}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let results = r.json().unwrap()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 7);
    for (i, item) in results.iter().enumerate() {
        assert_eq!(item["index"], i);
    }
    assert_eq!(results[0]["status"], "created");
    let fresh_token = results[0]["token"].as_str().unwrap().to_owned();
    assert_eq!(results[2]["status"], "existing");
    assert_eq!(results[2]["token"], first.as_str());
    // The same PAN twice in one batch converges on one token.
    assert_eq!(results[6]["status"], "existing");
    assert_eq!(results[6]["token"], fresh_token.as_str());
    for (i, code) in [
        (1, "invalid_pan"),
        (3, "invalid_pan"),
        (4, "invalid_expiry"),
        (5, "invalid_pan"),
    ] {
        assert_eq!(results[i]["error"]["code"], code, "item {i}");
        assert!(results[i].get("token").is_none());
        assert!(!results[i].to_string().contains(&bad_luhn));
    }
    // The batch token is the single route's token.
    let single = tokenize(&mut gw, &fresh, "shop").await;
    assert_eq!(
        (single.status, token_of(&single)),
        (200, fresh_token.clone())
    );

    // One record per good item, as the single route writes it; none for refused items.
    let records = audit_records(&d, "tokenize");
    let batch_id = r.headers["x-request-id"].to_str().unwrap().to_owned();
    let of_batch: Vec<&Value> = records
        .iter()
        .filter(|rec| rec["request_id"] == batch_id.as_str())
        .collect();
    let outcomes: Vec<(&str, &str, &str)> = of_batch
        .iter()
        .map(|rec| {
            (
                rec["token"].as_str().unwrap(),
                rec["outcome"].as_str().unwrap(),
                rec["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(outcomes.contains(&(fresh_token.as_str(), "created", "allow")));
    assert!(outcomes.contains(&(first.as_str(), "existing", "allow")));
    assert!(outcomes.contains(&(fresh_token.as_str(), "existing", "allow")));
    for rec in &of_batch {
        assert_eq!(rec["principal"], records[0]["principal"]);
        assert_eq!(rec["domain"], "shop");
        assert_eq!(rec["last4"].as_str().unwrap().len(), 4);
    }
    assert!(!audit_export(&d).contains(&fresh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_the_limit_is_refused_whole() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let items: Vec<Value> = (0..501)
        .map(|_| json!({"pan": random_pan("4", 16)}))
        .collect();
    let r = post(
        &mut gw,
        "/v1/tokens/batch",
        json!({"domain": "shop", "items": items}),
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (413, "batch_too_large")
    );
    assert!(audit_records(&d, "tokenize").is_empty());
    // 500 is the limit, and fits the batch body limit.
    let items: Vec<Value> = (0..500)
        .map(|_| json!({"pan": random_pan("4", 19), "exp_month": 12, "exp_year": 2030}))
        .collect();
    let r = post(
        &mut gw,
        "/v1/tokens/batch",
        json!({"domain": "shop", "items": items}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let results = r.json().unwrap()["results"].as_array().unwrap().clone();
    assert!(results.iter().all(|i| i["status"] == "created"));
    assert_eq!(audit_records(&d, "tokenize").len(), 500);
    let tokens: Vec<Value> = (0..501).map(|_| json!("4111119876541111")).collect();
    let mut reader = d.client("vault-reader").await;
    let r = post(
        &mut reader,
        "/v1/tokens/detokenize/batch",
        json!({"domain": "shop", "tokens": tokens}),
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (413, "batch_too_large")
    );
    // A body over server.max_batch_body_bytes (128 KiB) is refused before it is read.
    let items: Vec<Value> = (0..3000)
        .map(|_| json!({"pan": random_pan("4", 19), "exp_month": 12, "exp_year": 2030}))
        .collect();
    let mut other = d.client("gateway").await;
    let sent = other
        .request(
            hyper::Method::POST,
            "/v1/tokens/batch",
            Some(
                json!({"domain": "shop", "items": items})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    match sent {
        Ok(r) => assert_eq!(
            (r.status, error_code(&r).as_str()),
            (413, "payload_too_large")
        ),
        // The daemon answers 413 from the headers and closes without reading the body: a
        // client still writing it may meet the closed connection before it reads the answer.
        Err(e) => assert!(
            format!("{e}").contains("Broken pipe") || format!("{e}").contains("reset"),
            "{e}"
        ),
    }
    assert_eq!(audit_records(&d, "tokenize").len(), 500);
    // A malformed batch fails whole.
    let r = post(
        &mut gw,
        "/v1/tokens/batch",
        json!({"domain": "shop", "items": [{"pan": 4111111111111111u64}]}),
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "malformed_request")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detokenize_batch_is_for_the_vault_reader_item_by_item() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let pans: Vec<String> = (0..3).map(|_| random_pan("520000", 16)).collect();
    let r = post(
        &mut gw,
        "/v1/tokens/batch",
        json!({"domain": "shop", "items": [
            {"pan": pans[0], "exp_month": 1, "exp_year": 2030},
            {"pan": pans[1]},
            {"pan": pans[2]},
        ]}),
    )
    .await;
    let tokens: Vec<String> = r.json().unwrap()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["token"].as_str().unwrap().to_owned())
        .collect();
    let r = post(
        &mut gw,
        &format!("/v1/tokens/{}/suspend?domain=shop", tokens[1]),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200);
    let unknown = "4111119876541110";
    let body = json!({"domain": "shop", "tokens": [
        tokens[0], tokens[1], unknown, pans[2], "abc", tokens[2]
    ]});

    // The gateway may not: refused whole, and audited.
    let r = post(&mut gw, "/v1/tokens/detokenize/batch", body.clone()).await;
    assert_eq!((r.status, error_code(&r).as_str()), (403, "forbidden"));
    assert!(!String::from_utf8_lossy(&r.body).contains(&pans[0]));
    let refused = audit_records(&d, "detokenize");
    assert_eq!(refused.len(), 1);
    assert_eq!(
        (
            refused[0]["outcome"].as_str(),
            refused[0]["decision"].as_str()
        ),
        (Some("forbidden"), Some("deny"))
    );

    let mut reader = d.client("vault-reader").await;
    let r = post(&mut reader, "/v1/tokens/detokenize/batch", body).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let results = r.json().unwrap()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 6);
    // Each release carries its receipt (checked against the log below).
    let receipt_of = |i: usize| results[i]["receipt"].clone();
    let mut without_receipt = results.clone();
    for i in [0, 5] {
        without_receipt[i]
            .as_object_mut()
            .unwrap()
            .remove("receipt");
    }
    assert_eq!(
        without_receipt[0],
        json!({"index": 0, "pan": pans[0], "exp_month": 1, "exp_year": 2030})
    );
    assert_eq!(results[1]["error"]["code"], "token_suspended");
    assert_eq!(results[2]["error"]["code"], "token_not_found");
    assert_eq!(results[3]["error"]["code"], "pan_as_token");
    assert_eq!(results[4]["error"]["code"], "invalid_token");
    assert_eq!(
        without_receipt[5],
        json!({"index": 5, "pan": pans[2], "exp_month": null, "exp_year": null})
    );
    for (i, token) in [(0, &tokens[0]), (5, &tokens[2])] {
        let receipt = receipt_of(i);
        let record = audit_records(&d, "detokenize")
            .into_iter()
            .find(|rec| rec["seq"] == receipt["seq"])
            .unwrap_or_else(|| panic!("item {i}: no record {receipt}"));
        assert_eq!(record["hash"], receipt["record_hash"]);
        assert_eq!(
            (record["token"].as_str(), record["outcome"].as_str()),
            (Some(token.as_str()), Some("ok"))
        );
    }
    for (i, item) in results.iter().enumerate().take(5).skip(1) {
        assert!(item.get("pan").is_none(), "{i}");
    }

    // One record per token that reached the store, each with its outcome.
    let id = r.headers["x-request-id"].to_str().unwrap().to_owned();
    let mut outcomes: Vec<(String, String)> = audit_records(&d, "detokenize")
        .iter()
        .filter(|rec| rec["request_id"] == id.as_str())
        .map(|rec| {
            (
                rec["token"].as_str().unwrap().to_owned(),
                rec["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    outcomes.sort();
    let masked = payhsm::card::Token::parse(unknown).unwrap().masked();
    let mut expected = vec![
        (tokens[0].clone(), "ok".to_owned()),
        (tokens[1].clone(), "token_suspended".to_owned()),
        (masked, "token_not_found".to_owned()),
        (tokens[2].clone(), "ok".to_owned()),
    ];
    expected.sort();
    assert_eq!(outcomes, expected);
    assert!(!audit_export(&d).contains(&pans[0]));
}
