//! A running migration job, as the live engine's monitor reads and steers it: its statistics
//! (current and completed), the switch to post-copy, pause and resume, speed and max downtime.
//! Each operation is one bounded call on the blocking pool; the FFI is in `job_stats`.

use std::time::Duration;

use virt::error::ErrorNumber;

use super::lifecycle::{lookup, DomainKey};
use super::{job_stats, standing, HostConnection, LibvirtError};
use crate::model::job::JobSample;

/// What one poll of a migration's source found.
#[derive(Debug, Clone, PartialEq)]
pub enum JobPoll {
    /// The job's statistics now.
    Sampled(Box<JobSample>),
    /// The domain is on the host with no job (or shut off, which has none): the migration
    /// ended one way or another.
    NoJob,
    /// The domain is no longer defined on the host (a migration with UNDEFINE_SOURCE ended).
    DomainGone,
    /// The host reports "post-copy failed": the stream broke.
    PostCopyFailed,
}

/// The job a restarted ferry finds running, and the max downtime in force.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningJobReading {
    /// None when the domain has no job, or is shut off (the job is over).
    pub job: Option<JobSample>,
    pub max_downtime_ms: Option<u64>,
}

impl HostConnection {
    /// One poll of a migration's source: its job statistics, or how the job is gone.
    pub async fn poll_migration_job(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<JobPoll, LibvirtError> {
        let owned_key = key.clone();
        self.run(
            format!("reading job statistics ({key})"),
            timeout,
            move |connect| match lookup(connect, &owned_key) {
                // A shut-off domain has no job (and libvirt refuses to be asked).
                Ok(domain) if !domain.is_active().unwrap_or(true) => Ok(JobPoll::NoJob),
                Ok(domain) => {
                    if standing::read_standing(&domain)?.post_copy_failed {
                        return Ok(JobPoll::PostCopyFailed);
                    }
                    Ok(job_stats::job_stats(&domain, false)?
                        .map_or(JobPoll::NoJob, |sample| JobPoll::Sampled(Box::new(sample))))
                }
                Err(error) if error.code().is(ErrorNumber::NoDomain) => Ok(JobPoll::DomainGone),
                Err(error) => Err(LibvirtError::call(format!("looking up {owned_key}"), error)),
            },
        )
        .await
    }

    /// The job running on the domain and the max downtime in force, for a ferry taking over a
    /// migration; None when the host has no such domain.
    pub async fn running_job(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<Option<RunningJobReading>, LibvirtError> {
        let owned_key = key.clone();
        self.run(
            format!("reading the running job ({key})"),
            timeout,
            move |connect| match lookup(connect, &owned_key) {
                // Shut off: the job is over (a completed migration whose caller died leaves the
                // definition behind); the outcome check decides.
                Ok(domain) if !domain.is_active().unwrap_or(true) => Ok(Some(RunningJobReading {
                    job: None,
                    max_downtime_ms: None,
                })),
                Ok(domain) => Ok(Some(RunningJobReading {
                    job: job_stats::job_stats(&domain, false)?,
                    max_downtime_ms: job_stats::max_downtime_ms(&domain).ok(),
                })),
                Err(error) if error.code().is(ErrorNumber::NoDomain) => Ok(None),
                Err(error) => Err(LibvirtError::call(format!("looking up {owned_key}"), error)),
            },
        )
        .await
    }

    /// The running job's statistics; None when the domain has no job.
    pub async fn job_stats(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<Option<JobSample>, LibvirtError> {
        self.with_domain_ffi(key, "reading the job of", timeout, |d| {
            job_stats::job_stats(d, false)
        })
        .await
    }

    /// libvirt's record of the job that ended last (real downtime, how it ended).
    pub async fn completed_job_stats(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<Option<JobSample>, LibvirtError> {
        self.with_domain_ffi(key, "reading the ended job of", timeout, |d| {
            job_stats::job_stats(d, true)
        })
        .await
    }

    /// Switches the migration to post-copy: the guest runs on the destination from now on.
    pub async fn start_post_copy(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<(), LibvirtError> {
        self.with_domain_ffi(
            key,
            "switching to post-copy",
            timeout,
            job_stats::start_post_copy,
        )
        .await
    }

    /// Pauses the guest (its memory stops changing, so a migration converges).
    pub async fn pause_domain(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<(), LibvirtError> {
        self.with_domain(key, "pausing", timeout, |d| d.suspend().map(|_| ()))
            .await
    }

    /// Resumes the guest if it is paused; a running guest is left as it is.
    pub async fn resume_if_paused(
        &self,
        key: &DomainKey,
        timeout: Duration,
    ) -> Result<(), LibvirtError> {
        self.with_domain(key, "resuming", timeout, |d| {
            let (state, _) = d.state()?;
            if state.unwrap_or(virt::domain::DomainState::NoState)
                == virt::domain::DomainState::Paused
            {
                d.resume()?;
            }
            Ok(())
        })
        .await
    }

    /// Caps the migration's bandwidth (the post-copy phase's cap when `post_copy`).
    pub async fn set_max_speed_mib_per_second(
        &self,
        key: &DomainKey,
        mib_per_second: u64,
        post_copy: bool,
        timeout: Duration,
    ) -> Result<(), LibvirtError> {
        self.with_domain_ffi(key, "setting bandwidth of", timeout, move |d| {
            job_stats::set_max_speed_mib_per_second(d, mib_per_second, post_copy)
        })
        .await
    }

    /// The pause the migration may take at switch-over.
    pub async fn set_max_downtime_ms(
        &self,
        key: &DomainKey,
        downtime_ms: u64,
        timeout: Duration,
    ) -> Result<(), LibvirtError> {
        self.with_domain_ffi(key, "setting max downtime of", timeout, move |d| {
            job_stats::set_max_downtime_ms(d, downtime_ms)
        })
        .await
    }
}
