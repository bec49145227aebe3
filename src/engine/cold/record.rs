//! A cold migration as the history keeps it, for every front end alike: the row is written
//! before the first libvirt call, phases, verifications and rollback steps become events, the
//! outcome closes it (or leaves it awaiting confirm), and confirm or revert finds it again by
//! instance and closes it for good. The CLI and the TUI both go through here, so a migration
//! started in one can be settled from the other, or by a later ferry. A row a dead ferry left
//! with no outcome is recovered here too (`recover_interrupted`); a run lock tells it from one
//! a live ferry is still running.
//!
//! The history is a file on disk and its writes block, so these functions run on a plain
//! thread (a front end's worker, or `spawn_blocking`), never on a runtime worker: they wait on
//! the runtime for the libvirt steps (`crate::runtime::wait`).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::cold::{
    self, ColdMigrationPlan, ColdOutcome, ColdPhase, ColdUpdate, Recovery, SettleReport,
};
use crate::engine::history::{
    self, EventKind, History, HistoryError, MigrationRecord, NewMigration, Outcome, OutcomeKind,
};
use crate::model::migration::{MigrationId, MigrationKind};
use crate::model::units::{format_bytes, format_duration_ms};
use crate::model::HostName;

#[derive(Debug, thiserror::Error)]
pub enum ColdRecordError {
    #[error("history: {0}")]
    History(#[from] HistoryError),
    #[error("{0}")]
    Plan(String),
    /// No migration of that instance waits for an answer.
    #[error(
        "{instance}: no cold migration awaits confirm or revert (see `ferry history`); \
         a migration still copying must finish first"
    )]
    NothingAwaiting { instance: String },
    /// That migration is not (or no longer) awaiting an answer.
    #[error("#{id}: not awaiting confirm or revert in the history (settled or ended since?)")]
    NotAwaiting { id: MigrationId },
    /// Another ferry process runs (or recovers) a cold migration of this instance.
    #[error(
        "{instance}: another ferry process is migrating it cold (or recovering such a \
         migration); let that one finish"
    )]
    AlreadyRunning { instance: String },
    #[error("cold migration lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    /// confirm or revert refused or stopped; the history row keeps awaiting an answer.
    #[error("{instance}: not {verb}: {error}")]
    Settle {
        instance: String,
        verb: &'static str,
        error: cold::SettleError,
    },
}

/// Writes the history row of a cold migration about to start; its id names the migration
/// everywhere (TUI list, `ferry history`).
pub fn record_start(
    history: &mut History,
    plan: &ColdMigrationPlan,
) -> Result<MigrationId, ColdRecordError> {
    let host = |name: &str| {
        HostName::parse(name).map_err(|e| ColdRecordError::Plan(format!("host {name:?}: {e}")))
    };
    let plan_json = serde_json::to_value(plan)
        .map_err(|e| ColdRecordError::Plan(format!("the plan cannot be stored: {e}")))?;
    let id = history.start_migration(&NewMigration {
        kind: MigrationKind::Cold,
        instance_name: plan.instance_name.clone(),
        instance_uuid: plan.instance_uuid.clone(),
        source_host: host(&plan.source.name)?,
        destination_host: host(&plan.destination.name)?,
        policy: if plan.resize.is_some() {
            "resize"
        } else {
            "cold"
        }
        .into(),
        plan: plan_json,
        started_at_unix_ms: history::unix_ms_now(),
    })?;
    if let Some(words) = resize_words(plan) {
        history.record_event(id, 0, EventKind::Phase, &words)?;
    }
    Ok(id)
}

/// "resize 1 vCPU, 128 MiB → 2 vCPUs, 384 MiB (in place on hv1)": what `ferry history` and
/// the cold detail say of a resize.
pub fn resize_words(plan: &ColdMigrationPlan) -> Option<String> {
    let resize = plan.resize.as_ref()?;
    Some(format!(
        "resize {}{}",
        resize.describe(),
        if resize.in_place() {
            format!(" (in place on {})", plan.source.name)
        } else {
            String::new()
        }
    ))
}

