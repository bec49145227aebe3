//! A cloud's settings, from a `clouds.yaml` entry or the `OS_*` variables, checked and made
//! into a [`CloudProfile`]. Errors name the key as the operator wrote it (`auth.password` in
//! a file, `OS_PASSWORD` in the environment) and what to put there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::cloud_config::{
    config_error, scalar_text, ApplicationCredentialRef, AuthMethod, CaCertificate, CloudProfile,
    ConfigSources, DomainRef, Interface, ProjectScope, Secret, UserRef, DEFAULT_REQUEST_TIMEOUT,
};
use super::error::NovaError;

/// Where a setting came from, to name the key in an error the way the operator wrote it.
pub(super) enum Origin {
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
pub(super) struct RawCloud {
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
    pub(super) fn from_yaml(cloud: &Value, name: &str, path: &Path) -> Result<RawCloud, NovaError> {
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

    pub(super) fn from_env(sources: &dyn ConfigSources) -> RawCloud {
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

pub(super) fn build_profile(
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
