//! Unit tests of the resize's pure parts: the operator's size, the checks of a size against a
//! host's recorded facts, and the recovery of an interrupted resize in place.

use std::time::Duration;

use super::*;
use crate::engine::cold::{ColdOptions, HostTarget};
use crate::precheck::MigrationPlan;

const SMALL: DefinedSize = DefinedSize {
    vcpus: 1,
    memory_kib: 128 << 10,
};
const LARGER: DefinedSize = DefinedSize {
    vcpus: 2,
    memory_kib: 384 << 10,
};

#[test]
fn sizes_out_of_bounds_are_refused_when_typed() {
    assert_eq!(parse_vcpus("2"), Ok(2));
    assert_eq!(parse_memory_mib(" 384 "), Ok(384));
    assert!(parse_vcpus("0").unwrap_err().contains("1 to 4096 vCPUs"));
    assert!(parse_vcpus("5000").unwrap_err().contains("1 to 4096"));
    assert!(parse_vcpus("two").unwrap_err().contains("whole number"));
    assert!(parse_vcpus("-1").unwrap_err().contains("whole number"));
    assert!(parse_memory_mib("0").unwrap_err().contains("16 MiB to"));
    assert!(parse_memory_mib("8").is_err());
    assert!(parse_memory_mib("17000000").unwrap_err().contains("16 TiB"));
    assert!(parse_memory_mib("1.5")
        .unwrap_err()
        .contains("whole number of MiB"));
    assert_eq!(
        NewSize {
            vcpus: Some(0),
            memory_mib: None
        }
        .check(),
        parse_vcpus("0").map(|_| ())
    );
}

#[test]
fn a_new_size_changes_only_what_it_names() {
    let memory_only = NewSize {
        vcpus: None,
        memory_mib: Some(384),
    };
    assert_eq!(
        memory_only.applied_to(SMALL),
        DefinedSize {
            vcpus: 1,
            memory_kib: 384 << 10
        }
    );
    assert!(NewSize::default().is_empty());
    let resize = Resize {
        from: SMALL,
        to: LARGER,
        previous_definition_xml: None,
    };
    assert_eq!(resize.describe(), "1 vCPU, 128 MiB → 2 vCPUs, 384 MiB");
    assert!(!resize.in_place());
}

#[test]
fn the_own_host_is_a_destination_only_for_a_new_size() {
    let to_larger = NewSize {
        vcpus: Some(2),
        memory_mib: Some(384),
    };
    let refusal = request_problem("cold-r", "hv1", None, SMALL, true).unwrap();
    assert!(refusal.contains("already runs on hv1"), "{refusal}");
    assert!(refusal.contains("--vcpus"), "{refusal}");
    assert_eq!(
        request_problem("cold-r", "hv1", Some(&NewSize::default()), SMALL, true),
        Some(refusal),
        "an empty size is no size"
    );
    assert_eq!(request_problem("cold-r", "hv1", None, SMALL, false), None);
    assert_eq!(
        request_problem("cold-r", "hv1", Some(&to_larger), SMALL, true),
        None
    );
    let same = NewSize {
        vcpus: Some(1),
        memory_mib: Some(128),
    };
    assert!(request_problem("cold-r", "hv1", Some(&same), SMALL, false)
        .unwrap()
        .contains("already has 1 vCPU, 128 MiB"));
    let absurd = NewSize {
        vcpus: Some(0),
        memory_mib: None,
    };
    assert!(request_problem("cold-r", "hv1", Some(&absurd), SMALL, false).is_some());
}

#[test]
fn a_resize_in_place_gets_back_the_memory_its_guest_holds() {
    let free = Some(300 << 20);
    // hv1 has 300 MiB free and the guest runs with 128 MiB there: 428 MiB for its new size.
    assert_eq!(
        memory_room_bytes(free, true, true, 128 << 20),
        Some(428 << 20)
    );
    // Shut off, it holds nothing.
    assert_eq!(memory_room_bytes(free, true, false, 128 << 20), free);
    // On another host the guest's memory stays where it is until confirm.
    assert_eq!(memory_room_bytes(free, false, true, 128 << 20), free);
    assert_eq!(memory_room_bytes(None, true, true, 128 << 20), None);
}

