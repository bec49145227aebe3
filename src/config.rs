//! ferry's config file (TOML): which hypervisor hosts to manage, and defaults.
//!
//! Looked up in this order: `--config FILE`, `$FERRY_CONFIG`, `$XDG_CONFIG_HOME/ferry/config.toml`
//! (`~/.config/ferry/config.toml`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::HostName;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub hosts: Vec<HostConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    pub name: HostName,
    /// libvirt connection URI, e.g. `qemu+ssh://root@hv1/system`.
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "no config file: give --config FILE, set FERRY_CONFIG, or create {default_path} \
         (`ferry lab up` writes one for the lab)"
    )]
    NotFound { default_path: PathBuf },
}

impl Config {
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
        config.check(path)?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        for (index, host) in self.hosts.iter().enumerate() {
            if self.hosts[..index].iter().any(|h| h.name == host.name) {
                return Err(invalid(format!(
                    "hosts[{index}].name: host {} is listed twice; host names must be unique",
                    host.name
                )));
            }
            if !host.uri.contains("://") {
                return Err(invalid(format!(
                    "hosts[{index}].uri: {:?} is not a libvirt URI (expected e.g. qemu+ssh://root@{}/system)",
                    host.uri, host.name
                )));
            }
        }
        Ok(())
    }
}

/// Where the config comes from: the explicit path, `$FERRY_CONFIG`, or the XDG default.
pub fn resolve_path(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("FERRY_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let default_path = xdg_dir("XDG_CONFIG_HOME", ".config").join("ferry/config.toml");
    if default_path.exists() {
        Ok(default_path)
    } else {
        Err(ConfigError::NotFound { default_path })
    }
}

/// `$VAR` if set and absolute, else `~/<fallback>` (the XDG base directory rule).
pub fn xdg_dir(var: &str, home_fallback: &str) -> PathBuf {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(home_fallback)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        let text = r#"
[[hosts]]
name = "hv1"
uri = "qemu+ssh://root@hv1/system"
group = "lab"
"#;
        let config = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(config.hosts.len(), 1);
        assert_eq!(config.hosts[0].name.as_str(), "hv1");
    }

    #[test]
    fn rejects_duplicates_unknown_keys_and_bad_names() {
        let dup = "[[hosts]]\nname='a'\nuri='qemu:///system'\n[[hosts]]\nname='a'\nuri='qemu:///system'\n";
        let err = Config::parse(dup, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listed twice") && err.contains("c.toml"),
            "{err}"
        );

        let unknown = "[[hosts]]\nname='a'\nuri='qemu:///system'\ncolour='red'\n";
        let err = Config::parse(unknown, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour") && err.contains("line 4"), "{err}");

        let bad_name = "[[hosts]]\nname='a/b'\nuri='qemu:///system'\n";
        let err = Config::parse(bad_name, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("'/'") && err.contains("line 2"), "{err}");

        let bad_uri = "[[hosts]]\nname='a'\nuri='hv1'\n";
        let err = Config::parse(bad_uri, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a libvirt URI"), "{err}");
    }
}
