use super::{recover, split, ShamirError, Share, TranscriptField, TRANSCRIPT_TAG};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A fixed share, so typo tests are deterministic.
fn fixed_share() -> Share {
    Share {
        set_id: [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF],
        threshold: 3,
        shares: 5,
        x: 4,
        y: Zeroizing::new((0u8..32).map(|i| i.wrapping_mul(37) ^ 0x5A).collect()),
    }
}

/// The checksum computed here independently: first 4 hex of SHA-256 over the text before it.
fn with_checksum(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    format!("{body} {:02X}{:02X}", digest[0], digest[1])
}

#[test]
fn a_transcript_round_trips() {
    let secret = [0x11u8; 32];
    let shares = split(&secret, 2, 3).unwrap();
    let lines: Vec<_> = shares.iter().map(|s| s.to_transcript()).collect();
    let back: Vec<Share> = lines
        .iter()
        .map(|l| Share::from_transcript(l).unwrap())
        .collect();
    for (a, b) in shares.iter().zip(&back) {
        assert_eq!(a.set_id(), b.set_id());
        assert_eq!(
            (a.threshold(), a.shares(), a.x()),
            (b.threshold(), b.shares(), b.x())
        );
        assert_eq!(a.expose_secret(), b.expose_secret());
    }
    assert_eq!(recover(&back[1..]).unwrap().as_slice(), secret);
}

#[test]
fn a_transcript_has_the_documented_shape_and_checksum() {
    let line = fixed_share().to_transcript();
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[0], TRANSCRIPT_TAG);
    assert_eq!(fields[1], "0123456789ABCDEF");
    assert_eq!(fields[2], "3-of-5");
    assert_eq!(fields[3], "4");
    assert_eq!(fields.len(), 4 + 16 + 1);
    assert!(fields[4..20].iter().all(|g| g.len() == 4));
    let (body, _) = line.rsplit_once(' ').unwrap();
    assert_eq!(line.as_str(), with_checksum(body));
}

#[test]
fn case_and_value_grouping_do_not_matter() {
    let line = fixed_share().to_transcript();
    let (head, sum) = line.rsplit_once(' ').unwrap();
    let fields: Vec<&str> = head.split(' ').collect();
    let regrouped = format!(
        "  {} {} {} {}  {}\t{} \n",
        fields[0],
        fields[1].to_ascii_lowercase(),
        fields[2],
        fields[3],
        fields[4..].concat().to_ascii_lowercase(),
        sum.to_ascii_lowercase()
    );
    let back = Share::from_transcript(&regrouped).unwrap();
    assert_eq!(back.expose_secret(), fixed_share().expose_secret());
}

#[test]
fn every_one_character_typo_is_refused() {
    let line = fixed_share().to_transcript();
    let body_len = line.rfind(' ').unwrap();
    let mut refused = 0;
    for (pos, c) in line.char_indices().take(body_len) {
        for typo in "0123456789ABCDEFabcdef-o".chars().filter(|t| *t != c) {
            let mut bad = line.to_string();
            bad.replace_range(pos..pos + 1, &typo.to_string());
            if bad.to_ascii_uppercase() == line.to_ascii_uppercase() {
                continue; // only the case changed, which is allowed
            }
            assert!(
                Share::from_transcript(&bad).is_err(),
                "typo at {pos}: {c} -> {typo}"
            );
            refused += 1;
        }
    }
    assert!(refused > 1000);
}

#[test]
fn a_typo_in_the_value_names_the_share_and_echoes_no_value() {
    let share = fixed_share();
    let line = share.to_transcript();
    let pos = line.find("3-of-5 4 ").unwrap() + 12;
    let mut bad = line.to_string();
    let replacement = if &bad[pos..pos + 1] == "0" { "1" } else { "0" };
    bad.replace_range(pos..pos + 1, replacement);
    let err = Share::from_transcript(&bad).unwrap_err();
    assert_eq!(err, ShamirError::TranscriptChecksum { x: Some(4) });
    assert_eq!(err.code(), "shamir_transcript_checksum");
    let message = err.to_string();
    assert!(message.contains("share 4"), "{message}");
    let fields: Vec<&str> = line.split(' ').collect();
    for group in &fields[4..20] {
        assert!(!message.contains(group), "{message}");
        assert!(!format!("{err:?}").contains(group));
    }
}

