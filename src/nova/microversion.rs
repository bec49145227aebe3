//! Compute API microversions: what the cloud offers (its version document) and which version
//! each call sends. A call states the lowest version that has what it needs and the version it
//! would rather have (newer optional fields); it sends the preferred one capped at the cloud's
//! maximum, and is refused before sending when even its minimum is beyond the cloud.

use std::fmt;

use serde::Deserialize;

/// `2.88` is `Microversion { major: 2, minor: 88 }`; ordered numerically (2.9 < 2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Microversion {
    pub major: u16,
    pub minor: u16,
}

impl Microversion {
    pub const fn new(major: u16, minor: u16) -> Microversion {
        Microversion { major, minor }
    }

    /// `"2.93"`.
    pub fn parse(text: &str) -> Option<Microversion> {
        let text = text.trim();
        let (major, minor) = text.split_once('.')?;
        Some(Microversion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for Microversion {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}.{}", self.major, self.minor)
    }
}

/// The compute microversions a cloud accepts, from `GET /v2.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    pub min: Microversion,
    pub max: Microversion,
}

/// What one call needs: `minimum` has every field and parameter the call cannot do without;
/// `preferred` adds only fields the call parses optionally (or behaviour it would rather have).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionNeed {
    pub minimum: Microversion,
    pub preferred: Microversion,
}

impl VersionNeed {
    /// Exactly this version, nothing newer wanted.
    pub const fn exactly(version: Microversion) -> VersionNeed {
        VersionNeed {
            minimum: version,
            preferred: version,
        }
    }

    pub const fn between(minimum: Microversion, preferred: Microversion) -> VersionNeed {
        VersionNeed { minimum, preferred }
    }

    /// The version to send to a cloud offering `range`, or the version it lacks.
    pub fn negotiate(&self, range: VersionRange) -> Result<Microversion, Microversion> {
        if range.max < self.minimum {
            return Err(self.minimum);
        }
        Ok(self
            .preferred
            .min(range.max)
            .max(self.minimum)
            .max(range.min))
    }
}

#[derive(Debug, Deserialize)]
struct VersionEntry {
    #[serde(default)]
    id: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    min_version: String,
}

#[derive(Debug, Deserialize)]
struct VersionDocument {
    version: Option<VersionEntry>,
    #[serde(default)]
    versions: Vec<VersionEntry>,
}

/// Reads the compute version document: `GET /v2.1` gives `{"version": {...}}`, the root
/// `GET /` gives `{"versions": [...]}` (the v2.1 entry is taken). A v2.1 without
/// microversions (empty `version`) accepts 2.1 only.
pub fn parse_version_document(body: &[u8]) -> Result<VersionRange, String> {
    let document: VersionDocument = serde_json::from_slice(body)
        .map_err(|error| format!("version document is not the JSON expected: {error}"))?;
    let entry = match document.version {
        Some(entry) => entry,
        None => document
            .versions
            .into_iter()
            .find(|entry| entry.id == "v2.1")
            .ok_or("version document lists no v2.1 API")?,
    };
    let base = Microversion::new(2, 1);
    let max = if entry.version.is_empty() {
        base
    } else {
        Microversion::parse(&entry.version)
            .ok_or_else(|| format!("version {:?} is not a microversion", entry.version))?
    };
    let min = Microversion::parse(&entry.min_version).unwrap_or(base);
    Ok(VersionRange { min, max })
}

/// The compute API's versioned root for a catalog endpoint: Nova's catalog entry may carry the
/// project (`http://nova:8774/v2.1/PROJECT_ID`), and the version document lives at `/v2.1`.
pub fn versioned_root(compute_endpoint: &str) -> String {
    let trimmed = compute_endpoint.trim_end_matches('/');
    if let Some(position) = trimmed.find("/v2.1") {
        let end = position + "/v2.1".len();
        if trimmed.len() == end || trimmed[end..].starts_with('/') {
            return trimmed[..end].to_string();
        }
    }
    trimmed.to_string()
}