/// What the settled outcome of a resize says: the size the guest has now.
fn settled_resize_words(plan: &ColdMigrationPlan, keep: bool) -> String {
    match &plan.resize {
        None => String::new(),
        Some(resize) if keep => format!("kept the new size: {}", resize.describe()),
        Some(resize) => format!(
            "back to the old size {}",
            cold::resize::size_words(resize.from)
        ),
    }
}

/// How the history's event of a rollback phase begins: recovery reads it back to tell that the
/// dead ferry had begun rolling back.
const ROLLING_BACK_WORDS: &str = "rolling back";

/// What a phase means, in the operator's words: the history's events and the TUI's timeline.
pub fn phase_words(phase: &ColdPhase) -> String {
    match phase {
        ColdPhase::Prechecks => "prechecks on fresh facts".to_string(),
        ColdPhase::ShuttingDown {
            timeout_ms,
            hard_power_off_allowed,
        } => format!(
            "shutting down (ACPI, up to {}{})",
            format_duration_ms(*timeout_ms),
            if *hard_power_off_allowed {
                ", then a hard power off"
            } else {
                "; no hard power off"
            }
        ),
        ColdPhase::PoweringOffHard => "powering off hard: the guest ignored the shutdown".into(),
        ColdPhase::Copying {
            disk_number,
            disk_count,
            target,
        } => format!("copying disk {disk_number} of {disk_count} ({target})"),
        ColdPhase::Verifying {
            disk_number,
            disk_count,
            target,
        } => format!("verifying disk {disk_number} of {disk_count} ({target})"),
        ColdPhase::Defining => "defining on the destination".into(),
        ColdPhase::Starting => "starting on the destination".into(),
        ColdPhase::AwaitingConfirm => "awaiting confirm or revert".into(),
        ColdPhase::Confirmed => "confirmed: the source copy is removed".into(),
        ColdPhase::Reverted => "reverted: back on the source".into(),
        ColdPhase::RollingBack { reason } => format!("{ROLLING_BACK_WORDS}: {reason}"),
        ColdPhase::RolledBack => "rolled back: the instance is on its source".into(),
        ColdPhase::Failed => "failed".into(),
    }
}

/// The history event an update becomes, if any: progress samples are not kept (the outcome
/// has the totals), everything that changes or explains the state is.
pub fn history_event(update: &ColdUpdate) -> Option<(EventKind, String)> {
    match update {
        ColdUpdate::Phase(phase) => Some((EventKind::Phase, phase_words(phase))),
        ColdUpdate::Verified {
            target,
            bytes,
            sha256,
        } => Some((
            EventKind::Phase,
            format!(
                "{target} verified on the destination ({}, sha256 {sha256})",
                format_bytes(*bytes)
            ),
        )),
        ColdUpdate::Warning { message } => Some((EventKind::Error, format!("warning: {message}"))),
        ColdUpdate::RollbackStep { description } => {
            Some((EventKind::Error, format!("rollback: {description}")))
        }
        ColdUpdate::Prechecks { .. } | ColdUpdate::Progress(_) | ColdUpdate::Finished(_) => None,
    }
}

/// Records one update of migration `id`, `at_ms` after it started.
pub fn record_update(
    history: &mut History,
    id: MigrationId,
    at_ms: u64,
    update: &ColdUpdate,
) -> Result<(), ColdRecordError> {
    if let Some((kind, text)) = history_event(update) {
        history.record_event(id, at_ms, kind, &text)?;
    }
    Ok(())
}

/// The outcome as the history stores it.
pub fn outcome_record(outcome: &ColdOutcome) -> Outcome {
    let (detail, downtime_ms, total_time_ms, bytes) = match outcome {
        ColdOutcome::AwaitingConfirm {
            total_time_ms,
            downtime_ms,
            bytes_copied,
            ..
        } => (
            String::new(),
            *downtime_ms,
            Some(*total_time_ms),
            Some(*bytes_copied),
        ),
        ColdOutcome::Refused { detail } | ColdOutcome::Failed { detail } => {
            (detail.clone(), None, None, None)
        }
        ColdOutcome::RolledBack { detail, leftovers } => (
            if leftovers.is_empty() {
                detail.clone()
            } else {
                format!(
                    "{detail}; left on the destination: {}",
                    leftovers.join(", ")
                )
            },
            None,
            None,
            None,
        ),
    };
    Outcome {
        kind: outcome.kind(),
        detail,
        finished_at_unix_ms: history::unix_ms_now(),
        downtime_ms,
        total_time_ms,
        bytes_transferred: bytes,
    }
}

