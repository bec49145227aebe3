//! The connection to one cloud: the HTTP client, the token (renewed when it expires), the
//! compute and placement endpoints, and the compute microversions the cloud offers. Every
//! request goes through [`NovaClient::send`], which sets the timeout, the token and the
//! version header, and maps failures to [`NovaError`]s naming the cloud and the call.

use std::sync::Arc;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::RwLock;

use super::auth::{self, choose_endpoint, Token};
use super::cloud_config::CloudProfile;
use super::error::{CallContext, NovaError};
use super::microversion::{
    parse_version_document, versioned_root, Microversion, VersionNeed, VersionRange,
};

/// A cheap handle on one cloud's connection; clones share the token and the HTTP pool.
#[derive(Clone)]
pub struct NovaClient {
    inner: Arc<ClientInner>,
}

impl std::fmt::Debug for NovaClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NovaClient")
            .field("cloud", &self.inner.profile.name)
            .field("compute_versions", &self.inner.compute_versions)
            .finish()
    }
}

struct ClientInner {
    profile: CloudProfile,
    http: reqwest::Client,
    session: RwLock<Session>,
    compute_versions: VersionRange,
}

/// The token and what was chosen from its catalog; `generation` counts logins, so that of
/// several calls meeting an expired token only the first logs in again.
struct Session {
    token: Token,
    generation: u64,
    compute_url: String,
    /// The placement endpoint, or the catalog's description when it has none (an error only
    /// for the calls that need Placement).
    placement_url: Result<String, String>,
}

/// The two services the door speaks to besides Keystone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Service {
    Compute,
    Placement,
}

impl Service {
    fn daemon(self) -> &'static str {
        match self {
            Service::Compute => "nova-api",
            Service::Placement => "placement-api",
        }
    }
}

/// The version header a request carries.
#[derive(Debug, Clone, Copy)]
pub(super) enum ApiVersion {
    Compute(Microversion),
    /// Placement's own microversion ("1.0" …).
    Placement(&'static str),
}

/// One request, named for errors.
pub(super) struct Request {
    pub call: String,
    pub service: Service,
    pub method: reqwest::Method,
    /// Below the service's endpoint, starting with `/`, query included.
    pub path: String,
    pub version: ApiVersion,
    pub body: Option<Value>,
    /// The policy rule a 403 names.
    pub policy: &'static str,
}

impl NovaClient {
    /// Logs in, picks the compute and placement endpoints from the catalog, and reads the
    /// compute API's version document for the microversions the cloud offers.
    pub async fn connect(profile: CloudProfile) -> Result<NovaClient, NovaError> {
        let http = http_client(&profile)?;
        let token = auth::authenticate(&http, &profile).await?;
        let (compute_url, placement_url) = endpoints(&profile, &token)?;
        let root = versioned_root(&compute_url);
        let call = "read the compute API versions";
        let context = CallContext {
            cloud: &profile.name,
            call,
            service: Service::Compute.daemon(),
            policy: "none (the version document is public)",
            endpoint: &root,
            timeout: profile.request_timeout,
            configured_in: &profile.origin,
        };
        let request = http
            .get(&root)
            .timeout(profile.request_timeout)
            .header("X-Auth-Token", token.value.expose());
        let answer = exchange(&context, request).await?;
        let body = answer.success_body(&context)?;
        let compute_versions =
            parse_version_document(&body).map_err(|detail| context.bad_response(detail))?;
        Ok(NovaClient {
            inner: Arc::new(ClientInner {
                profile,
                http,
                session: RwLock::new(Session {
                    token,
                    generation: 0,
                    compute_url,
                    placement_url,
                }),
                compute_versions,
            }),
        })
    }

    pub fn cloud_name(&self) -> &str {
        &self.inner.profile.name
    }

    /// The compute microversions the cloud offers (from `GET /v2.1` at connect).
    pub fn compute_versions(&self) -> VersionRange {
        self.inner.compute_versions
    }

    /// The roles the user holds on the token's project (`admin`, `member`, `reader`…), so a
    /// caller can say before trying that a migration needs the admin role.
    pub async fn role_names(&self) -> Vec<String> {
        self.inner.session.read().await.token.role_names.clone()
    }

    pub async fn compute_endpoint(&self) -> String {
        self.inner.session.read().await.compute_url.clone()
    }

    /// The version a call sends, or `TooOld` before anything is sent.
    pub(super) fn negotiate(&self, call: &str, need: VersionNeed) -> Result<ApiVersion, NovaError> {
        need.negotiate(self.inner.compute_versions)
            .map(ApiVersion::Compute)
            .map_err(|needs| NovaError::TooOld {
                cloud: self.inner.profile.name.clone(),
                call: call.to_string(),
                needs,
                cloud_max: self.inner.compute_versions.max,
            })
    }

