//! The Cedar policy engine: loads a policy folder once, validates it, and answers each
//! request with a decision and the ids of the policies that made it. Deny by default.

use super::identities::{self, IdentityMap};
use super::{PolicyDecision, PolicyError, Principal};
use crate::card::Domain;
use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::str::FromStr;

/// The Cedar schema file in a policy folder.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The Cedar policy file in a policy folder.
pub const POLICIES_FILE: &str = "policies.cedar";
/// The identity-to-group map in a policy folder.
pub const IDENTITIES_FILE: &str = "identities.toml";
/// The annotation that names a policy; decisions report it.
const ID_ANNOTATION: &str = "id";
/// The one audit log resource, `AuditLog::"payhsm"`.
const AUDIT_LOG_ID: &str = "payhsm";
/// The id of the one `Metrics` entity.
const METRICS_ID: &str = "payhsm";
/// The one key ring resource, `KeyRing::"payhsm"`.
const KEY_RING_ID: &str = "payhsm";
/// The one device registry resource, `DeviceRegistry::"payhsm"` (the enrolled devices).
const DEVICE_REGISTRY_ID: &str = "payhsm";

/// A policy-checked action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// POST /v1/tokens
    Tokenize,
    /// POST /v1/tokens/detokenize
    Detokenize,
    /// GET /v1/tokens/{token}
    ReadMetadata,
    /// suspend
    Suspend,
    /// resume
    Resume,
    /// delete
    Delete,
    /// read the audit log
    ReadAudit,
    /// POST /v1/devices/challenges
    CreateDeviceChallenge,
    /// POST /v1/devices
    EnrolDevice,
    /// POST /v1/authorizations/challenges
    CreateAuthorizationChallenge,
    /// POST /v1/authorizations (with a [`PaymentContext`])
    AuthorizePayment,
    /// GET /v1/authorizations/{id}: a signed authorization, on its token's domain
    ReadAuthorization,
    /// GET /v1/keys: key versions, states, KCVs and thumbprints (never key material)
    ReadKeys,
    /// POST /v1/keys/changes: one custodian's approval of a key change (dual control)
    ApproveKeyChange,
    /// POST /v1/keys/rewrap: move records to the active data key
    RewrapKeys,
    /// GET /metrics: the Prometheus metrics
    ReadMetrics,
    /// GET /v1/devices?user= | ?token=&domain=: the devices of a user or a card
    ListDevices,
    /// GET /v1/devices/{id}
    ReadDevice,
    /// POST /v1/devices/{id}/revoke (final)
    RevokeDevice,
    /// GET /v1/audit/proof of a record of the caller's own (a detokenize receipt's), for a
    /// caller that may not read the log
    ProveAuditRecord,
}

impl Action {
    /// Every action, in a stable order (for tests and reports).
    pub const ALL: [Action; 20] = [
        Self::Tokenize,
        Self::Detokenize,
        Self::ReadMetadata,
        Self::Suspend,
        Self::Resume,
        Self::Delete,
        Self::ReadAudit,
        Self::CreateDeviceChallenge,
        Self::EnrolDevice,
        Self::CreateAuthorizationChallenge,
        Self::AuthorizePayment,
        Self::ReadAuthorization,
        Self::ReadKeys,
        Self::ApproveKeyChange,
        Self::RewrapKeys,
        Self::ReadMetrics,
        Self::ListDevices,
        Self::ReadDevice,
        Self::RevokeDevice,
        Self::ProveAuditRecord,
    ];