pub fn record_outcome(
    history: &mut History,
    id: MigrationId,
    outcome: &ColdOutcome,
) -> Result<(), ColdRecordError> {
    let mut record = outcome_record(outcome);
    if matches!(outcome, ColdOutcome::AwaitingConfirm { .. }) {
        // The plan the row keeps says whether it resizes.
        let stored = history.migration(id)?.plan;
        if let Some(words) = serde_json::from_value::<ColdMigrationPlan>(stored)
            .ok()
            .as_ref()
            .and_then(resize_words)
        {
            record.detail = words;
        }
    }
    Ok(history.finish_migration(id, &record)?)
}

/// A cold migration waiting for the operator's answer, with its stored plan (or why that plan
/// cannot be read: the migration is still listed, so the operator learns of it).
pub struct Awaiting {
    pub record: MigrationRecord,
    pub plan: Result<ColdMigrationPlan, String>,
}

/// Every cold migration awaiting confirm or revert, oldest first.
pub fn all_awaiting(history: &History) -> Result<Vec<Awaiting>, ColdRecordError> {
    Ok(history
        .unfinished()?
        .into_iter()
        .filter(|r| {
            r.kind == MigrationKind::Cold
                && r.outcome == Some(OutcomeKind::AwaitingConfirm)
                && !crate::engine::nova::NovaMigrationPlan::is_nova_record(&r.plan)
        })
        .map(|record| {
            let plan = serde_json::from_value(record.plan.clone()).map_err(|e| {
                format!(
                    "{}: the stored plan of migration {} cannot be read ({e}); settle it by hand \
                     with virsh",
                    record.instance_name, record.id
                )
            });
            Awaiting { record, plan }
        })
        .collect())
}

/// The instance's newest cold migration awaiting an answer.
pub fn awaiting(
    history: &History,
    instance: &str,
) -> Result<(MigrationId, ColdMigrationPlan), ColdRecordError> {
    let newest = all_awaiting(history)?
        .into_iter()
        .filter(|a| a.record.instance_name == instance)
        .max_by_key(|a| (a.record.started_at_unix_ms, a.record.id));
    let Some(found) = newest else {
        return Err(ColdRecordError::NothingAwaiting {
            instance: instance.to_string(),
        });
    };
    let plan = found.plan.map_err(ColdRecordError::Plan)?;
    Ok((found.record.id, plan))
}

/// The plan of migration `id`, if it awaits an answer: what the TUI settles by row.
pub fn awaiting_by_id(
    history: &History,
    id: MigrationId,
) -> Result<ColdMigrationPlan, ColdRecordError> {
    let found = all_awaiting(history)?
        .into_iter()
        .find(|a| a.record.id == id)
        .ok_or(ColdRecordError::NotAwaiting { id })?;
    found.plan.map_err(ColdRecordError::Plan)
}

/// Confirm (`keep`: remove the source copy) or revert (remove the destination copy, start on
/// the source again) migration `id`, and record it: each step as an operator event, then the
/// final outcome. A refusal or a partial run is recorded as an error event and leaves the
/// migration awaiting an answer, so it can be tried again.
pub fn settle(
    history: &mut History,
    id: MigrationId,
    plan: &ColdMigrationPlan,
    keep: bool,
    call_timeout: Duration,
) -> Result<SettleReport, ColdRecordError> {
    let (result, kind, verb) = if keep {
        (
            crate::runtime::wait(cold::confirm(plan, call_timeout)),
            OutcomeKind::Confirmed,
            "confirmed",
        )
    } else {
        (
            crate::runtime::wait(cold::revert(plan, call_timeout)),
            OutcomeKind::Reverted,
            "reverted",
        )
    };
    let at_ms = elapsed_ms_since_start(history, id);
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            history.record_event(id, at_ms, EventKind::Error, &format!("not {verb}: {error}"))?;
            return Err(ColdRecordError::Settle {
                instance: plan.instance_name.clone(),
                verb,
                error,
            });
        }
    };
    for step in &report.steps {
        history.record_event(id, at_ms, EventKind::Operator, step)?;
    }
    history.finish_migration(
        id,
        &Outcome {
            kind,
            detail: settled_resize_words(plan, keep),
            finished_at_unix_ms: history::unix_ms_now(),
            downtime_ms: None,
            total_time_ms: None,
            bytes_transferred: None,
        },
    )?;
    Ok(report)
}

