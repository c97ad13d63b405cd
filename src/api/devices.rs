//! Request and response bodies of the device routes (`/v1/devices...`). Binary fields are
//! base64url without padding; anything else is malformed (400).

use super::error::ApiError;
use super::types::base64url;
use crate::card::{Domain, Token};
use crate::service::{uuid_text, EnrolInput, EnrolledDevice, IssuedChallenge};
use crate::store::{DeviceOwner, DeviceRecord, DeviceState};
use crate::text::{DisplayText, LoggableText};
use serde::{Deserialize, Serialize};

/// `POST /v1/devices/challenges`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The user the device is enrolled for.
    pub user: String,
    /// The relying party (a configured RP ID).
    pub rp_id: String,
}

impl ChallengeRequest {
    /// Screens the user name (shown by the authenticator and stored; NFC-normalized) and the
    /// relying party id (audited as it came): 422 `pan_in_text` or `unsafe_text`.
    pub fn parse(&self) -> Result<(DisplayText, LoggableText), ApiError> {
        Ok((
            DisplayText::parse(&self.user)?,
            LoggableText::parse(&self.rp_id)?,
        ))
    }
}

/// `{"id": ..}` of the relying party in the options.
#[derive(Debug, Serialize)]
pub struct RpEntity<'a> {
    /// The RP ID.
    pub id: &'a str,
}

/// `{"name": ..}` of the user in the options.
#[derive(Debug, Serialize)]
pub struct UserEntity<'a> {
    /// The user name.
    pub name: &'a str,
}

/// One entry of `pub_key_cred_params`.
#[derive(Debug, Serialize)]
pub struct CredentialParameter {
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A COSE algorithm identifier.
    pub alg: i64,
}

/// The answer to a challenge request: the challenge and the enrolment options a browser
/// passes to `navigator.credentials.create`.
#[derive(Debug, Serialize)]
pub struct ChallengeResponse<'a> {
    /// Quote it back with the registration response.
    pub challenge_id: &'a str,
    /// base64url, no padding.
    pub challenge: &'a str,
    /// RFC 3339 UTC.
    pub expires_at: &'a str,
    /// The relying party.
    pub rp: RpEntity<'a>,
    /// The user.
    pub user: UserEntity<'a>,
    /// Accepted algorithms, in order of preference.
    pub pub_key_cred_params: Vec<CredentialParameter>,
    /// `required` or `preferred`.
    pub user_verification: &'static str,
    /// Always `direct`: payhsm wants the attestation statement.
    pub attestation: &'static str,
}

impl<'a> From<&'a IssuedChallenge> for ChallengeResponse<'a> {
    fn from(c: &'a IssuedChallenge) -> Self {
        Self {
            challenge_id: &c.challenge_id,
            challenge: &c.challenge,
            expires_at: &c.expires_at,
            rp: RpEntity { id: &c.rp_id },
            user: UserEntity { name: &c.user },
            pub_key_cred_params: c
                .algorithms
                .iter()
                .map(|alg| CredentialParameter {
                    kind: "public-key",
                    alg: *alg,
                })
                .collect(),
            user_verification: if c.user_verification_required {
                "required"
            } else {
                "preferred"
            },
            attestation: "direct",
        }
    }
}

/// `POST /v1/devices`: a registration response.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The challenge answered.
    pub challenge_id: String,
    /// base64url credential id.
    pub credential_id: String,
    /// base64url attestationObject.
    pub attestation_object: String,
    /// base64url clientDataJSON.
    pub client_data_json: String,
    /// A token to bind the device to (with `domain`).
    #[serde(default)]
    pub token: Option<String>,
    /// The token's domain (with `token`).
    #[serde(default)]
    pub domain: Option<String>,
    /// base64url SPC browser-bound signature over clientDataJSON (the `payment` extension
    /// output), when clientDataJSON carries `payment.browserBoundPublicKey`.
    #[serde(default)]
    pub browser_bound_signature: Option<String>,
}

impl EnrolRequest {
    /// Decodes the binary fields and the token binding. The credential id is audited in
    /// base64url, as it came: screened first (422 `pan_in_text`).
    pub fn into_input(self) -> Result<EnrolInput, ApiError> {
        let token = match (self.token, self.domain) {
            (None, None) => None,
            (Some(t), Some(d)) => Some((Token::parse(&t)?, Domain::parse(&d)?)),
            _ => {
                return Err(ApiError::Malformed(
                    "`token` and `domain` go together: give both or neither",
                ))
            }
        };
        Ok(EnrolInput {
            credential_id: base64url(
                LoggableText::parse(&self.credential_id)?.as_str(),
                "`credential_id` is not base64url without padding",
            )?,
            attestation_object: base64url(
                &self.attestation_object,
                "`attestation_object` is not base64url without padding",
            )?,
            client_data_json: base64url(
                &self.client_data_json,
                "`client_data_json` is not base64url without padding",
            )?,
            browser_bound_signature: self
                .browser_bound_signature
                .map(|s| {
                    base64url(
                        &s,
                        "`browser_bound_signature` is not base64url without padding",
                    )
                })
                .transpose()?,
            challenge_id: self.challenge_id,
            token,
        })
    }
}

