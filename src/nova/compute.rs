//! Nova's inventory: hypervisors, compute services, servers of all projects, flavors; and
//! enabling or disabling a compute service (a drain's first step).
//!
//! Each call's microversion is chosen in a comment beside it: the lowest that has what the
//! call needs, or a newer one when that only adds fields parsed as `Option`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::{encode_query, ApiVersion, NovaClient, Request, Service};
use super::error::NovaError;
use super::microversion::{Microversion, VersionNeed};
use super::types::{ComputeService, Flavor, Hypervisor, HypervisorWire, Server};

/// From here os-hypervisors has no capacity fields; Placement has them.
pub const HYPERVISOR_CAPACITY_IN_PLACEMENT: Microversion = Microversion::new(2, 88);

/// The lowest microversion there is: what a call needing nothing newer sends.
pub(super) const BASE: Microversion = Microversion::new(2, 1);

impl NovaClient {
    pub(super) fn compute_request(
        &self,
        call: String,
        method: Method,
        path: String,
        version: ApiVersion,
        policy: &'static str,
    ) -> Request {
        Request {
            call,
            service: Service::Compute,
            method,
            path,
            version,
            body: None,
            policy,
        }
    }

    /// Every hypervisor with its state, status and capacity.
    pub async fn hypervisors(&self) -> Result<Vec<Hypervisor>, NovaError> {
        let call = "list hypervisors";
        // Any version lists them. Preferred 2.88: from 2.53 the ids are the compute nodes'
        // UUIDs (= their Placement resource providers) and the list pages; 2.88 is where
        // the capacity fields go, and then the capacity is read from Placement. Below 2.88
        // the response's own capacity is used.
        let version = self.negotiate(
            call,
            VersionNeed::between(BASE, HYPERVISOR_CAPACITY_IN_PLACEMENT),
        )?;
        let request = self.compute_request(
            call.to_string(),
            Method::GET,
            "/os-hypervisors/detail".to_string(),
            version,
            "os_compute_api:os-hypervisors:list-detail",
        );
        let wires: Vec<HypervisorWire> = self.list_all(request, "hypervisors").await?;
        let capacity_in_placement = matches!(
            version,
            ApiVersion::Compute(sent) if sent >= HYPERVISOR_CAPACITY_IN_PLACEMENT
        );
        let mut hypervisors = Vec::with_capacity(wires.len());
        for wire in wires {
            let capacity = if capacity_in_placement {
                self.placement_capacity(&wire.id, &wire.hypervisor_hostname)
                    .await?
            } else {
                wire.reported_capacity()
            };
            hypervisors.push(wire.into_hypervisor(capacity));
        }
        Ok(hypervisors)
    }

    /// The nova-compute services: enabled or disabled (with the reason), up or down.
    pub async fn compute_services(&self) -> Result<Vec<ComputeService>, NovaError> {
        let call = "list compute services";
        // Any version lists them. Preferred 2.53: the ids become the UUIDs that
        // `set_service_enabled` needs (2.11's `forced_down` is parsed optionally).
        let version = self.negotiate(call, VersionNeed::between(BASE, SERVICE_UPDATE_BY_ID))?;
        let request = self.compute_request(
            call.to_string(),
            Method::GET,
            "/os-services?binary=nova-compute".to_string(),
            version,
            "os_compute_api:os-services:list",
        );
        #[derive(Deserialize)]
        struct Services {
            services: Vec<ComputeService>,
        }
        let services: Services = self.send_json(&request).await?;
        Ok(services.services)
    }

