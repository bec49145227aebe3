//! What the TUI knows of every queued, running and recent migration: a pure store updated only
//! by [`MigrationEvent`]s, which the runtime forwards from the queue and the engine's update
//! channels. Views draw from it; keys never change it (they produce actions instead).

use crate::model::units::ordinal;
use std::time::SystemTime;

use crate::engine::live::{LiveMigrationPlan, LiveOutcome, MigrationUpdate};
use crate::engine::queue::{QueuePosition, WaitingFor};
use crate::model::migration::{MigrationId, MigrationKind};
use crate::policy::nova::data_gib;
use crate::policy::{DowntimeStep, PolicyAction, PolicyEvent};
use crate::progress::{MigrationPhase, MigrationProgress};

use super::cold_detail::{ColdEvent, ColdFigures, ColdStage, TrackedCold};
use super::nova::{NovaStage, TrackedNova};
use super::operator_messages::{OperatorMessage, OperatorMessageKind, OPERATOR_MESSAGES_KEPT};
use crate::engine::service::nova::NovaEvent;

/// Finished migrations kept for the list; older ones are in `ferry history`.
pub const RECENT_FINISHED_KEPT: usize = 50;

/// Chart points kept per migration. Enough for a 200-column chart in Braille (two dots per
/// cell); a longer migration is thinned out, not cut, so the chart always spans its whole run.
pub const CHART_POINTS_KEPT: usize = 512;

/// One thing that happened to one migration.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationEvent {
    pub id: MigrationId,
    /// Wall-clock time the runtime received it: "finished 3m ago", the order of recent ones.
    pub at: SystemTime,
    pub change: MigrationChange,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MigrationChange {
    /// The first event of every live migration: accepted and waiting in the queue.
    QueuedLive(Box<LiveMigrationPlan>),
    /// Where it stands in the queue, sent whenever that changes.
    QueuePosition(QueuePosition<MigrationId>),
    /// The queue released it: the engine is connecting to the hosts. Its `Started` update
    /// follows once the migrate call is issued, or `Finished(Failed)` if a host cannot be
    /// reached.
    Starting,
    /// What the engine reported, in the order it did.
    Engine(MigrationUpdate),
    /// Everything of a cold migration (they are not queued: each runs on its own worker).
    Cold(ColdEvent),
    /// Everything of a migration Nova carries out.
    Nova(NovaEvent),
}

/// Where a migration is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Queued {
        position: Option<QueuePosition<MigrationId>>,
    },
    Starting,
    Running,
    Finished(LiveOutcome),
}

/// One point of the charts: x is ms since the migration started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartPoint {
    pub at_ms: u64,
    pub memory_remaining_bytes: u64,
    pub transfer_rate_bytes_per_second: Option<u64>,
    pub dirty_rate_bytes_per_second: Option<u64>,
}

/// A bounded time series that thins itself instead of forgetting its start: when full, every
/// other point is dropped and from then on only every second new point is kept (then every
/// fourth, ...). The newest point is always kept apart, so the chart ends at "now".
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSeries {
    capacity_points: usize,
    keep_every: usize,
    offered: usize,
    kept: Vec<ChartPoint>,
    newest: Option<ChartPoint>,
}

impl ChartSeries {
    pub fn with_capacity(capacity_points: usize) -> ChartSeries {
        ChartSeries {
            capacity_points: capacity_points.max(2),
            keep_every: 1,
            offered: 0,
            kept: Vec::new(),
            newest: None,
        }
    }

    pub fn push(&mut self, point: ChartPoint) {
        if self.offered.is_multiple_of(self.keep_every) {
            if self.kept.len() >= self.capacity_points {
                let mut index = 0;
                self.kept.retain(|_| {
                    index += 1;
                    index % 2 == 1
                });
                self.keep_every *= 2;
            }
            if self.offered.is_multiple_of(self.keep_every) {
                self.kept.push(point);
            }
        }
        self.offered += 1;
        self.newest = Some(point);
    }