    /// The Cedar action id and audit action name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tokenize => "tokenize",
            Self::Detokenize => "detokenize",
            Self::ReadMetadata => "read_metadata",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
            Self::Delete => "delete",
            Self::ReadAudit => "read_audit",
            Self::CreateDeviceChallenge => "create_device_challenge",
            Self::EnrolDevice => "enrol_device",
            Self::CreateAuthorizationChallenge => "create_authorization_challenge",
            Self::AuthorizePayment => "authorize_payment",
            Self::ReadAuthorization => "read_authorization",
            Self::ReadKeys => "read_keys",
            Self::ApproveKeyChange => "approve_key_change",
            Self::RewrapKeys => "rewrap_keys",
            Self::ReadMetrics => "read_metrics",
            Self::ListDevices => "list_devices",
            Self::ReadDevice => "read_device",
            Self::RevokeDevice => "revoke_device",
            Self::ProveAuditRecord => "prove_audit_record",
        }
    }

    /// This action's position in [`Action::ALL`].
    fn index(self) -> Option<usize> {
        Action::ALL.iter().position(|a| *a == self)
    }

    /// Whether `resource` is the kind of resource this action applies to (as the schema
    /// declares it).
    fn applies_to(self, resource: &Resource<'_>) -> bool {
        match self {
            Self::Tokenize
            | Self::Detokenize
            | Self::ReadMetadata
            | Self::Suspend
            | Self::Resume
            | Self::Delete
            | Self::CreateAuthorizationChallenge
            | Self::AuthorizePayment
            | Self::ReadAuthorization => matches!(resource, Resource::Domain(_)),
            Self::ReadAudit | Self::ProveAuditRecord => matches!(resource, Resource::AuditLog),
            Self::ReadMetrics => matches!(resource, Resource::Metrics),
            Self::ReadKeys | Self::ApproveKeyChange | Self::RewrapKeys => {
                matches!(resource, Resource::KeyRing)
            }
            Self::CreateDeviceChallenge | Self::EnrolDevice => {
                matches!(resource, Resource::RelyingParty(_))
            }
            Self::ListDevices | Self::ReadDevice | Self::RevokeDevice => {
                matches!(resource, Resource::DeviceRegistry)
            }
        }
    }
}

/// What a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A token domain (`Domain::"<domain>"`): the token actions.
    Domain(&'a Domain),
    /// A configured relying party by RP ID (`RelyingParty::"<rp id>"`): device enrolment.
    RelyingParty(&'a str),
    /// The one audit log (`AuditLog::"payhsm"`).
    AuditLog,
    /// The daemon's keys (`KeyRing::"payhsm"`).
    KeyRing,
    /// The daemon's metrics (`Metrics::"payhsm"`).
    Metrics,
    /// The enrolled devices (`DeviceRegistry::"payhsm"`): list, read, revoke.
    DeviceRegistry,
}

/// What Cedar sees as `context` for `authorize_payment`: the transaction and what the
/// device's assertion and attestation established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentContext {
    /// Minor units (at most 10^15, so a Cedar `Long`).
    pub amount: u64,
    /// ISO 4217 code.
    pub currency: String,
    /// Payee name.
    pub payee: String,
    /// UV was set in the assertion.
    pub user_verified: bool,
    /// The device's attestation trust: `hardware`, `self` or `none`.
    pub trust: String,
    /// BS was set in the assertion.
    pub backup_state: bool,
    /// The token's domain.
    pub domain: String,
    /// The device model's latest FIDO certification in the Metadata Service
    /// (`FIDO_CERTIFIED_L2`, ...), or `none` when the MDS does not list it.
    pub certification: String,
    /// The device model's latest MDS status report (`FIDO_CERTIFIED_L2`, `UPDATE_AVAILABLE`,
    /// ...), or `none`.
    pub mds_status: String,
    /// For an `android-key` device, the verified boot state its TEE attested at enrolment
    /// (`verified`, `self_signed`, `unverified`, `failed`), else `none`.
    pub android_verified_boot: String,
    /// For an `android-key` device, whether its TEE attested a locked bootloader.
    pub android_device_locked: bool,
}

/// The context of `enrol_device`: what the Metadata Service says of the authenticator model
/// (by the AAGUID, or the U2F key identifier, the registration names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentContext {
    /// The latest certification status, or `none`.
    pub certification: String,
    /// The latest status, or `none`.
    pub mds_status: String,
}

/// The request context. Each action has exactly one kind (the schema's `context`); a
/// request with the wrong kind is denied by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyContext<'a> {
    /// `context: {}`: every action but `authorize_payment` and `enrol_device`.
    Empty,
    /// `authorize_payment`.
    Payment(&'a PaymentContext),
    /// `enrol_device`.
    Enrolment(&'a EnrolmentContext),
}

/// A question for the policy.
#[derive(Debug)]
pub struct PolicyRequest<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// What for.
    pub action: Action,
    /// On what. A resource of another kind than the action applies to is denied by default.
    pub resource: Resource<'a>,
    /// Under which conditions.
    pub context: PolicyContext<'a>,
}

