//! What the operator asked for, as plain values. Keys become actions in [`super::app::App`];
//! the runtime takes them with `App::take_actions` and turns them into engine commands. Nothing
//! here does I/O, so what a launch will do (its summary line) and what the engine is given (its
//! plan) come from the same functions and cannot disagree.

use std::time::Duration;

use crate::config::{MigrationDefaults, PolicyName};
use crate::engine::cold::resize::new_size_words;
use crate::engine::cold::{ColdOptions, NewSize};
use crate::engine::live::{HostTarget, LiveMigrationPlan, OperatorCommand};
use crate::engine::service::nova::NovaRequest;
use crate::model::migration::{MigrationId, MigrationKind};
use crate::model::units::format_bytes;
use crate::model::HostName;
use crate::policy::nova::{resolve_timeout_action, MIN_DOWNTIME_MS};
use crate::policy::{AdaptivePolicyConfig, PolicyAction, PolicyChoice, TimeoutAction};
use crate::precheck::{BlockMigrationChoice, MigrationPlan};

use super::state::instances::InstanceKey;

/// Something for the runtime to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Gather precheck facts for each destination and hand the reports back through
    /// `App::on_precheck_reports` with the same `request_id`, one host or all at once.
    RequestPrechecks(PrecheckRequest),
    /// Queue a live migration; the runtime answers with `MigrationChange::QueuedLive`.
    LaunchLiveMigration(LaunchRequest),
    /// Only produced when `App::cold_migration_available` is set; the runtime answers with
    /// `MigrationChange::QueuedCold` once the history holds it.
    LaunchColdMigration(ColdLaunchRequest),
    /// Stop a running cold migration and put the instance back on its source.
    AbortCold { id: MigrationId },
    /// Answer a cold migration awaiting confirm: `keep` confirms (removes the source copy),
    /// else revert (back to the source).
    SettleCold { id: MigrationId, keep: bool },
    /// Send a command to a queued or running migration.
    Operator {
        id: MigrationId,
        command: OperatorCommand,
    },
    /// Ask a Nova cloud: its pre-flight, a launch, abort, force-complete, confirm, revert.
    Nova(NovaRequest),
}

/// Prechecks for one instance against every candidate destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecheckRequest {
    /// Reports carrying another id belong to an earlier request (the dialog was closed, or
    /// the block-migration choice changed since) and are dropped.
    pub request_id: u64,
    pub kind: MigrationKind,
    pub instance: InstanceKey,
    pub instance_name: String,
    pub destinations: Vec<HostName>,
    /// The verdicts depend on it (Nova's block-migration checks), so a new choice asks again.
    pub block_migration: BlockMigrationChoice,
    /// Cold: the new size typed in the dialog; the verdicts (and whether the guest's own host
    /// is a destination) depend on it.
    pub new_size: Option<NewSize>,
}

/// The two policies an operator can pick in the launch dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Adaptive,
    Nova,
}

