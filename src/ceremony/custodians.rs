//! Who takes part in a ceremony: custodians named on the command line, checked against the
//! custodian group of the identities file (`policies/identities.toml`).
//!
//! Dual control means distinct people: a name given twice (even once short, once in full) is
//! refused, and so is a name outside the custodian group.

use std::collections::BTreeMap;

/// The group of `identities.toml` whose members may take part in key ceremonies.
pub const CUSTODIAN_GROUP: &str = "custodian";

/// A custodian of the identities file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custodian {
    /// The full identity, e.g. `spiffe://payhsm.dev/custodian-1`.
    pub identity: String,
    /// The short name: the identity's last path segment, e.g. `custodian-1`.
    pub name: String,
}

/// Why a named custodian was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CustodianError {
    /// The name is not an identity (or short name) of the custodian group.
    Unknown(String),
    /// The short name matches more than one custodian: give the full identity.
    Ambiguous(String),
    /// The same custodian is named twice.
    Duplicate(String),
}

impl CustodianError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unknown(_) => "custodian_unknown",
            Self::Ambiguous(_) => "custodian_ambiguous",
            Self::Duplicate(_) => "custodian_duplicate",
        }
    }
}

impl std::fmt::Display for CustodianError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown(name) => write!(
                f,
                "{name:?} is not in the {CUSTODIAN_GROUP:?} group of the identities file"
            ),
            Self::Ambiguous(name) => write!(
                f,
                "{name:?} names more than one custodian: give the full identity"
            ),
            Self::Duplicate(name) => write!(
                f,
                "{name:?} is named twice: dual control needs distinct custodians"
            ),
        }
    }
}

impl std::error::Error for CustodianError {}

/// The short name of an identity: what follows its last `/`.
fn short_name(identity: &str) -> &str {
    identity.rsplit('/').next().unwrap_or(identity)
}

/// Resolves `names` (full identities or short names), in order, against the members of the
/// custodian group in `identities` (identity -> groups).
pub fn resolve(
    names: &[String],
    identities: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<Custodian>, CustodianError> {
    let group: Vec<&str> = identities
        .iter()
        .filter(|(_, groups)| groups.iter().any(|g| g == CUSTODIAN_GROUP))
        .map(|(identity, _)| identity.as_str())
        .collect();
    let mut out: Vec<Custodian> = Vec::with_capacity(names.len());
    for name in names {
        let identity = if group.contains(&name.as_str()) {
            name.as_str()
        } else {
            let mut matches = group.iter().filter(|id| short_name(id) == name);
            match (matches.next(), matches.next()) {
                (Some(id), None) => id,
                (Some(_), Some(_)) => return Err(CustodianError::Ambiguous(name.clone())),
                (None, _) => return Err(CustodianError::Unknown(name.clone())),
            }
        };
        if out.iter().any(|c| c.identity == identity) {
            return Err(CustodianError::Duplicate(name.clone()));
        }
        out.push(Custodian {
            identity: identity.to_owned(),
            name: short_name(identity).to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> BTreeMap<String, Vec<String>> {
        [
            ("spiffe://payhsm.dev/custodian-1", "custodian"),
            ("spiffe://payhsm.dev/custodian-2", "custodian"),
            ("spiffe://payhsm.dev/gateway", "gateway"),
            ("spiffe://a.example/twin", "custodian"),
            ("spiffe://b.example/twin", "custodian"),
        ]
        .into_iter()
        .map(|(i, g)| (i.to_owned(), vec![g.to_owned()]))
        .collect()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn short_names_and_full_identities_resolve_in_order() {
        let got = resolve(
            &names(&["custodian-2", "spiffe://payhsm.dev/custodian-1"]),
            &map(),
        )
        .unwrap();
        assert_eq!(got[0].identity, "spiffe://payhsm.dev/custodian-2");
        assert_eq!(got[0].name, "custodian-2");
        assert_eq!(got[1].name, "custodian-1");
    }

    #[test]
    fn unknown_non_custodian_ambiguous_and_duplicate_names_are_refused() {
        let m = map();
        for (input, code) in [
            (vec!["custodian-9"], "custodian_unknown"),
            (vec!["gateway"], "custodian_unknown"),
            (vec!["spiffe://payhsm.dev/gateway"], "custodian_unknown"),
            (vec!["twin"], "custodian_ambiguous"),
            (vec!["custodian-1", "custodian-1"], "custodian_duplicate"),
            (
                vec!["custodian-1", "spiffe://payhsm.dev/custodian-1"],
                "custodian_duplicate",
            ),
        ] {
            let e = resolve(&names(&input), &m).unwrap_err();
            assert_eq!(e.code(), code, "{input:?}");
        }
        assert!(resolve(&names(&["spiffe://a.example/twin"]), &m).is_ok());
    }
}
