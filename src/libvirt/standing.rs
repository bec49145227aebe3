//! Where a guest stands on a host (state, post-copy reasons, a running job), and whether a
//! connection is still alive: what the live engine's outcome check and reconnects ask.

use std::time::Duration;

use virt::domain::{Domain, DomainPausedReason, DomainRunningReason, DomainStateReason};
use virt::enumutil::Enum;
use virt::error::ErrorNumber;

use super::lifecycle::{lookup, DomainKey};
use super::{job_stats, HostConnection, LibvirtError};
use crate::model::job::JobOperation;
use crate::model::standing::{DomainStanding, HostAnswer, RunningJob};

/// What libvirt (qemuDomainGetJobStatsInternal) says when asked for a migration's statistics
/// on its destination.
const INCOMING_JOB_ANSWER: &str = "migration statistics are available only on the source host";

/// libvirt's words for VIR_ERR_NO_DOMAIN, as they reach a caller through `LibvirtError`.
const NO_DOMAIN_ANSWER: &str = "Domain not found";

/// Reads the domain's standing. Errors are libvirt's; "no such domain" is `Ok(None)`.
pub(in crate::libvirt) fn read_standing(domain: &Domain) -> Result<DomainStanding, LibvirtError> {
    let (state, reason) = domain
        .state()
        .map_err(|e| LibvirtError::call("reading the domain state", e))?;
    let active = domain
        .is_active()
        .map_err(|e| LibvirtError::call("reading whether the domain runs", e))?;
    let persistent = domain.is_persistent().unwrap_or(false);
    let paused = matches!(state, Enum::Known(virt::domain::DomainState::Paused));
    let (post_copy_failed, paused_for_post_copy) = match reason {
        Enum::Known(DomainStateReason::Paused(Enum::Known(DomainPausedReason::PostCopyFailed))) => {
            (true, false)
        }
        Enum::Known(DomainStateReason::Paused(Enum::Known(DomainPausedReason::PostCopy))) => {
            (false, true)
        }
        Enum::Known(DomainStateReason::Running(Enum::Known(
            DomainRunningReason::PostCopyFailed,
        ))) => (true, false),
        _ => (false, false),
    };
    // libvirt refuses job statistics for a shut-off domain: it has no job.
    let job = if active {
        match job_stats::job_stats(domain, false) {
            Ok(job) => job
                .filter(|job| job.job_type.is_some_and(|t| t.is_running()))
                .map(|job| match job.operation {
                    Some(JobOperation::MigrationOut) => RunningJob::MigrationOut,
                    Some(JobOperation::MigrationIn) => RunningJob::MigrationIn,
                    _ => RunningJob::Other,
                }),
            // libvirt's answer on a migration's destination: it has the incoming job, whose
            // statistics only the source gives. An answer, not silence.
            Err(error) if error.to_string().contains(INCOMING_JOB_ANSWER) => {
                Some(RunningJob::MigrationIn)
            }
            Err(error) => return Err(error),
        }
    } else {
        None
    };
    Ok(DomainStanding {
        uuid: domain.uuid_string().unwrap_or_default(),
        active,
        persistent,
        paused,
        post_copy_failed,
        paused_for_post_copy,
        job,
    })
}

impl HostConnection {
    /// Whether libvirt still considers the connection usable (keep-alive answered, socket open).
    /// A closed connection is reopened with [`HostConnection::reopen`].
    pub async fn is_alive(&self, timeout: Duration) -> bool {
        self.run("checking the connection", timeout, |connect| {
            Ok(connect.is_alive().unwrap_or(false))
        })
        .await
        .unwrap_or(false)
    }

    /// A fresh connection to the same URI.
    pub async fn reopen(&self, timeout: Duration) -> Result<HostConnection, LibvirtError> {
        HostConnection::connect(&self.uri, timeout).await
    }

    /// `virDomainAbortJob` on the domain's migration job: the guest stays on this (source) host.
    pub async fn abort_migration_job(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<(), LibvirtError> {
        self.with_domain_ffi(
            key,
            "aborting the migration of",
            timeout,
            job_stats::abort_job,
        )
        .await
    }

    /// Where the guest stands on this host. Never concludes from silence: a call that fails or
    /// times out is `Silent`, only libvirt's own "no such domain" is `Absent`.
    pub async fn domain_standing(&self, key: &DomainKey, timeout: Duration) -> HostAnswer {
        let owned_key = key.clone();
        let answer = self
            .run(
                format!("reading where {key} stands"),
                timeout,
                move |connect| {
                    match lookup(connect, &owned_key) {
                        // Gone between the lookup and the reading (a migration's end undefines
                        // it): libvirt's answer is "no such domain".
                        Ok(domain) => match read_standing(&domain) {
                            Err(error) if error.to_string().contains(NO_DOMAIN_ANSWER) => Ok(None),
                            other => other.map(Some),
                        },
                        Err(error) if error.code().is(ErrorNumber::NoDomain) => Ok(None),
                        Err(error) => {
                            Err(LibvirtError::call(format!("looking up {owned_key}"), error))
                        }
                    }
                },
            )
            .await;
        match answer {
            Ok(Some(standing)) => HostAnswer::Holds(standing),
            Ok(None) => HostAnswer::Absent,
            Err(error) => HostAnswer::Silent {
                why: error.to_string(),
            },
        }
    }
}
