//! The live migration engine against the lab's real hosts: abort, force-complete by post-copy
//! and by pause, and a policy-driven completion of a guest that never converges on its own.
//! Every test asserts where the guest runs afterwards. Optionally records the job statistics
//! as JSON Lines traces (set FERRY_RECORD_TRACES=DIR).

mod common;

use std::time::{Duration, Instant};

use common::{lab_or_skip, Lab};
use ferry::engine::live::{
    self, HostTarget, LiveMigrationPlan, LiveOutcome, MigrationUpdate, OperatorCommand,
};
use ferry::lab::plan::LabHost;
use ferry::model::domain::DomainRunState;
use ferry::policy::{AdaptivePolicyConfig, PolicyChoice};
use ferry::progress::MigrationPhase;

/// A policy that never acts on its own: the operator decides.
fn hands_off() -> PolicyChoice {
    PolicyChoice::Adaptive(AdaptivePolicyConfig {
        downtime_ladder_ms: vec![300],
        auto_converge: false,
        permit_post_copy: false,
        completion_timeout_seconds_per_gib: 0,
        ..AdaptivePolicyConfig::default()
    })
}

/// What one migration of the busy guest did.
struct BusyRun {
    source: LabHost,
    destination: LabHost,
    outcome: LiveOutcome,
    updates: Vec<MigrationUpdate>,
}

/// Starts the busy guest (dirties 200 MiB/s) if it is off, migrates it to the next host at
/// 100 MiB/s under `policy`, sends `commands` all at once when memory iteration 2 is reached,
/// and returns what happened. The trace is recorded as `trace_name.jsonl` when asked for.
fn migrate_busy(
    lab: &Lab,
    policy: PolicyChoice,
    post_copy_permitted: bool,
    commands: Vec<OperatorCommand>,
    trace_name: &str,
) -> BusyRun {
    let (source, facts) = lab.host_of("busy");
    if facts.state != DomainRunState::Running {
        // Wait for this boot's banner, not an earlier one: a guest still booting has touched
        // little memory and would converge on its own.
        let offset = lab.console_length(&source, "busy");
        lab.set_running(&source, "busy", true);
        lab.wait_for_console(
            &source,
            "busy",
            offset,
            "workload running",
            Duration::from_secs(90),
        )
        .unwrap();
    }
    let destination = lab.next_host(&source);
    let mut handle = live::start(LiveMigrationPlan {
        instance_name: "busy".into(),
        source: HostTarget {
            name: source.name.clone(),
            uri: lab.plan.uri(&source),
        },
        destination: HostTarget {
            name: destination.name.clone(),
            uri: lab.plan.uri(&destination),
        },
        policy,
        instance_memory_bytes: 512 << 20,
        bandwidth_mib_per_second: Some(100),
        post_copy_permitted,
        block_migration_disks: Vec::new(),
        block_migration_disk_sizes_bytes: Vec::new(),
        guest_was_paused: false,
        poll_interval: Duration::from_millis(500),
        call_timeout: Duration::from_secs(20),
    });

    let mut recorder = std::env::var_os("FERRY_RECORD_TRACES").map(|dir| {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::File::create(std::path::Path::new(&dir).join(format!("{trace_name}.jsonl")))
            .unwrap()
    });
    let mut pending_commands = Some(commands);
    let mut updates = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(
            Instant::now() < deadline,
            "migration did not end within 10 minutes"
        );
        let next =
            async { tokio::time::timeout(Duration::from_secs(5), handle.updates.recv()).await };
        let update = match ferry::runtime::wait(next) {
            Ok(Some(update)) => update,
            Err(_elapsed) => continue,
            Ok(None) => break,
        };
        if let (Some(file), MigrationUpdate::Sample(sample)) = (recorder.as_mut(), &update) {
            use std::io::Write;
            writeln!(file, "{}", serde_json::to_string(sample).unwrap()).unwrap();
        }
        if iteration_of(&update).is_some_and(|i| i >= 2) {
            for command in pending_commands.take().unwrap_or_default() {
                handle.commands.send(command).unwrap();
            }
        }
        let finished = matches!(update, MigrationUpdate::Finished(_));
        updates.push(update);
        if finished {
            break;
        }
    }
    let outcome = ferry::runtime::wait(handle.task).expect("migration task");
    BusyRun {
        source,
        destination,
        outcome,
        updates,
    }
}

