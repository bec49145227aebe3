//! One end of a migration, as the config names it: shared by the live and cold engines.

use serde::{Deserialize, Serialize};

/// One end of a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTarget {
    pub name: String,
    pub uri: String,
}

impl HostTarget {
    /// The host as the config names it, with its URI; None for a host the config lacks.
    pub fn from_config(config: &crate::config::Config, name: &str) -> Option<HostTarget> {
        config
            .hosts
            .iter()
            .find(|h| h.name.as_str() == name)
            .map(|h| HostTarget {
                name: name.to_string(),
                uri: h.uri.clone(),
            })
    }
}
