//! Live inventory: one worker per host connection and one per cloud feeding host and instance
//! snapshots to the app.
//!
//! The workers (`worker.rs` for libvirt hosts, `cloud_worker.rs` for Nova clouds) are the only
//! part that waits on the doors. They send [`InventoryEvent`]s; [`Inventory::apply`] folds them
//! into plain data that the TUI and the scriptable CLI (`ferry hosts`, `ferry instances`)
//! render. Every row says which [`Backend`] it comes from. Nothing here does I/O.

pub mod cloud_worker;
pub mod nova;
pub mod worker;

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::{Config, HostConfig};
use crate::model::domain::{DiskSource, DomainRunState, ManagedBy, NovaOwnership};
use crate::model::domain::{DomainFacts, HostFacts};
use crate::model::HostName;

use crate::model::storage::{classify_disk, Storage};
pub use nova::{CloudInventory, CloudReading, NovaHypervisorFacts, NovaServerFacts};
pub use worker::{collect_once, spawn_workers, WorkerSettings};

/// Where a row's facts come from: a libvirt host ferry connects to itself, or a cloud's Nova
/// API. JSON: `"libvirt"` or `{"nova": {"cloud": "ferry-lab"}}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Libvirt,
    Nova { cloud: String },
}

impl Backend {
    pub fn nova(cloud: &str) -> Backend {
        Backend::Nova {
            cloud: cloud.to_string(),
        }
    }

    /// `libvirt` or `nova:CLOUD`, as the panes and tables print it.
    pub fn label(&self) -> String {
        match self {
            Backend::Libvirt => "libvirt".to_string(),
            Backend::Nova { cloud } => format!("nova:{cloud}"),
        }
    }

    pub fn is_nova(&self) -> bool {
        matches!(self, Backend::Nova { .. })
    }
}

/// What a host worker tells the rest of ferry.
#[derive(Debug, Clone, PartialEq)]
pub enum InventoryEvent {
    /// Opening the connection (first time, or again after a failure).
    Connecting {
        host: HostName,
        attempt: u32,
        at: SystemTime,
    },
    /// A full reading of the host and its domains.
    Refreshed {
        host: HostName,
        facts: HostFacts,
        domains: Vec<DomainFacts>,
        at: SystemTime,
        took: Duration,
    },
    /// A reading found no answer within the call timeout, `in_a_row` times running, fewer
    /// than the bound that makes the host unreachable: the connection is kept.
    Late {
        host: HostName,
        error: String,
        at: SystemTime,
        in_a_row: u32,
    },
    /// Connecting or reading failed (refused, connection lost, too many late answers).
    Unreachable {
        host: HostName,
        error: String,
        at: SystemTime,
        retry_in: Duration,
    },
    /// A cloud's task is logging in (first time, or again after a failure).
    CloudConnecting {
        cloud: String,
        attempt: u32,
        at: SystemTime,
    },
    /// A full reading of a cloud's hypervisors, compute services and servers.
    CloudRefreshed {
        cloud: String,
        reading: CloudReading,
        at: SystemTime,
        took: Duration,
    },
    /// The cloud could not be read: the door's message (it names the cloud and the fix).
    CloudUnreachable {
        cloud: String,
        error: String,
        at: SystemTime,
        retry_in: Duration,
    },
}

