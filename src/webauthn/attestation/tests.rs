//! Unit tests per rule: certificates built with rcgen, authData and attStmt values built in code.
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, SigningKey,
};
use ring::digest;
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;
use crate::webauthn::authdata::{AttestedCredential, Flags};
use crate::webauthn::cose::{CoseKey, EcCurve, KeyParams};

const AAGUID: [u8; 16] = [7; 16];
const NOW: OffsetDateTime = datetime!(2025-01-01 0:00 UTC);

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: Vec<u8>,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.not_before = datetime!(2020-01-01 0:00 UTC);
    p.not_after = datetime!(2040-01-01 0:00 UTC);
    p
}

fn root(cn: &str) -> Ca {
    let params = ca_params(cn);
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().to_vec();
    Ca { params, key, der }
}

fn intermediate(cn: &str, issuer: &Ca) -> Ca {
    let params = ca_params(cn);
    let key = KeyPair::generate().unwrap();
    let der = params
        .signed_by(&key, &Issuer::new(issuer.params.clone(), &issuer.key))
        .unwrap()
        .der()
        .to_vec();
    Ca { params, key, der }
}

/// A packed-compliant leaf (§8.2.1) with extra extensions.
fn packed_leaf_params(exts: Vec<CustomExtension>) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut d = DistinguishedName::new();
    d.push(DnType::CountryName, "SE");
    d.push(DnType::OrganizationName, "Test Vendor");
    d.push(DnType::OrganizationalUnitName, "Authenticator Attestation");
    d.push(DnType::CommonName, "Test Authenticator");
    p.distinguished_name = d;
    p.is_ca = IsCa::ExplicitNoCa;
    p.not_before = datetime!(2020-01-01 0:00 UTC);
    p.not_after = datetime!(2030-01-01 0:00 UTC);
    p.custom_extensions = exts;
    p
}

fn issue(params: &CertificateParams, key: &KeyPair, issuer: &Ca) -> Vec<u8> {
    params
        .signed_by(key, &Issuer::new(issuer.params.clone(), &issuer.key))
        .unwrap()
        .der()
        .to_vec()
}

fn cose_of(key: &KeyPair) -> CoseKey {
    let raw = key.public_key_raw();
    CoseKey {
        alg: CoseAlgorithm::Es256,
        params: KeyParams::Ec2 {
            curve: EcCurve::P256,
            x: raw[1..33].to_vec(),
            y: raw[33..65].to_vec(),
        },
    }
}

fn auth_data(key: CoseKey) -> (AuthenticatorData, Vec<u8>) {
    let ad = AuthenticatorData {
        rp_id_hash: [1; 32],
        flags: Flags(0x45),
        sign_count: 0,
        attested: Some(AttestedCredential {
            aaguid: AAGUID,
            credential_id: vec![9; 16],
            public_key: key,
            public_key_cbor: vec![],
        }),
        extensions: None,
    };
    // The raw bytes only need to be what was signed; their parse is the authdata module's job.
    (ad, b"authenticator data bytes".to_vec())
}

const CDH: [u8; 32] = [2; 32];

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn packed_stmt(sig: Vec<u8>, x5c: &[&[u8]]) -> Value {
    let mut m = vec![
        (text("alg"), Value::Negative(-7)),
        (text("sig"), Value::Bytes(sig)),
    ];
    if !x5c.is_empty() {
        m.push((
            text("x5c"),
            Value::Array(x5c.iter().map(|c| Value::Bytes(c.to_vec())).collect()),
        ));
    }
    Value::Map(m)
}

fn anchors_of(items: &[(&str, &Ca)]) -> TrustAnchors {
    TrustAnchors::from_certificates(
        items
            .iter()
            .map(|(n, c)| (n.to_string(), c.der.clone()))
            .collect(),
    )
    .unwrap()
}

fn policy(untrusted: UntrustedChains) -> AttestationPolicy {
    let mut p = AttestationPolicy::new(vec![CoseAlgorithm::Es256, CoseAlgorithm::Rs256]);
    p.untrusted_chains = untrusted;
    p
}

fn run(
    fmt: &str,
    stmt: &Value,
    ad: &(AuthenticatorData, Vec<u8>),
    anchors: &TrustAnchors,
    p: &AttestationPolicy,
    now: OffsetDateTime,
) -> Result<AttestationVerdict, &'static str> {
    let input = StatementInput {
        format: fmt,
        att_stmt: stmt,
        auth_data: &ad.0,
        auth_data_raw: &ad.1,
        client_data_hash: &CDH,
    };
    verify_statement(&input, anchors, p, now).map_err(|e| e.code())
}

