//! The live migration engine against the lab's real hosts: abort, force-complete by post-copy
//! and by pause, and a policy-driven completion of a guest that never converges on its own.
//! Every test asserts where the guest runs afterwards. Optionally records the job statistics
//! as JSON Lines traces (set FERRY_RECORD_TRACES=DIR).

mod common;

use std::time::{Duration, Instant};

use common::{lab_or_skip, Lab, CALL_TIMEOUT};
use ferry::engine::live::{
    self, HostTarget, LiveMigrationPlan, LiveOutcome, MigrationUpdate, OperatorCommand,
};
use ferry::lab::plan::LabHost;
use ferry::libvirt::facts::DomainRunState;
use ferry::libvirt::LibvirtError;
use ferry::policy::{AdaptivePolicyConfig, PolicyChoice};
use ferry::progress::MigrationPhase;

/// The busy guest (dirties 200 MiB/s) running on its host; returns (source, destination).
fn busy_running(lab: &Lab) -> (LabHost, LabHost) {
    let (source, facts) = lab.host_of("busy");
    if facts.state != DomainRunState::Running {
        // Wait for this boot's banner, not an earlier one: a guest still booting has touched
        // little memory and would converge on its own.
        let offset = lab.console_length(&source, "busy");
        lab.connect(&source)
            .call("start busy", CALL_TIMEOUT, |c| {
                let d = c
                    .lookup_domain_by_name("busy")
                    .map_err(|e| LibvirtError::call("lookup", e))?;
                d.create()
                    .map(|_| ())
                    .map_err(|e| LibvirtError::call("start", e))
            })
            .unwrap();
        lab.wait_for_console(
            &source,
            "busy",
            offset,
            "workload running",
            Duration::from_secs(90),
        )
        .unwrap();
    }
    let index = lab
        .plan
        .hosts
        .iter()
        .position(|h| h.name == source.name)
        .unwrap();
    let destination = lab.plan.hosts[(index + 1) % lab.plan.hosts.len()].clone();
    (source, destination)
}

/// Stops the busy guest again (the lab's baseline), wherever it runs.
fn stop_busy(lab: &Lab) {
    let (host, facts) = lab.host_of("busy");
    if facts.state != DomainRunState::ShutOff {
        lab.connect(&host)
            .call("stop busy", CALL_TIMEOUT, |c| {
                let d = c
                    .lookup_domain_by_name("busy")
                    .map_err(|e| LibvirtError::call("lookup", e))?;
                d.destroy()
                    .map(|_| ())
                    .map_err(|e| LibvirtError::call("destroy", e))
            })
            .unwrap();
    }
}

fn plan(
    lab: &Lab,
    source: &LabHost,
    destination: &LabHost,
    policy: PolicyChoice,
    post_copy: bool,
) -> LiveMigrationPlan {
    LiveMigrationPlan {
        instance_name: "busy".into(),
        source: HostTarget {
            name: source.name.clone(),
            uri: lab.plan.uri(source),
        },
        destination: HostTarget {
            name: destination.name.clone(),
            uri: lab.plan.uri(destination),
        },
        policy,
        instance_memory_bytes: 512 << 20,
        bandwidth_mib_per_second: Some(100),
        post_copy_permitted: post_copy,
        block_migration_disks: Vec::new(),
        block_migration_disk_sizes_bytes: Vec::new(),
        poll_interval: Duration::from_millis(500),
        call_timeout: Duration::from_secs(20),
    }
}

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

