//! Pure migration policies: downtime ladders (nova, adaptive), stall detection, timeout actions.
//!
//! A policy watches [`MigrationProgress`] snapshots and answers with [`PolicyEvent`]s: what to
//! do to the running migration and why, in words an operator reads in the event log. The engine
//! carries the actions out through the libvirt adapter; the policy never calls anything.

pub mod adaptive;
pub mod nova;

use serde::{Deserialize, Serialize};

use crate::progress::MigrationProgress;

pub use adaptive::{AdaptivePolicy, AdaptivePolicyConfig};
pub use nova::{NovaPolicy, NovaPolicyConfig};

/// Something to do to the running migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum PolicyAction {
    /// `virDomainMigrateSetMaxDowntime`. `from_ms` is what the policy last set (None before).
    SetMaxDowntime { from_ms: Option<u64>, to_ms: u64 },
    /// Start the migration with `VIR_MIGRATE_AUTO_CONVERGE`: libvirt cannot switch it on
    /// mid-flight, so policies emit this from [`MigrationPolicy::on_start`] only.
    EnableAutoConverge,
    /// `virDomainMigrateStartPostCopy` (the migration must have been started with
    /// `VIR_MIGRATE_POSTCOPY`, see [`MigrationFeatures`]).
    StartPostCopy,
    /// Pause the guest so the remaining memory stops changing (Nova's force-complete without
    /// post-copy); the engine resumes it if the migration then fails.
    Pause,
    /// `virDomainAbortJob`: the guest keeps running on the source.
    Abort,
}

/// One decision, timed and explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyEvent {
    /// ms since the migration started (the snapshot's `elapsed_ms`).
    pub at_ms: u64,
    pub action: PolicyAction,
    /// e.g. "iteration 4 stalled: 410 MiB remaining ≥ low mark 380 MiB → max downtime 300 → 500 ms".
    pub reason: String,
}

/// When a downtime step applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "trigger")]
pub enum StepTrigger {
    /// Set before or at the start of the migration.
    AtStart,
    /// Nova: once this much time has passed.
    AfterElapsed { elapsed_ms: u64 },
    /// Adaptive: after this many stalled memory passes.
    AfterStalledIterations { stalled_iterations: u32 },
}

/// One rung of a downtime ladder, for the TUI to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DowntimeStep {
    pub max_downtime_ms: u64,
    pub trigger: StepTrigger,
}

/// Migration flags a policy needs at start, because libvirt cannot add them later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MigrationFeatures {
    /// `VIR_MIGRATE_AUTO_CONVERGE`.
    pub auto_converge: bool,
    /// `VIR_MIGRATE_POSTCOPY`: allows a later `StartPostCopy`.
    pub post_copy: bool,
}

/// What to do when the completion timeout expires (Nova's `live_migration_timeout_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutAction {
    #[default]
    Abort,
    /// Post-copy when permitted, else pause the guest (Nova migration.py `run_tasks`).
    ForceComplete,
}

/// The common face of every policy, so the engine and the TUI treat them alike.
pub trait MigrationPolicy {
    /// "nova" or "adaptive", for the event log and the TUI.
    fn name(&self) -> &'static str;
    /// Flags for the migrate call.
    fn migration_features(&self) -> MigrationFeatures;
    /// Decisions taken before the first sample: initial max downtime, auto-converge.
    fn on_start(&mut self) -> Vec<PolicyEvent>;
    /// A restarted ferry takes over a running migration: pick up from the max downtime in
    /// force (None if it could not be read) instead of starting the ladder again.
    fn on_resume(&mut self, current_max_downtime_ms: Option<u64>);
    /// Decisions after one more progress snapshot. Never repeats an action already taken.
    fn on_sample(&mut self, progress: &MigrationProgress) -> Vec<PolicyEvent>;
    /// The whole ladder, first rung first.
    fn downtime_ladder(&self) -> Vec<DowntimeStep>;
    /// Index into [`Self::downtime_ladder`] of the rung in force.
    fn current_step(&self) -> usize;
}

/// Which policy the operator chose, with its settings (as the config file will hold it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum PolicyChoice {
    Adaptive(AdaptivePolicyConfig),
    Nova(NovaPolicyConfig),
}

impl Default for PolicyChoice {
    fn default() -> Self {
        PolicyChoice::Adaptive(AdaptivePolicyConfig::default())
    }
}

impl PolicyChoice {
    /// Builds the policy for one migration. `data_gib` is Nova's "GiB of RAM + disk to
    /// transfer" ([`nova::data_gib`]); both policies scale their timeouts by it.
    pub fn build(&self, data_gib: f64) -> Box<dyn MigrationPolicy + Send> {
        match self {
            PolicyChoice::Adaptive(config) => {
                Box::new(AdaptivePolicy::new(config.clone(), data_gib))
            }
            PolicyChoice::Nova(config) => Box::new(NovaPolicy::new(config.clone(), data_gib)),
        }
    }
}

/// Replays snapshots through a policy, start included: every decision in order.
pub fn replay_policy(
    policy: &mut dyn MigrationPolicy,
    snapshots: &[MigrationProgress],
) -> Vec<PolicyEvent> {
    let mut events = policy.on_start();
    for progress in snapshots {
        events.extend(policy.on_sample(progress));
    }
    events
}