    /// Oldest first, the newest included once.
    pub fn points(&self) -> Vec<ChartPoint> {
        let mut points = self.kept.clone();
        if let Some(newest) = self.newest {
            if points.last() != Some(&newest) {
                points.push(newest);
            }
        }
        points
    }

    pub fn is_empty(&self) -> bool {
        self.newest.is_none()
    }
}

/// A phase as the timeline shows it, with when it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseMark {
    pub phase: MigrationPhase,
    /// ms since the migration started.
    pub at_ms: u64,
}

/// Everything known of one migration.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedMigration {
    pub id: MigrationId,
    pub kind: MigrationKind,
    pub plan: LiveMigrationPlan,
    pub stage: Stage,
    pub queued_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// As the engine named it when it started; the plan's choice until then.
    pub policy_name: String,
    /// The latest snapshot of the job while it ran (or of its completion). The statistics
    /// of a cancelled or failed job are empty, so they never replace it.
    pub progress: Option<MigrationProgress>,
    /// Cancelled or failed as the job statistics said, before the engine's outcome came.
    pub ended_phase: Option<MigrationPhase>,
    /// When the job statistics said so, ms since the start: the timeline marks the end there
    /// once the engine's outcome confirms it.
    pub ended_at_ms: Option<u64>,
    pub series: ChartSeries,
    /// The policy's whole ladder, first rung first.
    pub downtime_ladder: Vec<DowntimeStep>,
    /// The rung the policy last set; None before its first setting.
    pub downtime_step: Option<usize>,
    pub policy_events: Vec<PolicyEvent>,
    pub operator_messages: Vec<OperatorMessage>,
    pub phase_marks: Vec<PhaseMark>,
    /// What the operator must see before the figures: a silent host, an outcome waiting for
    /// answers, a broken post-copy. Shown in the list and the detail instead of the verdict.
    pub alert: Option<MigrationAlert>,
}

/// Something wrong with the watch itself, not with the convergence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationAlert {
    pub kind: AlertKind,
    /// "no figures for 4.2 s: reconnecting to hv3".
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// A host stopped answering; ferry reconnects. Cleared when it answers.
    Silence,
    /// The job ended; the outcome waits for a host's answer.
    Unsettled,
    /// The post-copy stream broke: the guest's memory is split. Drawn in the error colour.
    PostCopyBroken,
    /// A post-copy resume is under way.
    Recovering,
}

impl MigrationAlert {
    pub fn is_severe(&self) -> bool {
        self.kind == AlertKind::PostCopyBroken
    }
}

