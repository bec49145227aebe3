//! Test data for the migration views and keys: the lab's real job-statistics traces replayed
//! through the progress model and a policy in the order the engine reports them (live.rs
//! `Monitor::poll`: progress, then the policy's decisions; the start decisions once the job
//! exists; operator commands after the poll that showed memory iteration 2, as the lab tests
//! sent them).

use std::time::{Duration, SystemTime};

use crate::engine::live::{
    HostTarget, LiveMigrationPlan, LiveOutcome, MigrationUpdate, OperatorCommand,
};
use crate::model::migration::MigrationId;
use crate::model::trace::{fixtures_dir, load_trace};
use crate::policy::nova::data_gib;
use crate::policy::{AdaptivePolicyConfig, PolicyAction, PolicyChoice};
use crate::progress::{EngineEvent, MigrationPhase, ProgressConfig, ProgressModel};

use super::state::migrations::{MigrationChange, MigrationEvent};

pub fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
}

fn host(name: &str) -> HostTarget {
    HostTarget {
        name: name.into(),
        uri: format!("qemu+ssh://root@{name}/system"),
    }
}

/// The lab's busy guest (512 MiB dirtying 200 MiB/s) from hv1 to hv2 at 100 MiB/s.
pub fn plan_with(policy: PolicyChoice, post_copy_permitted: bool) -> LiveMigrationPlan {
    LiveMigrationPlan {
        instance_name: "busy".into(),
        source: host("hv1"),
        destination: host("hv2"),
        policy,
        instance_memory_bytes: 512 << 20,
        bandwidth_mib_per_second: Some(100),
        post_copy_permitted,
        guest_was_paused: false,
        block_migration_disks: Vec::new(),
        block_migration_disk_sizes_bytes: Vec::new(),
        poll_interval: Duration::from_millis(500),
        call_timeout: Duration::from_secs(20),
    }
}

/// The default adaptive policy, as the launch dialog starts it.
pub fn busy_plan(post_copy_permitted: bool) -> LiveMigrationPlan {
    plan_with(
        PolicyChoice::Adaptive(AdaptivePolicyConfig {
            permit_post_copy: post_copy_permitted,
            ..AdaptivePolicyConfig::default()
        }),
        post_copy_permitted,
    )
}

/// The policy lab-busy-512mib-adaptive was recorded under: post-copy permitted, stalled passes
/// alone lead to it (the pass projection came later and would switch at pass 2), so a replay
/// follows what really happened.
pub fn recorded_adaptive_plan() -> LiveMigrationPlan {
    plan_with(
        PolicyChoice::Adaptive(AdaptivePolicyConfig {
            permit_post_copy: true,
            post_copy_when_projected_passes_exceed: 0,
            ..AdaptivePolicyConfig::default()
        }),
        true,
    )
}

/// The lab tests' policy for operator-driven runs: one rung, no auto-converge, no timeout.
pub fn hands_off_plan(post_copy_permitted: bool) -> LiveMigrationPlan {
    plan_with(
        PolicyChoice::Adaptive(AdaptivePolicyConfig {
            downtime_ladder_ms: vec![300],
            auto_converge: false,
            permit_post_copy: false,
            completion_timeout_seconds_per_gib: 0,
            ..AdaptivePolicyConfig::default()
        }),
        post_copy_permitted,
    )
}

/// One recorded migration replayed as the events the runtime would forward.
pub struct Replay {
    pub id: MigrationId,
    /// Wall-clock seconds (from [`at`]) at which it was queued; it starts a second later.
    pub queued_at_seconds: u64,
    pub plan: LiveMigrationPlan,
    pub trace: &'static str,
    /// Samples of the trace to feed; `usize::MAX` for all of them.
    pub samples: usize,
    /// Sent after the first poll that showed memory iteration 2.
    pub command: Option<OperatorCommand>,
    pub outcome: Option<LiveOutcome>,
}

