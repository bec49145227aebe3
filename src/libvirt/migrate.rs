//! Starting migrations. The call blocks for the whole migration, so it always runs on a
//! worker (see `HostConnection::call`) while a monitor polls the job from another connection.

use std::time::Duration;

use virt::domain::MigrateParameters;

use super::{HostConnection, LibvirtError};

/// What a peer-to-peer live migration is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveMigrationRequest {
    pub domain_name: String,
    /// The destination's libvirt URI as the *source* libvirtd will open it (peer-to-peer).
    pub destination_uri: String,
    /// Bandwidth cap in MiB/s; None leaves libvirt's default (unlimited).
    pub bandwidth_mib_per_second: Option<u64>,
}

impl LiveMigrationRequest {
    /// LIVE | PEER2PEER | PERSIST_DEST | UNDEFINE_SOURCE: the domain keeps running, the source
    /// libvirtd drives the migration (so it survives ferry's death), and on success the
    /// definition moves with it.
    pub fn flags(&self) -> u32 {
        virt::sys::VIR_MIGRATE_LIVE
            | virt::sys::VIR_MIGRATE_PEER2PEER
            | virt::sys::VIR_MIGRATE_PERSIST_DEST
            | virt::sys::VIR_MIGRATE_UNDEFINE_SOURCE
    }
}

impl HostConnection {
    /// Runs a peer-to-peer live migration to completion (or failure) and returns libvirt's
    /// error verbatim, with context, if it fails.
    pub fn migrate_live_peer_to_peer(
        &self,
        request: &LiveMigrationRequest,
        timeout: Duration,
    ) -> Result<(), LibvirtError> {
        let request = request.clone();
        let context = format!(
            "live migration of {} to {}",
            request.domain_name, request.destination_uri
        );
        self.call(context.clone(), timeout, move |connect| {
            let domain = connect
                .lookup_domain_by_name(&request.domain_name)
                .map_err(|e| {
                    LibvirtError::call(format!("looking up {}", request.domain_name), e)
                })?;
            let parameters = MigrateParameters {
                bandwidth: request.bandwidth_mib_per_second,
                ..Default::default()
            };
            domain
                .migrate_to_uri3(Some(&request.destination_uri), parameters, request.flags())
                .map_err(|e| LibvirtError::call(context, e))
        })
    }
}

impl HostConnection {
    /// Resumes a broken post-copy migration of `instance` from this (source) host: the
    /// source's QEMU reconnects to the destination QEMU's incoming listener (`qemu_uri`, e.g.
    /// `tcp:hv3:49163`), which stays open until the migration ends; libvirt then finishes
    /// both jobs itself.
    ///
    /// Not `VIR_MIGRATE_POSTCOPY_RESUME`: on the lab (libvirt 11.3) every resume through
    /// libvirt, peer-to-peer or not, crashed the destination's libvirtd in
    /// `qemuProcessIncomingDefNew`, called with a NULL fd by `qemuMigrationDstPrepareResume`.
    /// Nothing is asked of the destination, whose calls block while its incoming job failed.
    pub fn resume_post_copy_stream(
        &self,
        instance: &str,
        qemu_uri: &str,
        timeout: Duration,
    ) -> Result<String, LibvirtError> {
        let name = instance.to_string();
        let command = serde_json::json!({
            "execute": "migrate",
            "arguments": { "uri": qemu_uri, "resume": true },
        })
        .to_string();
        self.call(
            format!("resuming the post-copy stream of {instance} to {qemu_uri}"),
            timeout,
            move |connect| {
                let domain = connect
                    .lookup_domain_by_name(&name)
                    .map_err(|e| LibvirtError::call(format!("looking up {name}"), e))?;
                super::job_stats::qemu_monitor_command(&domain, &command)
            },
        )
    }
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
    }
}