    /// Sends the request; renews the token first when it is about to expire, and logs in
    /// again once and retries once when the service answers 401 (a token revoked or expired
    /// early). Any status outside 2xx is an error.
    pub(super) async fn send(&self, request: &Request) -> Result<Vec<u8>, NovaError> {
        let expiring_generation = {
            let session = self.inner.session.read().await;
            session
                .token
                .expires_soon(SystemTime::now())
                .then_some(session.generation)
        };
        if let Some(seen) = expiring_generation {
            self.log_in_again(seen).await?;
        }
        let (answer, seen, url) = self.send_once(request).await?;
        if answer.status != 401 {
            return answer.success_body(&self.context(request, &url));
        }
        self.log_in_again(seen).await?;
        let (answer, _, url) = self.send_once(request).await?;
        if answer.status == 401 {
            return Err(NovaError::BadCredentials {
                cloud: self.inner.profile.name.clone(),
                call: request.call.clone(),
                configured_in: self.inner.profile.origin.clone(),
                detail: format!(
                    "a fresh token was refused too: {}",
                    super::error::service_message(&answer.body)
                ),
            });
        }
        answer.success_body(&self.context(request, &url))
    }

    /// `send`, then the body parsed as `T`.
    pub(super) async fn send_json<T: DeserializeOwned>(
        &self,
        request: &Request,
    ) -> Result<T, NovaError> {
        let body = self.send(request).await?;
        self.context(request, "").parse(&body)
    }

    fn context<'a>(&'a self, request: &'a Request, endpoint: &'a str) -> CallContext<'a> {
        CallContext {
            cloud: &self.inner.profile.name,
            call: &request.call,
            service: request.service.daemon(),
            policy: request.policy,
            endpoint,
            timeout: self.inner.profile.request_timeout,
            configured_in: &self.inner.profile.origin,
        }
    }

    async fn base_url(&self, service: Service) -> Result<String, NovaError> {
        let session = self.inner.session.read().await;
        match service {
            Service::Compute => Ok(session.compute_url.clone()),
            Service::Placement => session
                .placement_url
                .clone()
                .map_err(|catalog| no_endpoint(&self.inner.profile, "placement", catalog)),
        }
    }

    /// One attempt: the answer, the login generation whose token it carried, and the URL.
    async fn send_once(&self, request: &Request) -> Result<(Exchanged, u64, String), NovaError> {
        let (token, generation) = {
            let session = self.inner.session.read().await;
            (session.token.value.clone(), session.generation)
        };
        let base = self.base_url(request.service).await?;
        let url = format!("{base}{}", request.path);
        let timeout = self.inner.profile.request_timeout;
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), &url)
            .timeout(timeout)
            .header("X-Auth-Token", token.expose())
            .header("Accept", "application/json");
        builder = match request.version {
            ApiVersion::Compute(version) => builder
                .header("OpenStack-API-Version", format!("compute {version}"))
                .header("X-OpenStack-Nova-API-Version", version.to_string()),
            ApiVersion::Placement(version) => {
                builder.header("OpenStack-API-Version", format!("placement {version}"))
            }
        };
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let answer = exchange(&self.context(request, &url), builder).await?;
        Ok((answer, generation, url))
    }

    /// Logs in again unless another call already did since `seen_generation`.
    async fn log_in_again(&self, seen_generation: u64) -> Result<(), NovaError> {
        let mut session = self.inner.session.write().await;
        if session.generation != seen_generation {
            return Ok(());
        }
        let token = auth::authenticate(&self.inner.http, &self.inner.profile).await?;
        let (compute_url, placement_url) = endpoints(&self.inner.profile, &token)?;
        session.token = token;
        session.compute_url = compute_url;
        session.placement_url = placement_url;
        session.generation += 1;
        Ok(())
    }
}

/// An HTTP answer, read whole under the request's timeout.
pub(super) struct Exchanged {
    pub status: u16,
    /// Keystone's `X-Subject-Token`, the only header the door reads.
    pub subject_token: Option<String>,
    pub body: Vec<u8>,
}

impl Exchanged {
    /// The body of a 2xx; any other status as the error it means.
    pub fn success_body(self, context: &CallContext<'_>) -> Result<Vec<u8>, NovaError> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(context.status_error(self.status, &self.body))
        }
    }
}

/// Sends one request and reads its answer; no answer at all is the context's error.
pub(super) async fn exchange(
    context: &CallContext<'_>,
    request: reqwest::RequestBuilder,
) -> Result<Exchanged, NovaError> {
    let response = request
        .send()
        .await
        .map_err(|error| context.transport_error(&error))?;
    let status = response.status().as_u16();
    let subject_token = response
        .headers()
        .get("X-Subject-Token")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let body = response
        .bytes()
        .await
        .map_err(|error| context.transport_error(&error))?;
    Ok(Exchanged {
        status,
        subject_token,
        body: body.to_vec(),
    })
}

