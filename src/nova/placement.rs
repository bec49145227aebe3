//! A hypervisor's capacity from Placement, where Nova keeps it from compute API 2.88 on:
//! the compute node's resource provider (same UUID) has an inventory per resource class and
//! the usages of its allocations.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;

use super::client::{ApiVersion, NovaClient, Request, Service};
use super::error::NovaError;
use super::types::{CapacitySource, HypervisorCapacity};

/// Placement 1.0 has both calls and every field read here; nothing newer is needed.
const PLACEMENT_VERSION: &str = "1.0";

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub(super) struct InventoryRecord {
    pub total: u64,
    #[serde(default)]
    pub reserved: u64,
    #[serde(default = "unit_ratio")]
    pub allocation_ratio: f64,
}

fn unit_ratio() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
pub(super) struct Inventories {
    pub inventories: BTreeMap<String, InventoryRecord>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Usages {
    pub usages: BTreeMap<String, u64>,
}

/// `(total, usable, used)` of one resource class; usable as the scheduler counts it,
/// `(total - reserved) * allocation_ratio` (Placement's capacity check, `_check_capacity_exceeded`).
fn class_capacity(inventories: &Inventories, usages: &Usages, class: &str) -> (u64, u64, u64) {
    let used = usages.usages.get(class).copied().unwrap_or(0);
    match inventories.inventories.get(class) {
        None => (0, 0, used),
        Some(record) => {
            let usable = (record.total.saturating_sub(record.reserved) as f64
                * record.allocation_ratio)
                .floor() as u64;
            (record.total, usable, used)
        }
    }
}

pub(super) fn capacity_from_placement(
    inventories: &Inventories,
    usages: &Usages,
) -> HypervisorCapacity {
    let (vcpus_total, vcpus_usable, vcpus_used) = class_capacity(inventories, usages, "VCPU");
    let (memory_mib_total, memory_mib_usable, memory_mib_used) =
        class_capacity(inventories, usages, "MEMORY_MB");
    let (disk_gib_total, disk_gib_usable, disk_gib_used) =
        class_capacity(inventories, usages, "DISK_GB");
    HypervisorCapacity {
        source: CapacitySource::Placement,
        vcpus_total,
        vcpus_usable,
        vcpus_used,
        memory_mib_total,
        memory_mib_usable,
        memory_mib_used,
        disk_gib_total,
        disk_gib_usable,
        disk_gib_used,
    }
}

impl NovaClient {
    /// The capacity of the resource provider `provider_uuid` (hypervisor `hostname`, for the
    /// error), or `None` when Placement has no such provider (a compute node never reported).
    pub(super) async fn placement_capacity(
        &self,
        provider_uuid: &str,
        hostname: &str,
    ) -> Result<Option<HypervisorCapacity>, NovaError> {
        let inventories_request = Request {
            call: format!("read the Placement inventory of hypervisor {hostname}"),
            service: Service::Placement,
            method: Method::GET,
            path: format!("/resource_providers/{provider_uuid}/inventories"),
            version: ApiVersion::Placement(PLACEMENT_VERSION),
            body: None,
            policy: "placement:resource_providers:inventories:list",
        };
        let inventories: Inventories = match self.send_json(&inventories_request).await {
            Ok(inventories) => inventories,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(error),
        };
        let usages_request = Request {
            call: format!("read the Placement usages of hypervisor {hostname}"),
            path: format!("/resource_providers/{provider_uuid}/usages"),
            policy: "placement:resource_providers:usages",
            ..inventories_request
        };
        let usages: Usages = match self.send_json(&usages_request).await {
            Ok(usages) => usages,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(error),
        };
        Ok(Some(capacity_from_placement(&inventories, &usages)))
    }
}
