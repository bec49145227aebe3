//! Which cloud to talk to and how to log in: `clouds.yaml` (and `secure.yaml`) where
//! openstacksdk looks for them, or the `OS_*` variables of an openrc file.
//!
//! Pure over [`ConfigSources`]: the environment and the files come through that trait, so the
//! tests feed recorded files and variables and never touch the real ones.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::{Mapping, Value};

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

fn config_error(message: String) -> NovaError {
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

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Where a setting came from, to name the key in an error the way the operator wrote it.
enum Origin {
    File(PathBuf),
    Env,
}

impl Origin {
    fn describe(&self, cloud: &str) -> String {
        match self {
            Origin::File(path) => format!("cloud '{cloud}' in {}", path.display()),
            Origin::Env => format!("cloud '{cloud}' from the OS_* variables"),
        }
    }

    fn origin_text(&self) -> String {
        match self {
            Origin::File(path) => path.display().to_string(),
            Origin::Env => "the OS_* variables".to_string(),
        }
    }

    /// `auth.password` in a clouds.yaml is `OS_PASSWORD` in the environment.
    fn auth_key(&self, key: &str) -> String {
        match self {
            Origin::File(_) => format!("auth.{key}"),
            Origin::Env => format!("OS_{}", key.to_ascii_uppercase()),
        }
    }

    fn key(&self, key: &str) -> String {
        match self {
            Origin::File(_) => key.to_string(),
            Origin::Env => format!("OS_{}", key.to_ascii_uppercase()),
        }
    }
}

/// A cloud's settings as text, before they are checked: the same shape from both origins.
#[derive(Debug, Default)]
struct RawCloud {
    auth: BTreeMap<String, String>,
    settings: BTreeMap<String, String>,
}

/// The `auth` keys ferry reads (openstacksdk's names; `OS_` + upper case in the environment).
const AUTH_KEYS: &[&str] = &[
    "auth_url",
    "username",
    "user_id",
    "password",
    "user_domain_name",
    "user_domain_id",
    "project_name",
    "project_id",
    "tenant_name",
    "tenant_id",
    "project_domain_name",
    "project_domain_id",
    "domain_name",
    "domain_id",
    "application_credential_id",
    "application_credential_name",
    "application_credential_secret",
];

/// The cloud-level keys ferry reads.
const SETTING_KEYS: &[&str] = &[
    "auth_type",
    "region_name",
    "interface",
    "cacert",
    "verify",
    "insecure",
    "api_timeout",
];

impl RawCloud {
    fn from_yaml(cloud: &Value, name: &str, path: &Path) -> Result<RawCloud, NovaError> {
        let mut raw = RawCloud::default();
        let Value::Mapping(cloud) = cloud else {
            return Err(config_error(format!(
                "cloud '{name}' in {}: its settings must be a mapping (auth:, region_name:, ...)",
                path.display()
            )));
        };
        if let Some(auth) = cloud.get("auth") {
            let Value::Mapping(auth) = auth else {
                return Err(config_error(format!(
                    "cloud '{name}' in {}: `auth` must be a mapping (auth_url:, username:, ...)",
                    path.display()
                )));
            };
            raw.auth = text_entries(auth, AUTH_KEYS, name, path, "auth.")?;
        }
        raw.settings = text_entries(cloud, SETTING_KEYS, name, path, "")?;
        Ok(raw)
    }

    fn from_env(sources: &dyn ConfigSources) -> RawCloud {
        let read = |keys: &[&str]| {
            keys.iter()
                .filter_map(|key| {
                    sources
                        .var(&format!("OS_{}", key.to_ascii_uppercase()))
                        .filter(|value| !value.is_empty())
                        .map(|value| (key.to_string(), value))
                })
                .collect()
        };
        RawCloud {
            auth: read(AUTH_KEYS),
            settings: read(SETTING_KEYS),
        }
    }

    fn auth(&self, key: &str) -> Option<&str> {
        self.auth.get(key).map(String::as_str)
    }

    fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }
}

fn text_entries(
    mapping: &Mapping,
    keys: &[&str],
    cloud: &str,
    path: &Path,
    prefix: &str,
) -> Result<BTreeMap<String, String>, NovaError> {
    let mut entries = BTreeMap::new();
    for key in keys {
        match mapping.get(*key) {
            None | Some(Value::Null) => {}
            Some(value) => {
                let text = scalar_text(value).ok_or_else(|| {
                    config_error(format!(
                        "cloud '{cloud}' in {}: {prefix}{key} must be a single value, not a \
                         list or mapping",
                        path.display()
                    ))
                })?;
                entries.insert(key.to_string(), text);
            }
        }
    }
    Ok(entries)
}

