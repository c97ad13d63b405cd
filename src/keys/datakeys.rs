//! Data keys in RAM: HKDF subkeys in locked memory, PAN sealing and fingerprints.
//!
//! One [`DataKeyMaterial`] per key version is unwrapped by the HSM at start; [`DataKeyRing`]
//! derives two subkeys from each (HKDF-SHA256, RFC 5869) and drops the raw material.
use super::primitives::{self, GCM_TAG_LEN as TAG_LEN};
use super::{Fingerprint, KeyVersion, SealedPan};
use crate::card::{Domain, Expiry, Pan, Token};
use crate::isolation::LockedBox;
use std::collections::BTreeMap;
use std::sync::Arc;
use zeroize::Zeroizing;

const HKDF_SALT: &[u8] = b"payhsm/data-key";
const INFO_ENCRYPTION: &[u8] = b"payhsm/pan-encryption/v1";
const INFO_FINGERPRINT: &[u8] = b"payhsm/pan-fingerprint/v1";
const AAD_PREFIX: &[u8] = b"payhsm/pan/v1";
const FP_PREFIX: &[u8] = b"payhsm/fp/v1";
/// Domain separation of idempotency-key tags from PAN fingerprints (same subkey).
const IDEMPOTENCY_PREFIX: &[u8] = b"payhsm/idempotency/v1";

/// 32 bytes of data key material, zeroized on drop. No `Clone`.
pub struct DataKeyMaterial(Zeroizing<[u8; 32]>);

impl DataKeyMaterial {
    /// Takes ownership of raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies exactly 32 bytes from `bytes` straight into the zeroized buffer.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 32 {
            return None;
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(bytes);
        Some(Self(key))
    }

    /// The raw bytes, for the line that wraps or derives from them.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for DataKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKeyMaterial(..)")
    }
}

/// The two subkeys of one data key version, each in its own locked pages, and the version's
/// key check value.
struct Subkeys {
    encryption: LockedBox<[u8; 32]>,
    fingerprint: LockedBox<[u8; 32]>,
    /// AES-CMAC KCV of the data key (X9.24-1, `docs/kcv.md`).
    kcv: [u8; 5],
}

impl Subkeys {
    /// RFC 5869 §2.2-2.3: HKDF-Extract(salt, IKM) then HKDF-Expand(PRK, info, 32).
    fn derive(material: &DataKeyMaterial) -> Self {
        let ikm = material.expose();
        let mut encryption = LockedBox::new([0u8; 32]);
        let mut fingerprint = LockedBox::new([0u8; 32]);
        // 32 bytes is far below the 255 * HashLen limit, so expand cannot fail.
        let _ = primitives::hkdf_sha256_each(
            HKDF_SALT,
            ikm,
            &mut [
                (INFO_ENCRYPTION, &mut encryption[..]),
                (INFO_FINGERPRINT, &mut fingerprint[..]),
            ],
        );
        Self {
            encryption,
            fingerprint,
            kcv: crate::ceremony::kcv::kcv_cmac(material.expose()),
        }
    }

    fn fingerprint(&self, pan: &Pan, domain: &Domain) -> Option<Fingerprint> {
        let domain = domain.as_str().as_bytes();
        let domain_len = u8::try_from(domain.len()).ok()?;
        primitives::hmac_sha256(
            &self.fingerprint[..],
            &[FP_PREFIX, &[domain_len], domain, pan.expose_digits()],
        )
        .map(Fingerprint)
    }
}

/// The unwrapped data keys: per version, the PAN-encryption and PAN-fingerprint subkeys.
/// Immutable: a rotation or a retirement builds a new ring that shares the unchanged subkeys.
pub struct DataKeyRing {
    keys: BTreeMap<KeyVersion, Arc<Subkeys>>,
    active: KeyVersion,
}

impl std::fmt::Debug for DataKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyRing")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

