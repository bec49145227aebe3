//! Pure prechecks over gathered facts, each returning pass or a reason an operator can act on.
//!
//! The adapter gathers a [`PrecheckFacts`] (libvirt on both hosts, Nova's shared-storage probe);
//! [`run_all`] judges them. Every check is reported, not just the first failure, so the operator
//! fixes everything in one go. The checks follow Nova's live-migration path: conductor
//! `LiveMigrationTask` (instance running, hosts up, destination differs, enough memory,
//! compatible hypervisor type and version) and the libvirt driver's
//! `check_can_live_migrate_destination/_source` (CPU compare, shared storage, disk space, block
//! migration choice).

use serde::{Deserialize, Serialize};

use crate::model::domain::DomainRunState;
use crate::model::units::format_bytes;
use crate::model::HostName;

/// The guest's state on the source, as libvirt reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Running,
    Paused,
    ShutOff,
    Other(String),
}

impl InstanceState {
    /// The operator's words for a domain state, as the checks expect them.
    pub fn from_run_state(state: DomainRunState) -> InstanceState {
        match state {
            // "Blocked" is a running guest waiting on I/O or idle.
            DomainRunState::Running | DomainRunState::Blocked => InstanceState::Running,
            DomainRunState::Paused => InstanceState::Paused,
            DomainRunState::ShutOff => InstanceState::ShutOff,
            other => InstanceState::Other(other.as_virsh_str().to_string()),
        }
    }
}

/// "; not reachable, so not searched: hv3, hv4" after a list of the hosts searched, or
/// nothing when every host answered.
pub fn unreachable_note(unreachable: &[String]) -> String {
    if unreachable.is_empty() {
        String::new()
    } else {
        format!(
            "; not reachable, so not searched: {}",
            unreachable.join(", ")
        )
    }
}

/// Where a disk's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskStorage {
    /// A file or block device on the source host: shared only if the instance directory is.
    Local,
    /// Network storage both hosts reach (rbd, iSCSI, NFS volume): never copied.
    Shared,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskFact {
    /// Guest device name, e.g. `vda`.
    pub target: String,
    pub source: Option<String>,
    pub storage: DiskStorage,
    /// Space the copy needs on the destination (allocated size of the image).
    pub size_bytes: u64,
    /// Read-only media (CD-ROMs, config drives) are not mirrored by libvirt.
    pub read_only: bool,
}

/// One side's hypervisor, from `virConnectGetType` / `virConnectGetVersion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HypervisorInfo {
    /// e.g. "QEMU".
    pub hypervisor_type: String,
    /// libvirt's encoding: major × 1,000,000 + minor × 1,000 + release.
    pub hypervisor_version: u64,
}

/// `virConnectCompareHypervisorCPU` on the destination with the guest's CPU, as the adapter saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuCompareResult {
    Identical,
    Superset,
    Incompatible {
        detail: String,
    },
    /// The call failed or is unsupported (e.g. the test driver); the reason says which.
    Unknown {
        reason: String,
    },
}

/// Nova's shared-storage probe: a file created in the instance directory on the destination,
/// then looked for from the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SharedStorageProbe {
    Shared,
    NotShared,
    Unknown { reason: String },
}

/// Why the destination was not reached, so the check can say what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "problem")]
pub enum HostProblem {
    /// No `[[hosts]]` entry has this name; `configured` lists the names that do exist.
    NotConfigured { configured: Vec<String> },
    /// The connection did not open within the call timeout, or was refused.
    Unreachable { error: String },
}

/// The operator's `--block-migration` choice (Nova API ≥ 2.25 `block_migration: auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockMigrationChoice {
    #[default]
    Auto,
    Yes,
    No,
}