fn build_profile(
    name: &str,
    raw: &RawCloud,
    origin: &Origin,
    sources: &dyn ConfigSources,
) -> Result<CloudProfile, NovaError> {
    let cloud = origin.describe(name);
    let missing = |key: &str, fix: &str| {
        config_error(format!(
            "{cloud}: {} is missing: {fix}",
            origin.auth_key(key)
        ))
    };
    let auth_url = raw
        .auth("auth_url")
        .ok_or_else(|| {
            missing(
                "auth_url",
                "add Keystone's URL (e.g. http://keystone:5000/v3)",
            )
        })?
        .to_string();
    let auth = auth_method(raw, origin, &cloud)?;
    let interface = match raw.setting("interface") {
        None => Interface::Public,
        Some(text) => Interface::parse(text).ok_or_else(|| {
            config_error(format!(
                "{cloud}: {} is '{text}': use public, internal or admin",
                origin.key("interface")
            ))
        })?,
    };
    let verify_flag = |key: &str| -> Result<Option<bool>, NovaError> {
        raw.setting(key)
            .map(|text| {
                parse_flag(text).ok_or_else(|| {
                    config_error(format!(
                        "{cloud}: {} is '{text}': use true or false",
                        origin.key(key)
                    ))
                })
            })
            .transpose()
    };
    let verify = match (verify_flag("verify")?, verify_flag("insecure")?) {
        (Some(verify), _) => verify,
        (None, Some(insecure)) => !insecure,
        (None, None) => true,
    };
    let request_timeout = match raw.setting("api_timeout") {
        None => DEFAULT_REQUEST_TIMEOUT,
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                config_error(format!(
                    "{cloud}: {} is '{text}': give the request timeout in seconds (e.g. 30)",
                    origin.key("api_timeout")
                ))
            })?,
    };
    let cacert = match raw.setting("cacert") {
        None => None,
        Some(text) => Some(read_cacert(text, origin, &cloud, sources)?),
    };
    Ok(CloudProfile {
        name: name.to_string(),
        origin: origin.origin_text(),
        auth_url,
        auth,
        region_name: raw.setting("region_name").map(str::to_string),
        interface,
        cacert,
        verify,
        request_timeout,
    })
}

fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

fn read_cacert(
    text: &str,
    origin: &Origin,
    cloud: &str,
    sources: &dyn ConfigSources,
) -> Result<CaCertificate, NovaError> {
    let path = match text.strip_prefix("~/") {
        Some(rest) => match sources.var("HOME") {
            Some(home) => Path::new(&home).join(rest),
            None => PathBuf::from(text),
        },
        None => PathBuf::from(text),
    };
    match sources.read(&path) {
        Ok(Some(pem)) => Ok(CaCertificate { path, pem }),
        Ok(None) => Err(config_error(format!(
            "{cloud}: {} names {}, which does not exist: give the CA bundle's path",
            origin.key("cacert"),
            path.display()
        ))),
        Err(error) => Err(config_error(format!(
            "{cloud}: {} names {}, which cannot be read: {error}",
            origin.key("cacert"),
            path.display()
        ))),
    }
}

fn auth_method(raw: &RawCloud, origin: &Origin, cloud: &str) -> Result<AuthMethod, NovaError> {
    let has_application_credential = raw.auth("application_credential_secret").is_some()
        || raw.auth("application_credential_id").is_some();
    let auth_type = raw
        .setting("auth_type")
        .map(|text| text.trim().to_ascii_lowercase().replace('_', ""));
    match auth_type.as_deref() {
        Some("password" | "v3password") => password_auth(raw, origin, cloud),
        Some("v3applicationcredential" | "applicationcredential") => {
            application_credential_auth(raw, origin, cloud)
        }
        None if has_application_credential => application_credential_auth(raw, origin, cloud),
        None => password_auth(raw, origin, cloud),
        Some(_) => Err(config_error(format!(
            "{cloud}: {} '{}' is not supported: ferry logs in with Keystone v3 password or \
             application credential (auth_type: password or v3applicationcredential)",
            origin.key("auth_type"),
            raw.setting("auth_type").unwrap_or_default()
        ))),
    }
}