impl TrackedMigration {
    fn queued(id: MigrationId, at: SystemTime, plan: LiveMigrationPlan) -> TrackedMigration {
        let policy = plan.policy.build(data_gib(
            plan.instance_memory_bytes,
            &plan.block_migration_disk_sizes_bytes,
        ));
        TrackedMigration {
            id,
            kind: MigrationKind::Live,
            stage: Stage::Queued { position: None },
            queued_at: at,
            started_at: None,
            finished_at: None,
            policy_name: policy.name().to_string(),
            progress: None,
            ended_phase: None,
            ended_at_ms: None,
            series: ChartSeries::with_capacity(CHART_POINTS_KEPT),
            downtime_ladder: policy.downtime_ladder(),
            downtime_step: None,
            policy_events: Vec::new(),
            operator_messages: Vec::new(),
            phase_marks: Vec::new(),
            alert: None,
            plan,
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
        matches!(self.stage, Stage::Finished(_))
    }

    /// Started (or starting) and not finished.
    pub fn is_running_stage(&self) -> bool {
        matches!(self.stage, Stage::Starting | Stage::Running)
    }

    pub fn is_queued(&self) -> bool {
        matches!(self.stage, Stage::Queued { .. })
    }

    /// The phase to show: the outcome's once finished (the engine sends no snapshot after a
    /// cancel or failure), else the latest snapshot's; None while queued.
    pub fn phase(&self) -> Option<MigrationPhase> {
        match &self.stage {
            Stage::Queued { .. } => None,
            Stage::Finished(outcome) => Some(match outcome {
                LiveOutcome::Completed { .. } => MigrationPhase::Completed,
                LiveOutcome::Cancelled { .. } => MigrationPhase::Cancelled,
                LiveOutcome::Failed { .. } | LiveOutcome::Unsettled { .. } => {
                    MigrationPhase::Failed
                }
            }),
            Stage::Starting | Stage::Running => Some(
                self.ended_phase.unwrap_or(
                    self.progress
                        .as_ref()
                        .map_or(MigrationPhase::Preparing, |p| p.phase),
                ),
            ),
        }
    }

    /// The job statistics say the job ended (cancelled or failed), the engine has not said how
    /// the migration ended yet: still running as far as the list and the counters go, and the
    /// list and the detail both say "ending" (one state, `stage`, read by both).
    pub fn is_ending(&self) -> bool {
        self.is_running_stage() && self.ended_phase.is_some()
    }

    /// The guest already runs on the destination: abort is no longer possible.
    pub fn in_post_copy(&self) -> bool {
        !self.is_finished() && self.phase() == Some(MigrationPhase::PostCopy)
    }

    /// The rung in force, if the policy set one.
    pub fn downtime_rung(&self) -> Option<&DowntimeStep> {
        self.downtime_step.and_then(|s| self.downtime_ladder.get(s))
    }

    pub fn last_operator_message(&self) -> Option<&OperatorMessage> {
        self.operator_messages.last()
    }

    fn mark_phase(&mut self, phase: MigrationPhase, at_ms: u64) {
        let same = self
            .phase_marks
            .last()
            .is_some_and(|m| m.phase.name() == phase.name());
        if !same {
            self.phase_marks.push(PhaseMark { phase, at_ms });
        }
    }

    fn on_progress(&mut self, progress: MigrationProgress) {
        // Fresh figures: the source answers again, a resumed post-copy goes on.
        if self
            .alert
            .as_ref()
            .is_some_and(|a| matches!(a.kind, AlertKind::Silence | AlertKind::Recovering))
        {
            self.alert = None;
        }
        if matches!(
            progress.phase,
            MigrationPhase::Cancelled | MigrationPhase::Failed
        ) {
            // An ended job reports nothing sent and nothing left: drawn, that would read as
            // success. The last picture of the running job stays. Nor is the end marked yet:
            // the migration is over when the engine says so (`stage`), and every view says
            // "ending" until then (`is_ending`).
            self.ended_phase = Some(progress.phase);
            self.ended_at_ms.get_or_insert(progress.elapsed_ms);
            return;
        }
        self.mark_phase(progress.phase, progress.elapsed_ms);
        if let Some(remaining) = progress.memory_remaining_bytes {
            self.series.push(ChartPoint {
                at_ms: progress.elapsed_ms,
                memory_remaining_bytes: remaining,
                transfer_rate_bytes_per_second: progress.transfer_rate_bytes_per_second,
                dirty_rate_bytes_per_second: progress.dirty_rate_bytes_per_second,
            });
        }
        self.progress = Some(progress);
    }

    fn on_policy(&mut self, event: PolicyEvent) {
        if let PolicyAction::SetMaxDowntime { to_ms, .. } = event.action {
            // Policies only climb: look from the rung in force upwards first, so a ladder with
            // a repeated value (Nova's truncation can make one) still lands on the right rung.
            let from = self.downtime_step.unwrap_or(0);
            let found = self.downtime_ladder[from..]
                .iter()
                .position(|s| s.max_downtime_ms == to_ms)
                .map(|i| i + from)
                .or_else(|| {
                    self.downtime_ladder
                        .iter()
                        .position(|s| s.max_downtime_ms == to_ms)
                });
            if found.is_some() {
                self.downtime_step = found;
            }
        }
        self.policy_events.push(event);
    }

    fn on_operator_message(&mut self, at: SystemTime, kind: OperatorMessageKind, text: String) {
        if self.operator_messages.len() >= OPERATOR_MESSAGES_KEPT {
            self.operator_messages.remove(0);
        }
        self.operator_messages
            .push(OperatorMessage { at, kind, text });
    }

    fn on_finished(&mut self, at: SystemTime, outcome: LiveOutcome) {
        let last_ms = self.progress.as_ref().map_or(0, |p| p.elapsed_ms);
        let at_ms = match &outcome {
            LiveOutcome::Completed { total_time_ms, .. } => (*total_time_ms).max(last_ms),
            _ => self.ended_at_ms.unwrap_or(last_ms),
        };
        self.stage = Stage::Finished(outcome);
        self.finished_at = Some(at);
        if let Some(phase) = self.phase() {
            self.mark_phase(phase, at_ms);
        }
    }

    fn apply(&mut self, at: SystemTime, change: MigrationChange) -> bool {
        if self.is_finished() {
            // Nothing revives a finished migration; a late duplicate is ignored.
            return false;
        }
        match change {
            MigrationChange::QueuedLive(_)
            | MigrationChange::Cold(_)
            | MigrationChange::Nova(_) => return false,
            MigrationChange::QueuePosition(QueuePosition::Running) => return false,
            MigrationChange::QueuePosition(position) => {
                if !self.is_queued() {
                    return false;
                }
                self.stage = Stage::Queued {
                    position: Some(position),
                };
            }
            MigrationChange::Starting => {
                self.stage = Stage::Starting;
                self.started_at.get_or_insert(at);
            }
            MigrationChange::Engine(update) => match update {
                MigrationUpdate::Started { policy, .. } => {
                    self.stage = Stage::Running;
                    self.started_at.get_or_insert(at);
                    self.policy_name = policy;
                    self.mark_phase(MigrationPhase::Preparing, 0);
                }
                // Progress snapshots carry everything a sample does, already interpreted.
                MigrationUpdate::Sample(_) => return false,
                MigrationUpdate::Progress(progress) => {
                    self.stage = Stage::Running;
                    self.started_at.get_or_insert(at);
                    self.on_progress(*progress);
                }
                MigrationUpdate::Policy(event) => self.on_policy(event),
                MigrationUpdate::OperatorAction { description } => {
                    self.on_operator_message(at, OperatorMessageKind::Done, description)
                }
                MigrationUpdate::Refused { reason } => {
                    self.on_operator_message(at, OperatorMessageKind::Refused, reason)
                }
                MigrationUpdate::Warning { message } => {
                    self.on_operator_message(at, OperatorMessageKind::Warning, message)
                }
                MigrationUpdate::Attached { job_elapsed_ms, .. } => {
                    self.stage = Stage::Running;
                    self.started_at.get_or_insert(at);
                    self.on_operator_message(
                        at,
                        OperatorMessageKind::Done,
                        format!(
                            "ferry took over this migration after a restart; it had run {} s",
                            job_elapsed_ms / 1000
                        ),
                    )
                }
                MigrationUpdate::Silent {
                    host,
                    silent_for_ms,
                    figures,
                    ..
                } => {
                    // A broken post-copy outranks a silence.
                    if self.alert.as_ref().is_some_and(MigrationAlert::is_severe) {
                        return false;
                    }
                    let seconds = format!("{:.1} s", silent_for_ms as f64 / 1000.0);
                    self.alert = Some(MigrationAlert {
                        kind: AlertKind::Silence,
                        text: if figures {
                            format!("no figures for {seconds}: reconnecting to {host}")
                        } else {
                            format!("{host} silent for {seconds}: reconnecting")
                        },
                    });
                }
                MigrationUpdate::Reconnected {
                    host,
                    silent_for_ms,
                } => {
                    if self
                        .alert
                        .as_ref()
                        .is_some_and(|a| a.kind == AlertKind::Silence)
                    {
                        self.alert = None;
                    }
                    self.on_operator_message(
                        at,
                        OperatorMessageKind::Done,
                        format!(
                            "{host} answers again after {:.1} s; watching the same job",
                            silent_for_ms as f64 / 1000.0
                        ),
                    )
                }
                MigrationUpdate::Unsettled { waiting_for, .. } => {
                    if self.alert.as_ref().is_some_and(MigrationAlert::is_severe) {
                        return false;
                    }
                    self.alert = Some(MigrationAlert {
                        kind: AlertKind::Unsettled,
                        text: format!("unsettled: {waiting_for}"),
                    });
                }
                MigrationUpdate::PostCopyBroken { detail } => {
                    self.alert = Some(MigrationAlert {
                        kind: AlertKind::PostCopyBroken,
                        text: detail.clone(),
                    });
                    self.on_operator_message(at, OperatorMessageKind::Warning, detail)
                }
                MigrationUpdate::PostCopyRecovery { attempt, result } => match result {
                    Ok(done) => {
                        self.alert = Some(MigrationAlert {
                            kind: AlertKind::Recovering,
                            text: format!("{done} (attempt {attempt})"),
                        });
                        self.on_operator_message(at, OperatorMessageKind::Done, done)
                    }
                    Err(error) => self.on_operator_message(
                        at,
                        OperatorMessageKind::Warning,
                        format!("post-copy recovery, attempt {attempt} failed: {error}"),
                    ),
                },
                MigrationUpdate::Finished(outcome) => self.on_finished(at, outcome),
            },
        }
        true
    }
}

/// One row of the migrations list: a live or a cold migration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Listed<'a> {
    Live(&'a TrackedMigration),
    Cold(&'a TrackedCold),
    Nova(&'a TrackedNova),
}

impl<'a> Listed<'a> {
    pub fn id(self) -> MigrationId {
        match self {
            Listed::Live(m) => m.id,
            Listed::Cold(m) => m.id,
            Listed::Nova(m) => m.id,
        }
    }

    pub fn instance_name(self) -> &'a str {
        match self {
            Listed::Live(m) => m.instance_name(),
            Listed::Cold(m) => m.instance_name(),
            Listed::Nova(m) => m.instance_name(),
        }
    }

    pub fn source(self) -> &'a str {
        match self {
            Listed::Live(m) => m.source(),
            Listed::Cold(m) => m.source(),
            Listed::Nova(m) => m.source(),
        }
    }

    pub fn destination(self) -> &'a str {
        match self {
            Listed::Live(m) => m.destination(),
            Listed::Cold(m) => m.destination(),
            Listed::Nova(m) => m.destination(),
        }
    }