impl PolicyKind {
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Adaptive => "adaptive",
            PolicyKind::Nova => "nova",
        }
    }

    pub fn other(self) -> PolicyKind {
        match self {
            PolicyKind::Adaptive => PolicyKind::Nova,
            PolicyKind::Nova => PolicyKind::Adaptive,
        }
    }

    /// The config's name for it.
    pub fn config_name(self) -> PolicyName {
        match self {
            PolicyKind::Adaptive => PolicyName::Adaptive,
            PolicyKind::Nova => PolicyName::Nova,
        }
    }

    pub fn of(name: PolicyName) -> PolicyKind {
        match name {
            PolicyName::Adaptive => PolicyKind::Adaptive,
            PolicyName::Nova => PolicyKind::Nova,
        }
    }

    /// The policy's top of the ladder in `[migration]`: adaptive's last rung, Nova's
    /// `live_migration_downtime`.
    pub fn downtime_ceiling_ms(self, defaults: &MigrationDefaults) -> u64 {
        match self {
            PolicyKind::Adaptive => defaults
                .adaptive
                .downtime_ladder_ms
                .last()
                .copied()
                .unwrap_or(2000),
            PolicyKind::Nova => defaults.nova.downtime_ms,
        }
    }

    /// Adaptive's `auto_converge`, Nova's `permit_auto_converge` (off in Nova's defaults).
    pub fn auto_converge(self, defaults: &MigrationDefaults) -> bool {
        match self {
            PolicyKind::Adaptive => defaults.adaptive.auto_converge,
            PolicyKind::Nova => defaults.nova.permit_auto_converge,
        }
    }

    fn post_copy_permitted(self, defaults: &MigrationDefaults) -> bool {
        match self {
            PolicyKind::Adaptive => defaults.adaptive.permit_post_copy,
            PolicyKind::Nova => defaults.nova.permit_post_copy,
        }
    }

    fn timeout_action(self, defaults: &MigrationDefaults) -> TimeoutAction {
        match self {
            PolicyKind::Adaptive => defaults.adaptive.timeout_action,
            PolicyKind::Nova => defaults.nova.timeout_action,
        }
    }
}

/// The settings the launch dialog edits, over the config's `[migration]` table they start
/// from (which also holds the thresholds the dialog does not show).
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchOptions {
    pub policy: PolicyKind,
    /// None: no limit (libvirt's default).
    pub bandwidth_mib_per_second: Option<u64>,
    /// The highest max downtime the policy may reach.
    pub max_downtime_ceiling_ms: u64,
    pub post_copy_permitted: bool,
    pub auto_converge: bool,
    pub block_migration: BlockMigrationChoice,
    pub timeout_action: TimeoutAction,
    /// The config's `[migration]`: what the options started from, and the thresholds of the
    /// policy the engine will run (rungs below the ceiling, completion timeout).
    pub defaults: MigrationDefaults,
}

impl LaunchOptions {
    /// What the config's `[migration]` table says, as `ferry migrate` without flags would
    /// run it: the dialog opens with these.
    pub fn from_config(defaults: &MigrationDefaults) -> LaunchOptions {
        let mut options = LaunchOptions::for_policy(PolicyKind::of(defaults.policy), defaults);
        options.bandwidth_mib_per_second =
            Some(defaults.bandwidth_mib_per_second).filter(|mib| *mib > 0);
        options
    }

    /// `policy` as the config sets it up.
    pub fn for_policy(policy: PolicyKind, defaults: &MigrationDefaults) -> LaunchOptions {
        LaunchOptions {
            policy,
            bandwidth_mib_per_second: None,
            max_downtime_ceiling_ms: policy.downtime_ceiling_ms(defaults),
            post_copy_permitted: policy.post_copy_permitted(defaults),
            auto_converge: policy.auto_converge(defaults),
            block_migration: BlockMigrationChoice::Auto,
            timeout_action: policy.timeout_action(defaults),
            defaults: defaults.clone(),
        }
    }

    /// `policy` with the built-in defaults (no config file).
    pub fn defaults_for(policy: PolicyKind) -> LaunchOptions {
        LaunchOptions::for_policy(policy, &MigrationDefaults::default())
    }

    /// Why these options cannot be launched, in words the dialog shows.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_downtime_ceiling_ms < MIN_DOWNTIME_MS {
            return Err(format!(
                "max downtime {} ms is below {MIN_DOWNTIME_MS} ms, Nova's minimum for live_migration_downtime",
                self.max_downtime_ceiling_ms
            ));
        }
        if self.bandwidth_mib_per_second == Some(0) {
            return Err(
                "bandwidth 0 MiB/s would never move a page; leave it empty for no limit".into(),
            );
        }
        Ok(())
    }

    /// The policy and its settings, exactly as the engine will run them: the engine's own
    /// rule lays these options over the config's thresholds.
    pub fn policy_choice(&self) -> PolicyChoice {
        crate::engine::options::policy_choice(&self.defaults, &self.live_options())
    }

    /// The options as the engine takes them; the config's thresholds fill in the rest.
    pub fn live_options(&self) -> crate::engine::options::LiveOptions {
        crate::engine::options::LiveOptions {
            policy: Some(self.policy.config_name()),
            bandwidth_mib_per_second: Some(self.bandwidth_mib_per_second.unwrap_or(0)),
            max_downtime_ms: Some(self.max_downtime_ceiling_ms),
            post_copy: Some(self.post_copy_permitted),
            auto_converge: Some(self.auto_converge),
            block: self.block_migration,
            timeout_action: Some(self.timeout_action),
            completion_timeout_seconds_per_gib: None,
        }
    }
}

