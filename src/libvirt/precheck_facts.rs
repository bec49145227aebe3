//! Gathers the facts of a live-migration precheck ("can instance X move from S to D?") from
//! libvirt on both hosts, for the pure checks in [`crate::precheck`] to judge.
//!
//! Every remote call goes through [`HostConnection::call`], bounded by the config's call
//! timeout. The entry points still block for the whole gathering (a handful of calls per host),
//! so the CLI and the TUI run them on a worker thread, never on the thread that draws.
//!
//! How each fact is gathered:
//! - Instance state, memory and disks: the source domain's `virDomainGetInfo` (maximum memory,
//!   which the guest may balloon up to and the destination must be able to hold) and live XML.
//!   A disk's storage class comes from `inventory::storage::classify_disk` with the config's
//!   `shared_storage_prefixes`, its size from `virDomainGetBlockInfo` (allocation), its
//!   read-only flag from the XML.
//! - Hosts up: the connection opens within the call timeout. A destination that is not in the
//!   config is never contacted, and neither is one whose name is not a valid host name.
//! - Destination free memory: see [`free_memory_bytes`].
//! - Hypervisor type and version: `virConnectGetType` and `virConnectGetVersion` on each side.
//! - CPU: see [`cpu_comparison`] and [`cpu_compare_result`].
//! - Shared storage: Nova's probe done through libvirt pools; see [`probe_plan`] and
//!   `probe_directory`.
//! - Destination free disk: `available` of the destination pool on the probed directory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use virt::connect::Connect;
use virt::storage_vol::StorageVol;
use virt::sys;

use super::facts::{disks_from_domain_xml, DiskFacts, DiskSource, DomainRunState};
use super::job_stats::{self, HypervisorCpuQuery, NodeMemoryStats};
use super::storage::{self, xml_escape};
use super::{HostConnection, LibvirtError};
use crate::config::{Config, HostConfig};
use crate::inventory::storage::{classify_disk, Storage};
use crate::model::host_name::HostNameError;
use crate::model::HostName;
use crate::precheck::{
    run_all, BlockMigrationChoice, CpuCompareResult, DiskFact, DiskStorage, HostProblem,
    HypervisorInfo, InstanceState, JobInProgress, PrecheckFacts, PrecheckReport,
    SharedStorageProbe,
};

/// Everything the shared-storage probe creates (volumes, transient pools) is named with this
/// prefix, so a leftover says what it is and tests can look for leftovers.
pub const PROBE_NAME_PREFIX: &str = "ferry-probe-";

/// Why no facts could be gathered at all: without the instance there is nothing to check.
/// Problems with the destination are not errors; they are failed checks in the report.
#[derive(Debug, thiserror::Error)]
pub enum PrecheckError {
    #[error("the config lists no hosts; add [[hosts]] entries with a name and a libvirt uri")]
    NoHosts,
    #[error("source: {0}")]
    InvalidSourceName(HostNameError),
    #[error(
        "source {name}: unknown host; add it to the config as a [[hosts]] entry with its libvirt \
         uri, or pick a configured host ({})", .configured.join(", ")
    )]
    UnknownSource {
        name: String,
        configured: Vec<String>,
    },
    #[error("source {host}: unreachable, so {instance} cannot be read: {error}")]
    SourceUnreachable {
        host: String,
        instance: String,
        error: String,
    },
    #[error(
        "{instance}: not defined on {host}; check the name with `ferry instances`, or leave the \
         source out and ferry finds the host that runs it"
    )]
    InstanceNotOnSource { instance: String, host: String },
    #[error(
        "{instance}: no reachable host defines it (looked on {}){}; check the name with \
         `ferry instances`",
        .searched.join(", "),
        unreachable_note(.unreachable)
    )]
    InstanceNotFound {
        instance: String,
        searched: Vec<String>,
        unreachable: Vec<String>,
    },
    #[error(
        "{instance}: defined on several hosts ({}) and running on no single one of them; a \
         migration may be under way; name the source host",
        .placements.join(", ")
    )]
    InstanceOnSeveralHosts {
        instance: String,
        placements: Vec<String>,
    },
    #[error("{host}: reading {instance}: {error}")]
    ReadingInstance {
        host: String,
        instance: String,
        error: String,
    },
}

fn unreachable_note(unreachable: &[String]) -> String {
    if unreachable.is_empty() {
        String::new()
    } else {
        format!(
            "; not reachable, so not searched: {}",
            unreachable.join(", ")
        )
    }
}

/// One destination considered by [`pick_auto_destination`], with its full checklist.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationCandidate {
    pub host: String,
    pub facts: PrecheckFacts,
    pub report: PrecheckReport,
}

/// Every other configured host, checked as a destination, and the one picked.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoDestination {
    pub source_host: String,
    /// The passing candidate with the most free memory; None when no candidate passes.
    pub chosen: Option<String>,
    /// In config order, passing or not: the TUI shows every report.
    pub candidates: Vec<DestinationCandidate>,
}

/// Gathers the facts for live-migrating `instance` from `source` (None: the host that runs it)
/// to `destination` (as the operator typed it), then runs every check. Blocks; call it from a
/// worker thread.
pub fn precheck_live_migration(
    config: &Config,
    instance: &str,
    source: Option<&str>,
    destination: &str,
    block_migration: BlockMigrationChoice,
) -> Result<(PrecheckFacts, PrecheckReport), PrecheckError> {
    let facts = gather_precheck_facts(config, instance, source, destination, block_migration)?;
    let report = run_all(&facts);
    Ok((facts, report))
}

/// The facts alone, for callers that judge them later or record them.
pub fn gather_precheck_facts(
    config: &Config,
    instance: &str,
    source: Option<&str>,
    destination: &str,
    block_migration: BlockMigrationChoice,
) -> Result<PrecheckFacts, PrecheckError> {
    let session = Session::open(config, instance, source, Some(destination))?;
    Ok(session.facts_for(destination, block_migration))
}

/// Checks every other configured host as a destination and picks the one that passes with the
/// most free memory. Candidates are checked one after another: their probes use the same
/// directory on the source, where libvirt allows only one pool at a time.
pub fn pick_auto_destination(
    config: &Config,
    instance: &str,
    source: Option<&str>,
    block_migration: BlockMigrationChoice,
) -> Result<AutoDestination, PrecheckError> {
    let session = Session::open(config, instance, source, None)?;
    let candidates: Vec<DestinationCandidate> = config
        .hosts
        .iter()
        .filter(|host| host.name != session.source.name)
        .map(|host| {
            let facts = session.facts_for(host.name.as_str(), block_migration);
            let report = run_all(&facts);
            DestinationCandidate {
                host: host.name.to_string(),
                facts,
                report,
            }
        })
        .collect();
    let chosen = choose_auto_destination(&candidates).map(|index| candidates[index].host.clone());
    Ok(AutoDestination {
        source_host: session.source.name.to_string(),
        chosen,
        candidates,
    })
}

/// The passing candidate with the most free memory (unknown counts as none); the first in
/// config order on a tie.
pub fn choose_auto_destination(candidates: &[DestinationCandidate]) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (index, candidate) in candidates.iter().enumerate() {
        if !candidate.report.passed() {
            continue;
        }
        let free = candidate.facts.destination_free_memory_bytes.unwrap_or(0);
        if best.is_none_or(|(_, best_free)| free > best_free) {
            best = Some((index, free));
        }
    }
    best.map(|(index, _)| index)
}