    pub fn kind(self) -> MigrationKind {
        match self {
            Listed::Live(_) => MigrationKind::Live,
            Listed::Cold(_) => MigrationKind::Cold,
            Listed::Nova(m) => m.kind,
        }
    }
}

/// Every migration the TUI knows, in the order they were queued.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MigrationStore {
    migrations: Vec<TrackedMigration>,
    cold: Vec<TrackedCold>,
    nova: Vec<TrackedNova>,
}

impl MigrationStore {
    /// Folds one event in; true if anything visible changed. Events for an id never queued
    /// are ignored: without the plan there is nothing to show them against.
    pub fn apply(&mut self, event: MigrationEvent) -> bool {
        let MigrationEvent { id, at, change } = event;
        let change = match change {
            MigrationChange::Cold(change) => return self.apply_cold(id, at, change),
            MigrationChange::Nova(change) => return self.apply_nova(id, at, change),
            change => change,
        };
        if let MigrationChange::QueuedLive(plan) = change {
            if self.get(id).is_some() {
                return false;
            }
            self.migrations
                .push(TrackedMigration::queued(id, at, *plan));
            return true;
        }
        let Some(migration) = self.migrations.iter_mut().find(|m| m.id == id) else {
            return false;
        };
        let finished_now = !migration.is_finished();
        let changed = migration.apply(at, change);
        if changed && finished_now && migration.is_finished() {
            self.forget_old_finished();
        }
        changed
    }

