//! Unit tests of the cold engine's pure parts: the plan, the destination pool, the drift,
//! the copy meter, the outcomes and the recovery decision.

use std::time::Duration;

use super::plan::{encoded_version, plan_drift};
use super::*;
use crate::libvirt::lifecycle::DomainPresence;
use crate::libvirt::volume_copy::PoolFacts;

fn pool(name: &str, path: &str, active: bool) -> PoolFacts {
    PoolFacts {
        name: name.into(),
        target_path: path.into(),
        active,
        available_bytes: 1 << 30,
    }
}

fn sample_plan() -> ColdMigrationPlan {
    ColdMigrationPlan {
        instance_name: "cold-a".into(),
        instance_uuid: "6f0c2a4e-0000-4000-8000-000000000001".into(),
        source: HostTarget {
            name: "hv1".into(),
            uri: "qemu+ssh://root@hv1/system".into(),
        },
        destination: HostTarget {
            name: "hv2".into(),
            uri: "qemu+ssh://root@hv2/system".into(),
        },
        instance_memory_bytes: 128 << 20,
        instance_was_running: true,
        disks: vec![
            ColdDisk {
                target: "vdb".into(),
                source: "/var/lib/libvirt/images/cold-a.qcow2".into(),
                action: DiskAction::Copy(DiskCopy {
                    source_volume: VolumeRef {
                        pool: "local".into(),
                        name: "cold-a.qcow2".into(),
                    },
                    destination_volume: VolumeRef {
                        pool: "local".into(),
                        name: "cold-a.qcow2".into(),
                    },
                    destination_path: "/var/lib/libvirt/images/cold-a.qcow2".into(),
                    format: "qcow2".into(),
                    capacity_bytes: 64 << 20,
                    stream_bytes: 33 << 20,
                    source_attribute: "file".into(),
                }),
            },
            ColdDisk {
                target: "vdc".into(),
                source: "/var/lib/ferry-lab/shared/instances/x.img".into(),
                action: DiskAction::Shared,
            },
        ],
        shared_storage_prefixes: vec!["/var/lib/ferry-lab/shared".into()],
        options: ColdOptions::default(),
        call_timeout: Duration::from_secs(30),
        resize: None,
    }
}

#[test]
fn the_plan_round_trips_through_json_with_readable_durations() {
    let plan = sample_plan();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["call_timeout_ms"], 30_000);
    assert_eq!(json["options"]["shutdown_timeout_ms"], 60_000);
    assert_eq!(json["disks"][0]["action"]["action"], "copy");
    assert_eq!(json["disks"][1]["action"]["action"], "shared");
    let back: ColdMigrationPlan = serde_json::from_value(json).unwrap();
    assert_eq!(back, plan);
    assert_eq!(plan.bytes_to_copy(), 33 << 20);
    assert_eq!(plan.copied_disks().count(), 1);
}

#[test]
fn the_copy_goes_to_the_pool_of_the_same_directory_else_of_the_same_name() {
    let source = pool("local", "/var/lib/libvirt/images", true);
    let same_dir = [
        pool("default", "/var/lib/libvirt/images", true),
        pool("local", "/srv/local", true),
    ];
    assert_eq!(
        destination_pool_for(&source, &same_dir).unwrap().name,
        "default"
    );
    let same_name = [pool("local", "/srv/local", true)];
    assert_eq!(
        destination_pool_for(&source, &same_name)
            .unwrap()
            .target_path,
        "/srv/local"
    );
    let inactive = [pool("local", "/var/lib/libvirt/images", false)];
    assert_eq!(destination_pool_for(&source, &inactive), None);
}

#[test]
fn drift_since_planning_is_named() {
    let plan = sample_plan();
    assert_eq!(plan_drift(&plan, &plan), None);
    let mut stopped = plan.clone();
    stopped.instance_was_running = false;
    assert_eq!(plan_drift(&plan, &stopped).as_deref(), Some("was shut off"));
    let mut other_disks = plan.clone();
    other_disks.disks.pop();
    assert_eq!(
        plan_drift(&plan, &other_disks).as_deref(),
        Some("its disks changed")
    );
    // Sizes grow as the guest writes: not a change of layout.
    let mut grown = plan.clone();
    if let DiskAction::Copy(copy) = &mut grown.disks[0].action {
        copy.stream_bytes += 1 << 20;
    }
    assert_eq!(plan_drift(&plan, &grown), None);
}

#[test]
fn the_meter_reports_rate_and_eta_over_its_window() {
    let mut meter = CopyMeter::new(Duration::from_secs(3));
    let mib = 1u64 << 20;
    assert_eq!(meter.record(Duration::ZERO, 0, 100 * mib), (None, None));
    let (rate, eta) = meter.record(Duration::from_secs(1), 10 * mib, 100 * mib);
    assert_eq!(rate, Some(10 * mib));
    assert_eq!(eta, Some(9_000));
    // A stall: the rate falls within the window and the ETA grows.
    for second in 2..=5 {
        meter.record(Duration::from_secs(second), 10 * mib, 100 * mib);
    }
    let (rate, eta) = meter.record(Duration::from_secs(6), 10 * mib, 100 * mib);
    assert_eq!(rate, Some(0));
    assert_eq!(eta, None);
}

#[test]
fn versions_encode_like_libvirt() {
    assert_eq!(encoded_version("10.0.2"), Some(10_000_002));
    assert_eq!(encoded_version("11.3"), Some(11_003_000));
    assert_eq!(encoded_version("x"), None);
}