/// The source side, read once, and connections to the hosts that may be destinations.
struct Session<'a> {
    config: &'a Config,
    timeout: Duration,
    instance: String,
    source: HostConfig,
    source_connection: HostConnection,
    source_reading: SourceReading,
    /// Connections opened up front; an Err keeps why the host could not be reached.
    connections: Vec<(HostConfig, Result<HostConnection, String>)>,
}

impl<'a> Session<'a> {
    /// `destination` None: open every host (automatic choice, or searching for the source).
    fn open(
        config: &'a Config,
        instance: &str,
        source: Option<&str>,
        destination: Option<&str>,
    ) -> Result<Session<'a>, PrecheckError> {
        if config.hosts.is_empty() {
            return Err(PrecheckError::NoHosts);
        }
        let timeout = config.call_timeout();
        let named_source = source
            .map(|name| configured_source(config, name))
            .transpose()?;
        // Source and destination are opened together, so a dead destination costs one
        // timeout in parallel rather than after the source.
        let to_open: Vec<HostConfig> = match (&named_source, destination) {
            (Some(source), Some(destination)) => {
                let mut hosts = vec![source.clone()];
                hosts.extend(
                    configured_host(config, destination)
                        .filter(|host| host.name != source.name)
                        .cloned(),
                );
                hosts
            }
            _ => config.hosts.clone(),
        };
        let connections = open_in_parallel(&to_open, timeout);
        let source = match named_source {
            Some(host) => host,
            None => locate_instance(&connections, instance, timeout)?,
        };
        let source_connection = connections
            .iter()
            .find(|(host, _)| host.name == source.name)
            .map(|(_, connection)| connection.clone())
            .expect("the source is among the hosts opened")
            .map_err(|error| PrecheckError::SourceUnreachable {
                host: source.name.to_string(),
                instance: instance.to_string(),
                error,
            })?;
        let owned_instance = instance.to_string();
        let prefixes = config.shared_storage_prefixes.clone();
        let source_reading = source_connection
            .call(format!("reading {instance}"), timeout, move |connect| {
                read_source(connect, &owned_instance, &prefixes)
            })
            .map_err(|error| PrecheckError::ReadingInstance {
                host: source.name.to_string(),
                instance: instance.to_string(),
                error: error.to_string(),
            })?
            .ok_or_else(|| PrecheckError::InstanceNotOnSource {
                instance: instance.to_string(),
                host: source.name.to_string(),
            })?;
        Ok(Session {
            config,
            timeout,
            instance: instance.to_string(),
            source,
            source_connection,
            source_reading,
            connections,
        })
    }

    fn connection_to(&self, host: &HostConfig) -> Result<HostConnection, String> {
        match self.connections.iter().find(|(h, _)| h.name == host.name) {
            Some((_, connection)) => connection.clone(),
            None => HostConnection::open(&host.uri, self.timeout).map_err(|e| e.to_string()),
        }
    }

    fn facts_for(&self, destination: &str, block_migration: BlockMigrationChoice) -> PrecheckFacts {
        let source_name = self.source.name.as_str();
        let same_host = destination.eq_ignore_ascii_case(source_name);
        let (connection, problem) = if HostName::parse(destination).is_err() {
            // Not a host name at all: never put it near a URI. The name check says why.
            (None, None)
        } else if same_host {
            (Some(self.source_connection.clone()), None)
        } else {
            match configured_host(self.config, destination) {
                None => (
                    None,
                    Some(HostProblem::NotConfigured {
                        configured: configured_names(self.config),
                    }),
                ),
                Some(host) => match self.connection_to(host) {
                    Ok(connection) => (Some(connection), None),
                    Err(error) => (None, Some(HostProblem::Unreachable { error })),
                },
            }
        };

        let reading = self.source_reading.clone();
        let destination_reading = match &connection {
            Some(connection) => read_destination(
                connection,
                destination,
                reading.cpu_query.clone(),
                self.timeout,
            ),
            None => DestinationReading::not_contacted(),
        };
        let plan = probe_plan(&reading.disks, reading.kernel.as_deref());
        let (shared_storage_probe, destination_free_disk_bytes) = match &connection {
            None => (
                SharedStorageProbe::Unknown {
                    reason: "the destination was not contacted".to_string(),
                },
                None,
            ),
            Some(_) if same_host => (
                SharedStorageProbe::Unknown {
                    reason: format!("{destination} is the source host; nothing to probe"),
                },
                None,
            ),
            Some(destination_connection) => probe_shared_storage(
                (&self.source_connection, source_name),
                (destination_connection, destination),
                &plan,
                self.timeout,
            ),
        };

        PrecheckFacts {
            instance_name: self.instance.clone(),
            instance_state: reading.state,
            instance_memory_bytes: reading.memory_bytes,
            disks: reading.disks,
            source_host: source_name.to_string(),
            source_host_up: true,
            destination_host: destination.to_string(),
            destination_host_up: connection.is_some(),
            destination_host_problem: problem,
            destination_free_memory_bytes: destination_reading.free_memory_bytes,
            source_hypervisor: reading.hypervisor,
            destination_hypervisor: destination_reading.hypervisor,
            cpu_compare: destination_reading.cpu,
            shared_storage_probe,
            destination_free_disk_bytes,
            block_migration,
            job_in_progress: reading.job_in_progress.map(|what| JobInProgress {
                host: source_name.to_string(),
                what,
            }),
        }
    }
}

fn configured_host<'c>(config: &'c Config, name: &str) -> Option<&'c HostConfig> {
    // Host names are DNS names: HV2 and hv2 are the same machine.
    config
        .hosts
        .iter()
        .find(|host| host.name.as_str().eq_ignore_ascii_case(name))
}

fn configured_names(config: &Config) -> Vec<String> {
    config.hosts.iter().map(|h| h.name.to_string()).collect()
}

fn configured_source(config: &Config, name: &str) -> Result<HostConfig, PrecheckError> {
    HostName::parse(name).map_err(PrecheckError::InvalidSourceName)?;
    configured_host(config, name)
        .cloned()
        .ok_or_else(|| PrecheckError::UnknownSource {
            name: name.to_string(),
            configured: configured_names(config),
        })
}

/// Opens every host at once; each open is bounded by `timeout` on its own worker.
fn open_in_parallel(
    hosts: &[HostConfig],
    timeout: Duration,
) -> Vec<(HostConfig, Result<HostConnection, String>)> {
    thread::scope(|scope| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|host| {
                scope.spawn(move || {
                    HostConnection::open(&host.uri, timeout).map_err(|e| e.to_string())
                })
            })
            .collect();
        hosts
            .iter()
            .cloned()
            .zip(handles.into_iter().map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err("opening the connection panicked".to_string()))
            }))
            .collect()
    })
}

