//! Shared or host-local: whether a disk's data must travel with a migrating instance.
//!
//! libvirt does not know whether a path is on storage other hosts also see, so ferry uses a
//! heuristic an operator can steer: a file, block or directory disk whose path lies under one
//! of the configured `shared_storage_prefixes` (NFS, CephFS, GlusterFS mounts) is shared;
//! network disks (rbd, iscsi, nbd, gluster…) are shared by nature; any other path, and any
//! storage-pool volume, is host-local. A wrong guess is corrected by listing the mount point.

use serde::Serialize;

use super::domain::DiskSource;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    Shared,
    Local,
    /// Some disks shared, some local (only for an instance summary).
    Mixed,
    /// No medium (empty CD-ROM drive): nothing to copy.
    NoMedium,
}

impl Storage {
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Shared => "shared",
            Storage::Local => "local",
            Storage::Mixed => "mixed",
            Storage::NoMedium => "none",
        }
    }
}

pub fn classify_disk(source: &DiskSource, shared_prefixes: &[String]) -> Storage {
    match source {
        DiskSource::Path { path } => {
            if shared_prefixes.iter().any(|prefix| is_under(path, prefix)) {
                Storage::Shared
            } else {
                Storage::Local
            }
        }
        DiskSource::Network { .. } => Storage::Shared,
        DiskSource::Volume { .. } => Storage::Local,
        DiskSource::None => Storage::NoMedium,
    }
}

/// Path-component prefix: `/srv/nfs` covers `/srv/nfs/a.img`, not `/srv/nfs2/a.img`, and a
/// `..` in the path never counts as under the prefix.
fn is_under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if path.split('/').any(|part| part == "..") {
        return false;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with('/') || (rest.is_empty() && !prefix.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> DiskSource {
        DiskSource::Path { path: p.into() }
    }

    #[test]
    fn classifies_by_prefix_and_kind() {
        let prefixes = vec![
            "/var/lib/ferry-lab/shared".to_string(),
            "/mnt/nfs/".to_string(),
        ];
        let cases = [
            (path("/var/lib/ferry-lab/shared/g1.qcow2"), Storage::Shared),
            (path("/mnt/nfs/a/b.raw"), Storage::Shared),
            (path("/mnt/nfs2/b.raw"), Storage::Local),
            (
                path("/var/lib/ferry-lab/shared/../local/g1.qcow2"),
                Storage::Local,
            ),
            (path("/var/lib/libvirt/images/g1.qcow2"), Storage::Local),
            (path("/dev/vg0/g1"), Storage::Local),
            (
                DiskSource::Network {
                    protocol: "rbd".into(),
                    name: "p/g1".into(),
                },
                Storage::Shared,
            ),
            (
                DiskSource::Volume {
                    pool: "default".into(),
                    volume: "g1".into(),
                },
                Storage::Local,
            ),
            (DiskSource::None, Storage::NoMedium),
        ];
        for (source, expected) in cases {
            assert_eq!(classify_disk(&source, &prefixes), expected, "{source:?}");
        }
    }
}