/// Why a data key operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// No key of that version is loaded.
    UnknownVersion(KeyVersion),
    /// The ciphertext did not authenticate.
    Integrity,
    /// The system random source failed.
    Random,
    /// No active key.
    NoActiveKey,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownVersion(v) => write!(f, "data key version {} is not loaded", v.0),
            Self::Integrity => f.write_str("sealed record failed authentication"),
            Self::Random => f.write_str("system random source failed"),
            Self::NoActiveKey => f.write_str("the active data key version is not loaded"),
        }
    }
}

impl std::error::Error for KeyError {}

impl DataKeyRing {
    /// Builds the ring; `active` must be among `keys`. The raw material is dropped (and
    /// zeroized) once the subkeys are derived.
    pub fn new(
        keys: Vec<(KeyVersion, DataKeyMaterial)>,
        active: KeyVersion,
    ) -> Result<Self, KeyError> {
        let keys: BTreeMap<KeyVersion, Arc<Subkeys>> = keys
            .into_iter()
            .map(|(version, material)| (version, Arc::new(Subkeys::derive(&material))))
            .collect();
        if !keys.contains_key(&active) {
            return Err(KeyError::NoActiveKey);
        }
        Ok(Self { keys, active })
    }

    /// A ring with `material` added as `version`, which seals from now on; the others open.
    pub fn with_active(&self, version: KeyVersion, material: DataKeyMaterial) -> Self {
        let mut keys = self.keys.clone();
        keys.insert(version, Arc::new(Subkeys::derive(&material)));
        Self {
            keys,
            active: version,
        }
    }

    /// The ring the stored keys describe: `live` versions only (those not loaded yet come
    /// with their material in `added`), `active` sealing. The versions already loaded keep
    /// their derived subkeys: the HSM is asked only for the new ones.
    pub fn reconciled(
        &self,
        live: &[KeyVersion],
        added: Vec<(KeyVersion, DataKeyMaterial)>,
        active: KeyVersion,
    ) -> Result<Self, KeyError> {
        let mut keys: BTreeMap<KeyVersion, Arc<Subkeys>> = self
            .keys
            .iter()
            .filter(|(v, _)| live.contains(v))
            .map(|(v, k)| (*v, Arc::clone(k)))
            .collect();
        for (version, material) in added {
            keys.insert(version, Arc::new(Subkeys::derive(&material)));
        }
        if live.iter().any(|v| !keys.contains_key(v)) {
            return Err(KeyError::UnknownVersion(
                live.iter()
                    .copied()
                    .find(|v| !keys.contains_key(v))
                    .unwrap_or(active),
            ));
        }
        if !keys.contains_key(&active) {
            return Err(KeyError::NoActiveKey);
        }
        Ok(Self { keys, active })
    }

    /// A ring without `version` (retired). The active version cannot be removed.
    pub fn without(&self, version: KeyVersion) -> Result<Self, KeyError> {
        if version == self.active {
            return Err(KeyError::NoActiveKey);
        }
        let mut keys = self.keys.clone();
        keys.remove(&version);
        Ok(Self {
            keys,
            active: self.active,
        })
    }

    /// The version that seals new records.
    pub fn active(&self) -> KeyVersion {
        self.active
    }

    /// The loaded versions, oldest first.
    pub fn versions(&self) -> Vec<KeyVersion> {
        self.keys.keys().copied().collect()
    }

    /// The AES-CMAC key check value of a loaded version (`docs/kcv.md`).
    pub fn kcv(&self, version: KeyVersion) -> Option<[u8; 5]> {
        self.keys.get(&version).map(|k| k.kcv)
    }

