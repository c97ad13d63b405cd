//! Attestation trust anchors from `webauthn.anchors_dir`: the file I/O is here, the parsing
//! in pure functions, and the result goes to the sans-io verifier as [`TrustAnchors`].
//!
//! Each `*.pem`, `*.crt`, `*.cer` or `*.der` file holds one or more certificates (PEM) or
//! one certificate (DER). An optional `aaguids.toml` maps file names to AAGUID allow-lists:
//! `"yubico.pem" = ["cb69481e-8ff7-4039-93ec-0a2729a154a8"]`.

use super::DaemonError;
use crate::webauthn::attestation::TrustAnchors;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::collections::BTreeMap;
use std::path::Path;

/// The AAGUID allow-list file in the anchors folder.
pub const AAGUIDS_FILE: &str = "aaguids.toml";

const EXTENSIONS: [&str; 4] = ["pem", "crt", "cer", "der"];

fn anchor_err(path: &Path, message: impl std::fmt::Display) -> DaemonError {
    DaemonError::Anchors(crate::fault::Fault::new(format!(
        "{}: {message}",
        path.display()
    )))
}

/// Reads every anchor file in `dir` (sorted by name) and its `aaguids.toml`.
pub fn load(dir: &Path) -> Result<TrustAnchors, DaemonError> {
    let entries = std::fs::read_dir(dir).map_err(|e| anchor_err(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| anchor_err(dir, e))?.path();
        let is_anchor = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_anchor && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let aaguids_path = dir.join(AAGUIDS_FILE);
    let mut aaguids = if aaguids_path.exists() {
        let text =
            std::fs::read_to_string(&aaguids_path).map_err(|e| anchor_err(&aaguids_path, e))?;
        parse_aaguids(&text).map_err(|m| anchor_err(&aaguids_path, m))?
    } else {
        BTreeMap::new()
    };
    let mut anchors = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anchor_err(path, "the file name is not UTF-8"))?
            .to_owned();
        let bytes = std::fs::read(path).map_err(|e| anchor_err(path, e))?;
        let certs = parse_certificates(&bytes).map_err(|m| anchor_err(path, m))?;
        let allow = aaguids.remove(&name);
        let many = certs.len() > 1;
        for (i, der) in certs.into_iter().enumerate() {
            let anchor_name = if many {
                format!("{name}#{}", i + 1)
            } else {
                name.clone()
            };
            anchors.push((anchor_name, der, allow.clone()));
        }
    }
    // A name in aaguids.toml without its file is a typo that would silently widen trust.
    if let Some(name) = aaguids.keys().next() {
        return Err(anchor_err(
            &aaguids_path,
            format!("no anchor file named {name}"),
        ));
    }
    // The verifier decides each anchor's assurance (the Android software root never proves
    // hardware), then the allow-lists are applied by name.
    let mut trusted = TrustAnchors::from_certificates(
        anchors
            .iter()
            .map(|(name, der, _)| (name.clone(), der.clone()))
            .collect(),
    )
    .map_err(|e| anchor_err(dir, e))?;
    for (name, _, allow) in anchors {
        if let Some(allow) = allow {
            trusted = trusted
                .restrict_aaguids(&name, allow)
                .map_err(|e| anchor_err(dir, e))?;
        }
    }
    Ok(trusted)
}

/// The certificates of one anchor file: DER (a single SEQUENCE) or PEM (one or more).
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let certs = if bytes.first() == Some(&0x30) {
        vec![bytes.to_vec()]
    } else {
        CertificateDer::pem_slice_iter(bytes)
            .map(|c| c.map(|c| c.as_ref().to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "not a DER certificate nor PEM certificates".to_owned())?
    };
    if certs.is_empty() {
        return Err("no certificate found".to_owned());
    }
    for der in &certs {
        x509_parser::parse_x509_certificate(der)
            .map_err(|_| "a certificate does not parse as X.509".to_owned())?;
    }
    Ok(certs)
}

/// `aaguids.toml`: anchor file name -> AAGUIDs (UUID strings or 32 hex digits).
pub fn parse_aaguids(text: &str) -> Result<BTreeMap<String, Vec<[u8; 16]>>, String> {
    let table: BTreeMap<String, Vec<String>> =
        toml::from_str(text).map_err(|e| format!("does not parse: {}", e.message()))?;
    let mut out = BTreeMap::new();
    for (name, list) in table {
        let mut parsed = Vec::with_capacity(list.len());
        for s in &list {
            parsed.push(parse_aaguid(s).ok_or_else(|| format!("{name}: bad AAGUID {s:?}"))?);
        }
        out.insert(name, parsed);
    }
    Ok(out)
}

/// An AAGUID from `cb69481e-8ff7-4039-93ec-0a2729a154a8` or 32 hex digits.
pub fn parse_aaguid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let dashes_ok = s.len() == 32
        || (s.len() == 36
            && [8, 13, 18, 23]
                .iter()
                .all(|i| s.as_bytes().get(*i) == Some(&b'-')));
    if hex.len() != 32 || !dashes_ok {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["anchor.test".to_owned()]).unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn aaguids_parse_as_uuid_or_hex() {
        let a = parse_aaguid("cb69481e-8ff7-4039-93ec-0a2729a154a8").unwrap();
        assert_eq!(a[0], 0xcb);
        assert_eq!(a[15], 0xa8);
        assert_eq!(parse_aaguid("cb69481e8ff7403993ec0a2729a154a8"), Some(a));
        for bad in [
            "",
            "cb69481e",
            "cb69481e-8ff7-4039-93ec-0a2729a154ax",
            "cb-69481e8ff7403993ec0a2729a154a8",
        ] {
            assert_eq!(parse_aaguid(bad), None, "{bad}");
        }
        let map = parse_aaguids("\"y.pem\" = [\"cb69481e8ff7403993ec0a2729a154a8\"]").unwrap();
        assert_eq!(map["y.pem"], [a]);
        assert!(parse_aaguids("\"y.pem\" = [\"nope\"]").is_err());
    }

    #[test]
    fn a_folder_of_pem_and_der_anchors_loads_with_its_allow_lists() {
        let dir = tempfile::tempdir().unwrap();
        let pem = cert_pem();
        std::fs::write(dir.path().join("a.pem"), &pem).unwrap();
        std::fs::write(dir.path().join("b.pem"), format!("{pem}{}", cert_pem())).unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        std::fs::write(dir.path().join("c.der"), der.as_ref()).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        std::fs::write(
            dir.path().join(AAGUIDS_FILE),
            "\"a.pem\" = [\"cb69481e-8ff7-4039-93ec-0a2729a154a8\"]",
        )
        .unwrap();
        let anchors = load(dir.path()).unwrap().anchors;
        let names: Vec<&str> = anchors.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["a.pem", "b.pem#1", "b.pem#2", "c.der"]);
        assert_eq!(anchors[0].aaguids.as_ref().unwrap().len(), 1);
        assert_eq!(anchors[1].aaguids, None);
        assert_eq!(anchors[3].der, anchors[0].der);
    }

    #[test]
    fn a_broken_anchor_or_an_allow_list_for_a_missing_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.pem"), "not a certificate").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("bad.pem"), "{e}");
        std::fs::remove_file(dir.path().join("bad.pem")).unwrap();
        std::fs::write(dir.path().join(AAGUIDS_FILE), "\"gone.pem\" = []").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("gone.pem"), "{e}");
    }
}