impl<'a> PolicyRequest<'a> {
    /// A request with an empty context.
    pub fn new(principal: &'a Principal, action: Action, resource: Resource<'a>) -> Self {
        Self {
            principal,
            action,
            resource,
            context: PolicyContext::Empty,
        }
    }
}

/// The Cedar entity type names the schema declares, parsed once.
struct TypeNames {
    client: EntityTypeName,
    group: EntityTypeName,
    domain: EntityTypeName,
    relying_party: EntityTypeName,
    audit_log: EntityTypeName,
    key_ring: EntityTypeName,
    metrics: EntityTypeName,
    device_registry: EntityTypeName,
    action: EntityTypeName,
}

impl TypeNames {
    fn parse(schema_path: &Path) -> Result<Self, PolicyError> {
        let name = |s: &str| {
            EntityTypeName::from_str(s).map_err(|e| PolicyError::Schema {
                path: schema_path.to_owned(),
                message: format!("entity type {s}: {e}"),
            })
        };
        Ok(Self {
            client: name("Client")?,
            group: name("Group")?,
            domain: name("Domain")?,
            relying_party: name("RelyingParty")?,
            audit_log: name("AuditLog")?,
            key_ring: name("KeyRing")?,
            metrics: name("Metrics")?,
            device_registry: name("DeviceRegistry")?,
            action: name("Action")?,
        })
    }
}

fn uid(type_name: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
}

/// Cedar policies + identity map, validated at load. Cheap to query and `Sync`: share one
/// behind an `Arc`.
pub struct PolicyEngine {
    policies: PolicySet,
    /// Per action, in [`Action::ALL`] order: the policies whose action scope can match it
    /// (the others cannot apply, so Cedar need not build and evaluate them), or `None` when
    /// the schema refuses the action's requests (then every request is denied by default).
    by_action: Vec<Option<PolicySet>>,
    /// Every known client with its groups; unknown clients are absent, so have no group.
    entities: Entities,
    authorizer: Authorizer,
    identities: IdentityMap,
    names: TypeNames,
    /// Decisions without context, by (principal, action, resource): the policies, schema and
    /// entities never change after load, so the same request always gets the same answer.
    cache: DecisionCache,
}

/// Most cached decisions; the cache is emptied when full (callers choose domain names, so its
/// size must not depend on them).
const DECISION_CACHE_ENTRIES: usize = 16_384;

#[derive(Default)]
struct DecisionCache(std::sync::RwLock<std::collections::HashMap<String, PolicyDecision>>);

impl DecisionCache {
    /// `action \0 resource kind \0 resource id \0 principal`: unambiguous because no part can
    /// hold a NUL (identities and ids are checked text; a NUL would only miss the cache).
    fn key(request: &PolicyRequest<'_>) -> String {
        let (kind, id) = match request.resource {
            Resource::Domain(d) => ("d", d.as_str()),
            Resource::RelyingParty(rp) => ("r", rp),
            Resource::AuditLog => ("a", ""),
            Resource::KeyRing => ("k", ""),
            Resource::Metrics => ("m", ""),
            Resource::DeviceRegistry => ("v", ""),
        };
        let principal = request.principal.as_str();
        let action = request.action.as_str();
        let mut key = String::with_capacity(action.len() + id.len() + principal.len() + 5);
        for part in [action, "\0", kind, "\0", id, "\0", principal] {
            key.push_str(part);
        }
        key
    }

    fn get(&self, key: &str) -> Option<PolicyDecision> {
        let map = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key).cloned()
    }

    fn put(&self, key: String, decision: &PolicyDecision) {
        let mut map = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= DECISION_CACHE_ENTRIES {
            map.clear();
        }
        map.insert(key, decision.clone());
    }
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("policies", &self.policy_ids())
            .field("identities", &self.identities)
            .finish_non_exhaustive()
    }
}

impl PolicyEngine {
    /// Loads `dir` ([`SCHEMA_FILE`], [`POLICIES_FILE`], [`IDENTITIES_FILE`]). Refuses a
    /// schema that does not parse, a policy without a unique `@id`, a template, any strict
    /// validation error, and an inconsistent identity map.
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        let schema_path = dir.join(SCHEMA_FILE);
        let (schema, _warnings) =
            Schema::from_cedarschema_str(&read(&schema_path)?).map_err(|e| {
                PolicyError::Schema {
                    path: schema_path.clone(),
                    message: e.to_string(),
                }
            })?;
        let names = TypeNames::parse(&schema_path)?;

