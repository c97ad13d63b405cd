//! The real `policies/` folder: who may do what, and what a bad policy folder does at load.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate
   // Test code: a failed unwrap is a failed test.

use payhsm::card::Domain;
use payhsm::policy::{
    Action, EnrolmentContext, PaymentContext, PolicyContext, PolicyDecision, PolicyEngine,
    PolicyRequest, Principal, Resource, IDENTITIES_FILE, POLICIES_FILE, SCHEMA_FILE,
};
use std::path::{Path, PathBuf};

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn engine() -> PolicyEngine {
    PolicyEngine::load(&policies_dir()).unwrap()
}

/// The engine's answer as these tests compare it (only the engine makes a `PolicyDecision`).
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    allowed: bool,
    policy_ids: Vec<String>,
}

impl From<PolicyDecision> for Answer {
    fn from(d: PolicyDecision) -> Self {
        Self {
            allowed: d.allowed(),
            policy_ids: d.policy_ids().to_vec(),
        }
    }
}

fn decide(engine: &PolicyEngine, identity: &str, action: Action) -> Answer {
    let principal = Principal::new(identity);
    let domain = Domain::parse("acme-shop").unwrap();
    let resource = match action {
        Action::ReadAudit | Action::ProveAuditRecord => Resource::AuditLog,
        Action::ReadKeys | Action::ApproveKeyChange | Action::RewrapKeys => Resource::KeyRing,
        Action::CreateDeviceChallenge | Action::EnrolDevice => Resource::RelyingParty("localhost"),
        Action::ListDevices | Action::ReadDevice | Action::RevokeDevice => Resource::DeviceRegistry,
        _ => Resource::Domain(&domain),
    };
    let payment = small_payment();
    let enrolment = EnrolmentContext {
        certification: "none".to_owned(),
        mds_status: "none".to_owned(),
    };
    let context = match action {
        Action::AuthorizePayment => PolicyContext::Payment(&payment),
        Action::EnrolDevice => PolicyContext::Enrolment(&enrolment),
        _ => PolicyContext::Empty,
    };
    engine
        .decide(&PolicyRequest {
            principal: &principal,
            action,
            resource,
            context,
        })
        .into()
}

/// 5.00 EUR, user verified, a self-attested device, in `acme-shop`.
fn small_payment() -> PaymentContext {
    PaymentContext {
        amount: 500,
        currency: "EUR".to_owned(),
        payee: "Shop".to_owned(),
        user_verified: true,
        trust: "self".to_owned(),
        backup_state: false,
        domain: "acme-shop".to_owned(),
        certification: "none".to_owned(),
        mds_status: "none".to_owned(),
        android_verified_boot: "none".to_owned(),
        android_device_locked: false,
    }
}

fn decide_payment(domain: &str, payment: &PaymentContext) -> Answer {
    let principal = Principal::new("spiffe://payhsm.dev/gateway");
    let domain = Domain::parse(domain).unwrap();
    engine()
        .decide(&PolicyRequest {
            principal: &principal,
            action: Action::AuthorizePayment,
            resource: Resource::Domain(&domain),
            context: PolicyContext::Payment(payment),
        })
        .into()
}

fn allow(id: &str) -> Answer {
    Answer {
        allowed: true,
        policy_ids: vec![id.to_owned()],
    }
}

fn deny_by_default() -> Answer {
    Answer {
        allowed: false,
        policy_ids: vec![],
    }
}

fn forbidden_detokenize() -> Answer {
    Answer {
        allowed: false,
        policy_ids: vec!["detokenize-only-vault-reader".to_owned()],
    }
}

/// Expected decision for every action, in `Action::ALL` order.
fn assert_decisions(identity: &str, expected: [Answer; 15]) {
    let engine = engine();
    for (action, want) in Action::ALL.into_iter().zip(expected) {
        assert_eq!(
            decide(&engine, identity, action),
            want,
            "{identity} {}",
            action.as_str()
        );
    }
}

#[test]
fn gateway_runs_the_token_lifecycle_and_enrols_devices_but_never_detokenizes() {
    let lifecycle = || allow("gateway-token-lifecycle");
    let enrolment = || allow("gateway-device-enrolment");
    assert_decisions(
        "spiffe://payhsm.dev/gateway",
        [
            lifecycle(),                                        // tokenize
            forbidden_detokenize(),                             // detokenize
            lifecycle(),                                        // read_metadata
            lifecycle(),                                        // suspend
            lifecycle(),                                        // resume
            lifecycle(),                                        // delete
            deny_by_default(),                                  // read_audit
            enrolment(),                                        // create_device_challenge
            enrolment(),                                        // enrol_device
            allow("gateway-authorization-challenges"),          // create_authorization_challenge
            allow("gateway-authorize-payments-in-its-domains"), // authorize_payment
            allow("gateway-read-authorizations"),               // read_authorization
            deny_by_default(),                                  // read_keys
            deny_by_default(),                                  // approve_key_change
            deny_by_default(),                                  // rewrap_keys
        ],
    );
}

