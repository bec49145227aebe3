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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::units::{GIB, MIB};

    #[test]
    fn cold_checks_accept_a_shut_off_guest_and_skip_cpu_and_version() {
        let mut facts = good_facts();
        facts.instance_state = InstanceState::ShutOff;
        facts.cpu_compare = CpuCompareResult::Incompatible {
            detail: "host lacks avx512f".into(),
        };
        facts.destination_hypervisor = qemu(9_000_000);
        facts.block_migration = BlockMigrationChoice::No;
        let report = run_cold(&facts, &[]);
        assert!(
            report.passed(),
            "{:?}",
            report.failures().collect::<Vec<_>>()
        );
        assert!(report.outcome(CheckId::CpuCompatible).is_none());
        assert!(report.outcome(CheckId::HypervisorVersion).is_none());
        // The config drive is copied too: a cold migration moves every local disk.
        assert_eq!(report.plan.disks_to_copy, vec!["vda", "hdc"]);
        assert_eq!(report.plan.bytes_to_copy, 2 * GIB + MIB);
    }

    #[test]
    fn cold_checks_name_what_is_in_the_way() {
        let mut facts = good_facts();
        facts.instance_state = InstanceState::Paused;
        facts.destination_host = "hv1".into();
        facts.destination_free_disk_bytes = Some(GIB);
        let problems = vec!["hv1: pool local already holds web1.qcow2".to_string()];
        let report = run_cold(&facts, &problems);
        let failed: Vec<CheckId> = report.failures().map(|c| c.id).collect();
        assert_eq!(
            failed,
            vec![
                CheckId::DestinationDiffers,
                CheckId::InstanceState,
                CheckId::Storage,
                CheckId::DestinationDisk
            ]
        );
        assert!(reason(&report, CheckId::InstanceState).contains("is paused"));
        assert_eq!(
            reason(&report, CheckId::Storage),
            "hv1: pool local already holds web1.qcow2"
        );
    }

    fn qemu(version: u64) -> Option<HypervisorInfo> {
        Some(HypervisorInfo {
            hypervisor_type: "QEMU".into(),
            hypervisor_version: version,
        })
    }

    fn good_facts() -> PrecheckFacts {
        PrecheckFacts {
            instance_name: "web1".into(),
            instance_state: InstanceState::Running,
            instance_memory_bytes: 512 * MIB,
            disks: vec![
                DiskFact {
                    target: "vda".into(),
                    source: Some("/var/lib/libvirt/images/web1.qcow2".into()),
                    storage: DiskStorage::Local,
                    size_bytes: 2 * GIB,
                    read_only: false,
                },
                DiskFact {
                    target: "hdc".into(),
                    source: Some("/var/lib/libvirt/images/web1-config.iso".into()),
                    storage: DiskStorage::Local,
                    size_bytes: MIB,
                    read_only: true,
                },
                DiskFact {
                    target: "vdb".into(),
                    source: Some("rbd:volumes/data".into()),
                    storage: DiskStorage::Shared,
                    size_bytes: 100 * GIB,
                    read_only: false,
                },
            ],
            source_host: "hv1".into(),
            source_host_up: true,
            destination_host: "hv2".into(),
            destination_host_up: true,
            destination_host_problem: None,
            destination_free_memory_bytes: Some(4 * GIB),
            source_hypervisor: qemu(10_000_000),
            destination_hypervisor: qemu(10_000_000),
            cpu_compare: CpuCompareResult::Superset,
            shared_storage_probe: SharedStorageProbe::NotShared,
            destination_free_disk_bytes: Some(20 * GIB),
            block_migration: BlockMigrationChoice::Auto,
            job_in_progress: None,
        }
    }

    fn reason(report: &PrecheckReport, id: CheckId) -> String {
        match report.outcome(id).unwrap() {
            CheckOutcome::Fail { reason } | CheckOutcome::Warn { reason } => reason.clone(),
            CheckOutcome::Pass => panic!("{id:?} passed"),
        }
    }

    #[test]
    fn a_job_already_running_on_the_instance_refuses_with_the_fix() {
        let mut facts = good_facts();
        facts.job_in_progress = Some(JobInProgress {
            host: "hv3".into(),
            what: "a migration job".into(),
        });
        let report = run_all(&facts);
        let failed: Vec<CheckId> = report.failures().map(|c| c.id).collect();
        assert_eq!(failed, vec![CheckId::NoJobRunning]);
        assert_eq!(
            reason(&report, CheckId::NoJobRunning),
            format!(
                "{0}: a migration job is already running on hv3; `ferry resume` watches it, \
                 `ferry abort {0}` stops it",
                facts.instance_name
            )
        );
        // A cold migration is refused for the same reason.
        let cold = run_cold(&facts, &[]);
        assert!(cold.failures().any(|c| c.id == CheckId::NoJobRunning));
    }

    #[test]
    fn good_facts_pass_and_plan_copies_only_local_writable_disks() {
        let report = run_all(&good_facts());
        assert!(
            report.passed(),
            "{:?}",
            report.failures().collect::<Vec<_>>()
        );
        assert_eq!(report.checks.len(), 12);
        assert!(report.plan.block_migration);
        assert_eq!(report.plan.disks_to_copy, vec!["vda".to_string()]);
        assert_eq!(report.plan.bytes_to_copy, 2 * GIB);
    }

    #[test]
    fn every_failure_is_listed_not_just_the_first() {
        let mut facts = good_facts();
        facts.destination_host = "hv1".into();
        facts.instance_state = InstanceState::ShutOff;
        facts.destination_free_memory_bytes = Some(380 * MIB);
        facts.destination_hypervisor = qemu(9_000_000);
        let report = run_all(&facts);
        let failed: Vec<CheckId> = report.failures().map(|c| c.id).collect();
        assert_eq!(
            failed,
            vec![
                CheckId::DestinationDiffers,
                CheckId::InstanceState,
                CheckId::DestinationMemory,
                CheckId::HypervisorVersion
            ]
        );
        assert_eq!(
            reason(&report, CheckId::DestinationMemory),
            "hv1: destination has 380 MiB free, guest needs 512 MiB"
        );
        assert!(reason(&report, CheckId::HypervisorVersion).contains("9.0.0 is older than 10.0.0"));
    }

    #[test]
    fn destination_name_is_validated() {
        let mut facts = good_facts();
        facts.destination_host = "hv2/system?x".into();
        let report = run_all(&facts);
        assert!(reason(&report, CheckId::DestinationName).contains("'/'"));
    }

    #[test]
    fn hypervisor_type_must_match() {
        let mut facts = good_facts();
        facts.destination_hypervisor = Some(HypervisorInfo {
            hypervisor_type: "Xen".into(),
            hypervisor_version: 4_017_000,
        });
        let report = run_all(&facts);
        assert!(reason(&report, CheckId::HypervisorType).contains("runs Xen"));
        // Newer destination is fine.
        let mut facts = good_facts();
        facts.destination_hypervisor = qemu(10_001_000);
        assert!(run_all(&facts).passed());
    }

    #[test]
    fn cpu_incompatible_fails_unknown_warns() {
        let mut facts = good_facts();
        facts.cpu_compare = CpuCompareResult::Incompatible {
            detail: "host lacks avx512f".into(),
        };
        assert!(reason(&run_all(&facts), CheckId::CpuCompatible).contains("avx512f"));
        facts.cpu_compare = CpuCompareResult::Unknown {
            reason: "this libvirt driver does not support CPU comparison".into(),
        };
        let report = run_all(&facts);
        assert!(report.passed());
        assert!(matches!(
            report.outcome(CheckId::CpuCompatible),
            Some(CheckOutcome::Warn { .. })
        ));
    }

    #[test]
    fn block_migration_choices_follow_nova() {
        let mut facts = good_facts();
        facts.shared_storage_probe = SharedStorageProbe::Shared;
        let report = run_all(&facts);
        assert!(report.passed());
        assert!(!report.plan.block_migration);
        assert!(report.plan.disks_to_copy.is_empty());

        facts.block_migration = BlockMigrationChoice::Yes;
        assert!(reason(&run_all(&facts), CheckId::Storage).contains("copy disks onto themselves"));

        facts.shared_storage_probe = SharedStorageProbe::NotShared;
        facts.block_migration = BlockMigrationChoice::No;
        assert!(reason(&run_all(&facts), CheckId::Storage).contains("local disks vda"));

        // Volume-backed guest: nothing local, so "no" is fine even without shared storage.
        facts.disks.retain(|d| d.storage == DiskStorage::Shared);
        let report = run_all(&facts);
        assert!(report.passed());
        assert!(!report.plan.block_migration);
    }

    #[test]
    fn unknown_probe_copies_disks_to_be_safe() {
        let mut facts = good_facts();
        facts.shared_storage_probe = SharedStorageProbe::Unknown {
            reason: "ssh to hv2 timed out".into(),
        };
        let report = run_all(&facts);
        assert!(report.passed());
        assert!(report.plan.block_migration);
        assert!(reason(&report, CheckId::Storage).contains("ssh to hv2 timed out"));
    }

    #[test]
    fn destination_disk_space_is_checked_for_copied_disks() {
        let mut facts = good_facts();
        facts.destination_free_disk_bytes = Some(GIB);
        assert_eq!(
            reason(&run_all(&facts), CheckId::DestinationDisk),
            "hv2: destination has 1024 MiB of disk free, copying vda needs 2048 MiB"
        );
        // Not copying: free disk does not matter.
        facts.shared_storage_probe = SharedStorageProbe::Shared;
        assert!(run_all(&facts).passed());
    }

    #[test]
    fn unreachable_destination_says_why_and_how_to_fix() {
        let mut facts = good_facts();
        facts.destination_host = "hv9".into();
        facts.destination_host_up = false;
        facts.destination_host_problem = Some(HostProblem::NotConfigured {
            configured: vec!["hv1".into(), "hv2".into()],
        });
        let unknown = reason(&run_all(&facts), CheckId::DestinationHostUp);
        assert!(
            unknown.contains("hv9: unknown host")
                && unknown.contains("add it to the config")
                && unknown.contains("hv1, hv2"),
            "{unknown}"
        );

        facts.destination_host_problem = Some(HostProblem::Unreachable {
            error: "no answer within 15s".into(),
        });
        assert!(reason(&run_all(&facts), CheckId::DestinationHostUp).ends_with("15s"));

        facts.destination_host = "hv2;rm -rf /".into();
        facts.destination_host_problem = None;
        let report = run_all(&facts);
        assert!(reason(&report, CheckId::DestinationName).contains("';'"));
        assert!(reason(&report, CheckId::DestinationHostUp).contains("not contacted"));
    }

    #[test]
    fn report_renders_one_line_per_check_and_a_verdict() {
        let report = run_all(&good_facts());
        let text = render_report(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), report.checks.len() + 1);
        assert_eq!(lines[0], "✓ destination name is valid");
        assert_eq!(
            lines.last().unwrap(),
            &"passed: block migration copying vda (2048 MiB)"
        );

        let mut facts = good_facts();
        facts.instance_state = InstanceState::ShutOff;
        facts.cpu_compare = CpuCompareResult::Unknown {
            reason: "guest is emulated (TCG)".into(),
        };
        let text = render_report(&run_all(&facts));
        assert!(text.contains(
            "✗ instance is running or paused — web1: is shut off; live migration needs a running guest (use cold migration)\n"
        ));
        assert!(text.contains("! destination CPU runs the guest's CPU model — hv2: CPU comparison not made: guest is emulated (TCG)\n"));
        assert!(text.ends_with("refused: 1 check failed\n"));
    }

    #[test]
    fn versions_print_like_libvirt() {
        assert_eq!(format_version(11_003_000), "11.3.0");
        assert_eq!(format_version(7_002_001), "7.2.1");
    }
}
