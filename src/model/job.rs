//! One poll of a domain's job statistics (`virDomainGetJobStats`), as plain data.
//!
//! Every statistic is optional: older libvirt versions leave some out, a job that has not
//! started its memory phase has no iteration yet, and the completed-job statistics on the
//! destination carry only part of them. The adapter (`crate::libvirt::job_stats`) fills what
//! libvirt reported; nothing here guesses a missing value.
//!
//! # Trace files (`tests/fixtures/*.jsonl`)
//!
//! A trace is one migration's samples in JSON Lines: one [`JobSample`] object per line, in the
//! order they were taken, with `sampled_at_ms` rising. Field names are those of [`JobSample`];
//! a missing field or `null` means libvirt did not report it. Blank lines are ignored, and lines
//! starting with `#` are comments for the reader, with two kinds the tests understand:
//!
//! ```text
//! # synthetic: hand-made, shaped like the lab's 512 MiB busy guest (not a recording)
//! # expect-verdict: not-converging        (or: converging)
//! # expect-final-phase: completed         (or: failed, cancelled, copying-memory, post-copy)
//! {"sampled_at_ms":0,"job_type":"unbounded","operation":"migration_out","memory_total_bytes":536870912}
//! ```
//!
//! Real recordings from the lab are named `lab-*.jsonl`; hand-made ones `synthetic-*.jsonl`.
//! See [`crate::model::trace`] for the loader.

use serde::{Deserialize, Serialize};

/// What kind of job libvirt reports (`virDomainJobType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    /// No job is running (before the migration started, or after it ended on the source).
    None,
    /// A job with a known end, e.g. a save to file.
    Bounded,
    /// A job whose amount of work is not known in advance: live migration is one.
    Unbounded,
    Completed,
    Failed,
    Cancelled,
}

impl JobType {
    /// Maps libvirt's `virDomainJobType`; `None` for a value this build does not know.
    pub fn from_libvirt(raw: i32) -> Option<JobType> {
        Some(match raw {
            0 => JobType::None,
            1 => JobType::Bounded,
            2 => JobType::Unbounded,
            3 => JobType::Completed,
            4 => JobType::Failed,
            5 => JobType::Cancelled,
            _ => return None,
        })
    }

    pub fn is_running(self) -> bool {
        matches!(self, JobType::Bounded | JobType::Unbounded)
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobType::Completed | JobType::Failed | JobType::Cancelled
        )
    }
}

/// Which operation the job belongs to (`virDomainJobOperation`, libvirt ≥ 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOperation {
    Unknown,
    Start,
    Save,
    Restore,
    MigrationIn,
    MigrationOut,
    Snapshot,
    SnapshotRevert,
    Dump,
    Backup,
    SnapshotDelete,
}

impl JobOperation {
    /// Maps libvirt's `virDomainJobOperation`; values newer than this build become `Unknown`.
    pub fn from_libvirt(raw: i32) -> JobOperation {
        match raw {
            1 => JobOperation::Start,
            2 => JobOperation::Save,
            3 => JobOperation::Restore,
            4 => JobOperation::MigrationIn,
            5 => JobOperation::MigrationOut,
            6 => JobOperation::Snapshot,
            7 => JobOperation::SnapshotRevert,
            8 => JobOperation::Dump,
            9 => JobOperation::Backup,
            10 => JobOperation::SnapshotDelete,
            _ => JobOperation::Unknown,
        }
    }
}

/// x86's page size. QEMU reports the dirty rate in pages per second; libvirt older than 1.3
/// does not report `memory_page_size`, and every host ferry targets uses 4 KiB target pages.
pub const DEFAULT_PAGE_SIZE_BYTES: u64 = 4096;