    /// Seals PAN and expiry under the active version.
    pub fn seal(
        &self,
        pan: &Pan,
        expiry: Option<Expiry>,
        token: &Token,
        domain: &Domain,
    ) -> Result<SealedPan, KeyError> {
        let version = self.active;
        let subkeys = self.keys.get(&version).ok_or(KeyError::NoActiveKey)?;
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce).map_err(|_| KeyError::Random)?;
        let digits = pan.expose_digits();
        let pan_len = u8::try_from(digits.len()).map_err(|_| KeyError::Integrity)?;
        let (month, year) = expiry.map_or((0, 0), |e| (e.month(), e.year()));
        // Capacity for the tag up front: a reallocation would leave plaintext in freed memory.
        let mut buf = Zeroizing::new(Vec::with_capacity(1 + digits.len() + 3 + TAG_LEN));
        buf.push(pan_len);
        buf.extend_from_slice(digits);
        buf.push(month);
        buf.extend_from_slice(&year.to_be_bytes());
        let aad = aad(token, domain, version);
        primitives::gcm_seal_in_place(&subkeys.encryption, &nonce, &aad, &mut buf)?;
        Ok(SealedPan {
            key_version: version,
            nonce,
            ciphertext: std::mem::take(&mut *buf),
        })
    }

    /// Opens a sealed record.
    pub fn open(
        &self,
        sealed: &SealedPan,
        token: &Token,
        domain: &Domain,
    ) -> Result<(Pan, Option<Expiry>), KeyError> {
        let version = sealed.key_version;
        let subkeys = self
            .keys
            .get(&version)
            .ok_or(KeyError::UnknownVersion(version))?;
        let aad = aad(token, domain, version);
        let mut buf = Zeroizing::new(sealed.ciphertext.clone());
        primitives::gcm_open_in_place(&subkeys.encryption, &sealed.nonce, &aad, &mut buf)?;
        parse_plaintext(&buf).ok_or(KeyError::Integrity)
    }

    /// The keyed tag a client's idempotency key is stored under, with the active version that
    /// made it: HMAC-SHA256 under the fingerprint subkey, over the principal and the key. The
    /// key is the client's text and could hold a card number: only this tag is kept.
    pub fn idempotency_tag(&self, principal: &str, key: &str) -> Option<(KeyVersion, [u8; 32])> {
        let subkeys = self.keys.get(&self.active)?;
        let principal_len = u64::try_from(principal.len()).ok()?.to_be_bytes();
        let tag = primitives::hmac_sha256(
            &subkeys.fingerprint[..],
            &[
                IDEMPOTENCY_PREFIX,
                &principal_len,
                principal.as_bytes(),
                key.as_bytes(),
            ],
        )?;
        Some((self.active, tag))
    }

    /// Fingerprints of the PAN in the domain under every loaded version, active first.
    pub fn fingerprints(&self, pan: &Pan, domain: &Domain) -> Vec<Fingerprint> {
        self.versioned_fingerprints(pan, domain)
            .into_iter()
            .map(|(_, fp)| fp)
            .collect()
    }

    /// [`DataKeyRing::fingerprints`] with the version each is under: a store checks the
    /// versions against the ones it holds, so a ring that missed a rotation is caught.
    pub fn versioned_fingerprints(
        &self,
        pan: &Pan,
        domain: &Domain,
    ) -> Vec<(KeyVersion, Fingerprint)> {
        let active = self.keys.get_key_value(&self.active).into_iter();
        let others = self.keys.iter().rev().filter(|(v, _)| **v != self.active);
        active
            .chain(others)
            .filter_map(|(v, k)| Some((*v, k.fingerprint(pan, domain)?)))
            .collect()
    }
}

/// The data key ring in use, replaced whole when a version is activated or retired. Readers
/// take a snapshot (`current`) and use it for the whole request.
pub struct SharedRing(std::sync::RwLock<Arc<DataKeyRing>>);

impl SharedRing {
    /// Starts with `ring`.
    pub fn new(ring: DataKeyRing) -> Self {
        Self(std::sync::RwLock::new(Arc::new(ring)))
    }

    /// The ring now.
    pub fn current(&self) -> Arc<DataKeyRing> {
        Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Makes `ring` the ring for every later request.
    pub fn replace(&self, ring: DataKeyRing) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
    }
}

impl std::fmt::Debug for SharedRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.current().fmt(f)
    }
}

