//! The FIDO Metadata Service in a running daemon (issue 19): real mTLS, SoftHSM2, SQLite, the
//! software authenticator. With the conformance BLOB (`payhsmd dev --mds`): each compromise
//! status refuses enrolment with its code. With BLOBs this test signs under its own MDS root:
//! an authenticator's attestation root comes from its metadata entry, its certification level
//! reaches the policy, a reload on SIGHUP that reports its model compromised stops its
//! payments (audited), and a reload to an older BLOB is refused as a rollback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use payhsm::client::{Client, Response};
use payhsm::webauthn::attestation::mds::{format_aaguid, parse_aaguid};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::authenticator::{Attestation, Authenticator};
use support::*;

const DOMAIN: &str = "shop";

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/mds")
}

fn status_code(r: &Response) -> (u16, String) {
    (r.status, error_code(r))
}

/// Asks for an enrolment challenge and answers it with `auth`'s registration.
async fn enrol(gw: &mut Client, auth: &Authenticator, attestation: Attestation) -> Response {
    let r = post(
        gw,
        "/v1/devices/challenges",
        json!({"user": "alice", "rp_id": "localhost"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let c = r.json().unwrap();
    let body = auth
        .register(c["challenge"].as_str().unwrap(), attestation)
        .body(c["challenge_id"].as_str().unwrap());
    post(gw, "/v1/devices", body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_compromise_status_of_the_conformance_blob_refuses_enrolment_with_its_code() {
    let d = Daemon::start_with(&[
        "--mds",
        vectors().join("conformance-blob.jwt").to_str().unwrap(),
        "--mds-anchor",
        vectors().join("blob-intermediate.pem").to_str().unwrap(),
    ]);
    // The BLOB is stale (nextUpdate 2023-11-08): dev warns and keeps it.
    assert!(d.logs().contains("past its nextUpdate"), "{}", d.logs());
    let mut gw = d.client("gateway").await;
    for (aaguid, code) in [
        (
            "8cfa178e-b1f5-40ce-8f5f-8273e8109940",
            "mds_user_verification_bypass",
        ),
        (
            "9533c442-6810-4d9c-a365-b13590bfe3b8",
            "mds_user_key_physical_compromise",
        ),
        (
            "71bf3f7f-ad51-432a-aaf0-4783108d5620",
            "mds_attestation_key_compromise",
        ),
        (
            "7061d58b-c22e-429b-a29b-c8bcc4857b40",
            "mds_user_key_remote_compromise",
        ),
    ] {
        // Whatever the attestation: none, or self.
        for attestation in [Attestation::None, Attestation::PackedSelf] {
            let mut auth = Authenticator::new();
            auth.aaguid = parse_aaguid(aaguid).unwrap();
            let r = enrol(&mut gw, &auth, attestation).await;
            assert_eq!(status_code(&r), (422, code.to_owned()), "{aaguid}");
        }
    }
    // A model the BLOB certifies enrols (self attestation: trust self).
    let mut auth = Authenticator::new();
    auth.aaguid = parse_aaguid("45cde785-b9a1-4a03-a399-5d08f7f27331").unwrap();
    let r = enrol(&mut gw, &auth, Attestation::PackedSelf).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    // The refusals are audited, with the status's code as the outcome.
    let export = audit_export(&d);
    for code in [
        "mds_user_verification_bypass",
        "mds_attestation_key_compromise",
    ] {
        assert!(
            export.contains(&format!("\"outcome\":\"{code}\"")),
            "{code} not audited"
        );
    }
    let mut monitor = d.client("monitoring").await;
    let metrics = String::from_utf8(get(&mut monitor, "/metrics").await.body).unwrap();
    assert!(metrics.contains("payhsm_mds_blob_number 42"), "{metrics}");
    assert!(metrics.contains("payhsm_mds_blob_seconds_past_next_update "));
}

/// This test's MDS root and BLOB signer, and an authenticator vendor's attestation CA.
struct Pki {
    mds_root_pem: String,
    signer_der: Vec<u8>,
    signer: EcdsaKeyPair,
    vendor_root_der: Vec<u8>,
    attestation_key: Vec<u8>,
    attestation_cert: Vec<u8>,
}

fn ca(cn: &str) -> (CertificateParams, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (params, key)
}

impl Pki {
    fn new() -> Self {
        let (root, root_key) = ca("test MDS root");
        let root_cert = root.self_signed(&root_key).unwrap();
        let issuer = Issuer::new(root, root_key);
        let signer_key = KeyPair::generate().unwrap();
        let mut signer = CertificateParams::new(Vec::<String>::new()).unwrap();
        signer
            .distinguished_name
            .push(DnType::CommonName, "test MDS BLOB signer");
        let signer_cert = signer.signed_by(&signer_key, &issuer).unwrap();

        let (vendor, vendor_key) = ca("test authenticator vendor root");
        let vendor_cert = vendor.self_signed(&vendor_key).unwrap();
        let vendor_issuer = Issuer::new(vendor, vendor_key);
        let att_key = KeyPair::generate().unwrap();
        let mut att = CertificateParams::new(Vec::<String>::new()).unwrap();
        for (t, v) in [
            (DnType::CountryName, "SE"),
            (DnType::OrganizationName, "Test Vendor"),
            (DnType::OrganizationalUnitName, "Authenticator Attestation"),
            (DnType::CommonName, "Test Authenticator"),
        ] {
            att.distinguished_name.push(t, v);
        }
        att.is_ca = IsCa::ExplicitNoCa;
        let att_cert = att.signed_by(&att_key, &vendor_issuer).unwrap();
        let rng = ring::rand::SystemRandom::new();
        Self {
            mds_root_pem: root_cert.pem(),
            signer_der: signer_cert.der().to_vec(),
            signer: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &signer_key.serialize_der(),
                &rng,
            )
            .unwrap(),
            vendor_root_der: vendor_cert.der().to_vec(),
            attestation_key: att_key.serialize_der(),
            attestation_cert: att_cert.der().to_vec(),
        }
    }

    /// A BLOB `no` whose entries are (AAGUID, latest status, listing the vendor root).
    fn blob(&self, no: u64, entries: &[(&str, &str, bool)]) -> String {
        let header =
            json!({"alg": "ES256", "typ": "JWT", "x5c": [STANDARD.encode(&self.signer_der)]});
        let entries: Vec<Value> = entries
            .iter()
            .map(|(aaguid, status, rooted)| {
                let roots: Vec<String> = if *rooted {
                    vec![STANDARD.encode(&self.vendor_root_der)]
                } else {
                    Vec::new()
                };
                json!({
                    "aaguid": aaguid,
                    "metadataStatement": {
                        "aaguid": aaguid,
                        "description": format!("test model {aaguid}"),
                        "attestationRootCertificates": roots,
                    },
                    "statusReports": [
                        {"status": "FIDO_CERTIFIED_L1", "effectiveDate": "2020-01-01"},
                        {"status": status, "effectiveDate": format!("2024-01-{:02}", no)},
                    ],
                    "timeOfLastStatusChange": "2024-01-01",
                })
            })
            .collect();
        let payload = json!({"legalHeader": "test", "no": no, "nextUpdate": "2099-01-01", "entries": entries});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let rng = ring::rand::SystemRandom::new();
        let sig = self.signer.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn attestation(&self) -> Attestation {
        Attestation::PackedFull {
            key_pkcs8: self.attestation_key.clone(),
            x5c: vec![self.attestation_cert.clone()],
        }
    }
}

/// A payment of `amount` minor units by `device_id`, answered by `auth` (counter `n`).
async fn pay(
    gw: &mut Client,
    auth: &Authenticator,
    token: &str,
    device_id: &str,
    amount: u64,
    n: u32,
) -> Response {
    let r = post(
        gw,
        "/v1/authorizations/challenges",
        json!({"token": token, "domain": DOMAIN, "device_id": device_id, "amount": amount,
               "currency": "EUR", "payee": "Shop"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let c = r.json().unwrap();
    let body = auth
        .assert(c["challenge"].as_str().unwrap(), n, None)
        .body(c["challenge_id"].as_str().unwrap());
    post(gw, "/v1/authorizations", body).await
}

/// Enrols `auth` (full attestation under the vendor root) bound to a new card: (token, id).
async fn enrol_card(gw: &mut Client, pki: &Pki, auth: &Authenticator) -> (String, String) {
    let token = token_of(&tokenize(gw, &random_pan("411111", 16), DOMAIN).await);
    let r = post(
        gw,
        "/v1/devices/challenges",
        json!({"user": "alice", "rp_id": "localhost"}),
    )
    .await;
    let c = r.json().unwrap();
    let mut body = auth
        .register(c["challenge"].as_str().unwrap(), pki.attestation())
        .body(c["challenge_id"].as_str().unwrap());
    body["token"] = token.clone().into();
    body["domain"] = DOMAIN.into();
    let r = post(gw, "/v1/devices", body).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let enrolled = r.json().unwrap();
    // Hardware: the chain reached the vendor root, which only the BLOB lists.
    assert_eq!(enrolled["trust"], "hardware", "{enrolled}");
    (token, enrolled["device_id"].as_str().unwrap().to_owned())
}

/// Waits (bounded) until the daemon's metrics say BLOB `no` is in force.
async fn wait_for_blob(monitor: &mut Client, no: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = String::from_utf8(get(monitor, "/metrics").await.body).unwrap();
        if metrics.contains(&format!("payhsm_mds_blob_number {no}\n")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "BLOB {no} not in force: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn write(path: &Path, text: &str) {
    // Written whole then renamed, as a fetcher should: a reload never reads half a BLOB.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_certification_and_status_come_from_the_blob_and_follow_its_reloads() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (blob, root) = (dir.path().join("mds.jwt"), dir.path().join("mds-root.pem"));
    std::fs::write(&root, &pki.mds_root_pem).unwrap();
    let (l2, l1, bypass, unlisted) = (
        "0a1b2c3d-0000-4000-8000-000000000002",
        "0a1b2c3d-0000-4000-8000-000000000001",
        "0a1b2c3d-0000-4000-8000-00000000000b",
        "0a1b2c3d-0000-4000-8000-0000000000ff",
    );
    write(
        &blob,
        &pki.blob(
            2,
            &[
                (l2, "FIDO_CERTIFIED_L2", true),
                (l1, "FIDO_CERTIFIED_L1", true),
                (bypass, "USER_VERIFICATION_BYPASS", true),
            ],
        ),
    );
    let d = Daemon::start_with(&[
        "--mds",
        blob.to_str().unwrap(),
        "--mds-anchor",
        root.to_str().unwrap(),
    ]);
    let mut gw = d.client("gateway").await;
    let mut monitor = d.client("monitoring").await;
    wait_for_blob(&mut monitor, 2).await;

    // The vendor root is an anchor only for the models whose entry lists it.
    let mut certified = Authenticator::new();
    certified.aaguid = parse_aaguid(l2).unwrap();
    let (token, device) = enrol_card(&mut gw, &pki, &certified).await;
    let mut outsider = Authenticator::new();
    outsider.aaguid = parse_aaguid(unlisted).unwrap();
    let r = enrol(&mut gw, &outsider, pki.attestation()).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(
        r.json().unwrap()["trust"],
        "none",
        "no anchor for an unlisted model"
    );
    let mut bypassed = Authenticator::new();
    bypassed.aaguid = parse_aaguid(bypass).unwrap();
    let r = enrol(&mut gw, &bypassed, pki.attestation()).await;
    assert_eq!(
        status_code(&r),
        (422, "mds_user_verification_bypass".into())
    );

    // The certification reaches the policy: above 500.00 needs L2 or higher.
    let r = pay(&mut gw, &certified, &token, &device, 60_000, 1).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let mut level1 = Authenticator::new();
    level1.aaguid = parse_aaguid(l1).unwrap();
    let (token1, device1) = enrol_card(&mut gw, &pki, &level1).await;
    let r = pay(&mut gw, &level1, &token1, &device1, 60_000, 1).await;
    assert_eq!(status_code(&r), (403, "forbidden".into()));
    assert!(
        r.json().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("payments-above-500-need-certification-l2"),
        "{:?}",
        r.json()
    );

    // A newer BLOB reports the certified model compromised; SIGHUP reloads it, and the
    // device enrolled before authorizes nothing from then on.
    write(
        &blob,
        &pki.blob(
            3,
            &[
                (l2, "USER_KEY_REMOTE_COMPROMISE", true),
                (l1, "FIDO_CERTIFIED_L1", true),
            ],
        ),
    );
    d.send_signal("HUP");
    wait_for_blob(&mut monitor, 3).await;
    let r = pay(&mut gw, &certified, &token, &device, 500, 2).await;
    assert_eq!(
        status_code(&r),
        (422, "mds_user_key_remote_compromise".into())
    );
    let refused_id = r.headers["x-request-id"].to_str().unwrap().to_owned();
    let export = audit_export(&d);
    // The enrolment's record names where the anchor came from.
    let enrolled = export
        .lines()
        .find(|l| l.contains(&device) && l.contains("device_enrolled"))
        .unwrap();
    assert!(enrolled.contains(&format!("anchor=mds:{l2}")), "{enrolled}");
    let record = export
        .lines()
        .find(|l| l.contains(&refused_id))
        .unwrap_or_else(|| panic!("the refusal {refused_id} is not audited"));
    assert!(
        record.contains("mds_user_key_remote_compromise"),
        "{record}"
    );
    // Others still pay.
    let r = pay(&mut gw, &level1, &token1, &device1, 500, 2).await;
    assert_eq!(r.status, 201, "{:?}", r.json());

    // An older BLOB (a rollback) is refused; BLOB 3 stays in force.
    write(&blob, &pki.blob(2, &[(l2, "FIDO_CERTIFIED_L2", true)]));
    d.send_signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !d.logs().contains("rollback") {
        assert!(Instant::now() < deadline, "no rollback refusal logged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_blob(&mut monitor, 3).await;
    let r = pay(&mut gw, &certified, &token, &device, 500, 3).await;
    assert_eq!(
        status_code(&r),
        (422, "mds_user_key_remote_compromise".into())
    );
    assert_eq!(format_aaguid(&certified.aaguid), l2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_android_revocation_list_loads_at_start_and_a_broken_reload_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("status.json");
    write(
        &list,
        r#"{"entries":{"2c8cdddfd5e03bfc":{"status":"REVOKED","reason":"KEY_COMPROMISE"}}}"#,
    );
    let d = Daemon::start_with(&["--android-revocations", list.to_str().unwrap()]);
    assert!(
        d.logs().contains("Android revocation list in force"),
        "{}",
        d.logs()
    );
    write(&list, "{not json");
    d.send_signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !d.logs().contains("Android revocation list not reloaded") {
        assert!(
            Instant::now() < deadline,
            "no failed reload logged: {}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still serving.
    let mut gw = d.client("gateway").await;
    assert_eq!(get(&mut gw, "/healthz").await.status, 200);
}
