//! One cold migration, start to a state the operator settles: Nova's resize/migrate flow
//! (`prep_resize` on the destination, `resize_instance` on the source, `finish_resize` on the
//! destination, then `confirm_resize` or `revert_resize`) over plain libvirt.
//!
//! 1. Prechecks on fresh facts (destination up and not the source, memory, disk room, valid
//!    name, nothing in the way of the disks and the definition).
//! 2. Power off: an ACPI shutdown request and a wait; a hard power off after the wait only if
//!    the plan allows it.
//! 3. Every disk not on shared storage is copied into the destination's pool holding the same
//!    directory (or a pool of the same name), through libvirt volume streams.
//! 4. Each copy is streamed back from the destination and its sha256 compared with the sha256
//!    of what the source streamed (hashed on the way): the destination's bytes are checked,
//!    not ferry's buffers.
//! 5. The definition is defined on the destination (disk paths rewritten where they differ) and
//!    started there if it ran before: the migration then awaits the operator's confirm (remove
//!    the source copy) or revert (remove the destination copy, start on the source again).
//!
//! Until confirm, the source keeps its definition and disks untouched and the domain inactive.
//! A failure at any step puts the instance back: the destination copy is removed (retried for a
//! while if the destination stopped answering) and the guest started on its source again if it
//! was running. The plan alone (JSON in the history) is enough for another ferry process to
//! confirm or revert later, or to settle a migration whose ferry died mid-way ([`recover`]).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::history::OutcomeKind;
pub use super::live::HostTarget;

use super::live::duration_ms;
use crate::config::Config;
use crate::inventory::storage::{classify_disk, Storage};
use crate::libvirt::facts::{disks_from_domain_xml, DiskSource, DomainRunState, HostFacts};
use crate::libvirt::lifecycle::{edit_disk_sources, DiskSourceEdit, DomainKey, DomainPresence};
use crate::libvirt::volume_copy::{
    copy_volume, volume_digest, CopyError, CopySettings, NewVolume, PoolFacts, StreamDigest,
    VolumeRef,
};
use crate::libvirt::{HostConnection, LibvirtError};
use crate::model::units::format_bytes;
use crate::model::HostName;
use crate::precheck::{
    self, BlockMigrationChoice, CpuCompareResult, DiskFact, DiskStorage, HypervisorInfo,
    InstanceState, PrecheckFacts, PrecheckReport, SharedStorageProbe,
};

/// Nova's `shutdown_timeout`: how long a guest gets to power off after the ACPI request.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes per bounded call of the disk copy. On the lab (tests/lab_cold.rs, the copy benchmark,
/// 1 GiB hv1 → hv2) chunks of 1, 4, 8 and 16 MiB ran within noise of each other and of
/// `virsh vol-download | virsh vol-upload` (110–180 MiB/s on a busy 2-core machine): the cost
/// is in ssh and libvirtd, not in ferry's calls. 4 MiB keeps a few chunks in memory and the
/// per-call worker thread negligible.
pub const DEFAULT_COPY_CHUNK_BYTES: u64 = 4 << 20;
/// How long a failed migration keeps trying to remove its partial copy from a destination that
/// stopped answering (libvirt keeps an interrupted upload's volume busy until its own
/// keep-alive gives up on the dead connection, about 30 s).
pub const DEFAULT_DESTINATION_CLEANUP_WINDOW: Duration = Duration::from_secs(120);

/// How often the guest's state is read while it powers off.
const SHUTDOWN_POLL: Duration = Duration::from_millis(500);
/// Pause between attempts to reach a destination that stopped answering during cleanup.
const CLEANUP_RETRY_PAUSE: Duration = Duration::from_secs(3);
/// Copy progress reaches the watchers at most this often (and once at the end of each disk).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// What the operator chooses for a cold migration; the rest comes from the facts. Fields a
/// stored plan lacks (written by an older ferry) take their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ColdOptions {
    #[serde(rename = "shutdown_timeout_ms", with = "duration_ms")]
    pub shutdown_timeout: Duration,
    /// Power the guest off hard when it has not shut down within the timeout. Off by default:
    /// a hard power off loses what the guest had not written.
    pub hard_power_off_allowed: bool,
    /// Cap on the disk copy; None copies as fast as the hosts go.
    pub copy_bandwidth_mib_per_second: Option<u64>,
    pub copy_chunk_bytes: u64,
    #[serde(rename = "destination_cleanup_window_ms", with = "duration_ms")]
    pub destination_cleanup_window: Duration,
}

impl Default for ColdOptions {
    fn default() -> ColdOptions {
        ColdOptions {
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            hard_power_off_allowed: false,
            copy_bandwidth_mib_per_second: None,
            copy_chunk_bytes: DEFAULT_COPY_CHUNK_BYTES,
            destination_cleanup_window: DEFAULT_DESTINATION_CLEANUP_WINDOW,
        }
    }
}

/// Everything a cold migration, its confirm and its revert need. Kept in the history as JSON:
/// a later ferry process confirms or reverts from this alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdMigrationPlan {
    pub instance_name: String,
    /// The guest is found by UUID on the destination and at confirm/revert time: a domain of
    /// the same name there could be another guest.
    pub instance_uuid: String,
    pub source: HostTarget,
    pub destination: HostTarget,
    pub instance_memory_bytes: u64,
    /// Running when planned: started on the destination, and on the source again after a
    /// failure or a revert. Shut off: stays shut off everywhere.
    pub instance_was_running: bool,
    pub disks: Vec<ColdDisk>,
    /// The config's shared-storage prefixes when planned: the checks at start judge the disks
    /// the same way, whatever the config says by then.
    pub shared_storage_prefixes: Vec<String>,
    pub options: ColdOptions,
    /// Bound on every single libvirt call, one chunk of the copy included.
    #[serde(rename = "call_timeout_ms", with = "duration_ms")]
    pub call_timeout: Duration,
}

impl ColdMigrationPlan {
    pub fn copied_disks(&self) -> impl Iterator<Item = (&ColdDisk, &DiskCopy)> {
        self.disks.iter().filter_map(|disk| match &disk.action {
            DiskAction::Copy(copy) => Some((disk, copy)),
            DiskAction::Shared => None,
        })
    }

    /// Bytes the copy streams (and the verification streams again).
    pub fn bytes_to_copy(&self) -> u64 {
        self.copied_disks().map(|(_, copy)| copy.stream_bytes).sum()
    }

    fn key(&self) -> DomainKey {
        DomainKey::Uuid(self.instance_uuid.clone())
    }
}

/// One disk of the instance and what the migration does with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColdDisk {
    /// Guest device name, e.g. `vdb`.
    pub target: String,
    /// The path (or pool/volume) the source definition names.
    pub source: String,
    pub action: DiskAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum DiskAction {
    /// On storage both hosts see at the same place: left alone, never copied or deleted.
    Shared,
    Copy(DiskCopy),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskCopy {
    pub source_volume: VolumeRef,
    /// Created by the migration (same name, format and capacity); revert deletes it.
    pub destination_volume: VolumeRef,
    /// Where the copy will be, as the destination's pool names it.
    pub destination_path: String,
    pub format: String,
    pub capacity_bytes: u64,
    /// Length of the source volume's stream (its file size).
    pub stream_bytes: u64,
    /// The `<source>` attribute naming this disk in the domain XML: `file`, `dev` or `pool`.
    pub source_attribute: String,
}

/// The plan, and the prechecks that shaped it. `plan` is None when a check failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColdPlanning {
    pub report: PrecheckReport,
    pub plan: Option<ColdMigrationPlan>,
}

#[derive(Debug, thiserror::Error)]
pub enum ColdPlanError {
    #[error("destination {name:?}: {reason}")]
    UnknownDestination { name: String, reason: String },
    #[error(
        "{instance}: not found on any host of the config{}",
        unreachable_note(.unreachable)
    )]
    InstanceNotFound {
        instance: String,
        unreachable: Vec<String>,
    },
    #[error(
        "{instance}: defined on {} at once (a cold migration awaiting confirm or revert?); \
         settle that first",
        .hosts.join(" and ")
    )]
    DefinedOnSeveralHosts {
        instance: String,
        hosts: Vec<String>,
    },
    #[error("{host}: {error}")]
    Source { host: String, error: LibvirtError },
}

fn unreachable_note(unreachable: &[String]) -> String {
    if unreachable.is_empty() {
        String::new()
    } else {
        format!(
            " that answered ({} did not: it may be there)",
            unreachable.join(", ")
        )
    }
}