impl Replay {
    pub fn events(&self) -> Vec<MigrationEvent> {
        let started = self.queued_at_seconds + 1;
        let wall = |ms: u64| at(started) + Duration::from_millis(ms);
        let mut events = Vec::new();
        let mut push = |when: SystemTime, change: MigrationChange| {
            events.push(MigrationEvent {
                id: self.id,
                at: when,
                change,
            })
        };
        push(
            at(self.queued_at_seconds),
            MigrationChange::QueuedLive(Box::new(self.plan.clone())),
        );
        push(at(started), MigrationChange::Starting);
        let mut policy = self.plan.policy.build(data_gib(
            self.plan.instance_memory_bytes,
            &self.plan.block_migration_disk_sizes_bytes,
        ));
        push(
            at(started),
            MigrationChange::Engine(MigrationUpdate::Started {
                flags: 0,
                policy: policy.name().to_string(),
            }),
        );
        let mut start_decisions = Some(policy.on_start());
        let mut model = ProgressModel::new(ProgressConfig::default());
        model.on_event(EngineEvent::MigrationStarted);
        let mut command = self.command.clone();
        let samples = load_trace(fixtures_dir().join(self.trace)).expect("fixture trace");
        let mut last_ms = 0;
        for sample in samples.into_iter().take(self.samples) {
            last_ms = sample.sampled_at_ms;
            let snapshot = model.on_sample(sample);
            let reached_iteration_2 = matches!(snapshot.phase, MigrationPhase::CopyingMemory { iteration } if iteration >= 2);
            let decisions = policy.on_sample(&snapshot);
            push(
                wall(last_ms),
                MigrationChange::Engine(MigrationUpdate::Progress(Box::new(snapshot))),
            );
            for decision in decisions
                .into_iter()
                .chain(start_decisions.take().unwrap_or_default())
            {
                if decision.action == PolicyAction::StartPostCopy && self.plan.post_copy_permitted {
                    model.on_event(EngineEvent::PostCopyStarted);
                }
                push(
                    wall(last_ms),
                    MigrationChange::Engine(MigrationUpdate::Policy(decision)),
                );
            }
            if reached_iteration_2 {
                if let Some(command) = command.take() {
                    let description = self.carry_out(&command, &mut model);
                    push(
                        wall(last_ms),
                        MigrationChange::Engine(MigrationUpdate::OperatorAction { description }),
                    );
                }
            }
        }
        if let Some(outcome) = &self.outcome {
            let total_time_ms = last_ms + 500;
            let outcome = match outcome.clone() {
                LiveOutcome::Completed {
                    downtime_ms,
                    data_transferred_bytes,
                    ..
                } => LiveOutcome::Completed {
                    downtime_ms,
                    total_time_ms,
                    data_transferred_bytes,
                },
                other => other,
            };
            push(
                wall(total_time_ms),
                MigrationChange::Engine(MigrationUpdate::Finished(outcome)),
            );
        }
        events
    }

    /// The engine's side of an operator command (live.rs `Monitor::operator`), in its words.
    fn carry_out(&self, command: &OperatorCommand, model: &mut ProgressModel) -> String {
        match command {
            OperatorCommand::Abort => "abort requested: the guest stays on the source".into(),
            OperatorCommand::ForceComplete if self.plan.post_copy_permitted => {
                model.on_event(EngineEvent::PostCopyStarted);
                "force-complete: switched to post-copy".into()
            }
            OperatorCommand::ForceComplete => "force-complete: guest paused so the remaining \
                                               memory stops changing; it resumes wherever the \
                                               migration ends"
                .into(),
            OperatorCommand::SetBandwidth { mib_per_second } => {
                format!("bandwidth set to {mib_per_second} MiB/s")
            }
            OperatorCommand::SetMaxDowntime { downtime_ms } => {
                format!("max downtime set to {downtime_ms} ms")
            }
            OperatorCommand::RecoverPostCopy => {
                "post-copy resumed: the destination fetches its remaining memory again".into()
            }
        }
    }
}

/// lab-busy-512mib-adaptive: the adaptive policy with post-copy permitted, `samples` polls in.
pub fn adaptive_run_events(id: MigrationId, samples: usize) -> Vec<MigrationEvent> {
    Replay {
        id,
        queued_at_seconds: 0,
        plan: recorded_adaptive_plan(),
        trace: "lab-busy-512mib-adaptive.jsonl",
        samples,
        command: None,
        outcome: None,
    }
    .events()
}

/// lab-busy-512mib-abort: aborted by the operator at iteration 2.
pub fn abort_run_events(id: MigrationId) -> Vec<MigrationEvent> {
    Replay {
        id,
        queued_at_seconds: 0,
        plan: hands_off_plan(false),
        trace: "lab-busy-512mib-abort.jsonl",
        samples: usize::MAX,
        command: Some(OperatorCommand::Abort),
        outcome: Some(LiveOutcome::Cancelled {
            detail: "aborted by the operator".into(),
        }),
    }
    .events()
}

/// lab-busy-512mib-postcopy: force-completed into post-copy at iteration 2, still running.
pub fn post_copy_run_events(id: MigrationId) -> Vec<MigrationEvent> {
    Replay {
        id,
        queued_at_seconds: 0,
        plan: hands_off_plan(true),
        trace: "lab-busy-512mib-postcopy.jsonl",
        samples: usize::MAX,
        command: Some(OperatorCommand::ForceComplete),
        outcome: None,
    }
    .events()
}

/// lab-busy-512mib-pause: force-completed by pausing the guest at iteration 2, then completed.
/// The trace holds no completed-job statistics, so the downtime is not reported.
pub fn pause_completed_events(id: MigrationId) -> Vec<MigrationEvent> {
    Replay {
        id,
        queued_at_seconds: 0,
        plan: hands_off_plan(false),
        trace: "lab-busy-512mib-pause.jsonl",
        samples: usize::MAX,
        command: Some(OperatorCommand::ForceComplete),
        outcome: Some(LiveOutcome::Completed {
            downtime_ms: None,
            total_time_ms: 0,
            data_transferred_bytes: None,
        }),
    }
    .events()
}

