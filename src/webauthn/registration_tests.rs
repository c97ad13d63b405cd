use super::*;
use crate::webauthn::attestation::AttestationError;
use crate::webauthn::test_authenticator::*;

const RP_ID: &str = "example.com";
const ORIGIN: &str = "https://example.com";
const CHALLENGE: &str = "c2lnbi1tZS11cC1mb3ItcGF5bWVudHM";

struct Case {
    client_data: serde_json::Value,
    flags: u8,
    auth: SoftAuthenticator,
    object: Option<Vec<u8>>,
}

impl Case {
    fn new() -> Self {
        Self {
            client_data: client_data("webauthn.create", CHALLENGE, ORIGIN),
            flags: UP | UV | AT,
            auth: SoftAuthenticator::new(),
            object: None,
        }
    }

    fn object(&self) -> Vec<u8> {
        encode(&Value::Map(vec![
            (text("fmt"), text("none")),
            (text("attStmt"), Value::Map(vec![])),
            (
                text("authData"),
                Value::Bytes(self.auth.auth_data(RP_ID, self.flags, 0)),
            ),
        ]))
    }

    fn run_with(&self, policy: &AttestationPolicy) -> Result<RegistrationVerdict, WebauthnError> {
        let cdj = serde_json::to_vec(&self.client_data).unwrap();
        let object = self.object.clone().unwrap_or_else(|| self.object());
        let rp = RelyingParty {
            ids: vec![RP_ID.into()],
            origins: vec![ORIGIN.into()],
            top_origins: vec![],
        };
        let expect = RegistrationExpectations {
            rp: &rp,
            challenge: CHALLENGE,
            require_user_verification: true,
            policy,
        };
        let input = RegistrationInput {
            client_data_json: &cdj,
            attestation_object: &object,
        };
        verify_registration_with(input, &expect, |s| {
            // The stub statement verifier checks it was handed the right inputs.
            assert_eq!(s.format, "none");
            assert_eq!(*s.client_data_hash, sha256(&cdj));
            assert!(s.auth_data.attested.is_some());
            Ok(AttestationVerdict {
                format: Format::None,
                trust: Trust::None,
                anchor: None,
                android: None,
                android_enforcement: None,
                safetynet: None,
            })
        })
    }

    fn run(&self) -> Result<RegistrationVerdict, WebauthnError> {
        self.run_with(&AttestationPolicy::new(vec![CoseAlgorithm::Es256]))
    }

    fn code(&self) -> &'static str {
        self.run().unwrap_err().code()
    }
}

#[test]
fn a_correct_registration_is_accepted() {
    let case = Case::new();
    let v = case.run().unwrap();
    assert_eq!(v.credential_id, case.auth.credential_id);
    assert_eq!(v.public_key_cbor, case.auth.cose_key_bytes());
    assert_eq!(
        (v.alg, v.format, v.trust),
        (CoseAlgorithm::Es256, Format::None, Trust::None)
    );
    assert!(v.user_verified && !v.backup_eligible);
}

#[test]
fn wrong_type_is_refused() {
    let mut case = Case::new();
    case.client_data["type"] = "webauthn.get".into();
    assert_eq!(case.code(), "type_mismatch");
}

#[test]
fn wrong_challenge_is_refused() {
    let mut case = Case::new();
    case.client_data["challenge"] = "b3RoZXI".into();
    assert_eq!(case.code(), "challenge_mismatch");
}

#[test]
fn wrong_origin_is_refused() {
    let mut case = Case::new();
    case.client_data["origin"] = "https://evil.example".into();
    assert_eq!(case.code(), "origin_mismatch");
}

#[test]
fn cross_origin_without_allowed_top_origins_is_refused() {
    let mut case = Case::new();
    case.client_data["crossOrigin"] = true.into();
    case.client_data["topOrigin"] = "https://merchant.example".into();
    assert_eq!(case.code(), "cross_origin_refused");
}

#[test]
fn top_origin_not_allowed_is_refused() {
    let mut case = Case::new();
    case.client_data["topOrigin"] = "https://merchant.example".into();
    assert_eq!(case.code(), "top_origin_mismatch");
}

#[test]
fn attestation_object_with_extra_or_wrong_members_is_refused() {
    let mut case = Case::new();
    let ad = Value::Bytes(case.auth.auth_data(RP_ID, case.flags, 0));
    case.object = Some(encode(&Value::Map(vec![
        (text("fmt"), text("none")),
        (text("attStmt"), Value::Map(vec![])),
        (text("authData"), ad.clone()),
        (text("extra"), int(1)),
    ])));
    assert_eq!(case.code(), "attestation_object_malformed");
    case.object = Some(encode(&Value::Map(vec![
        (text("fmt"), text("none")),
        (text("attStmt"), int(0)),
        (text("authData"), ad),
    ])));
    assert_eq!(case.code(), "attestation_object_malformed");
    case.object = Some(vec![0xa0, 0x00]);
    assert_eq!(case.code(), "cbor_trailing_bytes");
}

#[test]
fn wrong_rp_id_hash_is_refused() {
    let mut case = Case::new();
    let ad = case.auth.auth_data("evil.example", case.flags, 0);
    case.object = Some(encode(&Value::Map(vec![
        (text("fmt"), text("none")),
        (text("attStmt"), Value::Map(vec![])),
        (text("authData"), Value::Bytes(ad)),
    ])));
    assert_eq!(case.code(), "rp_id_hash_mismatch");
}

#[test]
fn user_not_present_is_refused() {
    let mut case = Case::new();
    case.flags &= !UP;
    assert_eq!(case.code(), "user_not_present");
}

#[test]
fn user_not_verified_is_refused_when_required() {
    let mut case = Case::new();
    case.flags &= !UV;
    assert_eq!(case.code(), "user_not_verified");
}

#[test]
fn backup_state_without_eligibility_is_refused() {
    let mut case = Case::new();
    case.flags |= BS;
    assert_eq!(case.code(), "backup_state_without_eligibility");
}

#[test]
fn missing_attested_credential_is_refused() {
    let mut case = Case::new();
    case.flags &= !AT;
    assert_eq!(case.code(), "attested_credential_missing");
}

#[test]
fn algorithm_outside_policy_is_refused() {
    let case = Case::new();
    let policy = AttestationPolicy::new(vec![CoseAlgorithm::Es384, CoseAlgorithm::Rs256]);
    assert_eq!(
        case.run_with(&policy).unwrap_err().code(),
        "algorithm_not_allowed"
    );
}

#[test]
fn credential_id_too_long_is_refused() {
    let mut case = Case::new();
    case.auth.credential_id = vec![1; 1024];
    assert_eq!(case.code(), "credential_id_length");
}

#[test]
fn statement_verifier_errors_are_returned() {
    let case = Case::new();
    let cdj = serde_json::to_vec(&case.client_data).unwrap();
    let object = case.object();
    let rp = RelyingParty {
        ids: vec![RP_ID.into()],
        origins: vec![ORIGIN.into()],
        top_origins: vec![],
    };
    let policy = AttestationPolicy::new(vec![CoseAlgorithm::Es256]);
    let expect = RegistrationExpectations {
        rp: &rp,
        challenge: CHALLENGE,
        require_user_verification: true,
        policy: &policy,
    };
    let input = RegistrationInput {
        client_data_json: &cdj,
        attestation_object: &object,
    };
    let e = verify_registration_with(input, &expect, |_| {
        Err(AttestationError::UnsupportedFormat.into())
    })
    .unwrap_err();
    assert_eq!(e.code(), AttestationError::UnsupportedFormat.code());
}