fn signed_msg(ad: &(AuthenticatorData, Vec<u8>)) -> Vec<u8> {
    [ad.1.as_slice(), &CDH].concat()
}

/// A packed statement: leaf (with `exts`) under `issuer`, x5c = leaf + `more`.
fn packed_case(
    issuer: &Ca,
    exts: Vec<CustomExtension>,
    more: &[&[u8]],
) -> (Value, (AuthenticatorData, Vec<u8>)) {
    let cred = KeyPair::generate().unwrap();
    let ad = auth_data(cose_of(&cred));
    let att_key = KeyPair::generate().unwrap();
    let leaf = issue(&packed_leaf_params(exts), &att_key, issuer);
    let sig = att_key.sign(&signed_msg(&ad)).unwrap();
    let mut x5c: Vec<&[u8]> = vec![&leaf];
    x5c.extend_from_slice(more);
    (packed_stmt(sig, &x5c), ad)
}

fn aaguid_ext(aaguid: [u8; 16]) -> CustomExtension {
    let mut v = vec![0x04, 0x10];
    v.extend_from_slice(&aaguid);
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4], v)
}

#[test]
fn packed_chain_to_configured_anchor_is_hardware() {
    let r = root("Vendor Root");
    let i = intermediate("Vendor Intermediate", &r);
    let (stmt, ad) = packed_case(&i, vec![aaguid_ext(AAGUID)], &[&i.der]);
    let v = run(
        "packed",
        &stmt,
        &ad,
        &anchors_of(&[("vendor", &r)]),
        &policy(UntrustedChains::Reject),
        NOW,
    )
    .unwrap();
    assert_eq!(
        (v.trust, v.anchor.as_deref()),
        (Trust::Hardware, Some("vendor"))
    );
}

#[test]
fn intermediates_in_any_order_and_a_root_copy_in_x5c_are_accepted() {
    let r = root("Vendor Root");
    let i1 = intermediate("Vendor Intermediate 1", &r);
    let i2 = intermediate("Vendor Intermediate 2", &i1);
    let (stmt, ad) = packed_case(&i2, vec![], &[&i1.der, &r.der, &i2.der]);
    let v = run(
        "packed",
        &stmt,
        &ad,
        &anchors_of(&[("vendor", &r)]),
        &policy(UntrustedChains::Reject),
        NOW,
    )
    .unwrap();
    assert_eq!(v.trust, Trust::Hardware);
}

#[test]
fn root_inside_x5c_but_not_configured_is_never_hardware() {
    let r = root("Vendor Root");
    let other = root("Other Root");
    let (stmt, ad) = packed_case(&r, vec![], &[&r.der]);
    let anchors = anchors_of(&[("other", &other)]);
    assert_eq!(
        run(
            "packed",
            &stmt,
            &ad,
            &anchors,
            &policy(UntrustedChains::Reject),
            NOW
        ),
        Err("untrusted_chain")
    );
    let v = run(
        "packed",
        &stmt,
        &ad,
        &anchors,
        &policy(UntrustedChains::ReportAsNone),
        NOW,
    )
    .unwrap();
    assert_eq!((v.trust, v.anchor), (Trust::None, None));
}

#[test]
fn expired_leaf_at_now_is_rejected() {
    let r = root("Vendor Root");
    let (stmt, ad) = packed_case(&r, vec![], &[]);
    let later = datetime!(2031-01-01 0:00 UTC);
    let got = run(
        "packed",
        &stmt,
        &ad,
        &anchors_of(&[("vendor", &r)]),
        &policy(UntrustedChains::ReportAsNone),
        later,
    );
    assert_eq!(got, Err("certificate_not_valid_at_time"));
}

#[test]
fn intermediate_with_a_bad_signature_is_rejected() {
    let r = root("Vendor Root");
    // Same name as the root, another key: the intermediate claims the root but is not signed by it.
    let impostor = root("Vendor Root");
    let i = intermediate("Vendor Intermediate", &impostor);
    let (stmt, ad) = packed_case(&i, vec![], &[&i.der]);
    let anchors = anchors_of(&[("vendor", &r)]);
    assert_eq!(
        run(
            "packed",
            &stmt,
            &ad,
            &anchors,
            &policy(UntrustedChains::ReportAsNone),
            NOW
        ),
        Err("chain_bad_signature")
    );
    // The impostor root inside x5c does not help either.
    let (stmt, ad) = packed_case(&i, vec![], &[&i.der, &r.der]);
    assert_eq!(
        run(
            "packed",
            &stmt,
            &ad,
            &anchors,
            &policy(UntrustedChains::ReportAsNone),
            NOW
        ),
        Err("chain_bad_signature")
    );
}

