//! Random bytes and record ids.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Fills `buf` from the operating system's CSPRNG. A failing system RNG is unrecoverable for a
/// security module, so this aborts the process rather than drawing predictable tokens.
pub(super) fn fill_random(buf: &mut [u8]) {
    if getrandom::getrandom(buf).is_err() {
        tracing::error!("the system random number generator failed; stopping");
        std::process::abort();
    }
}

/// `n` random bytes (ids, challenges), base64url without padding.
pub(super) fn random_b64(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fill_random(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// The id of a record created at `now` (challenges, authorizations): a UUIDv7 (RFC 9562),
/// 48 bits of Unix milliseconds then 74 random bits. Ids sort by creation time, so inserting
/// one appends to the primary-key index instead of rewriting a random page of it; the random
/// part keeps them unique and unguessable (they are not secrets).
pub(super) fn time_ordered_id(now: time::OffsetDateTime) -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    uuid_v7(now, bytes)
}

/// A UUIDv7 from a time and 16 random bytes (their first 6 are replaced by the time, and
/// the version and variant bits are set).
fn uuid_v7(now: time::OffsetDateTime, mut bytes: [u8; 16]) -> String {
    let ms = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    for (b, t) in bytes.iter_mut().zip(ms.to_be_bytes().iter().skip(2)) {
        *b = *t;
    }
    if let Some(b) = bytes.get_mut(6) {
        *b = 0x70 | (*b & 0x0f);
    }
    if let Some(b) = bytes.get_mut(8) {
        *b = 0x80 | (*b & 0x3f);
    }
    uuid_text(&bytes)
}

/// 16 bytes as a lowercase UUID string (8-4-4-4-12).
pub fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let parts = [(0, 8), (8, 12), (12, 16), (16, 20), (20, 32)];
    parts
        .iter()
        .filter_map(|(a, b)| hex.get(*a..*b))
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v7_carries_the_time_version_and_variant() {
        // RFC 9562 appendix A.6: 2022-02-22 19:22:22 UTC is 0x017F22E279B0 ms.
        let t =
            time::OffsetDateTime::from_unix_timestamp_nanos(0x017F_22E2_79B0 * 1_000_000).unwrap();
        let id = uuid_v7(t, [0xff; 16]);
        assert_eq!(id, "017f22e2-79b0-7fff-bfff-ffffffffffff");
        assert_eq!(uuid_v7(t, [0; 16]), "017f22e2-79b0-7000-8000-000000000000");
    }

    #[test]
    fn later_ids_sort_after_earlier_ones_and_never_repeat() {
        let t0 = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut ids: Vec<String> = (0..200)
            .map(|i| time_ordered_id(t0 + time::Duration::milliseconds(i)))
            .collect();
        let in_order = ids.clone();
        ids.sort();
        assert_eq!(ids, in_order);
        ids.dedup();
        assert_eq!(ids.len(), 200);
        // Within one millisecond they still differ.
        assert_ne!(time_ordered_id(t0), time_ordered_id(t0));
    }
}
