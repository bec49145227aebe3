//! What a host and its domains are, as ferry reads them from libvirt: plain data, no I/O.
//! The libvirt door fills them in (`libvirt::facts`); the inventory, the engine and the views
//! read them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostFacts {
    pub hostname: String,
    /// The host UUID libvirt reports in its capabilities; migration refuses two hosts that share one.
    pub host_uuid: String,
    pub hypervisor_type: String,
    pub hypervisor_version: String,
    pub libvirt_version: String,
    pub cpu_arch: String,
    pub cpu_model: String,
    pub cpu_count: u32,
    pub memory_total_bytes: u64,
    pub memory_free_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainRunState {
    Running,
    Blocked,
    Paused,
    ShuttingDown,
    ShutOff,
    Crashed,
    Suspended,
    Unknown,
}

impl DomainRunState {
    /// The words `virsh list` uses, so operators can compare.
    pub fn as_virsh_str(self) -> &'static str {
        match self {
            DomainRunState::Running => "running",
            DomainRunState::Blocked => "idle",
            DomainRunState::Paused => "paused",
            DomainRunState::ShuttingDown => "in shutdown",
            DomainRunState::ShutOff => "shut off",
            DomainRunState::Crashed => "crashed",
            DomainRunState::Suspended => "pmsuspended",
            DomainRunState::Unknown => "no state",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainFacts {
    pub name: String,
    pub uuid: String,
    pub state: DomainRunState,
    pub vcpus: u32,
    pub memory_bytes: u64,
    pub persistent: bool,
    /// Disks from the domain XML, in the order the guest sees them.
    pub disks: Vec<DiskFacts>,
    /// A libvirt job (migration, save, dump, backup) is running on it now.
    pub job_running: bool,
    /// OpenStack Nova created it and keeps its placement: ferry never moves it through libvirt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nova: Option<NovaOwnership>,
}

/// OpenStack Nova's claim on a domain, from the `<nova:instance>` metadata its libvirt driver
/// writes into every domain it defines (`LibvirtConfigGuestMetaNovaInstance` in
/// nova/virt/libvirt/config.py). Nova's database records the server's host; a domain moved
/// behind Nova's back leaves that record wrong, so such a domain moves only through Nova.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NovaOwnership {
    /// The server's id in Nova: Nova gives the domain the server's UUID.
    pub server_id: String,
    /// `<nova:name>`: the server's name as its owner sees it (the domain is `instance-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// `<nova:owner><nova:project uuid=…>`: the project (tenant) that owns the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// `<nova:flavor name=…>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor_name: Option<String>,
    /// `<nova:package version=…>`: the Nova release that wrote the metadata, e.g. `26.2.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nova_version: Option<String>,
}

impl NovaOwnership {
    /// "server web-1 (5f0c…)", or the id alone when the metadata carried no name.
    pub fn server_label(&self) -> String {
        match &self.server_name {
            Some(name) => format!("server {name} ({})", self.server_id),
            None => format!("server {}", self.server_id),
        }
    }
}

/// Who, besides libvirt, owns a domain's placement; serialized as `{"nova": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManagedBy {
    Nova(NovaOwnership),
}

/// One `<disk>` of a domain: what the guest calls it and where its data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskFacts {
    /// Guest device name, e.g. `vda`.
    pub target: String,
    /// `disk`, `cdrom`, `floppy` or `lun`.
    pub device: String,
    pub source: DiskSource,
    /// The guest cannot write it (`<readonly/>`; libvirt makes every CD-ROM read-only), so a
    /// migration never needs to copy it.
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum DiskSource {
    /// `type='file'` (image file) or `type='block'` (device node) on a path of the host.
    Path { path: String },
    /// `type='network'`: served over the network (rbd, iscsi, nbd, gluster…).
    Network { protocol: String, name: String },
    /// `type='volume'`: a volume of a libvirt storage pool.
    Volume { pool: String, volume: String },
    /// No medium (an empty CD-ROM drive) or a source ferry does not understand.
    None,
}
