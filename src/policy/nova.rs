//! Nova's live-migration policy, reproduced exactly so operators coming from OpenStack get the
//! behaviour they know: a time-based downtime ladder and a completion timeout, both scaled by
//! the amount of data to move.
//!
//! Sources (openstack/nova):
//! - `nova/virt/libvirt/migration.py`: `downtime_steps`, `update_downtime`,
//!   `should_trigger_timeout_action`, `run_tasks` (force-complete = post-copy or pause).
//! - `nova/virt/libvirt/driver.py`: `_live_migration_data_gb` (RAM and each copied disk counted
//!   as at least 2 GiB) and `_live_migration_monitor` (`completion_timeout =
//!   int(live_migration_completion_timeout * data_gb)`, downtime ladder from `data_gb`).
//! - `nova/conf/libvirt.py`: defaults and minimums of the `live_migration_*` options.
//!
//! Nova's `live_migration_progress_timeout` (abort when no progress for N s) was deprecated in
//! Stein because it aborted migrations that were in fact progressing, and is gone from current
//! `nova/conf/libvirt.py`; it is deliberately not reproduced. ferry's stall detection
//! (progress.rs) is the better signal.

use serde::{Deserialize, Serialize};

use super::{
    DowntimeStep, MigrationFeatures, MigrationPolicy, PolicyAction, PolicyEvent, StepTrigger,
    TimeoutAction,
};
use crate::model::units::{format_bytes, format_duration_ms, GIB};
use crate::progress::MigrationProgress;

/// Nova's minimums (nova/conf/libvirt.py `min=`): below these oslo.config refuses to start.
pub const MIN_DOWNTIME_MS: u64 = 100;
pub const MIN_DOWNTIME_STEPS: u32 = 3;
/// Current Nova says "Minimum delay is 3 seconds" (`min=3`); some older releases' docs said 10.
pub const MIN_DOWNTIME_DELAY_SECONDS: u64 = 3;
/// Nova counts RAM, and each copied disk, as at least this many GiB (`_live_migration_data_gb`).
pub const MIN_DATA_GIB_PER_DEVICE: f64 = 2.0;

/// Nova's `[libvirt] live_migration_*` options, with Nova's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NovaPolicyConfig {
    /// `live_migration_downtime` (ms): the top of the ladder.
    pub downtime_ms: u64,
    /// `live_migration_downtime_steps`: rungs after the first.
    pub downtime_steps: u32,
    /// `live_migration_downtime_delay` (s per GiB of data): time between rungs.
    pub downtime_delay_seconds_per_gib: u64,
    /// `live_migration_completion_timeout` (s per GiB of data); 0 disables the timeout.
    pub completion_timeout_seconds_per_gib: u64,
    /// `live_migration_timeout_action`.
    pub timeout_action: TimeoutAction,
    /// `live_migration_permit_post_copy`.
    pub permit_post_copy: bool,
    /// `live_migration_permit_auto_converge` (only used when post-copy is not permitted).
    pub permit_auto_converge: bool,
}

impl Default for NovaPolicyConfig {
    fn default() -> Self {
        NovaPolicyConfig {
            downtime_ms: 500,
            downtime_steps: 10,
            downtime_delay_seconds_per_gib: 75,
            completion_timeout_seconds_per_gib: 800,
            timeout_action: TimeoutAction::Abort,
            permit_post_copy: false,
            permit_auto_converge: false,
        }
    }
}

impl NovaPolicyConfig {
    /// Nova's minimums, with a message naming the option and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        if self.downtime_ms < MIN_DOWNTIME_MS {
            return Err(format!(
                "nova.downtime_ms is {}; Nova's live_migration_downtime must be at least {MIN_DOWNTIME_MS} ms",
                self.downtime_ms
            ));
        }
        if self.downtime_steps < MIN_DOWNTIME_STEPS {
            return Err(format!(
                "nova.downtime_steps is {}; Nova's live_migration_downtime_steps must be at least {MIN_DOWNTIME_STEPS}",
                self.downtime_steps
            ));
        }
        if self.downtime_delay_seconds_per_gib < MIN_DOWNTIME_DELAY_SECONDS {
            return Err(format!(
                "nova.downtime_delay_seconds_per_gib is {}; Nova's live_migration_downtime_delay must be at least {MIN_DOWNTIME_DELAY_SECONDS} s",
                self.downtime_delay_seconds_per_gib
            ));
        }
        Ok(())
    }
}

