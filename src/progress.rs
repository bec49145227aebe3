//! The progress model: job-statistics samples turned into phase, rates, ETA and convergence verdicts.
//!
//! [`ProgressModel`] is fed every [`JobSample`] the engine polls plus the engine's own
//! [`EngineEvent`]s, and hands out a [`MigrationProgress`] snapshot that the TUI draws and the
//! policies decide on. Pure: no clock, no I/O; time comes from `sampled_at_ms`.
//!
//! Iterations and stalls. QEMU copies guest memory in passes; `memory_iteration` counts the
//! dirty-bitmap syncs that start each pass. Within a pass `memory_remaining` falls as pages are
//! sent, then jumps back up at the next sync by what the guest dirtied meanwhile. The lowest
//! remaining seen during a pass is its *low mark*. A closed pass whose low mark did not get
//! below the best low mark of all earlier passes made no headway: it *stalled*. A guest whose
//! passes keep stalling, or whose dirty rate keeps up with the transfer rate, will not converge
//! without help (more downtime, auto-converge, post-copy).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::model::job::{JobSample, JobType};
use crate::model::units::{format_bytes, format_rate};

/// Where a migration is, in the operator's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "phase")]
pub enum MigrationPhase {
    Prechecks,
    /// Started, but libvirt reports no memory copy yet (connecting, disk mirror set-up).
    Preparing,
    CopyingMemory {
        iteration: u64,
    },
    /// The guest runs on the destination; missing pages are pulled from the source.
    PostCopy,
    /// The guest is paused for the final copy.
    SwitchingOver,
    Completed,
    Failed,
    Cancelled,
}

impl MigrationPhase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            MigrationPhase::Completed | MigrationPhase::Failed | MigrationPhase::Cancelled
        )
    }

    /// The kebab-case name used in trace headers (`expect-final-phase: copying-memory`).
    pub fn name(self) -> &'static str {
        match self {
            MigrationPhase::Prechecks => "prechecks",
            MigrationPhase::Preparing => "preparing",
            MigrationPhase::CopyingMemory { .. } => "copying-memory",
            MigrationPhase::PostCopy => "post-copy",
            MigrationPhase::SwitchingOver => "switching-over",
            MigrationPhase::Completed => "completed",
            MigrationPhase::Failed => "failed",
            MigrationPhase::Cancelled => "cancelled",
        }
    }
}

/// What the engine knows that job statistics do not say (or say late).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    PrechecksStarted,
    /// The migrate call was issued.
    MigrationStarted,
    /// `virDomainMigrateStartPostCopy` succeeded (or libvirt's post-copy event arrived).
    PostCopyStarted,
    /// libvirt reported the source guest suspended for migration (switch-over).
    GuestPausedForSwitchover,
    Completed,
    Failed {
        message: String,
    },
    Cancelled,
}

/// Is the migration going to finish on its own?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum ConvergenceVerdict {
    /// Not enough samples yet to tell.
    TooEarly,
    Converging {
        eta_ms: u64,
    },
    NotConverging {
        reason: String,
    },
}

impl ConvergenceVerdict {
    /// The kebab-case name used in trace headers (`expect-verdict: not-converging`).
    pub fn name(&self) -> &'static str {
        match self {
            ConvergenceVerdict::TooEarly => "too-early",
            ConvergenceVerdict::Converging { .. } => "converging",
            ConvergenceVerdict::NotConverging { .. } => "not-converging",
        }
    }
}

/// One point of the chart history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressPoint {
    pub at_ms: u64,
    pub remaining_bytes: u64,
    pub transfer_rate_bytes_per_second: Option<u64>,
    pub dirty_rate_bytes_per_second: Option<u64>,
}