fn iteration_of(update: &MigrationUpdate) -> Option<u64> {
    match update {
        MigrationUpdate::Progress(p) => match p.phase {
            MigrationPhase::CopyingMemory { iteration } => Some(iteration),
            _ => None,
        },
        _ => None,
    }
}

/// Asserts the busy guest is defined on `expected` alone and running unpaused there, then
/// stops it again (the lab's baseline).
fn assert_busy_runs_on(lab: &Lab, expected: &LabHost, why: &str) {
    let (host, facts) = lab.host_of("busy");
    assert_eq!(
        host.name, expected.name,
        "busy runs on {}: {why}",
        expected.name
    );
    assert_eq!(
        facts.state,
        DomainRunState::Running,
        "busy runs unpaused: {why}"
    );
    lab.set_running(&host, "busy", false);
}

#[test]
fn abort_keeps_the_busy_guest_on_its_source_and_nothing_on_the_destination() {
    let Some(lab) = lab_or_skip("abort_keeps_the_busy_guest_on_its_source") else {
        return;
    };
    let run = migrate_busy(
        &lab,
        hands_off(),
        false,
        vec![OperatorCommand::Abort],
        "lab-busy-512mib-abort",
    );
    assert!(
        matches!(run.outcome, LiveOutcome::Cancelled { .. }),
        "{:?}",
        run.outcome
    );
    assert!(run
        .updates
        .iter()
        .any(|u| matches!(u, MigrationUpdate::OperatorAction { .. })));
    assert_busy_runs_on(&lab, &run.source, "it stays on its source after an abort");
}

#[test]
fn force_complete_by_post_copy_finishes_on_the_destination_and_abort_is_refused_then() {
    let Some(lab) = lab_or_skip("force_complete_by_post_copy") else {
        return;
    };
    // Force-complete, then at once abort: the abort meets a migration in post-copy.
    let run = migrate_busy(
        &lab,
        hands_off(),
        true,
        vec![OperatorCommand::ForceComplete, OperatorCommand::Abort],
        "lab-busy-512mib-postcopy",
    );
    assert!(
        matches!(run.outcome, LiveOutcome::Completed { .. }),
        "{:?} after {:#?}",
        run.outcome,
        run.updates
    );
    assert!(
        run.updates.iter().any(
            |u| matches!(u, MigrationUpdate::Refused { reason } if reason.contains("post-copy"))
        ),
        "abort in post-copy is refused with the reason"
    );
    assert_busy_runs_on(&lab, &run.destination, "post-copy finished the move");
}

#[test]
fn force_complete_by_pause_finishes_on_the_destination_and_resumes_the_guest() {
    let Some(lab) = lab_or_skip("force_complete_by_pause") else {
        return;
    };
    let run = migrate_busy(
        &lab,
        hands_off(),
        false,
        vec![OperatorCommand::ForceComplete],
        "lab-busy-512mib-pause",
    );
    assert!(
        matches!(run.outcome, LiveOutcome::Completed { .. }),
        "{:?} after {:#?}",
        run.outcome,
        run.updates
    );
    assert_busy_runs_on(&lab, &run.destination, "resumed after the pause");
}

#[test]
fn adaptive_policy_completes_a_guest_that_never_converges_on_its_own() {
    let Some(lab) = lab_or_skip("adaptive_policy_completes") else {
        return;
    };
    let policy = PolicyChoice::Adaptive(AdaptivePolicyConfig {
        permit_post_copy: true,
        ..AdaptivePolicyConfig::default()
    });
    let run = migrate_busy(&lab, policy, true, Vec::new(), "lab-busy-512mib-adaptive");
    for update in &run.updates {
        if let MigrationUpdate::Policy(event) = update {
            eprintln!("policy at {} ms: {}", event.at_ms, event.reason);
        }
    }
    assert!(
        matches!(run.outcome, LiveOutcome::Completed { .. }),
        "{:?}",
        run.outcome
    );
    assert!(
        run.updates
            .iter()
            .any(|u| matches!(u, MigrationUpdate::Policy(_))),
        "the policy acted"
    );
    assert_busy_runs_on(&lab, &run.destination, "the policy finished the move");
}