/// The default adaptive rungs below `ceiling_ms`, then the ceiling itself: 2000 gives the
/// default 300 → 500 → 1000 → 2000, 800 gives 300 → 500 → 800, 5000 adds a rung above 2000.
pub fn adaptive_ladder_up_to(ceiling_ms: u64) -> Vec<u64> {
    crate::engine::options::ladder_up_to(
        &AdaptivePolicyConfig::default().downtime_ladder_ms,
        ceiling_ms,
    )
}

/// What follows the route in a summary when `auto` chose the destination.
fn route_note(destination_chosen_automatically: bool) -> &'static str {
    if destination_chosen_automatically {
        " (auto: most free memory)"
    } else {
        ""
    }
}

/// A confirmed live migration, before the runtime queues it.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRequest {
    pub instance: InstanceKey,
    pub instance_name: String,
    pub instance_memory_bytes: u64,
    pub destination: HostName,
    /// The operator picked `auto` (the passing destination with the most free memory).
    pub destination_chosen_automatically: bool,
    pub options: LaunchOptions,
    /// The precheck's plan for this destination: which disks block migration copies.
    pub copy_plan: MigrationPlan,
}

impl LaunchRequest {
    pub fn source(&self) -> &HostName {
        &self.instance.host
    }

    pub fn policy_choice(&self) -> PolicyChoice {
        self.options.policy_choice()
    }

    /// The options as the engine takes them; the config's thresholds fill in the rest.
    pub fn live_options(&self) -> crate::engine::options::LiveOptions {
        self.options.live_options()
    }

    /// One line that says exactly what confirming does, e.g. "live-migrate busy hv1 → hv2,
    /// adaptive, ≤100 MiB/s, downtime ≤ 2000 ms, auto-converge, no post-copy, abort at
    /// timeout".
    pub fn summary(&self) -> String {
        let options = &self.options;
        let choice = self.policy_choice();
        let mut parts = vec![format!(
            "live-migrate {} {} → {}{}",
            self.instance_name,
            self.source(),
            self.destination,
            route_note(self.destination_chosen_automatically)
        )];
        parts.push(options.policy.name().to_string());
        parts.push(match options.bandwidth_mib_per_second {
            Some(mib) => format!("≤{mib} MiB/s"),
            None => "no bandwidth limit".to_string(),
        });
        parts.push(format!("downtime ≤ {} ms", options.max_downtime_ceiling_ms));
        // What the policy really starts with: Nova drops auto-converge when post-copy is
        // permitted (nova/conf/libvirt.py).
        let features = choice.build(1.0).migration_features();
        if features.auto_converge {
            parts.push("auto-converge".to_string());
        }
        parts.push(match (&choice, options.post_copy_permitted) {
            (_, false) => "no post-copy".to_string(),
            (PolicyChoice::Adaptive(config), true) => format!(
                "post-copy after {} stalled passes",
                config.post_copy_after_stalled_iterations
            ),
            (PolicyChoice::Nova(_), true) => "post-copy only on force-complete".to_string(),
        });
        if self.copy_plan.block_migration {
            parts.push(format!(
                "copying disks {} ({})",
                self.copy_plan.disks_to_copy.join(", "),
                format_bytes(self.copy_plan.bytes_to_copy)
            ));
        }
        parts.push(
            match resolve_timeout_action(options.timeout_action, options.post_copy_permitted) {
                PolicyAction::StartPostCopy => "post-copy at timeout",
                PolicyAction::Pause => "pause the guest at timeout",
                _ => "abort at timeout",
            }
            .to_string(),
        );
        parts.join(", ")
    }

