//! Keystone v3: the token request, the token, and the service catalog's endpoints.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{json, Value};

use super::client::exchange;
use super::cloud_config::{
    ApplicationCredentialRef, AuthMethod, CloudProfile, DomainRef, Interface, ProjectScope, Secret,
    UserRef,
};
use super::error::{CallContext, NovaError};

/// A token this close to its expiry is renewed before a call rather than after its 401.
const TOKEN_RENEW_MARGIN: Duration = Duration::from_secs(60);

/// `{auth_url}/auth/tokens` with `/v3` appended when the URL names no version, as openstacksdk
/// does for a bare `http://keystone:5000`.
pub fn token_url(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    let last_segment = base.rsplit('/').next().unwrap_or_default();
    let names_version = last_segment.len() > 1
        && last_segment.starts_with('v')
        && last_segment[1..]
            .chars()
            .all(|character| character.is_ascii_digit() || character == '.');
    if names_version {
        format!("{base}/auth/tokens")
    } else {
        format!("{base}/v3/auth/tokens")
    }
}

fn domain_json(domain: &DomainRef) -> Value {
    match domain {
        DomainRef::Name(name) => json!({ "name": name }),
        DomainRef::Id(id) => json!({ "id": id }),
    }
}

fn user_json(user: &UserRef) -> Value {
    match user {
        UserRef::Id(id) => json!({ "id": id }),
        UserRef::Name { name, domain } => json!({ "name": name, "domain": domain_json(domain) }),
    }
}

/// The body of `POST /v3/auth/tokens`. A password is scoped to the project; an application
/// credential is sent unscoped, because Keystone refuses a scope on one (it carries its own).
pub fn token_request_body(auth: &AuthMethod) -> Value {
    match auth {
        AuthMethod::Password {
            user,
            password,
            project,
        } => {
            let mut user = user_json(user);
            user["password"] = json!(password.expose());
            let project = match project {
                ProjectScope::Id(id) => json!({ "id": id }),
                ProjectScope::Name { name, domain } => {
                    json!({ "name": name, "domain": domain_json(domain) })
                }
            };
            json!({
                "auth": {
                    "identity": { "methods": ["password"], "password": { "user": user } },
                    "scope": { "project": project }
                }
            })
        }
        AuthMethod::ApplicationCredential { credential, secret } => {
            let mut credential = match credential {
                ApplicationCredentialRef::Id(id) => json!({ "id": id }),
                ApplicationCredentialRef::Name { name, user } => {
                    json!({ "name": name, "user": user_json(user) })
                }
            };
            credential["secret"] = json!(secret.expose());
            json!({
                "auth": {
                    "identity": {
                        "methods": ["application_credential"],
                        "application_credential": credential
                    }
                }
            })
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEndpoint {
    pub interface: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogService {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Deserialize)]
struct NamedRef {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    expires_at: String,
    #[serde(default)]
    roles: Vec<NamedRef>,
    #[serde(default)]
    catalog: Vec<CatalogService>,
}

#[derive(Debug, Deserialize)]
struct TokenDocument {
    token: TokenBody,
}

/// A Keystone token with what came with it.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: Secret,
    /// Keystone's `expires_at` (`2026-12-02T06:36:12.000000Z`) in seconds since the epoch.
    pub expires_at_unix_seconds: Option<i64>,
    pub role_names: Vec<String>,
    pub catalog: Vec<CatalogService>,
}

impl Token {
    /// The token from `X-Subject-Token` and the body of Keystone's 201.
    pub fn parse(subject_token: &str, body: &[u8]) -> Result<Token, String> {
        let document: TokenDocument = serde_json::from_slice(body)
            .map_err(|error| format!("the token body is not Keystone v3's: {error}"))?;
        let token = document.token;
        Ok(Token {
            value: Secret::new(subject_token),
            expires_at_unix_seconds: parse_utc_timestamp(&token.expires_at),
            role_names: token
                .roles
                .into_iter()
                .filter_map(|role| role.name)
                .collect(),
            catalog: token.catalog,
        })
    }

    /// True when the token expires within the renewal margin of `now`.
    pub fn expires_soon(&self, now: SystemTime) -> bool {
        let Some(expiry) = self.expires_at_unix_seconds else {
            return false;
        };
        let now_seconds = now
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs() as i64)
            .unwrap_or(0);
        now_seconds + TOKEN_RENEW_MARGIN.as_secs() as i64 >= expiry
    }
}

/// Seconds since the epoch of an ISO 8601 UTC time as Keystone writes it
/// (`2026-12-02T06:36:12.000000Z`, or `+00:00`); `None` for anything else.
pub fn parse_utc_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))
        .unwrap_or(text);
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    let time = time.split('.').next()?;
    let mut time_parts = time.splitn(3, ':');
    let hour: i64 = time_parts.next()?.parse().ok()?;
    let minute: i64 = time_parts.next()?.parse().ok()?;
    let second: i64 = time_parts.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Days from the civil date: Howard Hinnant's `days_from_civil`.
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// The URL of `service_type`'s endpoint for the interface, in the region when one is set
/// (the first region otherwise, as openstacksdk does). The error lists what the catalog holds.
pub fn choose_endpoint(
    catalog: &[CatalogService],
    service_type: &str,
    region: Option<&str>,
    interface: Interface,
) -> Result<String, String> {
    let in_region = |endpoint: &CatalogEndpoint| match region {
        None => true,
        Some(region) => {
            endpoint.region.as_deref() == Some(region)
                || endpoint.region_id.as_deref() == Some(region)
        }
    };
    catalog
        .iter()
        .filter(|service| service.service_type == service_type)
        .flat_map(|service| service.endpoints.iter())
        .find(|endpoint| {
            Interface::parse(&endpoint.interface) == Some(interface) && in_region(endpoint)
        })
        .map(|endpoint| endpoint.url.trim_end_matches('/').to_string())
        .ok_or_else(|| describe_catalog(catalog))
}

