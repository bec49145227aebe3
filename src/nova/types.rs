//! What the door hands its callers: Nova's and Placement's answers as typed data. Unknown
//! fields are ignored; fields only some microversions have are `Option`. Units are in the
//! names: Nova's `ram` is `memory_mib`, its `disk` is `root_disk_gib`.

use serde::{Deserialize, Deserializer};

/// Nova's ids are integers below some microversions and UUIDs from them on
/// (os-hypervisors and os-services from 2.53): both are kept as text.
pub(super) fn id_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrNumber {
        Text(String),
        Number(i64),
    }
    Ok(match TextOrNumber::deserialize(deserializer)? {
        TextOrNumber::Text(text) => text,
        TextOrNumber::Number(number) => number.to_string(),
    })
}

/// Flavor `swap` is `""` for none below 2.75 and an integer (MiB) from it on.
fn swap_mib<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrNumber {
        Text(String),
        Number(u64),
    }
    Ok(match Option::<TextOrNumber>::deserialize(deserializer)? {
        Some(TextOrNumber::Number(mib)) => mib,
        Some(TextOrNumber::Text(text)) => text.trim().parse().unwrap_or(0),
        None => 0,
    })
}

/// `state` of a hypervisor or a compute service: whether its nova-compute reports in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Up,
    Down,
    #[default]
    #[serde(other)]
    Unknown,
}

/// `status`: whether the scheduler may place servers there (an operator's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStatus {
    Enabled,
    Disabled,
    #[default]
    #[serde(other)]
    Unknown,
}

/// Where a hypervisor's capacity figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacitySource {
    /// os-hypervisors below 2.88: the host's physical figures; allocation ratios unknown, so
    /// the usable figures equal the totals.
    OsHypervisors,
    /// Placement's inventory and usages (2.88 on): usable is
    /// `(total - reserved) * allocation_ratio`, as the scheduler counts it.
    Placement,
}

/// One hypervisor's capacity. A resource class Placement has no inventory for counts as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HypervisorCapacity {
    pub source: CapacitySource,
    pub vcpus_total: u64,
    pub vcpus_usable: u64,
    pub vcpus_used: u64,
    pub memory_mib_total: u64,
    pub memory_mib_usable: u64,
    pub memory_mib_used: u64,
    pub disk_gib_total: u64,
    pub disk_gib_usable: u64,
    pub disk_gib_used: u64,
}

impl HypervisorCapacity {
    pub fn vcpus_free(&self) -> u64 {
        self.vcpus_usable.saturating_sub(self.vcpus_used)
    }

    pub fn memory_mib_free(&self) -> u64 {
        self.memory_mib_usable.saturating_sub(self.memory_mib_used)
    }

