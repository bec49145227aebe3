//! What can go wrong talking to a cloud, each kind with what the operator can do about it.
//! Every error names the cloud and the call ("live-migrate server 1234"), so a line in the
//! TUI or the CLI's stderr is enough to act on.

use std::path::PathBuf;
use std::time::Duration;

use super::microversion::Microversion;

#[derive(Debug, thiserror::Error)]
pub enum NovaError {
    /// `clouds.yaml`, `secure.yaml` or the `OS_*` variables do not describe a usable cloud.
    #[error("{message}")]
    Config { message: String },

    /// The ca certificate named by `cacert` cannot be used.
    #[error("cloud {cloud}: cacert {path}: {detail}: give a PEM file of the CA that signed the endpoints' certificates")]
    CaCert {
        cloud: String,
        path: PathBuf,
        detail: String,
    },

    /// Keystone refused the credentials (401 at `POST /v3/auth/tokens`), or a fresh token was
    /// refused again right after re-authenticating.
    #[error("cloud {cloud}: {call}: credentials refused ({detail}): check the password / application credential in {configured_in}")]
    BadCredentials {
        cloud: String,
        call: String,
        detail: String,
        /// Where the credentials came from: the clouds.yaml path, or "the OS_* variables".
        configured_in: String,
    },

    /// 403: the user lacks the role the policy asks for.
    #[error("cloud {cloud}: {call}: forbidden ({detail}): the user needs the admin role for migrations and hypervisor listing (policy {policy})")]
    Forbidden {
        cloud: String,
        call: String,
        policy: String,
        detail: String,
    },

    /// No connection could be made (refused, no route, DNS, TLS handshake).
    #[error("cloud {cloud}: {call}: endpoint {endpoint} unreachable ({detail}): is {service} running and reachable from here?")]
    Unreachable {
        cloud: String,
        call: String,
        endpoint: String,
        service: String,
        detail: String,
    },

    /// No answer within the profile's request timeout.
    #[error("cloud {cloud}: {call}: no answer from {endpoint} within {timeout:?}: the service is overloaded or hung (raise api_timeout in clouds.yaml if it is only slow)")]
    Timeout {
        cloud: String,
        call: String,
        endpoint: String,
        timeout: Duration,
    },

    /// 404: the server, migration, flavor or resource provider does not exist (any more).
    #[error("cloud {cloud}: {call}: not found ({message})")]
    NotFound {
        cloud: String,
        call: String,
        message: String,
    },

    /// 409 with Nova's own reason ("Cannot 'os-migrateLive' instance ... while it is in
    /// task_state migrating").
    #[error("cloud {cloud}: {call}: refused by Nova: {message}")]
    Conflict {
        cloud: String,
        call: String,
        message: String,
    },

    /// 400 with the service's reason.
    #[error("cloud {cloud}: {call}: bad request: {message}")]
    BadRequest {
        cloud: String,
        call: String,
        message: String,
    },

    /// 5xx: the service failed; its logs have the traceback.
    #[error("cloud {cloud}: {call}: {service} failed with HTTP {status}: {message} (see the {service} logs)")]
    ServerError {
        cloud: String,
        call: String,
        service: String,
        status: u16,
        message: String,
    },

    /// Any other status ferry has no better word for.
    #[error("cloud {cloud}: {call}: unexpected HTTP {status}: {message}")]
    UnexpectedStatus {
        cloud: String,
        call: String,
        status: u16,
        message: String,
    },

    /// The cloud's compute API is older than the call needs; nothing was sent.
    #[error(
        "cloud {cloud}: {call} needs compute API {needs}; this cloud offers up to {cloud_max}"
    )]
    TooOld {
        cloud: String,
        call: String,
        needs: Microversion,
        cloud_max: Microversion,
    },

    /// The service catalog has no endpoint for the service, region and interface.
    #[error("cloud {cloud}: no {service_type} endpoint for region {region} and interface {interface} in the service catalog; it holds: {catalog}. Set region_name / interface in clouds.yaml to one of those")]
    NoEndpoint {
        cloud: String,
        service_type: String,
        region: String,
        interface: String,
        catalog: String,
    },

    /// The answer was not the JSON the call expects.
    #[error("cloud {cloud}: {call}: unexpected answer: {detail}")]
    BadResponse {
        cloud: String,
        call: String,
        detail: String,
    },
}

impl NovaError {
    /// The cloud this error is about (`None` for a config that names no cloud yet).
    pub fn cloud(&self) -> Option<&str> {
        match self {
            NovaError::Config { .. } => None,
            NovaError::CaCert { cloud, .. }
            | NovaError::BadCredentials { cloud, .. }
            | NovaError::Forbidden { cloud, .. }
            | NovaError::Unreachable { cloud, .. }
            | NovaError::Timeout { cloud, .. }
            | NovaError::NotFound { cloud, .. }
            | NovaError::Conflict { cloud, .. }
            | NovaError::BadRequest { cloud, .. }
            | NovaError::ServerError { cloud, .. }
            | NovaError::UnexpectedStatus { cloud, .. }
            | NovaError::TooOld { cloud, .. }
            | NovaError::NoEndpoint { cloud, .. }
            | NovaError::BadResponse { cloud, .. } => Some(cloud),
        }
    }

