use super::*;
use crate::webauthn::test_authenticator::*;

const RP_ID: &str = "example.com";
const ORIGIN: &str = "https://example.com";
const CHALLENGE: &str = "dHhuLTQyLWV1ci0xMi4zMA";

struct Case {
    auth: SoftAuthenticator,
    client_data: serde_json::Value,
    flags: u8,
    count: u32,
    stored_count: u32,
    stored_be: bool,
    types: Vec<AssertionType>,
    payment: Option<ExpectedPayment>,
    /// Applied to the signed authData before signing (to build malformed-but-signed data).
    auth_data_override: Option<Vec<u8>>,
    tamper_signature: bool,
    credential_id: Option<Vec<u8>>,
}

fn expected_payment() -> ExpectedPayment {
    ExpectedPayment {
        rp_id: Some(RP_ID.into()),
        top_origin: Some("https://merchant.example".into()),
        payee_name: Some("Shop".into()),
        payee_origin: Some("https://shop.example".into()),
        total_currency: Some("EUR".into()),
        total_value: Some("12.30".into()),
        instrument_display_name: Some("Visa 1234".into()),
        instrument_icon: Some("https://example.com/i.png".into()),
        browser_bound_public_key: None,
        instrument_details: None,
        entity_logos: None,
    }
}

fn payment_json() -> serde_json::Value {
    serde_json::json!({
        "rpId": RP_ID, "topOrigin": "https://merchant.example", "payeeName": "Shop",
        "payeeOrigin": "https://shop.example", "total": {"currency": "EUR", "value": "12.30"},
        "instrument": {"displayName": "Visa 1234", "icon": "https://example.com/i.png"}
    })
}

impl Case {
    fn new() -> Self {
        Self {
            auth: SoftAuthenticator::new(),
            client_data: client_data("webauthn.get", CHALLENGE, ORIGIN),
            flags: UP | UV,
            count: 5,
            stored_count: 4,
            stored_be: false,
            types: vec![AssertionType::Get],
            payment: None,
            auth_data_override: None,
            tamper_signature: false,
            credential_id: None,
        }
    }

    fn spc() -> Self {
        let mut case = Self::new();
        case.client_data["type"] = "payment.get".into();
        case.client_data["payment"] = payment_json();
        case.types = vec![AssertionType::PaymentGet];
        case.payment = Some(expected_payment());
        case
    }

    fn run(&self) -> Result<AssertionVerdict, WebauthnError> {
        let cdj = serde_json::to_vec(&self.client_data).unwrap();
        let ad = self
            .auth_data_override
            .clone()
            .unwrap_or_else(|| self.auth.auth_data(RP_ID, self.flags, self.count));
        let mut sig = self.auth.sign_assertion(&ad, &cdj);
        if self.tamper_signature {
            let last = sig.len() - 1;
            sig[last] ^= 1;
        }
        let rp = RelyingParty {
            ids: vec![RP_ID.into()],
            origins: vec![ORIGIN.into()],
            top_origins: vec!["https://merchant.example".into()],
        };
        let expect = AssertionExpectations {
            rp: &rp,
            challenge: CHALLENGE,
            types: &self.types,
            require_user_verification: true,
            payment: self.payment.as_ref(),
        };
        let stored = StoredCredential {
            credential_id: self.auth.credential_id.clone(),
            public_key_cbor: self.auth.cose_key_bytes(),
            sign_count: self.stored_count,
            backup_eligible: self.stored_be,
        };
        let cred_id = self
            .credential_id
            .clone()
            .unwrap_or(self.auth.credential_id.clone());
        let input = AssertionInput {
            credential_id: &cred_id,
            client_data_json: &cdj,
            authenticator_data: &ad,
            signature: &sig,
        };
        verify_assertion(input, &expect, &stored)
    }

    fn code(&self) -> &'static str {
        self.run().unwrap_err().code()
    }
}

#[test]
fn a_correct_assertion_is_accepted() {
    let v = Case::new().run().unwrap();
    assert_eq!(v.sign_count, 5);
    assert_eq!(v.kind, AssertionType::Get);
    assert!(v.user_verified && !v.backup_eligible && !v.backup_state);
}

