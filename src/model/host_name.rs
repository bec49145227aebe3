//! Host names reach libvirt URIs (`qemu+ssh://root@NAME/system`) and ssh command lines, so
//! they are validated before they are used anywhere. Nova rejects such names for the same
//! reason: a `/`, `?`, `@`, `:` or space could change what the URI means.

use std::fmt;

/// A host name known to be safe inside a libvirt URI: letters, digits, `-` and `.`, starting
/// with a letter or digit, at most 253 characters, no empty label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct HostName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostNameError {
    #[error("host name is empty; give a name made of letters, digits, '-' and '.'")]
    Empty,
    #[error("host name {name:?} is {length} characters long; at most 253 are allowed")]
    TooLong { name: String, length: usize },
    #[error(
        "host name {name:?} contains {character:?}, which could change the meaning of a libvirt URI; \
         use only letters, digits, '-' and '.'"
    )]
    ForbiddenCharacter { name: String, character: char },
    #[error("host name {name:?} must start and end with a letter or digit and have no empty label ('..')")]
    BadShape { name: String },
}

impl HostName {
    pub fn parse(name: &str) -> Result<HostName, HostNameError> {
        if name.is_empty() {
            return Err(HostNameError::Empty);
        }
        if name.len() > 253 {
            return Err(HostNameError::TooLong {
                name: name.chars().take(40).collect::<String>() + "…",
                length: name.len(),
            });
        }
        if let Some(character) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
        {
            return Err(HostNameError::ForbiddenCharacter {
                name: name.to_string(),
                character,
            });
        }
        let bad_edge = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric());
        if bad_edge(name.chars().next()) || bad_edge(name.chars().last()) || name.contains("..") {
            return Err(HostNameError::BadShape {
                name: name.to_string(),
            });
        }
        Ok(HostName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for HostName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        HostName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["hv1", "compute-07", "node.dc1.example", "10.77.0.11", "A1"] {
            assert_eq!(HostName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn rejects_names_that_could_inject_into_a_uri() {
        for (name, bad) in [
            ("hv1/system?x", '/'),
            ("root@hv1", '@'),
            ("hv1:22", ':'),
            ("hv1 hv2", ' '),
            ("hv1;reboot", ';'),
            ("hv1?command=/bin/sh", '?'),
            ("hv1&no_verify=1", '&'),
            ("hv\n1", '\n'),
            ("hv1%2f", '%'),
            ("hv1$(id)", '$'),
        ] {
            match HostName::parse(name) {
                Err(HostNameError::ForbiddenCharacter { character, .. }) => {
                    assert_eq!(character, bad, "{name:?}")
                }
                other => panic!("{name:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        for name in ["-hv1", "hv1-", ".hv1", "hv1.", "hv..1"] {
            assert!(
                matches!(HostName::parse(name), Err(HostNameError::BadShape { .. })),
                "{name:?}"
            );
        }
        assert_eq!(HostName::parse(""), Err(HostNameError::Empty));
        assert!(matches!(
            HostName::parse(&"a".repeat(254)),
            Err(HostNameError::TooLong { length: 254, .. })
        ));
    }

    #[test]
    fn error_says_how_to_fix() {
        let message = HostName::parse("hv1/x").unwrap_err().to_string();
        assert!(
            message.contains("'/'") && message.contains("letters, digits"),
            "{message}"
        );
    }
}