/// Plans a cold migration of `instance` to `destination`: finds the host that holds it,
/// gathers facts from both hosts and runs the cold prechecks.
pub fn plan(
    config: &Config,
    instance: &str,
    destination: &str,
    options: &ColdOptions,
) -> Result<ColdPlanning, ColdPlanError> {
    let timeout = config.call_timeout();
    let target_of = |name: &str| HostTarget::from_config(config, name);
    let destination_target =
        target_of(destination).ok_or_else(|| ColdPlanError::UnknownDestination {
            name: destination.to_string(),
            reason: match HostName::parse(destination) {
                Ok(_) => "not a host of the config".to_string(),
                Err(e) => e.to_string(),
            },
        })?;

    // Every host is asked at once: an unreachable one costs one timeout, not one each.
    let searches: Vec<_> = config
        .hosts
        .iter()
        .map(|host| {
            let uri = host.uri.clone();
            let name = instance.to_string();
            let host_name = host.name.as_str().to_string();
            let search = thread::spawn(move || {
                HostConnection::open(&uri, timeout)
                    .and_then(|c| c.domain_presence(&DomainKey::Name(name), timeout))
            });
            (host_name, search)
        })
        .collect();
    let mut holders = Vec::new();
    let mut unreachable = Vec::new();
    for (host, search) in searches {
        match search.join() {
            Ok(Ok(Some(_))) => holders.push(host),
            Ok(Ok(None)) => {}
            Ok(Err(_)) | Err(_) => unreachable.push(host),
        }
    }
    let source_name = match holders.len() {
        0 => {
            return Err(ColdPlanError::InstanceNotFound {
                instance: instance.to_string(),
                unreachable,
            })
        }
        1 => holders.remove(0),
        _ => {
            return Err(ColdPlanError::DefinedOnSeveralHosts {
                instance: instance.to_string(),
                hosts: holders,
            })
        }
    };
    let source_target = target_of(&source_name).expect("found on a host of the config");
    let source = HostConnection::open(&source_target.uri, timeout).map_err(|error| {
        ColdPlanError::Source {
            host: source_name.clone(),
            error,
        }
    })?;
    let destination_connection = HostConnection::open(&destination_target.uri, timeout);
    let gathered = gather(
        &source,
        &source_target,
        destination_connection.as_ref(),
        &destination_target,
        instance,
        &config.shared_storage_prefixes,
        options,
        timeout,
    )
    .map_err(|error| ColdPlanError::Source {
        host: source_name,
        error,
    })?;
    Ok(ColdPlanning {
        report: gathered.report,
        plan: gathered.plan,
    })
}

/// The facts of one moment, judged: what `plan` returns, and what `start` checks again.
struct Gathered {
    report: PrecheckReport,
    plan: Option<ColdMigrationPlan>,
    /// The source's persistent definition, defined on the destination later.
    definition_xml: String,
}

fn instance_state(state: DomainRunState) -> InstanceState {
    match state {
        DomainRunState::Running | DomainRunState::Blocked => InstanceState::Running,
        DomainRunState::Paused => InstanceState::Paused,
        DomainRunState::ShutOff => InstanceState::ShutOff,
        other => InstanceState::Other(other.as_virsh_str().to_string()),
    }
}

/// "10.0.2" back into libvirt's encoding (major × 1,000,000 + minor × 1,000 + release).
fn encoded_version(version: &str) -> Option<u64> {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let release = parts.next().unwrap_or(Some(0))?;
    Some(major * 1_000_000 + minor * 1_000 + release)
}

fn hypervisor_info(facts: &HostFacts) -> Option<HypervisorInfo> {
    Some(HypervisorInfo {
        hypervisor_type: facts.hypervisor_type.clone(),
        hypervisor_version: encoded_version(&facts.hypervisor_version)?,
    })
}

/// Where a disk's copy goes on the destination: the pool holding the same directory, else a
/// pool of the same name (the path then differs and is rewritten in the definition).
pub fn destination_pool_for<'a>(
    source_pool: &PoolFacts,
    destination_pools: &'a [PoolFacts],
) -> Option<&'a PoolFacts> {
    let active = || destination_pools.iter().filter(|p| p.active);
    active()
        .find(|p| !p.target_path.is_empty() && p.target_path == source_pool.target_path)
        .or_else(|| active().find(|p| p.name == source_pool.name))
}

#[allow(clippy::too_many_arguments)]
fn gather(
    source: &HostConnection,
    source_target: &HostTarget,
    destination: Result<&HostConnection, &LibvirtError>,
    destination_target: &HostTarget,
    instance: &str,
    shared_prefixes: &[String],
    options: &ColdOptions,
    timeout: Duration,
) -> Result<Gathered, LibvirtError> {
    let source_host = &source_target.name;
    let destination_host = &destination_target.name;
    let mut problems = Vec::new();

    let domain = crate::runtime::wait(source.domains(timeout))?
        .into_iter()
        .find(|d| d.name == instance)
        .ok_or_else(|| LibvirtError::Call {
            context: format!("{source_host}: {instance}"),
            message: "no longer defined here".into(),
        })?;
    let key = DomainKey::Name(instance.to_string());
    let definition_xml = source.domain_definition_xml(&key, timeout)?;
    if !domain.persistent {
        problems.push(format!(
            "{instance}: is transient on {source_host}; powering it off would make it vanish"
        ));
    }
    if domain.job_running {
        problems.push(format!(
            "{instance}: a libvirt job (migration, backup…) is running on it"
        ));
    }
    let source_facts = crate::runtime::wait(source.host_facts(timeout))?;
    let source_pools = source.storage_pools(timeout)?;

    // The destination's side; unreachable leaves these empty and the up-check fails.
    let destination_side = destination.ok().map(|connection| {
        (
            crate::runtime::wait(connection.host_facts(timeout)),
            connection.storage_pools(timeout),
            connection.domain_presence(&key, timeout),
            connection.domain_presence(&DomainKey::Uuid(domain.uuid.clone()), timeout),
        )
    });
    let mut destination_up = destination.is_ok();
    let mut destination_facts = None;
    let mut destination_pools = Vec::new();
    if let Some((facts, pools, by_name, by_uuid)) = destination_side {
        match (facts, pools, by_name, by_uuid) {
            (Ok(facts), Ok(pools), Ok(by_name), Ok(by_uuid)) => {
                if let Some(found) = by_name.or(by_uuid) {
                    problems.push(format!(
                        "{destination_host}: already has a domain {} (UUID {}); remove it or pick another destination",
                        found.name, found.uuid
                    ));
                }
                destination_facts = Some(facts);
                destination_pools = pools;
            }
            _ => destination_up = false,
        }
    }

    let mut disks = Vec::new();
    let mut disk_facts = Vec::new();
    let mut needed_bytes_by_pool: BTreeMap<String, u64> = BTreeMap::new();
    for disk in disks_from_domain_xml(&definition_xml) {
        let mut storage = classify_disk(&disk.source, shared_prefixes);
        let (described, attribute, volume) = match &disk.source {
            DiskSource::None => continue,
            DiskSource::Path { path } => {
                let attribute = if definition_xml_disk_is_block(&definition_xml, &disk.target) {
                    "dev"
                } else {
                    "file"
                };
                let volume = if storage == Storage::Shared {
                    None
                } else {
                    source.volume_by_path(path, timeout)?
                };
                (path.clone(), attribute, volume)
            }
            DiskSource::Volume { pool, volume } => {
                let reference = VolumeRef {
                    pool: pool.clone(),
                    name: volume.clone(),
                };
                let found = source.volume(&reference, timeout)?;
                // A pool volume is shared when its path is (a pool on an NFS mount, say).
                if let Some(found) = &found {
                    let path = DiskSource::Path {
                        path: found.path.clone(),
                    };
                    storage = classify_disk(&path, shared_prefixes);
                }
                (reference.to_string(), "pool", found)
            }
            DiskSource::Network { protocol, name } => (format!("{protocol}:{name}"), "", None),
        };
        if storage == Storage::Shared {
            disk_facts.push(DiskFact {
                target: disk.target.clone(),
                source: Some(described.clone()),
                storage: DiskStorage::Shared,
                size_bytes: 0,
                read_only: false,
            });
            disks.push(ColdDisk {
                target: disk.target,
                source: described,
                action: DiskAction::Shared,
            });
            continue;
        }
        let Some(volume) = volume else {
            problems.push(format!(
                "{}: {described} is in no storage pool on {source_host}; ferry copies disks \
                 through libvirt storage pools (define a pool on its directory)",
                disk.target
            ));
            continue;
        };
        if let Some(backing) = volume.backing_path.as_ref().filter(|b| {
            classify_disk(&DiskSource::Path { path: (*b).clone() }, shared_prefixes)
                != Storage::Shared
        }) {
            problems.push(format!(
                "{}: {} is an overlay of {backing}, which is not on shared storage; ferry \
                 copies whole volumes only (flatten it first)",
                disk.target, volume.path
            ));
            continue;
        }
        disk_facts.push(DiskFact {
            target: disk.target.clone(),
            source: Some(described.clone()),
            storage: DiskStorage::Local,
            size_bytes: volume.physical_bytes,
            read_only: false,
        });
        if !destination_up {
            continue;
        }
        let Some(source_pool) = source_pools.iter().find(|p| p.name == volume.pool) else {
            problems.push(format!(
                "{}: pool {} of {} vanished on {source_host}",
                disk.target, volume.pool, volume.path
            ));
            continue;
        };
        let Some(destination_pool) = destination_pool_for(source_pool, &destination_pools) else {
            problems.push(format!(
                "{destination_host}: no active storage pool holds {} or is named {}; define \
                 one for {}'s copy",
                source_pool.target_path, source_pool.name, disk.target
            ));
            continue;
        };
        let destination_volume = VolumeRef {
            pool: destination_pool.name.clone(),
            name: volume.name.clone(),
        };
        if let Some(taken) = destination
            .ok()
            .and_then(|c| c.volume(&destination_volume, timeout).ok().flatten())
        {
            problems.push(format!(
                "{destination_host}: pool {} already holds {}; ferry creates the copy and will \
                 not overwrite a volume (if both hosts see that pool's storage, list {} in \
                 shared_storage_prefixes)",
                destination_pool.name, taken.name, destination_pool.target_path
            ));
            continue;
        }
        *needed_bytes_by_pool
            .entry(destination_pool.name.clone())
            .or_default() += volume.physical_bytes;
        disks.push(ColdDisk {
            target: disk.target,
            source: described,
            action: DiskAction::Copy(DiskCopy {
                source_volume: VolumeRef {
                    pool: volume.pool.clone(),
                    name: volume.name.clone(),
                },
                destination_path: format!(
                    "{}/{}",
                    destination_pool.target_path.trim_end_matches('/'),
                    volume.name
                ),
                destination_volume,
                format: volume.format.clone(),
                capacity_bytes: volume.capacity_bytes,
                stream_bytes: volume.physical_bytes,
                source_attribute: attribute.to_string(),
            }),
        });
    }
    // Several pools: each must hold its own disks, while the check compares one free figure
    // with the total. The figure given is the total plus the smallest margin of any pool, so
    // it passes exactly when every pool has room (and is that pool's free space when there is
    // only one).
    let total_needed: u64 = needed_bytes_by_pool.values().sum();
    let destination_free_disk_bytes = needed_bytes_by_pool
        .iter()
        .filter_map(|(pool, needed)| {
            let available = destination_pools
                .iter()
                .find(|p| &p.name == pool)?
                .available_bytes;
            Some(i128::from(available) - i128::from(*needed))
        })
        .min()
        .map(|margin| {
            u64::try_from((i128::from(total_needed) + margin).max(0)).unwrap_or(u64::MAX)
        });

    let facts = PrecheckFacts {
        instance_name: instance.to_string(),
        instance_state: instance_state(domain.state),
        instance_memory_bytes: domain.memory_bytes,
        disks: disk_facts,
        source_host: source_host.clone(),
        source_host_up: true,
        destination_host: destination_host.clone(),
        destination_host_up: destination_up,
        destination_host_problem: None,
        destination_free_memory_bytes: destination_facts.as_ref().map(|f| f.memory_free_bytes),
        source_hypervisor: hypervisor_info(&source_facts),
        destination_hypervisor: destination_facts.as_ref().and_then(hypervisor_info),
        cpu_compare: CpuCompareResult::Unknown {
            reason: "not needed: a cold migration boots the guest afresh".into(),
        },
        shared_storage_probe: SharedStorageProbe::NotShared,
        destination_free_disk_bytes,
        block_migration: BlockMigrationChoice::Yes,
        // The cold run lock keeps ferry's own migrations apart; a job started outside ferry
        // makes the shutdown fail before anything is copied.
        job_in_progress: None,
    };
    let report = precheck::run_cold(&facts, &problems);
    let plan = report.passed().then(|| ColdMigrationPlan {
        instance_name: instance.to_string(),
        instance_uuid: domain.uuid.clone(),
        source: source_target.clone(),
        destination: destination_target.clone(),
        instance_memory_bytes: domain.memory_bytes,
        instance_was_running: facts.instance_state == InstanceState::Running,
        disks,
        shared_storage_prefixes: shared_prefixes.to_vec(),
        options: options.clone(),
        call_timeout: timeout,
    });
    Ok(Gathered {
        report,
        plan,
        definition_xml,
    })
}