        let policies_path = dir.join(POLICIES_FILE);
        let policies = parse_policies(&policies_path, &read(&policies_path)?)?;
        // Strict mode: every policy must type-check against the schema; warnings are allowed.
        let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !result.validation_passed() {
            return Err(PolicyError::Validation {
                path: policies_path,
                errors: result.validation_errors().map(|e| e.to_string()).collect(),
            });
        }

        let identities_path = dir.join(IDENTITIES_FILE);
        let identities = identities::parse(&identities_path, &read(&identities_path)?)?;
        let entities = build_entities(&identities, &names, &schema).map_err(|message| {
            PolicyError::Identities {
                path: identities_path,
                message,
            }
        })?;

        let groups = schema.action_entities().map_err(|e| PolicyError::Schema {
            path: schema_path.clone(),
            message: e.to_string(),
        })?;
        let mut by_action = Vec::with_capacity(Action::ALL.len());
        for action in Action::ALL {
            if let Err(e) = check_request_shape(&schema, &names, action) {
                // Only if the schema lacks an action payhsm asks about: fail closed.
                tracing::error!(action = action.as_str(), error = %e, "policy requests for this action do not match the schema: each is denied");
                by_action.push(None);
                continue;
            }
            let set = policies_for(&policies, &groups, &uid(&names.action, action.as_str()))
                .map_err(|id| PolicyError::DuplicateId {
                    path: policies_path.clone(),
                    id,
                })?;
            by_action.push(Some(set));
        }

        Ok(Self {
            policies,
            by_action,
            entities,
            authorizer: Authorizer::new(),
            identities,
            names,
            cache: DecisionCache::default(),
        })
    }

    /// Decides one request. Allowed only on an explicit Cedar `Allow`. Requests without
    /// context are answered from a cache of earlier identical requests.
    pub fn decide(&self, request: &PolicyRequest<'_>) -> PolicyDecision {
        if !matches!(request.context, PolicyContext::Empty) {
            return self.evaluate(request);
        }
        let key = DecisionCache::key(request);
        if let Some(hit) = self.cache.get(&key) {
            return hit;
        }
        let decision = self.evaluate(request);
        self.cache.put(key, &decision);
        decision
    }

    /// Runs Cedar on one request, over the policies that can apply to its action.
    fn evaluate(&self, request: &PolicyRequest<'_>) -> PolicyDecision {
        match request.action.index().and_then(|i| self.by_action.get(i)) {
            Some(Some(policies)) => self.evaluate_in(request, policies, None),
            _ => PolicyDecision::deny_by_default(),
        }
    }

    /// Runs Cedar on one request over `policies`. `schema`: check the request against it
    /// first (done once per action at load for [`Self::evaluate`]: a request's shape is
    /// fixed by its action).
    fn evaluate_in(
        &self,
        request: &PolicyRequest<'_>,
        policies: &PolicySet,
        schema: Option<&Schema>,
    ) -> PolicyDecision {
        let kind_fits = match request.context {
            PolicyContext::Payment(_) => request.action == Action::AuthorizePayment,
            PolicyContext::Enrolment(_) => request.action == Action::EnrolDevice,
            PolicyContext::Empty => !matches!(
                request.action,
                Action::AuthorizePayment | Action::EnrolDevice
            ),
        };
        if !request.action.applies_to(&request.resource) || !kind_fits {
            return PolicyDecision::deny_by_default();
        }
        let resource = match request.resource {
            Resource::Domain(domain) => uid(&self.names.domain, domain.as_str()),
            Resource::RelyingParty(rp_id) => uid(&self.names.relying_party, rp_id),
            Resource::AuditLog => uid(&self.names.audit_log, AUDIT_LOG_ID),
            Resource::KeyRing => uid(&self.names.key_ring, KEY_RING_ID),
            Resource::Metrics => uid(&self.names.metrics, METRICS_ID),
            Resource::DeviceRegistry => uid(&self.names.device_registry, DEVICE_REGISTRY_ID),
        };
        let action = uid(&self.names.action, request.action.as_str());
        let context = match request.context {
            PolicyContext::Empty => Ok(Context::empty()),
            PolicyContext::Payment(p) => payment_context(p),
            PolicyContext::Enrolment(e) => enrolment_context(e),
        };
        let cedar_request = context.and_then(|context| {
            Request::new(
                uid(&self.names.client, request.principal.as_str()),
                action,
                resource,
                context,
                schema,
            )
            .map_err(|e| e.to_string())
        });
        let cedar_request = match cedar_request {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(action = request.action.as_str(), error = %e, "policy request does not match the schema");
                return PolicyDecision::deny_by_default();
            }
        };
        let response = self
            .authorizer
            .is_authorized(&cedar_request, policies, &self.entities);
        for error in response.diagnostics().errors() {
            tracing::warn!(error = %error, "policy evaluation error (policy skipped)");
        }
        // Policy ids are the @id annotations (see `parse_policies`).
        let policy_ids: BTreeSet<String> = response
            .diagnostics()
            .reason()
            .map(|id| AsRef::<str>::as_ref(id).to_owned())
            .collect();
        PolicyDecision::new(
            response.decision() == Decision::Allow,
            policy_ids.into_iter().collect(),
        )
    }

    /// The groups `principal` belongs to (sorted), empty for an unknown identity.
    pub fn groups_of(&self, principal: &Principal) -> Vec<String> {
        self.identities
            .get(principal.as_str())
            .cloned()
            .unwrap_or_default()
    }

    /// The `@id` of every loaded policy, sorted.
    pub fn policy_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .policies
            .policies()
            .map(|p| AsRef::<str>::as_ref(p.id()).to_owned())
            .collect();
        ids.sort();
        ids
    }
}

