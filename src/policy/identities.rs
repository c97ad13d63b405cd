//! `identities.toml`: which certificate identity belongs to which groups.
//!
//! ```toml
//! [[client]]
//! identity = "spiffe://payhsm.dev/gateway"
//! groups = ["gateway"]
//! ```

use super::PolicyError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentitiesFile {
    #[serde(default)]
    client: Vec<ClientEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    identity: String,
    groups: Vec<String>,
}

/// The validated map: identity -> its groups (sorted, unique). Identities not listed have no
/// group, so they match no `principal in Group::...` policy.
pub type IdentityMap = BTreeMap<String, Vec<String>>;

/// Reads and validates `dir/identities.toml` alone (the key ceremony checks custodians
/// against it without loading the Cedar policies).
pub fn load(dir: &Path) -> Result<IdentityMap, PolicyError> {
    let path = dir.join(super::IDENTITIES_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&path, &text)
}

/// Parses and validates the text of `identities.toml` (`path` only names it in errors).
pub(super) fn parse(path: &Path, text: &str) -> Result<IdentityMap, PolicyError> {
    let err = |message: String| PolicyError::Identities {
        path: path.to_owned(),
        message,
    };
    let file: IdentitiesFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
    let mut map = IdentityMap::new();
    for (index, entry) in file.client.into_iter().enumerate() {
        let at = format!("client[{index}]");
        if entry.identity.trim().is_empty() {
            return Err(err(format!("{at}.identity is empty")));
        }
        let mut groups = entry.groups;
        if let Some(position) = groups.iter().position(|g| g.trim().is_empty()) {
            return Err(err(format!("{at}.groups[{position}] is empty")));
        }
        groups.sort();
        groups.dedup();
        if map.insert(entry.identity.clone(), groups).is_some() {
            return Err(err(format!(
                "{at}.identity {:?} is listed more than once",
                entry.identity
            )));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_identity_is_refused() {
        let text = r#"
            [[client]]
            identity = "spiffe://x/a"
            groups = ["g"]
            [[client]]
            identity = "spiffe://x/a"
            groups = ["h"]
        "#;
        let e = parse(Path::new("identities.toml"), text)
            .map(|_| ())
            .unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");
    }

    #[test]
    fn empty_group_name_is_refused() {
        let text = "[[client]]\nidentity = \"spiffe://x/a\"\ngroups = [\"g\", \"\"]\n";
        let e = parse(Path::new("identities.toml"), text)
            .map(|_| ())
            .unwrap_err();
        assert!(
            e.to_string().contains("client[0].groups[1] is empty"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_is_refused() {
        let text = "[[client]]\nidentity = \"spiffe://x/a\"\ngroup = [\"g\"]\n";
        assert!(parse(Path::new("identities.toml"), text).is_err());
    }
}