#[test]
fn aaguid_extension_mismatch_is_rejected() {
    let r = root("Vendor Root");
    let (stmt, ad) = packed_case(&r, vec![aaguid_ext([8; 16])], &[]);
    let got = run(
        "packed",
        &stmt,
        &ad,
        &anchors_of(&[("vendor", &r)]),
        &policy(UntrustedChains::Reject),
        NOW,
    );
    assert_eq!(got, Err("aaguid_mismatch"));
}

#[test]
fn anchor_aaguid_allow_list_refuses_another_aaguid() {
    let r = root("Vendor Root");
    let (stmt, ad) = packed_case(&r, vec![], &[]);
    let anchors = anchors_of(&[("vendor", &r)])
        .restrict_aaguids("vendor", vec![[8; 16]])
        .unwrap();
    let got = run(
        "packed",
        &stmt,
        &ad,
        &anchors,
        &policy(UntrustedChains::ReportAsNone),
        NOW,
    );
    assert_eq!(got, Err("anchor_aaguid_not_allowed"));
    let anchors = anchors_of(&[("vendor", &r)])
        .restrict_aaguids("vendor", vec![AAGUID])
        .unwrap();
    assert_eq!(
        run(
            "packed",
            &stmt,
            &ad,
            &anchors,
            &policy(UntrustedChains::Reject),
            NOW
        )
        .unwrap()
        .trust,
        Trust::Hardware
    );
}

#[test]
fn packed_statement_signature_failure_is_rejected() {
    let r = root("Vendor Root");
    let (stmt, ad) = packed_case(&r, vec![], &[]);
    let Value::Map(mut m) = stmt else {
        unreachable!()
    };
    m[1].1 = Value::Bytes(vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]);
    let got = run(
        "packed",
        &Value::Map(m),
        &ad,
        &anchors_of(&[("vendor", &r)]),
        &policy(UntrustedChains::Reject),
        NOW,
    );
    assert_eq!(got, Err("attestation_bad_signature"));
}

#[test]
fn packed_leaf_without_authenticator_attestation_ou_is_rejected() {
    let r = root("Vendor Root");
    let cred = KeyPair::generate().unwrap();
    let ad = auth_data(cose_of(&cred));
    let att_key = KeyPair::generate().unwrap();
    let mut p = packed_leaf_params(vec![]);
    p.distinguished_name = dn("No OU");
    let leaf = issue(&p, &att_key, &r);
    let stmt = packed_stmt(att_key.sign(&signed_msg(&ad)).unwrap(), &[&leaf]);
    let got = run(
        "packed",
        &stmt,
        &ad,
        &anchors_of(&[("vendor", &r)]),
        &policy(UntrustedChains::Reject),
        NOW,
    );
    assert_eq!(got, Err("attestation_certificate_requirements"));
}

#[test]
fn packed_self_attestation_with_another_alg_is_rejected() {
    let cred = KeyPair::generate().unwrap();
    let ad = auth_data(cose_of(&cred));
    let stmt = Value::Map(vec![
        (text("alg"), Value::Negative(-257)),
        (text("sig"), Value::Bytes(vec![1])),
    ]);
    let got = run(
        "packed",
        &stmt,
        &ad,
        &TrustAnchors::default(),
        &policy(UntrustedChains::Reject),
        NOW,
    );
    assert_eq!(got, Err("attestation_alg_mismatch"));
}

#[test]
fn statement_alg_outside_the_policy_is_rejected() {
    let cred = KeyPair::generate().unwrap();
    let ad = auth_data(cose_of(&cred));
    let stmt = Value::Map(vec![
        (text("alg"), Value::Negative(-65535)),
        (text("sig"), Value::Bytes(vec![1])),
    ]);
    let got = run(
        "packed",
        &stmt,
        &ad,
        &TrustAnchors::default(),
        &policy(UntrustedChains::Reject),
        NOW,
    );
    assert_eq!(got, Err("attestation_alg_not_allowed"));
}

#[test]
fn none_requires_an_empty_statement_and_unknown_formats_are_refused() {
    let cred = KeyPair::generate().unwrap();
    let ad = auth_data(cose_of(&cred));
    let p = policy(UntrustedChains::Reject);
    let v = run(
        "none",
        &Value::Map(vec![]),
        &ad,
        &TrustAnchors::default(),
        &p,
        NOW,
    )
    .unwrap();
    assert_eq!(v.trust, Trust::None);
    let non_empty = Value::Map(vec![(text("x"), Value::Null)]);
    assert_eq!(
        run("none", &non_empty, &ad, &TrustAnchors::default(), &p, NOW),
        Err("attestation_malformed")
    );
    assert_eq!(
        run("Packed", &non_empty, &ad, &TrustAnchors::default(), &p, NOW),
        Err("unsupported_format")
    );
}