#[test]
fn more_vcpus_than_the_host_has_cpus_are_refused() {
    // hv2 of the lab reports 2 CPUs.
    assert_eq!(vcpu_problem("hv2", LARGER, Some(2)), None);
    let wide = DefinedSize { vcpus: 3, ..LARGER };
    assert_eq!(
        vcpu_problem("hv2", wide, Some(2)).unwrap(),
        "hv2: has 2 CPUs, the new size asks for 3 vCPUs; give at most 2"
    );
    assert_eq!(vcpu_problem("hv2", wide, None), None);
}

fn check(id: CheckId, outcome: CheckOutcome) -> CheckResult {
    CheckResult {
        id,
        title: "as the cold checks wrote it",
        outcome,
    }
}

fn cold_report() -> PrecheckReport {
    PrecheckReport {
        checks: vec![
            check(
                CheckId::DestinationDiffers,
                CheckOutcome::Fail {
                    reason: "hv1: cold-r already runs on hv1; pick another destination".into(),
                },
            ),
            check(CheckId::DestinationMemory, CheckOutcome::Pass),
            check(CheckId::Storage, CheckOutcome::Pass),
            check(
                CheckId::DestinationDisk,
                CheckOutcome::Warn {
                    reason: "hv1: free disk unknown; copying disks needs 0 B".into(),
                },
            ),
        ],
        plan: MigrationPlan {
            block_migration: true,
            disks_to_copy: vec![],
            bytes_to_copy: 0,
        },
    }
}

#[test]
fn a_resize_report_passes_its_own_host_and_checks_the_cpus() {
    let in_place = Resize {
        from: SMALL,
        to: DefinedSize { vcpus: 4, ..LARGER },
        previous_definition_xml: Some("<domain/>".into()),
    };
    let report = resize_checks(cold_report(), "hv1", &in_place, Some(2));
    let ids: Vec<CheckId> = report.checks.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [
            CheckId::DestinationDiffers,
            CheckId::DestinationMemory,
            CheckId::DestinationVcpus,
            CheckId::Storage,
            CheckId::DestinationDisk
        ]
    );
    assert_eq!(
        report.outcome(CheckId::DestinationDisk),
        Some(&CheckOutcome::Pass),
        "nothing is copied"
    );
    assert_eq!(
        report.outcome(CheckId::DestinationDiffers),
        Some(&CheckOutcome::Pass)
    );
    assert!(!report.passed());
    assert!(report.failure_reasons().contains("has 2 CPUs"));

    // To another host the own-host refusal of the cold checks stands (it does not apply
    // there, but this proves the report is only relaxed for a resize in place).
    let moved = Resize {
        previous_definition_xml: None,
        ..in_place.clone()
    };
    let report = resize_checks(cold_report(), "hv1", &moved, Some(8));
    assert!(matches!(
        report.outcome(CheckId::DestinationDiffers),
        Some(CheckOutcome::Fail { .. })
    ));
    assert_eq!(
        report.outcome(CheckId::DestinationVcpus),
        Some(&CheckOutcome::Pass)
    );
    let unknown = resize_checks(cold_report(), "hv1", &in_place, None);
    assert!(matches!(
        unknown.outcome(CheckId::DestinationVcpus),
        Some(CheckOutcome::Warn { .. })
    ));
}

#[test]
fn a_cold_migration_to_its_own_host_without_a_size_says_how_to_resize_instead() {
    let report = own_host_needs_a_size(cold_report(), "cold-r", "hv1");
    assert!(!report.passed());
    assert_eq!(
        report.failure_reasons(),
        "hv1: cold-r already runs on hv1; pick another destination, or give a new size \
         (--vcpus, --memory-mib) to resize it in place"
    );
}

