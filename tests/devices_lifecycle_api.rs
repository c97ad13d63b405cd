//! The device lifecycle API end to end (issue 18): real mTLS, real SoftHSM2, real SQLite (and
//! PostgreSQL for two replicas), devices enrolled by the software authenticator. Listing by
//! user and by card, reading one, revoking one (final, audited), and what a revocation does to
//! payments: no challenge, and no authorization, not even for a challenge issued before it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use payhsm::client::{Client, Response};
use support::authenticator::Authenticator;
use support::*;

const DOMAIN: &str = "shop";

fn status_code(r: &Response) -> (u16, String) {
    (r.status, error_code(r))
}

fn payment(token: &str, device_id: &str) -> serde_json::Value {
    serde_json::json!({
        "token": token,
        "domain": DOMAIN,
        "device_id": device_id,
        "amount": 500,
        "currency": "EUR",
        "payee": "Shop",
    })
}

/// A payment challenge: (challenge_id, challenge).
async fn issue(c: &mut Client, token: &str, device_id: &str) -> (String, String) {
    let r = post(
        c,
        "/v1/authorizations/challenges",
        payment(token, device_id),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let b = r.json().unwrap();
    (
        b["challenge_id"].as_str().unwrap().to_owned(),
        b["challenge"].as_str().unwrap().to_owned(),
    )
}

async fn revoke(c: &mut Client, device_id: &str, reason: &str) -> Response {
    post(
        c,
        &format!("/v1/devices/{device_id}/revoke"),
        serde_json::json!({ "reason": reason }),
    )
    .await
}

fn audit_lines(d: &Daemon) -> Vec<serde_json::Value> {
    audit_export(d)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_listed_by_user_and_by_card_and_read_by_id() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let auth = Authenticator::new();
    let (token, device_id) = enrol_for_token(&mut gw, &auth, DOMAIN).await;
    let other = Authenticator::new();
    let (other_token, other_device) = enrol_for_token(&mut gw, &other, DOMAIN).await;

    let r = get(&mut gw, &format!("/v1/devices/{device_id}")).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let one = r.json().unwrap();
    assert_eq!(one["device_id"], device_id.as_str());
    assert_eq!(one["format"], "packed");
    assert_eq!(one["trust"], "self");
    assert_eq!(one["aaguid"].as_str().unwrap().len(), 36);
    assert_eq!(one["user"], "alice");
    assert_eq!(one["token"], token.as_str());
    assert_eq!(one["domain"], DOMAIN);
    assert!(one["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(one["last_used_at"], serde_json::Value::Null);
    assert_eq!(one["sign_count"], 0);
    assert_eq!(one["status"], "active");
    assert!(one.get("revoked_at").is_none() && one.get("revoke_reason").is_none());
    // Nothing of the credential's key is shown.
    assert!(one.get("public_key").is_none() && one.get("credential_id").is_none());

    let r = get(
        &mut gw,
        &format!("/v1/devices?token={token}&domain={DOMAIN}"),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json().unwrap(), serde_json::json!({ "devices": [one] }));
    let r = get(
        &mut gw,
        &format!("/v1/devices?token={other_token}&domain={DOMAIN}"),
    )
    .await;
    assert_eq!(
        r.json().unwrap()["devices"][0]["device_id"],
        other_device.as_str()
    );
    let r = get(&mut gw, "/v1/devices?user=alice").await;
    let ids: Vec<_> = r.json().unwrap()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [device_id.clone(), other_device]);
    let r = get(&mut gw, "/v1/devices?user=nobody%20here").await;
    assert_eq!(r.json().unwrap(), serde_json::json!({ "devices": [] }));

    // A bad or missing query is malformed; an unknown id is not found, and audited.
    for q in [
        "",
        "?user=",
        "?token=4111119876541111",
        "?user=a&domain=shop",
        "?x=1",
    ] {
        let r = get(&mut gw, &format!("/v1/devices{q}")).await;
        assert_eq!(status_code(&r), (400, "malformed_request".into()), "{q}");
    }
    let r = get(&mut gw, "/v1/devices/no-such-device").await;
    assert_eq!(status_code(&r), (404, "device_not_found".into()));
    let audited = audit_lines(&d)
        .into_iter()
        .any(|l| l["action"] == "read_device" && l["outcome"] == "device_not_found");
    assert!(audited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_gets_no_challenge_and_authorizes_nothing_and_stays_revoked() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let auth = Authenticator::new();
    let (token, device_id) = enrol_for_token(&mut gw, &auth, DOMAIN).await;
    // One payment goes through: last_used_at and the counter move.
    let (id, ch) = issue(&mut gw, &token, &device_id).await;
    let r = post(
        &mut gw,
        "/v1/authorizations",
        auth.assert(&ch, 1, None).body(&id),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let used = get(&mut gw, &format!("/v1/devices/{device_id}"))
        .await
        .json()
        .unwrap();
    assert!(used["last_used_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(used["sign_count"], 1);
    // A challenge issued before the revocation, answered after it.
    let (in_flight, in_flight_ch) = issue(&mut gw, &token, &device_id).await;

    let r = revoke(&mut gw, &device_id, "nonsense").await;
    assert_eq!(status_code(&r), (422, "invalid_revocation_reason".into()));
    let r = revoke(&mut gw, &device_id, "stolen").await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let revoked = r.json().unwrap();
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revoke_reason"], "stolen");
    assert!(revoked["revoked_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        get(&mut gw, &format!("/v1/devices/{device_id}"))
            .await
            .json()
            .unwrap(),
        revoked
    );

    let r = post(
        &mut gw,
        "/v1/authorizations",
        auth.assert(&in_flight_ch, 2, None).body(&in_flight),
    )
    .await;
    assert_eq!(status_code(&r), (409, "device_revoked".into()));
    let r = post(
        &mut gw,
        "/v1/authorizations/challenges",
        payment(&token, &device_id),
    )
    .await;
    assert_eq!(status_code(&r), (409, "device_revoked".into()));
    // Final: a second revocation is refused, whatever the reason.
    for reason in ["stolen", "lost"] {
        let r = revoke(&mut gw, &device_id, reason).await;
        assert_eq!(status_code(&r), (409, "device_revoked".into()), "{reason}");
    }
    let r = revoke(&mut gw, "no-such-device", "lost").await;
    assert_eq!(status_code(&r), (404, "device_not_found".into()));

    let lines = audit_lines(&d);
    let of = |action: &str| -> Vec<(String, String)> {
        lines
            .iter()
            .filter(|l| l["action"] == action)
            .map(|l| {
                (
                    l["outcome"].as_str().unwrap().to_owned(),
                    l["detail"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let revocations = of("revoke_device");
    let outcomes: Vec<_> = revocations.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "invalid_revocation_reason",
            "revoked",
            "device_revoked",
            "device_revoked",
            "device_not_found"
        ]
    );
    assert!(
        revocations[1].1.contains("reason=stolen"),
        "{revocations:?}"
    );
    assert!(revocations[1].1.contains(&device_id), "{revocations:?}");
    let refused: Vec<_> = of("authorization_refused")
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(refused, ["device_revoked"]);
    let challenge_refusals = of("create_authorization_challenge");
    assert!(challenge_refusals
        .iter()
        .any(|(o, _)| o == "device_revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_list_read_and_revoke_auditors_only_list_and_read_vault_readers_nothing() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let auth = Authenticator::new();
    let (token, device_id) = enrol_for_token(&mut gw, &auth, DOMAIN).await;
    let list_user = "/v1/devices?user=alice".to_owned();
    let list_card = format!("/v1/devices?token={token}&domain={DOMAIN}");
    let read = format!("/v1/devices/{device_id}");
    // (who, may list and read, may revoke). The gateway goes last: its revocation is final.
    for (who, reads, revokes) in [
        ("auditor", true, false),
        ("vault-reader", false, false),
        ("monitoring", false, false),
        ("custodian-1", false, false),
        ("gateway", true, true),
    ] {
        let mut c = d.client(who).await;
        for path in [&list_user, &list_card, &read] {
            let r = get(&mut c, path).await;
            let want = if reads { 200 } else { 403 };
            assert_eq!(r.status, want, "{who} {path} {:?}", r.json());
            if !reads {
                assert_eq!(error_code(&r), "forbidden");
            }
        }
        let r = revoke(&mut c, &device_id, "lost").await;
        let want = if revokes { 200 } else { 403 };
        assert_eq!(r.status, want, "{who} revoke {:?}", r.json());
    }
    // Each refusal is audited with the engine's deny.
    let denied: Vec<_> = audit_lines(&d)
        .into_iter()
        .filter(|l| l["outcome"] == "forbidden")
        .map(|l| {
            (
                l["principal"].as_str().unwrap().to_owned(),
                l["action"].clone(),
            )
        })
        .collect();
    assert!(denied.contains(&("spiffe://payhsm.dev/auditor".into(), "revoke_device".into())));
    for action in ["list_devices", "read_device", "revoke_device"] {
        assert!(
            denied.contains(&("spiffe://payhsm.dev/vault-reader".into(), action.into())),
            "{action} {denied:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_revoked_on_one_replica_authorizes_nothing_on_the_other() {
    let url = postgres::fresh_database();
    let a = Daemon::start_with(&["--postgres", &url]);
    let b = a.replica(&["--postgres", &url]);
    let mut gw_a = a.client("gateway").await;
    let mut gw_b = b.client("gateway").await;
    let auth = Authenticator::new();
    let (token, device_id) = enrol_for_token(&mut gw_a, &auth, DOMAIN).await;
    // A challenge from B before the revocation on A, answered on B after it.
    let (id, ch) = issue(&mut gw_b, &token, &device_id).await;
    let r = revoke(&mut gw_a, &device_id, "compromised").await;
    assert_eq!(r.status, 200, "{:?}", r.json());

    let r = post(
        &mut gw_b,
        "/v1/authorizations",
        auth.assert(&ch, 1, None).body(&id),
    )
    .await;
    assert_eq!(status_code(&r), (409, "device_revoked".into()));
    let r = post(
        &mut gw_b,
        "/v1/authorizations/challenges",
        payment(&token, &device_id),
    )
    .await;
    assert_eq!(status_code(&r), (409, "device_revoked".into()));
    let r = revoke(&mut gw_b, &device_id, "lost").await;
    assert_eq!(status_code(&r), (409, "device_revoked".into()));
    let seen = get(&mut gw_b, &format!("/v1/devices/{device_id}"))
        .await
        .json()
        .unwrap();
    assert_eq!(seen["status"], "revoked");
    assert_eq!(seen["revoke_reason"], "compromised");
}

/// `payhsm devices ARGS` as the gateway, against daemon `d`: (exit code, stdout as JSON).
fn devices_cli(d: &Daemon, args: &[&str]) -> (i32, serde_json::Value) {
    let url = format!("https://{}", d.addr);
    let (cert, key) = (
        keys().join("clients/gateway.pem"),
        keys().join("clients/gateway.key"),
    );
    let mut all = vec!["devices"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--url",
        &url,
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    let out = payhsm(&all);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_gets_and_revokes_devices() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let auth = Authenticator::new();
    let (token, device_id) = enrol_for_token(&mut gw, &auth, DOMAIN).await;

    let (code, listed) = devices_cli(&d, &["list", "--token", &token, "--domain", DOMAIN]);
    assert_eq!(code, 0, "{listed}");
    assert_eq!(listed["devices"][0]["device_id"], device_id.as_str());
    let (code, listed) = devices_cli(&d, &["list", "--user", "alice"]);
    assert_eq!((code, listed["devices"].as_array().unwrap().len()), (0, 1));
    let (code, one) = devices_cli(&d, &["get", &device_id]);
    assert_eq!((code, one["status"].as_str()), (0, Some("active")));
    let (code, revoked) = devices_cli(&d, &["revoke", &device_id, "--reason", "lost"]);
    assert_eq!(code, 0, "{revoked}");
    assert_eq!(revoked["revoke_reason"], "lost");
    let (code, _) = devices_cli(&d, &["revoke", &device_id, "--reason", "lost"]);
    assert_ne!(code, 0, "a second revocation fails");
}

/// A revocation on one replica racing an approval on the other (PostgreSQL), nine times: the
/// approval either committed before the revocation, its audit record ahead of the
/// revocation's in the one chain, or was refused 409 `device_revoked`. None is approved after
/// the revocation committed, and the device ends revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_racing_a_revocation_on_the_other_replica_never_commits_after_it() {
    let url = postgres::fresh_database();
    let a = Daemon::start_with(&["--postgres", &url]);
    let b = a.replica(&["--postgres", &url]);
    let mut gw_a = a.client("gateway").await;
    let mut gw_b = b.client("gateway").await;
    // (the approval's request id when it was approved, the revocation's request id)
    let mut raced = Vec::new();
    // The revocation leaves later each round: the first rounds race (either may commit
    // first), the last one lets the approval through first.
    for delay_us in [0, 250, 500, 750, 1000, 1500, 2000, 3000, 500_000] {
        let auth = Authenticator::new();
        let (token, device_id) = enrol_for_token(&mut gw_a, &auth, DOMAIN).await;
        let (id, ch) = issue(&mut gw_b, &token, &device_id).await;
        let body = auth.assert(&ch, 1, None).body(&id);
        let (paid, revoked) = tokio::join!(post(&mut gw_b, "/v1/authorizations", body), async {
            tokio::time::sleep(std::time::Duration::from_micros(delay_us)).await;
            revoke(&mut gw_a, &device_id, "stolen").await
        });
        assert_eq!(revoked.status, 200, "{:?}", revoked.json());
        let request_id = |r: &Response| r.headers["x-request-id"].to_str().unwrap().to_owned();
        match paid.status {
            201 => raced.push((Some(request_id(&paid)), request_id(&revoked))),
            _ => {
                assert_eq!(status_code(&paid), (409, "device_revoked".into()));
                raced.push((None, request_id(&revoked)));
            }
        }
        let seen = get(&mut gw_b, &format!("/v1/devices/{device_id}")).await;
        assert_eq!(seen.json().unwrap()["status"], "revoked");
    }
    let approved = raced.iter().filter(|(a, _)| a.is_some()).count();
    eprintln!("{approved} of {} approvals won the race", raced.len());
    assert!(approved > 0, "no approval to compare with its revocation");
    let mut auditor = a.client("auditor").await;
    let page = get(&mut auditor, "/v1/audit?limit=1000")
        .await
        .json()
        .unwrap();
    let records = page["records"].as_array().unwrap();
    let seq_of = |id: &str, outcome: &str| {
        records
            .iter()
            .find(|r| r["request_id"] == id && r["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {outcome} record for {id}"))["seq"]
            .as_u64()
            .unwrap()
    };
    for (approved, revocation) in &raced {
        if let Some(approved) = approved {
            assert!(
                seq_of(approved, "approved") < seq_of(revocation, "revoked"),
                "approval {approved} committed after revocation {revocation}"
            );
        }
    }
}