/// AAD = "payhsm/pan/v1" 0x00 domain 0x00 token 0x00 version (u32 BE).
fn aad(token: &Token, domain: &Domain, version: KeyVersion) -> Vec<u8> {
    let (d, t) = (domain.as_str().as_bytes(), token.as_str().as_bytes());
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + d.len() + t.len() + 7);
    aad.extend_from_slice(AAD_PREFIX);
    aad.push(0);
    aad.extend_from_slice(d);
    aad.push(0);
    aad.extend_from_slice(t);
    aad.push(0);
    aad.extend_from_slice(&version.0.to_be_bytes());
    aad
}

/// Plaintext = pan_len u8, pan digits, exp_month u8 (0 = none), exp_year u16 BE (0 = none).
fn parse_plaintext(buf: &[u8]) -> Option<(Pan, Option<Expiry>)> {
    let (&pan_len, rest) = buf.split_first()?;
    let pan_len = usize::from(pan_len);
    let digits = rest.get(..pan_len)?;
    let &[month, y0, y1] = rest.get(pan_len..)? else {
        return None;
    };
    let pan = Pan::from_ascii(digits).ok()?;
    let year = u16::from_be_bytes([y0, y1]);
    let expiry = match (month, year) {
        (0, 0) => None,
        _ => Some(Expiry::new(month, year).ok()?),
    };
    Some((pan, expiry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(versions: &[(u32, u8)], active: u32) -> DataKeyRing {
        let keys = versions
            .iter()
            .map(|&(v, b)| (KeyVersion(v), DataKeyMaterial::from_bytes([b; 32])))
            .collect();
        DataKeyRing::new(keys, KeyVersion(active)).unwrap()
    }

    fn pan() -> Pan {
        Pan::parse("4111111111111111").unwrap()
    }
    fn token(s: &str) -> Token {
        Token::parse(s).unwrap()
    }
    fn domain(s: &str) -> Domain {
        Domain::parse(s).unwrap()
    }

    #[test]
    fn seal_then_open_round_trips_with_expiry() {
        let r = ring(&[(1, 1)], 1);
        let (t, d) = (token("4111110000001234"), domain("shop"));
        let exp = Expiry::new(12, 2030).unwrap();
        let sealed = r.seal(&pan(), Some(exp), &t, &d).unwrap();
        assert_eq!(sealed.key_version, KeyVersion(1));
        let (p, e) = r.open(&sealed, &t, &d).unwrap();
        assert!(p == pan());
        assert_eq!(e, Some(exp));
    }

    #[test]
    fn seal_then_open_round_trips_without_expiry() {
        let r = ring(&[(1, 1)], 1);
        let (t, d) = (token("4111110000001234"), domain("shop"));
        let sealed = r.seal(&pan(), None, &t, &d).unwrap();
        let (p, e) = r.open(&sealed, &t, &d).unwrap();
        assert!(p == pan());
        assert_eq!(e, None);
    }

    #[test]
    fn sealing_twice_uses_fresh_nonces() {
        let r = ring(&[(1, 1)], 1);
        let (t, d) = (token("4111110000001234"), domain("shop"));
        let a = r.seal(&pan(), None, &t, &d).unwrap();
        let b = r.seal(&pan(), None, &t, &d).unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn open_fails_when_token_domain_or_ciphertext_differ() {
        let r = ring(&[(1, 1)], 1);
        let (t, d) = (token("4111110000001234"), domain("shop"));
        let sealed = r.seal(&pan(), None, &t, &d).unwrap();
        let other_token = token("4111110000005678");
        assert_eq!(
            r.open(&sealed, &other_token, &d).err(),
            Some(KeyError::Integrity)
        );
        assert_eq!(
            r.open(&sealed, &t, &domain("other")).err(),
            Some(KeyError::Integrity)
        );
        for i in 0..sealed.ciphertext.len() {
            let mut flipped = sealed.clone();
            flipped.ciphertext[i] ^= 0x01;
            assert_eq!(r.open(&flipped, &t, &d).err(), Some(KeyError::Integrity));
        }
        let mut bad_nonce = sealed.clone();
        bad_nonce.nonce[0] ^= 0x80;
        assert_eq!(r.open(&bad_nonce, &t, &d).err(), Some(KeyError::Integrity));
    }

    #[test]
    fn open_fails_when_version_in_aad_differs() {
        // Same material under two versions: only the version in the AAD differs.
        let r = ring(&[(1, 9), (2, 9)], 2);
        let (t, d) = (token("4111110000001234"), domain("shop"));
        let mut sealed = r.seal(&pan(), None, &t, &d).unwrap();
        sealed.key_version = KeyVersion(1);
        assert_eq!(r.open(&sealed, &t, &d).err(), Some(KeyError::Integrity));
    }

    #[test]
    fn open_reports_unknown_version() {
        let r = ring(&[(1, 1)], 1);
        let (t, d) = (token("4111110000001234"), domain("shop"));
        let mut sealed = r.seal(&pan(), None, &t, &d).unwrap();
        sealed.key_version = KeyVersion(7);
        assert_eq!(
            r.open(&sealed, &t, &d).err(),
            Some(KeyError::UnknownVersion(KeyVersion(7)))
        );
    }

    #[test]
    fn old_versions_still_open_after_rotation() {
        let old = ring(&[(1, 1)], 1);
        let (t, d) = (token("4111110000001234"), domain("shop"));
        let sealed = old.seal(&pan(), None, &t, &d).unwrap();
        let rotated = ring(&[(1, 1), (2, 2)], 2);
        assert_eq!(rotated.active(), KeyVersion(2));
        assert!(rotated.open(&sealed, &t, &d).is_ok());
        let fresh = rotated.seal(&pan(), None, &t, &d).unwrap();
        assert_eq!(fresh.key_version, KeyVersion(2));
    }

    #[test]
    fn new_refuses_an_active_version_that_is_not_loaded() {
        let keys = vec![(KeyVersion(1), DataKeyMaterial::from_bytes([1; 32]))];
        assert_eq!(
            DataKeyRing::new(keys, KeyVersion(2)).err(),
            Some(KeyError::NoActiveKey)
        );
    }

    #[test]
    fn fingerprints_converge_per_domain_and_differ_across_domains_and_versions() {
        let r = ring(&[(1, 1), (2, 2), (3, 3)], 2);
        let a = r.fingerprints(&pan(), &domain("shop"));
        let b = r.fingerprints(&pan(), &domain("shop"));
        let c = r.fingerprints(&pan(), &domain("other"));
        assert_eq!(a.len(), 3);
        assert_eq!(a, b);
        assert!(a.iter().all(|fp| !c.contains(fp)));
        assert_ne!(a[0], a[1]);
        assert_ne!(a[1], a[2]);
        // Active first: equals the single-version ring of version 2's material.
        let only_v2 = ring(&[(2, 2)], 2);
        assert_eq!(a[0], only_v2.fingerprints(&pan(), &domain("shop"))[0]);
    }

    #[test]
    fn fingerprints_differ_for_different_pans() {
        let r = ring(&[(1, 1)], 1);
        let other = Pan::parse("5555555555554444").unwrap();
        assert_ne!(
            r.fingerprints(&pan(), &domain("shop")),
            r.fingerprints(&other, &domain("shop"))
        );
    }

    #[test]
    fn debug_output_holds_no_key_bytes() {
        let r = ring(&[(1, 0xAB)], 1);
        let m = DataKeyMaterial::from_bytes([0xAB; 32]);
        assert_eq!(format!("{m:?}"), "DataKeyMaterial(..)");
        assert!(!format!("{r:?}").to_lowercase().contains("ab, "));
    }

    #[test]
    fn ring_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DataKeyRing>();
        assert_send_sync::<crate::keys::Hsm>();
    }
}