#[test]
fn fido_u2f_verifies_over_verification_data() {
    let r = root("U2F Root");
    let cred = KeyPair::generate().unwrap();
    let ad = auth_data(cose_of(&cred));
    let att_key = KeyPair::generate().unwrap();
    let leaf = issue(&packed_leaf_params(vec![]), &att_key, &r);
    let c = ad.0.attested.as_ref().unwrap();
    let data = [
        &[0u8][..],
        &ad.0.rp_id_hash,
        &CDH,
        &c.credential_id,
        cred.public_key_raw(),
    ]
    .concat();
    let stmt = Value::Map(vec![
        (text("sig"), Value::Bytes(att_key.sign(&data).unwrap())),
        (text("x5c"), Value::Array(vec![Value::Bytes(leaf)])),
    ]);
    let anchors = anchors_of(&[("u2f", &r)]);
    let v = run(
        "fido-u2f",
        &stmt,
        &ad,
        &anchors,
        &policy(UntrustedChains::Reject),
        NOW,
    )
    .unwrap();
    assert_eq!(v.trust, Trust::Hardware);
    let other = auth_data(cose_of(&KeyPair::generate().unwrap()));
    assert_eq!(
        run(
            "fido-u2f",
            &stmt,
            &other,
            &anchors,
            &policy(UntrustedChains::Reject),
            NOW
        ),
        Err("attestation_bad_signature")
    );
}

fn apple_nonce_ext(nonce: &[u8]) -> CustomExtension {
    let mut v = vec![0x30, 0x24, 0xa1, 0x22, 0x04, 0x20];
    v.extend_from_slice(nonce);
    CustomExtension::from_oid_content(&[1, 2, 840, 113635, 100, 8, 2], v)
}

fn apple_case(
    nonce_of: impl Fn(&[u8]) -> Vec<u8>,
    key_of_cert: Option<&KeyPair>,
) -> (Value, (AuthenticatorData, Vec<u8>), Ca) {
    let r = root("Apple WebAuthn Root CA");
    let cred = KeyPair::generate().unwrap();
    let ad = auth_data(cose_of(&cred));
    let nonce = nonce_of(&signed_msg(&ad));
    let leaf = issue(
        &packed_leaf_params(vec![apple_nonce_ext(&nonce)]),
        key_of_cert.unwrap_or(&cred),
        &r,
    );
    let stmt = Value::Map(vec![(text("x5c"), Value::Array(vec![Value::Bytes(leaf)]))]);
    (stmt, ad, r)
}

#[test]
fn apple_nonce_and_key_bind_the_credential() {
    let sha = |m: &[u8]| digest::digest(&digest::SHA256, m).as_ref().to_vec();
    let p = policy(UntrustedChains::Reject);
    let (stmt, ad, r) = apple_case(sha, None);
    assert_eq!(
        run("apple", &stmt, &ad, &anchors_of(&[("apple", &r)]), &p, NOW)
            .unwrap()
            .trust,
        Trust::Hardware
    );
    let (stmt, ad, r) = apple_case(|m| sha(&[m, b"x"].concat()), None);
    assert_eq!(
        run("apple", &stmt, &ad, &anchors_of(&[("apple", &r)]), &p, NOW),
        Err("attestation_nonce_mismatch")
    );
    let other = KeyPair::generate().unwrap();
    let (stmt, ad, r) = apple_case(sha, Some(&other));
    assert_eq!(
        run("apple", &stmt, &ad, &anchors_of(&[("apple", &r)]), &p, NOW),
        Err("credential_key_mismatch")
    );
}

/// DER helpers for the Android KeyDescription.
fn tlv(tag: &[u8], content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let len: Vec<u8> = match n {
        0..=127 => vec![n as u8],
        128..=255 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    };
    [tag, &len, content].concat()
}

/// [tag] EXPLICIT for Android tags (high-tag-number form above 30).
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

fn key_description(challenge: &[u8], tee: &[Vec<u8>], software: &[Vec<u8>]) -> Vec<u8> {
    let content = [
        tlv(&[0x02], &[3]),
        tlv(&[0x0a], &[1]),
        tlv(&[0x02], &[4]),
        tlv(&[0x0a], &[1]),
        tlv(&[0x04], challenge),
        tlv(&[0x04], &[]),
        tlv(&[0x30], &software.concat()),
        tlv(&[0x30], &tee.concat()),
    ]
    .concat();
    tlv(&[0x30], &content)
}

