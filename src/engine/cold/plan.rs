//! Planning a cold migration: find the host that holds the instance, gather facts from both
//! hosts through the door, and judge them with the cold prechecks. What decides (the
//! destination pool, the free-space figure, the drift since planning) is plain functions over
//! the facts; only the gathering waits on libvirt.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::door;
use super::resize::{self, Resize};
use super::{ColdDisk, ColdMigrationPlan, ColdOptions, DiskAction, DiskCopy, HostTarget};
use crate::config::Config;
use crate::libvirt::facts::disks_from_domain_xml;
use crate::libvirt::guest_size::{defined_size, edit_guest_size};
use crate::libvirt::lifecycle::DomainKey;
use crate::libvirt::volume_copy::{PoolFacts, VolumeRef};
use crate::libvirt::{HostConnection, LibvirtError};
use crate::model::domain::{DiskSource, HostFacts, NovaOwnership};
use crate::model::storage::{classify_disk, Storage};
use crate::model::HostName;
use crate::precheck::nova::{NovaCloudHint, NovaManagedRefusal};
use crate::precheck::{
    self, unreachable_note, BlockMigrationChoice, CpuCompareResult, DiskFact, DiskStorage,
    HypervisorInfo, InstanceState, PrecheckFacts, PrecheckReport, SharedStorageProbe,
};

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
    /// Nova owns the domain: Nova, not ferry, migrates it.
    #[error("{0}")]
    NovaManaged(Box<NovaManagedRefusal>),
}

/// Plans a cold migration of `instance` to `destination`: finds the host that holds it,
/// gathers facts from both hosts and runs the cold prechecks.
pub async fn plan(
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

    let placements = crate::engine::plan::find_instance(config, instance).await;
    let mut holders: Vec<String> = placements.found.into_iter().map(|(host, _)| host).collect();
    let unreachable = placements.unreachable;
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
    let source = door::open(&source_target.uri, timeout)
        .await
        .map_err(|error| ColdPlanError::Source {
            host: source_name.clone(),
            error,
        })?;
    let destination_connection = door::open(&destination_target.uri, timeout).await;
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
    .await
    .map_err(|error| ColdPlanError::Source {
        host: source_name.clone(),
        error,
    })?;
    if let Some(nova) = gathered.nova {
        return Err(ColdPlanError::NovaManaged(Box::new(NovaManagedRefusal {
            instance: instance.to_string(),
            cloud: NovaCloudHint::for_host(&config.clouds, &source_name, &source_target.uri),
            host: source_name,
            nova,
        })));
    }
    Ok(ColdPlanning {
        report: gathered.report,
        plan: gathered.plan,
    })
}

/// The facts of one moment, judged: what `plan` returns, and what `start` checks again.
pub(super) struct Gathered {
    pub(super) report: PrecheckReport,
    pub(super) plan: Option<ColdMigrationPlan>,
    /// The source's persistent definition, defined on the destination later.
    pub(super) definition_xml: String,
    /// Nova's claim on the domain; `plan` refuses it with the cloud to use.
    pub(super) nova: Option<NovaOwnership>,
}