    /// The endpoint could not be reached at all: the cloud is down or cut off, not refusing.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, NovaError::Unreachable { .. })
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, NovaError::Timeout { .. })
    }

    /// Unreachable or silent: worth retrying later, unlike a refusal.
    pub fn is_transient(&self) -> bool {
        self.is_unreachable() || self.is_timeout()
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, NovaError::NotFound { .. })
    }

    /// Nova refused the action in the server's or migration's present state (409).
    pub fn is_conflict(&self) -> bool {
        matches!(self, NovaError::Conflict { .. })
    }

    pub fn is_bad_credentials(&self) -> bool {
        matches!(self, NovaError::BadCredentials { .. })
    }

    pub fn is_forbidden(&self) -> bool {
        matches!(self, NovaError::Forbidden { .. })
    }

    /// Refused before sending: the cloud's API is too old for the call.
    pub fn is_too_old(&self) -> bool {
        matches!(self, NovaError::TooOld { .. })
    }

    pub fn is_config(&self) -> bool {
        matches!(
            self,
            NovaError::Config { .. } | NovaError::CaCert { .. } | NovaError::NoEndpoint { .. }
        )
    }
}

/// The human part of an OpenStack error body. Nova wraps it in one key named for the fault
/// (`{"conflictingRequest": {"message": "...", "code": 409}}`, `{"badRequest": ...}`,
/// `{"itemNotFound": ...}`), Keystone in `{"error": {"message": ...}}`, Placement in
/// `{"errors": [{"detail": ...}]}`. Anything else is shown as text, cut short.
pub fn service_message(body: &[u8]) -> String {
    const MAX_TEXT_CHARS: usize = 300;
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(errors) = value.get("errors").and_then(|errors| errors.as_array()) {
            let details: Vec<&str> = errors
                .iter()
                .filter_map(|error| {
                    error
                        .get("detail")
                        .or_else(|| error.get("title"))
                        .and_then(|text| text.as_str())
                })
                .collect();
            if !details.is_empty() {
                return collapse_whitespace(&details.join("; "));
            }
        }
        if let Some(object) = value.as_object() {
            for fault in object.values() {
                if let Some(message) = fault.get("message").and_then(|message| message.as_str()) {
                    return collapse_whitespace(message);
                }
            }
        }
    }
    let text = collapse_whitespace(&String::from_utf8_lossy(body));
    if text.is_empty() {
        return "no message".to_string();
    }
    let mut cut: String = text.chars().take(MAX_TEXT_CHARS).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// One line: Placement's details carry blank lines and trailing spaces.
fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What ferry knows about a request when it fails: enough to name it in the error.
pub(super) struct CallContext<'a> {
    pub cloud: &'a str,
    pub call: &'a str,
    /// The service's name for "is nova-api running?" ("nova-api", "keystone", "placement").
    pub service: &'a str,
    /// The policy rule a 403 is about, for the operator's fix.
    pub policy: &'a str,
    pub endpoint: &'a str,
    pub timeout: Duration,
    /// The profile's origin, for a 401's fix.
    pub configured_in: &'a str,
}

impl CallContext<'_> {
    /// A request that got no HTTP answer: timed out, or could not connect.
    pub fn transport_error(&self, error: &reqwest::Error) -> NovaError {
        if error.is_timeout() {
            return NovaError::Timeout {
                cloud: self.cloud.to_string(),
                call: self.call.to_string(),
                endpoint: self.endpoint.to_string(),
                timeout: self.timeout,
            };
        }
        if error.is_decode() || error.is_body() {
            return self.bad_response(format!("the answer's body could not be read: {error}"));
        }
        NovaError::Unreachable {
            cloud: self.cloud.to_string(),
            call: self.call.to_string(),
            endpoint: self.endpoint.to_string(),
            service: self.service.to_string(),
            detail: error_chain(error),
        }
    }

    /// An HTTP answer that is not a success.
    pub fn status_error(&self, status: u16, body: &[u8]) -> NovaError {
        let cloud = self.cloud.to_string();
        let call = self.call.to_string();
        let message = service_message(body);
        match status {
            400 => NovaError::BadRequest {
                cloud,
                call,
                message,
            },
            401 => NovaError::BadCredentials {
                cloud,
                call,
                detail: message,
                configured_in: self.configured_in.to_string(),
            },
            403 => NovaError::Forbidden {
                cloud,
                call,
                policy: self.policy.to_string(),
                detail: message,
            },
            404 => NovaError::NotFound {
                cloud,
                call,
                message,
            },
            409 => NovaError::Conflict {
                cloud,
                call,
                message,
            },
            500..=599 => NovaError::ServerError {
                cloud,
                call,
                service: self.service.to_string(),
                status,
                message,
            },
            _ => NovaError::UnexpectedStatus {
                cloud,
                call,
                status,
                message,
            },
        }
    }

    pub fn bad_response(&self, detail: String) -> NovaError {
        NovaError::BadResponse {
            cloud: self.cloud.to_string(),
            call: self.call.to_string(),
            detail,
        }
    }

    /// The body as `T`, or an error saying what did not fit.
    pub fn parse<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, NovaError> {
        serde_json::from_slice(body).map_err(|error| {
            self.bad_response(format!(
                "{error} in {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))
        })
    }
}

/// reqwest's error with its causes ("error sending request: connection refused"): the cause
/// is what the operator needs.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