impl InventoryEvent {
    /// The libvirt host this event is about; None for a cloud's event.
    pub fn host(&self) -> Option<&HostName> {
        match self {
            InventoryEvent::Connecting { host, .. }
            | InventoryEvent::Refreshed { host, .. }
            | InventoryEvent::Late { host, .. }
            | InventoryEvent::Unreachable { host, .. } => Some(host),
            InventoryEvent::CloudConnecting { .. }
            | InventoryEvent::CloudRefreshed { .. }
            | InventoryEvent::CloudUnreachable { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    Connecting,
    Up,
    /// Up, but its latest reading found no answer in time; its last reading is shown.
    Slow,
    Unreachable,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Connecting => "connecting",
            HostState::Up => "up",
            HostState::Slow => "slow",
            HostState::Unreachable => "unreachable",
        }
    }
}

/// One configured host (or a cloud, or one of its hypervisors) as ferry last saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostEntry {
    pub name: HostName,
    pub backend: Backend,
    pub uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub tags: Vec<String>,
    pub state: HostState,
    #[serde(with = "unix_seconds")]
    pub state_since: SystemTime,
    /// The latest failure, kept after recovery so operators can see what happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(with = "unix_seconds_option", skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<SystemTime>,
    #[serde(with = "unix_seconds_option", skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<SystemTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refresh_took_ms: Option<u64>,
    /// Reconnect attempts since the last success.
    pub connect_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<HostFacts>,
    pub instances_running: usize,
    pub instances_defined: usize,
    /// Fed by the migration engine (later issue); 0 until then.
    pub migrations_in_flight: u32,
    /// A Nova hypervisor's own facts (state, status, service, capacity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nova: Option<NovaHypervisorFacts>,
    /// Last known instances. Kept while the host is unreachable, marked stale by its state.
    #[serde(skip)]
    pub instances: Vec<Instance>,
}

impl HostEntry {
    pub fn new(config: &HostConfig, now: SystemTime) -> HostEntry {
        HostEntry {
            uri: config.uri.clone(),
            group: config.group.clone(),
            tags: config.tags.clone(),
            ..HostEntry::blank(config.name.clone(), Backend::Libvirt, now)
        }
    }

    /// A row not read yet.
    pub fn blank(name: HostName, backend: Backend, now: SystemTime) -> HostEntry {
        HostEntry {
            name,
            backend,
            uri: String::new(),
            group: None,
            tags: Vec::new(),
            state: HostState::Connecting,
            state_since: now,
            last_error: None,
            last_error_at: None,
            last_refresh: None,
            last_refresh_took_ms: None,
            connect_attempts: 0,
            facts: None,
            instances_running: 0,
            instances_defined: 0,
            migrations_in_flight: 0,
            nova: None,
            instances: Vec::new(),
        }
    }

    /// Memory the host (or Nova's scheduler) can still give, in bytes.
    pub fn memory_free_bytes(&self) -> Option<u64> {
        match (&self.facts, &self.nova) {
            (Some(facts), _) => Some(facts.memory_free_bytes),
            (None, Some(nova)) => nova.capacity.map(|c| c.memory_mib_free() << 20),
            (None, None) => None,
        }
    }
}

/// One domain on one host, with its disks classified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    pub host: HostName,
    pub backend: Backend,
    pub name: String,
    pub uuid: String,
    /// The words of `virsh list` ("running", "shut off"…), so scripts can compare.
    #[serde(serialize_with = "serialize_virsh_state")]
    pub state: DomainRunState,
    pub vcpus: u32,
    pub memory_bytes: u64,
    pub persistent: bool,
    pub job_running: bool,
    pub disks: Vec<InstanceDisk>,
    /// Another system owns its placement (`{"nova": {"server_id": …}}`): ferry shows it but
    /// never moves it through libvirt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<ManagedBy>,
    /// A Nova server row's own fields (`server_id`, `status`, `task_state`, `flavor`, …).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub nova_server: Option<NovaServerFacts>,
}

impl Instance {
    pub fn from_domain(host: &HostName, domain: DomainFacts, shared_prefixes: &[String]) -> Self {
        Instance {
            host: host.clone(),
            disks: domain
                .disks
                .into_iter()
                .map(|disk| InstanceDisk {
                    storage: classify_disk(&disk.source, shared_prefixes),
                    target: disk.target,
                    device: disk.device,
                    source: disk.source,
                })
                .collect(),
            name: domain.name,
            uuid: domain.uuid,
            state: domain.state,
            vcpus: domain.vcpus,
            memory_bytes: domain.memory_bytes,
            persistent: domain.persistent,
            job_running: domain.job_running,
            managed_by: domain.nova.map(ManagedBy::Nova),
            backend: Backend::Libvirt,
            nova_server: None,
        }
    }