fn android_good_tee() -> Vec<Vec<u8>> {
    vec![
        ctx(1, &tlv(&[0x31], &tlv(&[0x02], &[2]))),
        ctx(504, &tlv(&[0x02], &[2])),
        ctx(702, &tlv(&[0x02], &[0])),
    ]
}

fn android_case(
    kd: Vec<u8>,
    cert_key: Option<&KeyPair>,
) -> Result<AttestationVerdict, &'static str> {
    let r = root("Android Root");
    let cred = KeyPair::generate().unwrap();
    let ad = auth_data(cose_of(&cred));
    let ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17], kd);
    let key = cert_key.unwrap_or(&cred);
    let leaf = issue(&packed_leaf_params(vec![ext]), key, &r);
    let stmt = packed_stmt(key.sign(&signed_msg(&ad)).unwrap(), &[&leaf]);
    run(
        "android-key",
        &stmt,
        &ad,
        &anchors_of(&[("google", &r)]),
        &policy(UntrustedChains::Reject),
        NOW,
    )
}

#[test]
fn android_key_records_level_and_user_auth_type() {
    let v = android_case(key_description(&CDH, &android_good_tee(), &[]), None).unwrap();
    assert_eq!(v.trust, Trust::Hardware);
    let info = v.android.unwrap();
    assert_eq!(
        (info.security_level.as_str(), info.user_auth_type),
        ("trusted_environment", Some(2))
    );
    assert_eq!(
        v.android_enforcement,
        Some(AndroidEnforcement::TrustedEnvironment)
    );
}

fn root_of_trust(locked: bool, state: u8) -> Vec<u8> {
    let content = [
        tlv(&[0x04], &[7; 32]),
        tlv(&[0x01], &[if locked { 0xff } else { 0x00 }]),
        tlv(&[0x0a], &[state]),
        tlv(&[0x04], &[8; 32]),
    ]
    .concat();
    ctx(704, &tlv(&[0x30], &content))
}

fn application_id(package: &str, digest: &[u8]) -> Vec<u8> {
    let info = tlv(
        &[0x30],
        &[tlv(&[0x04], package.as_bytes()), tlv(&[0x02], &[7])].concat(),
    );
    let id = tlv(
        &[0x30],
        &[tlv(&[0x31], &info), tlv(&[0x31], &tlv(&[0x04], digest))].concat(),
    );
    ctx(709, &tlv(&[0x04], &id))
}

#[test]
fn android_key_records_the_tee_root_of_trust_and_the_application_id() {
    let mut tee = android_good_tee();
    tee.push(root_of_trust(true, 0));
    let software = [application_id("com.bank.pay", &[9; 32])];
    let v = android_case(key_description(&CDH, &tee, &software), None).unwrap();
    let info = v.android.unwrap();
    let rot = info.root_of_trust.unwrap();
    assert_eq!(
        (rot.verified_boot_state, rot.device_locked),
        ("verified", true)
    );
    let id = info.application_id.unwrap();
    assert_eq!(id.packages, ["com.bank.pay"]);
    assert_eq!(id.signature_digests, [vec![9u8; 32]]);
    // An unlocked bootloader with a self-signed OS is recorded as such.
    let mut tee = android_good_tee();
    tee.push(root_of_trust(false, 1));
    let v = android_case(key_description(&CDH, &tee, &[]), None).unwrap();
    let rot = v.android.unwrap().root_of_trust.unwrap();
    assert_eq!(
        (rot.verified_boot_state, rot.device_locked),
        ("self_signed", false)
    );
    // A rootOfTrust only software-enforced is not taken.
    let software = [root_of_trust(true, 0)];
    let v = android_case(key_description(&CDH, &android_good_tee(), &software), None).unwrap();
    assert_eq!(v.android.unwrap().root_of_trust, None);
    // A verifiedBootState outside the schema refuses the statement.
    let mut tee = android_good_tee();
    tee.push(root_of_trust(true, 9));
    assert_eq!(
        android_case(key_description(&CDH, &tee, &[]), None),
        Err("android_key_invalid")
    );
}