/// `<disk type='block'>` names its device with `dev`, files use `file`.
fn definition_xml_disk_is_block(xml: &str, target: &str) -> bool {
    let Ok(document) = roxmltree::Document::parse(xml) else {
        return false;
    };
    document
        .descendants()
        .filter(|n| n.has_tag_name("disk"))
        .find(|disk| {
            disk.children()
                .find(|n| n.has_tag_name("target"))
                .and_then(|t| t.attribute("dev"))
                == Some(target)
        })
        .is_some_and(|disk| disk.attribute("type") == Some("block"))
}

/// What the operator can do to a running cold migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ColdCommand {
    /// Stop where it is and put the instance back on its source.
    Abort,
}

/// Where the migration stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum ColdPhase {
    Prechecks,
    ShuttingDown {
        timeout_ms: u64,
        hard_power_off_allowed: bool,
    },
    /// The guest did not power off in time and the plan allows pulling the plug.
    PoweringOffHard,
    Copying {
        disk_number: usize,
        disk_count: usize,
        target: String,
    },
    Verifying {
        disk_number: usize,
        disk_count: usize,
        target: String,
    },
    Defining,
    Starting,
    AwaitingConfirm,
    Confirmed,
    Reverted,
    RollingBack {
        reason: String,
    },
    RolledBack,
    Failed,
}

/// Progress of one disk's copy or verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyProgress {
    pub disk_number: usize,
    pub disk_count: usize,
    pub target: String,
    pub verifying: bool,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub rate_bytes_per_second: Option<u64>,
    pub eta_ms: Option<u64>,
}

/// What the engine reports, in order, to whoever watches (TUI, CLI, tests, history).
///
/// Read back (recorded runs replayed in tests) except `Prechecks`, whose report is
/// write-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "update")]
pub enum ColdUpdate {
    Phase(ColdPhase),
    #[serde(skip_deserializing)]
    Prechecks {
        report: PrecheckReport,
    },
    Progress(CopyProgress),
    /// A copy streamed back from the destination matched what the source streamed.
    Verified {
        target: String,
        bytes: u64,
        sha256: String,
    },
    /// A recoverable problem (a cleanup retried, a step skipped).
    Warning {
        message: String,
    },
    /// One thing undone after a failure.
    RollbackStep {
        description: String,
    },
    Finished(ColdOutcome),
}

/// One copied disk, as verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedDisk {
    pub target: String,
    pub destination_path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// How the cold migration ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ColdOutcome {
    /// Defined (and running, if it ran) on the destination; the source copy waits, inactive,
    /// for confirm or revert.
    AwaitingConfirm {
        total_time_ms: u64,
        /// From the shutdown request to the guest running on the destination.
        downtime_ms: Option<u64>,
        bytes_copied: u64,
        disks: Vec<CopiedDisk>,
    },
    /// Nothing was changed: a precheck failed, or the guest did not power off and the plan did
    /// not allow a hard power off.
    Refused { detail: String },
    /// Failed or aborted after something changed, and put back: the instance is on its source
    /// as before. `leftovers` lists what could not be removed from the destination.
    RolledBack {
        detail: String,
        leftovers: Vec<String>,
    },
    /// Failed and could not be put back; the detail says where the instance stands.
    Failed { detail: String },
}

impl ColdOutcome {
    /// The history's word for it.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            ColdOutcome::AwaitingConfirm { .. } => OutcomeKind::AwaitingConfirm,
            ColdOutcome::RolledBack { .. } => OutcomeKind::RolledBack,
            ColdOutcome::Refused { .. } | ColdOutcome::Failed { .. } => OutcomeKind::Failed,
        }
    }
}

pub struct ColdMigrationHandle {
    pub commands: Sender<ColdCommand>,
    pub updates: Receiver<ColdUpdate>,
    pub thread: JoinHandle<ColdOutcome>,
}

/// Starts the cold migration on its own thread and returns at once. The prechecks run again on
/// fresh facts; a plan the instance no longer matches is refused.
pub fn start(plan: ColdMigrationPlan) -> ColdMigrationHandle {
    let (command_tx, command_rx) = mpsc::channel();
    let (update_tx, update_rx) = mpsc::channel();
    let thread = thread::Builder::new()
        .name(format!("cold-{}", plan.instance_name))
        .spawn(move || {
            let outcome = run(&plan, &command_rx, &update_tx);
            let phase = match &outcome {
                ColdOutcome::AwaitingConfirm { .. } => ColdPhase::AwaitingConfirm,
                ColdOutcome::RolledBack { .. } => ColdPhase::RolledBack,
                ColdOutcome::Refused { .. } | ColdOutcome::Failed { .. } => ColdPhase::Failed,
            };
            let _ = update_tx.send(ColdUpdate::Phase(phase));
            let _ = update_tx.send(ColdUpdate::Finished(outcome.clone()));
            outcome
        })
        .expect("spawn cold migration thread");
    ColdMigrationHandle {
        commands: command_tx,
        updates: update_rx,
        thread,
    }
}

/// Rate and ETA of one stream, over a sliding window so a stall shows within seconds.
#[derive(Debug, Clone)]
pub struct CopyMeter {
    window: Duration,
    samples: Vec<(Duration, u64)>,
}

impl CopyMeter {
    pub fn new(window: Duration) -> CopyMeter {
        CopyMeter {
            window,
            samples: Vec::new(),
        }
    }

    /// Records `bytes_done` at `elapsed` since the stream began; returns (rate, ETA).
    pub fn record(
        &mut self,
        elapsed: Duration,
        bytes_done: u64,
        bytes_total: u64,
    ) -> (Option<u64>, Option<u64>) {
        self.samples.push((elapsed, bytes_done));
        // Keep one sample at or before the window's start, so the rate spans the whole window.
        while self.samples.len() > 2 && elapsed.saturating_sub(self.samples[1].0) >= self.window {
            self.samples.remove(0);
        }
        let (first_at, first_bytes) = self.samples[0];
        let span = elapsed.saturating_sub(first_at);
        if span.is_zero() {
            return (None, None);
        }
        let rate = ((bytes_done - first_bytes.min(bytes_done)) as f64 / span.as_secs_f64()) as u64;
        let eta_ms = (rate > 0).then(|| {
            (bytes_total.saturating_sub(bytes_done) as f64 / rate as f64 * 1000.0).round() as u64
        });
        (Some(rate), eta_ms)
    }
}