/// A memory pass that has ended (the next one started), with its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedIteration {
    pub iteration: u64,
    /// Lowest remaining seen during this pass.
    pub low_mark_bytes: u64,
    /// Best low mark of all earlier passes; `None` for the first pass observed.
    pub previous_low_mark_bytes: Option<u64>,
    /// Did not get below `previous_low_mark_bytes`.
    pub stalled: bool,
    /// When the next pass was first seen.
    pub closed_at_ms: u64,
}

/// Tunables of the progress model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProgressConfig {
    /// Chart points kept (one per sample; 600 = 5 min at 2 polls a second).
    pub history_capacity: usize,
    /// Closed iterations kept in snapshots (the oldest are dropped first).
    pub closed_iterations_kept: usize,
    /// Stalled passes in a row that make the verdict "not converging".
    pub not_converging_after_stalled_iterations: u32,
    /// Closed passes in a row in which the dirty rate was ≥ the transfer rate that make the
    /// verdict "not converging".
    pub not_converging_after_dirty_iterations: u32,
}

impl Default for ProgressConfig {
    fn default() -> Self {
        ProgressConfig {
            history_capacity: 600,
            closed_iterations_kept: 64,
            not_converging_after_stalled_iterations: 2,
            not_converging_after_dirty_iterations: 3,
        }
    }
}

/// Everything the TUI and the policies need, taken after each sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationProgress {
    pub phase: MigrationPhase,
    /// ms since the migration started, from the latest sample.
    pub elapsed_ms: u64,
    pub memory_total_bytes: Option<u64>,
    pub memory_processed_bytes: Option<u64>,
    pub memory_remaining_bytes: Option<u64>,
    pub data_total_bytes: Option<u64>,
    pub data_processed_bytes: Option<u64>,
    pub data_remaining_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    pub disk_processed_bytes: Option<u64>,
    pub disk_remaining_bytes: Option<u64>,
    /// QEMU's `memory_bps` when reported, else derived from processed bytes between samples.
    pub transfer_rate_bytes_per_second: Option<u64>,
    pub dirty_rate_bytes_per_second: Option<u64>,
    pub disk_rate_bytes_per_second: Option<u64>,
    pub iteration: Option<u64>,
    /// Low mark of the pass in progress.
    pub current_iteration_low_mark_bytes: Option<u64>,
    /// Best low mark of all closed passes.
    pub best_low_mark_bytes: Option<u64>,
    pub expected_downtime_ms: Option<u64>,
    pub real_downtime_ms: Option<u64>,
    pub auto_converge_throttle_percent: Option<u32>,
    pub postcopy_requests: Option<u64>,
    pub verdict: ConvergenceVerdict,
    /// Only when the verdict is `Converging`.
    pub eta_ms: Option<u64>,
    pub stalled_iterations_in_a_row: u32,
    pub stalled_iterations_total: u32,
    /// Most recent last; at most `closed_iterations_kept`.
    pub closed_iterations: Vec<ClosedIteration>,
    /// Chart points, oldest first; at most `history_capacity`.
    pub history: Vec<ProgressPoint>,
    pub error_message: Option<String>,
    pub samples_seen: u64,
}

impl MigrationProgress {
    /// Data copied as a percentage like Nova's instance.progress: 100 − remaining/total.
    pub fn percent_complete(&self) -> Option<u8> {
        if self.phase == MigrationPhase::Completed {
            return Some(100);
        }
        let total = self.data_total_bytes.or(self.memory_total_bytes)?;
        let remaining = self.data_remaining_bytes.or(self.memory_remaining_bytes)?;
        if total == 0 {
            return None;
        }
        let remaining_percent = (remaining.min(total) as u128 * 100 / total as u128) as u8;
        Some(100 - remaining_percent)
    }

    /// Whether the guest already runs on the destination: no abort or second post-copy then.
    pub fn in_post_copy(&self) -> bool {
        self.phase == MigrationPhase::PostCopy
    }
}

#[derive(Debug, Clone, Copy)]
struct OpenIteration {
    iteration: u64,
    low_mark_bytes: u64,
    dirty_kept_up: bool,
}