    /// Enables a compute service, or disables it with a reason, so the scheduler places no new
    /// server there (the first step of a drain). Returns the service as Nova now has it.
    pub async fn set_service_enabled(
        &self,
        service: &ComputeService,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<ComputeService, NovaError> {
        let call = format!(
            "{} compute service {}",
            if enabled { "enable" } else { "disable" },
            service.host
        );
        // 2.53 exactly: `PUT /os-services/{uuid}` exists from there (the older
        // `/os-services/disable` takes host and binary instead; ferry does not use it).
        let version = self.negotiate(&call, VersionNeed::exactly(SERVICE_UPDATE_BY_ID))?;
        // Nova refuses a `disabled_reason` with `enabled` (400), so it goes only with disable.
        let body = match (enabled, reason) {
            (true, _) => json!({ "status": "enabled" }),
            (false, Some(reason)) => json!({ "status": "disabled", "disabled_reason": reason }),
            (false, None) => json!({ "status": "disabled" }),
        };
        let mut request = self.compute_request(
            call,
            Method::PUT,
            format!("/os-services/{}", service.id),
            version,
            "os_compute_api:os-services:update",
        );
        request.body = Some(body);
        #[derive(Deserialize)]
        struct Updated {
            service: ComputeService,
        }
        let updated: Updated = self.send_json(&request).await?;
        Ok(updated.service)
    }

    /// Every server of every project, following the pages.
    pub async fn servers_all_projects(&self) -> Result<Vec<Server>, NovaError> {
        let call = "list servers of all projects";
        let version = self.negotiate(call, SERVER_VERSION)?;
        let request = self.compute_request(
            call.to_string(),
            Method::GET,
            "/servers/detail?all_tenants=1".to_string(),
            version,
            "os_compute_api:servers:detail:get_all_tenants",
        );
        self.list_all(request, "servers").await
    }

    pub async fn server(&self, server_id: &str) -> Result<Server, NovaError> {
        let call = format!("show server {server_id}");
        let version = self.negotiate(&call, SERVER_VERSION)?;
        let request = self.compute_request(
            call,
            Method::GET,
            format!("/servers/{server_id}"),
            version,
            "os_compute_api:servers:show",
        );
        #[derive(Deserialize)]
        struct Shown {
            server: Server,
        }
        let shown: Shown = self.send_json(&request).await?;
        Ok(shown.server)
    }

    /// Every flavor, private ones included (`is_public=None`; an admin sees them all).
    pub async fn flavors(&self) -> Result<Vec<Flavor>, NovaError> {
        let call = "list flavors";
        // 2.1: every field read is there; 2.55's `description` is parsed optionally but not
        // worth asking for, and 2.75's integer `swap` is read in both forms.
        let version = self.negotiate(call, VersionNeed::exactly(BASE))?;
        let query = encode_query(&[("is_public", "None".to_string())]);
        let request = self.compute_request(
            call.to_string(),
            Method::GET,
            format!("/flavors/detail?{query}"),
            version,
            "os_compute_api:os-flavor-access",
        );
        self.list_all(request, "flavors").await
    }

    /// The flavor with this id, else the one with this name.
    pub async fn flavor(&self, name_or_id: &str) -> Result<Flavor, NovaError> {
        let flavors = self.flavors().await?;
        pick_flavor(flavors, name_or_id).map_err(|message| NovaError::NotFound {
            cloud: self.cloud_name().to_string(),
            call: format!("find flavor {name_or_id}"),
            message,
        })
    }
}

/// 2.53: `PUT /os-services/{uuid}`, and UUID service ids.
pub const SERVICE_UPDATE_BY_ID: Microversion = Microversion::new(2, 53);

/// Servers: any version lists them, with the `OS-EXT-*` fields an admin sees. Preferred 2.47:
/// the flavor comes embedded (name, vcpus, ram, disk) instead of a link with its id. Newer
/// versions add fields ferry does not read; 2.69 would also return partial records for
/// servers in a down cell, which 2.47 does not.
const SERVER_VERSION: VersionNeed = VersionNeed::between(BASE, Microversion::new(2, 47));

/// The flavor whose id is `name_or_id`, else the only one of that name.
pub(super) fn pick_flavor(flavors: Vec<Flavor>, name_or_id: &str) -> Result<Flavor, String> {
    if let Some(flavor) = flavors.iter().find(|flavor| flavor.id == name_or_id) {
        return Ok(flavor.clone());
    }
    let named: Vec<&Flavor> = flavors
        .iter()
        .filter(|flavor| flavor.name == name_or_id)
        .collect();
    match named.as_slice() {
        [flavor] => Ok((*flavor).clone()),
        [] => {
            let names: Vec<&str> = flavors.iter().map(|flavor| flavor.name.as_str()).collect();
            Err(format!(
                "no flavor has the id or name '{name_or_id}'; flavors: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))
        }
        several => {
            let ids: Vec<&str> = several.iter().map(|flavor| flavor.id.as_str()).collect();
            Err(format!(
                "several flavors are named '{name_or_id}' (ids {}): give the id",
                ids.join(", ")
            ))
        }
    }
}