#[test]
fn android_key_with_a_certificate_on_the_revocation_list_is_rejected() {
    use super::android_key::RevocationList;
    let r = root("Android Root");
    let cred = KeyPair::generate().unwrap();
    let ad = auth_data(cose_of(&cred));
    let kd = key_description(&CDH, &android_good_tee(), &[]);
    let ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17], kd);
    let leaf = issue(&packed_leaf_params(vec![ext]), &cred, &r);
    let stmt = packed_stmt(cred.sign(&signed_msg(&ad)).unwrap(), &[&leaf]);
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    // Google prints serials as Java's BigInteger.toString(16): lowercase, no leading zeros.
    let serial: String = parsed
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let listed = |serial: &str, status: &str| {
        let json = format!(
            r#"{{"entries":{{"{serial}":{{"status":"{status}","reason":"KEY_COMPROMISE"}}}}}}"#
        );
        let mut p = policy(UntrustedChains::Reject);
        p.android_revocations = Some(std::sync::Arc::new(
            RevocationList::parse(json.as_bytes()).unwrap(),
        ));
        run(
            "android-key",
            &stmt,
            &ad,
            &anchors_of(&[("google", &r)]),
            &p,
            NOW,
        )
    };
    for status in ["REVOKED", "SUSPENDED"] {
        assert_eq!(
            listed(&serial.to_uppercase(), status),
            Err("android_key_revoked")
        );
        assert_eq!(
            listed(&format!("00{serial}"), status),
            Err("android_key_revoked")
        );
    }
    assert_eq!(
        listed("abc123", "REVOKED").map(|v| v.trust),
        Ok(Trust::Hardware)
    );
    // A list that does not parse is refused whole.
    for bad in [
        r#"{"entries":{"xyz":{"status":"REVOKED"}}}"#,
        r#"{"entries":{"ab":{"status":"FINE"}}}"#,
        r#"{"entries":[]}"#,
    ] {
        assert!(RevocationList::parse(bad.as_bytes()).is_err(), "{bad}");
    }
}

/// Remote Key Provisioning (Android 12+): the chain ends at Google's ECDSA P-384 "Key
/// Attestation CA1" root, and x5c stops at the intermediate (SimpleWebAuthn#783 refused
/// these): the root comes from the configuration only, and the chain reaches it.
#[test]
fn android_key_rkp_chain_to_a_p384_root_with_x5c_stopping_at_the_intermediate() {
    let params = ca_params("Key Attestation CA1");
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let rkp_root = Ca { params, key, der };
    let inter = intermediate("Droid CA3", &rkp_root);
    let cred = KeyPair::generate().unwrap();
    let ad = auth_data(cose_of(&cred));
    let kd = key_description(&CDH, &android_good_tee(), &[]);
    let ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17], kd);
    let leaf = issue(&packed_leaf_params(vec![ext]), &cred, &inter);
    let stmt = packed_stmt(cred.sign(&signed_msg(&ad)).unwrap(), &[&leaf, &inter.der]);
    let anchors = anchors_of(&[("key-attestation-ca1", &rkp_root)]);
    let v = run(
        "android-key",
        &stmt,
        &ad,
        &anchors,
        &policy(UntrustedChains::Reject),
        NOW,
    )
    .unwrap();
    assert_eq!(
        (v.trust, v.anchor.as_deref()),
        (Trust::Hardware, Some("key-attestation-ca1"))
    );
    // Without the intermediate in x5c there is no path: refused, never trusted.
    let stmt = packed_stmt(cred.sign(&signed_msg(&ad)).unwrap(), &[&leaf]);
    assert_eq!(
        run(
            "android-key",
            &stmt,
            &ad,
            &anchors,
            &policy(UntrustedChains::Reject),
            NOW
        ),
        Err("untrusted_chain")
    );
}

#[test]
fn android_key_challenge_mismatch_is_rejected() {
    assert_eq!(
        android_case(key_description(&[3; 32], &android_good_tee(), &[]), None),
        Err("attestation_nonce_mismatch")
    );
}

#[test]
fn android_key_all_applications_is_rejected() {
    let mut tee = android_good_tee();
    tee.push(ctx(600, &[0x05, 0x00]));
    assert_eq!(
        android_case(key_description(&CDH, &[], &tee), None),
        Err("android_key_invalid")
    );
    assert_eq!(
        android_case(key_description(&CDH, &tee, &[]), None),
        Err("android_key_invalid")
    );
}

#[test]
fn android_key_for_another_key_is_rejected() {
    let other = KeyPair::generate().unwrap();
    assert_eq!(
        android_case(
            key_description(&CDH, &android_good_tee(), &[]),
            Some(&other)
        ),
        Err("credential_key_mismatch")
    );
}

#[test]
fn android_key_enforced_only_in_software_is_not_hardware() {
    let v = android_case(key_description(&CDH, &[], &android_good_tee()), None).unwrap();
    assert_eq!(
        (v.trust, v.android_enforcement),
        (Trust::None, Some(AndroidEnforcement::Software))
    );
}

// TPM: hand-built TPMT_PUBLIC (ECC P-256) and TPMS_ATTEST.