/// Folds samples and engine events into a [`MigrationProgress`].
#[derive(Debug, Clone)]
pub struct ProgressModel {
    config: ProgressConfig,
    phase: MigrationPhase,
    latest: Option<JobSample>,
    previous: Option<JobSample>,
    transfer_rate_bytes_per_second: Option<u64>,
    dirty_rate_bytes_per_second: Option<u64>,
    disk_rate_bytes_per_second: Option<u64>,
    /// How fast `remaining` fell between the last two samples of the same pass.
    remaining_fall_bytes_per_second: Option<u64>,
    open_iteration: Option<OpenIteration>,
    best_low_mark_bytes: Option<u64>,
    closed: VecDeque<ClosedIteration>,
    stalled_in_a_row: u32,
    stalled_total: u32,
    dirty_kept_up_in_a_row: u32,
    history: VecDeque<ProgressPoint>,
    post_copy_started: bool,
    paused_for_switchover: bool,
    error_message: Option<String>,
    samples_seen: u64,
}

impl Default for ProgressModel {
    fn default() -> Self {
        ProgressModel::new(ProgressConfig::default())
    }
}

impl ProgressModel {
    pub fn new(config: ProgressConfig) -> ProgressModel {
        ProgressModel {
            config,
            phase: MigrationPhase::Prechecks,
            latest: None,
            previous: None,
            transfer_rate_bytes_per_second: None,
            dirty_rate_bytes_per_second: None,
            disk_rate_bytes_per_second: None,
            remaining_fall_bytes_per_second: None,
            open_iteration: None,
            best_low_mark_bytes: None,
            closed: VecDeque::new(),
            stalled_in_a_row: 0,
            stalled_total: 0,
            dirty_kept_up_in_a_row: 0,
            history: VecDeque::new(),
            post_copy_started: false,
            paused_for_switchover: false,
            error_message: None,
            samples_seen: 0,
        }
    }

    pub fn phase(&self) -> MigrationPhase {
        self.phase
    }

    pub fn on_event(&mut self, event: EngineEvent) {
        if self.phase.is_terminal() {
            return;
        }
        match event {
            EngineEvent::PrechecksStarted => self.phase = MigrationPhase::Prechecks,
            EngineEvent::MigrationStarted => self.phase = MigrationPhase::Preparing,
            EngineEvent::PostCopyStarted => {
                self.post_copy_started = true;
                self.phase = MigrationPhase::PostCopy;
            }
            EngineEvent::GuestPausedForSwitchover => {
                self.paused_for_switchover = true;
                if !self.post_copy_started {
                    self.phase = MigrationPhase::SwitchingOver;
                }
            }
            EngineEvent::Completed => self.phase = MigrationPhase::Completed,
            EngineEvent::Failed { message } => {
                self.error_message = Some(message);
                self.phase = MigrationPhase::Failed;
            }
            EngineEvent::Cancelled => self.phase = MigrationPhase::Cancelled,
        }
    }

    /// Feeds one poll and returns the new snapshot.
    pub fn on_sample(&mut self, sample: JobSample) -> MigrationProgress {
        self.samples_seen += 1;
        if self.phase.is_terminal() {
            // A late poll after the end must not revive the migration; still keep real downtime
            // from completed-job statistics.
            if sample.job_type == Some(JobType::Completed) {
                self.merge_final(sample);
            }
            return self.snapshot();
        }
        self.update_rates(&sample);
        self.track_iteration(&sample);
        if sample.memory_postcopy_requests.is_some_and(|n| n > 0) {
            self.post_copy_started = true;
        }
        if let Some(message) = &sample.error_message {
            self.error_message = Some(message.clone());
        }
        self.phase = self.phase_from(&sample);
        if let Some(remaining) = sample.convergence_remaining_bytes() {
            if self.history.len() == self.config.history_capacity.max(1) {
                self.history.pop_front();
            }
            self.history.push_back(ProgressPoint {
                at_ms: sample.sampled_at_ms,
                remaining_bytes: remaining,
                transfer_rate_bytes_per_second: self.transfer_rate_bytes_per_second,
                dirty_rate_bytes_per_second: self.dirty_rate_bytes_per_second,
            });
        }
        self.previous = self.latest.take();
        self.latest = Some(sample);
        self.snapshot()
    }