    pub fn disk_gib_free(&self) -> u64 {
        self.disk_gib_usable.saturating_sub(self.disk_gib_used)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HypervisorService {
    pub host: String,
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hypervisor {
    /// The compute node's UUID from 2.53 on, which is also its Placement resource provider's.
    pub id: String,
    pub hypervisor_hostname: String,
    pub state: ServiceState,
    pub status: ServiceStatus,
    pub hypervisor_type: Option<String>,
    /// libvirt's encoding: QEMU 10.0.2 is 10000002.
    pub hypervisor_version: Option<u64>,
    pub host_ip: Option<String>,
    pub service: Option<HypervisorService>,
    /// Below 2.88 only.
    pub running_vms: Option<u64>,
    /// `None` when the hypervisor has no resource provider yet (never reported).
    pub capacity: Option<HypervisorCapacity>,
}

/// os-hypervisors/detail's entry; the capacity fields are gone from 2.88.
#[derive(Debug, Deserialize)]
pub(super) struct HypervisorWire {
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    pub hypervisor_hostname: String,
    #[serde(default)]
    pub state: ServiceState,
    #[serde(default)]
    pub status: ServiceStatus,
    #[serde(default)]
    pub hypervisor_type: Option<String>,
    #[serde(default)]
    pub hypervisor_version: Option<u64>,
    #[serde(default)]
    pub host_ip: Option<String>,
    #[serde(default)]
    pub service: Option<HypervisorService>,
    #[serde(default)]
    pub running_vms: Option<u64>,
    #[serde(default)]
    pub vcpus: Option<u64>,
    #[serde(default)]
    pub vcpus_used: Option<u64>,
    #[serde(default)]
    pub memory_mb: Option<u64>,
    #[serde(default)]
    pub memory_mb_used: Option<u64>,
    #[serde(default)]
    pub local_gb: Option<u64>,
    #[serde(default)]
    pub local_gb_used: Option<u64>,
}

impl HypervisorWire {
    /// The capacity os-hypervisors itself reports (below 2.88), if it does.
    pub fn reported_capacity(&self) -> Option<HypervisorCapacity> {
        let vcpus_total = self.vcpus?;
        let memory_mib_total = self.memory_mb?;
        let disk_gib_total = self.local_gb?;
        Some(HypervisorCapacity {
            source: CapacitySource::OsHypervisors,
            vcpus_total,
            vcpus_usable: vcpus_total,
            vcpus_used: self.vcpus_used.unwrap_or(0),
            memory_mib_total,
            memory_mib_usable: memory_mib_total,
            memory_mib_used: self.memory_mb_used.unwrap_or(0),
            disk_gib_total,
            disk_gib_usable: disk_gib_total,
            disk_gib_used: self.local_gb_used.unwrap_or(0),
        })
    }

    pub fn into_hypervisor(self, capacity: Option<HypervisorCapacity>) -> Hypervisor {
        Hypervisor {
            id: self.id,
            hypervisor_hostname: self.hypervisor_hostname,
            state: self.state,
            status: self.status,
            hypervisor_type: self.hypervisor_type,
            hypervisor_version: self.hypervisor_version,
            host_ip: self.host_ip,
            service: self.service,
            running_vms: self.running_vms,
            capacity,
        }
    }
}

/// A nova-compute service (`GET /os-services?binary=nova-compute`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ComputeService {
    /// A UUID from 2.53 on (what `PUT /os-services/{id}` takes).
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    pub binary: String,
    pub host: String,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub status: ServiceStatus,
    #[serde(default)]
    pub disabled_reason: Option<String>,
    #[serde(default)]
    pub state: ServiceState,
    /// From 2.11 on.
    #[serde(default)]
    pub forced_down: Option<bool>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// A server's flavor: embedded from 2.47 on (name and size, no id), a link with the id below.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct ServerFlavor {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, rename = "original_name")]
    pub name: Option<String>,
    #[serde(default)]
    pub vcpus: Option<u32>,
    #[serde(default, rename = "ram")]
    pub memory_mib: Option<u64>,
    #[serde(default, rename = "disk")]
    pub root_disk_gib: Option<u64>,
}

/// The server's last fault: Nova's reason for an ERROR (its traceback is left out).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServerFault {
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub created: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Server {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// ACTIVE, MIGRATING, VERIFY_RESIZE, ERROR, …
    #[serde(default)]
    pub status: String,
    #[serde(default, rename = "OS-EXT-STS:task_state")]
    pub task_state: Option<String>,
    #[serde(default, rename = "OS-EXT-STS:vm_state")]
    pub vm_state: Option<String>,
    /// Nova's power_state number: 0 no state, 1 running, 3 paused, 4 shut down, 6 crashed,
    /// 7 suspended.
    #[serde(default, rename = "OS-EXT-STS:power_state")]
    pub power_state: Option<u8>,
    #[serde(default, rename = "OS-EXT-SRV-ATTR:host")]
    pub host: Option<String>,
    #[serde(default, rename = "OS-EXT-SRV-ATTR:hypervisor_hostname")]
    pub hypervisor_hostname: Option<String>,
    /// The libvirt domain's name (`instance-0000002a`).
    #[serde(default, rename = "OS-EXT-SRV-ATTR:instance_name")]
    pub instance_name: Option<String>,
    #[serde(default)]
    pub flavor: ServerFlavor,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub fault: Option<ServerFault>,
    #[serde(default)]
    pub updated: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    #[serde(rename = "ram")]
    pub memory_mib: u64,
    #[serde(rename = "disk")]
    pub root_disk_gib: u64,
    #[serde(default, rename = "OS-FLV-EXT-DATA:ephemeral")]
    pub ephemeral_gib: u64,
    #[serde(default, deserialize_with = "swap_mib", rename = "swap")]
    pub swap_mib: u64,
    #[serde(default = "public_by_default", rename = "os-flavor-access:is_public")]
    pub is_public: bool,
    #[serde(default, rename = "OS-FLV-DISABLED:disabled")]
    pub disabled: bool,
    /// From 2.55 on.
    #[serde(default)]
    pub description: Option<String>,
}

fn public_by_default() -> bool {
    true
}

/// What both migration lists say of a migration: its id, status, hosts and times.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MigrationRecord {
    pub id: u64,
    /// From 2.59 on.
    #[serde(default)]
    pub uuid: Option<String>,
    /// queued, preparing, running, post-migrating, completed, finished, confirmed, reverted,
    /// cancelled, error, failed, …
    pub status: String,
    #[serde(default)]
    pub source_compute: Option<String>,
    #[serde(default)]
    pub source_node: Option<String>,
    #[serde(default)]
    pub dest_compute: Option<String>,
    #[serde(default)]
    pub dest_node: Option<String>,
    /// The destination's `my_ip`.
    #[serde(default)]
    pub dest_host: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// An in-progress live migration (`GET /servers/{id}/migrations`), with Nova's progress bytes,
/// which it saves only about every 5 s (`null` before the first save).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServerMigration {
    #[serde(flatten)]
    pub record: MigrationRecord,
    pub server_uuid: String,
    #[serde(default)]
    pub memory_total_bytes: Option<u64>,
    #[serde(default)]
    pub memory_processed_bytes: Option<u64>,
    #[serde(default)]
    pub memory_remaining_bytes: Option<u64>,
    #[serde(default)]
    pub disk_total_bytes: Option<u64>,
    #[serde(default)]
    pub disk_processed_bytes: Option<u64>,
    #[serde(default)]
    pub disk_remaining_bytes: Option<u64>,
}

/// `migration_type` of os-migrations (2.23 on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MigrationType {
    #[serde(rename = "live-migration")]
    Live,
    /// A cold migration (a resize to the same flavor).
    #[serde(rename = "migration")]
    Cold,
    #[serde(rename = "resize")]
    Resize,
    #[serde(rename = "evacuation")]
    Evacuation,
}