#[test]
fn outcomes_map_to_history_kinds_and_serialize_tagged() {
    let refused = ColdOutcome::Refused { detail: "x".into() };
    assert_eq!(refused.kind(), OutcomeKind::Failed);
    let rolled = ColdOutcome::RolledBack {
        detail: "copy interrupted".into(),
        leftovers: vec![],
    };
    assert_eq!(rolled.kind(), OutcomeKind::RolledBack);
    let json = serde_json::to_value(ColdUpdate::Finished(rolled)).unwrap();
    assert_eq!(json["update"], "finished");
    assert_eq!(json["outcome"], "rolled_back");
    let phase = serde_json::to_value(ColdUpdate::Phase(ColdPhase::Copying {
        disk_number: 1,
        disk_count: 2,
        target: "vdb".into(),
    }))
    .unwrap();
    assert_eq!(phase["phase"], "copying");
    assert_eq!(phase["disk_number"], 1);
}

fn held(active: bool) -> Option<DomainPresence> {
    Some(DomainPresence {
        name: "cold-a".into(),
        uuid: "6f0c2a4e-0000-4000-8000-000000000001".into(),
        active,
        persistent: true,
    })
}

/// The decision's kind, and for a rollback what it does: (destination removed, started).
fn decided(
    plan: &ColdMigrationPlan,
    on_source: Option<DomainPresence>,
    on_destination: Option<DomainPresence>,
    rollback_begun: bool,
) -> (&'static str, bool, bool) {
    match recovery_decision(
        plan,
        on_source.as_ref(),
        on_destination.as_ref(),
        rollback_begun,
    ) {
        RecoveryDecision::AwaitingConfirm { .. } => ("awaiting", false, false),
        RecoveryDecision::RollBack {
            remove_destination_domain,
            start_on_source,
            ..
        } => ("roll back", remove_destination_domain, start_on_source),
        RecoveryDecision::Refuse { .. } => ("refuse", false, false),
    }
}

#[test]
fn an_interrupted_running_guest_awaits_confirm_only_once_started_on_the_destination() {
    let plan = sample_plan();
    assert_eq!(
        decided(&plan, held(false), held(true), false),
        ("awaiting", false, false)
    );
    // Defined but not started: the start is what a running guest's migration ends with.
    assert_eq!(
        decided(&plan, held(false), held(false), false),
        ("roll back", true, true)
    );
    // Killed during the copy or the verification: nothing defined there yet.
    assert_eq!(
        decided(&plan, held(false), None, false),
        ("roll back", false, true)
    );
    // Killed while it shut down, or someone started it again: it runs, nothing to start.
    assert_eq!(
        decided(&plan, held(true), None, false),
        ("roll back", false, false)
    );
    assert_eq!(
        decided(&plan, held(true), held(false), false),
        ("roll back", true, false)
    );
}

#[test]
fn an_interrupted_shut_off_guest_awaits_confirm_once_defined_on_the_destination() {
    let mut plan = sample_plan();
    plan.instance_was_running = false;
    assert_eq!(
        decided(&plan, held(false), held(false), false),
        ("awaiting", false, false)
    );
    // Started there by hand after the define: still a verified copy.
    assert_eq!(
        decided(&plan, held(false), held(true), false),
        ("awaiting", false, false)
    );
    // Never started on the source by the rollback: it was shut off when planned.
    assert_eq!(
        decided(&plan, held(false), None, false),
        ("roll back", false, false)
    );
}

#[test]
fn a_rollback_the_dead_ferry_had_begun_is_finished() {
    let plan = sample_plan();
    assert_eq!(
        decided(&plan, held(false), held(true), true),
        ("roll back", true, true)
    );
    assert_eq!(
        decided(&plan, held(false), None, true),
        ("roll back", false, true)
    );
    let mut shut_off = plan.clone();
    shut_off.instance_was_running = false;
    assert_eq!(
        decided(&shut_off, held(false), held(false), true),
        ("roll back", true, false)
    );
}

#[test]
fn contradicting_facts_are_refused_with_the_reason() {
    let plan = sample_plan();
    let RecoveryDecision::Refuse { reason } =
        recovery_decision(&plan, held(true).as_ref(), held(true).as_ref(), false)
    else {
        panic!("running on both hosts must be refused");
    };
    assert_eq!(
        reason,
        "cold-a (UUID 6f0c2a4e-0000-4000-8000-000000000001) runs on both hv1 and hv2, and \
         their disks diverge; shut down the copy that should not run, then run \
         `ferry resume` again"
    );
    // Running on both is refused even if the dead ferry had begun rolling back.
    assert_eq!(decided(&plan, held(true), held(true), true).0, "refuse");
    // The source copy is gone (confirmed by hand?): the destination's may be the only one.
    for on_destination in [None, held(false), held(true)] {
        assert_eq!(decided(&plan, None, on_destination, false).0, "refuse");
    }
    let transient = |active| {
        held(active).map(|p| DomainPresence {
            persistent: false,
            ..p
        })
    };
    assert_eq!(decided(&plan, transient(true), None, false).0, "refuse");
    assert_eq!(
        decided(&plan, held(false), transient(true), false).0,
        "refuse"
    );
}

/// The engine API runs its calls as tasks (`tokio::spawn`), which take only `Send` futures;
/// creating the futures runs nothing.
#[test]
fn the_engine_calls_are_futures_a_task_can_run() {
    fn spawnable<F: std::future::Future + Send>(_: F) {}
    let config = crate::config::Config::default();
    let plan = sample_plan();
    spawnable(super::plan(
        &config,
        "cold-a",
        "hv2",
        &ColdOptions::default(),
    ));
    spawnable(confirm(&plan, Duration::from_secs(1)));
    spawnable(revert(&plan, Duration::from_secs(1)));
    spawnable(recover(&plan, false, Duration::from_secs(1)));
}
