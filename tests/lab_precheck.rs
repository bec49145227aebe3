//! Live-migration prechecks against the lab's real hosts: the facts gathered from libvirt on
//! both sides, the shared-storage probe, and every refusal the operator can meet. Nothing here
//! migrates, starts, stops or undefines the lab's guests (another engineer's tests move them
//! concurrently); the only guests started are ferry's own throwaway ones, removed again by
//! drop guards.
//!
//! Run one at a time, with the lab up, as root:
//!   FERRY_REQUIRE_LAB=1 cargo test --test lab_precheck -- --test-threads=1 --nocapture
//! With FERRY_REQUIRE_LAB=1 a missing lab fails these tests; without it they skip loudly.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{lab_or_skip, Lab, CALL_TIMEOUT};
use ferry::config::Config;
use ferry::engine::plan::PrecheckError;
use ferry::lab::guest::{domain_xml, GuestSpec};
use ferry::lab::plan::LabHost;
use ferry::libvirt::lifecycle::DomainKey;
use ferry::libvirt::probe::PROBE_NAME_PREFIX;
use ferry::model::domain::DomainRunState;
use ferry::model::units::MIB;
use ferry::precheck::{
    render_report, BlockMigrationChoice, CheckId, CheckOutcome, CpuCompareResult, PrecheckFacts,
    PrecheckReport, SharedStorageProbe,
};

/// The lab guests other tests may move between hosts while these run.
const SHARED_LAB_GUESTS: [&str; 3] = ["idle", "busy", "disk"];

const EVERY_CHECK: [CheckId; 12] = [
    CheckId::DestinationName,
    CheckId::DestinationDiffers,
    CheckId::InstanceState,
    CheckId::NoJobRunning,
    CheckId::SourceHostUp,
    CheckId::DestinationHostUp,
    CheckId::DestinationMemory,
    CheckId::HypervisorType,
    CheckId::HypervisorVersion,
    CheckId::CpuCompatible,
    CheckId::Storage,
    CheckId::DestinationDisk,
];

fn lab_config(lab: &Lab) -> Config {
    Config::load(&lab.plan.ferry_config_path()).expect("the lab's ferry config loads")
}

fn reason(report: &PrecheckReport, id: CheckId) -> String {
    match report.outcome(id).expect("check present") {
        CheckOutcome::Fail { reason } | CheckOutcome::Warn { reason } => reason.clone(),
        CheckOutcome::Pass => panic!("{id:?} passed"),
    }
}

fn assert_every_check_listed(report: &PrecheckReport) {
    let ids: Vec<CheckId> = report.checks.iter().map(|c| c.id).collect();
    assert_eq!(ids, EVERY_CHECK, "the report lists every check, in order");
}

fn failed(report: &PrecheckReport) -> Vec<CheckId> {
    report.failures().map(|c| c.id).collect()
}

/// (name, state) of every domain of a host.
fn domains_on(lab: &Lab, host: &LabHost) -> BTreeSet<(String, &'static str)> {
    ferry::runtime::wait(lab.connect(host).domains(CALL_TIMEOUT))
        .expect("list domains")
        .into_iter()
        .map(|d| (d.name, d.state.as_virsh_str()))
        .collect()
}

