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

/// Resuming a post-copy migration whose stream broke (`VIR_MIGRATE_POSTCOPY_RESUME`,
/// libvirt ≥ 8.5): the same migration, picked up where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PostCopyResume {
    pub instance_name: String,
    pub destination_uri: String,
    /// The flags the migration was started with; the resume adds POSTCOPY_RESUME.
    pub flags: u32,
    pub bandwidth_mib_per_second: Option<u64>,
}

impl PostCopyResume {
    /// The original flags with POSTCOPY and POSTCOPY_RESUME, driven by ferry with both
    /// connections rather than peer-to-peer: the peer-to-peer resume crashed the destination's
    /// libvirtd on the lab (libvirt 11.3), see the README's fault notes.
    pub fn flags(&self) -> u32 {
        (self.flags & !virt::sys::VIR_MIGRATE_PEER2PEER)
            | virt::sys::VIR_MIGRATE_POSTCOPY
            | virt::sys::VIR_MIGRATE_POSTCOPY_RESUME
    }
}

impl HostConnection {
    /// Resumes the broken post-copy of `request.instance_name` from this (source) host to
    /// `destination`, blocking until the migration ends: run it on a thread of its own.
    pub fn resume_post_copy(
        &self,
        destination: &HostConnection,
        request: &PostCopyResume,
    ) -> Result<(), LibvirtError> {
        let request = request.clone();
        let context = format!(
            "resuming the post-copy migration of {} to {}",
            request.instance_name, request.destination_uri
        );
        self.call_with(
            destination,
            context.clone(),
            Duration::MAX,
            move |source, destination| {
                let domain = source
                    .lookup_domain_by_name(&request.instance_name)
                    .map_err(|e| {
                        LibvirtError::call(format!("looking up {}", request.instance_name), e)
                    })?;
                let parameters = MigrateParameters {
                    bandwidth: request.bandwidth_mib_per_second,
                    bandwidth_postcopy: request.bandwidth_mib_per_second.map(|mib| mib << 20),
                    ..Default::default()
                };
                domain
                    .migrate3(destination, parameters, request.flags())
                    .map(|_| ())
                    .map_err(|e| LibvirtError::call(context, e))
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
