//! Starting live migrations, resuming a broken post-copy stream, and the volumes a block
//! migration copies into. The migrate call blocks for the whole migration, so it runs on the
//! blocking pool with no bound, while a monitor polls the job from another connection.

use std::time::Duration;

use virt::domain::MigrateParameters;

use super::lifecycle::{lookup, DomainKey};
use super::{HostConnection, LibvirtError};

/// What a peer-to-peer live migration is asked to do: the one request type of ferry's live
/// migrations (the engine's plan becomes one; the lab tests build one by hand). The libvirt
/// flags are built from it here, nowhere else.
#[derive(Debug, Clone, Default)]
pub struct LiveMigrationRequest {
    pub domain_name: String,
    /// The destination's libvirt URI as the *source* libvirtd will open it (peer-to-peer).
    pub destination_uri: String,
    /// Bandwidth cap in MiB/s; None leaves libvirt's default (unlimited).
    pub bandwidth_mib_per_second: Option<u64>,
    /// libvirt throttles the guest's vCPUs when the copy does not converge.
    pub auto_converge: bool,
    /// Start with `VIR_MIGRATE_POSTCOPY` so that the migration may switch to post-copy.
    pub post_copy_permitted: bool,
    /// Copy these local disks (target names such as `vdb`) with `NON_SHARED_INC`.
    pub copied_disks: Vec<String>,
    /// Where QEMU's stream goes; None lets libvirt pick an address and port.
    pub stream: Option<MigrationStream>,
}

impl LiveMigrationRequest {
    /// LIVE | PEER2PEER | PERSIST_DEST | UNDEFINE_SOURCE: the domain keeps running, the source
    /// libvirtd drives the migration (so it survives ferry's death), and on success the
    /// definition moves with it. Then what the request asks for on top.
    pub fn flags(&self) -> u32 {
        let mut flags = virt::sys::VIR_MIGRATE_LIVE
            | virt::sys::VIR_MIGRATE_PEER2PEER
            | virt::sys::VIR_MIGRATE_PERSIST_DEST
            | virt::sys::VIR_MIGRATE_UNDEFINE_SOURCE;
        if self.auto_converge {
            flags |= virt::sys::VIR_MIGRATE_AUTO_CONVERGE;
        }
        if self.post_copy_permitted {
            flags |= virt::sys::VIR_MIGRATE_POSTCOPY;
        }
        if !self.copied_disks.is_empty() {
            flags |= virt::sys::VIR_MIGRATE_NON_SHARED_INC;
        }
        flags
    }

    fn parameters(&self) -> MigrateParameters {
        MigrateParameters {
            bandwidth: self.bandwidth_mib_per_second,
            // The cap holds in post-copy too (libvirt leaves that phase unlimited otherwise):
            // the operator capped the link, not a phase. MiB/s, like the pre-copy cap (virsh's
            // --postcopy-bandwidth passes it as is; given in bytes, 8 MiB/s became 8 TiB/s and
            // a post-copy meant to last a minute on the lab ended in 3 s).
            bandwidth_postcopy: self
                .bandwidth_mib_per_second
                .filter(|_| self.post_copy_permitted),
            migrate_disks: self.copied_disks.clone(),
            ..Default::default()
        }
    }
}

/// How a launch call ended without a libvirt error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchEnd {
    /// libvirt reported the migration done.
    Migrated,
    /// Refused before anything moved: another job runs on the guest (`what`: "a migration
    /// job"), seen by the last look on the call's own connection.
    RefusedBusy { what: String },
}

impl HostConnection {
    /// Runs a peer-to-peer live migration to its end and returns libvirt's error verbatim, with
    /// context, if it fails. Just before migrating, on this connection, it looks once more for
    /// a job on the guest: one migration per instance, whoever started the other. No timeout:
    /// the call lasts as long as the migration.
    pub async fn migrate_live(
        &self,
        request: &LiveMigrationRequest,
    ) -> Result<LaunchEnd, LibvirtError> {
        let request = request.clone();
        let context = format!(
            "live migration of {} to {}",
            request.domain_name, request.destination_uri
        );
        self.run_unbounded(context.clone(), move |connect| {
            let key = DomainKey::Name(request.domain_name.clone());
            let domain = lookup(connect, &key)
                .map_err(|e| LibvirtError::call(format!("looking up {key}"), e))?;
            if let Some(what) = super::readings::job_in_progress(&domain)? {
                return Ok(LaunchEnd::RefusedBusy { what });
            }
            let flags = request.flags();
            let mut parameters = request.parameters();
            let Some(stream) = &request.stream else {
                return domain
                    .migrate_to_uri3(Some(&request.destination_uri), parameters, flags)
                    .map(|()| LaunchEnd::Migrated)
                    .map_err(|e| LibvirtError::call(context, e));
            };
            // The stream goes to a port ferry names, so that a broken post-copy can be resumed
            // to it; a port another migration holds is refused at once by the destination,
            // before anything moved, and the next one is tried.
            let mut last_error = None;
            for port in stream.ports.iter().copied() {
                stream.set_port_in_use(port);
                parameters.uri = Some(stream.libvirt_uri(port));
                match domain.migrate_to_uri3(
                    Some(&request.destination_uri),
                    parameters.clone(),
                    flags,
                ) {
                    Ok(()) => return Ok(LaunchEnd::Migrated),
                    Err(error) if error.message().contains("Address already in use") => {
                        last_error = Some(LibvirtError::call(context.clone(), error));
                    }
                    Err(error) => return Err(LibvirtError::call(context, error)),
                }
            }
            Err(last_error.unwrap_or(LibvirtError::Call {
                context,
                message: "no migration port to try".into(),
            }))
        })
        .await
    }