/// The answer to an enrolment.
#[derive(Debug, Serialize)]
pub struct EnrolResponse {
    /// payhsm's id for the device.
    pub device_id: String,
    /// Attestation format (`packed`, `none`, ...).
    pub format: &'static str,
    /// `hardware`, `self` or `none`.
    pub trust: &'static str,
    /// The AAGUID as a UUID string.
    pub aaguid: String,
    /// UV was set at registration.
    pub user_verified: bool,
}

impl From<&EnrolledDevice> for EnrolResponse {
    fn from(d: &EnrolledDevice) -> Self {
        Self {
            device_id: d.device_id.clone(),
            format: d.format.as_str(),
            trust: d.trust.as_str(),
            aaguid: uuid_text(&d.aaguid),
            user_verified: d.user_verified,
        }
    }
}

/// The query of `GET /v1/devices`: `user=U`, or `token=T&domain=D`, nothing else (400
/// `malformed_request`). Values are percent-decoded; a user name or token that holds a card
/// number is refused (422 `pan_in_text`, `pan_as_token`).
pub fn owner_from_query(query: Option<&str>) -> Result<DeviceOwner, ApiError> {
    let (mut user, mut token, mut domain) = (None, None, None);
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (slot, value) = match pair.split_once('=') {
            Some(("user", v)) => (&mut user, v),
            Some(("token", v)) => (&mut token, v),
            Some(("domain", v)) => (&mut domain, v),
            _ => return Err(ApiError::Malformed("unknown query parameter")),
        };
        if slot.is_some() {
            return Err(ApiError::Malformed("a query parameter is given twice"));
        }
        *slot = Some(percent_decode(value)?);
    }
    match (user, token, domain) {
        (Some(user), None, None) if !user.is_empty() => Ok(DeviceOwner::User(
            DisplayText::parse(&user)?.as_str().to_owned(),
        )),
        (None, Some(token), Some(domain)) => Ok(DeviceOwner::Token(
            Token::parse(&token)?,
            Domain::parse(&domain)?,
        )),
        _ => Err(ApiError::Malformed(
            "give `user`, or `token` and `domain`, and nothing else",
        )),
    }
}

/// RFC 3986 §2.1 percent-decoding (no `+` for space: this is a URI query, not a form), to
/// UTF-8.
fn percent_decode(value: &str) -> Result<String, ApiError> {
    const BAD: ApiError = ApiError::Malformed("a query value is not percent-encoded UTF-8");
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex = |b: Option<u8>| b.and_then(|b| char::from(b).to_digit(16));
        match (hex(bytes.next()), hex(bytes.next())) {
            (Some(hi), Some(lo)) => out.push(u8::try_from(hi * 16 + lo).map_err(|_| BAD)?),
            _ => return Err(BAD),
        }
    }
    String::from_utf8(out).map_err(|_| BAD)
}

/// `POST /v1/devices/{id}/revoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// `lost`, `stolen`, `compromised`, `user_request` or `replaced` (else 422
    /// `invalid_revocation_reason`).
    pub reason: String,
}

/// One device, as `GET /v1/devices`, `GET /v1/devices/{id}` and a revocation answer it.
#[derive(Debug, Serialize)]
pub struct DeviceResponse<'a> {
    /// payhsm's id for the device.
    pub device_id: &'a str,
    /// Attestation format.
    pub format: &'static str,
    /// `hardware`, `self` or `none`.
    pub trust: &'static str,
    /// The AAGUID as a UUID string.
    pub aaguid: String,
    /// The user it was enrolled for.
    pub user: &'a str,
    /// The token it is bound to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
    /// The token's domain, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<&'a str>,
    /// RFC 3339 UTC.
    pub created_at: &'a str,
    /// When an authorization with it last committed; `null` before the first.
    pub last_used_at: Option<&'a str>,
    /// The last accepted signature counter.
    pub sign_count: u32,
    /// `active` or `revoked`.
    pub status: &'static str,
    /// When it was revoked (revoked devices only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<&'a str>,
    /// Why (revoked devices only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<&'static str>,
}

impl<'a> From<&'a DeviceRecord> for DeviceResponse<'a> {
    fn from(d: &'a DeviceRecord) -> Self {
        let (revoked_at, revoke_reason) = match &d.state {
            DeviceState::Active => (None, None),
            DeviceState::Revoked { at, reason } => (Some(at.as_str()), Some(reason.as_str())),
        };
        Self {
            device_id: &d.device_id,
            format: d.format.as_str(),
            trust: d.trust.as_str(),
            aaguid: uuid_text(&d.aaguid),
            user: &d.user,
            token: d.token.as_ref().map(Token::as_str),
            domain: d.domain.as_ref().map(Domain::as_str),
            created_at: &d.created_at,
            last_used_at: d.last_used_at.as_deref(),
            sign_count: d.sign_count,
            status: d.state.as_str(),
            revoked_at,
            revoke_reason,
        }
    }
}

