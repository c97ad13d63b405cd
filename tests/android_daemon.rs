//! android-key devices in a running daemon (issue 19): the software authenticator with a key
//! this test certifies, under a KeyDescription it writes (challenge, purpose and origin, the
//! TEE's rootOfTrust, the attestationApplicationId). A relying party that lists its Android
//! apps enrols only those; the attested boot reaches the payment policy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use payhsm::client::{Client, Response};
use rcgen::{BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::authenticator::{Attestation, Authenticator};
use support::*;

const DOMAIN: &str = "shop";
const PACKAGE: &str = "com.bank.pay";
const SIGNER: [u8; 32] = [0x5a; 32];

fn tlv(tag: &[u8], content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let len: Vec<u8> = match n {
        0..=127 => vec![n as u8],
        128..=255 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    };
    [tag, &len, content].concat()
}

/// [tag] EXPLICIT, high-tag-number form for the Android tags.
fn ctx(tag: u32, content: &[u8]) -> Vec<u8> {
    let t = if tag < 31 {
        vec![0xa0 | tag as u8]
    } else if tag < 128 {
        vec![0xbf, tag as u8]
    } else {
        vec![0xbf, 0x80 | (tag >> 7) as u8, (tag & 0x7f) as u8]
    };
    tlv(&t, content)
}

/// A KeyDescription for `client_data_hash`: TEE-enforced purpose SIGN, origin GENERATED and
/// rootOfTrust (`boot_state`, `locked`); software-enforced attestationApplicationId.
fn key_description(
    client_data_hash: &[u8],
    boot_state: u8,
    locked: bool,
    package: &str,
) -> Vec<u8> {
    let root_of_trust = [
        tlv(&[0x04], &[7; 32]),
        tlv(&[0x01], &[if locked { 0xff } else { 0x00 }]),
        tlv(&[0x0a], &[boot_state]),
        tlv(&[0x04], &[8; 32]),
    ]
    .concat();
    let tee = [
        ctx(1, &tlv(&[0x31], &tlv(&[0x02], &[2]))),
        ctx(702, &tlv(&[0x02], &[0])),
        ctx(704, &tlv(&[0x30], &root_of_trust)),
    ]
    .concat();
    let info = tlv(
        &[0x30],
        &[tlv(&[0x04], package.as_bytes()), tlv(&[0x02], &[1])].concat(),
    );
    let app_id = tlv(
        &[0x30],
        &[tlv(&[0x31], &info), tlv(&[0x31], &tlv(&[0x04], &SIGNER))].concat(),
    );
    let software = ctx(709, &tlv(&[0x04], &app_id));
    let content = [
        tlv(&[0x02], &[3]),
        tlv(&[0x0a], &[1]),
        tlv(&[0x02], &[4]),
        tlv(&[0x0a], &[1]),
        tlv(&[0x04], client_data_hash),
        tlv(&[0x04], &[]),
        tlv(&[0x30], &software),
        tlv(&[0x30], &tee),
    ]
    .concat();
    tlv(&[0x30], &content)
}

/// Asks for a challenge and enrols a fresh android-key credential bound to a new card:
/// (the answer, the authenticator, the token).
async fn enrol(
    gw: &mut Client,
    root: &Issuer<'_, KeyPair>,
    boot_state: u8,
    locked: bool,
    package: &str,
) -> (Response, Authenticator, String) {
    let token = token_of(&tokenize(gw, &random_pan("411111", 16), DOMAIN).await);
    let key = KeyPair::generate().unwrap();
    let auth = Authenticator::from(
        payhsm::bench::authenticator::SoftwareAuthenticator::from_pkcs8(&key.serialize_der())
            .unwrap(),
    );
    let r = post(
        gw,
        "/v1/devices/challenges",
        json!({"user": "alice", "rp_id": "localhost"}),
    )
    .await;
    let c = r.json().unwrap();
    let challenge = c["challenge"].as_str().unwrap();
    let cdh = Sha256::digest(auth.client_data(challenge));
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "Android Keystore Key");
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17],
        key_description(&cdh, boot_state, locked, package),
    )];
    let leaf = params.signed_by(&key, root).unwrap().der().to_vec();
    let mut body = auth
        .register(challenge, Attestation::AndroidKey { x5c: vec![leaf] })
        .body(c["challenge_id"].as_str().unwrap());
    body["token"] = token.clone().into();
    body["domain"] = DOMAIN.into();
    (post(gw, "/v1/devices", body).await, auth, token)
}

async fn pay(gw: &mut Client, auth: &Authenticator, token: &str, device_id: &str) -> Response {
    let r = post(
        gw,
        "/v1/authorizations/challenges",
        json!({"token": token, "domain": DOMAIN, "device_id": device_id, "amount": 500,
               "currency": "EUR", "payee": "Shop"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let c = r.json().unwrap();
    let a = auth.assert(c["challenge"].as_str().unwrap(), 1, None);
    post(
        gw,
        "/v1/authorizations",
        a.body(c["challenge_id"].as_str().unwrap()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_listed_android_apps_enrol_and_an_unverified_boot_pays_nothing() {
    let hex: String = SIGNER.iter().map(|b| format!("{b:02x}")).collect();
    let d = Daemon::start_with(&["--android-app", &format!("{PACKAGE}:{hex}")]);
    let mut gw = d.client("gateway").await;
    let root_key = KeyPair::generate().unwrap();
    let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
    root.distinguished_name
        .push(DnType::CommonName, "test Android root");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let root = Issuer::new(root, root_key);

    // Another app: refused, whatever the device.
    let (r, _, _) = enrol(&mut gw, &root, 0, true, "com.other.app").await;
    assert_eq!(
        (r.status, error_code(&r)),
        (422, "android_app_not_allowed".to_owned()),
        "{:?}",
        r.json()
    );

    // The listed app on a verified, locked device: enrolled, and it pays.
    let (r, auth, token) = enrol(&mut gw, &root, 0, true, PACKAGE).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let enrolled = r.json().unwrap();
    assert_eq!(enrolled["format"], "android-key");
    let device = enrolled["device_id"].as_str().unwrap().to_owned();
    let r = pay(&mut gw, &auth, &token, &device).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let export = audit_export(&d);
    let record = export
        .lines()
        .find(|l| l.contains(&device) && l.contains("device_enrolled"))
        .unwrap();
    assert!(
        record.contains("android_boot=verified android_locked=true android_apps=1"),
        "{record}"
    );

    // The listed app on a device with a self-signed OS: enrolled (the TEE said so), but the
    // policy refuses its payments.
    let (r, auth, token) = enrol(&mut gw, &root, 1, false, PACKAGE).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let device = r.json().unwrap()["device_id"].as_str().unwrap().to_owned();
    let r = pay(&mut gw, &auth, &token, &device).await;
    assert_eq!((r.status, error_code(&r)), (403, "forbidden".to_owned()));
    assert!(
        r.json().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("payments-need-a-verified-android-boot"),
        "{:?}",
        r.json()
    );
}