/// Everything the checks look at, gathered beforehand by the adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrecheckFacts {
    pub instance_name: String,
    pub instance_state: InstanceState,
    pub instance_memory_bytes: u64,
    pub disks: Vec<DiskFact>,
    pub source_host: String,
    pub source_host_up: bool,
    /// As typed by the operator; validated by the checks.
    pub destination_host: String,
    pub destination_host_up: bool,
    /// Why `destination_host_up` is false, when the adapter knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_host_problem: Option<HostProblem>,
    pub destination_free_memory_bytes: Option<u64>,
    pub source_hypervisor: Option<HypervisorInfo>,
    pub destination_hypervisor: Option<HypervisorInfo>,
    pub cpu_compare: CpuCompareResult,
    pub shared_storage_probe: SharedStorageProbe,
    pub destination_free_disk_bytes: Option<u64>,
    pub block_migration: BlockMigrationChoice,
    /// A job libvirt runs on the instance right now (a migration started elsewhere, a save, a
    /// snapshot): libvirt allows one at a time, and a second launch would fail after ferry had
    /// begun to act on the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_in_progress: Option<JobInProgress>,
}

/// The job libvirt reports running on the instance, as the prechecks saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInProgress {
    /// Where it runs (the source host).
    pub host: String,
    /// "a migration job", "a save job"…, from libvirt's job operation.
    pub what: String,
}

impl JobInProgress {
    /// The operator's reason and fix: the same words the precheck and the launch's own last
    /// look use.
    pub fn refusal(&self, instance: &str) -> String {
        format!(
            "{instance}: {} is already running on {}; `ferry resume` watches it, `ferry abort \
             {instance}` stops it",
            self.what, self.host
        )
    }
}

/// A check's verdict. `Warn` is for facts that could not be gathered: it does not block, but the
/// operator should know the check was not really made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum CheckOutcome {
    Pass,
    Warn { reason: String },
    Fail { reason: String },
}

/// Which check, stable for the TUI and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    DestinationName,
    DestinationDiffers,
    InstanceState,
    NoJobRunning,
    SourceHostUp,
    DestinationHostUp,
    DestinationMemory,
    /// Cold resizes only: the destination has CPUs for the new vCPU count.
    DestinationVcpus,
    HypervisorType,
    HypervisorVersion,
    CpuCompatible,
    Storage,
    DestinationDisk,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub id: CheckId,
    /// Short title for the checklist, e.g. "destination has enough memory".
    pub title: &'static str,
    pub outcome: CheckOutcome,
}

/// The migration as the checks shaped it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationPlan {
    /// Copy local disks (`VIR_MIGRATE_NON_SHARED_DISK` with `migrate_disks`).
    pub block_migration: bool,
    /// Guest device names of the disks to copy (`migrate_disks`).
    pub disks_to_copy: Vec<String>,
    pub bytes_to_copy: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrecheckReport {
    pub checks: Vec<CheckResult>,
    pub plan: MigrationPlan,
}

