//! A cold migration as the history keeps it, for every front end alike: the row is written
//! before the first libvirt call, phases, verifications and rollback steps become events, the
//! outcome closes it (or leaves it awaiting confirm), and confirm or revert finds it again by
//! instance and closes it for good. The CLI and the TUI both go through here, so a migration
//! started in one can be settled from the other, or by a later ferry.

use std::time::Duration;

use super::cold::{self, ColdMigrationPlan, ColdOutcome, ColdPhase, ColdUpdate, SettleReport};
use super::history::{
    self, EventKind, History, HistoryError, MigrationId, MigrationKind, MigrationRecord,
    NewMigration, Outcome, OutcomeKind,
};
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
    Ok(history.start_migration(&NewMigration {
        kind: MigrationKind::Cold,
        instance_name: plan.instance_name.clone(),
        instance_uuid: plan.instance_uuid.clone(),
        source_host: host(&plan.source.name)?,
        destination_host: host(&plan.destination.name)?,
        policy: "cold".into(),
        plan: plan_json,
        started_at_unix_ms: history::unix_ms_now(),
    })?)
}

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
        ColdPhase::RollingBack { reason } => format!("rolling back: {reason}"),
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
    Ok(history.finish_migration(id, &outcome_record(outcome))?)
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
            r.kind == MigrationKind::Cold && r.outcome == Some(OutcomeKind::AwaitingConfirm)
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
            cold::confirm(plan, call_timeout),
            OutcomeKind::Confirmed,
            "confirmed",
        )
    } else {
        (
            cold::revert(plan, call_timeout),
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
            detail: String::new(),
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
}
