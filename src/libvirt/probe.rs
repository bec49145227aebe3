//! The shared-storage probe, Nova's check done through libvirt's storage pools: does the
//! destination see the same directory as the source? See [`probe_plan`] for where it looks and
//! `probe_directory` for how.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use virt::storage_vol::StorageVol;
use virt::sys;

use super::storage;
use super::{HostConnection, LibvirtError};
use crate::precheck::{DiskFact, DiskStorage, SharedStorageProbe};

/// Everything the shared-storage probe creates (volumes, transient pools) is named with this
/// prefix, so a leftover says what it is and tests can look for leftovers.
pub const PROBE_NAME_PREFIX: &str = "ferry-probe-";

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
pub async fn probe_shared_storage(
    source: (&HostConnection, &str),
    destination: (&HostConnection, &str),
    plan: &ProbePlan,
    timeout: Duration,
) -> (SharedStorageProbe, Option<u64>) {
    let mut results = Vec::new();
    let mut free_bytes: Option<u64> = None;
    for directory in &plan.directories {
        let (result, available) = probe_directory(source, destination, directory, timeout).await;
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
async fn probe_directory(
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
        destination
            .run(
                format!("creating probe volume {volume} in {directory}"),
                timeout,
                move |connect| {
                    let opened = storage::open_pool_for_directory(connect, &directory, &pool_name)?;
                    // A pool's available space is as of its last refresh.
                    let _ = opened.pool.refresh(0);
                    let available_bytes = opened.pool.info().ok().map(|info| info.available);
                    let created = StorageVol::create_xml(
                        &opened.pool,
                        &storage::probe_volume_xml(&volume),
                        0,
                    );
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
            .await
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
                )
                .await;
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
        source
            .run(
                format!("looking for probe volume {volume} in {directory}"),
                timeout,
                move |connect| {
                    let opened = storage::open_pool_for_directory(connect, &directory, &pool_name)?;
                    let found = opened
                        .pool
                        .refresh(0)
                        .map_err(|e| {
                            LibvirtError::call(format!("refreshing pool {}", opened.name), e)
                        })
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
            .await
    };

    let cleanup = {
        let (volume, pool_name, transient) = (
            volume.clone(),
            placed.pool_name.clone(),
            placed.created_transient,
        );
        destination
            .run(
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
            .await
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
                    let _ = source
                        .run(
                            format!("refreshing pool {pool_name}"),
                            timeout,
                            move |connect| {
                                if let Ok(pool) = connect.lookup_storage_pool_by_name(&pool_name) {
                                    let _ = pool.refresh(0);
                                }
                                Ok(())
                            },
                        )
                        .await;
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
async fn remove_probe_after_timeout(
    destination: &HostConnection,
    directory: &str,
    volume: &str,
    transient_pool: &str,
    timeout: Duration,
) {
    let path = format!("{}/{volume}", directory.trim_end_matches('/'));
    let transient_pool = transient_pool.to_string();
    let outcome = destination
        .run(
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
        )
        .await;
    if let Err(error) = outcome {
        tracing::warn!("shared-storage probe after a timeout: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::units::MIB;

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
}
