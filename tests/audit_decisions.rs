//! The decision in every audit record is the policy engine's answer: over every audited action,
//! with identities the policy allows and denies, and with requests that fail after the policy
//! allowed them or before it could be asked, each record's `decision` and `policy_ids` equal
//! what the engine (loaded here from the same `policies/` folder) decides for that request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use hyper::Method;
use payhsm::card::Domain;
use payhsm::client::{Client, Response};
use payhsm::policy::{
    Action, EnrolmentContext, PaymentContext, PolicyContext, PolicyEngine, PolicyRequest,
    Principal, Resource,
};
use serde_json::{json, Value};
use support::authenticator::{Attestation, Authenticator};
use support::*;

const GW: &str = "gateway";
const VR: &str = "vault-reader";
const AU: &str = "auditor";
const C1: &str = "custodian-1";
const C2: &str = "custodian-2";
const SHOP: &str = "shop";
const ELSEWHERE: &str = "elsewhere";
const RP: &str = "localhost";

/// The policy question a request makes the daemon ask, as the test knows the request.
enum Ask {
    /// `action` on a token domain.
    Domain(Action, &'static str),
    /// `action` on a relying party.
    RelyingParty(Action, &'static str),
    /// `action` on the key ring.
    KeyRing(Action),
    /// `authorize_payment` in a domain, with the payment's context.
    Payment(&'static str, PaymentContext),
    /// None: the request fails before the policy can be asked.
    NotAsked,
}

fn dom(action: Action, domain: &'static str) -> Ask {
    Ask::Domain(action, domain)
}

fn rp(action: Action, rp_id: &'static str) -> Ask {
    Ask::RelyingParty(action, rp_id)
}

/// `authorize_payment` of `amount` EUR cents to `Shop` in `domain`, by this test's
/// authenticators (packed self attestation, UV set, not backed up).
fn pay(domain: &'static str, amount: u64) -> Ask {
    Ask::Payment(
        domain,
        PaymentContext {
            amount,
            currency: "EUR".to_owned(),
            payee: "Shop".to_owned(),
            user_verified: true,
            trust: "self".to_owned(),
            backup_state: false,
            domain: domain.to_owned(),
            certification: "none".to_owned(),
            mds_status: "none".to_owned(),
            android_verified_boot: "none".to_owned(),
            android_device_locked: false,
        },
    )
}

fn identity(who: &str) -> String {
    format!("spiffe://payhsm.dev/{who}")
}

/// What the engine decides for `ask` by `who`: (`allow`/`deny`/`none`, policy ids).
/// The enrolment context when no Metadata Service BLOB is configured.
static NO_MDS: std::sync::LazyLock<EnrolmentContext> =
    std::sync::LazyLock::new(|| EnrolmentContext {
        certification: "none".to_owned(),
        mds_status: "none".to_owned(),
    });

fn engine_says(engine: &PolicyEngine, who: &str, ask: &Ask) -> (String, Vec<String>) {
    let principal = Principal::new(identity(who));
    let domain;
    let (action, resource, context) = match ask {
        Ask::NotAsked => return ("none".to_owned(), Vec::new()),
        Ask::Domain(action, d) => {
            domain = Domain::parse(d).unwrap();
            (*action, Resource::Domain(&domain), PolicyContext::Empty)
        }
        // An enrolment's context: what the Metadata Service says (none is configured here).
        Ask::RelyingParty(Action::EnrolDevice, id) => (
            Action::EnrolDevice,
            Resource::RelyingParty(id),
            PolicyContext::Enrolment(&NO_MDS),
        ),
        Ask::RelyingParty(action, id) => {
            (*action, Resource::RelyingParty(id), PolicyContext::Empty)
        }
        Ask::KeyRing(action) => (*action, Resource::KeyRing, PolicyContext::Empty),
        Ask::Payment(d, payment) => {
            domain = Domain::parse(d).unwrap();
            let context = PolicyContext::Payment(payment);
            (Action::AuthorizePayment, Resource::Domain(&domain), context)
        }
    };
    let answer = engine.decide(&PolicyRequest {
        principal: &principal,
        action,
        resource,
        context,
    });
    let decision = if answer.allowed() { "allow" } else { "deny" };
    (decision.to_owned(), answer.policy_ids().to_vec())
}

/// One request sent, under its own request id.
struct Sent {
    request_id: String,
    who: &'static str,
    ask: Ask,
    /// Whether it must leave a record (an allowed read of metadata or of the keys leaves none).
    audited: bool,
    /// The HTTP status it got.
    status: u16,
}

/// A daemon, a client per identity, and every request sent so far.
struct Run {
    d: Daemon,
    clients: Vec<(&'static str, Client)>,
    sent: Vec<Sent>,
}

impl Run {
    async fn start() -> Self {
        let d = Daemon::start();
        let mut clients = Vec::new();
        for who in [GW, VR, AU, C1, C2] {
            clients.push((who, d.client(who).await));
        }
        Self {
            d,
            clients,
            sent: Vec::new(),
        }
    }

    async fn call(
        &mut self,
        who: &'static str,
        method: Method,
        path: &str,
        body: Option<Value>,
        ask: Ask,
    ) -> Response {
        let request_id = format!("decision-case-{}", self.sent.len() + 1);
        let client = &mut self.clients.iter_mut().find(|(w, _)| *w == who).unwrap().1;
        let body = body.map(|b| b.to_string().into_bytes());
        let headers = [("x-request-id", request_id.as_str())];
        let r = client
            .request_with_headers(method, path, body, &headers)
            .await
            .unwrap();
        self.sent.push(Sent {
            request_id,
            who,
            ask,
            audited: true,
            status: r.status,
        });
        r
    }

    async fn post(&mut self, who: &'static str, path: &str, body: Value, ask: Ask) -> Response {
        self.call(who, Method::POST, path, Some(body), ask).await
    }

    /// A read the daemon audits only when the policy refuses it.
    async fn read(&mut self, who: &'static str, path: &str, ask: Ask) -> Response {
        let r = self.call(who, Method::GET, path, None, ask).await;
        if let Some(sent) = self.sent.last_mut() {
            sent.audited = r.status >= 400;
        }
        r
    }
}

/// Asserts the status and (for an error) the error code.
fn want(r: &Response, status: u16, code: &str) {
    let got = if r.status >= 400 {
        error_code(r)
    } else {
        String::new()
    };
    assert_eq!((r.status, got.as_str()), (status, code), "{:?}", r.json());
}

/// Tokenizes a card in `domain` and enrols `auth` for it.
async fn token_and_device(
    run: &mut Run,
    auth: &Authenticator,
    domain: &'static str,
) -> (String, String) {
    let card = json!({"pan": random_pan("411111", 16), "domain": domain});
    let r = run
        .post(GW, "/v1/tokens", card, dom(Action::Tokenize, domain))
        .await;
    want(&r, 201, "");
    let token = token_of(&r);
    let user = json!({"user": "alice", "rp_id": RP});
    let r = run
        .post(
            GW,
            "/v1/devices/challenges",
            user,
            rp(Action::CreateDeviceChallenge, RP),
        )
        .await;
    want(&r, 201, "");
    let c = r.json().unwrap();
    let mut body = auth
        .register(c["challenge"].as_str().unwrap(), Attestation::PackedSelf)
        .body(c["challenge_id"].as_str().unwrap());
    body["token"] = token.clone().into();
    body["domain"] = domain.into();
    let r = run
        .post(GW, "/v1/devices", body, rp(Action::EnrolDevice, RP))
        .await;
    want(&r, 201, "");
    (
        token,
        r.json().unwrap()["device_id"].as_str().unwrap().to_owned(),
    )
}

async fn token_requests(run: &mut Run) {
    let card = json!({"pan": random_pan("411111", 16), "domain": SHOP});
    let tokenize = || dom(Action::Tokenize, SHOP);
    let r = run.post(GW, "/v1/tokens", card.clone(), tokenize()).await;
    want(&r, 201, "");
    let token = token_of(&r);
    let r = run.post(GW, "/v1/tokens", card.clone(), tokenize()).await;
    want(&r, 200, "");
    let r = run.post(VR, "/v1/tokens", card, tokenize()).await;
    want(&r, 403, "forbidden");

    let path = "/v1/tokens/detokenize";
    let shop = json!({"token": token, "domain": SHOP});
    let detokenize = |domain| dom(Action::Detokenize, domain);
    let r = run.post(VR, path, shop.clone(), detokenize(SHOP)).await;
    want(&r, 200, "");
    let r = run.post(GW, path, shop.clone(), detokenize(SHOP)).await;
    want(&r, 403, "forbidden");
    // Allowed, then not found: the token lives in another domain.
    let elsewhere = json!({"token": token, "domain": ELSEWHERE});
    let r = run.post(VR, path, elsewhere, detokenize(ELSEWHERE)).await;
    want(&r, 404, "token_not_found");

    let metadata = format!("/v1/tokens/{token}?domain={SHOP}");
    let r = run
        .read(GW, &metadata, dom(Action::ReadMetadata, SHOP))
        .await;
    want(&r, 200, "");
    let r = run
        .read(AU, &metadata, dom(Action::ReadMetadata, SHOP))
        .await;
    want(&r, 403, "forbidden");

    let suspend = format!("/v1/tokens/{token}/suspend?domain={SHOP}");
    let resume = format!("/v1/tokens/{token}/resume?domain={SHOP}");
    let empty = || json!({});
    let (s, rs) = (|| dom(Action::Suspend, SHOP), || dom(Action::Resume, SHOP));
    let r = run.post(GW, &suspend, empty(), s()).await;
    want(&r, 200, "");
    let r = run.post(GW, &suspend, empty(), s()).await;
    want(&r, 409, "token_state_conflict");
    let r = run.post(VR, &suspend, empty(), s()).await;
    want(&r, 403, "forbidden");
    let r = run.post(VR, path, shop, detokenize(SHOP)).await;
    want(&r, 409, "token_suspended");
    let r = run.post(AU, &resume, empty(), rs()).await;
    want(&r, 403, "forbidden");
    let r = run.post(GW, &resume, empty(), rs()).await;
    want(&r, 200, "");

    let delete = format!("/v1/tokens/{token}?domain={SHOP}");
    let del = || dom(Action::Delete, SHOP);
    let r = run.call(VR, Method::DELETE, &delete, None, del()).await;
    want(&r, 403, "forbidden");
    let r = run.call(GW, Method::DELETE, &delete, None, del()).await;
    want(&r, 200, "");
    let r = run.call(GW, Method::DELETE, &delete, None, del()).await;
    want(&r, 404, "token_not_found");
}

async fn device_requests(run: &mut Run) {
    let path = "/v1/devices/challenges";
    let challenge = |rp_id| rp(Action::CreateDeviceChallenge, rp_id);
    let bob = |rp_id: &str| json!({"user": "bob", "rp_id": rp_id});
    let r = run.post(VR, path, bob(RP), challenge(RP)).await;
    want(&r, 403, "forbidden");
    let r = run
        .post(GW, path, bob("evil.example"), challenge("evil.example"))
        .await;
    want(&r, 422, "unknown_relying_party");
    let r = run.post(GW, path, bob(RP), challenge(RP)).await;
    want(&r, 201, "");

    let c = r.json().unwrap();
    let registration = Authenticator::new()
        .register(c["challenge"].as_str().unwrap(), Attestation::PackedSelf)
        .body(c["challenge_id"].as_str().unwrap());
    let enrol = || rp(Action::EnrolDevice, RP);
    // The policy is asked about the challenge's relying party: a vault reader may not enrol.
    let r = run
        .post(VR, "/v1/devices", registration.clone(), enrol())
        .await;
    want(&r, 403, "forbidden");
    let r = run
        .post(GW, "/v1/devices", registration.clone(), enrol())
        .await;
    want(&r, 201, "");
    // Allowed, then refused: the challenge was used.
    let r = run
        .post(GW, "/v1/devices", registration.clone(), enrol())
        .await;
    want(&r, 409, "challenge_used");
    // No such challenge: no relying party to ask the policy about.
    let mut unknown = registration;
    unknown["challenge_id"] = "no-such-challenge".into();
    let r = run.post(GW, "/v1/devices", unknown, Ask::NotAsked).await;
    want(&r, 404, "challenge_not_found");
}

fn payment(token: &str, domain: &str, device_id: &str, amount: u64) -> Value {
    json!({"token": token, "domain": domain, "device_id": device_id, "amount": amount,
           "currency": "EUR", "payee": "Shop"})
}

/// The body answering challenge `c` with `auth`'s assertion at `counter`.
fn answer(auth: &Authenticator, c: &Value, counter: u32) -> Value {
    auth.assert(c["challenge"].as_str().unwrap(), counter, None)
        .body(c["challenge_id"].as_str().unwrap())
}

async fn payment_requests(run: &mut Run) {
    let auth = Authenticator::new();
    let (token, device) = token_and_device(run, &auth, SHOP).await;
    let path = "/v1/authorizations/challenges";
    let issue = |domain| dom(Action::CreateAuthorizationChallenge, domain);
    let r = run
        .post(VR, path, payment(&token, SHOP, &device, 500), issue(SHOP))
        .await;
    want(&r, 403, "forbidden");
    let r = run
        .post(GW, path, payment(&token, SHOP, &device, 0), issue(SHOP))
        .await;
    want(&r, 422, "invalid_amount");
    let r = run
        .post(
            GW,
            path,
            payment(&token, SHOP, "AAAAAAAAAAAAAAAAAAAAAA", 500),
            issue(SHOP),
        )
        .await;
    want(&r, 404, "device_not_found");
    let r = run
        .post(GW, path, payment(&token, SHOP, &device, 500), issue(SHOP))
        .await;
    want(&r, 201, "");
    let small = r.json().unwrap();
    let r = run
        .post(
            GW,
            path,
            payment(&token, SHOP, &device, 10_001),
            issue(SHOP),
        )
        .await;
    want(&r, 201, "");
    let large = r.json().unwrap();

    let path = "/v1/authorizations";
    let r = run
        .post(GW, path, answer(&auth, &small, 1), pay(SHOP, 500))
        .await;
    want(&r, 201, "");
    // Used, or unknown: refused before the payment policy is asked.
    let r = run
        .post(GW, path, answer(&auth, &small, 2), Ask::NotAsked)
        .await;
    want(&r, 409, "challenge_used");
    let mut unknown = answer(&auth, &large, 2);
    unknown["challenge_id"] = "no-such-challenge".into();
    let r = run.post(GW, path, unknown, Ask::NotAsked).await;
    want(&r, 404, "challenge_not_found");
    // Forbidden by the threshold policy.
    let r = run
        .post(GW, path, answer(&auth, &large, 3), pay(SHOP, 10_001))
        .await;
    want(&r, 403, "forbidden");

    // A domain the gateway may not authorize in: denied by default.
    let other = Authenticator::new();
    let (token, device) = token_and_device(run, &other, ELSEWHERE).await;
    let body = payment(&token, ELSEWHERE, &device, 500);
    let r = run
        .post(GW, "/v1/authorizations/challenges", body, issue(ELSEWHERE))
        .await;
    want(&r, 201, "");
    let c = r.json().unwrap();
    let r = run
        .post(GW, path, answer(&other, &c, 1), pay(ELSEWHERE, 500))
        .await;
    want(&r, 403, "forbidden");
}

async fn key_requests(run: &mut Run) {
    let ring = Ask::KeyRing;
    let r = run.read(C1, "/v1/keys", ring(Action::ReadKeys)).await;
    want(&r, 200, "");
    let r = run.read(GW, "/v1/keys", ring(Action::ReadKeys)).await;
    want(&r, 403, "forbidden");

    let path = "/v1/keys/changes";
    let approve = || ring(Action::ApproveKeyChange);
    let rotate = json!({"change": "rotate", "purpose": "data"});
    let r = run.post(GW, path, rotate.clone(), approve()).await;
    want(&r, 403, "forbidden");
    let r = run.post(C1, path, rotate.clone(), approve()).await;
    want(&r, 202, "");
    // Allowed by the policy, refused by dual control.
    let r = run.post(C1, path, rotate.clone(), approve()).await;
    want(&r, 409, "same_custodian");
    let r = run.post(C2, path, rotate, approve()).await;
    want(&r, 200, "");
    let versioned = json!({"change": "rotate", "purpose": "data", "version": 3});
    let r = run.post(C1, path, versioned, approve()).await;
    want(&r, 422, "unsupported_key_change");
    let retire = json!({"change": "retire", "purpose": "data", "version": 1});
    let r = run.post(C1, path, retire, approve()).await;
    want(&r, 409, "key_in_use");

    let path = "/v1/keys/rewrap";
    let r = run
        .post(GW, path, json!({}), ring(Action::RewrapKeys))
        .await;
    want(&r, 403, "forbidden");
    let r = run
        .post(C2, path, json!({}), ring(Action::RewrapKeys))
        .await;
    want(&r, 200, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_records_decision_and_policy_ids_are_what_the_engine_decided() {
    let mut run = Run::start().await;
    token_requests(&mut run).await;
    device_requests(&mut run).await;
    payment_requests(&mut run).await;
    key_requests(&mut run).await;

    let engine = PolicyEngine::load(&repo().join("policies")).unwrap();
    let records: Vec<Value> = audit_export(&run.d)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l.get("seq").is_some())
        .collect();
    let mut compared = 0;
    let mut wrong = Vec::new();
    // (decision, any policy ids, the request failed)
    let mut kinds = std::collections::BTreeSet::new();
    for sent in &run.sent {
        let (decision, policy_ids) = engine_says(&engine, sent.who, &sent.ask);
        let id = sent.request_id.as_str();
        let mine: Vec<&Value> = records.iter().filter(|r| r["request_id"] == id).collect();
        assert!(!sent.audited || !mine.is_empty(), "{id}: no record");
        for r in mine {
            let what = format!("{id} {} {} -> {}", sent.who, r["action"], r["outcome"]);
            assert_eq!(r["principal"], identity(sent.who).as_str(), "{what}");
            if (&r["decision"], &r["policy_ids"]) != (&json!(decision), &json!(policy_ids)) {
                wrong.push(format!(
                    "{what}: the record says {} {}, the engine {decision} {policy_ids:?}",
                    r["decision"], r["policy_ids"]
                ));
            }
            kinds.insert((decision.clone(), !policy_ids.is_empty(), sent.status >= 400));
            compared += 1;
        }
    }
    assert!(
        wrong.is_empty(),
        "records that misstate the decision:\n{}",
        wrong.join("\n")
    );
    // Allows, explicit forbids, denials by default and "not asked" were all compared, and so
    // were requests that failed after the policy allowed them.
    for kind in [
        ("allow", true, false),
        ("allow", true, true),
        ("deny", true, true),
        ("deny", false, true),
        ("none", false, true),
    ] {
        let kind = (kind.0.to_owned(), kind.1, kind.2);
        assert!(
            kinds.contains(&kind),
            "no record of kind {kind:?}: {kinds:?}"
        );
    }
    // Every other record is the daemon's own, about which no policy was asked.
    let ours = |r: &&Value| {
        run.sent
            .iter()
            .any(|s| r["request_id"] == s.request_id.as_str())
    };
    let others: Vec<&Value> = records.iter().filter(|r| !ours(r)).collect();
    assert_eq!(compared + others.len(), records.len());
    for r in others {
        assert_eq!(r["principal"], "payhsmd", "{r}");
        assert_eq!(
            (&r["decision"], &r["policy_ids"]),
            (&json!("none"), &json!([])),
            "{r}"
        );
    }
}
