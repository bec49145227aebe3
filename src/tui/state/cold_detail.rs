//! What the TUI knows of one cold migration: the engine's phases with when each began, the
//! copy and verification progress, the verified disks, the rollback steps, and the operator's
//! answer (confirm or revert) once it awaits one. Pure: folded from [`ColdEvent`]s only.

use std::time::SystemTime;

use crate::engine::cold::{ColdMigrationPlan, ColdOutcome, ColdPhase, ColdUpdate, CopyProgress};
use crate::model::migration::MigrationId;

use super::operator_messages::{OperatorMessage, OperatorMessageKind, OPERATOR_MESSAGES_KEPT};

/// A cold migration's change, as the engine reports it.
pub use crate::engine::service::ColdEvent;

/// Where a cold migration is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum ColdStage {
    /// The engine works on it: prechecks through the start on the destination, or a rollback.
    Running,
    /// Runs (or rests, if it was shut off) on the destination; the source keeps its inactive
    /// copy until the operator confirms or reverts.
    AwaitingConfirm,
    Settling {
        keep: bool,
    },
    Finished(ColdEnd),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ColdEnd {
    /// Confirmed: the source copy is gone.
    Confirmed,
    /// Reverted: back on the source, the destination copy gone.
    Reverted,
    /// Refused, rolled back or failed, as the engine said.
    Engine(ColdOutcome),
}

/// A phase of the timeline with when it began, ms since the migration started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColdPhaseMark {
    pub phase: ColdPhase,
    pub at_ms: u64,
}