    fn merge_final(&mut self, sample: JobSample) {
        if let Some(latest) = &mut self.latest {
            latest.real_downtime_ms = sample.real_downtime_ms.or(latest.real_downtime_ms);
        } else {
            self.latest = Some(sample);
        }
    }

    fn phase_from(&self, sample: &JobSample) -> MigrationPhase {
        match sample.job_type {
            Some(JobType::Completed) => return MigrationPhase::Completed,
            Some(JobType::Failed) => return MigrationPhase::Failed,
            Some(JobType::Cancelled) => return MigrationPhase::Cancelled,
            _ => {}
        }
        if self.post_copy_started {
            return MigrationPhase::PostCopy;
        }
        if self.paused_for_switchover {
            return MigrationPhase::SwitchingOver;
        }
        let running = sample.job_type.is_some_and(JobType::is_running);
        match (running, sample.memory_iteration) {
            (true, Some(iteration)) if iteration > 0 => MigrationPhase::CopyingMemory { iteration },
            (true, _) => MigrationPhase::Preparing,
            // No job (yet, or any more): keep what we knew; the engine's events end the story.
            (false, _) => match self.phase {
                MigrationPhase::Prechecks => MigrationPhase::Preparing,
                other => other,
            },
        }
    }

    fn update_rates(&mut self, sample: &JobSample) {
        let previous = self.latest.as_ref();
        let elapsed_ms = previous
            .map(|p| sample.sampled_at_ms.saturating_sub(p.sampled_at_ms))
            .filter(|ms| *ms > 0);
        let per_second = |now: Option<u64>, before: Option<u64>| -> Option<u64> {
            let (now, before, ms) = (now?, before?, elapsed_ms?);
            Some(now.checked_sub(before)? * 1000 / ms)
        };

        let derived_transfer = per_second(
            sample.convergence_processed_bytes(),
            previous.and_then(JobSample::convergence_processed_bytes),
        );
        if let Some(rate) = sample
            .memory_bps
            .filter(|bps| *bps > 0)
            .or(derived_transfer)
        {
            self.transfer_rate_bytes_per_second = Some(rate);
        }
        if let Some(rate) = sample.memory_dirty_rate_bytes_per_second() {
            self.dirty_rate_bytes_per_second = Some(rate);
        }
        let derived_disk = per_second(
            sample.disk_processed_bytes,
            previous.and_then(|p| p.disk_processed_bytes),
        );
        if let Some(rate) = sample.disk_bps.filter(|bps| *bps > 0).or(derived_disk) {
            self.disk_rate_bytes_per_second = Some(rate);
        }

        let same_pass = previous.is_some_and(|p| {
            p.memory_iteration.is_some() && p.memory_iteration == sample.memory_iteration
        });
        self.remaining_fall_bytes_per_second = if same_pass {
            let fall = previous
                .and_then(JobSample::convergence_remaining_bytes)
                .zip(sample.convergence_remaining_bytes())
                .and_then(|(before, now)| before.checked_sub(now));
            fall.zip(elapsed_ms).map(|(fall, ms)| fall * 1000 / ms)
        } else {
            None
        };
    }

    fn dirty_keeps_up(&self) -> bool {
        match (
            self.dirty_rate_bytes_per_second,
            self.transfer_rate_bytes_per_second,
        ) {
            (Some(dirty), Some(transfer)) => dirty > 0 && dirty >= transfer,
            _ => false,
        }
    }

