//! One cold migration, start to a state the operator settles: Nova's resize/migrate flow
//! (`prep_resize` on the destination, `resize_instance` on the source, `finish_resize` on the
//! destination, then `confirm_resize` or `revert_resize`) over plain libvirt.
//!
//! 1. Prechecks on fresh facts (destination up and not the source, memory, disk room, valid
//!    name, nothing in the way of the disks and the definition).
//! 2. Power off: an ACPI shutdown request and a wait; a hard power off after the wait only if
//!    the plan allows it.
//! 3. Every disk not on shared storage is copied into the destination's pool holding the same
//!    directory (or a pool of the same name), through libvirt volume streams.
//! 4. Each copy is streamed back from the destination and its sha256 compared with the sha256
//!    of what the source streamed (hashed on the way): the destination's bytes are checked,
//!    not ferry's buffers.
//! 5. The definition is defined on the destination (disk paths rewritten where they differ) and
//!    started there if it ran before: the migration then awaits the operator's confirm (remove
//!    the source copy) or revert (remove the destination copy, start on the source again).
//!
//! Until confirm, the source keeps its definition and disks untouched and the domain inactive.
//! A failure at any step puts the instance back: the destination copy is removed (retried for a
//! while if the destination stopped answering) and the guest started on its source again if it
//! was running. The plan alone (JSON in the history) is enough for another ferry process to
//! confirm or revert later, or to settle a migration whose ferry died mid-way ([`recover`]).
//!
//! The parts: [`plan`] gathers facts and judges them (pure where it can be), [`run`] is the
//! migration itself, a tokio task, with its rollback; [`settle`] is confirm and revert,
//! [`recover`] settles a migration whose ferry died, and [`record`] keeps all of it in the
//! history. Every libvirt call goes through the door (`crate::libvirt`), on tokio's blocking
//! pool under a timeout.

mod door;
mod in_place;
pub mod plan;
pub mod record;
pub mod recover;
pub mod resize;
pub mod run;
pub mod settle;
#[cfg(test)]
mod tests;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::history::OutcomeKind;
use super::live::duration_ms;
pub use super::live::HostTarget;
use crate::libvirt::lifecycle::DomainKey;
use crate::libvirt::volume_copy::VolumeRef;
use crate::precheck::PrecheckReport;

pub use plan::{destination_pool_for, plan, ColdPlanError, ColdPlanning};
pub use record::ColdRunLock;
pub use recover::{recover, recovery_decision, Recovery, RecoveryDecision};
pub use resize::{NewSize, Resize};
pub use run::{start, ColdCommandSender, ColdMigrationHandle, CopyMeter};
pub use settle::{confirm, revert, SettleError, SettleReport};

/// Nova's `shutdown_timeout`: how long a guest gets to power off after the ACPI request.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes per bounded call of the disk copy. On the lab (tests/lab_cold.rs, the copy benchmark,
/// 1 GiB hv1 → hv2) chunks of 1, 4, 8 and 16 MiB ran within noise of each other and of
/// `virsh vol-download | virsh vol-upload` (110–180 MiB/s on a busy 2-core machine): the cost
/// is in ssh and libvirtd, not in ferry's calls. 4 MiB keeps a few chunks in memory and the
/// per-call hop to the blocking pool negligible.
pub const DEFAULT_COPY_CHUNK_BYTES: u64 = 4 << 20;
/// How long a failed migration keeps trying to remove its partial copy from a destination that
/// stopped answering (libvirt keeps an interrupted upload's volume busy until its own
/// keep-alive gives up on the dead connection, about 30 s).
pub const DEFAULT_DESTINATION_CLEANUP_WINDOW: Duration = Duration::from_secs(120);

/// Pause between attempts to reach a destination that stopped answering during cleanup.
const CLEANUP_RETRY_PAUSE: Duration = Duration::from_secs(3);

/// What the operator chooses for a cold migration; the rest comes from the facts. Fields a
/// stored plan lacks (written by an older ferry) take their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ColdOptions {
    #[serde(rename = "shutdown_timeout_ms", with = "duration_ms")]
    pub shutdown_timeout: Duration,
    /// Power the guest off hard when it has not shut down within the timeout. Off by default:
    /// a hard power off loses what the guest had not written.
    pub hard_power_off_allowed: bool,
    /// Cap on the disk copy; None copies as fast as the hosts go.
    pub copy_bandwidth_mib_per_second: Option<u64>,
    pub copy_chunk_bytes: u64,
    #[serde(rename = "destination_cleanup_window_ms", with = "duration_ms")]
    pub destination_cleanup_window: Duration,
    /// A resize: the guest is defined on the destination with this size (and may stay on its
    /// own host). None keeps the size.
    pub new_size: Option<NewSize>,
}

impl Default for ColdOptions {
    fn default() -> ColdOptions {
        ColdOptions {
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            hard_power_off_allowed: false,
            copy_bandwidth_mib_per_second: None,
            copy_chunk_bytes: DEFAULT_COPY_CHUNK_BYTES,
            destination_cleanup_window: DEFAULT_DESTINATION_CLEANUP_WINDOW,
            new_size: None,
        }
    }
}

