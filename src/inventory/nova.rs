//! Nova's side of the inventory, as plain data: a cloud's hypervisors become host rows and its
//! servers instance rows, each labelled `Backend::Nova { cloud }`, beside the libvirt rows of
//! the same machines. The door's answers (`crate::nova::types`) arrive in a [`CloudReading`]
//! and are folded here; nothing here does I/O.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::CloudEntry;
use crate::model::domain::{DomainRunState, ManagedBy, NovaOwnership};
use crate::model::HostName;
use crate::nova::types::{
    CapacitySource, ComputeService, Hypervisor, Server, ServiceState, ServiceStatus,
};

use super::{Backend, HostEntry, HostState, Instance};

/// One reading of a cloud through the Nova door.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudReading {
    pub hypervisors: Vec<Hypervisor>,
    pub services: Vec<ComputeService>,
    pub servers: Vec<Server>,
}

/// A Nova hypervisor's own facts, shown on its host row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NovaHypervisorFacts {
    pub hypervisor_id: String,
    /// Nova's words: `up` / `down` (whether its nova-compute reports in).
    pub state: &'static str,
    /// `enabled` / `disabled` (whether the scheduler may place servers there).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hypervisor_type: Option<String>,
    /// libvirt's encoding: QEMU 10.0.2 is 10000002.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hypervisor_version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Its nova-compute service (os-services), when listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<NovaServiceFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<NovaCapacity>,
}

/// A nova-compute service as os-services lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NovaServiceFacts {
    pub service_id: String,
    pub host: String,
    /// `enabled` / `disabled`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// `up` / `down`.
    pub state: &'static str,
    /// An operator marked it down (`forced_down`, 2.11 on); `None` below 2.11.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_down: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// What the scheduler can place on a hypervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NovaCapacity {
    /// `placement` (2.88 on: allocation ratios applied) or `os-hypervisors`.
    pub source: &'static str,
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

impl NovaCapacity {
    pub fn memory_mib_free(&self) -> u64 {
        self.memory_mib_usable.saturating_sub(self.memory_mib_used)
    }
}

/// A Nova server's own fields, shown on its instance row (flattened into its JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NovaServerFacts {
    pub server_id: String,
    /// ACTIVE, SHUTOFF, MIGRATING, ERROR, …
    pub status: String,
    pub task_state: Option<String>,
    pub vm_state: Option<String>,
    /// Nova's power state in words (`running`, `shutdown`, …).
    pub power_state: Option<&'static str>,
    /// `OS-EXT-SRV-ATTR:hypervisor_hostname`.
    pub hypervisor_hostname: Option<String>,
    pub flavor: NovaFlavorFacts,
    /// The libvirt domain's name on its host (`instance-0000002a`).
    pub instance_name: Option<String>,
    pub project_id: Option<String>,
    /// The last fault's message (why it is in ERROR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NovaFlavorFacts {
    pub name: Option<String>,
    pub memory_mib: Option<u64>,
    pub vcpus: Option<u32>,
}

/// One `[[clouds]]` entry as ferry last read it: its own row (state and error; the servers
/// Nova placed on no host are its instances) and one row per hypervisor.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudInventory {
    pub name: String,
    pub row: HostEntry,
    pub hypervisors: Vec<HostEntry>,
}

impl CloudInventory {
    pub fn new(entry: &CloudEntry, now: SystemTime) -> CloudInventory {
        let backend = Backend::nova(&entry.name);
        CloudInventory {
            name: entry.name.clone(),
            row: HostEntry {
                uri: match &entry.clouds_yaml {
                    Some(path) => format!("cloud {} in {}", entry.name, path.display()),
                    None => format!("cloud {} in clouds.yaml", entry.name),
                },
                ..HostEntry::blank(cloud_row_name(&entry.name), backend, now)
            },
            hypervisors: Vec::new(),
        }
    }

    pub fn rows(&self) -> impl Iterator<Item = &HostEntry> {
        std::iter::once(&self.row).chain(self.hypervisors.iter())
    }

    pub fn connecting(&mut self, attempt: u32, at: SystemTime) {
        self.row.connect_attempts = attempt;
        if self.row.state != HostState::Unreachable && self.row.state != HostState::Connecting {
            self.row.state = HostState::Connecting;
            self.row.state_since = at;
        }
    }

    /// A failed reading: the cloud's row says why (the door's message names the cloud and
    /// the fix); hypervisor rows keep their last reading, marked unreachable.
    pub fn unreachable(&mut self, error: String, at: SystemTime) {
        for row in std::iter::once(&mut self.row).chain(self.hypervisors.iter_mut()) {
            if row.state != HostState::Unreachable {
                row.state = HostState::Unreachable;
                row.state_since = at;
            }
            row.last_error = Some(error.clone());
            row.last_error_at = Some(at);
        }
    }