/// "10.0.2" back into libvirt's encoding (major × 1,000,000 + minor × 1,000 + release).
pub(super) fn encoded_version(version: &str) -> Option<u64> {
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
pub(super) async fn gather(
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

    let domain = door::domains(source, timeout)
        .await?
        .into_iter()
        .find(|d| d.name == instance)
        .ok_or_else(|| LibvirtError::Call {
            context: format!("{source_host}: {instance}"),
            message: "no longer defined here".into(),
        })?;
    let key = DomainKey::Name(instance.to_string());
    let definition_xml = door::domain_definition_xml(source, &key, timeout).await?;
    if !domain.persistent {
        problems.push(format!(
            "{instance}: is transient on {source_host}; powering it off would make it vanish"
        ));
    }
    if let Some(nova) = &domain.nova {
        // `plan` refuses earlier with the cloud to use; this keeps a start on fresh facts
        // from moving a domain Nova took over since.
        problems.push(format!(
            "{instance}: is managed by OpenStack Nova on {source_host} ({}); migrate it through \
             Nova, not libvirt",
            nova.server_label()
        ));
    }
    if domain.job_running {
        problems.push(format!(
            "{instance}: a libvirt job (migration, backup…) is running on it"
        ));
    }
    let source_facts = door::host_facts(source, timeout).await?;
    let source_pools = source.storage_pools(timeout).await?;

    // A resize to the guest's own host (Nova's allow_resize_to_same_host) copies nothing and
    // rewrites the one definition there; without a new size that host stays refused.
    let resizing = options.new_size.filter(|n| !n.is_empty());
    let same_host = source_host.eq_ignore_ascii_case(destination_host);
    let in_place = resizing.is_some() && same_host;
    let mut resize = None;
    if let Some(new_size) = resizing {
        match defined_size(&definition_xml) {
            Err(e) => problems.push(format!("{instance}: reading its size: {e}")),
            Ok(from) => {
                let edited = edit_guest_size(
                    &definition_xml,
                    new_size.vcpus,
                    new_size.memory_mib.map(|mib| mib << 10),
                );
                match resize::request_problem(
                    instance,
                    source_host,
                    Some(&new_size),
                    from,
                    in_place,
                ) {
                    Some(problem) => problems.push(problem),
                    None => match edited {
                        Err(e) => problems.push(format!("{instance}: {e}")),
                        Ok(_) => {
                            resize = Some(Resize {
                                from,
                                to: new_size.applied_to(from),
                                previous_definition_xml: in_place.then(|| definition_xml.clone()),
                            })
                        }
                    },
                }
            }
        }
    }

    // The destination's side; unreachable leaves these empty and the up-check fails.
    let destination_side = match destination {
        Ok(connection) => Some((
            door::host_facts(connection, timeout).await,
            connection.storage_pools(timeout).await,
            door::domain_presence(connection, &key, timeout).await,
            door::domain_presence(connection, &DomainKey::Uuid(domain.uuid.clone()), timeout).await,
        )),
        Err(_) => None,
    };
    let mut destination_up = destination.is_ok();
    let mut destination_facts = None;
    let mut destination_pools = Vec::new();
    if let Some((facts, pools, by_name, by_uuid)) = destination_side {
        match (facts, pools, by_name, by_uuid) {
            (Ok(facts), Ok(pools), Ok(by_name), Ok(by_uuid)) => {
                if let Some(found) = by_name.or(by_uuid).filter(|_| !same_host) {
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
                let attribute =
                    if crate::libvirt::lifecycle::disk_is_block(&definition_xml, &disk.target) {
                        "dev"
                    } else {
                        "file"
                    };
                let volume = if storage == Storage::Shared {
                    None
                } else {
                    source.volume_by_path(path, timeout).await?
                };
                (path.clone(), attribute, volume)
            }
            DiskSource::Volume { pool, volume } => {
                let reference = VolumeRef {
                    pool: pool.clone(),
                    name: volume.clone(),
                };
                let found = source.volume(&reference, timeout).await?;
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
        if storage == Storage::Shared || same_host {
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
        let taken = match destination {
            Ok(connection) => connection
                .volume(&destination_volume, timeout)
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        if let Some(taken) = taken {
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
        instance_state: InstanceState::from_run_state(domain.state),
        // A resize needs room for its new size.
        instance_memory_bytes: resize
            .as_ref()
            .map_or(domain.memory_bytes, |r| r.to.memory_kib << 10),
        disks: disk_facts,
        source_host: source_host.clone(),
        source_host_up: true,
        destination_host: destination_host.clone(),
        destination_host_up: destination_up,
        destination_host_problem: None,
        destination_free_memory_bytes: resize::memory_room_bytes(
            destination_facts.as_ref().map(|f| f.memory_free_bytes),
            in_place,
            InstanceState::from_run_state(domain.state) == InstanceState::Running,
            domain.memory_bytes,
        ),
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
    let mut report = precheck::run_cold(&facts, &problems);
    if same_host && resize.is_none() {
        report = resize::own_host_needs_a_size(report, instance, source_host);
    }
    if let Some(resize) = &resize {
        report = resize::resize_checks(
            report,
            destination_host,
            resize,
            destination_facts.as_ref().map(|f| f.cpu_count),
        );
    }
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
        resize,
    });
    Ok(Gathered {
        report,
        plan,
        definition_xml,
        nova: domain.nova,
    })
}

/// What changed between planning and starting that the plan depends on, if anything.
pub(super) fn plan_drift(plan: &ColdMigrationPlan, fresh: &ColdMigrationPlan) -> Option<String> {
    if fresh.instance_uuid != plan.instance_uuid {
        return Some(format!(
            "is another domain now (UUID {} instead of {})",
            fresh.instance_uuid, plan.instance_uuid
        ));
    }
    if fresh.resize != plan.resize {
        return Some("its definition (or its size) changed".to_string());
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
