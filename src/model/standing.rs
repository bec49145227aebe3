//! Where a guest stands on one host, as an outcome check needs it: plain data read by the
//! libvirt door (`HostConnection::domain_standing`) and judged by `engine::settle`.

use serde::{Deserialize, Serialize};

/// What one host answered about the guest, or that it did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "answer")]
pub enum HostAnswer {
    /// The host defines the guest (by UUID when ferry knows it, else by name).
    Holds(DomainStanding),
    /// The host answered: it has no such domain.
    Absent,
    /// The host did not answer (timeout, dropped connection): nothing may be concluded.
    Silent { why: String },
}

impl HostAnswer {
    pub fn is_silent(&self) -> bool {
        matches!(self, HostAnswer::Silent { .. })
    }

    pub fn standing(&self) -> Option<&DomainStanding> {
        match self {
            HostAnswer::Holds(standing) => Some(standing),
            _ => None,
        }
    }

    /// Running or paused there.
    pub fn is_active(&self) -> bool {
        self.standing().is_some_and(|s| s.active)
    }

    /// Answered, and holds no running copy (absent, or defined and shut off).
    pub fn holds_no_active_copy(&self) -> bool {
        match self {
            HostAnswer::Absent => true,
            HostAnswer::Holds(standing) => !standing.active,
            HostAnswer::Silent { .. } => false,
        }
    }

    /// The operator's words for this answer, after the host's name: "runs it", "did not answer".
    pub fn describe(&self) -> String {
        match self {
            HostAnswer::Holds(standing) => standing.describe(),
            HostAnswer::Absent => "does not have it".into(),
            HostAnswer::Silent { .. } => "did not answer".into(),
        }
    }
}

/// The guest on one host, as libvirt reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainStanding {
    pub uuid: String,
    /// Running or paused (a QEMU process exists).
    pub active: bool,
    pub persistent: bool,
    pub paused: bool,
    /// libvirt's `post-copy failed` reason: the post-copy stream broke, the guest's memory is
    /// split between this host and the other (running on the destination, paused on the source).
    pub post_copy_failed: bool,
    /// Paused by libvirt for post-copy (the source's copy while the destination runs the guest).
    pub paused_for_post_copy: bool,
    /// A job libvirt runs on the domain now, if any.
    pub job: Option<RunningJob>,
}

/// A job that is running, not one that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunningJob {
    MigrationOut,
    MigrationIn,
    Other,
}

impl DomainStanding {
    pub fn describe(&self) -> String {
        let state = match (self.active, self.paused) {
            (false, _) => "has it defined but shut off",
            (true, _) if self.post_copy_failed && self.paused => "has it paused (post-copy failed)",
            (true, _) if self.post_copy_failed => "runs it (post-copy failed)",
            (true, true) if self.paused_for_post_copy => "has it paused for post-copy",
            (true, true) => "has it paused",
            (true, false) => "runs it",
        };
        match self.job {
            Some(RunningJob::MigrationOut) => format!("{state}, with an outgoing migration job"),
            Some(RunningJob::MigrationIn) => format!("{state}, with an incoming migration job"),
            Some(RunningJob::Other) => format!("{state}, with a job running"),
            None => state.to_string(),
        }
    }
}