fn tpm_pub_area(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut p = vec![0x00, 0x23, 0x00, 0x0b, 0x00, 0x06, 0x04, 0x72, 0x00, 0x00];
    p.extend_from_slice(&[0x00, 0x10, 0x00, 0x10, 0x00, 0x03, 0x00, 0x10]);
    p.extend_from_slice(&[0x00, 0x20]);
    p.extend_from_slice(x);
    p.extend_from_slice(&[0x00, 0x20]);
    p.extend_from_slice(y);
    p
}

fn tpm_cert_info(magic: u32, kind: u16, extra: &[u8], name: &[u8]) -> Vec<u8> {
    let mut c = magic.to_be_bytes().to_vec();
    c.extend_from_slice(&kind.to_be_bytes());
    c.extend_from_slice(&[0x00, 0x00]);
    c.extend_from_slice(&(extra.len() as u16).to_be_bytes());
    c.extend_from_slice(extra);
    c.extend_from_slice(&[0; 25]);
    c.extend_from_slice(&(name.len() as u16).to_be_bytes());
    c.extend_from_slice(name);
    c.extend_from_slice(&[0x00, 0x00]);
    c
}

fn tpm_name(pub_area: &[u8]) -> Vec<u8> {
    [
        &[0x00, 0x0b][..],
        digest::digest(&digest::SHA256, pub_area).as_ref(),
    ]
    .concat()
}

fn aik_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.is_ca = IsCa::ExplicitNoCa;
    p.not_before = datetime!(2020-01-01 0:00 UTC);
    p.not_after = datetime!(2030-01-01 0:00 UTC);
    // SAN: directoryName with the TCG manufacturer, model and version attributes.
    let attr = |last: u8, v: &str| {
        tlv(
            &[0x31],
            &tlv(
                &[0x30],
                &[
                    tlv(&[0x06], &[0x67, 0x81, 0x05, 0x02, last]),
                    tlv(&[0x0c], v.as_bytes()),
                ]
                .concat(),
            ),
        )
    };
    let name = tlv(
        &[0x30],
        &[attr(1, "id:FFFFF1D0"), attr(2, "model"), attr(3, "id:13")].concat(),
    );
    let san = tlv(&[0x30], &tlv(&[0xa4], &name));
    let mut san_ext = CustomExtension::from_oid_content(&[2, 5, 29, 17], san);
    san_ext.set_criticality(true);
    let eku = tlv(&[0x30], &tlv(&[0x06], &[0x67, 0x81, 0x05, 0x08, 0x03]));
    p.custom_extensions = vec![
        san_ext,
        CustomExtension::from_oid_content(&[2, 5, 29, 37], eku),
    ];
    p
}

fn tpm_case(edit: impl Fn(&mut Vec<u8>, &mut Vec<u8>)) -> Result<AttestationVerdict, &'static str> {
    let r = root("TPM Root");
    let cred = KeyPair::generate().unwrap();
    let raw = cred.public_key_raw().to_vec();
    let ad = auth_data(cose_of(&cred));
    let mut pub_area = tpm_pub_area(&raw[1..33], &raw[33..65]);
    let extra = digest::digest(&digest::SHA256, &signed_msg(&ad))
        .as_ref()
        .to_vec();
    let mut cert_info = tpm_cert_info(0xff54_4347, 0x8017, &extra, &tpm_name(&pub_area));
    edit(&mut pub_area, &mut cert_info);
    let aik = KeyPair::generate().unwrap();
    let aik_cert = issue(&aik_params(), &aik, &r);
    let stmt = Value::Map(vec![
        (text("ver"), text("2.0")),
        (text("alg"), Value::Negative(-7)),
        (text("x5c"), Value::Array(vec![Value::Bytes(aik_cert)])),
        (text("sig"), Value::Bytes(aik.sign(&cert_info).unwrap())),
        (text("certInfo"), Value::Bytes(cert_info)),
        (text("pubArea"), Value::Bytes(pub_area)),
    ]);
    run(
        "tpm",
        &stmt,
        &ad,
        &anchors_of(&[("tpm", &r)]),
        &policy(UntrustedChains::Reject),
        NOW,
    )
}

#[test]
fn tpm_well_formed_statement_chains_to_the_anchor() {
    assert_eq!(tpm_case(|_, _| {}).unwrap().trust, Trust::Hardware);
}

