//! ferry's default policy: react to what the migration does, not to the clock.
//!
//! Nova raises the max downtime on a timer, so a guest that converges never gets more downtime
//! than it needs, but a guest that cannot converge waits minutes per rung (150 s for anything up
//! to 2 GiB). The adaptive policy climbs one rung per *stalled* memory pass instead (a pass whose
//! remaining data did not drop below the low mark of earlier passes, see progress.rs), starts
//! with auto-converge so QEMU throttles a guest that outruns the link, switches to post-copy
//! after N stalled passes when the operator permits it, and keeps Nova's completion timeout as
//! the last resort.

use serde::{Deserialize, Serialize};

use super::nova::{resolve_timeout_action, CompletionTimeout};
use super::{
    DowntimeStep, MigrationFeatures, MigrationPolicy, PolicyAction, PolicyEvent, StepTrigger,
    TimeoutAction,
};
use crate::model::units::{format_bytes, format_rate};
use crate::progress::{ClosedIteration, MigrationProgress};

/// Every threshold of the adaptive policy (embedded in the config file as `[policy.adaptive]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptivePolicyConfig {
    /// Max downtime rungs in ms, ascending. The first is set at start (QEMU's own default is
    /// 300 ms); each stalled pass climbs one rung; the last is the ceiling.
    pub downtime_ladder_ms: Vec<u64>,
    /// Start with `VIR_MIGRATE_AUTO_CONVERGE`: QEMU throttles the guest's vCPUs only when it
    /// dirties memory faster than the link carries, so a converging guest is not slowed.
    pub auto_converge: bool,
    /// Allow switching to post-copy. Off by default: if the network fails during post-copy, the
    /// guest is lost (its memory is split between the hosts).
    pub permit_post_copy: bool,
    /// Stalled passes (counted since start) after which to switch to post-copy, when permitted.
    pub post_copy_after_stalled_iterations: u32,
    /// Switch to post-copy sooner, when permitted: at the start of a pass (the second on),
    /// project how many more pre-copy passes it would take to bring the remaining memory
    /// down to what the ladder's top downtime can send (each pass leaves dirty ÷ transfer of
    /// the previous one); more than this many and post-copy goes now, since post-copy sends
    /// each remaining page once while every pre-copy pass resends. 0 turns the rule off
    /// (stalled passes alone decide).
    pub post_copy_when_projected_passes_exceed: u32,
    /// Nova's `live_migration_completion_timeout` rule: seconds per GiB of data (RAM and copied
    /// disks, each at least 2 GiB); 0 disables the timeout.
    pub completion_timeout_seconds_per_gib: u64,
    pub timeout_action: TimeoutAction,
}

impl Default for AdaptivePolicyConfig {
    fn default() -> Self {
        AdaptivePolicyConfig {
            downtime_ladder_ms: vec![300, 500, 1000, 2000],
            auto_converge: true,
            permit_post_copy: false,
            post_copy_after_stalled_iterations: 4,
            post_copy_when_projected_passes_exceed: 2,
            completion_timeout_seconds_per_gib: 800,
            timeout_action: TimeoutAction::Abort,
        }
    }
}