/// Everything a cold migration, its confirm and its revert need. Kept in the history as JSON:
/// a later ferry process confirms or reverts from this alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdMigrationPlan {
    pub instance_name: String,
    /// The guest is found by UUID on the destination and at confirm/revert time: a domain of
    /// the same name there could be another guest.
    pub instance_uuid: String,
    pub source: HostTarget,
    pub destination: HostTarget,
    pub instance_memory_bytes: u64,
    /// Running when planned: started on the destination, and on the source again after a
    /// failure or a revert. Shut off: stays shut off everywhere.
    pub instance_was_running: bool,
    pub disks: Vec<ColdDisk>,
    /// The config's shared-storage prefixes when planned: the checks at start judge the disks
    /// the same way, whatever the config says by then.
    pub shared_storage_prefixes: Vec<String>,
    pub options: ColdOptions,
    /// Bound on every single libvirt call, one chunk of the copy included.
    #[serde(rename = "call_timeout_ms", with = "duration_ms")]
    pub call_timeout: Duration,
    /// The old and new size when the migration resizes the guest (absent in plans of an older
    /// ferry: no resize).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<Resize>,
}

impl ColdMigrationPlan {
    pub fn copied_disks(&self) -> impl Iterator<Item = (&ColdDisk, &DiskCopy)> {
        self.disks.iter().filter_map(|disk| match &disk.action {
            DiskAction::Copy(copy) => Some((disk, copy)),
            DiskAction::Shared => None,
        })
    }

    /// Bytes the copy streams (and the verification streams again).
    pub fn bytes_to_copy(&self) -> u64 {
        self.copied_disks().map(|(_, copy)| copy.stream_bytes).sum()
    }

    pub(crate) fn key(&self) -> DomainKey {
        DomainKey::Uuid(self.instance_uuid.clone())
    }

    /// A resize that keeps the guest on its host: nothing is copied, and the source and the
    /// destination are the same domain, so every step goes through [`in_place`].
    pub fn resizes_in_place(&self) -> Option<&Resize> {
        self.resize.as_ref().filter(|r| r.in_place())
    }
}

/// One disk of the instance and what the migration does with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColdDisk {
    /// Guest device name, e.g. `vdb`.
    pub target: String,
    /// The path (or pool/volume) the source definition names.
    pub source: String,
    pub action: DiskAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum DiskAction {
    /// On storage both hosts see at the same place (or the guest stays on its host, a resize
    /// in place): left alone, never copied or deleted.
    Shared,
    Copy(DiskCopy),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskCopy {
    pub source_volume: VolumeRef,
    /// Created by the migration (same name, format and capacity); revert deletes it.
    pub destination_volume: VolumeRef,
    /// Where the copy will be, as the destination's pool names it.
    pub destination_path: String,
    pub format: String,
    pub capacity_bytes: u64,
    /// Length of the source volume's stream (its file size).
    pub stream_bytes: u64,
    /// The `<source>` attribute naming this disk in the domain XML: `file`, `dev` or `pool`.
    pub source_attribute: String,
}

/// What the operator can do to a running cold migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ColdCommand {
    /// Stop where it is and put the instance back on its source.
    Abort,
}

/// Where the migration stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum ColdPhase {
    Prechecks,
    ShuttingDown {
        timeout_ms: u64,
        hard_power_off_allowed: bool,
    },
    /// The guest did not power off in time and the plan allows pulling the plug.
    PoweringOffHard,
    Copying {
        disk_number: usize,
        disk_count: usize,
        target: String,
    },
    Verifying {
        disk_number: usize,
        disk_count: usize,
        target: String,
    },
    Defining,
    Starting,
    AwaitingConfirm,
    Confirmed,
    Reverted,
    RollingBack {
        reason: String,
    },
    RolledBack,
    Failed,
}

/// Progress of one disk's copy or verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyProgress {
    pub disk_number: usize,
    pub disk_count: usize,
    pub target: String,
    pub verifying: bool,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub rate_bytes_per_second: Option<u64>,
    pub eta_ms: Option<u64>,
}

/// What the engine reports, in order, to whoever watches (TUI, CLI, tests, history).
///
/// Read back (recorded runs replayed in tests) except `Prechecks`, whose report is
/// write-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "update")]
pub enum ColdUpdate {
    Phase(ColdPhase),
    #[serde(skip_deserializing)]
    Prechecks {
        report: PrecheckReport,
    },
    Progress(CopyProgress),
    /// A copy streamed back from the destination matched what the source streamed.
    Verified {
        target: String,
        bytes: u64,
        sha256: String,
    },
    /// A recoverable problem (a cleanup retried, a step skipped).
    Warning {
        message: String,
    },
    /// One thing undone after a failure.
    RollbackStep {
        description: String,
    },
    Finished(ColdOutcome),
}

/// One copied disk, as verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedDisk {
    pub target: String,
    pub destination_path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// How the cold migration ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ColdOutcome {
    /// Defined (and running, if it ran) on the destination; the source copy waits, inactive,
    /// for confirm or revert.
    AwaitingConfirm {
        total_time_ms: u64,
        /// From the shutdown request to the guest running on the destination.
        downtime_ms: Option<u64>,
        bytes_copied: u64,
        disks: Vec<CopiedDisk>,
    },
    /// Nothing was changed: a precheck failed, or the guest did not power off and the plan did
    /// not allow a hard power off.
    Refused { detail: String },
    /// Failed or aborted after something changed, and put back: the instance is on its source
    /// as before. `leftovers` lists what could not be removed from the destination.
    RolledBack {
        detail: String,
        leftovers: Vec<String>,
    },
    /// Failed and could not be put back; the detail says where the instance stands.
    Failed { detail: String },
}

impl ColdOutcome {
    /// The history's word for it.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            ColdOutcome::AwaitingConfirm { .. } => OutcomeKind::AwaitingConfirm,
            ColdOutcome::RolledBack { .. } => OutcomeKind::RolledBack,
            ColdOutcome::Refused { .. } | ColdOutcome::Failed { .. } => OutcomeKind::Failed,
        }
    }
}