/// Drives a migration: calls `on_update` for each update until it returns a command to send
/// (once), and returns the outcome and every update seen.
fn drive(
    handle: live::LiveMigrationHandle,
    mut decide: impl FnMut(&MigrationUpdate) -> Vec<OperatorCommand>,
    trace_name: &str,
) -> (LiveOutcome, Vec<MigrationUpdate>) {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut recorder = std::env::var_os("FERRY_RECORD_TRACES").map(|dir| {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::File::create(std::path::Path::new(&dir).join(format!("{trace_name}.jsonl")))
            .unwrap()
    });
    loop {
        assert!(
            Instant::now() < deadline,
            "migration did not end within 10 minutes"
        );
        let update = match handle.updates.recv_timeout(Duration::from_secs(5)) {
            Ok(update) => update,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(_) => break,
        };
        if let (Some(file), MigrationUpdate::Sample(sample)) = (recorder.as_mut(), &update) {
            use std::io::Write;
            writeln!(file, "{}", serde_json::to_string(sample).unwrap()).unwrap();
        }
        for command in decide(&update) {
            handle.commands.send(command).unwrap();
        }
        let finished = matches!(update, MigrationUpdate::Finished(_));
        seen.push(update);
        if finished {
            break;
        }
    }
    let outcome = handle.thread.join().expect("migration thread");
    (outcome, seen)
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

#[test]
fn abort_keeps_the_busy_guest_on_its_source_and_nothing_on_the_destination() {
    let Some(lab) = lab_or_skip("abort_keeps_the_busy_guest_on_its_source") else {
        return;
    };
    let (source, destination) = busy_running(&lab);
    let handle = live::start(plan(&lab, &source, &destination, hands_off(), false));
    let mut sent = false;
    let (outcome, updates) = drive(
        handle,
        |update| {
            if !sent && iteration_of(update).is_some_and(|i| i >= 2) {
                sent = true;
                return vec![OperatorCommand::Abort];
            }
            Vec::new()
        },
        "lab-busy-512mib-abort",
    );
    assert!(
        matches!(outcome, LiveOutcome::Cancelled { .. }),
        "{outcome:?}"
    );
    assert!(updates
        .iter()
        .any(|u| matches!(u, MigrationUpdate::OperatorAction { .. })));
    let (host, facts) = lab.host_of("busy");
    assert_eq!(host.name, source.name, "busy stays on its source");
    assert_eq!(
        facts.state,
        DomainRunState::Running,
        "and runs there, unpaused"
    );
    stop_busy(&lab);
}

#[test]
fn force_complete_by_post_copy_finishes_on_the_destination_and_abort_is_refused_then() {
    let Some(lab) = lab_or_skip("force_complete_by_post_copy") else {
        return;
    };
    let (source, destination) = busy_running(&lab);
    let handle = live::start(plan(&lab, &source, &destination, hands_off(), true));
    let mut sent = false;
    let (outcome, updates) = drive(
        handle,
        |update| {
            // Force-complete, then at once abort: the abort meets a migration in post-copy.
            if !sent && iteration_of(update).is_some_and(|i| i >= 2) {
                sent = true;
                return vec![OperatorCommand::ForceComplete, OperatorCommand::Abort];
            }
            Vec::new()
        },
        "lab-busy-512mib-postcopy",
    );
    assert!(
        matches!(outcome, LiveOutcome::Completed { .. }),
        "{outcome:?} after {updates:#?}"
    );
    assert!(
        updates.iter().any(
            |u| matches!(u, MigrationUpdate::Refused { reason } if reason.contains("post-copy"))
        ),
        "abort in post-copy is refused with the reason"
    );
    let (host, facts) = lab.host_of("busy");
    assert_eq!(host.name, destination.name);
    assert_eq!(facts.state, DomainRunState::Running);
    stop_busy(&lab);
}

#[test]
fn force_complete_by_pause_finishes_on_the_destination_and_resumes_the_guest() {
    let Some(lab) = lab_or_skip("force_complete_by_pause") else {
        return;
    };
    let (source, destination) = busy_running(&lab);
    let handle = live::start(plan(&lab, &source, &destination, hands_off(), false));
    let mut sent = false;
    let (outcome, updates) = drive(
        handle,
        |update| {
            if !sent && iteration_of(update).is_some_and(|i| i >= 2) {
                sent = true;
                return vec![OperatorCommand::ForceComplete];
            }
            Vec::new()
        },
        "lab-busy-512mib-pause",
    );
    assert!(
        matches!(outcome, LiveOutcome::Completed { .. }),
        "{outcome:?} after {updates:#?}"
    );
    let (host, facts) = lab.host_of("busy");
    assert_eq!(host.name, destination.name);
    assert_eq!(
        facts.state,
        DomainRunState::Running,
        "resumed after the pause"
    );
    stop_busy(&lab);
}

#[test]
fn adaptive_policy_completes_a_guest_that_never_converges_on_its_own() {
    let Some(lab) = lab_or_skip("adaptive_policy_completes") else {
        return;
    };
    let (source, destination) = busy_running(&lab);
    let policy = PolicyChoice::Adaptive(AdaptivePolicyConfig {
        permit_post_copy: true,
        ..AdaptivePolicyConfig::default()
    });
    let handle = live::start(plan(&lab, &source, &destination, policy, true));
    let (outcome, updates) = drive(handle, |_| Vec::new(), "lab-busy-512mib-adaptive");
    for update in &updates {
        if let MigrationUpdate::Policy(event) = update {
            eprintln!("policy at {} ms: {}", event.at_ms, event.reason);
        }
    }
    assert!(
        matches!(outcome, LiveOutcome::Completed { .. }),
        "{outcome:?}"
    );
    assert!(
        updates
            .iter()
            .any(|u| matches!(u, MigrationUpdate::Policy(_))),
        "the policy acted"
    );
    let (host, facts) = lab.host_of("busy");
    assert_eq!(host.name, destination.name);
    assert_eq!(facts.state, DomainRunState::Running);
    stop_busy(&lab);
}