    /// Nova's claim on it, when Nova created it.
    pub fn nova(&self) -> Option<&NovaOwnership> {
        match &self.managed_by {
            Some(ManagedBy::Nova(nova)) => Some(nova),
            None => None,
        }
    }

    /// Shared if every disk with a medium is shared: the instance can live-migrate without
    /// copying storage. None when it has no disks.
    pub fn storage_summary(&self) -> Option<Storage> {
        let mut with_media = self.disks.iter().filter(|d| d.storage != Storage::NoMedium);
        let first = with_media.next()?;
        Some(if with_media.all(|d| d.storage == first.storage) {
            first.storage
        } else {
            Storage::Mixed
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceDisk {
    pub target: String,
    pub device: String,
    pub source: DiskSource,
    pub storage: Storage,
}

fn serialize_virsh_state<S: serde::Serializer>(
    state: &DomainRunState,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.as_virsh_str())
}

/// Every configured host, in config order, and what is known of each; then every configured
/// cloud, its own row and its hypervisors.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inventory {
    /// The libvirt hosts of `[[hosts]]` (what migrations through libvirt choose among).
    pub hosts: Vec<HostEntry>,
    /// The clouds of `[[clouds]]`, read through Nova.
    pub clouds: Vec<CloudInventory>,
    pub shared_storage_prefixes: Vec<String>,
}

impl Inventory {
    pub fn new(config: &Config, now: SystemTime) -> Inventory {
        Inventory {
            hosts: config
                .hosts
                .iter()
                .map(|h| HostEntry::new(h, now))
                .collect(),
            clouds: config
                .clouds
                .iter()
                .map(|c| CloudInventory::new(c, now))
                .collect(),
            shared_storage_prefixes: config.shared_storage_prefixes.clone(),
        }
    }

    /// The libvirt host of that name.
    pub fn host(&self, name: &HostName) -> Option<&HostEntry> {
        self.hosts.iter().find(|h| &h.name == name)
    }

    /// The row of that backend and name: a libvirt host, a cloud's row or a hypervisor.
    pub fn host_with(&self, backend: &Backend, name: &HostName) -> Option<&HostEntry> {
        self.all_hosts()
            .find(|h| &h.backend == backend && &h.name == name)
    }

    /// Every row, libvirt hosts first (config order), then each cloud's row and hypervisors.
    pub fn all_hosts(&self) -> impl Iterator<Item = &HostEntry> {
        self.hosts
            .iter()
            .chain(self.clouds.iter().flat_map(|c| c.rows()))
    }

    pub fn cloud(&self, name: &str) -> Option<&CloudInventory> {
        self.clouds.iter().find(|c| c.name == name)
    }

    /// Every instance row: libvirt domains, then Nova servers.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.all_hosts().flat_map(|h| h.instances.iter())
    }

    pub fn instance_count(&self) -> usize {
        self.all_hosts().map(|h| h.instances.len()).sum()
    }

    pub fn migrations_in_flight(&self) -> u32 {
        self.hosts.iter().map(|h| h.migrations_in_flight).sum()
    }

    /// The newest successful refresh of any host or cloud.
    pub fn last_refresh(&self) -> Option<SystemTime> {
        self.hosts
            .iter()
            .chain(self.clouds.iter().map(|c| &c.row))
            .filter_map(|h| h.last_refresh)
            .max()
    }

    /// Libvirt hosts and clouds that could not be read. A hypervisor whose nova-compute is
    /// down is a fact the cloud reported, not a failed reading, so it does not count.
    pub fn unreachable_count(&self) -> usize {
        self.hosts
            .iter()
            .chain(self.clouds.iter().map(|c| &c.row))
            .filter(|h| h.state == HostState::Unreachable)
            .count()
    }

    /// Clouds that could not be read, with the door's message.
    pub fn unreadable_clouds(&self) -> impl Iterator<Item = (&str, &str)> {
        self.clouds
            .iter()
            .filter(|c| c.row.state != HostState::Up)
            .map(|c| {
                (
                    c.name.as_str(),
                    c.row.last_error.as_deref().unwrap_or("no answer"),
                )
            })
    }

    /// Folds one worker event in. Returns whether anything visible changed, so the TUI
    /// redraws only then. Events for hosts or clouds not in the config are ignored.
    pub fn apply(&mut self, event: InventoryEvent) -> bool {
        let Some(name) = event.host().cloned() else {
            return self.apply_cloud(event);
        };
        let shared_prefixes = &self.shared_storage_prefixes;
        let Some(host) = self.hosts.iter_mut().find(|h| h.name == name) else {
            return false;
        };
        let before = host.clone();
        match event {
            InventoryEvent::Connecting { attempt, at, .. } => {
                host.connect_attempts = attempt;
                // A host already known unreachable stays so (and keeps its "since") while
                // ferry retries; only a never-reached host shows "connecting".
                if host.state != HostState::Unreachable && host.state != HostState::Connecting {
                    host.state = HostState::Connecting;
                    host.state_since = at;
                }
            }
            InventoryEvent::Refreshed {
                host: name,
                facts,
                domains,
                at,
                took,
            } => {
                if host.state != HostState::Up {
                    host.state = HostState::Up;
                    host.state_since = at;
                }
                host.connect_attempts = 0;
                host.last_refresh = Some(at);
                host.last_refresh_took_ms = Some(took.as_millis() as u64);
                host.facts = Some(facts);
                host.instances_defined = domains.len();
                host.instances_running = domains
                    .iter()
                    .filter(|d| d.state != DomainRunState::ShutOff)
                    .count();
                host.instances = domains
                    .into_iter()
                    .map(|d| Instance::from_domain(&name, d, shared_prefixes))
                    .collect();
            }
            InventoryEvent::Late { error, at, .. } => {
                // Only a host that was up turns slow; one never reached stays as it was.
                if host.state == HostState::Up {
                    host.state = HostState::Slow;
                    host.state_since = at;
                }
                host.last_error = Some(error);
                host.last_error_at = Some(at);
            }
            InventoryEvent::Unreachable { error, at, .. } => {
                if host.state != HostState::Unreachable {
                    host.state = HostState::Unreachable;
                    host.state_since = at;
                }
                host.last_error = Some(error);
                host.last_error_at = Some(at);
            }
            InventoryEvent::CloudConnecting { .. }
            | InventoryEvent::CloudRefreshed { .. }
            | InventoryEvent::CloudUnreachable { .. } => unreachable!("a cloud's event"),
        }
        *host != before
    }

    fn apply_cloud(&mut self, event: InventoryEvent) -> bool {
        let name = match &event {
            InventoryEvent::CloudConnecting { cloud, .. }
            | InventoryEvent::CloudRefreshed { cloud, .. }
            | InventoryEvent::CloudUnreachable { cloud, .. } => cloud.clone(),
            _ => return false,
        };
        let Some(cloud) = self.clouds.iter_mut().find(|c| c.name == name) else {
            return false;
        };
        let before = cloud.clone();
        match event {
            InventoryEvent::CloudConnecting { attempt, at, .. } => cloud.connecting(attempt, at),
            InventoryEvent::CloudRefreshed {
                reading, at, took, ..
            } => cloud.refreshed(reading, at, took),
            InventoryEvent::CloudUnreachable { error, at, .. } => cloud.unreachable(error, at),
            _ => {}
        }
        *cloud != before
    }
}

mod unix_seconds {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        s.serialize_u64(seconds)
    }
}