    /// The engine's plan. The runtime supplies what the TUI does not hold: the hosts' URIs,
    /// the sizes of the copied disks (Nova's data_gb counts each), the poll interval and the
    /// per-call timeout.
    pub fn live_plan(
        &self,
        source_uri: String,
        destination_uri: String,
        copied_disk_sizes_bytes: Vec<u64>,
        poll_interval: Duration,
        call_timeout: Duration,
    ) -> LiveMigrationPlan {
        let block = self.copy_plan.block_migration;
        LiveMigrationPlan {
            instance_name: self.instance_name.clone(),
            source: HostTarget {
                name: self.source().to_string(),
                uri: source_uri,
            },
            destination: HostTarget {
                name: self.destination.to_string(),
                uri: destination_uri,
            },
            policy: self.policy_choice(),
            instance_memory_bytes: self.instance_memory_bytes,
            bandwidth_mib_per_second: self.options.bandwidth_mib_per_second,
            post_copy_permitted: self.options.post_copy_permitted,
            guest_was_paused: false,
            block_migration_disks: if block {
                self.copy_plan.disks_to_copy.clone()
            } else {
                Vec::new()
            },
            block_migration_disk_sizes_bytes: if block {
                copied_disk_sizes_bytes
            } else {
                Vec::new()
            },
            poll_interval,
            call_timeout,
        }
    }
}

/// A confirmed cold migration: which instance, where to, and how hard to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColdLaunchRequest {
    pub instance: InstanceKey,
    pub instance_name: String,
    pub destination: HostName,
    /// The operator picked `auto` (the passing destination with the most free memory).
    pub destination_chosen_automatically: bool,
    /// Power the guest off hard if it ignores the ACPI shutdown for `shutdown_timeout_seconds`.
    pub hard_power_off_allowed: bool,
    pub shutdown_timeout_seconds: u64,
    /// Cap on the disk copy; None copies as fast as the hosts go.
    pub copy_bandwidth_mib_per_second: Option<u64>,
    /// A resize: the new size; the destination may then be the guest's own host.
    pub new_size: Option<NewSize>,
}

impl ColdLaunchRequest {
    pub fn source(&self) -> &HostName {
        &self.instance.host
    }

