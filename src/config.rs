//! ferry's config file (TOML): which hypervisor hosts to manage, and defaults.
//!
//! Looked up in this order: `--config FILE`, `$FERRY_CONFIG`, `$XDG_CONFIG_HOME/ferry/config.toml`
//! (`~/.config/ferry/config.toml`).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::HostName;
use crate::policy::{AdaptivePolicyConfig, NovaPolicyConfig};

/// Default shared-storage prefix: the lab's NFS-like shared directory. Real sites list their
/// NFS/Ceph/GlusterFS mount points in `shared_storage_prefixes`.
pub const DEFAULT_SHARED_STORAGE_PREFIX: &str = "/var/lib/ferry-lab/shared";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How often every host's facts and instances are read again.
    #[serde(default = "default_refresh_interval_seconds")]
    pub refresh_interval_seconds: u64,
    /// Upper bound on every single libvirt call (connect, facts, list); a host that does not
    /// answer within it is shown unreachable while the others keep refreshing.
    #[serde(default = "default_call_timeout_seconds")]
    pub call_timeout_seconds: u64,
    /// Theme name (dark, light, high-contrast, or a file in $XDG_CONFIG_HOME/ferry/themes/)
    /// or a path to a theme file. `--theme` wins over this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
    /// tracing filter for the log file (e.g. `info`, `ferry=debug`). `--log-level` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// A disk whose source path starts with one of these directories is on shared storage
    /// (it need not be copied during a live migration); any other file or block disk is
    /// host-local. Network disks (rbd, nbd, iscsi, gluster…) are always shared.
    #[serde(default = "default_shared_storage_prefixes")]
    pub shared_storage_prefixes: Vec<String>,
    #[serde(default)]
    pub migration: MigrationDefaults,
    #[serde(default)]
    pub hosts: Vec<HostConfig>,
    /// `[[clouds]]`: OpenStack clouds whose Nova ferry drives, named as in `clouds.yaml`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clouds: Vec<CloudEntry>,
    /// `[keys.SCREEN]` tables remapping the TUI's keys: `abort = "A"`, or a list of keys
    /// (`move_down = ["j", "down"]`, `[]` unbinds). The TUI checks the screens, actions and
    /// keys against its key table when it starts (`tui::keys`).
    #[serde(default, skip_serializing_if = "KeyOverrides::is_empty")]
    pub keys: KeyOverrides,
    /// The file this was loaded from, for errors found later (a `[keys]` entry the TUI refuses).
    #[serde(skip)]
    pub source_path: Option<PathBuf>,
}

/// `[keys]`: screen name, then action name, then the keys that trigger it.
pub type KeyOverrides =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, KeyList>>;

/// One key (`"A"`, `"ctrl-r"`) or several (`["j", "down"]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum KeyList {
    One(String),
    Many(Vec<String>),
}

impl KeyList {
    pub fn keys(&self) -> Vec<&str> {
        match self {
            KeyList::One(key) => vec![key.as_str()],
            KeyList::Many(keys) => keys.iter().map(String::as_str).collect(),
        }
    }
}

/// Defaults for migrations (`[migration]`); the CLI's and the launch dialog's options start
/// from these.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationDefaults {
    /// "adaptive" (ferry's own) or "nova" (Nova's downtime steps and completion timeout).
    pub policy: PolicyName,
    /// How often the monitor reads job statistics.
    pub poll_interval_ms: u64,
    /// Cap on the migration stream in MiB/s; 0 leaves it to libvirt (unlimited).
    pub bandwidth_mib_per_second: u64,
    /// Migrations leaving one host at once (Nova's `max_concurrent_live_migrations`).
    pub max_concurrent_per_source_host: usize,
    /// Migrations running at once across all hosts.
    pub max_concurrent_total: usize,
    pub adaptive: AdaptivePolicyConfig,
    pub nova: NovaPolicyConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PolicyName {
    #[default]
    Adaptive,
    Nova,
}

impl Default for MigrationDefaults {
    fn default() -> Self {
        MigrationDefaults {
            policy: PolicyName::Adaptive,
            poll_interval_ms: 500,
            bandwidth_mib_per_second: 0,
            max_concurrent_per_source_host: 1,
            max_concurrent_total: 4,
            adaptive: AdaptivePolicyConfig::default(),
            nova: NovaPolicyConfig::default(),
        }
    }
}

impl MigrationDefaults {
    pub fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            per_source_host_outbound: NonZeroUsize::new(self.max_concurrent_per_source_host)
                .unwrap_or(NonZeroUsize::MIN),
            global: NonZeroUsize::new(self.max_concurrent_total).unwrap_or(NonZeroUsize::MIN),
        }
    }

    fn check(&self) -> Result<(), String> {
        if !(100..=60_000).contains(&self.poll_interval_ms) {
            return Err(format!(
                "key migration.poll_interval_ms: {} is out of range; give 100 to 60000 ms",
                self.poll_interval_ms
            ));
        }
        if self.max_concurrent_per_source_host == 0 || self.max_concurrent_total == 0 {
            return Err(
                "keys migration.max_concurrent_per_source_host and max_concurrent_total must be \
                 at least 1"
                    .into(),
            );
        }
        self.adaptive
            .validate()
            .map_err(|e| format!("table [migration.adaptive]: {e}"))?;
        self.nova
            .validate()
            .map_err(|e| format!("table [migration.nova]: {e}"))
    }
}