#[test]
fn vault_reader_detokenizes_and_reads_metadata_only() {
    let vault = || allow("vault-reader-detokenize");
    assert_decisions(
        "spiffe://payhsm.dev/vault-reader",
        [
            deny_by_default(), // tokenize
            vault(),           // detokenize
            vault(),           // read_metadata
            deny_by_default(), // suspend
            deny_by_default(), // resume
            deny_by_default(), // delete
            deny_by_default(), // read_audit
            deny_by_default(), // create_device_challenge
            deny_by_default(), // enrol_device
            deny_by_default(), // create_authorization_challenge
            deny_by_default(), // authorize_payment
            deny_by_default(), // read_authorization
            deny_by_default(), // read_keys
            deny_by_default(), // approve_key_change
            deny_by_default(), // rewrap_keys
        ],
    );
}

#[test]
fn auditor_only_reads_the_audit_log_and_authorizations_and_lists_keys() {
    assert_decisions(
        "spiffe://payhsm.dev/auditor",
        [
            deny_by_default(),
            forbidden_detokenize(),
            deny_by_default(),
            deny_by_default(),
            deny_by_default(),
            deny_by_default(),
            allow("auditor-read-audit"),
            deny_by_default(),
            deny_by_default(),
            deny_by_default(),
            deny_by_default(),
            allow("auditor-read-authorizations"),
            allow("auditor-read-keys"),
            deny_by_default(),
            deny_by_default(),
        ],
    );
}

#[test]
fn custodians_only_manage_keys() {
    let keys = || allow("custodians-manage-keys");
    for n in 1..=3 {
        assert_decisions(
            &format!("spiffe://payhsm.dev/custodian-{n}"),
            [
                deny_by_default(),
                forbidden_detokenize(),
                deny_by_default(),
                deny_by_default(),
                deny_by_default(),
                deny_by_default(),
                deny_by_default(),
                deny_by_default(),
                deny_by_default(),
                deny_by_default(),
                deny_by_default(),
                deny_by_default(),
                keys(),
                keys(),
                keys(),
            ],
        );
    }
}

#[test]
fn payments_need_user_verification() {
    let payment = PaymentContext {
        user_verified: false,
        ..small_payment()
    };
    assert_eq!(
        decide_payment("acme-shop", &payment),
        Answer {
            allowed: false,
            policy_ids: vec!["payments-need-user-verification".to_owned()],
        }
    );
}

#[test]
fn above_100_only_hardware_attested_devices_authorize() {
    let threshold = || Answer {
        allowed: false,
        policy_ids: vec!["payments-above-100-need-hardware-trust".to_owned()],
    };
    for trust in ["self", "none"] {
        let payment = PaymentContext {
            amount: 10_001,
            trust: trust.to_owned(),
            ..small_payment()
        };
        assert_eq!(
            decide_payment("acme-shop", &payment),
            threshold(),
            "{trust}"
        );
    }
    let at_threshold = PaymentContext {
        amount: 10_000,
        ..small_payment()
    };
    assert!(decide_payment("acme-shop", &at_threshold).allowed);
    let hardware = PaymentContext {
        amount: 1_000_000,
        trust: "hardware".to_owned(),
        certification: "FIDO_CERTIFIED_L2".to_owned(),
        ..small_payment()
    };
    assert_eq!(
        decide_payment("acme-shop", &hardware),
        allow("gateway-authorize-payments-in-its-domains")
    );
}

#[test]
fn above_500_only_models_certified_l2_or_higher_authorize() {
    let refused = || Answer {
        allowed: false,
        policy_ids: vec!["payments-above-500-need-certification-l2".to_owned()],
    };
    for certification in [
        "none",
        "NOT_FIDO_CERTIFIED",
        "FIDO_CERTIFIED",
        "FIDO_CERTIFIED_L1plus",
    ] {
        let payment = PaymentContext {
            amount: 50_001,
            trust: "hardware".to_owned(),
            certification: certification.to_owned(),
            ..small_payment()
        };
        assert_eq!(
            decide_payment("acme-shop", &payment),
            refused(),
            "{certification}"
        );
    }
    for certification in [
        "FIDO_CERTIFIED_L2",
        "FIDO_CERTIFIED_L2plus",
        "FIDO_CERTIFIED_L3",
        "FIDO_CERTIFIED_L3plus",
    ] {
        let payment = PaymentContext {
            amount: 50_001,
            trust: "hardware".to_owned(),
            certification: certification.to_owned(),
            ..small_payment()
        };
        assert!(
            decide_payment("acme-shop", &payment).allowed,
            "{certification}"
        );
    }
    // At 500.00 exactly, certification is not asked.
    let at = PaymentContext {
        amount: 50_000,
        trust: "hardware".to_owned(),
        ..small_payment()
    };
    assert!(decide_payment("acme-shop", &at).allowed);
}