#[test]
fn a_correct_spc_assertion_is_accepted() {
    let v = Case::spc().run().unwrap();
    assert_eq!(v.kind, AssertionType::PaymentGet);
}

#[test]
fn another_credential_id_is_refused() {
    let mut case = Case::new();
    case.credential_id = Some(vec![0xC2; 16]);
    assert_eq!(case.code(), "credential_id_mismatch");
}

#[test]
fn unexpected_type_is_refused() {
    let mut case = Case::new();
    case.client_data["type"] = "webauthn.create".into();
    assert_eq!(case.code(), "type_mismatch");
    // payment.get when only webauthn.get is accepted.
    let mut case = Case::spc();
    case.types = vec![AssertionType::Get];
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
    case.client_data["origin"] = "https://example.com:8443".into();
    assert_eq!(case.code(), "origin_mismatch");
}

#[test]
fn cross_origin_without_top_origin_is_refused() {
    let mut case = Case::new();
    case.client_data["crossOrigin"] = true.into();
    assert_eq!(case.code(), "cross_origin_refused");
}

#[test]
fn unexpected_top_origin_is_refused() {
    let mut case = Case::new();
    case.client_data["crossOrigin"] = true.into();
    case.client_data["topOrigin"] = "https://evil.example".into();
    assert_eq!(case.code(), "top_origin_mismatch");
}

#[test]
fn attested_data_in_an_assertion_is_refused() {
    let mut case = Case::new();
    case.flags |= AT;
    assert_eq!(case.code(), "attested_data_in_assertion");
}

#[test]
fn wrong_rp_id_hash_is_refused() {
    let mut case = Case::new();
    case.auth_data_override = Some(case.auth.auth_data("evil.example", UP | UV, 5));
    assert_eq!(case.code(), "rp_id_hash_mismatch");
}

#[test]
fn user_not_present_is_refused() {
    let mut case = Case::new();
    case.flags = UV;
    assert_eq!(case.code(), "user_not_present");
}

#[test]
fn user_not_verified_is_refused() {
    let mut case = Case::new();
    case.flags = UP;
    assert_eq!(case.code(), "user_not_verified");
}

#[test]
fn backup_state_without_eligibility_is_refused() {
    let mut case = Case::new();
    case.flags |= BS;
    assert_eq!(case.code(), "backup_state_without_eligibility");
}

#[test]
fn backup_eligibility_change_is_refused() {
    let mut case = Case::new();
    case.flags |= BE;
    assert_eq!(case.code(), "backup_eligibility_changed");
    let mut case = Case::new();
    case.stored_be = true;
    assert_eq!(case.code(), "backup_eligibility_changed");
    let mut case = Case::new();
    case.stored_be = true;
    case.flags |= BE | BS;
    assert!(case.run().unwrap().backup_state);
}

#[test]
fn bad_signature_is_refused() {
    let mut case = Case::new();
    case.tamper_signature = true;
    assert_eq!(case.code(), "bad_signature");
}

#[test]
fn signature_over_other_client_data_is_refused() {
    let case = Case::new();
    let cdj = serde_json::to_vec(&case.client_data).unwrap();
    let ad = case.auth.auth_data(RP_ID, case.flags, case.count);
    let sig = case.auth.sign_assertion(&ad, b"{}");
    let rp = RelyingParty {
        ids: vec![RP_ID.into()],
        origins: vec![ORIGIN.into()],
        top_origins: vec![],
    };
    let expect = AssertionExpectations {
        rp: &rp,
        challenge: CHALLENGE,
        types: &[AssertionType::Get],
        require_user_verification: true,
        payment: None,
    };
    let stored = StoredCredential {
        credential_id: case.auth.credential_id.clone(),
        public_key_cbor: case.auth.cose_key_bytes(),
        sign_count: 0,
        backup_eligible: false,
    };
    let input = AssertionInput {
        credential_id: &case.auth.credential_id,
        client_data_json: &cdj,
        authenticator_data: &ad,
        signature: &sig,
    };
    assert_eq!(
        verify_assertion(input, &expect, &stored)
            .unwrap_err()
            .code(),
        "bad_signature"
    );
}