    pub fn refreshed(&mut self, reading: CloudReading, at: SystemTime, took: Duration) {
        let backend = Backend::nova(&self.name);
        let took_ms = took.as_millis() as u64;
        let row = &mut self.row;
        if row.state != HostState::Up {
            row.state = HostState::Up;
            row.state_since = at;
        }
        row.connect_attempts = 0;
        row.last_refresh = Some(at);
        row.last_refresh_took_ms = Some(took_ms);

        let CloudReading {
            hypervisors,
            services,
            servers,
        } = reading;
        let mut servers: Vec<Option<Server>> = servers.into_iter().map(Some).collect();
        let mut rows = Vec::with_capacity(hypervisors.len());
        for hypervisor in hypervisors {
            let Ok(name) = HostName::parse(&hypervisor.hypervisor_hostname) else {
                tracing::warn!(
                    "cloud {}: hypervisor {:?} has no usable host name; not listed",
                    self.name,
                    hypervisor.hypervisor_hostname
                );
                continue;
            };
            let service = services
                .iter()
                .find(|service| Some(&service.host) == hypervisor.service.as_ref().map(|s| &s.host))
                .or_else(|| {
                    services
                        .iter()
                        .find(|service| service.host == hypervisor.hypervisor_hostname)
                });
            let placed: Vec<Instance> = servers
                .iter_mut()
                .filter(|server| {
                    server
                        .as_ref()
                        .is_some_and(|server| runs_on(server, &hypervisor))
                })
                .filter_map(Option::take)
                .map(|server| server_instance(&name, &backend, server))
                .collect();
            let previous = self
                .hypervisors
                .iter()
                .find(|row| row.name == name)
                .cloned();
            let mut row =
                previous.unwrap_or_else(|| HostEntry::blank(name.clone(), backend.clone(), at));
            row.uri = format!("hypervisor of cloud {}", self.name);
            let state = match hypervisor.state {
                ServiceState::Up => HostState::Up,
                ServiceState::Down | ServiceState::Unknown => HostState::Unreachable,
            };
            if row.state != state {
                row.state = state;
                row.state_since = at;
            }
            if state == HostState::Unreachable {
                row.last_error = Some(format!(
                    "cloud {}: nova-compute on {name} is {} in Nova (its service does not \
                     report in): check nova-compute there",
                    self.name,
                    service_state_word(hypervisor.state)
                ));
                row.last_error_at = Some(at);
            }
            row.connect_attempts = 0;
            row.last_refresh = Some(at);
            row.last_refresh_took_ms = Some(took_ms);
            row.instances_defined = placed.len();
            row.instances_running = placed
                .iter()
                .filter(|i| i.state != DomainRunState::ShutOff)
                .count();
            row.instances = placed;
            row.nova = Some(hypervisor_facts(hypervisor, service));
            rows.push(row);
        }
        // By name, as operators read a rack; Nova lists them in its database's order.
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        self.hypervisors = rows;
        // What is on no listed hypervisor (not scheduled yet, shelved, in ERROR) stays in
        // sight on the cloud's own row.
        let row_name = self.row.name.clone();
        let unplaced: Vec<Instance> = servers
            .into_iter()
            .flatten()
            .map(|server| server_instance(&row_name, &backend, server))
            .collect();
        self.row.instances_defined = unplaced.len();
        self.row.instances_running = unplaced
            .iter()
            .filter(|i| i.state != DomainRunState::ShutOff)
            .count();
        self.row.instances = unplaced;
    }
}

/// The cloud's own row's name: the cloud's, made a host name if it is not one.
fn cloud_row_name(cloud: &str) -> HostName {
    HostName::parse(cloud).unwrap_or_else(|_| {
        let cleaned: String = cloud
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        HostName::parse(&cleaned).unwrap_or_else(|_| HostName::parse("cloud").expect("valid"))
    })
}

fn runs_on(server: &Server, hypervisor: &Hypervisor) -> bool {
    match (&server.hypervisor_hostname, &server.host) {
        (Some(node), _) => node == &hypervisor.hypervisor_hostname,
        (None, Some(host)) => hypervisor
            .service
            .as_ref()
            .map_or(host == &hypervisor.hypervisor_hostname, |s| &s.host == host),
        (None, None) => false,
    }
}

pub fn service_state_word(state: ServiceState) -> &'static str {
    match state {
        ServiceState::Up => "up",
        ServiceState::Down => "down",
        ServiceState::Unknown => "unknown",
    }
}