/// Asks every reachable host whether it defines the instance, then picks the source.
fn locate_instance(
    connections: &[(HostConfig, Result<HostConnection, String>)],
    instance: &str,
    timeout: Duration,
) -> Result<HostConfig, PrecheckError> {
    let answers: Vec<(HostConfig, Result<Option<DomainRunState>, String>)> =
        thread::scope(|scope| {
            let handles: Vec<_> = connections
                .iter()
                .map(|(_, connection)| {
                    let name = instance.to_string();
                    let connection = connection.clone();
                    scope.spawn(move || {
                        let connection = connection?;
                        connection
                            .call(format!("looking up {name}"), timeout, move |connect| {
                                domain_state_if_defined(connect, &name)
                            })
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            connections
                .iter()
                .map(|(host, _)| host.clone())
                .zip(handles.into_iter().map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|_| Err("looking up the instance panicked".to_string()))
                }))
                .collect()
        });
    let mut placements = Vec::new();
    let mut searched = Vec::new();
    let mut unreachable = Vec::new();
    for (host, answer) in &answers {
        match answer {
            Ok(found) => {
                searched.push(host.name.to_string());
                if let Some(state) = found {
                    placements.push((host.name.to_string(), *state));
                }
            }
            Err(_) => unreachable.push(host.name.to_string()),
        }
    }
    let chosen = choose_source(instance, &placements, &searched, &unreachable)?;
    let chosen_name = &placements[chosen].0;
    Ok(answers
        .into_iter()
        .map(|(host, _)| host)
        .find(|host| host.name.as_str() == chosen_name)
        .expect("the chosen host answered"))
}

fn domain_state_if_defined(
    connect: &Connect,
    name: &str,
) -> Result<Option<DomainRunState>, LibvirtError> {
    match connect.lookup_domain_by_name(name) {
        Ok(domain) => {
            let info = domain
                .info()
                .map_err(|e| LibvirtError::call(format!("reading the state of {name}"), e))?;
            Ok(Some(DomainRunState::from_libvirt(info.state)))
        }
        Err(e) if e.code().to_raw() == sys::VIR_ERR_NO_DOMAIN => Ok(None),
        Err(e) => Err(LibvirtError::call(format!("looking up {name}"), e)),
    }
}

/// Which placement is the source: the only host defining the instance, or else the only one
/// running it (during a migration the destination holds a paused copy; after a failed one a
/// shut-off definition may be left behind).
pub fn choose_source(
    instance: &str,
    placements: &[(String, DomainRunState)],
    searched: &[String],
    unreachable: &[String],
) -> Result<usize, PrecheckError> {
    match placements {
        [] => Err(PrecheckError::InstanceNotFound {
            instance: instance.to_string(),
            searched: searched.to_vec(),
            unreachable: unreachable.to_vec(),
        }),
        [_] => Ok(0),
        _ => {
            let running: Vec<usize> = placements
                .iter()
                .enumerate()
                .filter(|(_, (_, state))| *state == DomainRunState::Running)
                .map(|(index, _)| index)
                .collect();
            match running.as_slice() {
                [only] => Ok(*only),
                _ => Err(PrecheckError::InstanceOnSeveralHosts {
                    instance: instance.to_string(),
                    placements: placements
                        .iter()
                        .map(|(host, state)| format!("{host}: {}", state.as_virsh_str()))
                        .collect(),
                }),
            }
        }
    }
}

/// What the source tells about the instance.
#[derive(Debug, Clone)]
struct SourceReading {
    state: InstanceState,
    memory_bytes: u64,
    disks: Vec<DiskFact>,
    kernel: Option<String>,
    /// What to ask the destination about the guest's CPU, or why nothing is asked.
    cpu_query: Result<HypervisorCpuQuery, String>,
    hypervisor: Option<HypervisorInfo>,
    /// The job libvirt runs on the domain now, by operation ("migration"), if any.
    job_in_progress: Option<String>,
}

/// `Ok(None)` when the host does not define the instance.
fn read_source(
    connect: &Connect,
    instance: &str,
    shared_prefixes: &[String],
) -> Result<Option<SourceReading>, LibvirtError> {
    let domain = match connect.lookup_domain_by_name(instance) {
        Ok(domain) => domain,
        Err(e) if e.code().to_raw() == sys::VIR_ERR_NO_DOMAIN => return Ok(None),
        Err(e) => return Err(LibvirtError::call(format!("looking up {instance}"), e)),
    };
    let info = domain
        .info()
        .map_err(|e| LibvirtError::call("reading domain info", e))?;
    // The live XML of a running guest (its CPU as QEMU runs it), the persistent one otherwise.
    let xml = domain
        .xml_desc(0)
        .map_err(|e| LibvirtError::call("reading the domain XML", e))?;
    let mut disks = Vec::new();
    for disk in disks_from_domain_xml(&xml) {
        let storage = classify_disk(&disk.source, shared_prefixes);
        let needs_size = matches!(
            disk.source,
            DiskSource::Path { .. } | DiskSource::Volume { .. }
        );
        let size_bytes = if needs_size {
            match domain.block_info(&disk.target, 0) {
                Ok(block) => block.allocation,
                // Only a disk that may be copied must have a known size; an ISO that went
                // missing or a shared disk costs the destination nothing.
                Err(e) if storage == Storage::Local && !disk.read_only => {
                    return Err(LibvirtError::call(
                        format!("reading the allocation of disk {}", disk.target),
                        e,
                    ))
                }
                Err(_) => 0,
            }
        } else {
            0
        };
        disks.push(disk_fact(&disk, storage, size_bytes));
    }
    let platform = guest_platform(&xml);
    let source_host_cpu = match (&platform.cpu, platform.virt_type.as_deref()) {
        (GuestCpu::NoModel { .. }, Some("kvm")) => connect
            .capabilities()
            .ok()
            .and_then(|caps| host_cpu_xml(&caps)),
        _ => None,
    };
    let job_in_progress = if domain.is_active().unwrap_or(false) {
        job_in_progress(&domain)?
    } else {
        None
    };
    Ok(Some(SourceReading {
        job_in_progress,
        state: instance_state(DomainRunState::from_libvirt(info.state)),
        memory_bytes: info.max_mem.saturating_mul(1024),
        disks,
        kernel: platform.kernel.clone(),
        cpu_query: cpu_comparison(&platform, source_host_cpu.as_deref()),
        hypervisor: hypervisor_info(connect).ok(),
    }))
}

/// The job running on an active domain, in the operator's words ("a migration job"); None
/// when it has none. A job that ended (completed, failed) is not running.
pub fn job_in_progress(domain: &virt::domain::Domain) -> Result<Option<String>, LibvirtError> {
    use crate::model::job::JobOperation;
    let Some(job) = job_stats::job_stats(domain, false)? else {
        return Ok(None);
    };
    if !job.job_type.is_some_and(|t| t.is_running()) {
        return Ok(None);
    }
    Ok(Some(
        match job.operation {
            Some(JobOperation::MigrationOut) => "a migration job",
            Some(JobOperation::MigrationIn) => "an incoming migration job",
            Some(JobOperation::Save) => "a save job",
            Some(JobOperation::Restore) => "a restore job",
            Some(JobOperation::Snapshot | JobOperation::SnapshotRevert) => "a snapshot job",
            Some(JobOperation::SnapshotDelete) => "a snapshot deletion job",
            Some(JobOperation::Dump) => "a dump job",
            Some(JobOperation::Backup) => "a backup job",
            Some(JobOperation::Start | JobOperation::Unknown) | None => "a job",
        }
        .to_string(),
    ))
}

/// The operator's words for a domain state, as the checks expect them.
pub fn instance_state(state: DomainRunState) -> InstanceState {
    match state {
        // "Blocked" is a running guest waiting on I/O or idle.
        DomainRunState::Running | DomainRunState::Blocked => InstanceState::Running,
        DomainRunState::Paused => InstanceState::Paused,
        DomainRunState::ShutOff => InstanceState::ShutOff,
        other => InstanceState::Other(other.as_virsh_str().to_string()),
    }
}

/// One disk as the checks see it. Network disks are named `protocol:name`, pool volumes
/// `pool/volume`: only host paths start with `/`.
pub fn disk_fact(disk: &DiskFacts, storage: Storage, size_bytes: u64) -> DiskFact {
    let source = match &disk.source {
        DiskSource::Path { path } => Some(path.clone()),
        DiskSource::Network { protocol, name } => Some(format!("{protocol}:{name}")),
        DiskSource::Volume { pool, volume } => Some(format!("{pool}/{volume}")),
        DiskSource::None => None,
    };
    DiskFact {
        target: disk.target.clone(),
        source,
        storage: match storage {
            Storage::Shared => DiskStorage::Shared,
            // One disk is never Mixed; an empty drive has no source, so nothing is copied.
            Storage::Local | Storage::Mixed | Storage::NoMedium => DiskStorage::Local,
        },
        size_bytes,
        read_only: disk.read_only,
    }
}

fn hypervisor_info(connect: &Connect) -> Result<HypervisorInfo, LibvirtError> {
    Ok(HypervisorInfo {
        hypervisor_type: connect
            .driver_type()
            .map_err(|e| LibvirtError::call("reading hypervisor type", e))?,
        hypervisor_version: u64::from(
            connect
                .hyp_version()
                .map_err(|e| LibvirtError::call("reading hypervisor version", e))?,
        ),
    })
}

/// Free memory of the whole destination host.
///
/// `virNodeGetFreeMemory` adds up the free memory of each NUMA cell as sysfs reports it. On
/// the lab's machine (a Firecracker VM) sysfs's node0 covers 15 of the 24 GiB the kernel
/// manages, so that sum undercounts by a third, while a guest without NUMA pinning may use
/// memory anywhere. So the host-wide MemFree from `virNodeGetMemoryStats` for all cells comes
/// first, and the cell sum only where those statistics are missing. Page cache is not counted
/// as free: it includes tmpfs and shared memory, which cannot be dropped, and an over-committed
/// destination pays with OOM-killed guests, so a refusal the operator can argue with beats a
/// guess.
pub fn free_memory_bytes(connect: &Connect) -> Result<u64, LibvirtError> {
    if let Ok(NodeMemoryStats {
        free_bytes: Some(free_bytes),
        ..
    }) = job_stats::node_memory_stats(connect)
    {
        return Ok(free_bytes);
    }
    connect
        .free_memory()
        .map_err(|e| LibvirtError::call("reading free memory", e))
}

/// What the destination tells.
struct DestinationReading {
    hypervisor: Option<HypervisorInfo>,
    free_memory_bytes: Option<u64>,
    cpu: CpuCompareResult,
}

impl DestinationReading {
    fn not_contacted() -> DestinationReading {
        DestinationReading {
            hypervisor: None,
            free_memory_bytes: None,
            cpu: CpuCompareResult::Unknown {
                reason: "the destination was not contacted".to_string(),
            },
        }
    }
}

/// One call on the destination. Each fact fails on its own: a host whose memory statistics
/// fail can still compare CPUs.
fn read_destination(
    connection: &HostConnection,
    destination: &str,
    cpu_query: Result<HypervisorCpuQuery, String>,
    timeout: Duration,
) -> DestinationReading {
    let host = destination.to_string();
    let reading = connection.call(
        "reading hypervisor, free memory and CPU compatibility",
        timeout,
        move |connect| {
            let hypervisor = hypervisor_info(connect);
            let free_memory = free_memory_bytes(connect);
            let cpu = match cpu_query {
                Err(reason) => CpuCompareResult::Unknown { reason },
                Ok(query) => cpu_compare_result(
                    &host,
                    job_stats::compare_hypervisor_cpu(connect, &query)
                        .map_err(|e| (e.code().to_raw(), e.message().to_string())),
                ),
            };
            for (what, error) in [
                ("hypervisor", hypervisor.as_ref().err()),
                ("free memory", free_memory.as_ref().err()),
            ] {
                if let Some(error) = error {
                    tracing::warn!("{host}: precheck could not read {what}: {error}");
                }
            }
            Ok(DestinationReading {
                hypervisor: hypervisor.ok(),
                free_memory_bytes: free_memory.ok(),
                cpu,
            })
        },
    );
    reading.unwrap_or_else(|error| DestinationReading {
        hypervisor: None,
        free_memory_bytes: None,
        cpu: CpuCompareResult::Unknown {
            reason: error.to_string(),
        },
    })
}

/// What the domain XML says about the hypervisor the guest needs and the CPU it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPlatform {
    /// `<domain type>`: `kvm`, or `qemu` for TCG (QEMU emulating the CPU in software).
    pub virt_type: Option<String>,
    pub arch: Option<String>,
    pub machine: Option<String>,
    pub emulator: Option<String>,
    /// `<os><kernel>` of a direct kernel boot: a host file the guest needs on either host.
    pub kernel: Option<String>,
    pub cpu: GuestCpu,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestCpu {
    /// A named model: custom mode, or host-model as a running guest's XML shows it, expanded
    /// into a model and features. `cpu_xml` is a custom-mode definition ready to compare.
    Named { cpu_xml: String },
    /// Nothing named to compare: `host-passthrough` or `maximum`, a host-model not expanded
    /// (an inactive guest), or no `<cpu>` element (`mode` is then "none").
    NoModel { mode: String },
}

/// Reads the guest's platform from its domain XML; malformed XML gives no model and no
/// platform details, which the CPU check reports as not made.
pub fn guest_platform(domain_xml: &str) -> GuestPlatform {
    let mut platform = GuestPlatform {
        virt_type: None,
        arch: None,
        machine: None,
        emulator: None,
        kernel: None,
        cpu: GuestCpu::NoModel {
            mode: "none".into(),
        },
    };
    let Ok(document) = roxmltree::Document::parse(domain_xml) else {
        return platform;
    };
    let domain = document.root_element();
    platform.virt_type = domain.attribute("type").map(str::to_string);
    if let Some(os) = child(domain, "os") {
        let os_type = child(os, "type");
        platform.arch = os_type
            .and_then(|n| n.attribute("arch"))
            .map(str::to_string);
        platform.machine = os_type
            .and_then(|n| n.attribute("machine"))
            .map(str::to_string);
        platform.kernel = text(child(os, "kernel"));
    }
    platform.emulator = text(child(domain, "devices").and_then(|d| child(d, "emulator")));
    if let Some(cpu) = child(domain, "cpu") {
        let mode = cpu.attribute("mode").unwrap_or("custom");
        let has_model = text(child(cpu, "model")).is_some();
        platform.cpu = match mode {
            "custom" | "host-model" if has_model => GuestCpu::Named {
                cpu_xml: named_cpu_xml(domain_xml, cpu),
            },
            _ => GuestCpu::NoModel {
                mode: mode.to_string(),
            },
        };
    }
    platform
}

fn child<'a, 'input>(
    parent: roxmltree::Node<'a, 'input>,
    tag: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    parent
        .children()
        .find(|n| n.is_element() && n.has_tag_name(tag))
}

/// The trimmed text of an element, None when absent or blank.
fn text(node: Option<roxmltree::Node<'_, '_>>) -> Option<String> {
    node.and_then(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// A custom-mode `<cpu>` with the guest's model, vendor, topology and features, copied as
/// written. Mode becomes custom because libvirt treats a host-model CPU as matching any host,
/// and NUMA cells are left out: they describe guest memory, not the CPU.
fn named_cpu_xml(domain_xml: &str, cpu: roxmltree::Node<'_, '_>) -> String {
    let match_mode = cpu.attribute("match").unwrap_or("exact");
    let mut xml = format!("<cpu mode='custom' match='{}'>", xml_escape(match_mode));
    for child in cpu.children().filter(|n| n.is_element()) {
        if matches!(
            child.tag_name().name(),
            "model" | "vendor" | "topology" | "feature"
        ) {
            xml.push_str(&domain_xml[child.range()]);
        }
    }
    xml.push_str("</cpu>");
    xml
}

/// `<host><cpu>` of a capabilities XML, as written: libvirt's CPU comparisons accept a host
/// CPU definition as well as a guest one.
pub fn host_cpu_xml(capabilities_xml: &str) -> Option<String> {
    let document = roxmltree::Document::parse(capabilities_xml).ok()?;
    let host = document
        .root_element()
        .children()
        .find(|n| n.has_tag_name("host"))?;
    let cpu = host.children().find(|n| n.has_tag_name("cpu"))?;
    Some(capabilities_xml[cpu.range()].to_string())
}

/// What to ask the destination's `virConnectCompareHypervisorCPU`, following Nova's
/// `check_can_live_migrate_destination` / `_compare_cpu`:
/// - A named guest CPU is compared as it is, for the guest's virt type, architecture, machine
///   and emulator, so the destination answers for the hypervisor that would run it.
/// - No named model under KVM (host-passthrough, or no `<cpu>`): the guest sees the source
///   host's CPU, so that CPU is compared, as Nova compares the source's `cpu_info`.
/// - No named model under TCG: nothing to compare; the emulated CPU is QEMU's choice, not the
///   host's. Nova skips the comparison for every non-KVM guest because its older
///   `compareCPU` checked the physical CPU, which TCG never uses. `compareHypervisorCPU` asks
///   the destination's QEMU what it can emulate for this virt type instead, so ferry does
///   compare named CPUs of TCG guests (the lab's guests are such): an older QEMU that cannot
///   emulate a model or a feature is refused before the migration rather than during it.
pub fn cpu_comparison(
    platform: &GuestPlatform,
    source_host_cpu_xml: Option<&str>,
) -> Result<HypervisorCpuQuery, String> {
    let query = |cpu_xml: String| HypervisorCpuQuery {
        emulator: platform.emulator.clone(),
        arch: platform.arch.clone(),
        machine: platform.machine.clone(),
        virt_type: platform.virt_type.clone(),
        cpu_xml,
    };
    match (&platform.cpu, platform.virt_type.as_deref()) {
        (GuestCpu::Named { cpu_xml }, _) => Ok(query(cpu_xml.clone())),
        (GuestCpu::NoModel { .. }, Some("kvm")) => match source_host_cpu_xml {
            Some(host_cpu) => Ok(query(host_cpu.to_string())),
            None => Err(
                "the guest runs the source host's CPU, and the source's capabilities did not \
                 describe it"
                    .to_string(),
            ),
        },
        (GuestCpu::NoModel { mode }, virt_type) => Err(format!(
            "guest CPU mode {mode} under {} names no model: the CPU is emulated, not the host's, \
             so there is nothing to compare (libvirt still checks it when the guest arrives)",
            match virt_type {
                Some("qemu") => "TCG (domain type qemu)".to_string(),
                Some(other) => format!("domain type {other}"),
                None => "an unknown domain type".to_string(),
            }
        )),
    }
}

/// libvirt's answer, as `(error code, message)` on failure, as a check result. As in Nova,
/// only a hypervisor that cannot compare at all leaves the result unknown; any other error
/// means libvirt could not accept this CPU there.
pub fn cpu_compare_result(
    destination: &str,
    outcome: Result<sys::virCPUCompareResult, (sys::virErrorNumber, String)>,
) -> CpuCompareResult {
    match outcome {
        Ok(sys::VIR_CPU_COMPARE_IDENTICAL) => CpuCompareResult::Identical,
        Ok(sys::VIR_CPU_COMPARE_SUPERSET) => CpuCompareResult::Superset,
        Ok(sys::VIR_CPU_COMPARE_INCOMPATIBLE) => CpuCompareResult::Incompatible {
            detail: "libvirt reports the CPU incompatible".to_string(),
        },
        Ok(other) => CpuCompareResult::Unknown {
            reason: format!("libvirt on {destination} gave an unknown comparison result {other}"),
        },
        Err((code, message))
            if code == sys::VIR_ERR_NO_SUPPORT || code == sys::VIR_ERR_OPERATION_UNSUPPORTED =>
        {
            CpuCompareResult::Unknown {
                reason: format!("libvirt on {destination} cannot compare CPUs: {message}"),
            }
        }
        Err((code, message)) if code == sys::VIR_ERR_CPU_INCOMPATIBLE => {
            CpuCompareResult::Incompatible { detail: message }
        }
        Err((_, message)) => CpuCompareResult::Incompatible {
            detail: format!("libvirt could not check the guest's CPU: {message}"),
        },
    }
}

/// Where the shared-storage probe looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlan {
    /// Directories to probe, in the order the guest's disks name them.
    pub directories: Vec<String>,
    /// Local writable disks no directory probe speaks for (block devices, pool volumes), as
    /// `target (source)`.
    pub unprobeable: Vec<String>,
}

/// Nova probes the instance directory. A libvirt guest has no single one, so ferry probes what
/// the answer decides: the directories of the writable disks classified local, since "shared"
/// means they need not be copied. With none of those, the probe is informative only: the
/// directory of the first writable file disk, or else of the kernel of a direct kernel boot
/// (which the destination must see too). Block devices (`/dev/…`) and pool volumes have no
/// directory a volume could be created in, so they are listed as unprobeable.
pub fn probe_plan(disks: &[DiskFact], kernel: Option<&str>) -> ProbePlan {
    let directory_of = |source: &str| {
        if !source.starts_with('/') || source.starts_with("/dev/") {
            return None;
        }
        std::path::Path::new(source)
            .parent()
            .map(|dir| dir.display().to_string())
    };
    let writable: Vec<&DiskFact> = disks
        .iter()
        .filter(|d| !d.read_only && d.source.is_some())
        .collect();
    let local: Vec<&DiskFact> = writable
        .iter()
        .copied()
        .filter(|d| d.storage == DiskStorage::Local)
        .collect();
    let mut plan = ProbePlan {
        directories: Vec::new(),
        unprobeable: Vec::new(),
    };
    if local.is_empty() {
        let informative = writable
            .iter()
            .find_map(|d| d.source.as_deref().and_then(directory_of))
            .or_else(|| kernel.and_then(directory_of));
        plan.directories.extend(informative);
        return plan;
    }
    for disk in local {
        let source = disk.source.as_deref().unwrap_or_default();
        match directory_of(source) {
            Some(directory) if !plan.directories.contains(&directory) => {
                plan.directories.push(directory)
            }
            Some(_) => {}
            None => plan.unprobeable.push(format!("{} ({source})", disk.target)),
        }
    }
    plan
}

/// One verdict from the probes of several directories: any directory not shared means the
/// disks there must travel; a disk nobody could probe keeps the verdict from being "shared".
pub fn combine_probes(
    results: Vec<SharedStorageProbe>,
    unprobeable: &[String],
) -> SharedStorageProbe {
    if results.contains(&SharedStorageProbe::NotShared) {
        return SharedStorageProbe::NotShared;
    }
    if let Some(unknown) = results
        .iter()
        .find(|r| matches!(r, SharedStorageProbe::Unknown { .. }))
    {
        return unknown.clone();
    }
    if !unprobeable.is_empty() {
        return SharedStorageProbe::Unknown {
            reason: format!(
                "{} cannot be probed: the probe tests directories, not block devices or pool volumes",
                unprobeable.join(", ")
            ),
        };
    }
    if results.is_empty() {
        return SharedStorageProbe::Unknown {
            reason: "the guest has no file-backed disk or kernel file to probe".to_string(),
        };
    }
    SharedStorageProbe::Shared
}

/// Runs the probe for every planned directory, one after another. Returns the verdict and the
/// destination's free space (the least over the probed directories).
fn probe_shared_storage(
    source: (&HostConnection, &str),
    destination: (&HostConnection, &str),
    plan: &ProbePlan,
    timeout: Duration,
) -> (SharedStorageProbe, Option<u64>) {
    let mut results = Vec::new();
    let mut free_bytes: Option<u64> = None;
    for directory in &plan.directories {
        let (result, available) = probe_directory(source, destination, directory, timeout);
        results.push(result);
        if let Some(available) = available {
            free_bytes = Some(free_bytes.map_or(available, |free| free.min(available)));
        }
    }
    (combine_probes(results, &plan.unprobeable), free_bytes)
}

/// A name no other probe, in this process or another, will use.
fn unique_probe_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{:x}-{:x}-{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn is_no_volume(error: &virt::error::Error) -> bool {
    error.code().to_raw() == sys::VIR_ERR_NO_STORAGE_VOL
}

/// The probe volume placed on the destination.
struct PlacedProbe {
    pool_name: String,
    created_transient: bool,
    available_bytes: Option<u64>,
}

/// Nova's probe, through libvirt only: an empty volume is created in `directory` on the
/// destination (in the pool on that directory, or a transient one), the source refreshes its
/// pool on the same directory and looks for it by name, then the volume is deleted and any
/// transient pool destroyed on both sides, whatever happened in between. Found means the two
/// hosts see the same directory. libvirt allows one pool per directory, so two probes of a
/// directory no pool serves, run at once on one host, collide: the second reports Unknown with
/// libvirt's "storage source conflict" and copies disks to be safe.
fn probe_directory(
    (source, source_name): (&HostConnection, &str),
    (destination, destination_name): (&HostConnection, &str),
    directory: &str,
    timeout: Duration,
) -> (SharedStorageProbe, Option<u64>) {
    let suffix = unique_probe_suffix();
    let volume = format!("{PROBE_NAME_PREFIX}{suffix}.probe");
    let destination_pool = format!("{PROBE_NAME_PREFIX}pool-{suffix}");
    let source_pool = format!("{PROBE_NAME_PREFIX}pool-{suffix}-source");

    let placed = {
        let (directory, volume, pool_name) = (
            directory.to_string(),
            volume.clone(),
            destination_pool.clone(),
        );
        destination.call(
            format!("creating probe volume {volume} in {directory}"),
            timeout,
            move |connect| {
                let opened = storage::open_pool_for_directory(connect, &directory, &pool_name)?;
                // A pool's available space is as of its last refresh.
                let _ = opened.pool.refresh(0);
                let available_bytes = opened.pool.info().ok().map(|info| info.available);
                let created =
                    StorageVol::create_xml(&opened.pool, &storage::probe_volume_xml(&volume), 0);
                if let Err(e) = created {
                    if opened.created_transient {
                        let _ = opened.pool.destroy();
                    }
                    return Err(LibvirtError::call(
                        format!("creating probe volume {volume}"),
                        e,
                    ));
                }
                Ok(PlacedProbe {
                    pool_name: opened.name,
                    created_transient: opened.created_transient,
                    available_bytes,
                })
            },
        )
    };
    let placed = match placed {
        Ok(placed) => placed,
        Err(error) => {
            if matches!(error, LibvirtError::Timeout { .. }) {
                // The call may still complete after we stopped waiting; try to undo it.
                remove_probe_after_timeout(
                    destination,
                    directory,
                    &volume,
                    &destination_pool,
                    timeout,
                );
            }
            return (
                SharedStorageProbe::Unknown {
                    reason: format!("{destination_name}: {error}"),
                },
                None,
            );
        }
    };

    let seen = {
        let (directory, volume, pool_name) =
            (directory.to_string(), volume.clone(), source_pool.clone());
        source.call(
            format!("looking for probe volume {volume} in {directory}"),
            timeout,
            move |connect| {
                let opened = storage::open_pool_for_directory(connect, &directory, &pool_name)?;
                let found = opened
                    .pool
                    .refresh(0)
                    .map_err(|e| LibvirtError::call(format!("refreshing pool {}", opened.name), e))
                    .and_then(|()| match opened.pool.lookup_storage_vol_by_name(&volume) {
                        Ok(_) => Ok(true),
                        Err(e) if is_no_volume(&e) => Ok(false),
                        Err(e) => Err(LibvirtError::call(format!("looking up {volume}"), e)),
                    });
                if opened.created_transient {
                    let _ = opened.pool.destroy();
                }
                found.map(|found| (found, (!opened.created_transient).then_some(opened.name)))
            },
        )
    };

    let cleanup = {
        let (volume, pool_name, transient) = (
            volume.clone(),
            placed.pool_name.clone(),
            placed.created_transient,
        );
        destination.call(
            format!("deleting probe volume {volume}"),
            timeout,
            move |connect| {
                let pool = connect
                    .lookup_storage_pool_by_name(&pool_name)
                    .map_err(|e| LibvirtError::call(format!("opening pool {pool_name}"), e))?;
                let deleted = match pool.lookup_storage_vol_by_name(&volume) {
                    Ok(probe) => probe
                        .delete(0)
                        .map_err(|e| LibvirtError::call(format!("deleting {volume}"), e)),
                    Err(e) if is_no_volume(&e) => Ok(()),
                    Err(e) => Err(LibvirtError::call(format!("looking up {volume}"), e)),
                };
                // Destroying a transient pool removes its definition, not its files: the
                // volume is deleted first.
                if transient {
                    let _ = pool.destroy();
                }
                deleted
            },
        )
    };
    if let Err(error) = &cleanup {
        tracing::warn!(
            "{destination_name}: shared-storage probe volume {volume} may be left in {directory}: {error}; delete it by hand"
        );
    }

    let result = match seen {
        Ok((found, persistent_pool)) => {
            if found {
                if let Some(pool_name) = persistent_pool {
                    // The source's own pool listed the probe volume; forget it again now that
                    // the file is gone, so inventories do not show it.
                    let _ = source.call(
                        format!("refreshing pool {pool_name}"),
                        timeout,
                        move |connect| {
                            if let Ok(pool) = connect.lookup_storage_pool_by_name(&pool_name) {
                                let _ = pool.refresh(0);
                            }
                            Ok(())
                        },
                    );
                }
                SharedStorageProbe::Shared
            } else {
                SharedStorageProbe::NotShared
            }
        }
        Err(error) => SharedStorageProbe::Unknown {
            reason: format!("{source_name}: {error}"),
        },
    };
    (result, placed.available_bytes)
}

/// Best effort after a timed-out placement: the volume by its path, and the transient pool by
/// its name, if they appeared after all.
fn remove_probe_after_timeout(
    destination: &HostConnection,
    directory: &str,
    volume: &str,
    transient_pool: &str,
    timeout: Duration,
) {
    let path = format!("{}/{volume}", directory.trim_end_matches('/'));
    let transient_pool = transient_pool.to_string();
    let outcome = destination.call(
        format!("deleting probe volume {path}"),
        timeout,
        move |connect| {
            if let Ok(probe) = connect.lookup_storage_vol_by_path(&path) {
                let _ = probe.delete(0);
            }
            if let Ok(pool) = connect.lookup_storage_pool_by_name(&transient_pool) {
                let _ = pool.destroy();
            }
            Ok(())
        },
    );
    if let Err(error) = outcome {
        tracing::warn!("shared-storage probe after a timeout: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::units::MIB;

    const LAB_DISK_GUEST_XML: &str = r#"<domain type='qemu' id='2'>
  <name>disk</name>
  <memory unit='KiB'>262144</memory>
  <os>
    <type arch='x86_64' machine='pc-i440fx-10.0'>hvm</type>
    <kernel>/var/lib/ferry-lab/shared/guest/vmlinuz</kernel>
    <initrd>/var/lib/ferry-lab/shared/guest/initrd.cpio</initrd>
  </os>
  <cpu mode='custom' match='exact' check='full'>
    <model fallback='forbid'>qemu64</model>
    <feature policy='require' name='hypervisor'/>
    <feature policy='require' name='lahf_lm'/>
    <numa><cell id='0' cpus='0' memory='262144' unit='KiB'/></numa>
  </cpu>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/disk-data.qcow2' index='1'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
  </devices>
</domain>"#;

    fn disk(target: &str, source: Option<&str>, storage: DiskStorage, read_only: bool) -> DiskFact {
        DiskFact {
            target: target.into(),
            source: source.map(str::to_string),
            storage,
            size_bytes: 8 * MIB,
            read_only,
        }
    }

    #[test]
    fn a_named_cpu_is_taken_from_the_domain_xml_without_its_numa_cells() {
        let platform = guest_platform(LAB_DISK_GUEST_XML);
        assert_eq!(platform.virt_type.as_deref(), Some("qemu"));
        assert_eq!(platform.arch.as_deref(), Some("x86_64"));
        assert_eq!(platform.machine.as_deref(), Some("pc-i440fx-10.0"));
        assert_eq!(
            platform.emulator.as_deref(),
            Some("/usr/bin/qemu-system-x86_64")
        );
        assert_eq!(
            platform.kernel.as_deref(),
            Some("/var/lib/ferry-lab/shared/guest/vmlinuz")
        );
        let GuestCpu::Named { cpu_xml } = &platform.cpu else {
            panic!("{:?}", platform.cpu);
        };
        assert_eq!(
            cpu_xml,
            "<cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model>\
             <feature policy='require' name='hypervisor'/><feature policy='require' name='lahf_lm'/></cpu>"
        );
        let query = cpu_comparison(&platform, None).expect("a named CPU is compared");
        assert_eq!(query.virt_type.as_deref(), Some("qemu"));
        assert_eq!(&query.cpu_xml, cpu_xml);
    }

    #[test]
    fn an_expanded_host_model_is_compared_as_a_custom_cpu() {
        let xml = "<domain type='kvm'><cpu mode='host-model' check='partial'>\
                   <model fallback='forbid'>Skylake-Client-IBRS</model><vendor>Intel</vendor>\
                   <topology sockets='1' cores='2' threads='1'/>\
                   <feature policy='require' name='ss'/></cpu></domain>";
        let GuestCpu::Named { cpu_xml } = guest_platform(xml).cpu else {
            panic!("expanded host-model has a model");
        };
        assert!(cpu_xml.starts_with("<cpu mode='custom' match='exact'>"));
        assert!(cpu_xml.contains("<vendor>Intel</vendor>"));
        assert!(cpu_xml.contains("<topology sockets='1' cores='2' threads='1'/>"));
    }

    #[test]
    fn without_a_model_kvm_compares_the_source_host_cpu_and_tcg_does_not_compare() {
        let capabilities = "<capabilities><host><uuid>u</uuid><cpu><arch>x86_64</arch>\
                            <model>Skylake-Client-IBRS</model><vendor>Intel</vendor>\
                            <feature name='ss'/></cpu></host></capabilities>";
        let host_cpu = host_cpu_xml(capabilities).expect("host cpu");
        assert!(host_cpu.starts_with("<cpu><arch>x86_64</arch>") && host_cpu.ends_with("</cpu>"));

        let passthrough = guest_platform(
            "<domain type='kvm'><os><type arch='x86_64'>hvm</type></os>\
             <cpu mode='host-passthrough' check='none'/></domain>",
        );
        assert_eq!(
            passthrough.cpu,
            GuestCpu::NoModel {
                mode: "host-passthrough".into()
            }
        );
        let query = cpu_comparison(&passthrough, Some(&host_cpu)).expect("compared");
        assert_eq!(query.cpu_xml, host_cpu);
        assert_eq!(query.virt_type.as_deref(), Some("kvm"));
        assert!(cpu_comparison(&passthrough, None)
            .unwrap_err()
            .contains("source's capabilities"));

        let tcg_without_cpu = guest_platform("<domain type='qemu'><name>g</name></domain>");
        let reason = cpu_comparison(&tcg_without_cpu, Some(&host_cpu)).unwrap_err();
        assert!(
            reason.contains("mode none under TCG") && reason.contains("nothing to compare"),
            "{reason}"
        );
        assert_eq!(
            guest_platform("<domain").cpu,
            GuestCpu::NoModel {
                mode: "none".into()
            }
        );
    }

    #[test]
    fn libvirt_answers_map_to_check_results() {
        assert_eq!(
            cpu_compare_result("hv2", Ok(sys::VIR_CPU_COMPARE_SUPERSET)),
            CpuCompareResult::Superset
        );
        assert_eq!(
            cpu_compare_result("hv2", Ok(sys::VIR_CPU_COMPARE_IDENTICAL)),
            CpuCompareResult::Identical
        );
        let missing = "the CPU is incompatible with host CPU: Host CPU does not provide required features: avx512f";
        assert_eq!(
            cpu_compare_result("hv2", Err((sys::VIR_ERR_CPU_INCOMPATIBLE, missing.into()))),
            CpuCompareResult::Incompatible {
                detail: missing.into()
            }
        );
        assert!(matches!(
            cpu_compare_result("hv2", Err((sys::VIR_ERR_NO_SUPPORT, "this function is not supported".into()))),
            CpuCompareResult::Unknown { reason } if reason.contains("hv2 cannot compare CPUs")
        ));
        assert!(matches!(
            cpu_compare_result("hv2", Err((sys::VIR_ERR_INTERNAL_ERROR, "unknown CPU model Foo".into()))),
            CpuCompareResult::Incompatible { detail } if detail.contains("unknown CPU model Foo")
        ));
    }

    #[test]
    fn probe_plan_looks_where_local_disks_live() {
        // The lab's disk guest: its local data disk decides.
        let disks = [disk(
            "vdb",
            Some("/var/lib/libvirt/images/disk-data.qcow2"),
            DiskStorage::Local,
            false,
        )];
        let plan = probe_plan(&disks, Some("/var/lib/ferry-lab/shared/guest/vmlinuz"));
        assert_eq!(plan.directories, ["/var/lib/libvirt/images"]);
        assert!(plan.unprobeable.is_empty());

        // The lab's idle guest has no disk: the kernel's directory is probed.
        let plan = probe_plan(&[], Some("/var/lib/ferry-lab/shared/guest/vmlinuz"));
        assert_eq!(plan.directories, ["/var/lib/ferry-lab/shared/guest"]);
        assert_eq!(probe_plan(&[], None).directories, Vec::<String>::new());

        // Read-only media and shared disks never decide; several local directories all count,
        // once each; block devices and pool volumes cannot be probed.
        let disks = [
            disk("sda", Some("/srv/iso/config.iso"), DiskStorage::Local, true),
            disk("vda", Some("/srv/nfs/g1.qcow2"), DiskStorage::Shared, false),
            disk(
                "vdb",
                Some("/var/lib/libvirt/images/a.qcow2"),
                DiskStorage::Local,
                false,
            ),
            disk(
                "vdc",
                Some("/var/lib/libvirt/images/b.qcow2"),
                DiskStorage::Local,
                false,
            ),
            disk("vdd", Some("/srv/local/c.raw"), DiskStorage::Local, false),
            disk("vde", Some("/dev/vg0/g1"), DiskStorage::Local, false),
            disk("vdf", Some("default/g1.img"), DiskStorage::Local, false),
            disk("vdg", Some("rbd:volumes/g1"), DiskStorage::Shared, false),
        ];
        let plan = probe_plan(&disks, None);
        assert_eq!(plan.directories, ["/var/lib/libvirt/images", "/srv/local"]);
        assert_eq!(
            plan.unprobeable,
            ["vde (/dev/vg0/g1)", "vdf (default/g1.img)"]
        );

        // Only shared disks: their directory, to confirm the prefix guess.
        let plan = probe_plan(&disks[..2], Some("/boot/vmlinuz"));
        assert_eq!(plan.directories, ["/srv/nfs"]);
    }

    #[test]
    fn probe_results_combine_towards_copying() {
        use SharedStorageProbe::*;
        let unknown = Unknown {
            reason: "hv2: no answer".into(),
        };
        assert_eq!(combine_probes(vec![Shared, Shared], &[]), Shared);
        assert_eq!(
            combine_probes(vec![Shared, NotShared, unknown.clone()], &[]),
            NotShared
        );
        assert_eq!(combine_probes(vec![Shared, unknown.clone()], &[]), unknown);
        assert!(matches!(
            combine_probes(vec![Shared], &["vde (/dev/vg0/g1)".into()]),
            Unknown { reason } if reason.starts_with("vde (/dev/vg0/g1) cannot be probed")
        ));
        assert!(matches!(
            combine_probes(vec![], &[]),
            Unknown { reason } if reason.contains("no file-backed disk")
        ));
    }

    #[test]
    fn the_source_is_the_only_host_defining_or_else_running_the_instance() {
        let searched = ["hv1".to_string(), "hv2".to_string()];
        let error = choose_source("web1", &[], &searched, &["hv3".into()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "web1: no reachable host defines it (looked on hv1, hv2); not reachable, so not \
             searched: hv3; check the name with `ferry instances`"
        );
        let single = [("hv2".to_string(), DomainRunState::ShutOff)];
        assert_eq!(choose_source("web1", &single, &searched, &[]).unwrap(), 0);
        // Mid-migration: running on the source, paused on the destination.
        let migrating = [
            ("hv1".to_string(), DomainRunState::Paused),
            ("hv2".to_string(), DomainRunState::Running),
        ];
        assert_eq!(
            choose_source("web1", &migrating, &searched, &[]).unwrap(),
            1
        );
        let stale = [
            ("hv1".to_string(), DomainRunState::ShutOff),
            ("hv2".to_string(), DomainRunState::ShutOff),
        ];
        let error = choose_source("web1", &stale, &searched, &[]).unwrap_err();
        assert!(
            error.to_string().contains("(hv1: shut off, hv2: shut off)")
                && error.to_string().contains("name the source host"),
            "{error}"
        );
    }

    #[test]
    fn disks_and_states_read_as_the_checks_expect() {
        let facts = disks_from_domain_xml(LAB_DISK_GUEST_XML);
        let prefixes = vec!["/var/lib/ferry-lab/shared".to_string()];
        let fact = disk_fact(
            &facts[0],
            classify_disk(&facts[0].source, &prefixes),
            8_654_848,
        );
        assert_eq!(
            fact,
            DiskFact {
                target: "vdb".into(),
                source: Some("/var/lib/libvirt/images/disk-data.qcow2".into()),
                storage: DiskStorage::Local,
                size_bytes: 8_654_848,
                read_only: false,
            }
        );
        let network = DiskFacts {
            target: "vdc".into(),
            device: "disk".into(),
            source: DiskSource::Network {
                protocol: "rbd".into(),
                name: "volumes/g1".into(),
            },
            read_only: false,
        };
        let fact = disk_fact(&network, classify_disk(&network.source, &prefixes), 0);
        assert_eq!(fact.source.as_deref(), Some("rbd:volumes/g1"));
        assert_eq!(fact.storage, DiskStorage::Shared);

        assert_eq!(
            instance_state(DomainRunState::Blocked),
            InstanceState::Running
        );
        assert_eq!(
            instance_state(DomainRunState::ShutOff),
            InstanceState::ShutOff
        );
        assert_eq!(
            instance_state(DomainRunState::Crashed),
            InstanceState::Other("crashed".into())
        );
    }

    fn candidate(host: &str, free_gib: Option<u64>, passes: bool) -> DestinationCandidate {
        let facts = PrecheckFacts {
            instance_name: "web1".into(),
            instance_state: if passes {
                InstanceState::Running
            } else {
                InstanceState::ShutOff
            },
            instance_memory_bytes: 256 * MIB,
            disks: Vec::new(),
            source_host: "hv1".into(),
            source_host_up: true,
            destination_host: host.into(),
            destination_host_up: true,
            destination_host_problem: None,
            destination_free_memory_bytes: free_gib.map(|g| g << 30),
            source_hypervisor: None,
            destination_hypervisor: None,
            cpu_compare: CpuCompareResult::Superset,
            shared_storage_probe: SharedStorageProbe::Shared,
            destination_free_disk_bytes: None,
            block_migration: BlockMigrationChoice::Auto,
            job_in_progress: None,
        };
        let report = run_all(&facts);
        DestinationCandidate {
            host: host.into(),
            facts,
            report,
        }
    }

    #[test]
    fn the_automatic_destination_passes_with_the_most_free_memory() {
        let candidates = [
            candidate("hv2", Some(4), true),
            candidate("hv3", Some(64), false),
            candidate("hv4", Some(8), true),
            candidate("hv5", Some(8), true),
        ];
        assert_eq!(choose_auto_destination(&candidates), Some(2));
        assert_eq!(choose_auto_destination(&candidates[1..2]), None);
        assert_eq!(choose_auto_destination(&[]), None);
        // Free memory unknown (a warning) still passes, ranked last.
        let unknown = [
            candidate("hv2", None, true),
            candidate("hv3", Some(1), true),
        ];
        assert_eq!(choose_auto_destination(&unknown), Some(1));
    }

    #[test]
    fn source_errors_say_how_to_fix_them() {
        let config = Config::parse(
            "[[hosts]]\nname = 'hv1'\nuri = 'qemu:///system'\n[[hosts]]\nname = 'hv2'\nuri = 'qemu:///system'\n",
            std::path::Path::new("c.toml"),
        )
        .unwrap();
        let error = configured_source(&config, "hv9").unwrap_err().to_string();
        assert_eq!(
            error,
            "source hv9: unknown host; add it to the config as a [[hosts]] entry with its libvirt \
             uri, or pick a configured host (hv1, hv2)"
        );
        let error = configured_source(&config, "hv1/system?x")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("source: host name \"hv1/system?x\" contains '/'"),
            "{error}"
        );
        assert_eq!(
            configured_source(&config, "HV2").unwrap().name.as_str(),
            "hv2"
        );
        let empty = Config::default();
        assert!(matches!(
            precheck_live_migration(&empty, "web1", None, "hv2", BlockMigrationChoice::Auto),
            Err(PrecheckError::NoHosts)
        ));
    }
}