impl AdaptivePolicyConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.downtime_ladder_ms.is_empty() {
            return Err(
                "adaptive.downtime_ladder_ms is empty; give at least one max downtime in ms, e.g. [300, 500, 1000, 2000]"
                    .into(),
            );
        }
        if let Some(pair) = self.downtime_ladder_ms.windows(2).find(|w| w[1] <= w[0]) {
            return Err(format!(
                "adaptive.downtime_ladder_ms must rise rung by rung, but {} ms is followed by {} ms",
                pair[0], pair[1]
            ));
        }
        if self.downtime_ladder_ms[0] == 0 {
            return Err(
                "adaptive.downtime_ladder_ms starts at 0 ms; QEMU needs a max downtime above 0"
                    .into(),
            );
        }
        if self.permit_post_copy && self.post_copy_after_stalled_iterations == 0 {
            return Err(
                "adaptive.post_copy_after_stalled_iterations is 0; give at least 1 stalled pass before post-copy"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The adaptive policy for one migration.
#[derive(Debug, Clone)]
pub struct AdaptivePolicy {
    config: AdaptivePolicyConfig,
    data_gib: f64,
    completion_timeout_seconds: u64,
    step: usize,
    started: bool,
    last_iteration_seen: u64,
    stalled_iterations: u32,
    /// The pass whose start was last projected.
    last_projected_pass: u64,
    post_copy_requested: bool,
    timeout_fired: bool,
}

impl AdaptivePolicy {
    /// `data_gib` from [`super::nova::data_gib`], for the completion timeout.
    pub fn new(mut config: AdaptivePolicyConfig, data_gib: f64) -> AdaptivePolicy {
        if config.downtime_ladder_ms.is_empty() {
            config.downtime_ladder_ms = AdaptivePolicyConfig::default().downtime_ladder_ms;
        }
        let completion_timeout_seconds = super::nova::completion_timeout_seconds(
            config.completion_timeout_seconds_per_gib,
            data_gib,
        );
        AdaptivePolicy {
            config,
            data_gib,
            completion_timeout_seconds,
            step: 0,
            started: false,
            last_iteration_seen: 0,
            stalled_iterations: 0,
            last_projected_pass: 0,
            post_copy_requested: false,
            timeout_fired: false,
        }
    }

    pub fn completion_timeout_seconds(&self) -> u64 {
        self.completion_timeout_seconds
    }

    fn ladder(&self) -> &[u64] {
        &self.config.downtime_ladder_ms
    }

    fn on_stalled(&mut self, closed: &ClosedIteration, at_ms: u64, events: &mut Vec<PolicyEvent>) {
        self.stalled_iterations += 1;
        let stalled_words = format!(
            "iteration {} stalled: {} remaining ≥ low mark {}",
            closed.iteration,
            format_bytes(closed.low_mark_bytes),
            format_bytes(closed.previous_low_mark_bytes.unwrap_or(0))
        );
        if self.step + 1 < self.ladder().len() {
            let from_ms = self.ladder()[self.step];
            self.step += 1;
            let to_ms = self.ladder()[self.step];
            events.push(PolicyEvent {
                at_ms,
                action: PolicyAction::SetMaxDowntime {
                    from_ms: Some(from_ms),
                    to_ms,
                },
                reason: format!("{stalled_words} → max downtime {from_ms} → {to_ms} ms"),
            });
        }
        if self.config.permit_post_copy
            && !self.post_copy_requested
            && self.stalled_iterations >= self.config.post_copy_after_stalled_iterations
        {
            self.post_copy_requested = true;
            events.push(PolicyEvent {
                at_ms,
                action: PolicyAction::StartPostCopy,
                reason: format!(
                    "{stalled_words}; {} stalled passes (limit {}) with max downtime at {} ms → post-copy",
                    self.stalled_iterations,
                    self.config.post_copy_after_stalled_iterations,
                    self.ladder()[self.step]
                ),
            });
        }
    }
}

impl AdaptivePolicy {
    /// At the first sample of each pass from the second on: how many more pre-copy passes
    /// would reach the downtime target, and post-copy if that is too many.
    fn project_passes(&mut self, progress: &MigrationProgress, events: &mut Vec<PolicyEvent>) {
        let limit = self.config.post_copy_when_projected_passes_exceed;
        let pass = progress.iteration.unwrap_or(0);
        if !self.config.permit_post_copy
            || self.post_copy_requested
            || limit == 0
            || pass < 2
            || pass == self.last_projected_pass
        {
            return;
        }
        let (Some(dirty), Some(transfer), Some(remaining)) = (
            progress.dirty_rate_bytes_per_second,
            progress.transfer_rate_bytes_per_second,
            progress.memory_remaining_bytes,
        ) else {
            return;
        };
        self.last_projected_pass = pass;
        let ceiling_ms = *self.ladder().last().unwrap_or(&0);
        let target_bytes = transfer.saturating_mul(ceiling_ms) / 1000;
        let Some(passes) = projected_passes(remaining, target_bytes, dirty, transfer) else {
            return;
        };
        if passes > f64::from(limit) {
            self.post_copy_requested = true;
            let passes_words = if passes.is_finite() {
                format!("{passes:.1} more passes")
            } else {
                "never".to_string()
            };
            events.push(PolicyEvent {
                at_ms: progress.elapsed_ms,
                action: PolicyAction::StartPostCopy,
                reason: format!(
                    "pass {pass} starts with {} to send, dirty {} vs transfer {}: pre-copy \
                     would reach the {ceiling_ms} ms target ({}) in {passes_words} (limit \
                     {limit}) → post-copy",
                    format_bytes(remaining),
                    format_rate(dirty),
                    format_rate(transfer),
                    format_bytes(target_bytes),
                ),
            });
        }
    }
}

/// Passes until `remaining` falls to `target`, if each pass leaves `dirty ÷ transfer` of the
/// one before: infinite when the guest dirties as fast as the link carries, None when there is
/// nothing to judge (no transfer measured yet).
pub fn projected_passes(remaining: u64, target: u64, dirty: u64, transfer: u64) -> Option<f64> {
    if transfer == 0 {
        return None;
    }
    if remaining <= target {
        return Some(0.0);
    }
    let ratio = dirty as f64 / transfer as f64;
    if ratio >= 1.0 {
        return Some(f64::INFINITY);
    }
    if ratio <= 0.0 || target == 0 {
        return Some(if target == 0 { f64::INFINITY } else { 1.0 });
    }
    Some((target as f64 / remaining as f64).ln() / ratio.ln())
}

impl MigrationPolicy for AdaptivePolicy {
    fn name(&self) -> &'static str {
        "adaptive"
    }

    fn migration_features(&self) -> MigrationFeatures {
        MigrationFeatures {
            auto_converge: self.config.auto_converge,
            post_copy: self.config.permit_post_copy,
        }
    }

    fn on_start(&mut self) -> Vec<PolicyEvent> {
        if self.started {
            return Vec::new();
        }
        self.started = true;
        let ladder_words = self
            .ladder()
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" → ");
        let mut events = vec![PolicyEvent {
            at_ms: 0,
            action: PolicyAction::SetMaxDowntime {
                from_ms: None,
                to_ms: self.ladder()[0],
            },
            reason: format!(
                "start: max downtime {} ms, first rung of {ladder_words} ms (one rung per stalled pass)",
                self.ladder()[0]
            ),
        }];
        if self.config.auto_converge {
            events.push(PolicyEvent {
                at_ms: 0,
                action: PolicyAction::EnableAutoConverge,
                reason: "start: auto-converge on, so QEMU throttles the guest only if it dirties memory faster than the link carries".into(),
            });
        }
        events
    }

    fn on_resume(&mut self, current_max_downtime_ms: Option<u64>) {
        self.started = true;
        // The highest rung not above what is in force: climbing goes on from there, and the
        // stalled passes already seen count as the rungs already climbed.
        if let Some(current) = current_max_downtime_ms {
            self.step = self
                .ladder()
                .iter()
                .rposition(|rung| *rung <= current)
                .unwrap_or(0);
            self.stalled_iterations = self.step as u32;
        }
    }

    fn on_sample(&mut self, progress: &MigrationProgress) -> Vec<PolicyEvent> {
        let mut events = Vec::new();
        if progress.phase.is_terminal() {
            return events;
        }
        if !progress.in_post_copy() {
            let new_closed: Vec<ClosedIteration> = progress
                .closed_iterations
                .iter()
                .filter(|c| c.iteration > self.last_iteration_seen)
                .copied()
                .collect();
            for closed in new_closed {
                self.last_iteration_seen = closed.iteration;
                if closed.stalled {
                    self.on_stalled(&closed, progress.elapsed_ms, &mut events);
                }
            }
        }
        if !progress.in_post_copy() {
            self.project_passes(progress, &mut events);
        }
        // Once post-copy was asked for, the migration can only finish: no timeout action.
        if !self.timeout_fired && !self.post_copy_requested {
            let timeout = CompletionTimeout {
                seconds: self.completion_timeout_seconds,
                seconds_per_gib: self.config.completion_timeout_seconds_per_gib,
                data_gib: self.data_gib,
                action: resolve_timeout_action(
                    self.config.timeout_action,
                    self.config.permit_post_copy,
                ),
            };
            if let Some(event) = timeout.event(progress, "completion timeout") {
                self.timeout_fired = true;
                events.push(event);
            }
        }
        events
    }

    fn downtime_ladder(&self) -> Vec<DowntimeStep> {
        self.ladder()
            .iter()
            .enumerate()
            .map(|(index, max_downtime_ms)| DowntimeStep {
                max_downtime_ms: *max_downtime_ms,
                trigger: if index == 0 {
                    StepTrigger::AtStart
                } else {
                    StepTrigger::AfterStalledIterations {
                        stalled_iterations: index as u32,
                    }
                },
            })
            .collect()
    }

    fn current_step(&self) -> usize {
        self.step
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::trace::{fixtures_dir, load_trace, read_trace, trace_files};
    use crate::model::units::{GIB, MIB};
    use crate::policy::nova::{data_gib, NovaPolicy, NovaPolicyConfig};
    use crate::policy::replay_policy;
    use crate::progress::{replay, MigrationPhase, ProgressConfig, ProgressModel};

    fn busy_snapshots() -> Vec<MigrationProgress> {
        let samples =
            load_trace(fixtures_dir().join("synthetic-busy-512mib-not-converging.jsonl")).unwrap();
        replay(&samples, ProgressConfig::default())
    }

    fn downtime_changes(events: &[PolicyEvent]) -> Vec<(Option<u64>, u64)> {
        events
            .iter()
            .filter_map(|e| match e.action {
                PolicyAction::SetMaxDowntime { from_ms, to_ms } => Some((from_ms, to_ms)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_bad_ladders_are_explained() {
        assert!(AdaptivePolicyConfig::default().validate().is_ok());
        let falling = AdaptivePolicyConfig {
            downtime_ladder_ms: vec![300, 1000, 500],
            ..AdaptivePolicyConfig::default()
        };
        assert!(falling
            .validate()
            .unwrap_err()
            .contains("1000 ms is followed by 500 ms"));
        let empty = AdaptivePolicyConfig {
            downtime_ladder_ms: vec![],
            ..AdaptivePolicyConfig::default()
        };
        assert!(empty.validate().is_err());
    }

    #[test]
    fn start_sets_the_first_rung_and_auto_converge() {
        let mut policy = AdaptivePolicy::new(AdaptivePolicyConfig::default(), 2.0);
        let events = policy.on_start();
        assert_eq!(
            events[0].action,
            PolicyAction::SetMaxDowntime {
                from_ms: None,
                to_ms: 300
            }
        );
        assert_eq!(events[1].action, PolicyAction::EnableAutoConverge);
        assert!(policy.migration_features().auto_converge);
        assert!(!policy.migration_features().post_copy);
        assert!(policy.on_start().is_empty());
    }

    #[test]
    fn escalates_only_on_stalled_iterations() {
        let snapshots = busy_snapshots();
        let mut policy = AdaptivePolicy::new(AdaptivePolicyConfig::default(), 2.0);
        let events = replay_policy(&mut policy, &snapshots);
        let last = snapshots.last().unwrap();
        let stalled: Vec<_> = last
            .closed_iterations
            .iter()
            .filter(|c| c.stalled)
            .collect();
        // The trace has progress passes between stalled ones (e.g. iteration 8 beats the low
        // mark): no escalation for those.
        assert!(last
            .closed_iterations
            .iter()
            .any(|c| !c.stalled && c.previous_low_mark_bytes.is_some()));
        assert!(stalled.len() >= 3);
        // Every escalation names a stalled iteration, and happens when that iteration closed.
        for event in events.iter().filter(|e| e.at_ms > 0) {
            let closed = last
                .closed_iterations
                .iter()
                .find(|c| {
                    event
                        .reason
                        .starts_with(&format!("iteration {} stalled", c.iteration))
                })
                .unwrap_or_else(|| panic!("event for no stalled iteration: {}", event.reason));
            assert!(closed.stalled);
            assert_eq!(event.at_ms, closed.closed_at_ms);
        }
        assert_eq!(
            downtime_changes(&events),
            vec![
                (None, 300),
                (Some(300), 500),
                (Some(500), 1000),
                (Some(1000), 2000)
            ]
        );
        assert_eq!(policy.current_step(), 3);
        let first = &events[2];
        assert!(
            first.reason.contains("stalled:")
                && first.reason.contains("remaining ≥ low mark")
                && first.reason.ends_with("→ max downtime 300 → 500 ms"),
            "{}",
            first.reason
        );
        // No post-copy unless permitted, no timeout within 40 s.
        assert!(!events.iter().any(|e| matches!(
            e.action,
            PolicyAction::StartPostCopy | PolicyAction::Abort | PolicyAction::Pause
        )));
    }

    #[test]
    fn converging_guest_gets_no_escalation() {
        let samples =
            load_trace(fixtures_dir().join("synthetic-idle-1gib-converging.jsonl")).unwrap();
        let snapshots = replay(&samples, ProgressConfig::default());
        let mut policy = AdaptivePolicy::new(AdaptivePolicyConfig::default(), data_gib(GIB, &[]));
        let events = replay_policy(&mut policy, &snapshots);
        assert_eq!(downtime_changes(&events), vec![(None, 300)]);
        assert_eq!(policy.current_step(), 0);
    }

    #[test]
    fn switches_to_post_copy_after_n_stalled_iterations_when_permitted() {
        let snapshots = busy_snapshots();
        let config = AdaptivePolicyConfig {
            permit_post_copy: true,
            post_copy_after_stalled_iterations: 4,
            // The stalled-pass rule alone; the projection has its own tests.
            post_copy_when_projected_passes_exceed: 0,
            ..AdaptivePolicyConfig::default()
        };
        let mut policy = AdaptivePolicy::new(config, 2.0);
        assert!(policy.migration_features().post_copy);
        let events = replay_policy(&mut policy, &snapshots);
        let post_copy: Vec<_> = events
            .iter()
            .filter(|e| e.action == PolicyAction::StartPostCopy)
            .collect();
        assert_eq!(post_copy.len(), 1, "{events:?}");
        let fourth_stall = snapshots
            .last()
            .unwrap()
            .closed_iterations
            .iter()
            .filter(|c| c.stalled)
            .nth(3)
            .unwrap();
        assert_eq!(post_copy[0].at_ms, fourth_stall.closed_at_ms);
        assert!(
            post_copy[0].reason.contains("4 stalled passes"),
            "{}",
            post_copy[0].reason
        );
        // The ladder was climbed first.
        let post_copy_index = events
            .iter()
            .position(|e| e.action == PolicyAction::StartPostCopy)
            .unwrap();
        assert!(downtime_changes(&events[..post_copy_index]).contains(&(Some(1000), 2000)));
    }

    #[test]
    fn nothing_happens_once_in_post_copy() {
        let mut policy = AdaptivePolicy::new(AdaptivePolicyConfig::default(), 2.0);
        let mut progress = ProgressModel::default().snapshot();
        progress.phase = MigrationPhase::PostCopy;
        progress.elapsed_ms = 10_000_000;
        assert!(policy.on_sample(&progress).is_empty());
    }

    #[test]
    fn completion_timeout_is_800_s_per_gib() {
        let mut policy =
            AdaptivePolicy::new(AdaptivePolicyConfig::default(), data_gib(8 * GIB, &[]));
        assert_eq!(policy.completion_timeout_seconds(), 6400);
        let mut progress = ProgressModel::default().snapshot();
        progress.phase = MigrationPhase::CopyingMemory { iteration: 40 };
        progress.data_remaining_bytes = Some(410 * MIB);
        progress.elapsed_ms = 6_400_000;
        assert!(policy.on_sample(&progress).is_empty());
        progress.elapsed_ms = 6_400_001;
        let events = policy.on_sample(&progress);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, PolicyAction::Abort);
        assert!(
            events[0]
                .reason
                .contains("6400 s (800 s per GiB × 8.0 GiB), 410 MiB still to send"),
            "{}",
            events[0].reason
        );
        progress.elapsed_ms = 7_000_000;
        assert!(policy.on_sample(&progress).is_empty());

        let force = AdaptivePolicyConfig {
            timeout_action: TimeoutAction::ForceComplete,
            ..AdaptivePolicyConfig::default()
        };
        let mut policy = AdaptivePolicy::new(force, 2.0);
        progress.elapsed_ms = 1_600_001;
        assert_eq!(policy.on_sample(&progress)[0].action, PolicyAction::Pause);
    }

    #[test]
    fn ladder_for_the_tui() {
        let policy = AdaptivePolicy::new(AdaptivePolicyConfig::default(), 2.0);
        let ladder = policy.downtime_ladder();
        assert_eq!(ladder.len(), 4);
        assert_eq!(ladder[0].trigger, StepTrigger::AtStart);
        assert_eq!(
            ladder[3],
            DowntimeStep {
                max_downtime_ms: 2000,
                trigger: StepTrigger::AfterStalledIterations {
                    stalled_iterations: 3
                }
            }
        );
    }

    /// Both policies over every trace in tests/fixtures (lab recordings included once added):
    /// decisions in time order, each one-shot action at most once, nothing after the end.
    #[test]
    fn both_policies_behave_on_every_fixture() {
        for path in trace_files(&fixtures_dir()) {
            let trace = read_trace(&path).unwrap();
            let snapshots = replay(&trace.samples, ProgressConfig::default());
            let total = trace
                .samples
                .iter()
                .find_map(|s| s.memory_total_bytes)
                .unwrap_or(GIB);
            let gib = data_gib(total, &[]);
            let permissive = AdaptivePolicyConfig {
                permit_post_copy: true,
                ..AdaptivePolicyConfig::default()
            };
            let mut policies: Vec<Box<dyn MigrationPolicy>> = vec![
                Box::new(AdaptivePolicy::new(AdaptivePolicyConfig::default(), gib)),
                Box::new(AdaptivePolicy::new(permissive, gib)),
                Box::new(NovaPolicy::new(NovaPolicyConfig::default(), gib)),
            ];
            let end_ms = snapshots
                .iter()
                .find(|s| s.phase.is_terminal())
                .map(|s| s.elapsed_ms);
            for policy in policies.iter_mut() {
                let events = replay_policy(policy.as_mut(), &snapshots);
                assert!(
                    events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
                    "{path:?} {}: out of order",
                    policy.name()
                );
                for one_shot in [PolicyAction::StartPostCopy, PolicyAction::Abort] {
                    assert!(events.iter().filter(|e| e.action == one_shot).count() <= 1);
                }
                if let Some(end_ms) = end_ms {
                    assert!(events.iter().all(|e| e.at_ms < end_ms), "{path:?}");
                }
                assert!(policy.current_step() < policy.downtime_ladder().len());
                assert!(events.iter().all(|e| !e.reason.is_empty()));
            }
        }
    }

    fn post_copy_decisions(trace: &str, config: AdaptivePolicyConfig) -> Vec<PolicyEvent> {
        let samples = load_trace(fixtures_dir().join(trace)).unwrap();
        let snapshots = replay(&samples, ProgressConfig::default());
        let mut policy = AdaptivePolicy::new(config, 2.0);
        replay_policy(&mut policy, &snapshots)
            .into_iter()
            .filter(|e| e.action == PolicyAction::StartPostCopy)
            .collect()
    }

    #[test]
    fn projection_sends_the_real_busy_guest_to_post_copy_at_the_start_of_its_second_pass() {
        let permitted = AdaptivePolicyConfig {
            permit_post_copy: true,
            ..AdaptivePolicyConfig::default()
        };
        // Recorded on the lab: pass 2 starts at 6.1 s with 337 MiB to send, dirty 85 MiB/s
        // against 100 MiB/s; reaching 200 MiB (2000 ms at 100 MiB/s) would take 3.2 passes.
        for trace in [
            "lab-busy-512mib-bench-adaptive-postcopy-1.jsonl",
            "lab-busy-512mib-bench-adaptive-1.jsonl",
        ] {
            let decisions = post_copy_decisions(trace, permitted.clone());
            assert_eq!(decisions.len(), 1, "{trace}: one switch, {decisions:?}");
            assert!(decisions[0].at_ms < 7_000, "{trace}: {decisions:?}");
            assert!(
                decisions[0].reason.starts_with("pass 2 starts with"),
                "{}",
                decisions[0].reason
            );
            assert!(decisions[0].reason.contains("more passes (limit 2)"));
        }
        let off = AdaptivePolicyConfig {
            post_copy_when_projected_passes_exceed: 0,
            ..permitted
        };
        let decisions = post_copy_decisions("lab-busy-512mib-bench-adaptive-postcopy-1.jsonl", off);
        assert!(
            decisions.iter().all(|d| d.at_ms > 9_000),
            "with the projection off, stalled passes decide later: {decisions:?}"
        );
        assert!(post_copy_decisions(
            "lab-busy-512mib-bench-adaptive-1.jsonl",
            AdaptivePolicyConfig::default()
        )
        .is_empty());
    }

    #[test]
    fn a_converging_guest_is_never_sent_to_post_copy() {
        let permitted = AdaptivePolicyConfig {
            permit_post_copy: true,
            ..AdaptivePolicyConfig::default()
        };
        assert!(post_copy_decisions("synthetic-idle-1gib-converging.jsonl", permitted).is_empty());
    }

    #[test]
    fn projected_passes_follow_the_dirty_to_transfer_ratio() {
        assert_eq!(projected_passes(100, 200, 50, 100), Some(0.0));
        assert_eq!(projected_passes(400, 100, 100, 100), Some(f64::INFINITY));
        let half = projected_passes(400, 100, 50, 100).unwrap();
        assert!((half - 2.0).abs() < 1e-9, "{half}");
        assert_eq!(projected_passes(400, 100, 0, 100), Some(1.0));
        assert_eq!(projected_passes(400, 100, 50, 0), None);
    }
}