fn in_place_plan(was_running: bool) -> (ColdMigrationPlan, Resize) {
    let host = HostTarget {
        name: "hv1".into(),
        uri: "qemu+ssh://root@hv1/system".into(),
    };
    let resize = Resize {
        from: SMALL,
        to: LARGER,
        previous_definition_xml: Some("<domain><name>cold-r</name></domain>".into()),
    };
    let plan = ColdMigrationPlan {
        instance_name: "cold-r".into(),
        instance_uuid: "6f0c2a4e-0000-4000-8000-00000000000r".into(),
        source: host.clone(),
        destination: host,
        instance_memory_bytes: 128 << 20,
        instance_was_running: was_running,
        disks: vec![],
        shared_storage_prefixes: vec![],
        options: ColdOptions::default(),
        call_timeout: Duration::from_secs(30),
        resize: Some(resize.clone()),
    };
    (plan, resize)
}

fn presence(active: bool) -> DomainPresence {
    DomainPresence {
        name: "cold-r".into(),
        uuid: "6f0c2a4e-0000-4000-8000-00000000000r".into(),
        active,
        persistent: true,
    }
}

#[test]
fn an_interrupted_resize_in_place_is_kept_once_it_runs_at_its_new_size() {
    let (plan, resize) = in_place_plan(true);
    let decide = |active, defined, rollback_begun| {
        in_place_recovery(
            &plan,
            &resize,
            Some(&presence(active)),
            Some(defined),
            rollback_begun,
        )
    };
    assert!(matches!(
        decide(true, LARGER, false),
        InPlaceRecovery::AwaitingConfirm { .. }
    ));
    // Defined at the new size, not started again: back to the old size, and started.
    assert_eq!(
        decide(false, LARGER, false),
        InPlaceRecovery::RollBack {
            reason: "cold-r was defined at its new size but not started again".into(),
            stop_first: false,
            define_old: true,
            start: true,
        }
    );
    // Still at its old size, off (killed while shutting down): started again as it was.
    assert!(matches!(
        decide(false, SMALL, false),
        InPlaceRecovery::RollBack {
            stop_first: false,
            define_old: false,
            start: true,
            ..
        }
    ));
    // Running at its old size: nothing to do but say so.
    assert!(matches!(
        decide(true, SMALL, false),
        InPlaceRecovery::RollBack {
            stop_first: false,
            define_old: false,
            start: false,
            ..
        }
    ));
    // The dead ferry was rolling back: it finishes, from the facts.
    assert_eq!(
        decide(true, LARGER, true),
        InPlaceRecovery::RollBack {
            reason: "it had begun rolling back".into(),
            stop_first: true,
            define_old: true,
            start: true,
        }
    );
}

#[test]
fn a_shut_off_guest_resized_in_place_awaits_confirm_and_stays_off() {
    let (plan, resize) = in_place_plan(false);
    assert!(matches!(
        in_place_recovery(&plan, &resize, Some(&presence(false)), Some(LARGER), false),
        InPlaceRecovery::AwaitingConfirm { .. }
    ));
    assert!(matches!(
        in_place_recovery(&plan, &resize, Some(&presence(false)), Some(SMALL), true),
        InPlaceRecovery::RollBack {
            define_old: false,
            start: false,
            ..
        }
    ));
}

#[test]
fn what_ferry_did_not_leave_is_refused() {
    let (plan, resize) = in_place_plan(true);
    let gone = in_place_recovery(&plan, &resize, None, None, false);
    assert!(
        matches!(&gone, InPlaceRecovery::Refuse { reason } if reason.contains("holds no cold-r"))
    );
    let by_hand = DefinedSize {
        vcpus: 8,
        memory_kib: 1 << 20,
    };
    let changed = in_place_recovery(&plan, &resize, Some(&presence(true)), Some(by_hand), false);
    assert!(
        matches!(&changed, InPlaceRecovery::Refuse { reason } if reason.contains("8 vCPUs, 1024 MiB"))
    );
    let transient = DomainPresence {
        persistent: false,
        ..presence(true)
    };
    assert!(matches!(
        in_place_recovery(&plan, &resize, Some(&transient), Some(LARGER), false),
        InPlaceRecovery::Refuse { .. }
    ));
}