#[test]
fn tpm_wrong_magic_type_extra_data_or_name_is_rejected() {
    assert_eq!(tpm_case(|_, c| c[0] = 0), Err("tpm_invalid"));
    assert_eq!(tpm_case(|_, c| c[5] = 0x18), Err("tpm_invalid"));
    assert_eq!(tpm_case(|_, c| c[10] ^= 1), Err("tpm_invalid"));
    // The last byte of attested.name (qualifiedName, empty, follows it).
    assert_eq!(
        tpm_case(|_, c| {
            let l = c.len();
            c[l - 3] ^= 1
        }),
        Err("tpm_invalid")
    );
}

#[test]
fn tpm_pub_area_for_another_key_is_rejected() {
    assert_eq!(
        tpm_case(|p, _| {
            let l = p.len();
            p[l - 1] ^= 1
        }),
        Err("credential_key_mismatch")
    );
}

#[test]
fn tpm_structures_parse_exactly() {
    let pa = tpm_pub_area(&[1; 32], &[2; 32]);
    assert!(tpm::parse_pub_area(&pa).is_ok());
    assert!(tpm::parse_pub_area(&[pa.as_slice(), &[0]].concat()).is_err());
    assert!(tpm::parse_pub_area(&pa[..pa.len() - 1]).is_err());
}

#[test]
fn android_software_root_is_recognised_as_software() {
    let pem = std::fs::read(
        "/work/shared/vectors/webauthn/roots/webauthn-rs_ANDROID_SOFTWARE_ROOT_CA.pem",
    );
    if let Ok(pem) = pem {
        let a = TrustAnchors::from_certificates(vec![("sw".into(), pem)]).unwrap();
        assert_eq!(a.anchors[0].assurance, AnchorAssurance::Software);
    }
}

#[test]
fn x5c_fuzz_entry_survives_real_and_truncated_chains() {
    let r = root("Vendor Root");
    let i = intermediate("Vendor Intermediate", &r);
    let mut data = Vec::new();
    for der in [&r.der, &i.der] {
        data.extend_from_slice(&(der.len() as u16).to_be_bytes());
        data.extend_from_slice(der);
    }
    for cut in 0..data.len() {
        fuzz_x5c_chain(&data[..cut]);
    }
}

#[test]
fn a_chain_to_a_software_anchor_is_never_hardware() {
    let r = root("Vendor Root");
    let (stmt, ad) = packed_case(&r, vec![], &[]);
    let mut anchors = anchors_of(&[("soft", &r)]);
    anchors.anchors[0].assurance = AnchorAssurance::Software;
    let v = run(
        "packed",
        &stmt,
        &ad,
        &anchors,
        &policy(UntrustedChains::Reject),
        NOW,
    )
    .unwrap();
    assert_eq!((v.trust, v.anchor.as_deref()), (Trust::None, Some("soft")));
}

fn app_attest_assertion(key: &KeyPair, counter: u32, app_id: &str) -> Value {
    let mut auth = digest::digest(&digest::SHA256, app_id.as_bytes())
        .as_ref()
        .to_vec();
    auth.push(0x40);
    auth.extend_from_slice(&counter.to_be_bytes());
    let cdh = digest::digest(&digest::SHA256, b"challenge");
    let nonce = digest::digest(&digest::SHA256, &[auth.as_slice(), cdh.as_ref()].concat());
    Value::Map(vec![
        (
            text("signature"),
            Value::Bytes(key.sign(nonce.as_ref()).unwrap()),
        ),
        (text("authenticatorData"), Value::Bytes(auth)),
    ])
}

#[test]
fn app_attest_assertion_checks_signature_app_id_and_counter() {
    use appattest::{verify_app_attest_assertion, AppAttestAssertionInput};
    let key = KeyPair::generate().unwrap();
    let app = "TEAMID.com.example.app";
    let assertion = app_attest_assertion(&key, 5, app);
    let input = |assertion, stored_counter, app_id| AppAttestAssertionInput {
        assertion,
        client_data: b"challenge",
        public_key: key.public_key_raw(),
        stored_counter,
        app_id,
    };
    assert_eq!(
        verify_app_attest_assertion(&input(&assertion, 4, app))
            .unwrap()
            .sign_count,
        5
    );
    let code = |r: Result<_, AttestationError>| r.map_err(|e| e.code());
    assert_eq!(
        code(verify_app_attest_assertion(&input(&assertion, 5, app))),
        Err("appattest_invalid")
    );
    assert_eq!(
        code(verify_app_attest_assertion(&input(
            &assertion,
            4,
            "TEAMID.other"
        ))),
        Err("appattest_invalid")
    );
    let other = app_attest_assertion(&KeyPair::generate().unwrap(), 5, app);
    assert_eq!(
        code(verify_app_attest_assertion(&input(&other, 4, app))),
        Err("attestation_bad_signature")
    );
}