fn http_client(profile: &CloudProfile) -> Result<reqwest::Client, NovaError> {
    let mut builder = reqwest::Client::builder().connect_timeout(profile.request_timeout);
    if let Some(cacert) = &profile.cacert {
        let certificates = reqwest::Certificate::from_pem_bundle(&cacert.pem).map_err(|error| {
            NovaError::CaCert {
                cloud: profile.name.clone(),
                path: cacert.path.clone(),
                detail: error.to_string(),
            }
        })?;
        if certificates.is_empty() {
            return Err(NovaError::CaCert {
                cloud: profile.name.clone(),
                path: cacert.path.clone(),
                detail: "holds no PEM certificate".to_string(),
            });
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if !profile.verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|error| NovaError::Config {
        message: format!(
            "cloud {}: cannot set up the HTTP client: {error}",
            profile.name
        ),
    })
}

/// The compute endpoint (required) and the placement endpoint (needed from 2.88 on only).
fn endpoints(
    profile: &CloudProfile,
    token: &Token,
) -> Result<(String, Result<String, String>), NovaError> {
    let region = profile.region_name.as_deref();
    let compute = choose_endpoint(&token.catalog, "compute", region, profile.interface)
        .map_err(|catalog| no_endpoint(profile, "compute", catalog))?;
    let placement = choose_endpoint(&token.catalog, "placement", region, profile.interface);
    Ok((compute, placement))
}

fn no_endpoint(profile: &CloudProfile, service_type: &str, catalog: String) -> NovaError {
    NovaError::NoEndpoint {
        cloud: profile.name.clone(),
        service_type: service_type.to_string(),
        region: profile.region_name.as_deref().unwrap_or("any").to_string(),
        interface: profile.interface.as_str().to_string(),
        catalog,
    }
}

/// A `{"rel": "next", "href": ...}` entry of a paged list (`servers_links`, `hypervisors_links`,
/// `migrations_links`).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct PageLink {
    #[serde(default)]
    pub rel: String,
    #[serde(default)]
    pub href: String,
}

/// The query of the next page, to send to ferry's own endpoint: the link's host may be one
/// only the API's proxy knows, so only its query (the `marker`) is taken.
pub(super) fn next_page_query(links: &[PageLink]) -> Option<String> {
    links
        .iter()
        .find(|link| link.rel == "next")
        .and_then(|link| link.href.split_once('?'))
        .map(|(_, query)| query.to_string())
        .filter(|query| !query.is_empty())
}

/// Pages a list ferry stops following: a cloud answering a `next` link forever is broken.
const MAX_PAGES: usize = 1_000;

impl NovaClient {
    /// Every item of a paged list: the `key` array of each page, following `{key}_links` `next`.
    pub(super) async fn list_all<T: DeserializeOwned>(
        &self,
        mut request: Request,
        key: &str,
    ) -> Result<Vec<T>, NovaError> {
        let base_path = request
            .path
            .split_once('?')
            .map_or(request.path.clone(), |(path, _)| path.to_string());
        let links_key = format!("{key}_links");
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: Value = self.send_json(&request).await?;
            let context = self.context(&request, "");
            let page_items = page
                .get(key)
                .cloned()
                .ok_or_else(|| context.bad_response(format!("the answer has no `{key}` list")))?;
            let page_items: Vec<T> = serde_json::from_value(page_items)
                .map_err(|error| context.bad_response(format!("`{key}`: {error}")))?;
            let links: Vec<PageLink> = page
                .get(&links_key)
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|error| context.bad_response(format!("`{links_key}`: {error}")))?
                .unwrap_or_default();
            let page_was_empty = page_items.is_empty();
            items.extend(page_items);
            match next_page_query(&links) {
                Some(query) if !page_was_empty => request.path = format!("{base_path}?{query}"),
                _ => return Ok(items),
            }
        }
        Err(self
            .context(&request, "")
            .bad_response(format!("more than {MAX_PAGES} pages of `{key}`")))
    }
}

/// `a=1&b=x%3Ay`: query values percent-encoded (RFC 3986 unreserved characters kept).
pub(super) fn encode_query(pairs: &[(&str, String)]) -> String {
    let encode = |text: &str| {
        let mut encoded = String::new();
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                encoded.push(byte as char);
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        encoded
    };
    let parts: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect();
    parts.join("&")
}

#[cfg(test)]
impl NovaClient {
    /// A client that has not logged in, for tests of what is refused before anything is sent
    /// and of failures to reach `compute_url`.
    pub(super) fn unconnected_for_tests(
        profile: CloudProfile,
        compute_versions: VersionRange,
        compute_url: &str,
    ) -> NovaClient {
        let token = Token {
            value: super::cloud_config::Secret::new("test-token"),
            expires_at_unix_seconds: None,
            role_names: Vec::new(),
            catalog: Vec::new(),
        };
        NovaClient {
            inner: Arc::new(ClientInner {
                http: http_client(&profile).expect("test HTTP client"),
                profile,
                session: RwLock::new(Session {
                    token,
                    generation: 0,
                    compute_url: compute_url.to_string(),
                    placement_url: Err("nothing".to_string()),
                }),
                compute_versions,
            }),
        }
    }
}