/// A precheck report of `instance` (shared storage, QEMU 10 on both sides) against
/// `destination` with `free_memory_bytes` free: it fails only when the guest does not fit.
pub fn precheck_report(
    instance: &crate::inventory::Instance,
    destination: &str,
    free_memory_bytes: u64,
) -> crate::precheck::PrecheckReport {
    use crate::precheck::{
        run_all, BlockMigrationChoice, CpuCompareResult, DiskFact, DiskStorage, HypervisorInfo,
        InstanceState, PrecheckFacts, SharedStorageProbe,
    };
    let qemu = Some(HypervisorInfo {
        hypervisor_type: "QEMU".into(),
        hypervisor_version: 10_000_000,
    });
    run_all(&PrecheckFacts {
        instance_name: instance.name.clone(),
        instance_state: InstanceState::Running,
        instance_memory_bytes: instance.memory_bytes,
        disks: vec![DiskFact {
            target: "vda".into(),
            source: Some(format!("/var/lib/ferry-lab/shared/{}.qcow2", instance.name)),
            storage: DiskStorage::Local,
            size_bytes: 10 << 30,
            read_only: false,
        }],
        source_host: instance.host.to_string(),
        source_host_up: true,
        destination_host: destination.into(),
        destination_host_up: true,
        destination_host_problem: None,
        destination_free_memory_bytes: Some(free_memory_bytes),
        source_hypervisor: qemu.clone(),
        destination_hypervisor: qemu,
        cpu_compare: CpuCompareResult::Superset,
        shared_storage_probe: SharedStorageProbe::Shared,
        destination_free_disk_bytes: Some(100 << 30),
        block_migration: BlockMigrationChoice::Auto,
        job_in_progress: None,
    })
}

/// Four hosts of three instances each, every migration event applied, the clock a second
/// after the last one.
pub fn app_with_events(events: Vec<MigrationEvent>) -> super::app::App {
    let last = events.last().map_or(at(0), |e| e.at);
    let inventory = crate::inventory::sample::inventory(4, 3, at(0));
    let mut app = super::app::App::new(inventory, last + Duration::from_secs(1));
    for event in events {
        app.on_migration_event(event);
    }
    app
}

/// Types `keys`: `\t` is Tab, `\n` Enter, `\u{1b}` Esc, `\u{8}` Backspace.
pub fn press(app: &mut super::app::App, keys: &str) {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    for c in keys.chars() {
        let code = match c {
            '\t' => KeyCode::Tab,
            '\n' => KeyCode::Enter,
            '\u{1b}' => KeyCode::Esc,
            '\u{8}' => KeyCode::Backspace,
            c => KeyCode::Char(c),
        };
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
    }
}

/// The plan of the lab's cold runs of `disk` hv1 → hv2 (one local 8 MiB qcow2 data disk, a
/// 2 MiB/s copy cap, hard power-off allowed after 5 s), as the history stored it.
pub fn cold_disk_plan() -> crate::engine::cold::ColdMigrationPlan {
    let path = fixtures_dir().join("cold/lab-cold-disk-hv1-hv2.plan.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A recorded `ferry migrate --cold --json` run, replayed as the events the runtime forwards:
/// launched at `launched_at_seconds`, each update at its `at_ms`, the summary as the engine's
/// `Finished`. `lines` limits how many lines are fed (`usize::MAX` for all).
pub fn cold_run_events(
    id: MigrationId,
    launched_at_seconds: u64,
    fixture: &str,
    lines: usize,
) -> Vec<MigrationEvent> {
    use super::state::cold_detail::ColdEvent;
    use crate::engine::cold::{ColdOutcome, ColdUpdate};
    let text = std::fs::read_to_string(fixtures_dir().join("cold").join(fixture)).unwrap();
    let launched = at(launched_at_seconds);
    let event = |at_ms: u64, change: ColdEvent| MigrationEvent {
        id,
        at: launched + Duration::from_millis(at_ms),
        change: MigrationChange::Cold(change),
    };
    let mut events = vec![event(0, ColdEvent::Launched(Box::new(cold_disk_plan())))];
    for line in text.lines().take(lines) {
        let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(at_ms) = value["at_ms"].as_u64() else {
            continue; // the precheck report, printed before the start
        };
        let object = value.as_object_mut().unwrap();
        let kind = object.remove("type").unwrap();
        object.remove("instance");
        object.remove("at_ms");
        let update = if kind == "summary" {
            ColdUpdate::Finished(serde_json::from_value::<ColdOutcome>(value).unwrap())
        } else {
            serde_json::from_value::<ColdUpdate>(value).unwrap()
        };
        events.push(event(at_ms, ColdEvent::Engine(update)));
    }
    events
}
