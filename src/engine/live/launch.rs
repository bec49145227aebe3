//! Launching a live migration: the block migration's volumes made first, then the blocking
//! migrate call on the blocking pool, whose end comes back through the monitor's inbox.

use tokio::sync::mpsc;

use super::monitor::Monitor;
use super::{CallEnd, Inbox, LiveMigrationPlan};
use crate::libvirt::migrate::{LaunchEnd, LiveMigrationRequest};
use crate::libvirt::{HostConnection, LibvirtError};
use crate::model::domain::DiskSource;
use crate::model::standing::RunningJob;

/// "a migration job", for the refusal.
pub(super) fn job_words(job: RunningJob) -> &'static str {
    match job {
        RunningJob::MigrationOut => "a migration job",
        RunningJob::MigrationIn => "an incoming migration job",
        RunningJob::Other => "a job",
    }
}

/// An incremental block migration needs its target volumes on the destination (libvirt does
/// not pre-create them for NON_SHARED_INC): ferry creates them, shaped like the source's, and
/// remembers which, so a rollback removes exactly those.
pub(super) async fn prepare_block_migration(monitor: &mut Monitor<'_>) -> Result<(), LibvirtError> {
    let plan = monitor.plan;
    let key = monitor.by_name();
    let timeout = plan.call_timeout;
    let disks = monitor
        .on_source(move |source| async move { source.domain_disks(&key, timeout).await })
        .await?;
    let paths = plan
        .block_migration_disks
        .iter()
        .map(|target| {
            disks
                .iter()
                .find(|disk| &disk.target == target)
                .and_then(|disk| match &disk.source {
                    DiskSource::Path { path } => Some(path.clone()),
                    _ => None,
                })
                .ok_or_else(|| LibvirtError::Call {
                    context: format!("disk {target}"),
                    message: "not a file or block disk of the guest; only those are copied".into(),
                })
        })
        .collect::<Result<Vec<String>, LibvirtError>>()?;
    let source = monitor
        .source
        .connection(timeout, "preparing the block migration")
        .await?;
    let destination = monitor
        .destination
        .connection(timeout, "preparing the block migration")
        .await?;
    let created = source
        .precreate_copied_volumes(&destination, &paths, timeout)
        .await?;
    monitor.copied_disk_paths = paths;
    monitor.precreated_on_destination = created;
    Ok(())
}

/// Runs the blocking migrate call on the blocking pool (the door's `migrate_live`); its end
/// comes back through the inbox as call number `call`. The call looks once more for a job on
/// the guest on its own connection just before migrating: one migration per instance, whoever
/// started the other.
pub(super) fn launch(
    plan: &LiveMigrationPlan,
    launcher: HostConnection,
    request: LiveMigrationRequest,
    call: u32,
    inbox: mpsc::UnboundedSender<Inbox>,
) {
    let instance = plan.instance_name.clone();
    let source_name = plan.source.name.clone();
    // The migration runs as long as it needs: no timeout on this call; the policy's completion
    // timeout and the operator decide when it has run too long.
    tokio::spawn(async move {
        let end = match launcher.migrate_live(&request).await {
            Ok(LaunchEnd::Migrated) => CallEnd::Returned(Ok(())),
            Ok(LaunchEnd::RefusedBusy { what }) => CallEnd::RefusedBusy(
                crate::precheck::JobInProgress {
                    host: source_name,
                    what,
                }
                .refusal(&instance),
            ),
            Err(error) => CallEnd::Returned(Err(error)),
        };
        let _ = inbox.send(Inbox::MigrateReturned { call, end });
    });
}
