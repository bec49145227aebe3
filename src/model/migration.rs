//! Which migration, and of which kind: the names every part of ferry uses for one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The row id of one migration in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MigrationId(pub i64);

impl fmt::Display for MigrationId {
    /// Forwards the formatter so table widths apply to the id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationKind {
    Live,
    Cold,
}

impl MigrationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationKind::Live => "live",
            MigrationKind::Cold => "cold",
        }
    }

    pub fn parse(text: &str) -> Option<MigrationKind> {
        [MigrationKind::Live, MigrationKind::Cold]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}