#[test]
fn counter_that_does_not_increase_is_refused() {
    let mut case = Case::new();
    case.count = 4;
    assert_eq!(case.code(), "counter_regression");
    case.count = 3;
    assert_eq!(case.code(), "counter_regression");
    // The authenticator stopped counting: 0 after a nonzero counter is a regression too.
    case.count = 0;
    assert_eq!(case.code(), "counter_regression");
}

#[test]
fn counter_zero_on_both_sides_is_accepted() {
    let mut case = Case::new();
    case.count = 0;
    case.stored_count = 0;
    assert_eq!(case.run().unwrap().sign_count, 0);
}

#[test]
fn payment_get_without_expected_payment_is_refused() {
    let mut case = Case::spc();
    case.payment = None;
    assert_eq!(case.code(), "payment_expectation_missing");
}

#[test]
fn payment_get_without_payment_member_is_refused() {
    let mut case = Case::spc();
    case.client_data.as_object_mut().unwrap().remove("payment");
    assert_eq!(case.code(), "payment_data_missing");
}

#[test]
fn each_payment_member_that_differs_is_named() {
    let members: [(&[&str], &str); 8] = [
        (&["rpId"], "payment.rpId"),
        (&["topOrigin"], "payment.topOrigin"),
        (&["payeeName"], "payment.payeeName"),
        (&["payeeOrigin"], "payment.payeeOrigin"),
        (&["total", "currency"], "payment.total.currency"),
        (&["total", "value"], "payment.total.value"),
        (
            &["instrument", "displayName"],
            "payment.instrument.displayName",
        ),
        (&["instrument", "icon"], "payment.instrument.icon"),
    ];
    for (path, name) in members {
        let mut case = Case::spc();
        let mut node = &mut case.client_data["payment"];
        for key in path {
            node = &mut node[*key];
        }
        *node = "changed".into();
        let err = case.run().unwrap_err();
        assert_eq!(err.code(), "payment_mismatch");
        assert_eq!(err.to_string(), format!("assertion: {name} differs"));
    }
}

#[test]
fn payment_text_is_compared_under_nfc() {
    // payhsm keeps "Café" (NFC); the merchant handed the browser "Cafe" + U+0301.
    let mut case = Case::spc();
    let expected = case.payment.as_mut().unwrap();
    expected.payee_name = Some("Caf\u{e9}".into());
    expected.instrument_display_name = Some("Caf\u{e9} Visa".into());
    case.client_data["payment"]["payeeName"] = "Cafe\u{301}".into();
    case.client_data["payment"]["instrument"]["displayName"] = "Cafe\u{301} Visa".into();
    assert!(case.run().is_ok());
    // Equivalent is not similar: another letter is still another payee.
    case.client_data["payment"]["payeeName"] = "Cafe\u{300}".into();
    assert_eq!(case.code(), "payment_mismatch");
}

#[test]
fn payment_member_missing_when_expected_is_a_mismatch() {
    let mut case = Case::spc();
    case.client_data["payment"]["total"]
        .as_object_mut()
        .unwrap()
        .remove("value");
    assert_eq!(case.code(), "payment_mismatch");
}

#[test]
fn unset_expected_members_are_not_compared() {
    let mut case = Case::spc();
    case.payment = Some(ExpectedPayment {
        total_value: Some("12.30".into()),
        ..Default::default()
    });
    case.client_data["payment"]["payeeName"] = "Anything".into();
    assert!(case.run().is_ok());
}

#[test]
fn payment_member_in_webauthn_get_is_ignored() {
    let mut case = Case::new();
    case.client_data["payment"] = serde_json::json!({"total": {"value": "999.99"}});
    case.payment = Some(expected_payment());
    assert!(case.run().is_ok());
}

#[test]
fn fuzz_entry_point_survives_odd_splits() {
    fuzz_verify(&[]);
    fuzz_verify(&[5, 1, 2]);
    fuzz_verify(&[2, b'{', b'}', 37, 0, 0]);
    fuzz_verify(&[255; 600]);
}

#[test]
fn fuzz_stored_key_is_a_valid_cose_key() {
    assert!(CoseKey::from_cbor_bytes(&FUZZ_STORED_KEY).is_ok());
}