/// A copy streamed back from the destination that matched the source's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDisk {
    pub target: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The figures of the move, from the engine's outcome (or the history's record of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ColdFigures {
    pub total_time_ms: Option<u64>,
    pub downtime_ms: Option<u64>,
    pub bytes_copied: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrackedCold {
    pub id: MigrationId,
    pub plan: ColdMigrationPlan,
    pub stage: ColdStage,
    pub started_at: SystemTime,
    pub finished_at: Option<SystemTime>,
    /// Found in the history at start: what happened before is in `ferry history`, not here.
    pub from_history: bool,
    pub phase_marks: Vec<ColdPhaseMark>,
    /// The latest copy or verification sample.
    pub copy: Option<CopyProgress>,
    pub verified: Vec<VerifiedDisk>,
    pub figures: ColdFigures,
    /// Warnings, rollback steps, and the steps of confirm or revert.
    pub messages: Vec<OperatorMessage>,
    /// Its place while it waits for its turn under the queue limits ("queued, 2nd behind 14").
    pub queued: Option<String>,
}

impl TrackedCold {
    pub fn launched(id: MigrationId, at: SystemTime, plan: ColdMigrationPlan) -> TrackedCold {
        TrackedCold {
            id,
            plan,
            stage: ColdStage::Running,
            started_at: at,
            finished_at: None,
            from_history: false,
            phase_marks: Vec::new(),
            copy: None,
            verified: Vec::new(),
            figures: ColdFigures::default(),
            messages: Vec::new(),
            queued: None,
        }
    }

    pub fn found_awaiting(
        id: MigrationId,
        plan: ColdMigrationPlan,
        started_at: SystemTime,
        figures: ColdFigures,
    ) -> TrackedCold {
        TrackedCold {
            stage: ColdStage::AwaitingConfirm,
            from_history: true,
            phase_marks: vec![ColdPhaseMark {
                phase: ColdPhase::AwaitingConfirm,
                at_ms: figures.total_time_ms.unwrap_or(0),
            }],
            figures,
            ..TrackedCold::launched(id, started_at, plan)
        }
    }

    pub fn instance_name(&self) -> &str {
        &self.plan.instance_name
    }

    pub fn source(&self) -> &str {
        &self.plan.source.name
    }

    pub fn destination(&self) -> &str {
        &self.plan.destination.name
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.stage, ColdStage::Finished(_))
    }

    /// The latest phase the engine reported; None before its first.
    pub fn phase(&self) -> Option<&ColdPhase> {
        self.phase_marks.last().map(|m| &m.phase)
    }

    /// A rollback is under way: an abort now would change nothing.
    pub fn rolling_back(&self) -> bool {
        matches!(self.phase(), Some(ColdPhase::RollingBack { .. }))
    }

    /// Bytes the copy moves in all (each copied disk's stream).
    pub fn bytes_to_copy(&self) -> u64 {
        self.plan.bytes_to_copy()
    }

    /// How far the current pass over the disks is, in bytes of all disks: the copy, or the
    /// verification once it runs. None before the first sample.
    pub fn pass_bytes_done(&self) -> Option<u64> {
        let copy = self.copy.as_ref()?;
        let earlier_disks: u64 = self
            .plan
            .copied_disks()
            .take(copy.disk_number.saturating_sub(1))
            .map(|(_, disk)| disk.stream_bytes)
            .sum();
        Some(earlier_disks + copy.bytes_done)
    }

    /// Percent of the current pass (copy or verification).
    pub fn percent(&self) -> Option<u64> {
        let total = self.bytes_to_copy();
        let done = self.pass_bytes_done()?;
        (total > 0).then(|| (done.min(total) * 100) / total)
    }

    /// True while the disks are streamed (copy or verification): the rate and ETA mean
    /// something then.
    pub fn streaming(&self) -> bool {
        matches!(
            self.phase(),
            Some(ColdPhase::Copying { .. } | ColdPhase::Verifying { .. })
        ) && self.copy.is_some()
    }

    fn ms_since_start(&self, at: SystemTime) -> u64 {
        at.duration_since(self.started_at)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn message(&mut self, at: SystemTime, kind: OperatorMessageKind, text: String) {
        if self.messages.len() >= OPERATOR_MESSAGES_KEPT {
            self.messages.remove(0);
        }
        self.messages.push(OperatorMessage { at, kind, text });
    }

    /// Folds one change in; true if anything visible changed.
    pub fn apply(&mut self, at: SystemTime, change: ColdEvent) -> bool {
        if self.is_finished() {
            return false;
        }
        match change {
            ColdEvent::Launched(_) | ColdEvent::FoundAwaiting { .. } => return false,
            ColdEvent::Queued { description } => {
                if self.stage != ColdStage::Running || self.queued.as_ref() == Some(&description) {
                    return false;
                }
                self.queued = Some(description);
            }
            ColdEvent::Engine(update) => {
                if self.stage != ColdStage::Running {
                    return false;
                }
                self.queued = None;
                self.on_engine(at, update);
            }
            ColdEvent::Settling { keep } => {
                if self.stage != ColdStage::AwaitingConfirm {
                    return false;
                }
                self.stage = ColdStage::Settling { keep };
            }
            ColdEvent::Settled { keep, result } => match result {
                Ok(steps) => {
                    for step in steps {
                        self.message(at, OperatorMessageKind::Done, step);
                    }
                    let (phase, end) = if keep {
                        (ColdPhase::Confirmed, ColdEnd::Confirmed)
                    } else {
                        (ColdPhase::Reverted, ColdEnd::Reverted)
                    };
                    let at_ms = self.ms_since_start(at);
                    self.phase_marks.push(ColdPhaseMark { phase, at_ms });
                    self.stage = ColdStage::Finished(end);
                    self.finished_at = Some(at);
                }
                Err(reason) => {
                    let verb = if keep { "confirm" } else { "revert" };
                    self.message(
                        at,
                        OperatorMessageKind::Refused,
                        format!("{verb} failed: {reason}"),
                    );
                    self.stage = ColdStage::AwaitingConfirm;
                }
            },
        }
        true
    }

    fn on_engine(&mut self, at: SystemTime, update: ColdUpdate) {
        match update {
            ColdUpdate::Phase(phase) => {
                if self.phase() != Some(&phase) {
                    // A new pass over the disks starts from its first byte.
                    if matches!(
                        phase,
                        ColdPhase::Copying { .. } | ColdPhase::Verifying { .. }
                    ) {
                        self.copy = None;
                    }
                    let at_ms = self.ms_since_start(at);
                    self.phase_marks.push(ColdPhaseMark { phase, at_ms });
                }
            }
            ColdUpdate::Prechecks { .. } => {}
            ColdUpdate::Progress(progress) => self.copy = Some(progress),
            ColdUpdate::Verified {
                target,
                bytes,
                sha256,
            } => self.verified.push(VerifiedDisk {
                target,
                bytes,
                sha256,
            }),
            ColdUpdate::Warning { message } => {
                self.message(at, OperatorMessageKind::Warning, message)
            }
            ColdUpdate::RollbackStep { description } => self.message(
                at,
                OperatorMessageKind::Warning,
                format!("rollback: {description}"),
            ),
            ColdUpdate::Finished(outcome) => {
                if let ColdOutcome::AwaitingConfirm {
                    total_time_ms,
                    downtime_ms,
                    bytes_copied,
                    ..
                } = &outcome
                {
                    self.figures = ColdFigures {
                        total_time_ms: Some(*total_time_ms),
                        downtime_ms: *downtime_ms,
                        bytes_copied: Some(*bytes_copied),
                    };
                    self.stage = ColdStage::AwaitingConfirm;
                } else {
                    self.stage = ColdStage::Finished(ColdEnd::Engine(outcome));
                    self.finished_at = Some(at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cold::DiskAction;
    use crate::tui::state::migrations::{Listed, MigrationChange, MigrationEvent, MigrationStore};
    use crate::tui::test_support::{at, cold_run_events};

    const AWAITING_RUN: &str = "lab-cold-disk-hv1-hv2.jsonl";
    const ROLLED_BACK_RUN: &str = "lab-cold-disk-started-during-copy.jsonl";

    fn store_with(events: Vec<MigrationEvent>) -> MigrationStore {
        let mut store = MigrationStore::default();
        for event in events {
            store.apply(event);
        }
        store
    }

    fn settle(id: i64, seconds: u64, change: ColdEvent) -> MigrationEvent {
        MigrationEvent {
            id: MigrationId(id),
            at: at(seconds),
            change: MigrationChange::Cold(change),
        }
    }

    #[test]
    fn a_recorded_run_reaches_awaiting_confirm_with_every_phase_and_the_checksum() {
        let store = store_with(cold_run_events(
            MigrationId(5),
            100,
            AWAITING_RUN,
            usize::MAX,
        ));
        let migration = store.get_cold(MigrationId(5)).unwrap();
        assert_eq!(migration.stage, ColdStage::AwaitingConfirm);
        assert!(!migration.is_finished());
        let phases: Vec<String> = migration
            .phase_marks
            .iter()
            .map(|m| crate::engine::cold_record::phase_words(&m.phase))
            .collect();
        assert_eq!(
            phases,
            [
                "prechecks on fresh facts",
                "shutting down (ACPI, up to 5 s, then a hard power off)",
                "powering off hard: the guest ignored the shutdown",
                "copying disk 1 of 1 (vdb)",
                "verifying disk 1 of 1 (vdb)",
                "defining on the destination",
                "starting on the destination",
                "awaiting confirm or revert",
            ]
        );
        // Marks carry the recorded times: the hard power off came after the 5 s timeout.
        assert!(migration.phase_marks[2].at_ms >= 5000);
        assert_eq!(migration.verified.len(), 1);
        assert_eq!(migration.verified[0].target, "vdb");
        assert!(migration.verified[0].sha256.starts_with("cfd66a51"));
        assert_eq!(migration.figures.bytes_copied, Some(8_716_288));
        assert!(migration.figures.downtime_ms.unwrap() > 5000);
        assert_eq!(store.awaiting_confirm_count(), 1);
        assert_eq!(store.running_count(), 0);
    }

    #[test]
    fn progress_counts_the_pass_that_runs_and_restarts_at_verification() {
        // Up to the second copy sample (4 MiB, then 8 MiB of 8.3 MiB).
        let store = store_with(cold_run_events(MigrationId(5), 100, AWAITING_RUN, 7));
        let migration = store.get_cold(MigrationId(5)).unwrap();
        assert!(matches!(migration.phase(), Some(ColdPhase::Copying { .. })));
        assert!(migration.streaming());
        assert_eq!(migration.pass_bytes_done(), Some(8 << 20));
        assert_eq!(migration.percent(), Some(96));
        assert!(migration
            .copy
            .as_ref()
            .unwrap()
            .rate_bytes_per_second
            .is_some());
        // The verification phase starts its own count from nothing.
        let store = store_with(cold_run_events(MigrationId(5), 100, AWAITING_RUN, 9));
        let migration = store.get_cold(MigrationId(5)).unwrap();
        assert!(matches!(
            migration.phase(),
            Some(ColdPhase::Verifying { .. })
        ));
        assert_eq!(migration.copy, None);
        assert_eq!(migration.percent(), None);
    }

    #[test]
    fn a_run_rolled_back_ends_with_its_steps_and_ignores_late_answers() {
        let mut store = store_with(cold_run_events(
            MigrationId(3),
            100,
            ROLLED_BACK_RUN,
            usize::MAX,
        ));
        let migration = store.get_cold(MigrationId(3)).unwrap();
        let ColdStage::Finished(ColdEnd::Engine(ColdOutcome::RolledBack { detail, leftovers })) =
            &migration.stage
        else {
            panic!("{:?}", migration.stage);
        };
        assert!(detail.contains("started there during the copy"), "{detail}");
        assert!(leftovers.is_empty());
        let steps: Vec<&str> = migration.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(
            steps,
            [
                "rollback: hv1: disk still running (it had not powered off yet)",
                "rollback: hv2: deleted the partial copy local/disk-data.qcow2",
            ]
        );
        assert!(migration.finished_at.is_some());
        assert_eq!(store.finished_count(), 1);
        assert!(
            !store.apply(settle(3, 200, ColdEvent::Settling { keep: true })),
            "nothing to settle after a rollback"
        );
    }

    #[test]
    fn confirm_finishes_it_and_a_failed_revert_leaves_it_awaiting() {
        let mut store = store_with(cold_run_events(
            MigrationId(5),
            100,
            AWAITING_RUN,
            usize::MAX,
        ));
        assert!(store.apply(settle(5, 200, ColdEvent::Settling { keep: false })));
        assert_eq!(
            store.get_cold(MigrationId(5)).unwrap().stage,
            ColdStage::Settling { keep: false }
        );
        assert!(store.apply(settle(
            5,
            201,
            ColdEvent::Settled {
                keep: false,
                result: Err("hv2: unreachable: timed out".into()),
            },
        )));
        let migration = store.get_cold(MigrationId(5)).unwrap();
        assert_eq!(migration.stage, ColdStage::AwaitingConfirm);
        assert_eq!(
            migration.messages.last().unwrap().text,
            "revert failed: hv2: unreachable: timed out"
        );

        store.apply(settle(5, 300, ColdEvent::Settling { keep: true }));
        store.apply(settle(
            5,
            301,
            ColdEvent::Settled {
                keep: true,
                result: Ok(vec![
                    "hv1: removed the definition of disk".into(),
                    "hv1: deleted local/disk-data.qcow2".into(),
                ]),
            },
        ));
        let migration = store.get_cold(MigrationId(5)).unwrap();
        assert_eq!(migration.stage, ColdStage::Finished(ColdEnd::Confirmed));
        assert_eq!(migration.phase(), Some(&ColdPhase::Confirmed));
        assert_eq!(migration.messages.len(), 3);
        assert_eq!(store.awaiting_confirm_count(), 0);
    }

    #[test]
    fn one_found_in_the_history_is_listed_with_the_active_ones() {
        let plan = crate::tui::test_support::cold_disk_plan();
        assert!(matches!(plan.disks[0].action, DiskAction::Copy(_)));
        let mut events = cold_run_events(MigrationId(9), 500, ROLLED_BACK_RUN, usize::MAX);
        events.push(settle(
            4,
            10,
            ColdEvent::FoundAwaiting {
                plan: Box::new(plan),
                started_at: at(10),
                total_time_ms: Some(11_773),
                downtime_ms: Some(11_300),
                bytes_copied: Some(8_716_288),
            },
        ));
        let store = store_with(events);
        let listed: Vec<(i64, bool)> = store
            .listed()
            .iter()
            .map(|m| (m.id().0, matches!(m, Listed::Cold(c) if c.from_history)))
            .collect();
        assert_eq!(
            listed,
            [(4, true), (9, false)],
            "awaiting first, the ended one last"
        );
        let found = store.get_cold(MigrationId(4)).unwrap();
        assert_eq!(found.stage, ColdStage::AwaitingConfirm);
        assert_eq!(found.figures.downtime_ms, Some(11_300));
    }
}