/// `compute: public@RegionOne http://…, …` for an error message.
pub fn describe_catalog(catalog: &[CatalogService]) -> String {
    let entries: Vec<String> = catalog
        .iter()
        .flat_map(|service| {
            service.endpoints.iter().map(move |endpoint| {
                let region = endpoint
                    .region_id
                    .as_deref()
                    .or(endpoint.region.as_deref())
                    .unwrap_or("no region");
                format!(
                    "{} {}@{} {}",
                    service.service_type, endpoint.interface, region, endpoint.url
                )
            })
        })
        .collect();
    if entries.is_empty() {
        "nothing (the token carries no catalog: is the user given a role on the project?)"
            .to_string()
    } else {
        entries.join(", ")
    }
}

/// Logs in: `POST /v3/auth/tokens`, each request under the profile's timeout.
pub(super) async fn authenticate(
    http: &reqwest::Client,
    profile: &CloudProfile,
) -> Result<Token, NovaError> {
    let url = token_url(&profile.auth_url);
    let call = format!("log in to Keystone at {url}");
    let context = CallContext {
        cloud: &profile.name,
        call: &call,
        service: "keystone",
        policy: "identity:create_token",
        endpoint: &url,
        timeout: profile.request_timeout,
        configured_in: &profile.origin,
    };
    let request = http
        .post(&url)
        .timeout(profile.request_timeout)
        .json(&token_request_body(&profile.auth));
    let mut answer = exchange(&context, request).await?;
    let subject_token = answer.subject_token.take();
    let body = answer.success_body(&context)?;
    let subject_token = subject_token.ok_or_else(|| {
        context.bad_response("Keystone answered without an X-Subject-Token header".to_string())
    })?;
    Token::parse(&subject_token, &body).map_err(|detail| context.bad_response(detail))
}