    fn apply_cold(&mut self, id: MigrationId, at: SystemTime, change: ColdEvent) -> bool {
        let known = self.get_listed(id).is_some();
        match change {
            ColdEvent::Launched(plan) if !known => {
                self.cold.push(TrackedCold::launched(id, at, *plan));
                return true;
            }
            ColdEvent::FoundAwaiting {
                plan,
                started_at,
                total_time_ms,
                downtime_ms,
                bytes_copied,
            } if !known => {
                self.cold.push(TrackedCold::found_awaiting(
                    id,
                    *plan,
                    started_at,
                    ColdFigures {
                        total_time_ms,
                        downtime_ms,
                        bytes_copied,
                    },
                ));
                return true;
            }
            _ => {}
        }
        let Some(migration) = self.cold.iter_mut().find(|m| m.id == id) else {
            return false;
        };
        let finished_before = migration.is_finished();
        let changed = migration.apply(at, change);
        if changed && !finished_before && migration.is_finished() {
            self.forget_old_finished();
        }
        changed
    }

    fn apply_nova(&mut self, id: MigrationId, at: SystemTime, event: NovaEvent) -> bool {
        if let Some(migration) = self.nova.iter_mut().find(|m| m.id == id) {
            let finished_before = migration.is_finished();
            let changed = migration.apply(at, event);
            if changed && !finished_before && migration.is_finished() {
                self.forget_old_finished();
            }
            return changed;
        }
        let NovaEvent::Started {
            plan,
            kind,
            source,
            destination,
            started_at,
            found,
        } = event
        else {
            return false;
        };
        if self.get_listed(id).is_some() {
            return false;
        }
        self.nova.push(TrackedNova::started(
            id,
            *plan,
            kind,
            source,
            destination,
            started_at,
            found,
        ));
        true
    }