/// How many migrations may run at once, as the engine's queue applies them; read from
/// `[migration]` by [`MigrationDefaults::queue_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLimits {
    /// Migrations leaving one host at once; Nova's `max_concurrent_live_migrations`.
    pub per_source_host_outbound: NonZeroUsize,
    /// Migrations running at once across all hosts.
    pub global: NonZeroUsize,
}

impl Default for QueueLimits {
    fn default() -> QueueLimits {
        QueueLimits {
            // Nova's default for max_concurrent_live_migrations.
            per_source_host_outbound: NonZeroUsize::MIN,
            global: NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

fn default_refresh_interval_seconds() -> u64 {
    5
}

fn default_call_timeout_seconds() -> u64 {
    15
}

fn default_shared_storage_prefixes() -> Vec<String> {
    vec![DEFAULT_SHARED_STORAGE_PREFIX.to_string()]
}

impl Default for Config {
    fn default() -> Config {
        Config {
            refresh_interval_seconds: default_refresh_interval_seconds(),
            call_timeout_seconds: default_call_timeout_seconds(),
            theme: None,
            log_level: None,
            shared_storage_prefixes: default_shared_storage_prefixes(),
            migration: MigrationDefaults::default(),
            hosts: Vec::new(),
            clouds: Vec::new(),
            keys: KeyOverrides::new(),
            source_path: None,
        }
    }
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

/// One `[[clouds]]` entry: a cloud of `clouds.yaml` (looked up where openstacksdk looks) whose
/// Nova is the source of truth for its servers.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CloudEntry {
    /// The cloud's name in `clouds.yaml` (what `--os-cloud` / `OS_CLOUD` would name).
    pub name: String,
    /// A `clouds.yaml` to read instead of the usual places (the lab writes its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clouds_yaml: Option<PathBuf>,
    /// Read-only libvirt access to the cloud's compute hosts, by Nova's host name, for the
    /// progress Nova does not show. A compute host named like one of `[[hosts]]` uses that
    /// host's URI without being listed here.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub compute_libvirt_uris: std::collections::BTreeMap<String, String>,
}

impl Config {
    /// The libvirt URI ferry may read a Nova compute host through: the cloud's own map first,
    /// then a `[[hosts]]` entry of the same name.
    pub fn compute_libvirt_uri(&self, cloud: &CloudEntry, compute_host: &str) -> Option<String> {
        cloud
            .compute_libvirt_uris
            .get(compute_host)
            .cloned()
            .or_else(|| {
                self.hosts
                    .iter()
                    .find(|host| host.name.as_str() == compute_host)
                    .map(|host| host.uri.clone())
            })
    }
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
        config.check(text, path)?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        config.source_path = Some(path.to_path_buf());
        Ok(config)
    }

    pub fn refresh_interval(&self) -> Duration {
        Duration::from_secs(self.refresh_interval_seconds)
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_seconds)
    }

    /// Checks serde cannot express. `text` is parsed a second time for the positions of the
    /// offending values, so every error names the line as well as the key.
    fn check(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let spans: SpannedConfig = toml::from_str(text).unwrap_or_default();
        let line_of =
            |index: usize, pick: fn(&SpannedHost) -> &Option<toml::Spanned<toml::Value>>| {
                spans
                    .hosts
                    .get(index)
                    .and_then(|host| pick(host).as_ref())
                    .map(|spanned| line_number(text, spanned.span().start))
            };
        let invalid = |line: Option<usize>, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: match line {
                Some(line) => format!("line {line}, {message}"),
                None => message,
            },
        };
        if !(1..=3600).contains(&self.refresh_interval_seconds) {
            return Err(invalid(
                spans
                    .refresh_interval_seconds
                    .map(|s| line_number(text, s.span().start)),
                format!(
                    "key refresh_interval_seconds: {} is out of range; give 1 to 3600 seconds",
                    self.refresh_interval_seconds
                ),
            ));
        }
        if !(1..=600).contains(&self.call_timeout_seconds) {
            return Err(invalid(
                spans
                    .call_timeout_seconds
                    .map(|s| line_number(text, s.span().start)),
                format!(
                    "key call_timeout_seconds: {} is out of range; give 1 to 600 seconds",
                    self.call_timeout_seconds
                ),
            ));
        }
        if let Err(message) = self.migration.check() {
            return Err(invalid(None, message));
        }
        for (index, prefix) in self.shared_storage_prefixes.iter().enumerate() {
            if !prefix.starts_with('/') {
                return Err(invalid(
                    None,
                    format!(
                        "key shared_storage_prefixes[{index}]: {prefix:?} is not an absolute directory; \
                         give a path such as \"/mnt/nfs\""
                    ),
                ));
            }
        }
        for (index, host) in self.hosts.iter().enumerate() {
            if let Some(first) = self.hosts[..index].iter().position(|h| h.name == host.name) {
                return Err(invalid(
                    line_of(index, |h| &h.name),
                    format!(
                        "key hosts[{index}].name: host {} is already defined as hosts[{first}]; \
                         host names must be unique",
                        host.name
                    ),
                ));
            }
            if let Err(problem) = check_libvirt_uri(&host.uri) {
                return Err(invalid(
                    line_of(index, |h| &h.uri),
                    format!(
                        "key hosts[{index}].uri: {:?} is not a libvirt URI: {problem} \
                         (expected e.g. qemu+ssh://root@{}/system)",
                        host.uri, host.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Positions of the values `Config::check` may complain about. Unknown keys are ignored here:
/// the real parse has already refused them.
#[derive(Deserialize, Default)]
struct SpannedConfig {
    refresh_interval_seconds: Option<toml::Spanned<toml::Value>>,
    call_timeout_seconds: Option<toml::Spanned<toml::Value>>,
    #[serde(default)]
    hosts: Vec<SpannedHost>,
}

#[derive(Deserialize, Default)]
struct SpannedHost {
    name: Option<toml::Spanned<toml::Value>>,
    uri: Option<toml::Spanned<toml::Value>>,
}

/// 1-based line of a byte offset, as editors count.
fn line_number(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A libvirt URI is `driver[+transport]://[user@][host][/path][?query]`. We check the shape
/// only; whether the host answers is the inventory's business.
pub fn check_libvirt_uri(uri: &str) -> Result<(), String> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err("it has no \"://\"".into());
    };
    let scheme_ok = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.');
    if !scheme_ok {
        return Err(format!(
            "scheme {scheme:?} is not a driver name such as qemu or qemu+ssh"
        ));
    }
    if let Some(bad) = uri.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("it contains {bad:?}"));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host.split(':').next().unwrap_or_default();
    if !host.is_empty() {
        if let Err(error) = HostName::parse(host) {
            return Err(format!("its host part: {error}"));
        }
    }
    Ok(())
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

/// Runs the cases of tests/invalid_configs/: each file starts with `# expect: TEXT` lines, and
/// `error_of` must give an error naming the file and containing every TEXT. `keys_*` files are
/// the TUI key table's cases (their `[keys]` parses as config; the table refuses it), checked
/// when `keys_cases` is set; the others otherwise. Returns how many were checked.
#[cfg(test)]
pub(crate) fn check_invalid_configs(keys_cases: bool, error_of: impl Fn(&Path) -> String) -> usize {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/invalid_configs"
    ));
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let is_keys_case = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("keys_"));
        if is_keys_case != keys_cases {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no # expect: line",
            path.display()
        );
        let error = error_of(&path);
        assert!(error.contains(&*path.display().to_string()), "{error}");
        for fragment in expected {
            assert!(
                error.contains(fragment),
                "{}: {error:?} lacks {fragment:?}",
                path.display()
            );
        }
        checked += 1;
    }
    checked
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
            err.contains("already defined") && err.contains("c.toml") && err.contains("line 5"),
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

    #[test]
    fn example_config_parses_with_every_key() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/config.example.toml"
        ));
        let config = Config::load(path).unwrap();
        assert_eq!(config.hosts.len(), 3);
        assert_eq!(config.refresh_interval_seconds, 5);
        assert_eq!(config.theme.as_deref(), Some("dark"));
        assert_eq!(config.hosts[1].tags, ["rack-b"]);
    }

    #[test]
    fn defaults_apply_when_keys_are_absent() {
        let config = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(
            config.shared_storage_prefixes,
            [DEFAULT_SHARED_STORAGE_PREFIX]
        );
    }

    /// Each file in tests/invalid_configs/ starts with `# expect: TEXT` lines; loading it must
    /// fail with an error containing every TEXT (the key, the line, what was wrong).
    #[test]
    fn every_invalid_config_gives_its_own_error() {
        let checked = check_invalid_configs(false, |path| {
            Config::load(path)
                .expect_err(&path.display().to_string())
                .to_string()
        });
        assert!(checked >= 6, "only {checked} invalid configs");
    }

    #[test]
    fn uri_shapes() {
        assert!(check_libvirt_uri("qemu:///system").is_ok());
        assert!(check_libvirt_uri("qemu+ssh://root@hv1:22/system?no_tty=1").is_ok());
        assert!(check_libvirt_uri("test:///default").is_ok());
        assert!(check_libvirt_uri("hv1").is_err());
        assert!(check_libvirt_uri("1qemu://hv1/system").is_err());
        assert!(check_libvirt_uri("qemu+ssh://root@hv 1/system").is_err());
        assert!(check_libvirt_uri("qemu+ssh://root@hv$1/system").is_err());
    }
}
