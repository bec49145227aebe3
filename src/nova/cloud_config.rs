//! Which cloud to talk to and how to log in: `clouds.yaml` (and `secure.yaml`) where
//! openstacksdk looks for them, or the `OS_*` variables of an openrc file.
//!
//! Pure over [`ConfigSources`]: the environment and the files come through that trait, so the
//! tests feed recorded files and variables and never touch the real ones.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use super::cloud_profile::{build_profile, Origin, RawCloud};
use super::error::NovaError;
use crate::config::CloudEntry;

/// Every request's timeout when the cloud sets no `api_timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The name openstacksdk gives the cloud made of `OS_*` variables.
pub const ENV_CLOUD_NAME: &str = "envvars";

/// Which cloud the operator asked for, and the `clouds.yaml` a ferry config names for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudSelection {
    pub name: Option<String>,
    pub clouds_yaml: Option<PathBuf>,
}

impl CloudSelection {
    /// `--os-cloud`, else `OS_CLOUD`, else the ferry config's `[[clouds]]` entry. The entry's
    /// `clouds_yaml` is used when the chosen name is the entry's.
    pub fn choose(
        os_cloud_flag: Option<&str>,
        entry: Option<&CloudEntry>,
        sources: &dyn ConfigSources,
    ) -> CloudSelection {
        let name = os_cloud_flag
            .map(str::to_string)
            .or_else(|| sources.var("OS_CLOUD").filter(|name| !name.is_empty()))
            .or_else(|| entry.map(|entry| entry.name.clone()));
        let clouds_yaml = entry
            .filter(|entry| Some(&entry.name) == name.as_ref())
            .and_then(|entry| entry.clouds_yaml.clone());
        CloudSelection { name, clouds_yaml }
    }