/// What the migration has changed so far: exactly what a rollback undoes.
#[derive(Debug, Default)]
struct Changes {
    /// Ferry powered the guest off (it was running).
    powered_off: bool,
    /// Volumes ferry created on the destination, in creation order.
    created_volumes: Vec<VolumeRef>,
    defined_on_destination: bool,
    started_on_destination: bool,
}

impl Changes {
    fn any(&self) -> bool {
        self.powered_off || !self.created_volumes.is_empty() || self.defined_on_destination
    }
}

/// Why the forward path stopped.
enum Stop {
    /// Nothing changed that needs undoing (the reason says why).
    Refused(String),
    /// Roll back what `Changes` records.
    RollBack(String),
}

struct Run<'a> {
    plan: &'a ColdMigrationPlan,
    commands: &'a Receiver<ColdCommand>,
    updates: &'a Sender<ColdUpdate>,
    source: HostConnection,
    destination: HostConnection,
    changes: Changes,
    started: Instant,
}

fn run(
    plan: &ColdMigrationPlan,
    commands: &Receiver<ColdCommand>,
    updates: &Sender<ColdUpdate>,
) -> ColdOutcome {
    let started = Instant::now();
    let send = |update| {
        let _ = updates.send(update);
    };
    send(ColdUpdate::Phase(ColdPhase::Prechecks));
    let timeout = plan.call_timeout;
    let source = match HostConnection::open(&plan.source.uri, timeout) {
        Ok(c) => c,
        Err(e) => {
            return ColdOutcome::Refused {
                detail: format!("{}: source unreachable: {e}", plan.source.name),
            }
        }
    };
    let destination = HostConnection::open(&plan.destination.uri, timeout);
    let gathered = match gather(
        &source,
        &plan.source,
        destination.as_ref(),
        &plan.destination,
        &plan.instance_name,
        &plan.shared_storage_prefixes,
        &plan.options,
        timeout,
    ) {
        Ok(g) => g,
        Err(e) => {
            return ColdOutcome::Refused {
                detail: format!("{}: {e}", plan.source.name),
            }
        }
    };
    send(ColdUpdate::Prechecks {
        report: gathered.report.clone(),
    });
    if !gathered.report.passed() {
        return ColdOutcome::Refused {
            detail: gathered
                .report
                .failures()
                .map(|c| match &c.outcome {
                    precheck::CheckOutcome::Fail { reason } => reason.clone(),
                    _ => String::new(),
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
    }
    let fresh = gathered.plan.expect("a plan when the checks pass");
    if let Some(change) = plan_drift(plan, &fresh) {
        return ColdOutcome::Refused {
            detail: format!(
                "{}: {change} since the migration was planned; plan it again",
                plan.instance_name
            ),
        };
    }
    // Same disks and volumes as planned (checked above), with today's sizes: a guest that
    // wrote since planning streams more, and the progress should say so.
    let plan = &ColdMigrationPlan {
        disks: fresh.disks,
        ..plan.clone()
    };
    let mut run = Run {
        plan,
        commands,
        updates,
        source,
        destination: destination.expect("the destination answered the prechecks"),
        changes: Changes::default(),
        started,
    };
    match run.forward(&gathered.definition_xml) {
        Ok(outcome) => outcome,
        Err(Stop::Refused(detail)) => ColdOutcome::Refused { detail },
        Err(Stop::RollBack(reason)) => run.roll_back(reason),
    }
}

/// What changed between planning and starting that the plan depends on, if anything.
fn plan_drift(plan: &ColdMigrationPlan, fresh: &ColdMigrationPlan) -> Option<String> {
    if fresh.instance_uuid != plan.instance_uuid {
        return Some(format!(
            "is another domain now (UUID {} instead of {})",
            fresh.instance_uuid, plan.instance_uuid
        ));
    }
    if fresh.instance_was_running != plan.instance_was_running {
        return Some(if plan.instance_was_running {
            "was shut off".to_string()
        } else {
            "was started".to_string()
        });
    }
    let layout = |p: &ColdMigrationPlan| {
        p.disks
            .iter()
            .map(|d| {
                let copy = match &d.action {
                    DiskAction::Copy(c) => Some((&c.source_volume, &c.destination_volume)),
                    DiskAction::Shared => None,
                };
                (
                    d.target.clone(),
                    d.source.clone(),
                    copy.map(|(s, d)| (s.clone(), d.clone())),
                )
            })
            .collect::<Vec<_>>()
    };
    (layout(fresh) != layout(plan)).then(|| "its disks changed".to_string())
}

impl Run<'_> {
    fn send(&self, update: ColdUpdate) {
        let _ = self.updates.send(update);
    }

    fn phase(&self, phase: ColdPhase) {
        self.send(ColdUpdate::Phase(phase));
    }

    fn aborted(&self) -> bool {
        matches!(self.commands.try_recv(), Ok(ColdCommand::Abort))
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn forward(&mut self, definition_xml: &str) -> Result<ColdOutcome, Stop> {
        let plan = self.plan;
        let timeout = plan.call_timeout;
        let key = plan.key();
        let mut shutdown_started = None;
        if plan.instance_was_running {
            shutdown_started = Some(Instant::now());
            self.power_off()?;
        }
        if self.aborted() {
            return Err(Stop::RollBack("aborted by the operator".into()));
        }

        let copies: Vec<(&ColdDisk, &DiskCopy)> = plan.copied_disks().collect();
        let disk_count = copies.len();
        let mut digests = Vec::new();
        for (index, (disk, copy)) in copies.iter().enumerate() {
            let digest = self.copy_disk(index + 1, disk_count, disk, copy)?;
            digests.push(digest);
        }
        let mut copied = Vec::new();
        let mut edits = Vec::new();
        for (index, ((disk, copy), (source_digest, created_path))) in
            copies.iter().zip(&digests).enumerate()
        {
            let verified = self.verify_disk(index + 1, disk_count, disk, copy, source_digest)?;
            copied.push(CopiedDisk {
                target: disk.target.clone(),
                destination_path: created_path.clone(),
                bytes: verified.bytes,
                sha256: verified.sha256,
            });
            let new_value = if copy.source_attribute == "pool" {
                copy.destination_volume.pool.clone()
            } else {
                created_path.clone()
            };
            let old_value = if copy.source_attribute == "pool" {
                copy.source_volume.pool.clone()
            } else {
                disk.source.clone()
            };
            if new_value != old_value {
                edits.push(DiskSourceEdit {
                    target: disk.target.clone(),
                    attribute: copy.source_attribute.clone(),
                    value: new_value,
                });
            }
        }

        // Someone may have started the source copy while its disks were being copied: two
        // running copies with diverging disks must never happen.
        match self.source.domain_presence(&key, timeout) {
            Ok(Some(presence)) if !presence.active => {}
            Ok(Some(_)) => {
                return Err(Stop::RollBack(format!(
                    "{}: {} was started there during the copy; the copy is discarded",
                    plan.source.name, plan.instance_name
                )))
            }
            Ok(None) => {
                return Err(Stop::RollBack(format!(
                    "{}: {} was undefined there during the copy",
                    plan.source.name, plan.instance_name
                )))
            }
            Err(e) => {
                return Err(Stop::RollBack(format!(
                    "{}: cannot make sure {} is still shut off: {e}",
                    plan.source.name, plan.instance_name
                )))
            }
        }

        self.phase(ColdPhase::Defining);
        let xml = edit_disk_sources(definition_xml, &edits).map_err(|e| {
            Stop::RollBack(format!("{}: rewriting disk paths: {e}", plan.instance_name))
        })?;
        // Marked before the call: a define that timed out may still have happened. The
        // rollback removes by UUID, so a refused define never touches another domain that
        // holds the name there.
        self.changes.defined_on_destination = true;
        let defined = self.destination.define_domain(&xml, timeout).map_err(|e| {
            Stop::RollBack(format!(
                "{}: the definition was refused: {e}",
                plan.destination.name
            ))
        })?;
        if defined.uuid != plan.instance_uuid {
            return Err(Stop::RollBack(format!(
                "{}: defined with UUID {} instead of {}",
                plan.destination.name, defined.uuid, plan.instance_uuid
            )));
        }
        if self.aborted() {
            return Err(Stop::RollBack("aborted by the operator".into()));
        }

        let mut downtime_ms = None;
        if plan.instance_was_running {
            self.phase(ColdPhase::Starting);
            // Marked before the call: a start that timed out may still have happened.
            self.changes.started_on_destination = true;
            self.destination.start_domain(&key, timeout).map_err(|e| {
                Stop::RollBack(format!(
                    "{}: starting {} failed: {e}",
                    plan.destination.name, plan.instance_name
                ))
            })?;
            downtime_ms = shutdown_started.map(|t| t.elapsed().as_millis() as u64);
        }
        Ok(ColdOutcome::AwaitingConfirm {
            total_time_ms: self.elapsed_ms(),
            downtime_ms,
            bytes_copied: copied.iter().map(|d| d.bytes).sum(),
            disks: copied,
        })
    }

    /// ACPI request, then wait; a hard power off after the wait only if the plan allows it.
    fn power_off(&mut self) -> Result<(), Stop> {
        let plan = self.plan;
        let options = &plan.options;
        let timeout = plan.call_timeout;
        let key = plan.key();
        let source_name = &plan.source.name;
        self.phase(ColdPhase::ShuttingDown {
            timeout_ms: options.shutdown_timeout.as_millis() as u64,
            hard_power_off_allowed: options.hard_power_off_allowed,
        });
        self.source.request_shutdown(&key, timeout).map_err(|e| {
            Stop::Refused(format!(
                "{source_name}: asking {} to shut down failed: {e}",
                plan.instance_name
            ))
        })?;
        let deadline = Instant::now() + options.shutdown_timeout;
        loop {
            match self.commands.recv_timeout(SHUTDOWN_POLL) {
                Ok(ColdCommand::Abort) => {
                    // It may be powering off already: whether to start it again is the
                    // rollback's question, from its real state.
                    self.changes.powered_off = true;
                    return Err(Stop::RollBack(
                        "aborted by the operator while the guest was shutting down".into(),
                    ));
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
            match self.source.domain_presence(&key, timeout) {
                Ok(Some(presence)) if !presence.active => {
                    self.changes.powered_off = true;
                    return Ok(());
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(Stop::Refused(format!(
                        "{source_name}: {} vanished while shutting down",
                        plan.instance_name
                    )))
                }
                Err(e) => self.send(ColdUpdate::Warning {
                    message: format!("reading the guest's state: {e}"),
                }),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let waited = format!(
            "{} did not power off within {} s of an ACPI shutdown request",
            plan.instance_name,
            options.shutdown_timeout.as_secs()
        );
        if !options.hard_power_off_allowed {
            return Err(Stop::Refused(format!(
                "{source_name}: {waited} (the guest may ignore ACPI); it is left running on \
                 {source_name}, though it may still act on the request. Shut it down from \
                 inside, or allow a hard power off"
            )));
        }
        self.phase(ColdPhase::PoweringOffHard);
        self.changes.powered_off = true;
        self.source.power_off(&key, timeout).map_err(|e| {
            Stop::RollBack(format!(
                "{source_name}: {waited}; hard power off failed: {e}"
            ))
        })
    }

    /// Creates the destination volume and streams the source into it. Returns the source
    /// stream's digest and the created volume's path.
    fn copy_disk(
        &mut self,
        disk_number: usize,
        disk_count: usize,
        disk: &ColdDisk,
        copy: &DiskCopy,
    ) -> Result<(StreamDigest, String), Stop> {
        let plan = self.plan;
        let destination_name = &plan.destination.name;
        self.phase(ColdPhase::Copying {
            disk_number,
            disk_count,
            target: disk.target.clone(),
        });
        let created = self
            .destination
            .create_volume(
                &copy.destination_volume.pool,
                &NewVolume {
                    name: copy.destination_volume.name.clone(),
                    format: copy.format.clone(),
                    capacity_bytes: copy.capacity_bytes,
                },
                plan.call_timeout,
            )
            .map_err(|e| Stop::RollBack(format!("{destination_name}: {e}")))?;
        self.changes
            .created_volumes
            .push(copy.destination_volume.clone());
        let settings = self.copy_settings();
        let mut meter = CopyMeter::new(Duration::from_secs(3));
        let mut last_sent: Option<Instant> = None;
        let stream_started = Instant::now();
        let updates = self.updates;
        let commands = self.commands;
        let mut on_progress = |bytes_done: u64| {
            let (rate, eta_ms) =
                meter.record(stream_started.elapsed(), bytes_done, copy.stream_bytes);
            let due = last_sent.is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL);
            if due || bytes_done >= copy.stream_bytes {
                last_sent = Some(Instant::now());
                let _ = updates.send(ColdUpdate::Progress(CopyProgress {
                    disk_number,
                    disk_count,
                    target: disk.target.clone(),
                    verifying: false,
                    bytes_done,
                    bytes_total: copy.stream_bytes,
                    rate_bytes_per_second: rate,
                    eta_ms,
                }));
            }
            match commands.try_recv() {
                Ok(ColdCommand::Abort) => ControlFlow::Break("aborted by the operator".into()),
                Err(_) => ControlFlow::Continue(()),
            }
        };
        let digest = copy_volume(
            &self.source,
            &copy.source_volume,
            &self.destination,
            &copy.destination_volume,
            settings,
            &mut on_progress,
        )
        .map_err(|e| {
            Stop::RollBack(match e {
                CopyError::Stopped { reason, .. } => reason,
                CopyError::Libvirt(error) => format!(
                    "copying {} ({}) from {} to {destination_name}: {error}",
                    disk.target, copy.source_volume, plan.source.name
                ),
            })
        })?;
        Ok((digest, created.path))
    }

    fn copy_settings(&self) -> CopySettings {
        let options = &self.plan.options;
        CopySettings {
            chunk_bytes: usize::try_from(options.copy_chunk_bytes.max(64 << 10))
                .unwrap_or(DEFAULT_COPY_CHUNK_BYTES as usize),
            call_timeout: self.plan.call_timeout,
            bandwidth_bytes_per_second: options
                .copy_bandwidth_mib_per_second
                .filter(|m| *m > 0)
                .map(|m| m << 20),
        }
    }

    /// Streams the copy back from the destination and compares it with the source's stream.
    fn verify_disk(
        &mut self,
        disk_number: usize,
        disk_count: usize,
        disk: &ColdDisk,
        copy: &DiskCopy,
        source_digest: &StreamDigest,
    ) -> Result<StreamDigest, Stop> {
        let plan = self.plan;
        let destination_name = &plan.destination.name;
        self.phase(ColdPhase::Verifying {
            disk_number,
            disk_count,
            target: disk.target.clone(),
        });
        let mut meter = CopyMeter::new(Duration::from_secs(3));
        let mut last_sent: Option<Instant> = None;
        let stream_started = Instant::now();
        let updates = self.updates;
        let commands = self.commands;
        let total = source_digest.bytes;
        let mut on_progress = |bytes_done: u64| {
            let (rate, eta_ms) = meter.record(stream_started.elapsed(), bytes_done, total);
            if last_sent.is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL) {
                last_sent = Some(Instant::now());
                let _ = updates.send(ColdUpdate::Progress(CopyProgress {
                    disk_number,
                    disk_count,
                    target: disk.target.clone(),
                    verifying: true,
                    bytes_done,
                    bytes_total: total,
                    rate_bytes_per_second: rate,
                    eta_ms,
                }));
            }
            match commands.try_recv() {
                Ok(ColdCommand::Abort) => ControlFlow::Break("aborted by the operator".into()),
                Err(_) => ControlFlow::Continue(()),
            }
        };
        let mut settings = self.copy_settings();
        // The check reads at full speed: the cap protects the hosts during the copy itself.
        settings.bandwidth_bytes_per_second = None;
        let landed = volume_digest(
            &self.destination,
            &copy.destination_volume,
            settings,
            &mut on_progress,
        )
        .map_err(|e| {
            Stop::RollBack(match e {
                CopyError::Stopped { reason, .. } => reason,
                CopyError::Libvirt(error) => format!(
                    "{destination_name}: reading back {} to verify it: {error}",
                    copy.destination_volume
                ),
            })
        })?;
        if &landed != source_digest {
            return Err(Stop::RollBack(format!(
                "{}: the copy on {destination_name} differs from the source on {}: {} with sha256 \
                 {} there, {} with sha256 {} sent",
                disk.target,
                plan.source.name,
                format_bytes(landed.bytes),
                landed.sha256,
                format_bytes(source_digest.bytes),
                source_digest.sha256
            )));
        }
        self.send(ColdUpdate::Verified {
            target: disk.target.clone(),
            bytes: landed.bytes,
            sha256: landed.sha256.clone(),
        });
        Ok(landed)
    }

    fn step(&self, description: String) {
        self.send(ColdUpdate::RollbackStep { description });
    }

    /// Puts the instance back on its source and removes what the migration made on the
    /// destination. The guest never runs in two places: if it may be running on the destination
    /// and that host cannot be reached, it is not started on the source.
    fn roll_back(&mut self, reason: String) -> ColdOutcome {
        let plan = self.plan;
        let timeout = plan.call_timeout;
        let key = plan.key();
        let (source_name, destination_name) = (&plan.source.name, &plan.destination.name);
        if !self.changes.any() && !self.changes.started_on_destination {
            return ColdOutcome::Refused { detail: reason };
        }
        self.phase(ColdPhase::RollingBack {
            reason: reason.clone(),
        });

        let mut domain_left = false;
        if self.changes.defined_on_destination || self.changes.started_on_destination {
            match &self.destination.remove_domain_copy(&key, timeout) {
                Ok(done) => {
                    for description in done {
                        self.step(format!("{destination_name}: {description}"));
                    }
                }
                Err(error) if self.changes.started_on_destination => {
                    return ColdOutcome::Failed {
                        detail: format!(
                            "{reason}; then {destination_name} stopped answering ({error}) after \
                             {} was started there: it is not started on {source_name} again, so \
                             that it never runs twice. Check {destination_name}, then revert",
                            plan.instance_name
                        ),
                    };
                }
                Err(error) => {
                    self.send(ColdUpdate::Warning {
                        message: format!(
                            "{destination_name}: removing the copied definition: {error}; retrying"
                        ),
                    });
                    domain_left = true;
                }
            }
        }

        let mut restart_failure = None;
        if plan.instance_was_running && self.changes.powered_off {
            let state = self.source.domain_presence(&key, timeout);
            match state {
                Ok(Some(presence)) if presence.active => {
                    self.step(format!(
                        "{source_name}: {} still running (it had not powered off yet)",
                        plan.instance_name
                    ));
                }
                Ok(Some(_)) => match self.source.start_domain(&key, timeout) {
                    Ok(()) => self.step(format!(
                        "{source_name}: started {} again",
                        plan.instance_name
                    )),
                    Err(error) => restart_failure = Some(error.to_string()),
                },
                Ok(None) => {
                    restart_failure = Some(format!("{} is no longer defined", plan.instance_name))
                }
                Err(error) => restart_failure = Some(error.to_string()),
            }
        }

        let leftovers = self.clean_destination(domain_left);
        if let Some(error) = restart_failure {
            return ColdOutcome::Failed {
                detail: format!(
                    "{reason}; then starting {} again on {source_name} failed: {error}. Its \
                     definition and disks there are untouched; start it by hand{}",
                    plan.instance_name,
                    leftover_note(&leftovers)
                ),
            };
        }
        ColdOutcome::RolledBack {
            detail: reason,
            leftovers,
        }
    }

    /// Deletes the volumes the migration created (and the definition if still there), trying
    /// again for the plan's cleanup window when the destination does not answer. Returns what
    /// is still there at the end.
    fn clean_destination(&mut self, mut domain_left: bool) -> Vec<String> {
        let plan = self.plan;
        let timeout = plan.call_timeout;
        let destination_name = &plan.destination.name;
        let deadline = Instant::now() + plan.options.destination_cleanup_window;
        let mut volumes_left = std::mem::take(&mut self.changes.created_volumes);
        let mut connection = Some(self.destination.clone());
        let mut warned = false;
        loop {
            if let Some(destination) = &connection {
                if domain_left {
                    match destination.remove_domain_copy(&plan.key(), timeout) {
                        Ok(done) => {
                            domain_left = false;
                            for description in done {
                                self.step(format!("{destination_name}: {description}"));
                            }
                        }
                        Err(_) => connection = None,
                    }
                }
            }
            if let Some(destination) = &connection {
                let mut still_left = Vec::new();
                for volume in volumes_left {
                    match destination.delete_volume(&volume, timeout) {
                        Ok(true) => {
                            self.step(format!("{destination_name}: deleted the copy {volume}"))
                        }
                        Ok(false) => {}
                        Err(error) => {
                            if !warned {
                                self.send(ColdUpdate::Warning {
                                    message: format!(
                                        "{destination_name}: deleting {volume}: {error}; \
                                         retrying for up to {} s",
                                        plan.options.destination_cleanup_window.as_secs()
                                    ),
                                });
                                warned = true;
                            }
                            still_left.push(volume);
                        }
                    }
                }
                volumes_left = still_left;
            }
            if (volumes_left.is_empty() && !domain_left) || Instant::now() >= deadline {
                break;
            }
            thread::sleep(CLEANUP_RETRY_PAUSE);
            // A fresh connection each retry: the old one may be dead after a network outage.
            connection = HostConnection::open(&plan.destination.uri, timeout).ok();
            if connection.is_none() && !warned {
                self.send(ColdUpdate::Warning {
                    message: format!(
                        "{destination_name}: unreachable; retrying the cleanup for up to {} s",
                        plan.options.destination_cleanup_window.as_secs()
                    ),
                });
                warned = true;
            }
        }
        let mut leftovers: Vec<String> = volumes_left
            .iter()
            .map(|v| format!("{destination_name}: volume {v}"))
            .collect();
        if domain_left {
            leftovers.insert(
                0,
                format!(
                    "{destination_name}: definition of {} (UUID {})",
                    plan.instance_name, plan.instance_uuid
                ),
            );
        }
        leftovers
    }
}

fn leftover_note(leftovers: &[String]) -> String {
    if leftovers.is_empty() {
        String::new()
    } else {
        format!(". Left on the destination: {}", leftovers.join(", "))
    }
}

/// What confirm or revert did, step by step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettleReport {
    pub steps: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("{host}: unreachable: {error}")]
    Unreachable { host: String, error: LibvirtError },
    /// Refused before changing anything, for the reason given.
    #[error("{0}")]
    Refused(String),
    /// Stopped part-way: `done` lists what was already done.
    #[error("{error} (already done: {})", if .done.is_empty() { "nothing".to_string() } else { .done.join("; ") })]
    Partial {
        done: Vec<String>,
        error: LibvirtError,
    },
}

fn open(host: &HostTarget, timeout: Duration) -> Result<HostConnection, SettleError> {
    HostConnection::open(&host.uri, timeout).map_err(|error| SettleError::Unreachable {
        host: host.name.clone(),
        error,
    })
}

/// Nova's `confirm_resize`: the migration is kept. Removes the source copy (undefines the
/// inactive source domain and deletes the source volumes that were copied; shared disks are
/// never touched). Refuses unless the destination holds the instance and the source copy is
/// inactive. Safe to run again after a partial run.
pub fn confirm(plan: &ColdMigrationPlan, timeout: Duration) -> Result<SettleReport, SettleError> {
    let key = plan.key();
    let (source_name, destination_name) = (&plan.source.name, &plan.destination.name);
    let destination = open(&plan.destination, timeout)?;
    let on_destination = destination
        .domain_presence(&key, timeout)
        .map_err(|error| SettleError::Unreachable {
            host: destination_name.clone(),
            error,
        })?;
    if on_destination.is_none() {
        return Err(SettleError::Refused(format!(
            "{destination_name}: holds no {} (UUID {}); confirming would leave no copy anywhere",
            plan.instance_name, plan.instance_uuid
        )));
    }
    let source = open(&plan.source, timeout)?;
    let mut done = Vec::new();
    let partial = |done: &Vec<String>, error| SettleError::Partial {
        done: done.clone(),
        error,
    };
    match source
        .domain_presence(&key, timeout)
        .map_err(|e| partial(&done, e))?
    {
        Some(presence) if presence.active => {
            return Err(SettleError::Refused(format!(
                "{source_name}: {} is running there again; confirming would delete the disks it \
                 uses. Shut it down, or revert",
                plan.instance_name
            )))
        }
        Some(_) => {
            source
                .undefine_domain(&key, timeout)
                .map_err(|e| partial(&done, e))?;
            done.push(format!(
                "{source_name}: removed the definition of {}",
                plan.instance_name
            ));
        }
        None => done.push(format!(
            "{source_name}: definition of {} already removed",
            plan.instance_name
        )),
    }
    for (_, copy) in plan.copied_disks() {
        let deleted = source
            .delete_volume(&copy.source_volume, timeout)
            .map_err(|e| partial(&done, e))?;
        done.push(if deleted {
            format!("{source_name}: deleted {}", copy.source_volume)
        } else {
            format!("{source_name}: {} already deleted", copy.source_volume)
        });
    }
    Ok(SettleReport { steps: done })
}

/// Nova's `revert_resize`: the migration is undone. Stops and undefines the destination copy,
/// deletes the volumes the migration created there, and starts the instance on its source again
/// if it was running before. Refuses if the source no longer holds the instance (confirmed).
/// Changes made inside the guest since it started on the destination are lost. Safe to run
/// again after a partial run.
pub fn revert(plan: &ColdMigrationPlan, timeout: Duration) -> Result<SettleReport, SettleError> {
    let key = plan.key();
    let (source_name, destination_name) = (&plan.source.name, &plan.destination.name);
    let source = open(&plan.source, timeout)?;
    let on_source =
        source
            .domain_presence(&key, timeout)
            .map_err(|error| SettleError::Unreachable {
                host: source_name.clone(),
                error,
            })?;
    let Some(on_source) = on_source else {
        return Err(SettleError::Refused(format!(
            "{source_name}: no longer holds {} (UUID {}), so the migration was confirmed; \
             reverting would leave no copy anywhere",
            plan.instance_name, plan.instance_uuid
        )));
    };
    let destination = open(&plan.destination, timeout)?;
    let mut done = Vec::new();
    let partial = |done: &Vec<String>, error| SettleError::Partial {
        done: done.clone(),
        error,
    };
    let removed = destination
        .remove_domain_copy(&key, timeout)
        .map_err(|e| partial(&done, e))?;
    done.extend(
        removed
            .into_iter()
            .map(|d| format!("{destination_name}: {d}")),
    );
    for (_, copy) in plan.copied_disks() {
        let deleted = destination
            .delete_volume(&copy.destination_volume, timeout)
            .map_err(|e| partial(&done, e))?;
        if deleted {
            done.push(format!(
                "{destination_name}: deleted {}",
                copy.destination_volume
            ));
        }
    }
    if plan.instance_was_running && !on_source.active {
        source
            .start_domain(&key, timeout)
            .map_err(|e| partial(&done, e))?;
        done.push(format!(
            "{source_name}: started {} again",
            plan.instance_name
        ));
    }
    Ok(SettleReport { steps: done })
}

/// What recovering an interrupted cold migration should do, judged from the plan and what each
/// host holds of the instance now (found by UUID). See [`recovery_decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryDecision {
    /// The copy was verified before the step found on the destination could happen: keep it,
    /// and let the operator confirm or revert.
    AwaitingConfirm { reason: String },
    /// Undo it: remove the destination copy, start the guest on its source again.
    RollBack {
        reason: String,
        /// The destination holds a domain with the plan's UUID (stopped hard if it runs).
        remove_destination_domain: bool,
        start_on_source: bool,
    },
    /// The facts contradict each other or the plan: change nothing, say why.
    Refuse { reason: String },
}

/// How a cold migration whose ferry died is settled. Pure: the presences come from the hosts,
/// `rollback_begun` from the history (the dead ferry had started rolling back).
///
/// The order of the forward path is what makes this safe: every copied disk is verified
/// before the definition is written on the destination, and the guest is started there only
/// after that. So a definition (or a running guest) found there proves a verified copy. The
/// source's definition and disks are never touched here; only the destination's copy is
/// removed, and only after the facts show the source still holds the instance.
pub fn recovery_decision(
    plan: &ColdMigrationPlan,
    on_source: Option<&DomainPresence>,
    on_destination: Option<&DomainPresence>,
    rollback_begun: bool,
) -> RecoveryDecision {
    let (name, uuid) = (&plan.instance_name, &plan.instance_uuid);
    let (source_name, destination_name) = (&plan.source.name, &plan.destination.name);
    let refuse = |reason: String| RecoveryDecision::Refuse { reason };
    let Some(on_source) = on_source else {
        // Only a confirm removes the source copy: the destination's may be the only one left.
        return refuse(format!(
            "{source_name}: holds no {name} (UUID {uuid}) any more, so it was confirmed or \
             removed by hand since; ferry will not guess which copy to keep. Check both hosts \
             with `ferry instances` and settle it with virsh"
        ));
    };
    if !on_source.persistent {
        return refuse(format!(
            "{source_name}: {name} runs there with no persistent definition, which ferry never \
             leaves; the destination copy may be the only definition left. Check both hosts \
             with `ferry instances` and settle it with virsh"
        ));
    }
    if let Some(on_destination) = on_destination {
        if on_source.active && on_destination.active {
            return refuse(format!(
                "{name} (UUID {uuid}) runs on both {source_name} and {destination_name}, and \
                 their disks diverge; shut down the copy that should not run, then run \
                 `ferry resume` again"
            ));
        }
        if on_destination.active && !on_destination.persistent {
            return refuse(format!(
                "{destination_name}: {name} runs there with no persistent definition, which \
                 ferry never does; check it, then run `ferry resume` again"
            ));
        }
    }
    let roll_back = |reason: String| RecoveryDecision::RollBack {
        reason,
        remove_destination_domain: on_destination.is_some(),
        // The destination copy is removed first, so after the rollback the guest runs nowhere
        // unless its source copy does.
        start_on_source: plan.instance_was_running && !on_source.active,
    };
    if rollback_begun {
        return roll_back("it had begun rolling back".to_string());
    }
    if on_source.active {
        // Started again on the source (by hand, or never shut down): its disks are ahead of
        // any copy.
        return roll_back(format!("{name} runs on its source {source_name}"));
    }
    match on_destination {
        Some(found) if found.active => RecoveryDecision::AwaitingConfirm {
            reason: format!(
                "{destination_name} runs {name}, which ferry starts only after every copied \
                 disk is verified"
            ),
        },
        Some(_) if !plan.instance_was_running => RecoveryDecision::AwaitingConfirm {
            reason: format!(
                "{destination_name} holds the definition of {name}, which ferry writes only \
                 after every copied disk is verified; it was shut off and stays so"
            ),
        },
        Some(_) => roll_back(format!(
            "{name} was defined on {destination_name} but not started there"
        )),
        None => roll_back(format!(
            "{destination_name} holds no definition of {name} yet"
        )),
    }
}

/// How an interrupted cold migration was settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "recovered_as")]
pub enum Recovery {
    /// Nothing was changed: the verified copy waits on the destination for confirm or revert.
    AwaitingConfirm { reason: String },
    /// The destination copy was removed (`leftovers`: what could not be) and the guest started
    /// on its source again if it was running.
    RolledBack {
        reason: String,
        steps: Vec<String>,
        leftovers: Vec<String>,
    },
}

/// Settles a cold migration whose ferry stopped mid-way (killed, crashed, host rebooted), from
/// its plan and what both hosts hold now: see [`recovery_decision`]. Refuses, changing nothing,
/// when a host does not answer or the facts contradict each other; a partial run is safe to
/// run again (the decision is taken afresh from the facts).
pub fn recover(
    plan: &ColdMigrationPlan,
    rollback_begun: bool,
    timeout: Duration,
) -> Result<Recovery, SettleError> {
    let key = plan.key();
    let (source_name, destination_name) = (&plan.source.name, &plan.destination.name);
    let source = open(&plan.source, timeout)?;
    let destination = open(&plan.destination, timeout)?;
    let presence_on = |connection: &HostConnection, host: &String| {
        connection
            .domain_presence(&key, timeout)
            .map_err(|error| SettleError::Unreachable {
                host: host.clone(),
                error,
            })
    };
    let on_source = presence_on(&source, source_name)?;
    let on_destination = presence_on(&destination, destination_name)?;
    let decision = recovery_decision(
        plan,
        on_source.as_ref(),
        on_destination.as_ref(),
        rollback_begun,
    );
    let (reason, remove_destination_domain, start_on_source) = match decision {
        RecoveryDecision::Refuse { reason } => return Err(SettleError::Refused(reason)),
        RecoveryDecision::AwaitingConfirm { reason } => {
            return Ok(Recovery::AwaitingConfirm { reason })
        }
        RecoveryDecision::RollBack {
            reason,
            remove_destination_domain,
            start_on_source,
        } => (reason, remove_destination_domain, start_on_source),
    };
    let mut done = Vec::new();
    let partial = |done: &Vec<String>, error| SettleError::Partial {
        done: done.clone(),
        error,
    };
    if remove_destination_domain {
        // By UUID: a domain of the same name there is another guest and stays.
        let removed = destination
            .remove_domain_copy(&key, timeout)
            .map_err(|e| partial(&done, e))?;
        done.extend(
            removed
                .into_iter()
                .map(|d| format!("{destination_name}: {d}")),
        );
    }
    // First the guest, then the disk cleanup, which may have to wait for the destination.
    if start_on_source {
        source
            .start_domain(&key, timeout)
            .map_err(|e| partial(&done, e))?;
        done.push(format!(
            "{source_name}: started {} again",
            plan.instance_name
        ));
    }
    let leftovers = delete_destination_volumes(plan, destination, &mut done, timeout);
    Ok(Recovery::RolledBack {
        reason,
        steps: done,
        leftovers,
    })
}

/// Deletes every volume the plan creates on the destination, retrying for the plan's cleanup
/// window (a killed ferry's upload keeps its volume busy until libvirt's keep-alive drops the
/// dead connection). Returns what is still there.
///
/// Every one of these volumes is the migration's own: `gather` refuses a plan, and the start
/// (which gathers again on fresh facts before changing anything) refuses to begin, when the
/// destination pool already holds a volume of that name. So none existed there before this
/// migration, and deleting them loses nothing of anyone's.
fn delete_destination_volumes(
    plan: &ColdMigrationPlan,
    destination: HostConnection,
    done: &mut Vec<String>,
    timeout: Duration,
) -> Vec<String> {
    let destination_name = &plan.destination.name;
    let deadline = Instant::now() + plan.options.destination_cleanup_window;
    let mut volumes_left: Vec<VolumeRef> = plan
        .copied_disks()
        .map(|(_, copy)| copy.destination_volume.clone())
        .collect();
    let mut connection = Some(destination);
    // Why each volume left was not deleted, as last seen; "unreachable" if never reached.
    let mut last_errors: BTreeMap<String, String> = BTreeMap::new();
    loop {
        if let Some(destination) = &connection {
            let mut still_left = Vec::new();
            for volume in volumes_left {
                match destination.delete_volume(&volume, timeout) {
                    Ok(true) => done.push(format!("{destination_name}: deleted the copy {volume}")),
                    Ok(false) => {}
                    Err(error) => {
                        last_errors.insert(volume.to_string(), error.to_string());
                        still_left.push(volume);
                    }
                }
            }
            volumes_left = still_left;
        }
        if volumes_left.is_empty() || Instant::now() >= deadline {
            break;
        }
        thread::sleep(CLEANUP_RETRY_PAUSE);
        // A fresh connection each retry: the old one may be dead after a network outage.
        connection = HostConnection::open(&plan.destination.uri, timeout).ok();
    }
    volumes_left
        .iter()
        .map(|volume| {
            let why = last_errors
                .get(&volume.to_string())
                .map_or("unreachable", String::as_str);
            format!("{destination_name}: volume {volume} ({why})")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, path: &str, active: bool) -> PoolFacts {
        PoolFacts {
            name: name.into(),
            target_path: path.into(),
            active,
            available_bytes: 1 << 30,
        }
    }

    fn sample_plan() -> ColdMigrationPlan {
        ColdMigrationPlan {
            instance_name: "cold-a".into(),
            instance_uuid: "6f0c2a4e-0000-4000-8000-000000000001".into(),
            source: HostTarget {
                name: "hv1".into(),
                uri: "qemu+ssh://root@hv1/system".into(),
            },
            destination: HostTarget {
                name: "hv2".into(),
                uri: "qemu+ssh://root@hv2/system".into(),
            },
            instance_memory_bytes: 128 << 20,
            instance_was_running: true,
            disks: vec![
                ColdDisk {
                    target: "vdb".into(),
                    source: "/var/lib/libvirt/images/cold-a.qcow2".into(),
                    action: DiskAction::Copy(DiskCopy {
                        source_volume: VolumeRef {
                            pool: "local".into(),
                            name: "cold-a.qcow2".into(),
                        },
                        destination_volume: VolumeRef {
                            pool: "local".into(),
                            name: "cold-a.qcow2".into(),
                        },
                        destination_path: "/var/lib/libvirt/images/cold-a.qcow2".into(),
                        format: "qcow2".into(),
                        capacity_bytes: 64 << 20,
                        stream_bytes: 33 << 20,
                        source_attribute: "file".into(),
                    }),
                },
                ColdDisk {
                    target: "vdc".into(),
                    source: "/var/lib/ferry-lab/shared/instances/x.img".into(),
                    action: DiskAction::Shared,
                },
            ],
            shared_storage_prefixes: vec!["/var/lib/ferry-lab/shared".into()],
            options: ColdOptions::default(),
            call_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn the_plan_round_trips_through_json_with_readable_durations() {
        let plan = sample_plan();
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["call_timeout_ms"], 30_000);
        assert_eq!(json["options"]["shutdown_timeout_ms"], 60_000);
        assert_eq!(json["disks"][0]["action"]["action"], "copy");
        assert_eq!(json["disks"][1]["action"]["action"], "shared");
        let back: ColdMigrationPlan = serde_json::from_value(json).unwrap();
        assert_eq!(back, plan);
        assert_eq!(plan.bytes_to_copy(), 33 << 20);
        assert_eq!(plan.copied_disks().count(), 1);
    }

    #[test]
    fn the_copy_goes_to_the_pool_of_the_same_directory_else_of_the_same_name() {
        let source = pool("local", "/var/lib/libvirt/images", true);
        let same_dir = [
            pool("default", "/var/lib/libvirt/images", true),
            pool("local", "/srv/local", true),
        ];
        assert_eq!(
            destination_pool_for(&source, &same_dir).unwrap().name,
            "default"
        );
        let same_name = [pool("local", "/srv/local", true)];
        assert_eq!(
            destination_pool_for(&source, &same_name)
                .unwrap()
                .target_path,
            "/srv/local"
        );
        let inactive = [pool("local", "/var/lib/libvirt/images", false)];
        assert_eq!(destination_pool_for(&source, &inactive), None);
    }

    #[test]
    fn drift_since_planning_is_named() {
        let plan = sample_plan();
        assert_eq!(plan_drift(&plan, &plan), None);
        let mut stopped = plan.clone();
        stopped.instance_was_running = false;
        assert_eq!(plan_drift(&plan, &stopped).as_deref(), Some("was shut off"));
        let mut other_disks = plan.clone();
        other_disks.disks.pop();
        assert_eq!(
            plan_drift(&plan, &other_disks).as_deref(),
            Some("its disks changed")
        );
        // Sizes grow as the guest writes: not a change of layout.
        let mut grown = plan.clone();
        if let DiskAction::Copy(copy) = &mut grown.disks[0].action {
            copy.stream_bytes += 1 << 20;
        }
        assert_eq!(plan_drift(&plan, &grown), None);
    }

    #[test]
    fn the_meter_reports_rate_and_eta_over_its_window() {
        let mut meter = CopyMeter::new(Duration::from_secs(3));
        let mib = 1u64 << 20;
        assert_eq!(meter.record(Duration::ZERO, 0, 100 * mib), (None, None));
        let (rate, eta) = meter.record(Duration::from_secs(1), 10 * mib, 100 * mib);
        assert_eq!(rate, Some(10 * mib));
        assert_eq!(eta, Some(9_000));
        // A stall: the rate falls within the window and the ETA grows.
        for second in 2..=5 {
            meter.record(Duration::from_secs(second), 10 * mib, 100 * mib);
        }
        let (rate, eta) = meter.record(Duration::from_secs(6), 10 * mib, 100 * mib);
        assert_eq!(rate, Some(0));
        assert_eq!(eta, None);
    }

    #[test]
    fn versions_encode_like_libvirt() {
        assert_eq!(encoded_version("10.0.2"), Some(10_000_002));
        assert_eq!(encoded_version("11.3"), Some(11_003_000));
        assert_eq!(encoded_version("x"), None);
    }

    #[test]
    fn outcomes_map_to_history_kinds_and_serialize_tagged() {
        let refused = ColdOutcome::Refused { detail: "x".into() };
        assert_eq!(refused.kind(), OutcomeKind::Failed);
        let rolled = ColdOutcome::RolledBack {
            detail: "copy interrupted".into(),
            leftovers: vec![],
        };
        assert_eq!(rolled.kind(), OutcomeKind::RolledBack);
        let json = serde_json::to_value(ColdUpdate::Finished(rolled)).unwrap();
        assert_eq!(json["update"], "finished");
        assert_eq!(json["outcome"], "rolled_back");
        let phase = serde_json::to_value(ColdUpdate::Phase(ColdPhase::Copying {
            disk_number: 1,
            disk_count: 2,
            target: "vdb".into(),
        }))
        .unwrap();
        assert_eq!(phase["phase"], "copying");
        assert_eq!(phase["disk_number"], 1);
    }

    fn held(active: bool) -> Option<DomainPresence> {
        Some(DomainPresence {
            name: "cold-a".into(),
            uuid: "6f0c2a4e-0000-4000-8000-000000000001".into(),
            active,
            persistent: true,
        })
    }

    /// The decision's kind, and for a rollback what it does: (destination removed, started).
    fn decided(
        plan: &ColdMigrationPlan,
        on_source: Option<DomainPresence>,
        on_destination: Option<DomainPresence>,
        rollback_begun: bool,
    ) -> (&'static str, bool, bool) {
        match recovery_decision(
            plan,
            on_source.as_ref(),
            on_destination.as_ref(),
            rollback_begun,
        ) {
            RecoveryDecision::AwaitingConfirm { .. } => ("awaiting", false, false),
            RecoveryDecision::RollBack {
                remove_destination_domain,
                start_on_source,
                ..
            } => ("roll back", remove_destination_domain, start_on_source),
            RecoveryDecision::Refuse { .. } => ("refuse", false, false),
        }
    }

    #[test]
    fn an_interrupted_running_guest_awaits_confirm_only_once_started_on_the_destination() {
        let plan = sample_plan();
        assert_eq!(
            decided(&plan, held(false), held(true), false),
            ("awaiting", false, false)
        );
        // Defined but not started: the start is what a running guest's migration ends with.
        assert_eq!(
            decided(&plan, held(false), held(false), false),
            ("roll back", true, true)
        );
        // Killed during the copy or the verification: nothing defined there yet.
        assert_eq!(
            decided(&plan, held(false), None, false),
            ("roll back", false, true)
        );
        // Killed while it shut down, or someone started it again: it runs, nothing to start.
        assert_eq!(
            decided(&plan, held(true), None, false),
            ("roll back", false, false)
        );
        assert_eq!(
            decided(&plan, held(true), held(false), false),
            ("roll back", true, false)
        );
    }

    #[test]
    fn an_interrupted_shut_off_guest_awaits_confirm_once_defined_on_the_destination() {
        let mut plan = sample_plan();
        plan.instance_was_running = false;
        assert_eq!(
            decided(&plan, held(false), held(false), false),
            ("awaiting", false, false)
        );
        // Started there by hand after the define: still a verified copy.
        assert_eq!(
            decided(&plan, held(false), held(true), false),
            ("awaiting", false, false)
        );
        // Never started on the source by the rollback: it was shut off when planned.
        assert_eq!(
            decided(&plan, held(false), None, false),
            ("roll back", false, false)
        );
    }

    #[test]
    fn a_rollback_the_dead_ferry_had_begun_is_finished() {
        let plan = sample_plan();
        assert_eq!(
            decided(&plan, held(false), held(true), true),
            ("roll back", true, true)
        );
        assert_eq!(
            decided(&plan, held(false), None, true),
            ("roll back", false, true)
        );
        let mut shut_off = plan.clone();
        shut_off.instance_was_running = false;
        assert_eq!(
            decided(&shut_off, held(false), held(false), true),
            ("roll back", true, false)
        );
    }

    #[test]
    fn contradicting_facts_are_refused_with_the_reason() {
        let plan = sample_plan();
        let RecoveryDecision::Refuse { reason } =
            recovery_decision(&plan, held(true).as_ref(), held(true).as_ref(), false)
        else {
            panic!("running on both hosts must be refused");
        };
        assert_eq!(
            reason,
            "cold-a (UUID 6f0c2a4e-0000-4000-8000-000000000001) runs on both hv1 and hv2, and \
             their disks diverge; shut down the copy that should not run, then run \
             `ferry resume` again"
        );
        // Running on both is refused even if the dead ferry had begun rolling back.
        assert_eq!(decided(&plan, held(true), held(true), true).0, "refuse");
        // The source copy is gone (confirmed by hand?): the destination's may be the only one.
        for on_destination in [None, held(false), held(true)] {
            assert_eq!(decided(&plan, None, on_destination, false).0, "refuse");
        }
        let transient = |active| {
            held(active).map(|p| DomainPresence {
                persistent: false,
                ..p
            })
        };
        assert_eq!(decided(&plan, transient(true), None, false).0, "refuse");
        assert_eq!(
            decided(&plan, held(false), transient(true), false).0,
            "refuse"
        );
    }
}