/// The Cedar context record of a payment (its shape is checked against the schema at load).
fn payment_context(p: &PaymentContext) -> Result<Context, String> {
    let amount = i64::try_from(p.amount).map_err(|_| "amount out of range".to_owned())?;
    let pairs = [
        ("amount", RestrictedExpression::new_long(amount)),
        (
            "currency",
            RestrictedExpression::new_string(p.currency.clone()),
        ),
        ("payee", RestrictedExpression::new_string(p.payee.clone())),
        (
            "user_verified",
            RestrictedExpression::new_bool(p.user_verified),
        ),
        ("trust", RestrictedExpression::new_string(p.trust.clone())),
        (
            "backup_state",
            RestrictedExpression::new_bool(p.backup_state),
        ),
        ("domain", RestrictedExpression::new_string(p.domain.clone())),
        (
            "certification",
            RestrictedExpression::new_string(p.certification.clone()),
        ),
        (
            "mds_status",
            RestrictedExpression::new_string(p.mds_status.clone()),
        ),
        (
            "android_verified_boot",
            RestrictedExpression::new_string(p.android_verified_boot.clone()),
        ),
        (
            "android_device_locked",
            RestrictedExpression::new_bool(p.android_device_locked),
        ),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    Context::from_pairs(pairs).map_err(|e| e.to_string())
}

/// The Cedar context record of an enrolment.
fn enrolment_context(e: &EnrolmentContext) -> Result<Context, String> {
    let pairs = [
        (
            "certification",
            RestrictedExpression::new_string(e.certification.clone()),
        ),
        (
            "mds_status",
            RestrictedExpression::new_string(e.mds_status.clone()),
        ),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    Context::from_pairs(pairs).map_err(|e| e.to_string())
}

/// Checks that `action`'s requests (a `Client`, the resource kind it applies to, its context
/// kind) are valid under `schema`. Every request for an action has this one shape, so one
/// check at load stands for the check of each request.
fn check_request_shape(schema: &Schema, names: &TypeNames, action: Action) -> Result<(), String> {
    let resource = if action.applies_to(&Resource::AuditLog) {
        uid(&names.audit_log, AUDIT_LOG_ID)
    } else if action.applies_to(&Resource::Metrics) {
        uid(&names.metrics, METRICS_ID)
    } else if action.applies_to(&Resource::KeyRing) {
        uid(&names.key_ring, KEY_RING_ID)
    } else if action.applies_to(&Resource::DeviceRegistry) {
        uid(&names.device_registry, DEVICE_REGISTRY_ID)
    } else if action.applies_to(&Resource::RelyingParty("")) {
        uid(&names.relying_party, "")
    } else {
        uid(&names.domain, "")
    };
    let context = if action == Action::AuthorizePayment {
        payment_context(&PaymentContext {
            amount: 0,
            currency: String::new(),
            payee: String::new(),
            user_verified: false,
            trust: String::new(),
            backup_state: false,
            domain: String::new(),
            certification: String::new(),
            mds_status: String::new(),
            android_verified_boot: String::new(),
            android_device_locked: false,
        })?
    } else if action == Action::EnrolDevice {
        enrolment_context(&EnrolmentContext {
            certification: String::new(),
            mds_status: String::new(),
        })?
    } else {
        Context::empty()
    };
    Request::new(
        uid(&names.client, ""),
        uid(&names.action, action.as_str()),
        resource,
        context,
        Some(schema),
    )
    .map(drop)
    .map_err(|e| e.to_string())
}

/// The policies of `all` whose action scope can match `action`: unconstrained, `==` it, or
/// `in` a list holding it or one of its action groups (`groups`: the schema's action
/// entities). Leaving out the others changes no decision: a policy's scope is part of its
/// condition, so for this action they could only be false. `Err`: the id of a policy that
/// could not be added (cannot happen: the ids in `all` are unique).
fn policies_for(
    all: &PolicySet,
    groups: &Entities,
    action: &EntityUid,
) -> Result<PolicySet, String> {
    let mut set = PolicySet::new();
    for policy in all.policies() {
        let applies = match policy.action_constraint() {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(a) => a == *action,
            ActionConstraint::In(list) => list
                .iter()
                .any(|a| a == action || groups.is_ancestor_of(a, action)),
        };
        if applies {
            set.add(policy.clone())
                .map_err(|_| AsRef::<str>::as_ref(policy.id()).to_owned())?;
        }
    }
    Ok(set)
}

fn read(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parses the policy text and re-keys every policy by its `@id` annotation, so that Cedar's
/// own policy ids (and so the response's reasons) are the annotation values.
fn parse_policies(path: &Path, text: &str) -> Result<PolicySet, PolicyError> {
    let parsed = PolicySet::from_str(text).map_err(|e| PolicyError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if let Some(template) = parsed.templates().next() {
        return Err(PolicyError::Template {
            path: path.to_owned(),
            id: template
                .annotation(ID_ANNOTATION)
                .unwrap_or_default()
                .to_owned(),
        });
    }
    let mut policies = PolicySet::new();
    for policy in parsed.policies() {
        let id = annotated_id(path, policy)?;
        policies
            .add(policy.new_id(cedar_policy::PolicyId::new(id)))
            .map_err(|_| PolicyError::DuplicateId {
                path: path.to_owned(),
                id: id.to_owned(),
            })?;
    }
    Ok(policies)
}

fn annotated_id<'p>(path: &Path, policy: &'p Policy) -> Result<&'p str, PolicyError> {
    match policy.annotation(ID_ANNOTATION) {
        Some(id) if !id.trim().is_empty() => Ok(id),
        _ => Err(PolicyError::MissingId {
            path: path.to_owned(),
            policy: policy
                .to_string()
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("//"))
                .unwrap_or_default()
                .chars()
                .take(120)
                .collect(),
        }),
    }
}

/// One `Client` entity per known identity with its `Group` parents, and the groups.
fn build_entities(
    identities: &IdentityMap,
    names: &TypeNames,
    schema: &Schema,
) -> Result<Entities, String> {
    let mut groups = BTreeSet::new();
    let mut entities = Vec::with_capacity(identities.len());
    for (identity, member_of) in identities {
        let parents: HashSet<EntityUid> = member_of.iter().map(|g| uid(&names.group, g)).collect();
        groups.extend(member_of.iter().map(String::as_str));
        entities.push(Entity::new_no_attrs(uid(&names.client, identity), parents));
    }
    entities.extend(
        groups
            .into_iter()
            .map(|g| Entity::new_no_attrs(uid(&names.group, g), HashSet::new())),
    );
    Entities::from_entities(entities, Some(schema)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<PolicyEngine>();
    }

    /// The real policy folder.
    fn policies_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
    }

    fn engine() -> PolicyEngine {
        PolicyEngine::load(&policies_dir()).unwrap()
    }

    /// A payment of `amount` minor units in EUR to `Shop`, in `shop`.
    fn payment_of(amount: u64, trust: &str, user_verified: bool) -> PaymentContext {
        PaymentContext {
            amount,
            currency: "EUR".to_owned(),
            payee: "Shop".to_owned(),
            user_verified,
            trust: trust.to_owned(),
            backup_state: false,
            domain: "shop".to_owned(),
            certification: "none".to_owned(),
            mds_status: "none".to_owned(),
            android_verified_boot: "none".to_owned(),
            android_device_locked: false,
        }
    }

    #[test]
    fn cached_decisions_equal_evaluated_ones_and_the_cache_stays_bounded() {
        let engine = engine();
        let principals = [
            "spiffe://payhsm.dev/gateway",
            "spiffe://payhsm.dev/vault-reader",
        ];
        for identity in principals {
            let principal = Principal::new(identity);
            for action in Action::ALL {
                let domain = Domain::parse("shop").unwrap();
                let resource = match action {
                    Action::ReadAudit | Action::ProveAuditRecord => Resource::AuditLog,
                    Action::ReadMetrics => Resource::Metrics,
                    Action::ReadKeys | Action::ApproveKeyChange | Action::RewrapKeys => {
                        Resource::KeyRing
                    }
                    Action::CreateDeviceChallenge | Action::EnrolDevice => {
                        Resource::RelyingParty("localhost")
                    }
                    Action::ListDevices | Action::ReadDevice | Action::RevokeDevice => {
                        Resource::DeviceRegistry
                    }
                    _ => Resource::Domain(&domain),
                };
                let request = PolicyRequest::new(&principal, action, resource);
                let evaluated = engine.evaluate(&request);
                assert_eq!(engine.decide(&request), evaluated, "{identity} {action:?}");
                assert_eq!(
                    engine.decide(&request),
                    evaluated,
                    "{identity} {action:?} cached"
                );
            }
        }
        // The same action on another principal or domain is another entry, not a hit.
        let gateway = Principal::new("spiffe://payhsm.dev/gateway");
        let reader = Principal::new("spiffe://payhsm.dev/vault-reader");
        let shop = Domain::parse("shop").unwrap();
        let allowed = PolicyRequest::new(&reader, Action::Detokenize, Resource::Domain(&shop));
        let refused = PolicyRequest::new(&gateway, Action::Detokenize, Resource::Domain(&shop));
        assert!(engine.decide(&allowed).allowed());
        assert!(!engine.decide(&refused).allowed());
        for n in 0..DECISION_CACHE_ENTRIES + 10 {
            let domain = Domain::parse(&format!("d{n}")).unwrap();
            engine.decide(&PolicyRequest::new(
                &gateway,
                Action::Tokenize,
                Resource::Domain(&domain),
            ));
        }
        let size = engine.cache.0.read().unwrap().len();
        assert!((1..=DECISION_CACHE_ENTRIES).contains(&size), "{size}");
    }

    /// Every kind of request the daemon can ask, with contexts on both sides of each payment
    /// policy, and mismatched resources and contexts (denied by default).
    fn each_request(mut check: impl FnMut(&PolicyRequest<'_>)) {
        let principals = [
            "spiffe://payhsm.dev/gateway",
            "spiffe://payhsm.dev/vault-reader",
            "spiffe://payhsm.dev/auditor",
            "spiffe://payhsm.dev/custodian-1",
            "spiffe://payhsm.dev/monitoring",
            "spiffe://payhsm.dev/unknown",
        ]
        .map(Principal::new);
        let domains = ["shop", "acme-shop", "other"].map(|d| Domain::parse(d).unwrap());
        let mut resources = vec![
            Resource::AuditLog,
            Resource::KeyRing,
            Resource::Metrics,
            Resource::DeviceRegistry,
            Resource::RelyingParty("localhost"),
        ];
        resources.extend(domains.iter().map(Resource::Domain));
        let mut payments = Vec::new();
        for (amount, trust) in [(500, "self"), (20_000, "self"), (20_000, "hardware")] {
            for user_verified in [true, false] {
                payments.push(payment_of(amount, trust, user_verified));
            }
        }
        let contexts: Vec<PolicyContext<'_>> = std::iter::once(PolicyContext::Empty)
            .chain(payments.iter().map(PolicyContext::Payment))
            .collect();
        for principal in &principals {
            for action in Action::ALL {
                for resource in &resources {
                    for context in &contexts {
                        check(&PolicyRequest {
                            principal,
                            action,
                            resource: *resource,
                            context: *context,
                        });
                    }
                }
            }
        }
    }

    #[test]
    fn decisions_over_each_actions_policies_equal_those_over_all_checked_against_the_schema() {
        let (schema, _) =
            Schema::from_cedarschema_str(&read(&policies_dir().join(SCHEMA_FILE)).unwrap())
                .unwrap();
        let engine = engine();
        let (mut requests, mut allowed, mut forbidden) = (0, 0, 0);
        each_request(|request| {
            let sliced = engine.evaluate(request);
            let whole = engine.evaluate_in(request, &engine.policies, Some(&schema));
            assert_eq!(sliced, whole, "{request:?}");
            requests += 1;
            allowed += usize::from(sliced.allowed());
            forbidden += usize::from(!sliced.allowed() && !sliced.policy_ids().is_empty());
        });
        // The comparison covered allows, explicit forbids and denials by default.
        assert!(allowed > 0 && forbidden > 0 && requests > allowed + forbidden);
        // And the slicing left policies out: a payment is decided over fewer than all.
        let payment = engine.by_action[Action::AuthorizePayment.index().unwrap()]
            .as_ref()
            .unwrap();
        assert!(payment.policies().count() < engine.policies.policies().count());
    }

    /// The real policy folder with `schema` and `policies` in place of its own.
    fn folder(schema: &str, policies: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let real = policies_dir();
        std::fs::copy(real.join(IDENTITIES_FILE), dir.path().join(IDENTITIES_FILE)).unwrap();
        std::fs::write(dir.path().join(SCHEMA_FILE), schema).unwrap();
        std::fs::write(dir.path().join(POLICIES_FILE), policies).unwrap();
        dir
    }

    fn payment(engine: &PolicyEngine, user_verified: bool) -> PolicyDecision {
        let gateway = Principal::new("spiffe://payhsm.dev/gateway");
        let shop = Domain::parse("shop").unwrap();
        let context = payment_of(500, "self", user_verified);
        engine.decide(&PolicyRequest {
            principal: &gateway,
            action: Action::AuthorizePayment,
            resource: Resource::Domain(&shop),
            context: PolicyContext::Payment(&context),
        })
    }

    #[test]
    fn a_policy_on_an_action_group_applies_to_its_members() {
        let schema = read(&policies_dir().join(SCHEMA_FILE)).unwrap().replace(
            "action authorize_payment appliesTo",
            "action payments;\naction authorize_payment in [payments] appliesTo",
        );
        let dir = folder(
            &schema,
            r#"
            @id("payments-group") permit(principal, action in [Action::"payments"], resource);
            @id("no-uv") forbid(principal, action in Action::"payments", resource)
                unless { context has user_verified && context.user_verified };
            "#,
        );
        let engine = PolicyEngine::load(dir.path()).unwrap();
        assert_eq!(
            payment(&engine, true),
            PolicyDecision::new(true, vec!["payments-group".to_owned()])
        );
        assert_eq!(
            payment(&engine, false),
            PolicyDecision::new(false, vec!["no-uv".to_owned()])
        );
    }

    #[test]
    fn an_action_the_schema_lacks_is_denied_by_default_and_the_others_still_decided() {
        let full = read(&policies_dir().join(SCHEMA_FILE)).unwrap();
        let start = full.find("action authorize_payment appliesTo").unwrap();
        let schema = &full[..start];
        let dir = folder(
            schema,
            r#"
            @id("anything") permit(principal, action, resource);
            "#,
        );
        let engine = PolicyEngine::load(dir.path()).unwrap();
        assert_eq!(payment(&engine, true), PolicyDecision::deny_by_default());
        let gateway = Principal::new("spiffe://payhsm.dev/gateway");
        let shop = Domain::parse("shop").unwrap();
        let tokenize = PolicyRequest::new(&gateway, Action::Tokenize, Resource::Domain(&shop));
        assert!(engine.decide(&tokenize).allowed());
    }

    #[test]
    fn action_ids_are_unique() {
        let ids: BTreeSet<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(ids.len(), Action::ALL.len());
    }
}
