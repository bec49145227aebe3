//! Raw readings for the prechecks, one typed call per host: what the source tells about an
//! instance (state, maximum memory, disks with their storage class and allocation, platform,
//! running job) and what a destination tells (hypervisor, free memory, CPU compatibility).
//! Judging them is the pure checks' work ([`crate::precheck`]); choosing which hosts to read is
//! the engine's ([`crate::engine::plan`]).
//!
//! - Memory: `virDomainGetInfo`'s maximum, which the guest may balloon up to.
//! - Disks: the live XML (the persistent one for an inactive guest); a disk's storage class
//!   comes from the config's `shared_storage_prefixes`, its size from `virDomainGetBlockInfo`.
//! - Destination free memory: see [`free_memory_bytes`].
//! - Hypervisor type and version: `virConnectGetType` and `virConnectGetVersion`.
//! - CPU: see [`super::cpu`].

use std::time::Duration;

use virt::connect::Connect;
use virt::sys;

use super::cpu::{cpu_compare_result, cpu_comparison, guest_platform, host_cpu_xml, GuestCpu};
use super::facts::disks_from_domain_xml;
use super::job_stats::{self, HypervisorCpuQuery, NodeMemoryStats};
use super::nova_metadata::nova_ownership_from_domain_xml;
use super::{HostConnection, LibvirtError};
use crate::model::domain::{DiskFacts, DiskSource, DomainRunState, NovaOwnership};
use crate::model::storage::{classify_disk, Storage};
use crate::precheck::{CpuCompareResult, DiskFact, DiskStorage, HypervisorInfo, InstanceState};

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

/// What the source tells about the instance.
#[derive(Debug, Clone)]
pub struct SourceReading {
    pub state: InstanceState,
    pub memory_bytes: u64,
    pub disks: Vec<DiskFact>,
    pub kernel: Option<String>,
    /// What to ask the destination about the guest's CPU, or why nothing is asked.
    pub cpu_query: Result<HypervisorCpuQuery, String>,
    pub hypervisor: Option<HypervisorInfo>,
    /// The job libvirt runs on the domain now, by operation ("migration"), if any.
    pub job_in_progress: Option<String>,
    /// Nova's metadata in the domain XML: Nova, not ferry, moves this domain.
    pub nova: Option<NovaOwnership>,
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
        nova: nova_ownership_from_domain_xml(&xml),
        state: InstanceState::from_run_state(DomainRunState::from_libvirt(info.state)),
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
pub struct DestinationReading {
    pub hypervisor: Option<HypervisorInfo>,
    pub free_memory_bytes: Option<u64>,
    pub cpu: CpuCompareResult,
}

impl DestinationReading {
    pub fn not_contacted() -> DestinationReading {
        DestinationReading {
            hypervisor: None,
            free_memory_bytes: None,
            cpu: CpuCompareResult::Unknown {
                reason: "the destination was not contacted".to_string(),
            },
        }
    }
}

impl HostConnection {
    /// The state of domain `name` on this host; None when the host does not define it.
    pub async fn domain_state(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<DomainRunState>, LibvirtError> {
        let name = name.to_string();
        self.run(format!("looking up {name}"), timeout, move |connect| {
            domain_state_if_defined(connect, &name)
        })
        .await
    }

    /// What this host tells about `instance` for the prechecks; None when it does not define
    /// it. One call: a handful of libvirt requests on the same connection.
    pub async fn read_instance(
        &self,
        instance: &str,
        shared_storage_prefixes: &[String],
        timeout: Duration,
    ) -> Result<Option<SourceReading>, LibvirtError> {
        let (instance, prefixes) = (instance.to_string(), shared_storage_prefixes.to_vec());
        self.run(format!("reading {instance}"), timeout, move |connect| {
            read_source(connect, &instance, &prefixes)
        })
        .await
    }

    /// The host's memory as its kernel counts it (total, free, buffers, cache).
    pub async fn node_memory(&self, timeout: Duration) -> Result<NodeMemoryStats, LibvirtError> {
        self.run(
            "reading memory statistics",
            timeout,
            job_stats::node_memory_stats,
        )
        .await
    }

    /// Free memory of the whole host, as the memory check counts it.
    pub async fn free_memory(&self, timeout: Duration) -> Result<u64, LibvirtError> {
        self.run("reading free memory", timeout, free_memory_bytes)
            .await
    }

    /// One call on the destination. Each fact fails on its own: a host whose memory statistics
    /// fail can still compare CPUs.
    pub async fn read_destination(
        &self,
        destination: &str,
        cpu_query: Result<HypervisorCpuQuery, String>,
        timeout: Duration,
    ) -> DestinationReading {
        let host = destination.to_string();
        let reading = self
            .run(
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
            )
            .await;
        reading.unwrap_or_else(|error| DestinationReading {
            hypervisor: None,
            free_memory_bytes: None,
            cpu: CpuCompareResult::Unknown {
                reason: error.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB_DISK_GUEST_XML: &str = include_str!("../../tests/fixtures/lab_disk_guest.xml");

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
            InstanceState::from_run_state(DomainRunState::Blocked),
            InstanceState::Running
        );
        assert_eq!(
            InstanceState::from_run_state(DomainRunState::ShutOff),
            InstanceState::ShutOff
        );
        assert_eq!(
            InstanceState::from_run_state(DomainRunState::Crashed),
            InstanceState::Other("crashed".into())
        );
    }
}
