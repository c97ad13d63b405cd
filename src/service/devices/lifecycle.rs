//! The device lifecycle after enrolment: list a user's or a card's devices, read one, revoke
//! one. A revocation is final and is committed with its audit record; from that commit on the
//! store refuses every payment challenge and authorization with the device (it reads the
//! device's state in the transaction that would write them).

use super::Devices;
use crate::audit::AuditEvent;
use crate::policy::{Action, Resource};
use crate::service::{Caller, Error};
use crate::store::{DeviceOwner, DeviceRecord, Revocation, RevocationReason, RevokeOutcome};
use crate::text::LoggableText;

/// The audit outcome of a committed revocation.
const REVOKED: &str = "revoked";

impl Devices {
    /// The devices of a user or of a token (the token need not be active: a suspended card's
    /// devices may still need revoking), oldest first.
    pub async fn list(
        &self,
        caller: &Caller,
        owner: &DeviceOwner,
    ) -> Result<Vec<DeviceRecord>, Error> {
        self.lifecycle_policy(caller, Action::ListDevices, |event| match owner {
            DeviceOwner::User(user) => event.detail = Some(format!("user={user:?}")),
            DeviceOwner::Token(token, domain) => {
                // Masked: only a refusal is audited here, before anything shows the token is
                // stored (see `Token::masked`).
                event.token = Some(token.masked());
                event.domain = Some(domain.as_str().to_owned());
            }
        })
        .await?;
        Ok(self.store.devices_of(owner).await?)
    }

    /// One device by id; an unknown id is audited (outcome `device_not_found`).
    pub async fn get(
        &self,
        caller: &Caller,
        device_id: &LoggableText,
    ) -> Result<DeviceRecord, Error> {
        let audit = self
            .lifecycle_policy(caller, Action::ReadDevice, |event| {
                event.detail = Some(format!("device={}", device_id.as_str()));
            })
            .await?;
        match self.store.device(device_id.as_str()).await? {
            Some(device) => Ok(device),
            None => Err(self.refuse(audit, Error::DeviceNotFound).await),
        }
    }

    /// Revokes a device for `reason` (one of [`RevocationReason::ALL`], else 422
    /// `invalid_revocation_reason`). Final: a revoked device answers 409 `device_revoked`.
    /// Every outcome is audited as `revoke_device`.
    pub async fn revoke(
        &self,
        caller: &Caller,
        device_id: &LoggableText,
        reason: &str,
    ) -> Result<DeviceRecord, Error> {
        let mut audit = self
            .lifecycle_policy(caller, Action::RevokeDevice, |event| {
                event.detail = Some(format!("device={}", device_id.as_str()));
            })
            .await?;
        // The reason is caller text until it parses: only a parsed one is recorded.
        let Some(reason) = RevocationReason::parse(reason) else {
            return Err(self.refuse(audit, Error::InvalidRevocationReason).await);
        };
        let Some(device) = self.store.device(device_id.as_str()).await? else {
            return Err(self.refuse(audit, Error::DeviceNotFound).await);
        };
        if let (Some(token), Some(domain)) = (&device.token, &device.domain) {
            audit.token = Some(token.as_str().to_owned());
            audit.domain = Some(domain.as_str().to_owned());
        }
        audit.detail = Some(format!(
            "device={} user={:?} reason={}",
            device.device_id,
            device.user,
            reason.as_str()
        ));
        let refused = audit.clone();
        audit.outcome = REVOKED.to_owned();
        let revocation = Revocation {
            device_id: device.device_id,
            reason,
            at: crate::clock::now_rfc3339(),
        };
        match self.store.revoke_device(revocation, audit).await? {
            RevokeOutcome::Revoked(device) => Ok(*device),
            RevokeOutcome::AlreadyRevoked => Err(self.refuse(refused, Error::DeviceRevoked).await),
            // Gone between the read and the write: no write removes devices, so this is a
            // store that changed under us; answer as for any unknown id.
            RevokeOutcome::NotFound => Err(self.refuse(refused, Error::DeviceNotFound).await),
        }
    }

    /// Asks the policy about a lifecycle `action` on the device registry (a refusal is audited
    /// as `forbidden`); an allowance returns the event to complete.
    async fn lifecycle_policy(
        &self,
        caller: &Caller,
        action: Action,
        fill: impl FnOnce(&mut AuditEvent),
    ) -> Result<AuditEvent, Error> {
        crate::service::check_policy(
            self.store.as_ref(),
            &self.policy,
            caller,
            action,
            Resource::DeviceRegistry,
            fill,
        )
        .await
    }
}