/// GiB of data a migration moves, Nova's way (driver.py `_live_migration_data_gb`): guest RAM,
/// at least 2 GiB, plus each disk being copied (block migration only), each at least 2 GiB.
/// Fractions are kept, as in Nova's Python 3 division.
pub fn data_gib(memory_bytes: u64, copied_disk_sizes_bytes: &[u64]) -> f64 {
    let at_least_two = |bytes: u64| (bytes as f64 / GIB as f64).max(MIN_DATA_GIB_PER_DEVICE);
    let ram_gib = at_least_two(memory_bytes);
    let disk_gib: f64 = copied_disk_sizes_bytes
        .iter()
        .map(|size| at_least_two(*size))
        .sum();
    ram_gib + disk_gib
}

/// Nova `downtime_steps(data_gb)` (migration.py): `steps + 1` pairs of (seconds after start,
/// max downtime ms), linear from `downtime / steps` up to `downtime`, one rung every
/// `int(delay * data_gb)` seconds. Same float operations in the same order as Nova, then
/// truncation like Python's `int()`.
pub fn downtime_steps(config: &NovaPolicyConfig, data_gib: f64) -> Vec<(u64, u64)> {
    let delay_seconds = (config.downtime_delay_seconds_per_gib as f64 * data_gib) as u64;
    let steps = config.downtime_steps.max(1) as f64;
    let downtime = config.downtime_ms as f64;
    let base = downtime / steps;
    let offset = (downtime - base) / steps;
    (0..=config.downtime_steps as u64)
        .map(|i| (delay_seconds * i, (base + offset * i as f64) as u64))
        .collect()
}

/// Nova's completion timeout in seconds (driver.py `_live_migration_monitor`):
/// `int(live_migration_completion_timeout * data_gb)`; 0 means no timeout.
pub fn completion_timeout_seconds(completion_timeout_seconds_per_gib: u64, data_gib: f64) -> u64 {
    (completion_timeout_seconds_per_gib as f64 * data_gib) as u64
}

/// Nova `should_trigger_timeout_action` (migration.py): only with a timeout set, never once in
/// post-copy (the guest already runs on the destination), and only strictly past the timeout.
pub fn should_trigger_timeout_action(
    elapsed_ms: u64,
    completion_timeout_seconds: u64,
    in_post_copy: bool,
) -> bool {
    if completion_timeout_seconds == 0 || in_post_copy {
        return false;
    }
    elapsed_ms > completion_timeout_seconds * 1000
}

/// The completion timeout as both policies apply it: how long, from what, and what to do.
#[derive(Debug, Clone, Copy)]
pub struct CompletionTimeout {
    pub seconds: u64,
    pub seconds_per_gib: u64,
    pub data_gib: f64,
    pub action: PolicyAction,
}

impl CompletionTimeout {
    /// The event to raise once `progress` is past the timeout (Nova's rule,
    /// [`should_trigger_timeout_action`]), explained; `None` while it is not due. `label` says
    /// whose timeout it is in the event log.
    pub fn event(&self, progress: &MigrationProgress, label: &str) -> Option<PolicyEvent> {
        if !should_trigger_timeout_action(
            progress.elapsed_ms,
            self.seconds,
            progress.in_post_copy(),
        ) {
            return None;
        }
        let remaining = progress
            .data_remaining_bytes
            .or(progress.memory_remaining_bytes)
            .map(|b| format!(", {} still to send", format_bytes(b)))
            .unwrap_or_default();
        Some(PolicyEvent {
            at_ms: progress.elapsed_ms,
            action: self.action,
            reason: format!(
                "{label}: not done after {} s ({} s per GiB × {:.1} GiB){remaining} → {}",
                self.seconds,
                self.seconds_per_gib,
                self.data_gib,
                action_name(self.action)
            ),
        })
    }
}

/// Nova `update_downtime` (migration.py): the last step whose time mark has been passed
/// (`elapsed > step[0]`), or none yet.
pub fn current_downtime_step(steps: &[(u64, u64)], elapsed_ms: u64) -> Option<usize> {
    steps
        .iter()
        .rposition(|(after_seconds, _)| elapsed_ms > after_seconds * 1000)
}

/// The timeout action resolved into what to do (Nova migration.py `run_tasks`: force-complete
/// is post-copy when permitted, else pausing the guest).
pub fn resolve_timeout_action(action: TimeoutAction, post_copy_permitted: bool) -> PolicyAction {
    match action {
        TimeoutAction::Abort => PolicyAction::Abort,
        TimeoutAction::ForceComplete if post_copy_permitted => PolicyAction::StartPostCopy,
        TimeoutAction::ForceComplete => PolicyAction::Pause,
    }
}