#[test]
fn the_gateway_authorizes_only_in_its_domains() {
    assert!(decide_payment("shop", &small_payment()).allowed);
    assert_eq!(
        decide_payment("elsewhere", &small_payment()),
        deny_by_default()
    );
}

#[test]
fn authorize_payment_without_a_payment_context_is_denied_by_default() {
    let principal = Principal::new("spiffe://payhsm.dev/gateway");
    let domain = Domain::parse("acme-shop").unwrap();
    let payment = small_payment();
    let engine = engine();
    assert_eq!(
        Answer::from(engine.decide(&PolicyRequest::new(
            &principal,
            Action::AuthorizePayment,
            Resource::Domain(&domain),
        ))),
        deny_by_default()
    );
    // And a payment context on another action is too.
    assert_eq!(
        Answer::from(engine.decide(&PolicyRequest {
            principal: &principal,
            action: Action::Tokenize,
            resource: Resource::Domain(&domain),
            context: PolicyContext::Payment(&payment),
        })),
        deny_by_default()
    );
}

#[test]
fn gateways_run_the_device_lifecycle_auditors_only_read_it_and_nobody_else_touches_it() {
    let engine = engine();
    let gateway = || allow("gateway-device-lifecycle");
    let auditor = || allow("auditor-read-devices");
    let cases = [
        ("gateway", [gateway(), gateway(), gateway()]),
        ("auditor", [auditor(), auditor(), deny_by_default()]),
        (
            "vault-reader",
            [deny_by_default(), deny_by_default(), deny_by_default()],
        ),
        (
            "monitoring",
            [deny_by_default(), deny_by_default(), deny_by_default()],
        ),
        (
            "custodian-1",
            [deny_by_default(), deny_by_default(), deny_by_default()],
        ),
        (
            "stranger",
            [deny_by_default(), deny_by_default(), deny_by_default()],
        ),
    ];
    for (who, expected) in cases {
        let identity = format!("spiffe://payhsm.dev/{who}");
        let actions = [
            Action::ListDevices,
            Action::ReadDevice,
            Action::RevokeDevice,
        ];
        for (action, want) in actions.into_iter().zip(expected) {
            assert_eq!(
                decide(&engine, &identity, action),
                want,
                "{who} {}",
                action.as_str()
            );
        }
    }
    // Device actions apply to the registry only, and no other action applies to it.
    let gateway = Principal::new("spiffe://payhsm.dev/gateway");
    let domain = Domain::parse("acme-shop").unwrap();
    for (action, resource) in [
        (Action::RevokeDevice, Resource::Domain(&domain)),
        (Action::ListDevices, Resource::RelyingParty("localhost")),
        (Action::Tokenize, Resource::DeviceRegistry),
    ] {
        let decision = Answer::from(engine.decide(&PolicyRequest::new(&gateway, action, resource)));
        assert_eq!(
            decision,
            deny_by_default(),
            "{} {resource:?}",
            action.as_str()
        );
    }
}

#[test]
fn unknown_identity_is_denied_everything() {
    let engine = engine();
    for identity in [
        "spiffe://payhsm.dev/stranger",
        "spiffe://evil.example/gateway",
        "gateway",
        "",
    ] {
        assert!(engine.groups_of(&Principal::new(identity)).is_empty());
        for action in Action::ALL {
            assert!(
                !decide(&engine, identity, action).allowed,
                "{identity:?} {}",
                action.as_str()
            );
        }
    }
}

#[test]
fn a_resource_of_the_wrong_kind_is_denied_by_default() {
    let engine = engine();
    let gateway = Principal::new("spiffe://payhsm.dev/gateway");
    let domain = Domain::parse("acme-shop").unwrap();
    for (action, resource) in [
        (Action::Tokenize, Resource::AuditLog),
        (Action::Tokenize, Resource::RelyingParty("localhost")),
        (Action::EnrolDevice, Resource::Domain(&domain)),
        (Action::CreateDeviceChallenge, Resource::AuditLog),
    ] {
        let decision = Answer::from(engine.decide(&PolicyRequest {
            principal: &gateway,
            action,
            resource,
            context: PolicyContext::Empty,
        }));
        assert_eq!(decision, deny_by_default(), "{}", action.as_str());
    }
    let auditor = Principal::new("spiffe://payhsm.dev/auditor");
    let decision = Answer::from(engine.decide(&PolicyRequest {
        principal: &auditor,
        action: Action::ReadAudit,
        resource: Resource::Domain(&domain),
        context: PolicyContext::Empty,
    }));
    assert_eq!(decision, deny_by_default());
    let decision = Answer::from(engine.decide(&PolicyRequest {
        principal: &auditor,
        action: Action::ReadAudit,
        resource: Resource::AuditLog,
        context: PolicyContext::Empty,
    }));
    assert_eq!(decision, allow("auditor-read-audit"));
}

