//! From what the operator asked for (CLI flags or the launch dialog) and what the prechecks
//! found, to the plan the engine runs. Pure: config, facts and options in, plan out.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::live::{HostTarget, LiveMigrationPlan};
use crate::config::{Config, MigrationDefaults, PolicyName};
use crate::policy::{PolicyChoice, TimeoutAction};
use crate::precheck::{BlockMigrationChoice, InstanceState, PrecheckFacts, PrecheckReport};

/// The operator's choices; `None` means "the config's default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveOptions {
    pub policy: Option<PolicyName>,
    /// MiB/s; 0 means unlimited.
    pub bandwidth_mib_per_second: Option<u64>,
    /// The highest max downtime the policy may set: the top of adaptive's ladder, Nova's
    /// `live_migration_downtime`.
    pub max_downtime_ms: Option<u64>,
    /// Permit post-copy (force-complete and the policy may switch to it).
    pub post_copy: Option<bool>,
    /// Auto-converge (vCPU throttling when the guest dirties faster than the link).
    pub auto_converge: Option<bool>,
    pub block: BlockMigrationChoice,
    pub timeout_action: Option<TimeoutAction>,
    /// Nova's completion timeout rule, seconds per GiB of data; 0 disables it.
    pub completion_timeout_seconds_per_gib: Option<u64>,
}

/// The policy the operator chose, with the config's thresholds and the options laid over them.
pub fn policy_choice(defaults: &MigrationDefaults, options: &LiveOptions) -> PolicyChoice {
    match options.policy.unwrap_or(defaults.policy) {
        PolicyName::Adaptive => {
            let mut config = defaults.adaptive.clone();
            if let Some(ceiling_ms) = options.max_downtime_ms {
                config.downtime_ladder_ms = ladder_up_to(&config.downtime_ladder_ms, ceiling_ms);
            }
            config.permit_post_copy = options.post_copy.unwrap_or(config.permit_post_copy);
            config.auto_converge = options.auto_converge.unwrap_or(config.auto_converge);
            if let Some(action) = options.timeout_action {
                config.timeout_action = action;
            }
            if let Some(seconds) = options.completion_timeout_seconds_per_gib {
                config.completion_timeout_seconds_per_gib = seconds;
            }
            PolicyChoice::Adaptive(config)
        }
        PolicyName::Nova => {
            let mut config = defaults.nova.clone();
            if let Some(downtime_ms) = options.max_downtime_ms {
                config.downtime_ms = downtime_ms;
            }
            config.permit_post_copy = options.post_copy.unwrap_or(config.permit_post_copy);
            config.permit_auto_converge =
                options.auto_converge.unwrap_or(config.permit_auto_converge);
            if let Some(action) = options.timeout_action {
                config.timeout_action = action;
            }
            if let Some(seconds) = options.completion_timeout_seconds_per_gib {
                config.completion_timeout_seconds_per_gib = seconds;
            }
            PolicyChoice::Nova(config)
        }
    }
}

/// The rungs of `ladder_ms` below `ceiling_ms`, then the ceiling itself: with the default
/// ladder, 2000 keeps 300 → 500 → 1000 → 2000, 800 gives 300 → 500 → 800, 5000 adds a rung.
pub fn ladder_up_to(ladder_ms: &[u64], ceiling_ms: u64) -> Vec<u64> {
    let mut ladder: Vec<u64> = ladder_ms
        .iter()
        .copied()
        .filter(|rung| *rung < ceiling_ms)
        .collect();
    ladder.push(ceiling_ms);
    ladder
}

/// Whether the chosen policy may switch to post-copy (so the migration starts with the
/// POSTCOPY flag, and force-complete means post-copy rather than pause).
pub fn post_copy_permitted(policy: &PolicyChoice) -> bool {
    match policy {
        PolicyChoice::Adaptive(config) => config.permit_post_copy,
        PolicyChoice::Nova(config) => config.permit_post_copy,
    }
}

/// The engine's plan for a migration the prechecks passed. `None` for a host the config does
/// not know (the prechecks refuse that first).
pub fn live_plan(
    config: &Config,
    facts: &PrecheckFacts,
    report: &PrecheckReport,
    options: &LiveOptions,
) -> Option<LiveMigrationPlan> {
    let target = |name: &str| HostTarget::from_config(config, name);
    let policy = policy_choice(&config.migration, options);
    let bandwidth = options
        .bandwidth_mib_per_second
        .unwrap_or(config.migration.bandwidth_mib_per_second);
    let copied: Vec<(String, u64)> = facts
        .disks
        .iter()
        .filter(|d| report.plan.disks_to_copy.contains(&d.target))
        .map(|d| (d.target.clone(), d.size_bytes))
        .collect();
    Some(LiveMigrationPlan {
        instance_name: facts.instance_name.clone(),
        source: target(&facts.source_host)?,
        destination: target(&facts.destination_host)?,
        post_copy_permitted: post_copy_permitted(&policy),
        policy,
        instance_memory_bytes: facts.instance_memory_bytes,
        bandwidth_mib_per_second: (bandwidth > 0).then_some(bandwidth),
        block_migration_disks: copied.iter().map(|(target, _)| target.clone()).collect(),
        block_migration_disk_sizes_bytes: copied.iter().map(|(_, size)| *size).collect(),
        guest_was_paused: facts.instance_state == InstanceState::Paused,
        poll_interval: Duration::from_millis(config.migration.poll_interval_ms),
        call_timeout: config.call_timeout(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_ends_the_adaptive_ladder_and_flags_override_the_config() {
        let defaults = MigrationDefaults::default();
        let options = LiveOptions {
            max_downtime_ms: Some(800),
            post_copy: Some(true),
            timeout_action: Some(TimeoutAction::ForceComplete),
            completion_timeout_seconds_per_gib: Some(15),
            ..LiveOptions::default()
        };
        let PolicyChoice::Adaptive(adaptive) = policy_choice(&defaults, &options) else {
            panic!("adaptive is the default policy");
        };
        assert_eq!(adaptive.downtime_ladder_ms, vec![300, 500, 800]);
        assert!(adaptive.permit_post_copy);
        assert_eq!(adaptive.timeout_action, TimeoutAction::ForceComplete);
        assert_eq!(adaptive.completion_timeout_seconds_per_gib, 15);
        assert!(adaptive.validate().is_ok());

        let nova = policy_choice(
            &defaults,
            &LiveOptions {
                policy: Some(PolicyName::Nova),
                max_downtime_ms: Some(800),
                ..LiveOptions::default()
            },
        );
        let PolicyChoice::Nova(nova) = nova else {
            panic!("asked for nova");
        };
        assert_eq!(nova.downtime_ms, 800);
        assert!(!nova.permit_post_copy);
        assert!(!post_copy_permitted(&PolicyChoice::Nova(nova)));
    }

    #[test]
    fn a_ceiling_below_every_rung_leaves_a_one_rung_ladder() {
        let options = LiveOptions {
            max_downtime_ms: Some(100),
            ..LiveOptions::default()
        };
        let PolicyChoice::Adaptive(adaptive) =
            policy_choice(&MigrationDefaults::default(), &options)
        else {
            panic!("adaptive is the default policy");
        };
        assert_eq!(adaptive.downtime_ladder_ms, vec![100]);
    }
}