/// Nova's policy for one migration.
#[derive(Debug, Clone)]
pub struct NovaPolicy {
    config: NovaPolicyConfig,
    data_gib: f64,
    steps: Vec<(u64, u64)>,
    completion_timeout_seconds: u64,
    applied_step: Option<usize>,
    timeout_fired: bool,
}

impl NovaPolicy {
    /// `data_gib` from [`data_gib`].
    pub fn new(config: NovaPolicyConfig, data_gib: f64) -> NovaPolicy {
        let steps = downtime_steps(&config, data_gib);
        let completion_timeout_seconds =
            completion_timeout_seconds(config.completion_timeout_seconds_per_gib, data_gib);
        NovaPolicy {
            config,
            data_gib,
            steps,
            completion_timeout_seconds,
            applied_step: None,
            timeout_fired: false,
        }
    }

    /// (seconds after start, max downtime ms), as Nova logs them.
    pub fn steps(&self) -> &[(u64, u64)] {
        &self.steps
    }

    pub fn completion_timeout_seconds(&self) -> u64 {
        self.completion_timeout_seconds
    }

    fn completion_timeout(&self) -> CompletionTimeout {
        CompletionTimeout {
            seconds: self.completion_timeout_seconds,
            seconds_per_gib: self.config.completion_timeout_seconds_per_gib,
            data_gib: self.data_gib,
            action: resolve_timeout_action(
                self.config.timeout_action,
                self.config.permit_post_copy,
            ),
        }
    }
}

impl MigrationPolicy for NovaPolicy {
    fn name(&self) -> &'static str {
        "nova"
    }

    fn migration_features(&self) -> MigrationFeatures {
        MigrationFeatures {
            post_copy: self.config.permit_post_copy,
            // nova/conf/libvirt.py: auto-converge only when post-copy is not permitted.
            auto_converge: self.config.permit_auto_converge && !self.config.permit_post_copy,
        }
    }

    fn on_start(&mut self) -> Vec<PolicyEvent> {
        if self.migration_features().auto_converge {
            vec![PolicyEvent {
                at_ms: 0,
                action: PolicyAction::EnableAutoConverge,
                reason: "nova: live_migration_permit_auto_converge is set and post-copy is not permitted".into(),
            }]
        } else {
            Vec::new()
        }
    }

    fn on_resume(&mut self, current_max_downtime_ms: Option<u64>) {
        // Nova's steps follow the clock: the step whose value is in force counts as applied,
        // and the next one comes at its time.
        self.applied_step = current_max_downtime_ms
            .and_then(|current| self.steps.iter().rposition(|(_, ms)| *ms == current));
    }

    fn on_sample(&mut self, progress: &MigrationProgress) -> Vec<PolicyEvent> {
        let mut events = Vec::new();
        if progress.phase.is_terminal() {
            return events;
        }
        let elapsed_ms = progress.elapsed_ms;
        // Nova keeps calling update_downtime in post-copy; ferry skips it there because the
        // source no longer pauses for a final copy, so the setting cannot matter.
        if !progress.in_post_copy() {
            if let Some(step) = current_downtime_step(&self.steps, elapsed_ms) {
                if Some(step) != self.applied_step {
                    let from_ms = self.applied_step.map(|s| self.steps[s].1);
                    let (after_seconds, to_ms) = self.steps[step];
                    events.push(PolicyEvent {
                        at_ms: elapsed_ms,
                        action: PolicyAction::SetMaxDowntime { from_ms, to_ms },
                        reason: format!(
                            "nova step {step}/{} at {} elapsed (mark {after_seconds} s, {} s per step for {:.1} GiB) → max downtime {} ms",
                            self.config.downtime_steps,
                            format_duration_ms(elapsed_ms),
                            self.steps.get(1).map_or(0, |s| s.0),
                            self.data_gib,
                            match from_ms {
                                Some(from) => format!("{from} → {to_ms}"),
                                None => to_ms.to_string(),
                            }
                        ),
                    });
                    self.applied_step = Some(step);
                }
            }
        }
        if !self.timeout_fired {
            if let Some(event) = self
                .completion_timeout()
                .event(progress, "nova completion timeout")
            {
                self.timeout_fired = true;
                events.push(event);
            }
        }
        events
    }

    fn downtime_ladder(&self) -> Vec<DowntimeStep> {
        self.steps
            .iter()
            .map(|(after_seconds, max_downtime_ms)| DowntimeStep {
                max_downtime_ms: *max_downtime_ms,
                trigger: if *after_seconds == 0 {
                    StepTrigger::AtStart
                } else {
                    StepTrigger::AfterElapsed {
                        elapsed_ms: after_seconds * 1000,
                    }
                },
            })
            .collect()
    }

    fn current_step(&self) -> usize {
        self.applied_step.unwrap_or(0)
    }
}