    /// Resumes a broken post-copy migration of `instance` from this (source) host: the
    /// source's QEMU reconnects to the destination QEMU's incoming listener (`qemu_uri`, e.g.
    /// `tcp:hv3:49163`), which stays open until the migration ends; libvirt then finishes
    /// both jobs itself. Returns QEMU's answer.
    ///
    /// Not `VIR_MIGRATE_POSTCOPY_RESUME`: on the lab (libvirt 11.3) every resume through
    /// libvirt, peer-to-peer or not, crashed the destination's libvirtd in
    /// `qemuProcessIncomingDefNew`, called with a NULL fd by `qemuMigrationDstPrepareResume`.
    /// Nothing is asked of the destination, whose calls block while its incoming job failed.
    pub async fn resume_post_copy_stream(
        &self,
        instance: &str,
        qemu_uri: &str,
        timeout: Duration,
    ) -> Result<String, LibvirtError> {
        let command = serde_json::json!({
            "execute": "migrate",
            "arguments": { "uri": qemu_uri, "resume": true },
        })
        .to_string();
        self.with_domain_ffi(
            &DomainKey::Name(instance.to_string()),
            &format!("resuming the post-copy stream to {qemu_uri} of"),
            timeout,
            move |domain| super::job_stats::qemu_monitor_command(domain, &command),
        )
        .await
    }

    /// Creates on `destination` the volumes an incremental block migration copies the disks at
    /// `paths` (on this host) into, shaped like these; returns the paths created (those already
    /// there are not ferry's to remove later).
    pub async fn precreate_copied_volumes(
        &self,
        destination: &HostConnection,
        paths: &[String],
        timeout: Duration,
    ) -> Result<Vec<String>, LibvirtError> {
        let paths = paths.to_vec();
        self.run_with(
            destination,
            "creating the copied disks' volumes on the destination",
            timeout,
            move |source, destination| {
                super::storage::precreate_volumes(source, destination, &paths)
            },
        )
        .await
    }

    /// Deletes the volumes at `paths` on this host; returns what could not be deleted, each
    /// with why.
    pub async fn delete_volumes(
        &self,
        paths: &[String],
        timeout: Duration,
    ) -> Result<Vec<String>, LibvirtError> {
        let paths = paths.to_vec();
        self.run("removing volumes", timeout, move |connect| {
            Ok(super::storage::delete_volumes(connect, &paths))
        })
        .await
    }
}

/// Where QEMU's migration stream goes: the destination host as ferry reaches it, and the
/// ports to try, in order, from libvirt's default range (49152–49215). The first is the same
/// for a given guest and destination every time, so a ferry that takes the migration over after
/// a restart knows where to resume it.
#[derive(Debug, Clone)]
pub struct MigrationStream {
    pub host: String,
    pub ports: Vec<u16>,
    /// The port the launch call is using now (shared with its thread).
    in_use: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

/// libvirt's default `migration_port_min`…`migration_port_max` (qemu.conf).
const MIGRATION_PORT_MIN: u16 = 49152;
const MIGRATION_PORT_COUNT: u16 = 64;
/// Ports tried when the first is held by another migration to the same destination.
const MIGRATION_PORTS_TRIED: u16 = 4;

impl MigrationStream {
    pub fn for_migration(destination_uri: &str, instance: &str) -> MigrationStream {
        // FNV-1a: stable across runs and builds, unlike std's hasher.
        let hash = instance.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let first = (hash % u64::from(MIGRATION_PORT_COUNT)) as u16;
        let ports: Vec<u16> = (0..MIGRATION_PORTS_TRIED)
            .map(|i| MIGRATION_PORT_MIN + (first + i) % MIGRATION_PORT_COUNT)
            .collect();
        MigrationStream {
            host: uri_host(destination_uri),
            in_use: std::sync::Arc::new(std::sync::atomic::AtomicU16::new(ports[0])),
            ports,
        }
    }