impl MigrationType {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationType::Live => "live-migration",
            MigrationType::Cold => "migration",
            MigrationType::Resize => "resize",
            MigrationType::Evacuation => "evacuation",
        }
    }
}

/// Any migration Nova recorded (`GET /os-migrations`), finished ones included.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Migration {
    #[serde(flatten)]
    pub record: MigrationRecord,
    #[serde(rename = "instance_uuid")]
    pub server_id: String,
    /// From 2.23 on.
    #[serde(default)]
    pub migration_type: Option<MigrationType>,
}

/// Which of os-migrations' records to list; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationFilter {
    pub server_id: Option<String>,
    pub migration_type: Option<MigrationType>,
    pub status: Option<String>,
    pub source_compute: Option<String>,
    /// ISO 8601 time; needs 2.59.
    pub changes_since: Option<String>,
}

impl MigrationFilter {
    /// The query parameters, as os-migrations names them.
    pub fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(server_id) = &self.server_id {
            pairs.push(("instance_uuid", server_id.clone()));
        }
        if let Some(migration_type) = self.migration_type {
            pairs.push(("migration_type", migration_type.as_str().to_string()));
        }
        if let Some(status) = &self.status {
            pairs.push(("status", status.clone()));
        }
        if let Some(source_compute) = &self.source_compute {
            pairs.push(("source_compute", source_compute.clone()));
        }
        if let Some(changes_since) = &self.changes_since {
            pairs.push(("changes-since", changes_since.clone()));
        }
        pairs
    }
}

/// One step of an instance action (`compute_live_migration`, `conductor_live_migrate_instance`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstanceActionEvent {
    pub event: String,
    /// `Success`, `Error`, or `None` while running.
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub finish_time: Option<String>,
    /// From 2.62 on.
    #[serde(default)]
    pub host: Option<String>,
    /// The failure's message, from 2.84 on: the reason of an asynchronous precheck refusal.
    #[serde(default)]
    pub details: Option<String>,
}

/// What was asked of a server, by whom and when (`os-instance-actions`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstanceAction {
    /// `live-migration`, `migrate`, `resize`, `confirmResize`, …
    pub action: String,
    pub request_id: String,
    #[serde(default, rename = "instance_uuid")]
    pub server_id: Option<String>,
    /// `Error` when a step failed.
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub start_time: Option<String>,
    /// From 2.58 on.
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    /// Only in `instance_action` (one action's detail).
    #[serde(default)]
    pub events: Vec<InstanceActionEvent>,
}

impl InstanceAction {
    /// The events that failed, for a refusal's reason.
    pub fn failed_events(&self) -> impl Iterator<Item = &InstanceActionEvent> {
        self.events
            .iter()
            .filter(|event| event.result.as_deref() == Some("Error"))
    }
}