    fn forget_old_finished(&mut self) {
        let mut finished: Vec<(Option<SystemTime>, MigrationId)> = self
            .migrations
            .iter()
            .filter(|m| m.is_finished())
            .map(|m| (m.finished_at, m.id))
            .chain(
                self.cold
                    .iter()
                    .filter(|m| m.is_finished())
                    .map(|m| (m.finished_at, m.id)),
            )
            .chain(
                self.nova
                    .iter()
                    .filter(|m| m.is_finished())
                    .map(|m| (m.finished_at, m.id)),
            )
            .collect();
        let excess = finished.len().saturating_sub(RECENT_FINISHED_KEPT);
        if excess == 0 {
            return;
        }
        finished.sort();
        let forgotten: Vec<MigrationId> = finished[..excess].iter().map(|(_, id)| *id).collect();
        self.migrations.retain(|m| !forgotten.contains(&m.id));
        self.cold.retain(|m| !forgotten.contains(&m.id));
        self.nova.retain(|m| !forgotten.contains(&m.id));
    }

    /// The live migration with this id.
    pub fn get(&self, id: MigrationId) -> Option<&TrackedMigration> {
        self.migrations.iter().find(|m| m.id == id)
    }

    /// The cold migration with this id.
    pub fn get_cold(&self, id: MigrationId) -> Option<&TrackedCold> {
        self.cold.iter().find(|m| m.id == id)
    }

    /// The migration Nova carries out with this id.
    pub fn get_nova(&self, id: MigrationId) -> Option<&TrackedNova> {
        self.nova.iter().find(|m| m.id == id)
    }