    fn set_port_in_use(&self, port: u16) {
        self.in_use.store(port, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn port_in_use(&self) -> u16 {
        self.in_use.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `VIR_MIGRATE_PARAM_URI`: `tcp://hv3:49163`.
    pub fn libvirt_uri(&self, port: u16) -> String {
        format!("tcp://{}:{port}", self.host)
    }

    /// QEMU's own syntax for the same address: `tcp:hv3:49163`.
    pub fn qemu_uri(&self, port: u16) -> String {
        format!("tcp:{}:{port}", self.host)
    }
}

/// The host part of a libvirt URI: `qemu+ssh://root@hv3/system?…` → `hv3`.
fn uri_host(uri: &str) -> String {
    let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(bracketed) = host_port.strip_prefix('[') {
        // An IPv6 literal keeps its brackets: tcp://[fd00::3]:49163.
        return format!("[{}]", bracketed.split(']').next().unwrap_or_default());
    }
    host_port.split(':').next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_to_peer_flags_move_the_definition() {
        let flags = LiveMigrationRequest::default().flags();
        for flag in [
            virt::sys::VIR_MIGRATE_LIVE,
            virt::sys::VIR_MIGRATE_PEER2PEER,
            virt::sys::VIR_MIGRATE_PERSIST_DEST,
            virt::sys::VIR_MIGRATE_UNDEFINE_SOURCE,
        ] {
            assert_ne!(flags & flag, 0);
        }
        assert_eq!(flags & virt::sys::VIR_MIGRATE_NON_SHARED_DISK, 0);
        assert_eq!(flags & virt::sys::VIR_MIGRATE_POSTCOPY, 0);
        assert_eq!(flags & virt::sys::VIR_MIGRATE_AUTO_CONVERGE, 0);
    }

    #[test]
    fn what_the_request_asks_for_becomes_flags() {
        let request = LiveMigrationRequest {
            auto_converge: true,
            post_copy_permitted: true,
            copied_disks: vec!["vdb".into()],
            ..Default::default()
        };
        let flags = request.flags();
        for flag in [
            virt::sys::VIR_MIGRATE_AUTO_CONVERGE,
            virt::sys::VIR_MIGRATE_POSTCOPY,
            virt::sys::VIR_MIGRATE_NON_SHARED_INC,
        ] {
            assert_ne!(flags & flag, 0);
        }
    }

    #[test]
    fn the_post_copy_phase_keeps_the_cap_only_when_post_copy_is_permitted() {
        let capped = LiveMigrationRequest {
            bandwidth_mib_per_second: Some(8),
            ..Default::default()
        };
        assert_eq!(capped.parameters().bandwidth, Some(8));
        assert_eq!(capped.parameters().bandwidth_postcopy, None);
        let post_copy = LiveMigrationRequest {
            post_copy_permitted: true,
            ..capped
        };
        assert_eq!(post_copy.parameters().bandwidth_postcopy, Some(8));
    }

    #[test]
    fn the_stream_goes_to_the_destination_host_on_a_port_stable_for_the_guest() {
        let uri = "qemu+ssh://root@hv3/system?command=/var/lib/ferry-lab/ssh/ssh&no_tty=1";
        let stream = MigrationStream::for_migration(uri, "busy");
        assert_eq!(stream.host, "hv3");
        assert_eq!(stream.ports.len(), 4);
        assert!(stream.ports.iter().all(|p| (49152..=49215).contains(p)));
        let again = MigrationStream::for_migration(uri, "busy");
        assert_eq!(
            stream.ports, again.ports,
            "a restarted ferry finds the same port"
        );
        assert_eq!(stream.port_in_use(), stream.ports[0]);
        let port = stream.ports[0];
        assert_eq!(stream.libvirt_uri(port), format!("tcp://hv3:{port}"));
        assert_eq!(stream.qemu_uri(port), format!("tcp:hv3:{port}"));
        // Consecutive, wrapping inside libvirt's range.
        for pair in stream.ports.windows(2) {
            assert!(pair[1] == pair[0] + 1 || (pair[0] == 49215 && pair[1] == 49152));
        }
    }

    #[test]
    fn uri_hosts() {
        assert_eq!(uri_host("qemu+ssh://root@hv1/system"), "hv1");
        assert_eq!(
            uri_host("qemu+tcp://node-7.example:16509/system"),
            "node-7.example"
        );
        assert_eq!(uri_host("qemu+ssh://[fd00::3]/system"), "[fd00::3]");
        assert_eq!(
            uri_host("qemu+ssh://admin@[fd00::3]:2222/system"),
            "[fd00::3]"
        );
    }
}