/// Events count from the migration's start; a confirm may come days later.
fn elapsed_ms_since_start(history: &History, id: MigrationId) -> u64 {
    history
        .migration(id)
        .map(|record| (history::unix_ms_now() - record.started_at_unix_ms).max(0) as u64)
        .unwrap_or(0)
}

/// Held by the process that runs a cold migration (or recovers one) for as long as it does:
/// an advisory lock on a file named by the instance's UUID. The kernel drops it when that
/// process dies, however it dies, so a history row with no outcome whose lock can be taken
/// belongs to a dead ferry, while one whose lock is held is still being worked on and must be
/// left alone. The files stay (a few bytes each): removing one while another process opens it
/// would let two processes hold "the" lock at once.
#[derive(Debug)]
pub struct ColdRunLock {
    _file: File,
}

/// Where the run locks live.
pub fn lock_dir() -> PathBuf {
    crate::logging::state_dir().join("cold-locks")
}

/// Takes the run lock of `plan`'s instance without waiting: `AlreadyRunning` if another
/// process holds it.
pub fn lock_run(plan: &ColdMigrationPlan) -> Result<ColdRunLock, ColdRecordError> {
    lock_run_in(&lock_dir(), plan)
}

fn lock_run_in(dir: &Path, plan: &ColdMigrationPlan) -> Result<ColdRunLock, ColdRecordError> {
    // A UUID is hex digits and dashes; anything else is kept out of the file name.
    let file_name: String = plan
        .instance_uuid
        .chars()
        .map(|c| {
            if c.is_ascii_hexdigit() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{file_name}.lock"));
    let io_error = |source| ColdRecordError::Lock {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => Ok(ColdRunLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(ColdRecordError::AlreadyRunning {
            instance: plan.instance_name.clone(),
        }),
        Err(TryLockError::Error(error)) => Err(io_error(error)),
    }
}

/// Whether the events show the dead ferry had begun rolling back: its phase event, or a
/// rollback step.
pub fn rollback_begun(events: &[history::EventRecord]) -> bool {
    events.iter().any(|event| {
        (event.kind == EventKind::Phase && event.message.starts_with(ROLLING_BACK_WORDS))
            || (event.kind == EventKind::Error && event.message.starts_with("rollback: "))
    })
}

/// One cold migration a ferry left with no outcome, and what recovering it did.
pub struct Interrupted {
    pub record: MigrationRecord,
    /// The plan and how it was settled, or why it was left as it is (the row stays without
    /// an outcome, so the next `ferry resume` or TUI start tries again).
    pub result: Result<(ColdMigrationPlan, Recovery), String>,
}

/// What the history's outcome says of a recovery: that ferry stopped mid-migration, and what
/// the facts showed.
pub fn recovery_detail(recovery: &Recovery) -> String {
    match recovery {
        Recovery::AwaitingConfirm { reason } => {
            format!("ferry stopped mid-migration; recovered as awaiting confirm: {reason}")
        }
        Recovery::RolledBack {
            reason, leftovers, ..
        } => {
            let detail = format!("ferry stopped mid-migration; rolled back on recovery: {reason}");
            if leftovers.is_empty() {
                detail
            } else {
                format!(
                    "{detail}; left on the destination: {}",
                    leftovers.join(", ")
                )
            }
        }
    }
}

/// Settles every cold migration whose ferry died before recording an outcome (oldest first),
/// from its plan and what the hosts hold now (`cold::recover`), and records each: its steps as
/// events, then the outcome (awaiting confirm, or rolled back). Migrations another live ferry
/// process still runs are left to it. Each one takes a host round trip or more: run this off
/// any UI thread.
pub fn recover_interrupted(history: &mut History) -> Result<Vec<Interrupted>, ColdRecordError> {
    let interrupted: Vec<MigrationRecord> = history
        .unfinished()?
        .into_iter()
        .filter(|r| {
            r.kind == MigrationKind::Cold
                && r.outcome.is_none()
                && !crate::engine::nova::NovaMigrationPlan::is_nova_record(&r.plan)
        })
        .collect();
    let mut results = Vec::new();
    for record in interrupted {
        let result = recover_one(history, &record);
        results.push(Interrupted { record, result });
    }
    Ok(results)
}

fn recover_one(
    history: &mut History,
    record: &MigrationRecord,
) -> Result<(ColdMigrationPlan, Recovery), String> {
    let id = record.id;
    let plan: ColdMigrationPlan = serde_json::from_value(record.plan.clone()).map_err(|e| {
        format!(
            "its stored plan cannot be read ({e}); check both hosts with `ferry instances` and \
             settle it with virsh"
        )
    })?;
    let _lock = lock_run(&plan).map_err(|error| match error {
        ColdRecordError::AlreadyRunning { .. } => {
            "another ferry process still runs it (or recovers it); left to that one".to_string()
        }
        other => other.to_string(),
    })?;
    // Read again under the lock: another ferry may have recovered it since the list was read.
    let current = history.migration(id).map_err(|e| e.to_string())?;
    if current.outcome.is_some() {
        return Err(format!(
            "already recovered by another ferry process ({})",
            current.outcome.map_or("", |o| o.as_str())
        ));
    }
    let events = history.events(id).map_err(|e| e.to_string())?;
    let at_ms = elapsed_ms_since_start(history, id);
    let recovery = match crate::runtime::wait(cold::recover(
        &plan,
        rollback_begun(&events),
        plan.call_timeout,
    )) {
        Ok(recovery) => recovery,
        Err(error) => {
            let message = format!("not recovered after ferry stopped mid-migration: {error}");
            history
                .record_event(id, at_ms, EventKind::Error, &message)
                .map_err(|e| e.to_string())?;
            return Err(error.to_string());
        }
    };
    let record_it = |history: &mut History| -> Result<(), HistoryError> {
        history.record_event(
            id,
            at_ms,
            EventKind::Operator,
            "recovering: ferry stopped mid-migration",
        )?;
        if let Recovery::RolledBack { steps, .. } = &recovery {
            for step in steps {
                history.record_event(id, at_ms, EventKind::Error, &format!("rollback: {step}"))?;
            }
        }
        let kind = match &recovery {
            Recovery::AwaitingConfirm { .. } => OutcomeKind::AwaitingConfirm,
            Recovery::RolledBack { .. } => OutcomeKind::RolledBack,
        };
        history.finish_migration(
            id,
            &Outcome {
                kind,
                detail: recovery_detail(&recovery),
                finished_at_unix_ms: history::unix_ms_now(),
                downtime_ms: None,
                total_time_ms: None,
                bytes_transferred: None,
            },
        )
    };
    record_it(history).map_err(|e| {
        format!(
            "recovered ({}), but the history could not record it: {e}",
            recovery_detail(&recovery)
        )
    })?;
    Ok((plan, recovery))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_samples_stay_out_of_the_history_and_phases_read_as_words() {
        let progress = ColdUpdate::Progress(cold::CopyProgress {
            disk_number: 1,
            disk_count: 1,
            target: "vdb".into(),
            verifying: false,
            bytes_done: 1,
            bytes_total: 2,
            rate_bytes_per_second: None,
            eta_ms: None,
        });
        assert_eq!(history_event(&progress), None);
        let (kind, text) = history_event(&ColdUpdate::Phase(ColdPhase::ShuttingDown {
            timeout_ms: 60_000,
            hard_power_off_allowed: false,
        }))
        .unwrap();
        assert_eq!(kind, EventKind::Phase);
        assert_eq!(
            text,
            "shutting down (ACPI, up to 1 min 00 s; no hard power off)"
        );
        let (kind, text) = history_event(&ColdUpdate::RollbackStep {
            description: "hv2: deleted local/a.qcow2".into(),
        })
        .unwrap();
        assert_eq!(kind, EventKind::Error);
        assert_eq!(text, "rollback: hv2: deleted local/a.qcow2");
    }

    #[test]
    fn a_rollback_with_leftovers_names_them_in_the_outcome() {
        let outcome = outcome_record(&ColdOutcome::RolledBack {
            detail: "hv2 stopped answering".into(),
            leftovers: vec!["hv2: local/a.qcow2".into()],
        });
        assert_eq!(outcome.kind, OutcomeKind::RolledBack);
        assert_eq!(
            outcome.detail,
            "hv2 stopped answering; left on the destination: hv2: local/a.qcow2"
        );
    }

    fn plan_of(uuid: &str) -> ColdMigrationPlan {
        let host = |name: &str| cold::HostTarget {
            name: name.into(),
            uri: format!("qemu+ssh://root@{name}/system"),
        };
        ColdMigrationPlan {
            instance_name: "cold-a".into(),
            instance_uuid: uuid.into(),
            source: host("hv1"),
            destination: host("hv2"),
            instance_memory_bytes: 128 << 20,
            instance_was_running: true,
            disks: vec![],
            shared_storage_prefixes: vec![],
            options: cold::ColdOptions::default(),
            call_timeout: Duration::from_secs(30),
            resize: None,
        }
    }

    #[test]
    fn a_running_migration_holds_its_instance_until_it_ends() {
        let dir = std::env::temp_dir().join(format!("ferry-cold-locks-{}", std::process::id()));
        let plan = plan_of("6f0c2a4e-0000-4000-8000-000000000001");
        let held = lock_run_in(&dir, &plan).unwrap();
        // Another open of the same file (as another process would) cannot take it.
        assert!(matches!(
            lock_run_in(&dir, &plan),
            Err(ColdRecordError::AlreadyRunning { .. })
        ));
        // Another instance is not held up.
        let other = lock_run_in(&dir, &plan_of("6f0c2a4e-0000-4000-8000-000000000002")).unwrap();
        drop(held);
        drop(other);
        let again = lock_run_in(&dir, &plan).unwrap();
        drop(again);
        // A UUID that is not one stays one file name in the directory.
        lock_run_in(&dir, &plan_of("../a")).unwrap();
        assert!(dir.join("___a.lock").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rollback_under_way_is_read_back_from_the_events() {
        let event = |kind, message: &str| history::EventRecord {
            migration_id: MigrationId(1),
            at_ms: 0,
            kind,
            message: message.into(),
        };
        let copying = history_event(&ColdUpdate::Phase(ColdPhase::Copying {
            disk_number: 1,
            disk_count: 1,
            target: "vdb".into(),
        }))
        .unwrap();
        let mut events = vec![event(copying.0, &copying.1)];
        assert!(!rollback_begun(&events));
        let rolling = history_event(&ColdUpdate::Phase(ColdPhase::RollingBack {
            reason: "aborted by the operator".into(),
        }))
        .unwrap();
        events.push(event(rolling.0, &rolling.1));
        assert!(rollback_begun(&events));
        let step = history_event(&ColdUpdate::RollbackStep {
            description: "hv2: deleted the copy local/a.qcow2".into(),
        })
        .unwrap();
        assert!(rollback_begun(&[event(step.0, &step.1)]));
    }

    #[test]
    fn a_recovery_says_ferry_stopped_mid_migration() {
        let rolled = Recovery::RolledBack {
            reason: "hv2 holds no definition of cold-a yet".into(),
            steps: vec!["hv1: started cold-a again".into()],
            leftovers: vec!["hv2: volume local/a.qcow2 (busy)".into()],
        };
        assert_eq!(
            recovery_detail(&rolled),
            "ferry stopped mid-migration; rolled back on recovery: hv2 holds no definition of \
             cold-a yet; left on the destination: hv2: volume local/a.qcow2 (busy)"
        );
        let awaiting = Recovery::AwaitingConfirm {
            reason: "hv2 runs cold-a".into(),
        };
        assert_eq!(
            recovery_detail(&awaiting),
            "ferry stopped mid-migration; recovered as awaiting confirm: hv2 runs cold-a"
        );
    }
}