/// One poll of `virDomainGetJobStats`. Names follow libvirt's `VIR_DOMAIN_JOB_*` parameters with
/// units added; `sampled_at_ms` is set by the caller (monotonic ms since the migration started).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobSample {
    /// Monotonic milliseconds since the engine started the migration (not libvirt's clock).
    pub sampled_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_type: Option<JobType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<JobOperation>,
    /// `time_elapsed`: libvirt's own count since the job started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_elapsed_ms: Option<u64>,

    /// `data_*`: memory plus disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_total_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_processed_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_remaining_bytes: Option<u64>,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_processed_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_remaining_bytes: Option<u64>,
    /// `memory_bps`: QEMU's measured memory transfer rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bps: Option<u64>,
    /// `memory_dirty_rate`: pages the guest dirties per second (QEMU measures it from the
    /// second iteration on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_dirty_rate_pages_per_second: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_page_size_bytes: Option<u64>,
    /// `memory_iteration`: how many passes over guest memory have started (1 = first pass).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_iteration: Option<u64>,
    /// `memory_postcopy_requests`: page faults served from the source after post-copy began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_postcopy_requests: Option<u64>,

    /// `downtime` while the job runs: QEMU's estimate of the pause if it switched over now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_downtime_ms: Option<u64>,
    /// `downtime` of a completed job: how long the guest was really paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_downtime_ms: Option<u64>,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_total_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_processed_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_remaining_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_bps: Option<u64>,

    /// `auto_converge_throttle`: how much QEMU slows the guest's vCPUs, 0–99 %.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_converge_throttle_percent: Option<u32>,
    /// `errmsg` of a failed job (completed-job statistics only, libvirt ≥ 6.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl JobSample {
    /// A sample saying "no job" at `sampled_at_ms`.
    pub fn no_job(sampled_at_ms: u64) -> JobSample {
        JobSample {
            sampled_at_ms,
            job_type: Some(JobType::None),
            ..JobSample::default()
        }
    }

    /// Dirty rate in bytes per second: pages per second × page size.
    pub fn memory_dirty_rate_bytes_per_second(&self) -> Option<u64> {
        let pages = self.memory_dirty_rate_pages_per_second?;
        let page_size = self
            .memory_page_size_bytes
            .filter(|size| *size > 0)
            .unwrap_or(DEFAULT_PAGE_SIZE_BYTES);
        Some(pages.saturating_mul(page_size))
    }

    /// The remaining amount that decides convergence: guest memory when libvirt reports it, else
    /// all data (older libvirt reports only `data_*` for some jobs).
    pub fn convergence_remaining_bytes(&self) -> Option<u64> {
        self.memory_remaining_bytes.or(self.data_remaining_bytes)
    }

    /// The processed counter matching [`Self::convergence_remaining_bytes`].
    pub fn convergence_processed_bytes(&self) -> Option<u64> {
        if self.memory_remaining_bytes.is_some() {
            self.memory_processed_bytes
        } else {
            self.data_processed_bytes
        }
    }

    /// One JSON Lines record (no trailing newline), as written to trace files.
    pub fn to_json_line(&self) -> String {
        // A struct of integers, enums and an optional string always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_read_as_none() {
        let sample: JobSample =
            serde_json::from_str(r#"{"sampled_at_ms":500,"job_type":"unbounded"}"#).unwrap();
        assert_eq!(sample.sampled_at_ms, 500);
        assert_eq!(sample.job_type, Some(JobType::Unbounded));
        assert_eq!(sample.memory_remaining_bytes, None);
        assert_eq!(sample.memory_dirty_rate_bytes_per_second(), None);
    }

    #[test]
    fn json_line_round_trips_and_omits_missing_fields() {
        let sample = JobSample {
            sampled_at_ms: 1000,
            job_type: Some(JobType::Unbounded),
            operation: Some(JobOperation::MigrationOut),
            memory_remaining_bytes: Some(42),
            memory_dirty_rate_pages_per_second: Some(25_000),
            ..JobSample::default()
        };
        let line = sample.to_json_line();
        assert!(!line.contains("disk_bps"));
        assert!(line.contains(r#""operation":"migration_out""#));
        let back: JobSample = serde_json::from_str(&line).unwrap();
        assert_eq!(back, sample);
    }

    #[test]
    fn dirty_rate_uses_page_size_or_four_kib() {
        let mut sample = JobSample {
            memory_dirty_rate_pages_per_second: Some(25_000),
            ..JobSample::default()
        };
        assert_eq!(
            sample.memory_dirty_rate_bytes_per_second(),
            Some(25_000 * 4096)
        );
        sample.memory_page_size_bytes = Some(65_536);
        assert_eq!(
            sample.memory_dirty_rate_bytes_per_second(),
            Some(25_000 * 65_536)
        );
    }

    #[test]
    fn libvirt_codes_map() {
        assert_eq!(JobType::from_libvirt(2), Some(JobType::Unbounded));
        assert_eq!(JobType::from_libvirt(99), None);
        assert!(JobType::Unbounded.is_running());
        assert!(JobType::Cancelled.is_finished());
        assert_eq!(JobOperation::from_libvirt(5), JobOperation::MigrationOut);
        assert_eq!(JobOperation::from_libvirt(77), JobOperation::Unknown);
    }
}