    /// The cloud a ferry config entry names, from the file it names (if any).
    pub fn for_entry(entry: &CloudEntry) -> CloudSelection {
        CloudSelection {
            name: Some(entry.name.clone()),
            clouds_yaml: entry.clouds_yaml.clone(),
        }
    }
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainRef {
    Name(String),
    Id(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectScope {
    Id(String),
    Name { name: String, domain: DomainRef },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplicationCredentialRef {
    Id(String),
    /// A credential named by its owner: Keystone needs the user to find it.
    Name {
        name: String,
        user: UserRef,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// Keystone v3 password, scoped to a project (Nova needs a project-scoped token).
    Password {
        user: UserRef,
        password: Secret,
        project: ProjectScope,
    },
    /// The credential carries its own project scope; the token request is unscoped.
    ApplicationCredential {
        credential: ApplicationCredentialRef,
        secret: Secret,
    },
}

/// Which of a service's catalog endpoints to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    Public,
    Internal,
    Admin,
}

impl Interface {
    /// `public`, `internal`, `admin`, and the old `publicURL` spellings.
    pub fn parse(text: &str) -> Option<Interface> {
        match text
            .trim()
            .trim_end_matches("URL")
            .to_ascii_lowercase()
            .as_str()
        {
            "public" => Some(Interface::Public),
            "internal" => Some(Interface::Internal),
            "admin" => Some(Interface::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertificate {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

/// Everything needed to log in to one cloud and pick its endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudProfile {
    pub name: String,
    /// Where it came from, for errors: a `clouds.yaml` path or "the OS_* variables".
    pub origin: String,
    pub auth_url: String,
    pub auth: AuthMethod,
    pub region_name: Option<String>,
    pub interface: Interface,
    pub cacert: Option<CaCertificate>,
    /// `false` accepts any certificate (clouds.yaml `verify: false` / `insecure: true`).
    pub verify: bool,
    pub request_timeout: Duration,
}

/// The environment and the files, injectable for tests.
pub trait ConfigSources {
    fn var(&self, name: &str) -> Option<String>;
    /// `Ok(None)` when there is no such file.
    fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>>;
    fn current_dir(&self) -> Option<PathBuf>;
}

/// The process's own environment and file system.
pub struct SystemSources;

impl ConfigSources for SystemSources {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn current_dir(&self) -> Option<PathBuf> {
        std::env::current_dir().ok()
    }
}

/// The cloud the selection names, from the real environment and files.
pub fn load_cloud(selection: &CloudSelection) -> Result<CloudProfile, NovaError> {
    load_cloud_from(selection, &SystemSources)
}

/// The cloud the selection names:
/// - a named cloud comes from `clouds.yaml` (the ferry config's file, else the first found
///   where openstacksdk looks), with `secure.yaml` merged over it;
/// - with no `clouds.yaml` anywhere, or no cloud named and `OS_AUTH_URL` set, the `OS_*`
///   variables make the cloud (openstacksdk's `envvars` cloud);
/// - with no name and a `clouds.yaml` holding exactly one cloud, that one.
pub fn load_cloud_from(
    selection: &CloudSelection,
    sources: &dyn ConfigSources,
) -> Result<CloudProfile, NovaError> {
    let clouds_file = match &selection.clouds_yaml {
        Some(path) => Some(read_named_clouds_yaml(path, sources)?),
        None => find_clouds_yaml(sources)?,
    };
    let env_has_cloud = sources
        .var("OS_AUTH_URL")
        .is_some_and(|url| !url.is_empty());
    let env_profile = |name: &str| {
        let raw = RawCloud::from_env(sources);
        build_profile(name, &raw, &Origin::Env, sources)
    };
    match (&selection.name, clouds_file) {
        (Some(name), Some(file)) => match file.clouds.get(name.as_str()) {
            Some(cloud) => {
                let origin = Origin::File(file.path.clone());
                let raw = RawCloud::from_yaml(cloud, name, &file.path)?;
                build_profile(name, &raw, &origin, sources)
            }
            None if name == ENV_CLOUD_NAME && env_has_cloud => env_profile(name),
            None => Err(config_error(format!(
                "cloud '{name}' not found in {}; clouds there: {}. Name one of them with \
                 --os-cloud or OS_CLOUD, or add '{name}' under `clouds:`",
                file.path.display(),
                list_or_none(file.clouds.keys())
            ))),
        },
        (Some(name), None) if env_has_cloud => env_profile(name),
        (Some(name), None) => Err(config_error(format!(
            "cloud '{name}' not found: no clouds.yaml in {} and OS_AUTH_URL is not set. \
             Write a clouds.yaml there (or set OS_CLIENT_CONFIG_FILE), or source an openrc",
            list_paths(&clouds_yaml_candidates(sources))
        ))),
        (None, _) if env_has_cloud => env_profile(ENV_CLOUD_NAME),
        (None, Some(file)) if file.clouds.len() == 1 => {
            let (name, cloud) = file.clouds.iter().next().expect("one cloud");
            let raw = RawCloud::from_yaml(cloud, name, &file.path)?;
            build_profile(name, &raw, &Origin::File(file.path.clone()), sources)
        }
        (None, Some(file)) => Err(config_error(format!(
            "no cloud named: {} holds {}; name one with --os-cloud or OS_CLOUD",
            file.path.display(),
            list_or_none(file.clouds.keys())
        ))),
        (None, None) => Err(config_error(format!(
            "no cloud configured: no clouds.yaml in {} and OS_AUTH_URL is not set. Write a \
             clouds.yaml there and name the cloud with --os-cloud, or source an openrc",
            list_paths(&clouds_yaml_candidates(sources))
        ))),
    }
}

pub(super) fn config_error(message: String) -> NovaError {
    NovaError::Config { message }
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    shown.join(", ")
}

/// Where openstacksdk looks, in its order (`openstack/config/loader.py`): `OS_CLIENT_CONFIG_FILE`,
/// the current directory, the user's config directory, then `/etc/openstack`.
pub fn clouds_yaml_candidates(sources: &dyn ConfigSources) -> Vec<PathBuf> {
    config_candidates(sources, "OS_CLIENT_CONFIG_FILE", "clouds")
}

fn secure_yaml_candidates(sources: &dyn ConfigSources) -> Vec<PathBuf> {
    config_candidates(sources, "OS_CLIENT_SECURE_FILE", "secure")
}

fn config_candidates(sources: &dyn ConfigSources, override_var: &str, stem: &str) -> Vec<PathBuf> {
    let mut directories = Vec::new();
    if let Some(current) = sources.current_dir() {
        directories.push(current);
    }
    let user_config = sources
        .var("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            sources
                .var("HOME")
                .map(|home| Path::new(&home).join(".config"))
        });
    if let Some(user_config) = user_config {
        directories.push(user_config.join("openstack"));
    }
    directories.push(PathBuf::from("/etc/openstack"));
    let mut candidates: Vec<PathBuf> = sources
        .var(override_var)
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .collect();
    for directory in directories {
        for suffix in ["yaml", "yml"] {
            candidates.push(directory.join(format!("{stem}.{suffix}")));
        }
    }
    candidates
}

/// A `clouds.yaml` with `secure.yaml` merged in: cloud name to its settings.
struct CloudsFile {
    path: PathBuf,
    clouds: BTreeMap<String, Value>,
}

fn read_named_clouds_yaml(
    path: &Path,
    sources: &dyn ConfigSources,
) -> Result<CloudsFile, NovaError> {
    match read_yaml(path, sources)? {
        Some(document) => clouds_file(path, document, sources),
        None => Err(config_error(format!(
            "the ferry config names clouds_yaml {} but there is no such file: fix the path \
             in [[clouds]] (or drop it to use the usual places)",
            path.display()
        ))),
    }
}

fn find_clouds_yaml(sources: &dyn ConfigSources) -> Result<Option<CloudsFile>, NovaError> {
    for path in clouds_yaml_candidates(sources) {
        if let Some(document) = read_yaml(&path, sources)? {
            return clouds_file(&path, document, sources).map(Some);
        }
    }
    Ok(None)
}

fn clouds_file(
    path: &Path,
    document: Value,
    sources: &dyn ConfigSources,
) -> Result<CloudsFile, NovaError> {
    let mut clouds = clouds_mapping(path, document)?;
    for secure_path in secure_yaml_candidates(sources) {
        if let Some(secure) = read_yaml(&secure_path, sources)? {
            let secure_clouds = clouds_mapping(&secure_path, secure)?;
            for (name, secure_cloud) in secure_clouds {
                match clouds.get_mut(&name) {
                    Some(cloud) => merge_yaml(cloud, secure_cloud),
                    None => {
                        clouds.insert(name, secure_cloud);
                    }
                }
            }
            break;
        }
    }
    Ok(CloudsFile {
        path: path.to_path_buf(),
        clouds,
    })
}

fn read_yaml(path: &Path, sources: &dyn ConfigSources) -> Result<Option<Value>, NovaError> {
    let bytes = match sources.read(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(error) => {
            return Err(config_error(format!(
                "cannot read {}: {error}",
                path.display()
            )))
        }
    };
    serde_yaml::from_slice(&bytes).map(Some).map_err(|error| {
        config_error(format!(
            "{} is not valid YAML: {error}: fix the file (openstacksdk would refuse it too)",
            path.display()
        ))
    })
}

fn clouds_mapping(path: &Path, document: Value) -> Result<BTreeMap<String, Value>, NovaError> {
    let clouds = match document.get("clouds") {
        Some(Value::Mapping(clouds)) => clouds.clone(),
        Some(_) => {
            return Err(config_error(format!(
                "{}: key `clouds` must be a mapping of cloud names to their settings",
                path.display()
            )))
        }
        None => {
            return Err(config_error(format!(
                "{}: no `clouds:` key: a clouds.yaml holds `clouds: {{NAME: {{auth: ...}}}}`",
                path.display()
            )))
        }
    };
    let mut by_name = BTreeMap::new();
    for (name, cloud) in clouds {
        let name = scalar_text(&name).ok_or_else(|| {
            config_error(format!(
                "{}: a cloud name under `clouds` is not text",
                path.display()
            ))
        })?;
        by_name.insert(name, cloud);
    }
    Ok(by_name)
}

/// `secure.yaml` over `clouds.yaml`, key by key (openstacksdk's `_merge_clouds`).
fn merge_yaml(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge_yaml(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}