mod unix_seconds_option {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(
        time: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => super::unix_seconds::serialize(time, s),
            None => s.serialize_none(),
        }
    }
}

/// Test and benchmark data: hosts and instances without libvirt.
pub mod sample {
    use super::*;
    use crate::model::domain::DiskFacts;

    pub fn host_facts(hostname: &str) -> HostFacts {
        HostFacts {
            hostname: hostname.to_string(),
            host_uuid: "00000000-0000-4000-8000-000000000001".into(),
            hypervisor_type: "QEMU".into(),
            hypervisor_version: "10.0.0".into(),
            libvirt_version: "11.3.0".into(),
            cpu_arch: "x86_64".into(),
            cpu_model: "Skylake-Client-IBRS".into(),
            cpu_count: 8,
            memory_total_bytes: 32 << 30,
            memory_free_bytes: 20 << 30,
        }
    }

    pub fn domain(name: &str, index: usize) -> DomainFacts {
        let state = match index % 5 {
            0..=2 => DomainRunState::Running,
            3 => DomainRunState::ShutOff,
            _ => DomainRunState::Paused,
        };
        let shared = index.is_multiple_of(2);
        DomainFacts {
            name: name.to_string(),
            uuid: format!("6f1c{index:04x}-0000-4000-8000-{index:012x}"),
            state,
            vcpus: 1 + (index % 4) as u32,
            memory_bytes: (512 << 20) * (1 + (index % 4) as u64),
            persistent: index % 7 != 6,
            disks: vec![DiskFacts {
                target: "vda".into(),
                device: "disk".into(),
                source: DiskSource::Path {
                    path: if shared {
                        format!("/var/lib/ferry-lab/shared/{name}.qcow2")
                    } else {
                        format!("/var/lib/libvirt/images/{name}.qcow2")
                    },
                },
                read_only: false,
            }],
            job_running: index % 11 == 10,
            nova: None,
        }
    }