    /// The migration with this id, live, cold or Nova's (ids are history rows: never shared).
    pub fn get_listed(&self, id: MigrationId) -> Option<Listed<'_>> {
        self.get(id)
            .map(Listed::Live)
            .or_else(|| self.get_cold(id).map(Listed::Cold))
            .or_else(|| self.get_nova(id).map(Listed::Nova))
    }

    /// In the order the list shows them: running (and starting) and those awaiting the
    /// operator's answer, in the order they started; then queued in queue order; then
    /// finished, the most recent first.
    pub fn listed(&self) -> Vec<Listed<'_>> {
        let mut active: Vec<(Option<SystemTime>, Listed)> = self
            .migrations
            .iter()
            .filter(|m| matches!(m.stage, Stage::Starting | Stage::Running))
            .map(|m| (m.started_at, Listed::Live(m)))
            .chain(
                self.cold
                    .iter()
                    .filter(|m| !m.is_finished())
                    .map(|m| (Some(m.started_at), Listed::Cold(m))),
            )
            .chain(
                self.nova
                    .iter()
                    .filter(|m| !m.is_finished())
                    .map(|m| (Some(m.started_at), Listed::Nova(m))),
            )
            .collect();
        active.sort_by_key(|(started_at, _)| *started_at);
        let queued = self
            .migrations
            .iter()
            .filter(|m| m.is_queued())
            .map(Listed::Live);
        let mut finished: Vec<(Option<SystemTime>, Listed)> = self
            .migrations
            .iter()
            .filter(|m| m.is_finished())
            .map(|m| (m.finished_at, Listed::Live(m)))
            .chain(
                self.cold
                    .iter()
                    .filter(|m| m.is_finished())
                    .map(|m| (m.finished_at, Listed::Cold(m))),
            )
            .chain(
                self.nova
                    .iter()
                    .filter(|m| m.is_finished())
                    .map(|m| (m.finished_at, Listed::Nova(m))),
            )
            .collect();
        finished.sort_by_key(|(finished_at, _)| std::cmp::Reverse(*finished_at));
        active
            .into_iter()
            .map(|(_, m)| m)
            .chain(queued)
            .chain(finished.into_iter().map(|(_, m)| m))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.migrations.len() + self.cold.len() + self.nova.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live migrations starting or running, and cold ones the engine (or a confirm or
    /// revert) works on.
    pub fn running_count(&self) -> usize {
        self.migrations
            .iter()
            .filter(|m| matches!(m.stage, Stage::Starting | Stage::Running))
            .count()
            + self
                .cold
                .iter()
                .filter(|m| matches!(m.stage, ColdStage::Running | ColdStage::Settling { .. }))
                .count()
            + self
                .nova
                .iter()
                .filter(|m| matches!(m.stage, NovaStage::Running | NovaStage::Settling { .. }))
                .count()
    }

    pub fn queued_count(&self) -> usize {
        self.migrations.iter().filter(|m| m.is_queued()).count()
    }

    /// Cold migrations waiting for the operator's confirm or revert.
    pub fn awaiting_confirm_count(&self) -> usize {
        self.cold
            .iter()
            .filter(|m| m.stage == ColdStage::AwaitingConfirm)
            .count()
            + self
                .nova
                .iter()
                .filter(|m| m.stage == NovaStage::AwaitingConfirm)
                .count()
    }

    pub fn finished_count(&self) -> usize {
        self.migrations.iter().filter(|m| m.is_finished()).count()
            + self.cold.iter().filter(|m| m.is_finished()).count()
            + self.nova.iter().filter(|m| m.is_finished()).count()
    }

    /// "starts next", "after #12 web-1 (hv1 limit)": what a queued migration waits for, short
    /// enough for the list, naming the migration ahead by instance, not by number alone.
    pub fn waiting_for(&self, migration: &TrackedMigration) -> String {
        let Stage::Queued { position } = &migration.stage else {
            return String::new();
        };
        let Some(QueuePosition::Queued {
            place_for_source_host,
            behind,
            waiting_for,
        }) = position
        else {
            return "queued".to_string();
        };
        let behind = behind.map(|id| match self.get(id) {
            Some(ahead) => format!("#{id} {}", ahead.instance_name()),
            None => format!("#{id}"),
        });
        let source = migration.source();
        // The phase column already says "queued": this says what it is queued behind.
        match (waiting_for, behind) {
            (WaitingFor::NextStart, _) => "starts next".to_string(),
            (WaitingFor::GlobalLimit, _) => "global limit reached".to_string(),
            (WaitingFor::SourceHostLimit, Some(behind)) => {
                format!("after {behind} ({source} limit)")
            }
            (WaitingFor::SourceHostLimit, None) => format!("{source} limit reached"),
            (WaitingFor::EarlierRequestsFromSourceHost, Some(behind)) => format!(
                "{} from {source}, after {behind}",
                ordinal(*place_for_source_host)
            ),
            (WaitingFor::EarlierRequestsFromSourceHost, None) => {
                format!("{} from {source}", ordinal(*place_for_source_host))
            }
        }
    }
}

#[cfg(test)]
mod tests;