/// `GET /v1/devices`: `{"devices": [..]}`, oldest first.
#[derive(Debug, Serialize)]
pub struct DeviceListResponse<'a> {
    /// The devices.
    pub devices: Vec<DeviceResponse<'a>>,
}

impl<'a> From<&'a [DeviceRecord]> for DeviceListResponse<'a> {
    fn from(devices: &'a [DeviceRecord]) -> Self {
        Self {
            devices: devices.iter().map(DeviceResponse::from).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_query_is_a_user_or_a_token_with_its_domain_and_nothing_else() {
        let owner =
            |q: &str| owner_from_query(Some(q)).map_err(|e| (e.status().as_u16(), e.code()));
        assert_eq!(
            owner("user=alice%20b"),
            Ok(DeviceOwner::User("alice b".into()))
        );
        assert_eq!(
            owner("token=4111119876541111&domain=shop"),
            Ok(DeviceOwner::Token(
                Token::parse("4111119876541111").unwrap(),
                Domain::parse("shop").unwrap()
            ))
        );
        for bad in [
            "",
            "user=",
            "user=a&user=b",
            "user=a&domain=shop",
            "token=4111119876541111",
            "domain=shop",
            "user=a&token=4111119876541111&domain=shop",
            "who=a",
            "user=%zz",
            "user=%ff",
            "user=a%2",
        ] {
            assert_eq!(owner(bad), Err((400, "malformed_request")), "{bad}");
        }
        assert_eq!(
            owner("user=4111%201111%201111%201111"),
            Err((422, "pan_in_text"))
        );
        assert_eq!(
            owner("token=4111111111111111&domain=shop"),
            Err((422, "pan_as_token"))
        );
        assert!(owner_from_query(None).is_err());
    }

    #[test]
    fn aaguid_is_a_uuid_string() {
        let mut a = [0u8; 16];
        a[0] = 0xcb;
        a[15] = 0xa8;
        assert_eq!(uuid_text(&a), "cb000000-0000-0000-0000-0000000000a8");
    }

    #[test]
    fn bad_base64_and_half_a_token_binding_are_malformed() {
        let req = |cred: &str, token: Option<&str>, domain: Option<&str>| EnrolRequest {
            challenge_id: "c".into(),
            credential_id: cred.into(),
            attestation_object: "AA".into(),
            client_data_json: "AA".into(),
            browser_bound_signature: None,
            token: token.map(str::to_owned),
            domain: domain.map(str::to_owned),
        };
        for bad in ["AA==", "A+/A", "not base64!"] {
            let e = req(bad, None, None).into_input().unwrap_err();
            assert_eq!(e.code(), "malformed_request", "{bad}");
        }
        let e = req("AA", Some("4111119876541111"), None)
            .into_input()
            .unwrap_err();
        assert_eq!(e.code(), "malformed_request");
        let ok = req("AQI", None, None).into_input().unwrap();
        assert_eq!(ok.credential_id, [1, 2]);
    }

    #[test]
    fn card_numbers_and_spoofing_characters_are_refused_when_decoded() {
        let challenge = |user: &str, rp_id: &str| {
            ChallengeRequest {
                user: user.into(),
                rp_id: rp_id.into(),
            }
            .parse()
            .map_err(|e| (e.status().as_u16(), e.code()))
        };
        assert_eq!(
            challenge("alice 4111 1111 1111 1111", "shop.example"),
            Err((422, "pan_in_text"))
        );
        assert_eq!(
            challenge("alice", "4111111111111111"),
            Err((422, "pan_in_text"))
        );
        for user in ["ali\u{200d}ce", "alice\u{2028}", "\u{202e}ecila"] {
            assert_eq!(
                challenge(user, "shop.example"),
                Err((422, "unsafe_text")),
                "{user:?}"
            );
        }
        let (user, _) = challenge("Jose\u{301}", "shop.example").unwrap();
        assert_eq!(user.as_str(), "Jos\u{e9}");

        let enrol = |credential_id: &str, token: &str| {
            EnrolRequest {
                challenge_id: "c".into(),
                credential_id: credential_id.into(),
                attestation_object: "AA".into(),
                client_data_json: "AA".into(),
                token: Some(token.into()),
                domain: Some("shop".into()),
                browser_bound_signature: None,
            }
            .into_input()
            .map(|_| ())
            .map_err(|e| (e.status().as_u16(), e.code()))
        };
        assert_eq!(
            enrol("4111111111111111", "4111119876541111"),
            Err((422, "pan_in_text"))
        );
        assert_eq!(enrol("AA", "4111111111111111"), Err((422, "pan_as_token")));
        assert_eq!(enrol("AA", "4111119876541111"), Ok(()));
    }
}