    fn track_iteration(&mut self, sample: &JobSample) {
        let (Some(iteration), Some(remaining)) = (
            sample.memory_iteration.filter(|i| *i > 0),
            sample.convergence_remaining_bytes(),
        ) else {
            return;
        };
        let dirty_kept_up = self.dirty_keeps_up();
        match self.open_iteration {
            Some(mut open) if open.iteration == iteration => {
                open.low_mark_bytes = open.low_mark_bytes.min(remaining);
                open.dirty_kept_up |= dirty_kept_up;
                self.open_iteration = Some(open);
            }
            Some(open) if iteration > open.iteration => {
                self.close_iteration(open, sample.sampled_at_ms);
                self.open_iteration = Some(OpenIteration {
                    iteration,
                    low_mark_bytes: remaining,
                    dirty_kept_up,
                });
            }
            // An iteration number going backwards is a new job (retried migration): restart.
            Some(_) | None => {
                self.open_iteration = Some(OpenIteration {
                    iteration,
                    low_mark_bytes: remaining,
                    dirty_kept_up,
                });
            }
        }
    }

    fn close_iteration(&mut self, open: OpenIteration, closed_at_ms: u64) {
        let previous = self.best_low_mark_bytes;
        let stalled = previous.is_some_and(|best| open.low_mark_bytes >= best);
        if stalled {
            self.stalled_in_a_row += 1;
            self.stalled_total += 1;
        } else {
            self.stalled_in_a_row = 0;
        }
        // The first pass sends every page once; only later passes show whether the guest dirties
        // faster than the link carries.
        if previous.is_some() && open.dirty_kept_up {
            self.dirty_kept_up_in_a_row += 1;
        } else {
            self.dirty_kept_up_in_a_row = 0;
        }
        self.best_low_mark_bytes =
            Some(previous.map_or(open.low_mark_bytes, |best| best.min(open.low_mark_bytes)));
        if self.closed.len() == self.config.closed_iterations_kept.max(1) {
            self.closed.pop_front();
        }
        self.closed.push_back(ClosedIteration {
            iteration: open.iteration,
            low_mark_bytes: open.low_mark_bytes,
            previous_low_mark_bytes: previous,
            stalled,
            closed_at_ms,
        });
    }

    fn verdict(&self) -> ConvergenceVerdict {
        let Some(sample) = &self.latest else {
            return ConvergenceVerdict::TooEarly;
        };
        if self.phase == MigrationPhase::Completed {
            return ConvergenceVerdict::Converging { eta_ms: 0 };
        }
        if matches!(
            self.phase,
            MigrationPhase::Failed | MigrationPhase::Cancelled | MigrationPhase::Prechecks
        ) {
            return ConvergenceVerdict::TooEarly;
        }
        let Some(remaining) = sample.convergence_remaining_bytes() else {
            return ConvergenceVerdict::TooEarly;
        };
        let transfer = self.transfer_rate_bytes_per_second.filter(|r| *r > 0);

        // Post-copy always ends: every remaining page is sent once, nothing is re-dirtied.
        if self.phase == MigrationPhase::PostCopy {
            return match transfer {
                Some(rate) => ConvergenceVerdict::Converging {
                    eta_ms: remaining.saturating_mul(1000) / rate,
                },
                None => ConvergenceVerdict::TooEarly,
            };
        }

        let stalled_needed = self.config.not_converging_after_stalled_iterations.max(1);
        if self.stalled_in_a_row >= stalled_needed {
            let last = self.closed.back().copied();
            let detail = last
                .map(|c| {
                    format!(
                        "; iteration {} bottomed at {} vs best earlier {}",
                        c.iteration,
                        format_bytes(c.low_mark_bytes),
                        format_bytes(c.previous_low_mark_bytes.unwrap_or(0))
                    )
                })
                .unwrap_or_default();
            return ConvergenceVerdict::NotConverging {
                reason: format!(
                    "{} memory passes in a row did not get below the best low mark{detail}",
                    self.stalled_in_a_row
                ),
            };
        }
        let dirty_needed = self.config.not_converging_after_dirty_iterations.max(1);
        if self.dirty_kept_up_in_a_row >= dirty_needed {
            return ConvergenceVerdict::NotConverging {
                reason: format!(
                    "guest dirties {} while the link moves {}, for {} passes in a row",
                    format_rate(self.dirty_rate_bytes_per_second.unwrap_or(0)),
                    format_rate(transfer.unwrap_or(0)),
                    self.dirty_kept_up_in_a_row
                ),
            };
        }

        // ETA: prefer how fast remaining actually falls in this pass (zero pages make that far
        // faster than the link rate); else the net rate of the link against the dirtying.
        let dirty = self.dirty_rate_bytes_per_second.unwrap_or(0);
        let net_rate = transfer.map(|t| t.saturating_sub(dirty)).filter(|r| *r > 0);
        let rate = self
            .remaining_fall_bytes_per_second
            .filter(|r| *r > 0)
            .or(net_rate);
        match rate {
            Some(rate) if self.samples_seen >= 2 => ConvergenceVerdict::Converging {
                eta_ms: remaining.saturating_mul(1000) / rate,
            },
            _ => ConvergenceVerdict::TooEarly,
        }
    }