/// Nothing the precheck of `instance` could have caused is on `host`: the instance is not
/// defined there, and no other domain appeared or started, the shared lab guests aside (other
/// tests migrate them concurrently).
fn assert_nothing_started(
    lab: &Lab,
    host: &LabHost,
    instance: &str,
    before: &BTreeSet<(String, &'static str)>,
) {
    let after = domains_on(lab, host);
    assert!(
        !after.iter().any(|(name, _)| name == instance),
        "{instance} appeared on {}: {after:?}",
        host.name
    );
    assert_no_new_domains(host, before, &after);
}

fn assert_no_new_domains(
    host: &LabHost,
    before: &BTreeSet<(String, &'static str)>,
    after: &BTreeSet<(String, &'static str)>,
) {
    let new: Vec<_> = after
        .difference(before)
        .filter(|(name, _)| !SHARED_LAB_GUESTS.contains(&name.as_str()))
        .collect();
    assert!(
        new.is_empty(),
        "domains appeared or changed state on {}: {new:?}",
        host.name
    );
}

type DomainsByHost = Vec<(LabHost, BTreeSet<(String, &'static str)>)>;

/// Every domain of every host, for tests whose destination is no host at all.
fn all_domains(lab: &Lab) -> DomainsByHost {
    lab.plan
        .hosts
        .iter()
        .map(|host| (host.clone(), domains_on(lab, host)))
        .collect()
}

/// Nothing started anywhere: the instance stays on its source only, and no host gained a domain.
fn assert_nothing_started_anywhere(
    lab: &Lab,
    instance: &str,
    source: &LabHost,
    before: &DomainsByHost,
) {
    for (host, before) in before {
        if host.name == source.name {
            assert_no_new_domains(host, before, &domains_on(lab, host));
        } else {
            assert_nothing_started(lab, host, instance, before);
        }
    }
}

/// Probe volumes or transient probe pools left anywhere: in the directories the probes use
/// (as the operator's namespace sees them) and among every host's pools.
fn probe_leftovers(lab: &Lab) -> Vec<String> {
    let mut directories = vec![
        lab.plan.guest_dir(),
        lab.plan.shared_dir().join("instances"),
    ];
    directories.extend(
        lab.plan
            .hosts
            .iter()
            .map(|host| lab.plan.host_local_pool_dir(host)),
    );
    let mut leftovers: Vec<String> = directories
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(PROBE_NAME_PREFIX)
        })
        .map(|entry| entry.path().display().to_string())
        .collect();
    for host in &lab.plan.hosts {
        let pools: Vec<String> =
            ferry::runtime::wait(lab.connect(host).storage_pools(CALL_TIMEOUT))
                .expect("list pools")
                .into_iter()
                .map(|pool| pool.name)
                .collect();
        leftovers.extend(
            pools
                .into_iter()
                .filter(|name| name.starts_with(PROBE_NAME_PREFIX))
                .map(|name| format!("pool {name} on {}", host.name)),
        );
    }
    leftovers
}

fn assert_no_probe_leftovers(lab: &Lab) {
    let leftovers = probe_leftovers(lab);
    assert!(leftovers.is_empty(), "probe leftovers: {leftovers:?}");
}

/// The one host running the guest. The lab's guests are shared with other tests, which may be
/// migrating one (then it is on two hosts for a while): wait up to 90 s for it to settle, then
/// give None with a note.
fn running_host_of(lab: &Lab, guest: &str) -> Option<LabHost> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let placements = lab.placements(guest);
        if let [(host, facts)] = placements.as_slice() {
            if facts.state == DomainRunState::Running {
                return Some(host.clone());
            }
        }
        if Instant::now() > deadline {
            eprintln!(
                "note: {guest} is not running on exactly one host: {:?}",
                placements
                    .iter()
                    .map(|(h, f)| format!("{} {}", h.name, f.state.as_virsh_str()))
                    .collect::<Vec<_>>()
            );
            return None;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn print(facts: &PrecheckFacts, report: &PrecheckReport) {
    eprintln!(
        "--- {} {} -> {}\n{}",
        facts.instance_name,
        facts.source_host,
        facts.destination_host,
        render_report(report)
    );
}

/// The precheck with block migration left to ferry (auto), its checklist printed.
fn checked(
    config: &Config,
    instance: &str,
    source: Option<&str>,
    destination: &str,
) -> (PrecheckFacts, PrecheckReport) {
    let (facts, report) = ferry::runtime::wait(ferry::engine::plan::precheck_live_migration(
        config,
        instance,
        source,
        destination,
        BlockMigrationChoice::Auto,
    ))
    .unwrap_or_else(|error| panic!("{instance} to {destination}: {error}"));
    print(&facts, &report);
    (facts, report)
}

#[test]
fn idle_guest_passes_to_the_next_host_on_shared_storage() {
    let Some(lab) = lab_or_skip("idle_guest_passes_to_the_next_host_on_shared_storage") else {
        return;
    };
    let config = lab_config(&lab);
    let source = running_host_of(&lab, "idle").expect("lab up keeps idle running");
    let destination = lab.next_host(&source);
    let before = domains_on(&lab, &destination);

    let (facts, report) = checked(&config, "idle", None, &destination.name);

    assert!(report.passed(), "{}", render_report(&report));
    assert_every_check_listed(&report);
    // Nothing is left unchecked on the lab: every check passes outright.
    assert!(
        report
            .checks
            .iter()
            .all(|c| c.outcome == CheckOutcome::Pass),
        "{}",
        render_report(&report)
    );
    assert_eq!(facts.source_host, source.name, "found where it runs");
    assert_eq!(facts.instance_memory_bytes, 256 * MIB);
    assert!(facts.disks.is_empty(), "idle boots a kernel, no disks");
    assert_eq!(facts.shared_storage_probe, SharedStorageProbe::Shared);
    assert!(!report.plan.block_migration);
    assert!(report.plan.disks_to_copy.is_empty());
    assert!(matches!(
        facts.cpu_compare,
        CpuCompareResult::Superset | CpuCompareResult::Identical
    ));
    let hypervisor = facts
        .destination_hypervisor
        .as_ref()
        .expect("destination hypervisor");
    assert_eq!(hypervisor.hypervisor_type, "QEMU");
    assert_eq!(facts.source_hypervisor.as_ref(), Some(hypervisor));
    assert!(facts.destination_free_memory_bytes.unwrap_or(0) > facts.instance_memory_bytes);

    assert_nothing_started(&lab, &destination, "idle", &before);
    assert_no_probe_leftovers(&lab);
}

#[test]
fn disk_guest_needs_block_migration_of_its_local_disk() {
    let Some(lab) = lab_or_skip("disk_guest_needs_block_migration_of_its_local_disk") else {
        return;
    };
    let config = lab_config(&lab);
    let source = running_host_of(&lab, "disk").expect("lab up keeps disk running");
    let destination = lab.next_host(&source);
    let before = domains_on(&lab, &destination);

    let (facts, report) = checked(&config, "disk", Some(&source.name), &destination.name);

    assert!(report.passed(), "{}", render_report(&report));
    assert_every_check_listed(&report);
    assert_eq!(facts.shared_storage_probe, SharedStorageProbe::NotShared);
    let data = facts
        .disks
        .iter()
        .find(|d| d.target == "vdb")
        .expect("the data disk is listed");
    assert_eq!(
        data.source.as_deref(),
        Some("/var/lib/libvirt/images/disk-data.qcow2")
    );
    assert_eq!(data.storage, ferry::precheck::DiskStorage::Local);
    assert!(!data.read_only);
    // The qcow2 holds an 8 MiB pattern in a 64 MiB disk: its allocation, not its capacity.
    assert!(
        (8 * MIB..64 * MIB).contains(&data.size_bytes),
        "allocation {} bytes",
        data.size_bytes
    );
    assert!(report.plan.block_migration);
    assert_eq!(report.plan.disks_to_copy, ["vdb"]);
    assert_eq!(report.plan.bytes_to_copy, data.size_bytes);
    assert!(facts.destination_free_disk_bytes.unwrap_or(0) > data.size_bytes);

    // Refusing block migration leaves the local disk behind: refused, with every check listed.
    let (_, refused) = ferry::runtime::wait(ferry::engine::plan::precheck_live_migration(
        &config,
        "disk",
        Some(&source.name),
        &destination.name,
        BlockMigrationChoice::No,
    ))
    .expect("facts gathered");
    assert_eq!(failed(&refused), [CheckId::Storage]);
    assert!(reason(&refused, CheckId::Storage).contains("local disks vdb"));
    assert_every_check_listed(&refused);

    assert_nothing_started(&lab, &destination, "disk", &before);
    assert_no_probe_leftovers(&lab);
}

#[test]
fn same_host_is_refused() {
    let Some(lab) = lab_or_skip("same_host_is_refused") else {
        return;
    };
    let config = lab_config(&lab);
    let source = running_host_of(&lab, "idle").expect("lab up keeps idle running");
    let before = domains_on(&lab, &source);

    let (_, report) = checked(&config, "idle", None, &source.name);

    assert_eq!(failed(&report), [CheckId::DestinationDiffers]);
    assert!(reason(&report, CheckId::DestinationDiffers)
        .contains(&format!("idle already runs on {}", source.name)));
    assert_every_check_listed(&report);
    assert_no_new_domains(&source, &before, &domains_on(&lab, &source));
    assert_no_probe_leftovers(&lab);
}

#[test]
fn bad_destination_names_are_refused_without_contacting_anyone() {
    let Some(lab) = lab_or_skip("bad_destination_names_are_refused_without_contacting_anyone")
    else {
        return;
    };
    let config = lab_config(&lab);
    let source = running_host_of(&lab, "idle").expect("lab up keeps idle running");
    let before = all_domains(&lab);
    for (name, character) in [("hv2;rm -rf /", "';'"), ("hv2/system?x", "'/'")] {
        let (facts, report) = checked(&config, "idle", None, name);
        assert!(!facts.destination_host_up);
        assert_eq!(
            failed(&report),
            [CheckId::DestinationName, CheckId::DestinationHostUp],
            "{}",
            render_report(&report)
        );
        assert!(reason(&report, CheckId::DestinationName).contains(character));
        assert!(reason(&report, CheckId::DestinationHostUp).contains("not contacted"));
        assert_every_check_listed(&report);
    }
    // The same names as a source are refused before anything is read.
    let error = ferry::runtime::wait(ferry::engine::plan::precheck_live_migration(
        &config,
        "idle",
        Some("hv1;reboot"),
        "hv2",
        BlockMigrationChoice::Auto,
    ))
    .unwrap_err();
    assert!(
        matches!(error, PrecheckError::InvalidSourceName(_)),
        "{error}"
    );
    assert_nothing_started_anywhere(&lab, "idle", &source, &before);
    assert_no_probe_leftovers(&lab);
}

#[test]
fn unknown_destination_is_refused_with_how_to_add_it() {
    let Some(lab) = lab_or_skip("unknown_destination_is_refused_with_how_to_add_it") else {
        return;
    };
    let config = lab_config(&lab);
    let source = running_host_of(&lab, "idle").expect("lab up keeps idle running");
    let before = all_domains(&lab);
    let (_, report) = checked(&config, "idle", None, "hv99");
    assert_eq!(failed(&report), [CheckId::DestinationHostUp]);
    let why = reason(&report, CheckId::DestinationHostUp);
    assert!(
        why.starts_with("hv99: unknown host; add it to the config as a [[hosts]] entry")
            && why.contains("hv1, hv2"),
        "{why}"
    );
    assert_every_check_listed(&report);
    assert_nothing_started_anywhere(&lab, "idle", &source, &before);
    assert_no_probe_leftovers(&lab);
}

/// Undefines (and destroys, if running) a throwaway domain of the test, even on failure.
struct ThrowawayDomain {
    uri: String,
    name: String,
}

impl Drop for ThrowawayDomain {
    fn drop(&mut self) {
        let name = self.name.clone();
        let removed = ferry::runtime::wait(async {
            let connection =
                ferry::libvirt::HostConnection::connect(&self.uri, CALL_TIMEOUT).await?;
            connection
                .remove_copy(&DomainKey::Name(name), CALL_TIMEOUT)
                .await
        });
        if let Err(error) = removed {
            eprintln!("could not remove test domain {}: {error}", self.name);
        }
    }
}

fn throwaway_spec(name: &'static str, memory_mib: u64) -> GuestSpec {
    GuestSpec {
        name,
        memory_mib,
        workload_mib: 16,
        dirty_mib_per_second: 0,
        data_disk: None,
        start_at_lab_up: false,
    }
}

/// Defines (never starts) a 256 MiB lab-style guest on `host`; undefined when the guard drops.
fn define_throwaway(lab: &Lab, host: &LabHost, name: &'static str) -> ThrowawayDomain {
    let xml = domain_xml(&throwaway_spec(name, 256), &lab.plan);
    let guard = ThrowawayDomain {
        uri: lab.plan.uri(host),
        name: name.to_string(),
    };
    lab.connect(host)
        .define_domain(&xml, CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("define {name} on {}: {e}", host.name));
    guard
}

#[test]
fn shut_off_guest_is_refused() {
    let Some(lab) = lab_or_skip("shut_off_guest_is_refused") else {
        return;
    };
    let config = lab_config(&lab);
    let busy = lab.placements("busy");
    // The lab's busy guest is normally shut off; a concurrent migration test may have it
    // running, and then a never-started definition of ferry's own stands in for it.
    let busy_shut_off = match busy.as_slice() {
        [(host, facts)] if facts.state == DomainRunState::ShutOff => Some(host.clone()),
        _ => None,
    };
    let (instance, source, _guard) = if let Some(busy_host) = busy_shut_off {
        ("busy", busy_host, None)
    } else {
        eprintln!("note: busy is not shut off on one host (another test uses it); checking a defined, never started guest instead");
        let host = lab.plan.hosts[0].clone();
        let guard = define_throwaway(&lab, &host, "ferry-precheck-off");
        ("ferry-precheck-off", host, Some(guard))
    };
    let destination = lab.next_host(&source);
    let before = domains_on(&lab, &destination);

    let (_, report) = checked(&config, instance, None, &destination.name);
    assert_eq!(failed(&report), [CheckId::InstanceState]);
    assert_eq!(
        reason(&report, CheckId::InstanceState),
        format!(
            "{instance}: is shut off; live migration needs a running guest (use cold migration)"
        )
    );
    assert_every_check_listed(&report);
    assert_nothing_started(&lab, &destination, instance, &before);
    assert_no_probe_leftovers(&lab);
}

#[test]
fn guest_larger_than_the_destination_free_memory_is_refused() {
    let Some(lab) = lab_or_skip("guest_larger_than_the_destination_free_memory_is_refused") else {
        return;
    };
    let config = lab_config(&lab);
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);
    let destination_free_bytes =
        ferry::runtime::wait(lab.connect(&destination).free_memory(CALL_TIMEOUT))
            .expect("free memory");
    // The kernel's MemTotal: node info reads sysfs's NUMA node, which covers only part of the
    // lab machine's memory.
    let total_bytes = ferry::runtime::wait(lab.connect(&destination).node_memory(CALL_TIMEOUT))
        .expect("memory statistics")
        .total_bytes
        .expect("MemTotal reported");
    // QEMU allocates guest memory lazily and this guest touches 16 MiB, so a guest bigger
    // than the free memory starts as long as it stays below the machine's total, which the
    // kernel's overcommit heuristic would refuse. Halfway between the two holds on any
    // machine, however much of its memory others hold at the time.
    let free_mib = destination_free_bytes / MIB;
    let total_mib = total_bytes / MIB;
    assert!(
        free_mib < total_mib,
        "{free_mib} MiB free of {total_mib} MiB: the kernel's figures contradict each other"
    );
    let memory_mib = free_mib + (total_mib - free_mib).div_ceil(2);
    let spec = throwaway_spec("ferry-precheck-bigmem", memory_mib);
    let xml = domain_xml(&spec, &lab.plan);
    let _guard = ThrowawayDomain {
        uri: lab.plan.uri(&source),
        name: spec.name.to_string(),
    };
    ferry::runtime::wait(
        lab.connect(&source)
            .start_transient_guest(&xml, CALL_TIMEOUT),
    )
    .expect("start the transient big guest");
    let before = domains_on(&lab, &destination);

    let (facts, report) = checked(&config, spec.name, Some(&source.name), &destination.name);
    assert_eq!(facts.instance_memory_bytes, memory_mib * MIB);
    assert_eq!(failed(&report), [CheckId::DestinationMemory]);
    let why = reason(&report, CheckId::DestinationMemory);
    assert!(
        why.starts_with(&format!("{}: destination has ", destination.name))
            && why.contains(" free, guest needs "),
        "{why}"
    );
    assert_every_check_listed(&report);
    assert_nothing_started(&lab, &destination, spec.name, &before);
    assert_no_probe_leftovers(&lab);
}

#[test]
fn automatic_destination_is_the_passing_host_with_most_free_memory() {
    let Some(lab) = lab_or_skip("automatic_destination_is_the_passing_host_with_most_free_memory")
    else {
        return;
    };
    let config = lab_config(&lab);
    let source = running_host_of(&lab, "idle").expect("lab up keeps idle running");
    let before = all_domains(&lab);

    let auto = ferry::runtime::wait(ferry::engine::plan::pick_auto_destination(
        &config,
        "idle",
        None,
        BlockMigrationChoice::Auto,
    ))
    .expect("candidates checked");
    for candidate in &auto.candidates {
        print(&candidate.facts, &candidate.report);
        assert_every_check_listed(&candidate.report);
    }
    assert_eq!(auto.source_host, source.name);
    let others: Vec<&str> = lab
        .plan
        .hosts
        .iter()
        .filter(|h| h.name != source.name)
        .map(|h| h.name.as_str())
        .collect();
    let candidates: Vec<&str> = auto.candidates.iter().map(|c| c.host.as_str()).collect();
    assert_eq!(candidates, others, "every other host is a candidate");
    let chosen = auto.chosen.as_deref().expect("a lab host passes");
    let most_free = auto
        .candidates
        .iter()
        .filter(|c| c.report.passed())
        .map(|c| c.facts.destination_free_memory_bytes.unwrap_or(0))
        .max()
        .unwrap();
    let chosen_candidate = auto.candidates.iter().find(|c| c.host == chosen).unwrap();
    assert!(chosen_candidate.report.passed());
    assert_eq!(
        chosen_candidate.facts.destination_free_memory_bytes,
        Some(most_free)
    );
    assert_nothing_started_anywhere(&lab, "idle", &source, &before);
    assert_no_probe_leftovers(&lab);
}

#[test]
fn instance_not_on_the_named_source_is_an_error_naming_the_fix() {
    let Some(lab) = lab_or_skip("instance_not_on_the_named_source_is_an_error_naming_the_fix")
    else {
        return;
    };
    let config = lab_config(&lab);
    // A guest of this test's own, defined and never started: the lab's guests may move.
    let host = lab.plan.hosts[0].clone();
    let elsewhere = lab.next_host(&host);
    let _guard = define_throwaway(&lab, &host, "ferry-precheck-elsewhere");
    let error = ferry::runtime::wait(ferry::engine::plan::precheck_live_migration(
        &config,
        "ferry-precheck-elsewhere",
        Some(&elsewhere.name),
        &host.name,
        BlockMigrationChoice::Auto,
    ))
    .unwrap_err();
    assert!(
        matches!(error, PrecheckError::InstanceNotOnSource { .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "ferry-precheck-elsewhere: not defined on {}; check the name with `ferry instances`, \
             or leave the source out and ferry finds the host that runs it",
            elsewhere.name
        )
    );
    let error = ferry::runtime::wait(ferry::engine::plan::precheck_live_migration(
        &config,
        "no-such-guest",
        None,
        "hv2",
        BlockMigrationChoice::Auto,
    ))
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("no-such-guest: no reachable host defines it (looked on hv1, hv2"),
        "{error}"
    );
}