#[test]
fn a_wrong_checksum_is_refused() {
    let line = fixed_share().to_transcript();
    let (body, sum) = line.rsplit_once(' ').unwrap();
    let other = if sum == "0000" { "0001" } else { "0000" };
    assert_eq!(
        Share::from_transcript(&format!("{body} {other}")).unwrap_err(),
        ShamirError::TranscriptChecksum { x: Some(4) }
    );
    // Without its checksum, the last value group is taken as one and does not match.
    assert_eq!(
        Share::from_transcript(body).unwrap_err(),
        ShamirError::TranscriptChecksum { x: Some(4) }
    );
    for not_a_checksum in ["00000", "000", "00G0"] {
        assert_eq!(
            Share::from_transcript(&format!("{body} {not_a_checksum}")).unwrap_err(),
            ShamirError::MalformedTranscript {
                field: TranscriptField::Checksum
            }
        );
    }
}

#[test]
fn malformed_fields_with_a_valid_checksum_are_refused_by_name() {
    let value = "5A7F 30C5 ";
    let cases = [
        (
            format!("payhsm-share-v2 0123456789ABCDEF 3-of-5 4 {value}"),
            TranscriptField::Tag,
        ),
        (
            format!("{TRANSCRIPT_TAG} 0123456789ABCDE 3-of-5 4 {value}"),
            TranscriptField::SetId,
        ),
        (
            format!("{TRANSCRIPT_TAG} 0123456789ABCDEG 3-of-5 4 {value}"),
            TranscriptField::SetId,
        ),
        (
            format!("{TRANSCRIPT_TAG} 0123456789ABCDEF 1-of-5 4 {value}"),
            TranscriptField::Parameters,
        ),
        (
            format!("{TRANSCRIPT_TAG} 0123456789ABCDEF 6-of-5 4 {value}"),
            TranscriptField::Parameters,
        ),
        (
            format!("{TRANSCRIPT_TAG} 0123456789ABCDEF 3-of-256 4 {value}"),
            TranscriptField::Parameters,
        ),
        (
            format!("{TRANSCRIPT_TAG} 0123456789ABCDEF +3-of-5 4 {value}"),
            TranscriptField::Parameters,
        ),
        (
            format!("{TRANSCRIPT_TAG} 0123456789ABCDEF 3-of-5 6 {value}"),
            TranscriptField::ShareNumber,
        ),
        (
            format!("{TRANSCRIPT_TAG} 0123456789ABCDEF 3-of-5 0 {value}"),
            TranscriptField::ShareNumber,
        ),
        (
            format!("{TRANSCRIPT_TAG} 0123456789ABCDEF 3-of-5 +4 {value}"),
            TranscriptField::ShareNumber,
        ),
        (
            format!("{TRANSCRIPT_TAG} 0123456789ABCDEF 3-of-5 4 5A7F 30C"),
            TranscriptField::Value,
        ),
        (
            format!("{TRANSCRIPT_TAG} 0123456789ABCDEF 3-of-5 4 5A7F 30CX"),
            TranscriptField::Value,
        ),
    ];
    for (body, field) in cases {
        let line = with_checksum(body.trim_end());
        let err = Share::from_transcript(&line).unwrap_err();
        assert_eq!(err, ShamirError::MalformedTranscript { field }, "{body}");
    }
    assert_eq!(
        Share::from_transcript("").unwrap_err(),
        ShamirError::MalformedTranscript {
            field: TranscriptField::Line
        }
    );
    assert_eq!(
        Share::from_transcript(&"0".repeat(super::MAX_TRANSCRIPT_LEN + 1)).unwrap_err(),
        ShamirError::MalformedTranscript {
            field: TranscriptField::Line
        }
    );
    assert_eq!(
        Share::from_transcript("payhsm-share-v1 ü 3-of-5 4 00 0000").unwrap_err(),
        ShamirError::MalformedTranscript {
            field: TranscriptField::Line
        }
    );
}

#[test]
fn the_fuzz_entry_accepts_a_real_transcript_and_garbage() {
    super::fuzz_share_transcript(fixed_share().to_transcript().as_bytes());
    super::fuzz_share_transcript(b"payhsm-share-v1 \xff");
    super::fuzz_share_transcript(b"");
}