pub fn service_status_word(status: ServiceStatus) -> &'static str {
    match status {
        ServiceStatus::Enabled => "enabled",
        ServiceStatus::Disabled => "disabled",
        ServiceStatus::Unknown => "unknown",
    }
}

/// Nova's power_state numbers (nova/compute/power_state.py) in words.
pub fn power_state_word(power_state: u8) -> &'static str {
    match power_state {
        0 => "nostate",
        1 => "running",
        3 => "paused",
        4 => "shutdown",
        6 => "crashed",
        7 => "suspended",
        _ => "unknown",
    }
}

/// The run state a `virsh list` reader would expect for that power state.
fn run_state(power_state: Option<u8>) -> DomainRunState {
    match power_state {
        Some(1) => DomainRunState::Running,
        Some(3) => DomainRunState::Paused,
        Some(4) => DomainRunState::ShutOff,
        Some(6) => DomainRunState::Crashed,
        Some(7) => DomainRunState::Suspended,
        _ => DomainRunState::Unknown,
    }
}

fn hypervisor_facts(
    hypervisor: Hypervisor,
    service: Option<&ComputeService>,
) -> NovaHypervisorFacts {
    NovaHypervisorFacts {
        hypervisor_id: hypervisor.id,
        state: service_state_word(hypervisor.state),
        status: service_status_word(hypervisor.status),
        hypervisor_type: hypervisor.hypervisor_type,
        hypervisor_version: hypervisor.hypervisor_version,
        host_ip: hypervisor.host_ip,
        service: service
            .map(|service| NovaServiceFacts {
                service_id: service.id.clone(),
                host: service.host.clone(),
                status: service_status_word(service.status),
                disabled_reason: service.disabled_reason.clone(),
                state: service_state_word(service.state),
                forced_down: service.forced_down,
                zone: service.zone.clone(),
            })
            .or_else(|| {
                // Not in os-services' answer: what os-hypervisors says of it.
                hypervisor.service.map(|service| NovaServiceFacts {
                    service_id: service.id,
                    host: service.host,
                    status: service_status_word(hypervisor.status),
                    disabled_reason: service.disabled_reason,
                    state: service_state_word(hypervisor.state),
                    forced_down: None,
                    zone: None,
                })
            }),
        capacity: hypervisor.capacity.map(|capacity| NovaCapacity {
            source: match capacity.source {
                CapacitySource::Placement => "placement",
                CapacitySource::OsHypervisors => "os-hypervisors",
            },
            vcpus_total: capacity.vcpus_total,
            vcpus_usable: capacity.vcpus_usable,
            vcpus_used: capacity.vcpus_used,
            memory_mib_total: capacity.memory_mib_total,
            memory_mib_usable: capacity.memory_mib_usable,
            memory_mib_used: capacity.memory_mib_used,
            disk_gib_total: capacity.disk_gib_total,
            disk_gib_usable: capacity.disk_gib_usable,
            disk_gib_used: capacity.disk_gib_used,
        }),
    }
}

/// A server as an instance row on `row` (its hypervisor's, or the cloud's own).
fn server_instance(row: &HostName, backend: &Backend, server: Server) -> Instance {
    let flavor = NovaFlavorFacts {
        name: server.flavor.name.clone(),
        memory_mib: server.flavor.memory_mib,
        vcpus: server.flavor.vcpus,
    };
    Instance {
        host: row.clone(),
        name: server.name.clone(),
        uuid: server.id.clone(),
        state: run_state(server.power_state),
        vcpus: server.flavor.vcpus.unwrap_or(0),
        memory_bytes: server.flavor.memory_mib.unwrap_or(0) << 20,
        persistent: true,
        job_running: false,
        disks: Vec::new(),
        // Nova's own server: it moves through Nova only, as its libvirt domain does.
        managed_by: Some(ManagedBy::Nova(NovaOwnership {
            server_id: server.id.clone(),
            server_name: Some(server.name.clone()),
            project_name: None,
            project_id: server.tenant_id.clone(),
            flavor_name: server.flavor.name.clone(),
            nova_version: None,
        })),
        backend: backend.clone(),
        nova_server: Some(NovaServerFacts {
            server_id: server.id,
            status: server.status,
            task_state: server.task_state,
            vm_state: server.vm_state,
            power_state: server.power_state.map(power_state_word),
            hypervisor_hostname: server.hypervisor_hostname,
            flavor,
            instance_name: server.instance_name,
            project_id: server.tenant_id,
            fault: server.fault.map(|fault| fault.message),
        }),
    }
}

pub mod sample;

#[cfg(test)]
mod tests;