#[test]
fn groups_come_from_the_identity_map() {
    let engine = engine();
    for (name, group) in [
        ("gateway", "gateway"),
        ("vault-reader", "vault-reader"),
        ("auditor", "auditor"),
        ("monitoring", "monitoring"),
        ("custodian-1", "custodian"),
        ("custodian-2", "custodian"),
        ("custodian-3", "custodian"),
    ] {
        let principal = Principal::new(format!("spiffe://payhsm.dev/{name}"));
        assert_eq!(engine.groups_of(&principal), vec![group.to_owned()]);
    }
}

#[test]
fn every_loaded_policy_has_its_annotated_id() {
    assert_eq!(
        engine().policy_ids(),
        [
            "auditor-read-audit",
            "auditor-read-authorizations",
            "auditor-read-devices",
            "auditor-read-keys",
            "custodians-manage-keys",
            "detokenize-only-vault-reader",
            "gateway-authorization-challenges",
            "gateway-authorize-payments-in-its-domains",
            "gateway-device-enrolment",
            "gateway-device-lifecycle",
            "gateway-read-authorizations",
            "gateway-token-lifecycle",
            "monitoring-read-metrics",
            "payments-above-100-need-hardware-trust",
            "payments-above-500-need-certification-l2",
            "payments-need-a-verified-android-boot",
            "payments-need-user-verification",
            "vault-reader-detokenize",
            "vault-reader-prove-receipts",
        ]
    );
}

#[test]
fn vault_readers_may_prove_their_records_and_gateways_may_not() {
    let engine = engine();
    for (who, allowed) in [
        ("vault-reader", true),
        ("gateway", false),
        ("auditor", false),
    ] {
        let principal = Principal::new(format!("spiffe://payhsm.dev/{who}"));
        let decision = engine.decide(&PolicyRequest {
            principal: &principal,
            action: Action::ProveAuditRecord,
            resource: Resource::AuditLog,
            context: PolicyContext::Empty,
        });
        assert_eq!(decision.allowed(), allowed, "{who}");
    }
}

/// A copy of the real policy folder with `policies.cedar` replaced by `policies`.
fn folder_with_policies(policies: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in [SCHEMA_FILE, IDENTITIES_FILE] {
        std::fs::copy(policies_dir().join(file), dir.path().join(file)).unwrap();
    }
    std::fs::write(dir.path().join(POLICIES_FILE), policies).unwrap();
    dir
}

fn load_error(policies: &str) -> String {
    let dir = folder_with_policies(policies);
    match PolicyEngine::load(dir.path()) {
        Ok(_) => panic!("policy folder was accepted:\n{policies}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn policy_with_unknown_action_is_refused_at_load() {
    let e = load_error(
        r#"@id("bad") permit(principal, action == Action::"launch_missiles", resource);"#,
    );
    assert!(e.contains(POLICIES_FILE), "{e}");
    assert!(e.contains("launch_missiles"), "{e}");
}

#[test]
fn policy_with_unknown_attribute_is_refused_at_load() {
    let e = load_error(
        r#"@id("bad-attr") permit(principal, action == Action::"tokenize", resource)
           when { context.amount > 100 };"#,
    );
    assert!(e.contains(POLICIES_FILE), "{e}");
    assert!(e.contains("strict schema validation"), "{e}");
    assert!(e.contains("amount"), "{e}");
}

#[test]
fn policy_without_id_is_refused_at_load() {
    let e = load_error(
        r#"@id("ok") permit(principal in Group::"gateway", action == Action::"tokenize", resource);
           permit(principal in Group::"auditor", action == Action::"detokenize", resource);"#,
    );
    assert!(e.contains("without an @id"), "{e}");
    assert!(e.contains("Group::\"auditor\""), "{e}");
}

#[test]
fn duplicate_policy_id_is_refused_at_load() {
    let e = load_error(
        r#"@id("same") permit(principal in Group::"gateway", action == Action::"tokenize", resource);
           @id("same") permit(principal in Group::"gateway", action == Action::"delete", resource);"#,
    );
    assert!(e.contains("duplicate policy @id(\"same\")"), "{e}");
}

#[test]
fn template_is_refused_at_load() {
    let e = load_error(
        r#"@id("tpl") permit(principal == ?principal, action == Action::"tokenize", resource);"#,
    );
    assert!(e.contains("template"), "{e}");
}

#[test]
fn missing_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = PolicyEngine::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains(SCHEMA_FILE), "{e}");
}