pub(crate) fn action_name(action: PolicyAction) -> &'static str {
    match action {
        PolicyAction::SetMaxDowntime { .. } => "set max downtime",
        PolicyAction::EnableAutoConverge => "auto-converge",
        PolicyAction::StartPostCopy => "post-copy",
        PolicyAction::Pause => "pause the guest",
        PolicyAction::Abort => "abort",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::trace::{fixtures_dir, load_trace};
    use crate::model::units::MIB;
    use crate::policy::replay_policy;
    use crate::progress::{replay, MigrationPhase, ProgressConfig};

    fn progress_at(elapsed_ms: u64, phase: MigrationPhase) -> MigrationProgress {
        let mut progress = crate::progress::ProgressModel::default().snapshot();
        progress.elapsed_ms = elapsed_ms;
        progress.phase = phase;
        progress.data_remaining_bytes = Some(300 * MIB);
        progress
    }

    #[test]
    fn data_gib_counts_each_device_as_at_least_two() {
        assert_eq!(data_gib(512 * MIB, &[]), 2.0);
        assert_eq!(data_gib(GIB, &[]), 2.0);
        assert_eq!(data_gib(8 * GIB, &[]), 8.0);
        // RAM 4 GiB + a 1 GiB disk (counted 2) + a 10 GiB disk.
        assert_eq!(data_gib(4 * GIB, &[GIB, 10 * GIB]), 16.0);
        assert_eq!(data_gib(3 * GIB + 512 * MIB, &[]), 3.5);
    }

    #[test]
    fn docstring_example_of_nova_downtime_steps() {
        // migration.py's own example: 10 steps, 30 s delay, 3 GB, 400 ms.
        let config = NovaPolicyConfig {
            downtime_ms: 400,
            downtime_steps: 10,
            downtime_delay_seconds_per_gib: 30,
            ..NovaPolicyConfig::default()
        };
        let steps = downtime_steps(&config, 3.0);
        let expected: Vec<(u64, u64)> = (0..=10).map(|i| (90 * i, 40 + 36 * i)).collect();
        assert_eq!(steps, expected);
    }

    #[test]
    fn default_ladder_for_a_1_gib_guest() {
        // 1 GiB of RAM counts as 2 GiB: a rung every 150 s, 50 → 500 ms in steps of 45 ms.
        let policy = NovaPolicy::new(NovaPolicyConfig::default(), data_gib(GIB, &[]));
        let expected: Vec<(u64, u64)> = (0..=10).map(|i| (150 * i, 50 + 45 * i)).collect();
        assert_eq!(policy.steps(), expected.as_slice());
        assert_eq!(policy.completion_timeout_seconds(), 1600);
    }

    #[test]
    fn default_ladder_for_an_8_gib_guest() {
        let policy = NovaPolicy::new(NovaPolicyConfig::default(), data_gib(8 * GIB, &[]));
        assert_eq!(policy.steps()[0], (0, 50));
        assert_eq!(policy.steps()[1], (600, 95));
        assert_eq!(policy.steps()[10], (6000, 500));
        assert_eq!(policy.completion_timeout_seconds(), 6400);
        let ladder = policy.downtime_ladder();
        assert_eq!(ladder.len(), 11);
        assert_eq!(ladder[0].trigger, StepTrigger::AtStart);
        assert_eq!(
            ladder[2].trigger,
            StepTrigger::AfterElapsed {
                elapsed_ms: 1_200_000
            }
        );
    }

    #[test]
    fn odd_values_truncate_like_python_int() {
        // 350/7 = 50.0, (350-50)/7 = 42.857…: Python gives 50, 92, 135, 178, 221, 264, 307, 350.
        let config = NovaPolicyConfig {
            downtime_ms: 350,
            downtime_steps: 7,
            ..NovaPolicyConfig::default()
        };
        let values: Vec<u64> = downtime_steps(&config, 2.0).iter().map(|s| s.1).collect();
        assert_eq!(values, vec![50, 92, 135, 178, 221, 264, 307, 350]);
    }

    #[test]
    fn step_applies_only_strictly_after_its_mark() {
        let steps = vec![(0, 50), (150, 95), (300, 140)];
        assert_eq!(current_downtime_step(&steps, 0), None);
        assert_eq!(current_downtime_step(&steps, 1), Some(0));
        assert_eq!(current_downtime_step(&steps, 150_000), Some(0));
        assert_eq!(current_downtime_step(&steps, 150_001), Some(1));
        assert_eq!(current_downtime_step(&steps, 999_000), Some(2));
    }

    #[test]
    fn timeout_rule_matches_nova() {
        assert!(!should_trigger_timeout_action(10_000_000, 0, false));
        assert!(!should_trigger_timeout_action(1_700_000, 1600, true));
        assert!(!should_trigger_timeout_action(1_600_000, 1600, false));
        assert!(should_trigger_timeout_action(1_600_001, 1600, false));
    }

    #[test]
    fn timeout_fires_once_at_800_s_per_gib() {
        let mut policy = NovaPolicy::new(NovaPolicyConfig::default(), data_gib(GIB, &[]));
        let running = MigrationPhase::CopyingMemory { iteration: 9 };
        assert!(!policy
            .on_sample(&progress_at(1_599_000, running))
            .iter()
            .any(|e| e.action == PolicyAction::Abort));
        let events = policy.on_sample(&progress_at(1_600_500, running));
        let abort = events
            .iter()
            .find(|e| e.action == PolicyAction::Abort)
            .expect("abort after 1600 s");
        assert!(abort.reason.contains("1600 s"), "{}", abort.reason);
        assert!(policy
            .on_sample(&progress_at(1_700_000, running))
            .is_empty());
    }

    #[test]
    fn force_complete_is_post_copy_when_permitted_else_pause() {
        for (permit_post_copy, expected) in [
            (true, PolicyAction::StartPostCopy),
            (false, PolicyAction::Pause),
        ] {
            let config = NovaPolicyConfig {
                timeout_action: TimeoutAction::ForceComplete,
                permit_post_copy,
                ..NovaPolicyConfig::default()
            };
            let mut policy = NovaPolicy::new(config, 2.0);
            let events = policy.on_sample(&progress_at(
                1_600_001,
                MigrationPhase::CopyingMemory { iteration: 3 },
            ));
            assert!(events.iter().any(|e| e.action == expected), "{events:?}");
        }
        // Never in post-copy.
        let config = NovaPolicyConfig {
            timeout_action: TimeoutAction::ForceComplete,
            permit_post_copy: true,
            ..NovaPolicyConfig::default()
        };
        let mut policy = NovaPolicy::new(config, 2.0);
        assert!(policy
            .on_sample(&progress_at(1_700_000, MigrationPhase::PostCopy))
            .is_empty());
    }

    #[test]
    fn auto_converge_only_without_post_copy() {
        let both = NovaPolicyConfig {
            permit_post_copy: true,
            permit_auto_converge: true,
            ..NovaPolicyConfig::default()
        };
        assert!(
            !NovaPolicy::new(both.clone(), 2.0)
                .migration_features()
                .auto_converge
        );
        let converge_only = NovaPolicyConfig {
            permit_post_copy: false,
            ..both
        };
        let mut policy = NovaPolicy::new(converge_only, 2.0);
        assert!(policy.migration_features().auto_converge);
        assert_eq!(
            policy.on_start()[0].action,
            PolicyAction::EnableAutoConverge
        );
    }

    #[test]
    fn minimums_are_enforced() {
        assert!(NovaPolicyConfig::default().validate().is_ok());
        let too_small = NovaPolicyConfig {
            downtime_ms: 50,
            ..NovaPolicyConfig::default()
        };
        assert!(too_small
            .validate()
            .unwrap_err()
            .contains("at least 100 ms"));
        let few_steps = NovaPolicyConfig {
            downtime_steps: 2,
            ..NovaPolicyConfig::default()
        };
        assert!(few_steps.validate().is_err());
    }

    #[test]
    fn busy_trace_gets_the_first_rung_only_within_150_s() {
        // The synthetic busy trace lasts 40 s: Nova sets 50 ms at once and nothing more, which is
        // exactly why it never converges under Nova's defaults.
        let samples =
            load_trace(fixtures_dir().join("synthetic-busy-512mib-not-converging.jsonl")).unwrap();
        let snapshots = replay(&samples, ProgressConfig::default());
        let mut policy = NovaPolicy::new(NovaPolicyConfig::default(), data_gib(512 * MIB, &[]));
        let events = replay_policy(&mut policy, &snapshots);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            events[0].action,
            PolicyAction::SetMaxDowntime {
                from_ms: None,
                to_ms: 50
            }
        );
        assert_eq!(policy.current_step(), 0);
    }
}