fn password_auth(raw: &RawCloud, origin: &Origin, cloud: &str) -> Result<AuthMethod, NovaError> {
    let user = user_ref(raw, origin, cloud)?.ok_or_else(|| {
        config_error(format!(
            "{cloud}: {} is missing: add the user to log in as (or {})",
            origin.auth_key("username"),
            origin.auth_key("user_id")
        ))
    })?;
    let password = raw.auth("password").ok_or_else(|| {
        config_error(format!(
            "{cloud}: {} is missing: add it to clouds.yaml or secure.yaml (or set OS_PASSWORD)",
            origin.auth_key("password")
        ))
    })?;
    let project = if let Some(id) = raw.auth("project_id").or(raw.auth("tenant_id")) {
        ProjectScope::Id(id.to_string())
    } else if let Some(name) = raw.auth("project_name").or(raw.auth("tenant_name")) {
        let domain = domain_ref(raw, "project_domain").ok_or_else(|| {
            config_error(format!(
                "{cloud}: {} is missing: name the project's domain (e.g. Default), or give {}",
                origin.auth_key("project_domain_name"),
                origin.auth_key("project_id")
            ))
        })?;
        ProjectScope::Name {
            name: name.to_string(),
            domain,
        }
    } else {
        return Err(config_error(format!(
            "{cloud}: {} is missing: Nova needs a token scoped to a project (add it, with {})",
            origin.auth_key("project_name"),
            origin.auth_key("project_domain_name")
        )));
    };
    Ok(AuthMethod::Password {
        user,
        password: Secret::new(password),
        project,
    })
}

fn application_credential_auth(
    raw: &RawCloud,
    origin: &Origin,
    cloud: &str,
) -> Result<AuthMethod, NovaError> {
    let secret = raw.auth("application_credential_secret").ok_or_else(|| {
        config_error(format!(
            "{cloud}: {} is missing: add the secret Keystone showed when the credential was \
             created",
            origin.auth_key("application_credential_secret")
        ))
    })?;
    let credential = if let Some(id) = raw.auth("application_credential_id") {
        ApplicationCredentialRef::Id(id.to_string())
    } else if let Some(name) = raw.auth("application_credential_name") {
        let user = user_ref(raw, origin, cloud)?.ok_or_else(|| {
            config_error(format!(
                "{cloud}: an application credential named by {} needs its owner: add {} and \
                 {} (or {}), or use {}",
                origin.auth_key("application_credential_name"),
                origin.auth_key("username"),
                origin.auth_key("user_domain_name"),
                origin.auth_key("user_id"),
                origin.auth_key("application_credential_id")
            ))
        })?;
        ApplicationCredentialRef::Name {
            name: name.to_string(),
            user,
        }
    } else {
        return Err(config_error(format!(
            "{cloud}: {} is missing: add the credential's id",
            origin.auth_key("application_credential_id")
        )));
    };
    Ok(AuthMethod::ApplicationCredential {
        credential,
        secret: Secret::new(secret),
    })
}

/// The user by id, or by name in a domain (`user_domain_*`, else the shared `domain_*`).
fn user_ref(raw: &RawCloud, origin: &Origin, cloud: &str) -> Result<Option<UserRef>, NovaError> {
    if let Some(id) = raw.auth("user_id") {
        return Ok(Some(UserRef::Id(id.to_string())));
    }
    let Some(name) = raw.auth("username") else {
        return Ok(None);
    };
    let domain = domain_ref(raw, "user_domain").ok_or_else(|| {
        config_error(format!(
            "{cloud}: {} is missing: name the user's domain (e.g. Default)",
            origin.auth_key("user_domain_name")
        ))
    })?;
    Ok(Some(UserRef::Name {
        name: name.to_string(),
        domain,
    }))
}

/// `{prefix}_id`, `{prefix}_name`, then openstacksdk's shared `domain_id` / `domain_name`.
fn domain_ref(raw: &RawCloud, prefix: &str) -> Option<DomainRef> {
    raw.auth(&format!("{prefix}_id"))
        .map(|id| DomainRef::Id(id.to_string()))
        .or_else(|| {
            raw.auth(&format!("{prefix}_name"))
                .map(|name| DomainRef::Name(name.to_string()))
        })
        .or_else(|| {
            raw.auth("domain_id")
                .map(|id| DomainRef::Id(id.to_string()))
        })
        .or_else(|| {
            raw.auth("domain_name")
                .map(|name| DomainRef::Name(name.to_string()))
        })
}