    /// An inventory of `host_count` hosts with `instances_per_host` instances each, all up.
    pub fn inventory(host_count: usize, instances_per_host: usize, at: SystemTime) -> Inventory {
        let hosts = (1..=host_count)
            .map(|n| HostConfig {
                name: HostName::parse(&format!("hv{n}")).expect("valid sample name"),
                uri: format!("qemu+ssh://root@hv{n}/system"),
                group: Some(format!("rack-{}", (n - 1) / 10 + 1)),
                tags: Vec::new(),
            })
            .collect();
        let config = Config {
            hosts,
            ..Config::default()
        };
        let mut inventory = Inventory::new(&config, at);
        for (h, host) in config.hosts.iter().enumerate() {
            let domains = (0..instances_per_host)
                .map(|i| {
                    let index = h * instances_per_host + i;
                    domain(&format!("vm-{index:05}"), index)
                })
                .collect();
            inventory.apply(InventoryEvent::Refreshed {
                host: host.name.clone(),
                facts: host_facts(host.name.as_str()),
                domains,
                at,
                took: Duration::from_millis(40),
            });
        }
        inventory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    fn hv(name: &str) -> HostName {
        HostName::parse(name).unwrap()
    }

    #[test]
    fn refresh_fills_host_and_instances() {
        let mut inventory = sample::inventory(2, 5, at(0));
        let host = inventory.host(&hv("hv1")).unwrap();
        assert_eq!(host.state, HostState::Up);
        assert_eq!(host.instances_defined, 5);
        assert_eq!(host.instances_running, 4, "one of five is shut off");
        assert_eq!(host.instances[0].disks[0].storage, Storage::Shared);
        assert_eq!(host.instances[1].disks[0].storage, Storage::Local);
        assert_eq!(inventory.instance_count(), 10);
        // The same reading again changes only the refresh time.
        let unchanged = inventory.apply(InventoryEvent::Refreshed {
            host: hv("hv1"),
            facts: sample::host_facts("hv1"),
            domains: (0..5)
                .map(|i| sample::domain(&format!("vm-{i:05}"), i))
                .collect(),
            at: at(0),
            took: Duration::from_millis(40),
        });
        assert!(!unchanged);
    }

    #[test]
    fn unreachable_keeps_since_and_last_instances_then_recovers() {
        let mut inventory = sample::inventory(2, 3, at(0));
        let down = |seconds| InventoryEvent::Unreachable {
            host: hv("hv2"),
            error: "connection refused".into(),
            at: at(seconds),
            retry_in: Duration::from_secs(1),
        };
        assert!(inventory.apply(down(10)));
        inventory.apply(InventoryEvent::Connecting {
            host: hv("hv2"),
            attempt: 1,
            at: at(11),
        });
        inventory.apply(down(12));
        let host = inventory.host(&hv("hv2")).unwrap();
        assert_eq!(host.state, HostState::Unreachable);
        assert_eq!(host.state_since, at(10), "retries do not reset since-when");
        assert_eq!(host.last_error_at, Some(at(12)));
        assert_eq!(host.connect_attempts, 1);
        assert_eq!(host.instances.len(), 3, "last known instances stay visible");
        assert_eq!(inventory.unreachable_count(), 1);

        inventory.apply(InventoryEvent::Refreshed {
            host: hv("hv2"),
            facts: sample::host_facts("hv2"),
            domains: vec![],
            at: at(20),
            took: Duration::from_millis(5),
        });
        let host = inventory.host(&hv("hv2")).unwrap();
        assert_eq!((host.state, host.state_since), (HostState::Up, at(20)));
        assert_eq!(host.connect_attempts, 0);
        assert_eq!(host.last_error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn a_late_answer_makes_an_up_host_slow_with_its_instances_kept() {
        let mut inventory = sample::inventory(2, 3, at(0));
        let late = |seconds, in_a_row| InventoryEvent::Late {
            host: hv("hv2"),
            error: "listing domains: no answer within 5s".into(),
            at: at(seconds),
            in_a_row,
        };
        assert!(inventory.apply(late(10, 1)));
        let host = inventory.host(&hv("hv2")).unwrap();
        assert_eq!((host.state, host.state_since), (HostState::Slow, at(10)));
        assert_eq!(host.instances.len(), 3);
        assert_eq!(inventory.unreachable_count(), 0, "slow is not unreachable");
        inventory.apply(late(15, 2));
        assert_eq!(inventory.host(&hv("hv2")).unwrap().state_since, at(10));

        inventory.apply(InventoryEvent::Refreshed {
            host: hv("hv2"),
            facts: sample::host_facts("hv2"),
            domains: vec![],
            at: at(20),
            took: Duration::from_millis(5),
        });
        assert_eq!(inventory.host(&hv("hv2")).unwrap().state, HostState::Up);

        // A host never reached does not turn slow: it stays connecting.
        let mut fresh = sample::inventory(1, 0, at(0));
        fresh.hosts[0].state = HostState::Connecting;
        fresh.apply(InventoryEvent::Late {
            host: hv("hv1"),
            error: "late".into(),
            at: at(1),
            in_a_row: 1,
        });
        assert_eq!(fresh.hosts[0].state, HostState::Connecting);
    }

    #[test]
    fn events_for_unknown_hosts_are_ignored() {
        let mut inventory = sample::inventory(1, 1, at(0));
        assert!(!inventory.apply(InventoryEvent::Connecting {
            host: hv("elsewhere"),
            attempt: 0,
            at: at(1),
        }));
    }

    #[test]
    fn instance_json_uses_virsh_state_words() {
        let inventory = sample::inventory(1, 4, at(0));
        let json = serde_json::to_value(inventory.instances().collect::<Vec<_>>()).unwrap();
        assert_eq!(json[3]["state"], "shut off");
        assert_eq!(json[0]["host"], "hv1");
        assert_eq!(json[0]["disks"][0]["storage"], "shared");
    }
}