    pub fn snapshot(&self) -> MigrationProgress {
        let sample = self.latest.clone().unwrap_or_default();
        let verdict = self.verdict();
        let eta_ms = match verdict {
            ConvergenceVerdict::Converging { eta_ms } => Some(eta_ms),
            _ => None,
        };
        let completed = sample.job_type == Some(JobType::Completed);
        MigrationProgress {
            phase: self.phase,
            elapsed_ms: sample.sampled_at_ms,
            memory_total_bytes: sample.memory_total_bytes,
            memory_processed_bytes: sample.memory_processed_bytes,
            memory_remaining_bytes: sample.memory_remaining_bytes,
            data_total_bytes: sample.data_total_bytes,
            data_processed_bytes: sample.data_processed_bytes,
            data_remaining_bytes: sample.data_remaining_bytes,
            disk_total_bytes: sample.disk_total_bytes,
            disk_processed_bytes: sample.disk_processed_bytes,
            disk_remaining_bytes: sample.disk_remaining_bytes,
            transfer_rate_bytes_per_second: self.transfer_rate_bytes_per_second,
            dirty_rate_bytes_per_second: self.dirty_rate_bytes_per_second,
            disk_rate_bytes_per_second: self.disk_rate_bytes_per_second,
            iteration: sample
                .memory_iteration
                .or(self.open_iteration.map(|o| o.iteration)),
            current_iteration_low_mark_bytes: self.open_iteration.map(|o| o.low_mark_bytes),
            best_low_mark_bytes: self.best_low_mark_bytes,
            expected_downtime_ms: if completed {
                None
            } else {
                sample.expected_downtime_ms
            },
            real_downtime_ms: sample.real_downtime_ms,
            auto_converge_throttle_percent: sample.auto_converge_throttle_percent,
            postcopy_requests: sample.memory_postcopy_requests,
            verdict,
            eta_ms,
            stalled_iterations_in_a_row: self.stalled_in_a_row,
            stalled_iterations_total: self.stalled_total,
            closed_iterations: self.closed.iter().copied().collect(),
            history: self.history.iter().copied().collect(),
            error_message: self.error_message.clone(),
            samples_seen: self.samples_seen,
        }
    }
}

/// Runs a whole trace through a fresh model; returns every snapshot (one per sample).
pub fn replay(samples: &[JobSample], config: ProgressConfig) -> Vec<MigrationProgress> {
    let mut model = ProgressModel::new(config);
    model.on_event(EngineEvent::MigrationStarted);
    samples
        .iter()
        .map(|sample| model.on_sample(sample.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
