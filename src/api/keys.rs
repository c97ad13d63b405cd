//! Request and response bodies of the key lifecycle routes (`/v1/keys...`).

use super::error::ApiError;
use crate::keys::KeyPurpose;
use crate::service::{ChangeOutcome, KeyChange, KeyChangeKind, MAX_REWRAP_BATCH};
use serde::{Deserialize, Serialize};

/// `POST /v1/keys/changes`: one custodian's approval of a key change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyChangeRequest {
    /// `rotate`, `activate`, `retire` or `destroy`.
    pub change: String,
    /// `data` or `authorization-signing`.
    pub purpose: String,
    /// The key version (none for `rotate`).
    #[serde(default)]
    pub version: Option<u32>,
}

impl KeyChangeRequest {
    /// Checks the names (422 `unsupported_key_change` for an unknown one).
    pub fn into_change(self) -> Result<KeyChange, ApiError> {
        let kind = KeyChangeKind::parse(&self.change).ok_or(ApiError::Service(
            crate::service::Error::UnsupportedKeyChange(
                "change must be rotate, activate, retire or destroy",
            ),
        ))?;
        let purpose = KeyPurpose::parse(&self.purpose).ok_or(ApiError::Service(
            crate::service::Error::UnsupportedKeyChange(
                "purpose must be data or authorization-signing",
            ),
        ))?;
        Ok(KeyChange {
            kind,
            purpose,
            version: self.version,
        })
    }
}

/// The answer to an approval: `pending` (202) or `applied` (200).
#[derive(Debug, Serialize)]
pub struct KeyChangeResponse<'a> {
    /// `pending` or `applied`.
    pub status: &'static str,
    /// The canonical change, e.g. `retire data 1`.
    pub change: &'a str,
    /// The approving custodians so far.
    pub approved_by: Vec<&'a str>,
    /// When a pending approval lapses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<&'a str>,
    /// What an applied change did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<&'a str>,
}

impl<'a> From<&'a ChangeOutcome> for KeyChangeResponse<'a> {
    fn from(o: &'a ChangeOutcome) -> Self {
        match o {
            ChangeOutcome::Pending {
                change,
                approved_by,
                expires_at,
            } => Self {
                status: "pending",
                change,
                approved_by: vec![approved_by],
                expires_at: Some(expires_at),
                summary: None,
            },
            ChangeOutcome::Applied {
                change,
                approved_by,
                summary,
            } => Self {
                status: "applied",
                change,
                approved_by: approved_by.iter().map(String::as_str).collect(),
                expires_at: None,
                summary: Some(summary),
            },
        }
    }
}

/// `POST /v1/keys/rewrap`: how many records to move at most in this call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewrapRequest {
    /// 1 to 5000; 500 when absent.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn default_batch() -> usize {
    500
}

impl RewrapRequest {
    /// The batch size, checked.
    pub fn batch(&self) -> Result<usize, ApiError> {
        if (1..=MAX_REWRAP_BATCH).contains(&self.batch) {
            Ok(self.batch)
        } else {
            Err(ApiError::Malformed("batch must be 1 to 5000"))
        }
    }
}
