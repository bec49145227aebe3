use super::*;
use crate::model::units::{GIB, MIB};

#[test]
fn cold_checks_accept_a_shut_off_guest_and_skip_cpu_and_version() {
    let mut facts = good_facts();
    facts.instance_state = InstanceState::ShutOff;
    facts.cpu_compare = CpuCompareResult::Incompatible {
        detail: "host lacks avx512f".into(),
    };
    facts.destination_hypervisor = qemu(9_000_000);
    facts.block_migration = BlockMigrationChoice::No;
    let report = run_cold(&facts, &[]);
    assert!(
        report.passed(),
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
    assert!(report.outcome(CheckId::CpuCompatible).is_none());
    assert!(report.outcome(CheckId::HypervisorVersion).is_none());
    // The config drive is copied too: a cold migration moves every local disk.
    assert_eq!(report.plan.disks_to_copy, vec!["vda", "hdc"]);
    assert_eq!(report.plan.bytes_to_copy, 2 * GIB + MIB);
}

#[test]
fn cold_checks_name_what_is_in_the_way() {
    let mut facts = good_facts();
    facts.instance_state = InstanceState::Paused;
    facts.destination_host = "hv1".into();
    facts.destination_free_disk_bytes = Some(GIB);
    let problems = vec!["hv1: pool local already holds web1.qcow2".to_string()];
    let report = run_cold(&facts, &problems);
    let failed: Vec<CheckId> = report.failures().map(|c| c.id).collect();
    assert_eq!(
        failed,
        vec![
            CheckId::DestinationDiffers,
            CheckId::InstanceState,
            CheckId::Storage,
            CheckId::DestinationDisk
        ]
    );
    assert!(reason(&report, CheckId::InstanceState).contains("is paused"));
    assert_eq!(
        reason(&report, CheckId::Storage),
        "hv1: pool local already holds web1.qcow2"
    );
}

fn qemu(version: u64) -> Option<HypervisorInfo> {
    Some(HypervisorInfo {
        hypervisor_type: "QEMU".into(),
        hypervisor_version: version,
    })
}

fn good_facts() -> PrecheckFacts {
    PrecheckFacts {
        instance_name: "web1".into(),
        instance_state: InstanceState::Running,
        instance_memory_bytes: 512 * MIB,
        disks: vec![
            DiskFact {
                target: "vda".into(),
                source: Some("/var/lib/libvirt/images/web1.qcow2".into()),
                storage: DiskStorage::Local,
                size_bytes: 2 * GIB,
                read_only: false,
            },
            DiskFact {
                target: "hdc".into(),
                source: Some("/var/lib/libvirt/images/web1-config.iso".into()),
                storage: DiskStorage::Local,
                size_bytes: MIB,
                read_only: true,
            },
            DiskFact {
                target: "vdb".into(),
                source: Some("rbd:volumes/data".into()),
                storage: DiskStorage::Shared,
                size_bytes: 100 * GIB,
                read_only: false,
            },
        ],
        source_host: "hv1".into(),
        source_host_up: true,
        destination_host: "hv2".into(),
        destination_host_up: true,
        destination_host_problem: None,
        destination_free_memory_bytes: Some(4 * GIB),
        source_hypervisor: qemu(10_000_000),
        destination_hypervisor: qemu(10_000_000),
        cpu_compare: CpuCompareResult::Superset,
        shared_storage_probe: SharedStorageProbe::NotShared,
        destination_free_disk_bytes: Some(20 * GIB),
        block_migration: BlockMigrationChoice::Auto,
        job_in_progress: None,
    }
}

fn reason(report: &PrecheckReport, id: CheckId) -> String {
    match report.outcome(id).unwrap() {
        CheckOutcome::Fail { reason } | CheckOutcome::Warn { reason } => reason.clone(),
        CheckOutcome::Pass => panic!("{id:?} passed"),
    }
}

#[test]
fn a_job_already_running_on_the_instance_refuses_with_the_fix() {
    let mut facts = good_facts();
    facts.job_in_progress = Some(JobInProgress {
        host: "hv3".into(),
        what: "a migration job".into(),
    });
    let report = run_all(&facts);
    let failed: Vec<CheckId> = report.failures().map(|c| c.id).collect();
    assert_eq!(failed, vec![CheckId::NoJobRunning]);
    assert_eq!(
        reason(&report, CheckId::NoJobRunning),
        format!(
            "{0}: a migration job is already running on hv3; `ferry resume` watches it, \
             `ferry abort {0}` stops it",
            facts.instance_name
        )
    );
    // A cold migration is refused for the same reason.
    let cold = run_cold(&facts, &[]);
    assert!(cold.failures().any(|c| c.id == CheckId::NoJobRunning));
}

#[test]
fn good_facts_pass_and_plan_copies_only_local_writable_disks() {
    let report = run_all(&good_facts());
    assert!(
        report.passed(),
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
    assert_eq!(report.checks.len(), 12);
    assert!(report.plan.block_migration);
    assert_eq!(report.plan.disks_to_copy, vec!["vda".to_string()]);
    assert_eq!(report.plan.bytes_to_copy, 2 * GIB);
}

#[test]
fn every_failure_is_listed_not_just_the_first() {
    let mut facts = good_facts();
    facts.destination_host = "hv1".into();
    facts.instance_state = InstanceState::ShutOff;
    facts.destination_free_memory_bytes = Some(380 * MIB);
    facts.destination_hypervisor = qemu(9_000_000);
    let report = run_all(&facts);
    let failed: Vec<CheckId> = report.failures().map(|c| c.id).collect();
    assert_eq!(
        failed,
        vec![
            CheckId::DestinationDiffers,
            CheckId::InstanceState,
            CheckId::DestinationMemory,
            CheckId::HypervisorVersion
        ]
    );
    assert_eq!(
        reason(&report, CheckId::DestinationMemory),
        "hv1: destination has 380 MiB free, guest needs 512 MiB"
    );
    assert!(reason(&report, CheckId::HypervisorVersion).contains("9.0.0 is older than 10.0.0"));
}

#[test]
fn destination_name_is_validated() {
    let mut facts = good_facts();
    facts.destination_host = "hv2/system?x".into();
    let report = run_all(&facts);
    assert!(reason(&report, CheckId::DestinationName).contains("'/'"));
}

#[test]
fn hypervisor_type_must_match() {
    let mut facts = good_facts();
    facts.destination_hypervisor = Some(HypervisorInfo {
        hypervisor_type: "Xen".into(),
        hypervisor_version: 4_017_000,
    });
    let report = run_all(&facts);
    assert!(reason(&report, CheckId::HypervisorType).contains("runs Xen"));
    // Newer destination is fine.
    let mut facts = good_facts();
    facts.destination_hypervisor = qemu(10_001_000);
    assert!(run_all(&facts).passed());
}

#[test]
fn cpu_incompatible_fails_unknown_warns() {
    let mut facts = good_facts();
    facts.cpu_compare = CpuCompareResult::Incompatible {
        detail: "host lacks avx512f".into(),
    };
    assert!(reason(&run_all(&facts), CheckId::CpuCompatible).contains("avx512f"));
    facts.cpu_compare = CpuCompareResult::Unknown {
        reason: "this libvirt driver does not support CPU comparison".into(),
    };
    let report = run_all(&facts);
    assert!(report.passed());
    assert!(matches!(
        report.outcome(CheckId::CpuCompatible),
        Some(CheckOutcome::Warn { .. })
    ));
}

#[test]
fn block_migration_choices_follow_nova() {
    let mut facts = good_facts();
    facts.shared_storage_probe = SharedStorageProbe::Shared;
    let report = run_all(&facts);
    assert!(report.passed());
    assert!(!report.plan.block_migration);
    assert!(report.plan.disks_to_copy.is_empty());

    facts.block_migration = BlockMigrationChoice::Yes;
    assert!(reason(&run_all(&facts), CheckId::Storage).contains("copy disks onto themselves"));

    facts.shared_storage_probe = SharedStorageProbe::NotShared;
    facts.block_migration = BlockMigrationChoice::No;
    assert!(reason(&run_all(&facts), CheckId::Storage).contains("local disks vda"));

    // Volume-backed guest: nothing local, so "no" is fine even without shared storage.
    facts.disks.retain(|d| d.storage == DiskStorage::Shared);
    let report = run_all(&facts);
    assert!(report.passed());
    assert!(!report.plan.block_migration);
}

#[test]
fn unknown_probe_copies_disks_to_be_safe() {
    let mut facts = good_facts();
    facts.shared_storage_probe = SharedStorageProbe::Unknown {
        reason: "ssh to hv2 timed out".into(),
    };
    let report = run_all(&facts);
    assert!(report.passed());
    assert!(report.plan.block_migration);
    assert!(reason(&report, CheckId::Storage).contains("ssh to hv2 timed out"));
}

#[test]
fn destination_disk_space_is_checked_for_copied_disks() {
    let mut facts = good_facts();
    facts.destination_free_disk_bytes = Some(GIB);
    assert_eq!(
        reason(&run_all(&facts), CheckId::DestinationDisk),
        "hv2: destination has 1024 MiB of disk free, copying vda needs 2048 MiB"
    );
    // Not copying: free disk does not matter.
    facts.shared_storage_probe = SharedStorageProbe::Shared;
    assert!(run_all(&facts).passed());
}

#[test]
fn unreachable_destination_says_why_and_how_to_fix() {
    let mut facts = good_facts();
    facts.destination_host = "hv9".into();
    facts.destination_host_up = false;
    facts.destination_host_problem = Some(HostProblem::NotConfigured {
        configured: vec!["hv1".into(), "hv2".into()],
    });
    let unknown = reason(&run_all(&facts), CheckId::DestinationHostUp);
    assert!(
        unknown.contains("hv9: unknown host")
            && unknown.contains("add it to the config")
            && unknown.contains("hv1, hv2"),
        "{unknown}"
    );

    facts.destination_host_problem = Some(HostProblem::Unreachable {
        error: "no answer within 15s".into(),
    });
    assert!(reason(&run_all(&facts), CheckId::DestinationHostUp).ends_with("15s"));

    facts.destination_host = "hv2;rm -rf /".into();
    facts.destination_host_problem = None;
    let report = run_all(&facts);
    assert!(reason(&report, CheckId::DestinationName).contains("';'"));
    assert!(reason(&report, CheckId::DestinationHostUp).contains("not contacted"));
}

#[test]
fn report_renders_one_line_per_check_and_a_verdict() {
    let report = run_all(&good_facts());
    let text = render_report(&report);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), report.checks.len() + 1);
    assert_eq!(lines[0], "✓ destination name is valid");
    assert_eq!(
        lines.last().unwrap(),
        &"passed: block migration copying vda (2048 MiB)"
    );

    let mut facts = good_facts();
    facts.instance_state = InstanceState::ShutOff;
    facts.cpu_compare = CpuCompareResult::Unknown {
        reason: "guest is emulated (TCG)".into(),
    };
    let text = render_report(&run_all(&facts));
    assert!(text.contains(
        "✗ instance is running or paused — web1: is shut off; live migration needs a running guest (use cold migration)\n"
    ));
    assert!(text.contains("! destination CPU runs the guest's CPU model — hv2: CPU comparison not made: guest is emulated (TCG)\n"));
    assert!(text.ends_with("refused: 1 check failed\n"));
}

#[test]
fn versions_print_like_libvirt() {
    assert_eq!(format_version(11_003_000), "11.3.0");
    assert_eq!(format_version(7_002_001), "7.2.1");
}