    /// The options as the engine takes them; the rest are the engine's defaults.
    pub fn cold_options(&self) -> ColdOptions {
        ColdOptions {
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_seconds),
            hard_power_off_allowed: self.hard_power_off_allowed,
            copy_bandwidth_mib_per_second: self.copy_bandwidth_mib_per_second,
            new_size: self.new_size,
            ..ColdOptions::default()
        }
    }

    /// One line that says exactly what confirming does, e.g. "cold-migrate db hv1 → hv2: shut
    /// down (ACPI, 60 s, no hard power off), copy the local disks at full speed, verify, start
    /// on hv2; the source copy is kept until C confirm".
    pub fn summary(&self) -> String {
        let shutdown = format!(
            "shut down (ACPI, {} s, {})",
            self.shutdown_timeout_seconds,
            if self.hard_power_off_allowed {
                "then hard power off"
            } else {
                "no hard power off"
            }
        );
        if let Some(new_size) = self.new_size.filter(|n| !n.is_empty()) {
            if &self.destination == self.source() {
                return format!(
                    "resize {} in place on {} to {}: {shutdown}, define the new size, start it; \
                     the old definition is kept until C confirm (R reverts to it)",
                    self.instance_name,
                    self.destination,
                    new_size_words(&new_size)
                );
            }
            return format!(
                "resize {} {} → {}{} to {}: {shutdown}, copy the local disks {}, verify, start \
                 on {} at the new size; the source copy is kept until C confirm",
                self.instance_name,
                self.source(),
                self.destination,
                route_note(self.destination_chosen_automatically),
                new_size_words(&new_size),
                self.copy_speed_words(),
                self.destination
            );
        }
        format!(
            "cold-migrate {} {} → {}{}: shut down (ACPI, {} s, {}), copy the local disks {}, \
             verify, start on {}; the source copy is kept until C confirm",
            self.instance_name,
            self.source(),
            self.destination,
            route_note(self.destination_chosen_automatically),
            self.shutdown_timeout_seconds,
            if self.hard_power_off_allowed {
                "then hard power off"
            } else {
                "no hard power off"
            },
            self.copy_speed_words(),
            self.destination
        )
    }

    fn copy_speed_words(&self) -> String {
        match self.copy_bandwidth_mib_per_second {
            Some(mib) => format!("at ≤{mib} MiB/s"),
            None => "at full speed".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(options: LaunchOptions) -> LaunchRequest {
        LaunchRequest {
            instance: InstanceKey {
                host: HostName::parse("hv1").unwrap(),
                uuid: "u-1".into(),
                backend: crate::inventory::Backend::Libvirt,
            },
            instance_name: "busy".into(),
            instance_memory_bytes: 512 << 20,
            destination: HostName::parse("hv2").unwrap(),
            destination_chosen_automatically: false,
            options,
            copy_plan: MigrationPlan {
                block_migration: false,
                disks_to_copy: vec![],
                bytes_to_copy: 0,
            },
        }
    }

    #[test]
    fn adaptive_ladder_keeps_default_rungs_below_the_ceiling() {
        assert_eq!(adaptive_ladder_up_to(2000), [300, 500, 1000, 2000]);
        assert_eq!(adaptive_ladder_up_to(800), [300, 500, 800]);
        assert_eq!(adaptive_ladder_up_to(5000), [300, 500, 1000, 2000, 5000]);
        assert_eq!(adaptive_ladder_up_to(100), [100]);
    }

    #[test]
    fn summary_says_what_the_policy_will_do() {
        let mut options = LaunchOptions::defaults_for(PolicyKind::Adaptive);
        options.bandwidth_mib_per_second = Some(100);
        options.post_copy_permitted = true;
        assert_eq!(
            request(options.clone()).summary(),
            "live-migrate busy hv1 → hv2, adaptive, ≤100 MiB/s, downtime ≤ 2000 ms, \
             auto-converge, post-copy after 4 stalled passes, abort at timeout"
        );
        // Nova with post-copy permitted drops auto-converge, as Nova does.
        let mut nova = LaunchOptions::defaults_for(PolicyKind::Nova);
        nova.auto_converge = true;
        nova.post_copy_permitted = true;
        nova.timeout_action = TimeoutAction::ForceComplete;
        assert_eq!(
            request(nova).summary(),
            "live-migrate busy hv1 → hv2, nova, no bandwidth limit, downtime ≤ 500 ms, \
             post-copy only on force-complete, post-copy at timeout"
        );
        options.post_copy_permitted = false;
        options.timeout_action = TimeoutAction::ForceComplete;
        assert!(request(options)
            .summary()
            .ends_with("no post-copy, pause the guest at timeout"));
    }

    #[test]
    fn the_plan_carries_every_option() {
        let mut options = LaunchOptions::defaults_for(PolicyKind::Adaptive);
        options.bandwidth_mib_per_second = Some(100);
        options.max_downtime_ceiling_ms = 800;
        options.post_copy_permitted = true;
        let mut launch = request(options);
        launch.copy_plan = MigrationPlan {
            block_migration: true,
            disks_to_copy: vec!["vda".into()],
            bytes_to_copy: 10 << 30,
        };
        let plan = launch.live_plan(
            "qemu+ssh://root@hv1/system".into(),
            "qemu+ssh://root@hv2/system".into(),
            vec![10 << 30],
            Duration::from_millis(500),
            Duration::from_secs(15),
        );
        assert_eq!(plan.bandwidth_mib_per_second, Some(100));
        assert!(plan.post_copy_permitted);
        assert_eq!(plan.block_migration_disks, ["vda"]);
        assert_eq!(plan.block_migration_disk_sizes_bytes, [10 << 30]);
        let PolicyChoice::Adaptive(config) = &plan.policy else {
            panic!("adaptive expected");
        };
        assert_eq!(config.downtime_ladder_ms, [300, 500, 800]);
        assert!(config.permit_post_copy);
        let policy = plan.policy.build(2.0);
        assert_eq!(policy.downtime_ladder().len(), 3);
        assert!(policy.migration_features().post_copy);
    }

    #[test]
    fn the_cold_summary_says_what_enter_does() {
        let request = ColdLaunchRequest {
            instance: InstanceKey {
                host: HostName::parse("hv1").unwrap(),
                uuid: "u-1".into(),
                backend: crate::inventory::Backend::Libvirt,
            },
            instance_name: "db".into(),
            destination: HostName::parse("hv2").unwrap(),
            destination_chosen_automatically: false,
            hard_power_off_allowed: false,
            shutdown_timeout_seconds: 60,
            copy_bandwidth_mib_per_second: Some(50),
            new_size: None,
        };
        assert_eq!(
            request.summary(),
            "cold-migrate db hv1 → hv2: shut down (ACPI, 60 s, no hard power off), copy the \
             local disks at ≤50 MiB/s, verify, start on hv2; the source copy is kept until C \
             confirm"
        );
        let options = request.cold_options();
        assert_eq!(options.shutdown_timeout, Duration::from_secs(60));
        assert_eq!(options.copy_bandwidth_mib_per_second, Some(50));
        assert!(!options.hard_power_off_allowed);
        assert_eq!(options.new_size, None);
    }

    #[test]
    fn a_resize_summary_names_the_new_size_and_where() {
        let size = NewSize {
            vcpus: Some(2),
            memory_mib: Some(384),
        };
        let moved = ColdLaunchRequest {
            instance: InstanceKey {
                host: HostName::parse("hv1").unwrap(),
                uuid: "u-1".into(),
                backend: crate::inventory::Backend::Libvirt,
            },
            instance_name: "db".into(),
            destination: HostName::parse("hv2").unwrap(),
            destination_chosen_automatically: false,
            hard_power_off_allowed: false,
            shutdown_timeout_seconds: 60,
            copy_bandwidth_mib_per_second: None,
            new_size: Some(size),
        };
        assert_eq!(
            moved.summary(),
            "resize db hv1 → hv2 to 2 vCPUs, 384 MiB: shut down (ACPI, 60 s, no hard power \
             off), copy the local disks at full speed, verify, start on hv2 at the new size; the \
             source copy is kept until C confirm"
        );
        assert_eq!(moved.cold_options().new_size, Some(size));
        let in_place = ColdLaunchRequest {
            destination: HostName::parse("hv1").unwrap(),
            new_size: Some(NewSize {
                vcpus: None,
                memory_mib: Some(384),
            }),
            ..moved
        };
        assert_eq!(
            in_place.summary(),
            "resize db in place on hv1 to 384 MiB: shut down (ACPI, 60 s, no hard power off), \
             define the new size, start it; the old definition is kept until C confirm (R \
             reverts to it)"
        );
    }

    #[test]
    fn options_below_the_minimums_are_refused_with_the_reason() {
        let mut options = LaunchOptions::defaults_for(PolicyKind::Nova);
        options.max_downtime_ceiling_ms = 50;
        assert!(options.validate().unwrap_err().contains("below 100 ms"));
        options.max_downtime_ceiling_ms = 500;
        options.bandwidth_mib_per_second = Some(0);
        assert!(options.validate().unwrap_err().contains("no limit"));
    }
}