impl PrecheckReport {
    /// No check failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }

    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks
            .iter()
            .filter(|c| matches!(c.outcome, CheckOutcome::Fail { .. }))
    }

    /// The failed checks' reasons, "; "-joined: what an operator must fix before retrying.
    pub fn failure_reasons(&self) -> String {
        self.failures()
            .filter_map(|check| match &check.outcome {
                CheckOutcome::Fail { reason } => Some(reason.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn outcome(&self, id: CheckId) -> Option<&CheckOutcome> {
        self.checks.iter().find(|c| c.id == id).map(|c| &c.outcome)
    }
}

/// "11.3.0" from libvirt's encoded version number.
pub fn format_version(encoded: u64) -> String {
    format!(
        "{}.{}.{}",
        encoded / 1_000_000,
        (encoded / 1000) % 1000,
        encoded % 1000
    )
}

fn fail(reason: String) -> CheckOutcome {
    CheckOutcome::Fail { reason }
}

fn disks_to_copy(facts: &PrecheckFacts) -> Vec<&DiskFact> {
    facts
        .disks
        .iter()
        .filter(|d| d.storage == DiskStorage::Local && !d.read_only && d.source.is_some())
        .collect()
}

/// Block migration or not, and whether that choice can work (Nova driver
/// `check_can_live_migrate_source`: auto means "block-migrate unless storage is shared"; block
/// migration onto shared storage, or shared-storage migration without it, is refused).
fn storage_check(facts: &PrecheckFacts) -> (CheckOutcome, bool) {
    let local = disks_to_copy(facts);
    let dest = &facts.destination_host;
    let shared = match &facts.shared_storage_probe {
        SharedStorageProbe::Shared => Some(true),
        SharedStorageProbe::NotShared => Some(false),
        SharedStorageProbe::Unknown { .. } => None,
    };
    let local_names = local
        .iter()
        .map(|d| d.target.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match (facts.block_migration, shared) {
        // Nothing local to copy: shared or volume-backed, any choice but an explicit "yes" works.
        (BlockMigrationChoice::Yes, Some(true)) => (
            fail(format!(
                "{dest}: instance directory is shared with {}, so block migration would copy disks onto themselves; use --block-migration auto or no",
                facts.source_host
            )),
            false,
        ),
        (BlockMigrationChoice::Yes, _) => (CheckOutcome::Pass, !local.is_empty()),
        (_, Some(true)) => (CheckOutcome::Pass, false),
        (_, _) if local.is_empty() => (CheckOutcome::Pass, false),
        (BlockMigrationChoice::No, Some(false)) => (
            fail(format!(
                "{dest}: does not share the instance directory with {} and local disks {local_names} would be left behind; use --block-migration yes or auto",
                facts.source_host
            )),
            false,
        ),
        (BlockMigrationChoice::Auto, Some(false)) => (CheckOutcome::Pass, true),
        (choice, None) => {
            let reason = match &facts.shared_storage_probe {
                SharedStorageProbe::Unknown { reason } => reason.as_str(),
                _ => "",
            };
            if choice == BlockMigrationChoice::No {
                (
                    CheckOutcome::Warn {
                        reason: format!(
                            "{dest}: shared storage could not be probed ({reason}); migrating without copying local disks {local_names} as asked"
                        ),
                    },
                    false,
                )
            } else {
                (
                    CheckOutcome::Warn {
                        reason: format!(
                            "{dest}: shared storage could not be probed ({reason}); copying local disks {local_names} to be safe"
                        ),
                    },
                    true,
                )
            }
        }
    }
}

/// Runs every check and shapes the plan.
pub fn run_all(facts: &PrecheckFacts) -> PrecheckReport {
    let dest = facts.destination_host.as_str();
    let mut checks = Vec::new();
    let mut push = |id, title, outcome| checks.push(CheckResult { id, title, outcome });

    let destination_name = HostName::parse(dest);
    let destination_name_valid = destination_name.is_ok();
    push(
        CheckId::DestinationName,
        "destination name is valid",
        match destination_name {
            Ok(_) => CheckOutcome::Pass,
            Err(e) => fail(format!("destination: {e}")),
        },
    );

    push(
        CheckId::DestinationDiffers,
        "destination differs from source",
        if dest.eq_ignore_ascii_case(&facts.source_host) {
            fail(format!(
                "{dest}: {} already runs on {dest}; pick another destination",
                facts.instance_name
            ))
        } else {
            CheckOutcome::Pass
        },
    );

    push(
        CheckId::InstanceState,
        "instance is running or paused",
        match &facts.instance_state {
            InstanceState::Running | InstanceState::Paused => CheckOutcome::Pass,
            InstanceState::ShutOff => fail(format!(
                "{}: is shut off; live migration needs a running guest (use cold migration)",
                facts.instance_name
            )),
            InstanceState::Other(state) => fail(format!(
                "{}: is {state}; live migration needs it running or paused",
                facts.instance_name
            )),
        },
    );

    push(
        CheckId::NoJobRunning,
        "no other job runs on the instance",
        match &facts.job_in_progress {
            None => CheckOutcome::Pass,
            Some(job) => fail(job.refusal(&facts.instance_name)),
        },
    );

    push(
        CheckId::SourceHostUp,
        "source host is up",
        if facts.source_host_up {
            CheckOutcome::Pass
        } else {
            fail(format!("{}: source host is unreachable", facts.source_host))
        },
    );

    push(
        CheckId::DestinationHostUp,
        "destination host is up",
        match (&facts.destination_host_problem, destination_name_valid) {
            _ if facts.destination_host_up => CheckOutcome::Pass,
            (_, false) => fail(format!(
                "{dest}: not contacted, because it is not a valid host name"
            )),
            (Some(HostProblem::NotConfigured { configured }), true) => fail(format!(
                "{dest}: unknown host; add it to the config as a [[hosts]] entry with name = \"{dest}\" and its libvirt uri, or pick a configured host ({})",
                if configured.is_empty() {
                    "none configured".to_string()
                } else {
                    configured.join(", ")
                }
            )),
            (Some(HostProblem::Unreachable { error }), true) => {
                fail(format!("{dest}: destination host is unreachable: {error}"))
            }
            (None, true) => fail(format!("{dest}: destination host is unreachable")),
        },
    );

    push(
        CheckId::DestinationMemory,
        "destination has enough memory",
        match facts.destination_free_memory_bytes {
            Some(free) if free >= facts.instance_memory_bytes => CheckOutcome::Pass,
            Some(free) => fail(format!(
                "{dest}: destination has {} free, guest needs {}",
                format_bytes(free),
                format_bytes(facts.instance_memory_bytes)
            )),
            None => CheckOutcome::Warn {
                reason: format!(
                    "{dest}: free memory unknown; guest needs {}",
                    format_bytes(facts.instance_memory_bytes)
                ),
            },
        },
    );

    let (type_outcome, version_outcome) =
        match (&facts.source_hypervisor, &facts.destination_hypervisor) {
            (Some(source), Some(destination)) => {
                let type_outcome = if source
                    .hypervisor_type
                    .eq_ignore_ascii_case(&destination.hypervisor_type)
                {
                    CheckOutcome::Pass
                } else {
                    fail(format!(
                    "{dest}: runs {}, source {} runs {}; live migration needs the same hypervisor",
                    destination.hypervisor_type, facts.source_host, source.hypervisor_type
                ))
                };
                // Nova conductor: "Unable to migrate to host with older hypervisor version".
                let version_outcome = if destination.hypervisor_version >= source.hypervisor_version
                {
                    CheckOutcome::Pass
                } else {
                    fail(format!(
                        "{dest}: {} {} is older than {} on {}; migrate to a host at least as new",
                        destination.hypervisor_type,
                        format_version(destination.hypervisor_version),
                        format_version(source.hypervisor_version),
                        facts.source_host
                    ))
                };
                (type_outcome, version_outcome)
            }
            _ => {
                let unknown = CheckOutcome::Warn {
                    reason: format!("{dest}: hypervisor type or version unknown on one side"),
                };
                (unknown.clone(), unknown)
            }
        };
    push(
        CheckId::HypervisorType,
        "same hypervisor type",
        type_outcome,
    );
    push(
        CheckId::HypervisorVersion,
        "destination hypervisor at least as new",
        version_outcome,
    );

    push(
        CheckId::CpuCompatible,
        "destination CPU runs the guest's CPU model",
        match &facts.cpu_compare {
            CpuCompareResult::Identical | CpuCompareResult::Superset => CheckOutcome::Pass,
            CpuCompareResult::Incompatible { detail } => fail(format!(
                "{dest}: CPU cannot run {}'s CPU model: {detail}",
                facts.instance_name
            )),
            CpuCompareResult::Unknown { reason } => CheckOutcome::Warn {
                reason: format!("{dest}: CPU comparison not made: {reason}"),
            },
        },
    );

    let (storage_outcome, block_migration) = storage_check(facts);
    push(
        CheckId::Storage,
        "storage plan is possible",
        storage_outcome,
    );

    let copied: Vec<&DiskFact> = if block_migration {
        disks_to_copy(facts)
    } else {
        Vec::new()
    };
    let bytes_to_copy: u64 = copied.iter().map(|d| d.size_bytes).sum();
    push(
        CheckId::DestinationDisk,
        "destination has room for copied disks",
        match (block_migration, facts.destination_free_disk_bytes) {
            (false, _) => CheckOutcome::Pass,
            (true, Some(free)) if free >= bytes_to_copy => CheckOutcome::Pass,
            (true, Some(free)) => fail(format!(
                "{dest}: destination has {} of disk free, copying {} needs {}",
                format_bytes(free),
                copied
                    .iter()
                    .map(|d| d.target.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                format_bytes(bytes_to_copy)
            )),
            (true, None) => CheckOutcome::Warn {
                reason: format!(
                    "{dest}: free disk unknown; copying disks needs {}",
                    format_bytes(bytes_to_copy)
                ),
            },
        },
    );

    PrecheckReport {
        checks,
        plan: MigrationPlan {
            block_migration,
            disks_to_copy: copied.iter().map(|d| d.target.clone()).collect(),
            bytes_to_copy,
        },
    }
}

/// The checklist as text, one line per check (`✓` pass, `!` warning, `✗` failure, then the
/// title and the reason), and a last line with the verdict and the plan. For the CLI and logs;
/// the TUI draws the same `PrecheckReport` itself.
pub fn render_report(report: &PrecheckReport) -> String {
    let mut text = String::new();
    let mut warnings = 0;
    for check in &report.checks {
        let line = match &check.outcome {
            CheckOutcome::Pass => format!("✓ {}", check.title),
            CheckOutcome::Warn { reason } => {
                warnings += 1;
                format!("! {} — {reason}", check.title)
            }
            CheckOutcome::Fail { reason } => format!("✗ {} — {reason}", check.title),
        };
        text.push_str(&line);
        text.push('\n');
    }
    let failures = report.failures().count();
    let verdict = if failures > 0 {
        format!(
            "refused: {failures} check{} failed",
            if failures == 1 { "" } else { "s" }
        )
    } else {
        let plan = &report.plan;
        let storage = if plan.block_migration {
            format!(
                "block migration copying {} ({})",
                plan.disks_to_copy.join(", "),
                format_bytes(plan.bytes_to_copy)
            )
        } else {
            "no disk is copied".to_string()
        };
        match warnings {
            0 => format!("passed: {storage}"),
            1 => format!("passed with 1 warning: {storage}"),
            n => format!("passed with {n} warnings: {storage}"),
        }
    };
    text.push_str(&verdict);
    text.push('\n');
    text
}

/// The checks of a cold migration (Nova's resize/migrate path: the conductor's host checks and
/// `prep_resize`'s claim of memory and disk on the destination), from the same facts as the
/// live checks. A cold migration moves a running or shut-off guest, copies every disk not on
/// shared storage (read-only media too), and needs neither a CPU comparison nor a newer
/// hypervisor. `storage_problems` are what the adapter found in the way of moving the disks and
/// the definition (no storage pool for a disk, a name taken on the destination…), one reason
/// each; `destination_free_disk_bytes` is that of the destination pool with the least room.
pub fn run_cold(facts: &PrecheckFacts, storage_problems: &[String]) -> PrecheckReport {
    let mut as_block_migration = facts.clone();
    as_block_migration.block_migration = BlockMigrationChoice::Yes;
    as_block_migration.shared_storage_probe = SharedStorageProbe::NotShared;
    for disk in &mut as_block_migration.disks {
        disk.read_only = false;
    }
    let live = run_all(&as_block_migration);
    let checks = live
        .checks
        .into_iter()
        .filter(|check| {
            !matches!(
                check.id,
                CheckId::HypervisorVersion | CheckId::CpuCompatible
            )
        })
        .map(|check| match check.id {
            CheckId::InstanceState => CheckResult {
                id: check.id,
                title: "instance is running or shut off",
                outcome: match &facts.instance_state {
                    InstanceState::Running | InstanceState::ShutOff => CheckOutcome::Pass,
                    InstanceState::Paused => fail(format!(
                        "{}: is paused; resume it or shut it down before a cold migration",
                        facts.instance_name
                    )),
                    InstanceState::Other(state) => fail(format!(
                        "{}: is {state}; a cold migration needs it running or shut off",
                        facts.instance_name
                    )),
                },
            },
            CheckId::Storage => CheckResult {
                id: check.id,
                title: "disks and definition can move",
                outcome: if storage_problems.is_empty() {
                    CheckOutcome::Pass
                } else {
                    fail(storage_problems.join("; "))
                },
            },
            _ => check,
        })
        .collect();
    PrecheckReport {
        checks,
        plan: live.plan,
    }
}

pub mod nova;

#[cfg(test)]
mod tests;
