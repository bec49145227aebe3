//! Issue 6 on the lab: cold migration with confirm and revert, against real libvirtd + QEMU.
//!
//! The lab's own guests (idle, busy, disk) belong to other tests and are never touched here.
//! These tests define their own guests on hv1 (`cold-a`, `cold-b`, …; see
//! tests/common/cold_guests.rs) with a 64 MiB qcow2 data disk of known content in hv1's
//! private `local` pool, and remove them from every host afterwards, also when a test fails.
//! Their init answers the ACPI power button (see tests/cold_guest_init.c), so the graceful
//! shutdown is the real one.
//!
//! Run one at a time, as root, with the lab up:
//!   FERRY_REQUIRE_LAB=1 cargo test --test lab_cold -- --test-threads=1 --nocapture
//! The copy benchmark is ignored by default:
//!   cargo test --release --test lab_cold -- --ignored --nocapture copy_throughput

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cold_guests::{
    data_volume_name, disk_sha256_on, hex, presence, refresh_local_pool, run, set_up,
    volume_exists, Acpi, GuestSpec, BOOT_TIMEOUT,
};
use common::{lab_or_skip, Lab, CALL_TIMEOUT};
use ferry::config::Config;
use ferry::engine::cold::{
    self, ColdCommand, ColdMigrationPlan, ColdOptions, ColdOutcome, ColdPhase, ColdUpdate,
};
use ferry::engine::cold_record;
use ferry::engine::history::History;
use ferry::lab::plan::LabHost;
use ferry::libvirt::lifecycle::DomainKey;
use ferry::libvirt::volume_copy::{copy_volume, CopySettings, NewVolume, VolumeRef};
use ferry::libvirt::HostConnection;
use ferry::runtime::wait;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::UnboundedReceiver;

fn lab_config(lab: &Lab) -> Config {
    Config::load(&lab.plan.ferry_config_path()).expect("the lab's ferry config")
}

fn plan_for(
    lab: &Lab,
    guest: &str,
    destination: &LabHost,
    options: ColdOptions,
) -> ColdMigrationPlan {
    let planning = wait(cold::plan(
        &lab_config(lab),
        guest,
        &destination.name,
        &options,
    ))
    .unwrap_or_else(|e| panic!("planning {guest}: {e}"));
    planning.plan.unwrap_or_else(|| {
        panic!(
            "prechecks of {guest} failed: {:?}",
            planning.report.failures().collect::<Vec<_>>()
        )
    })
}

/// Runs the migration to its end, printing phases as they come; returns outcome and updates.
fn drive(plan: &ColdMigrationPlan) -> (ColdOutcome, Vec<ColdUpdate>) {
    let mut handle = cold::start(plan.clone());
    let updates = collect(&mut handle.updates, |_| false);
    let outcome = wait(handle.task).expect("cold migration task");
    (outcome, updates)
}

/// Reads updates (printing phases and steps) until `stop` says so or the migration ends.
fn collect(
    updates: &mut UnboundedReceiver<ColdUpdate>,
    mut stop: impl FnMut(&ColdUpdate) -> bool,
) -> Vec<ColdUpdate> {
    let mut seen = Vec::new();
    while let Some(update) = updates.blocking_recv() {
        match &update {
            ColdUpdate::Progress(_) => {}
            other => eprintln!("  {}", serde_json::to_string(other).unwrap()),
        }
        let done = stop(&update);
        seen.push(update);
        if done {
            break;
        }
    }
    seen
}

fn has_phase(updates: &[ColdUpdate], wanted: impl Fn(&ColdPhase) -> bool) -> bool {
    updates
        .iter()
        .any(|u| matches!(u, ColdUpdate::Phase(p) if wanted(p)))
}

fn expect_awaiting_confirm(outcome: &ColdOutcome) {
    assert!(
        matches!(outcome, ColdOutcome::AwaitingConfirm { .. }),
        "expected awaiting confirm, got {outcome:?}"
    );
}

#[test]
fn running_guest_cold_migrates_and_confirm_removes_the_source_copy() {
    let Some(lab) = lab_or_skip("running_guest_cold_migrates_and_confirm_removes_the_source_copy")
    else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-a",
            running: true,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_a000,
        }],
    );
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);
    let source_console = lab.console_length(&source, "cold-a");
    let destination_console = lab.console_length(&destination, "cold-a");

    let plan = plan_for(&lab, "cold-a", &destination, ColdOptions::default());
    assert!(plan.instance_was_running);
    assert_eq!(plan.copied_disks().count(), 1);
    let (outcome, updates) = drive(&plan);
    expect_awaiting_confirm(&outcome);
    eprintln!("outcome: {}", serde_json::to_string(&outcome).unwrap());

    // The graceful path: the guest itself answered the ACPI request.
    lab.wait_for_console(
        &source,
        "cold-a",
        source_console,
        "powering off (ACPI power button)",
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(!has_phase(&updates, |p| *p == ColdPhase::PoweringOffHard));
    for wanted in [
        "copying",
        "verifying",
        "defining",
        "starting",
        "awaiting_confirm",
    ] {
        assert!(
            updates.iter().any(|u| matches!(u, ColdUpdate::Phase(p)
                if serde_json::to_value(p).unwrap()["phase"] == wanted)),
            "no {wanted} phase"
        );
    }
    let progress: Vec<_> = updates
        .iter()
        .filter_map(|u| match u {
            ColdUpdate::Progress(p) if !p.verifying => Some(p),
            _ => None,
        })
        .collect();
    let last = progress.last().expect("copy progress");
    assert_eq!(last.bytes_done, last.bytes_total);
    assert!(updates
        .iter()
        .any(|u| matches!(u, ColdUpdate::Verified { target, .. } if target == "vdb")));

    // Boots on the destination, with the same disk content.
    lab.wait_for_console(
        &destination,
        "cold-a",
        destination_console,
        "FERRY-GUEST cold-a up: acpi=poweroff button=loaded",
        BOOT_TIMEOUT,
    )
    .unwrap();
    assert!(presence(&lab, &destination, "cold-a").unwrap().active);
    assert_eq!(
        disk_sha256_on(&lab, &destination, "cold-a"),
        guests.sha256_of("cold-a")
    );
    // The source copy waits, untouched and inactive.
    let on_source = presence(&lab, &source, "cold-a").expect("still defined on the source");
    assert!(!on_source.active && on_source.persistent);
    assert_eq!(
        disk_sha256_on(&lab, &source, "cold-a"),
        guests.sha256_of("cold-a")
    );

    let report = wait(cold::confirm(&plan, CALL_TIMEOUT)).expect("confirm");
    eprintln!("confirm: {:?}", report.steps);
    assert_eq!(presence(&lab, &source, "cold-a"), None);
    assert!(!volume_exists(&lab, &source, "cold-a"));
    assert!(presence(&lab, &destination, "cold-a").unwrap().active);
    assert!(volume_exists(&lab, &destination, "cold-a"));
    // Confirm again: nothing left to do, no harm.
    let again = wait(cold::confirm(&plan, CALL_TIMEOUT)).expect("second confirm");
    assert!(
        again.steps.iter().all(|s| s.contains("already")),
        "{:?}",
        again.steps
    );
}

#[test]
fn revert_puts_the_guest_back_on_its_source() {
    let Some(lab) = lab_or_skip("revert_puts_the_guest_back_on_its_source") else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-a",
            running: true,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_a001,
        }],
    );
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);
    let plan = plan_for(&lab, "cold-a", &destination, ColdOptions::default());
    let (outcome, _) = drive(&plan);
    expect_awaiting_confirm(&outcome);
    assert!(presence(&lab, &destination, "cold-a").unwrap().active);

    let source_console = lab.console_length(&source, "cold-a");
    let report = wait(cold::revert(&plan, CALL_TIMEOUT)).expect("revert");
    eprintln!("revert: {:?}", report.steps);
    lab.wait_for_console(&source, "cold-a", source_console, "up: acpi=", BOOT_TIMEOUT)
        .unwrap();
    assert!(presence(&lab, &source, "cold-a").unwrap().active);
    assert_eq!(
        disk_sha256_on(&lab, &source, "cold-a"),
        guests.sha256_of("cold-a")
    );
    assert_eq!(presence(&lab, &destination, "cold-a"), None);
    assert!(!volume_exists(&lab, &destination, "cold-a"));
    // Confirm after a revert finds no copy on the destination and refuses.
    let refused = wait(cold::confirm(&plan, CALL_TIMEOUT)).unwrap_err();
    assert!(
        refused.to_string().contains("no copy anywhere"),
        "{refused}"
    );
}

#[test]
fn shut_off_guest_cold_migrates_and_stays_shut_off() {
    let Some(lab) = lab_or_skip("shut_off_guest_cold_migrates_and_stays_shut_off") else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-b",
            running: false,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_b000,
        }],
    );
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);
    let plan = plan_for(&lab, "cold-b", &destination, ColdOptions::default());
    assert!(!plan.instance_was_running);
    let (outcome, updates) = drive(&plan);
    expect_awaiting_confirm(&outcome);
    let ColdOutcome::AwaitingConfirm { downtime_ms, .. } = outcome else {
        unreachable!()
    };
    assert_eq!(downtime_ms, None);
    assert!(!has_phase(&updates, |p| matches!(
        p,
        ColdPhase::ShuttingDown { .. } | ColdPhase::Starting
    )));
    let on_destination = presence(&lab, &destination, "cold-b").unwrap();
    assert!(!on_destination.active && on_destination.persistent);
    assert!(!presence(&lab, &source, "cold-b").unwrap().active);
    assert_eq!(
        disk_sha256_on(&lab, &destination, "cold-b"),
        guests.sha256_of("cold-b")
    );
    wait(cold::confirm(&plan, CALL_TIMEOUT)).expect("confirm");
    assert_eq!(presence(&lab, &source, "cold-b"), None);
    assert!(!volume_exists(&lab, &source, "cold-b"));
    assert!(!presence(&lab, &destination, "cold-b").unwrap().active);
}

#[test]
fn a_guest_ignoring_acpi_stays_running_unless_a_hard_power_off_is_allowed() {
    let Some(lab) =
        lab_or_skip("a_guest_ignoring_acpi_stays_running_unless_a_hard_power_off_is_allowed")
    else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-c",
            running: true,
            acpi: Acpi::Ignore,
            seed: 0xc01d_c000,
        }],
    );
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);
    let options = ColdOptions {
        shutdown_timeout: Duration::from_secs(8),
        ..ColdOptions::default()
    };
    let plan = plan_for(&lab, "cold-c", &destination, options.clone());
    let (outcome, _) = drive(&plan);
    let ColdOutcome::Refused { detail } = &outcome else {
        panic!("expected refused, got {outcome:?}");
    };
    assert!(detail.contains("did not power off within 8 s"), "{detail}");
    assert!(detail.contains("left running"), "{detail}");
    assert!(presence(&lab, &source, "cold-c").unwrap().active);
    assert_eq!(presence(&lab, &destination, "cold-c"), None);
    assert!(!volume_exists(&lab, &destination, "cold-c"));

    let hard = plan_for(
        &lab,
        "cold-c",
        &destination,
        ColdOptions {
            hard_power_off_allowed: true,
            ..options
        },
    );
    let destination_console = lab.console_length(&destination, "cold-c");
    let (outcome, updates) = drive(&hard);
    expect_awaiting_confirm(&outcome);
    assert!(has_phase(&updates, |p| *p == ColdPhase::PoweringOffHard));
    lab.wait_for_console(
        &destination,
        "cold-c",
        destination_console,
        "up: acpi=",
        BOOT_TIMEOUT,
    )
    .unwrap();
    assert_eq!(
        disk_sha256_on(&lab, &destination, "cold-c"),
        guests.sha256_of("cold-c")
    );
    wait(cold::revert(&hard, CALL_TIMEOUT)).expect("revert");
    assert!(presence(&lab, &source, "cold-c").unwrap().active);
    assert_eq!(presence(&lab, &destination, "cold-c"), None);
}

/// Brings a lab host's link back even if the test fails half-way.
struct LinkDown(String);

impl LinkDown {
    fn take(link: &str) -> LinkDown {
        run("ip", &["link", "set", link, "down"]);
        LinkDown(link.to_string())
    }
}

impl Drop for LinkDown {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "set", &self.0, "up"])
            .status();
    }
}

#[test]
fn destination_lost_mid_copy_rolls_back_to_the_running_source() {
    let Some(lab) = lab_or_skip("destination_lost_mid_copy_rolls_back_to_the_running_source")
    else {
        return;
    };
    // Declared first, dropped last: the link is back before the guests are removed.
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-a",
            running: true,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_a002,
        }],
    );
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);
    let mut plan = plan_for(
        &lab,
        "cold-a",
        &destination,
        ColdOptions {
            // Slow enough to cut the network mid-copy.
            copy_bandwidth_mib_per_second: Some(4),
            destination_cleanup_window: Duration::from_secs(180),
            ..ColdOptions::default()
        },
    );
    plan.call_timeout = Duration::from_secs(5);
    let source_console = lab.console_length(&source, "cold-a");
    let mut handle = cold::start(plan.clone());
    let mut updates = collect(
        &mut handle.updates,
        |u| matches!(u, ColdUpdate::Progress(p) if !p.verifying && p.bytes_done >= 4 << 20),
    );
    let link = LinkDown::take(&destination.veth);
    let down_at = Instant::now();
    eprintln!("{} link down", destination.name);
    updates.extend(collect(&mut handle.updates, |u| {
        matches!(u, ColdUpdate::RollbackStep { description } if description.contains("started cold-a again"))
    }));
    assert!(
        presence(&lab, &source, "cold-a").unwrap().active,
        "running on its source while the destination is still unreachable"
    );
    // Long enough that the old ssh connection to the destination is given up (15 s).
    std::thread::sleep(Duration::from_secs(20).saturating_sub(down_at.elapsed()));
    drop(link);
    eprintln!("{} link up after {:?}", destination.name, down_at.elapsed());
    updates.extend(collect(&mut handle.updates, |_| false));
    let outcome = wait(handle.task).unwrap();
    let ColdOutcome::RolledBack { detail, leftovers } = &outcome else {
        panic!("expected rolled back, got {outcome:?}");
    };
    eprintln!("rolled back: {detail}");
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    assert!(updates
        .iter()
        .any(|u| matches!(u, ColdUpdate::RollbackStep { description } if description.contains("deleted the copy"))));

    lab.wait_for_console(&source, "cold-a", source_console, "up: acpi=", BOOT_TIMEOUT)
        .unwrap();
    assert!(presence(&lab, &source, "cold-a").unwrap().active);
    assert_eq!(
        disk_sha256_on(&lab, &source, "cold-a"),
        guests.sha256_of("cold-a")
    );
    assert_eq!(presence(&lab, &destination, "cold-a"), None);
    assert!(!volume_exists(&lab, &destination, "cold-a"));
}

/// 1 GiB of non-zero pseudo-random data: no sparse or compression shortcut helps anyone.
fn write_bench_volume(path: &Path) {
    use std::io::Write;
    let mut file = std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(path).unwrap());
    let mut state: u64 = 0x5eed_0ff3_4400;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&(state | 1).to_le_bytes());
        }
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
}

/// Removes the benchmark volume from the hosts it was on, pass or fail.
struct BenchVolume<'a> {
    lab: &'a Lab,
    hosts: Vec<LabHost>,
    volume: VolumeRef,
}

impl Drop for BenchVolume<'_> {
    fn drop(&mut self) {
        for host in &self.hosts {
            let connection = self.lab.connect(host);
            let _ = wait(connection.delete_volume(&self.volume, CALL_TIMEOUT));
            let _ = std::fs::remove_file(
                self.lab
                    .plan
                    .host_local_pool_dir(host)
                    .join(&self.volume.name),
            );
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

#[test]
#[ignore = "benchmark: 6 GiB through the lab; run with --ignored --nocapture"]
fn copy_throughput_ferry_stream_vs_virsh_pipe() {
    let Some(lab) = lab_or_skip("copy_throughput_ferry_stream_vs_virsh_pipe") else {
        return;
    };
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);
    let volume = VolumeRef {
        pool: "local".into(),
        name: "cold-bench-1g.raw".into(),
    };
    let _cleanup = BenchVolume {
        lab: &lab,
        hosts: vec![source.clone(), destination.clone()],
        volume: volume.clone(),
    };
    let source_connection = lab.connect(&source);
    let destination_connection = lab.connect(&destination);
    write_bench_volume(&lab.plan.host_local_pool_dir(&source).join(&volume.name));
    refresh_local_pool(&source_connection);
    let bytes = wait(source_connection.volume(&volume, CALL_TIMEOUT))
        .unwrap()
        .expect("benchmark volume")
        .physical_bytes;
    assert_eq!(bytes, 1 << 30);
    let fresh_destination = || {
        let _ = wait(destination_connection.delete_volume(&volume, CALL_TIMEOUT));
        wait(destination_connection.create_volume(
            "local",
            &NewVolume {
                name: volume.name.clone(),
                format: "raw".into(),
                capacity_bytes: bytes,
            },
            CALL_TIMEOUT,
        ))
        .unwrap();
    };
    let chunk_sizes_mib: Vec<u64> = std::env::var("FERRY_COLD_BENCH_CHUNKS_MIB")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| vec![cold::DEFAULT_COPY_CHUNK_BYTES >> 20]);
    let runs = 3;
    let mut results: Vec<(String, Vec<f64>)> = Vec::new();
    for chunk_mib in &chunk_sizes_mib {
        results.push((
            format!("ferry stream copy, {chunk_mib} MiB chunks"),
            Vec::new(),
        ));
    }
    results.push(("virsh vol-download | virsh vol-upload".into(), Vec::new()));
    let pipe = format!(
        "virsh -q -c '{}' vol-download --pool local {name} /dev/stdout | \
         virsh -q -c '{}' vol-upload --pool local {name} /dev/stdin",
        lab.plan.uri(&source),
        lab.plan.uri(&destination),
        name = volume.name
    );
    for run_number in 1..=runs {
        // Interleaved, so background load on the shared machine hits both alike.
        for (index, chunk_mib) in chunk_sizes_mib.iter().enumerate() {
            fresh_destination();
            let started = Instant::now();
            let digest = wait(copy_volume(
                &source_connection,
                &volume,
                &destination_connection,
                &volume,
                CopySettings {
                    chunk_bytes: (*chunk_mib << 20) as usize,
                    call_timeout: Duration::from_secs(30),
                    bandwidth_bytes_per_second: None,
                },
                &mut |_| std::ops::ControlFlow::Continue(()),
            ))
            .unwrap();
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!(digest.bytes, bytes);
            let rate = bytes as f64 / (1 << 20) as f64 / seconds;
            eprintln!(
                "run {run_number}: {}: {rate:.0} MiB/s ({seconds:.2} s)",
                results[index].0
            );
            results[index].1.push(rate);
        }
        fresh_destination();
        let started = Instant::now();
        let status = Command::new("sh").args(["-c", &pipe]).status().unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert!(status.success(), "virsh pipe failed");
        let rate = bytes as f64 / (1 << 20) as f64 / seconds;
        eprintln!("run {run_number}: virsh pipe: {rate:.0} MiB/s ({seconds:.2} s)");
        results.last_mut().unwrap().1.push(rate);
    }
    eprintln!(
        "\n1 GiB {} → {} ({runs} runs each, MiB/s):",
        source.name, destination.name
    );
    let mut medians = Vec::new();
    for (name, rates) in &mut results {
        let shown: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        let middle = median(rates);
        eprintln!("  {name:<45} {}  median {middle:.0}", shown.join(" "));
        medians.push(middle);
    }
    let virsh = *medians.last().unwrap();
    let ferry_best = medians[..medians.len() - 1]
        .iter()
        .cloned()
        .fold(0.0, f64::max);
    let faster = virsh.max(ferry_best);
    eprintln!(
        "  ferry / faster = {:.2} (goal ≥ 0.90)",
        ferry_best / faster
    );
    assert!(
        ferry_best >= 0.9 * faster,
        "ferry's copy ran at {ferry_best:.0} MiB/s, below 0.9 × {faster:.0} MiB/s"
    );
}

#[test]
fn operator_abort_mid_copy_leaves_the_shut_off_guest_as_it_was() {
    let Some(lab) = lab_or_skip("operator_abort_mid_copy_leaves_the_shut_off_guest_as_it_was")
    else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-b",
            running: false,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_b001,
        }],
    );
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);
    let plan = plan_for(
        &lab,
        "cold-b",
        &destination,
        ColdOptions {
            copy_bandwidth_mib_per_second: Some(4),
            ..ColdOptions::default()
        },
    );
    let mut handle = cold::start(plan.clone());
    let mut updates = collect(
        &mut handle.updates,
        |u| matches!(u, ColdUpdate::Progress(p) if p.bytes_done >= 4 << 20),
    );
    handle.commands.send(ColdCommand::Abort).unwrap();
    updates.extend(collect(&mut handle.updates, |_| false));
    let outcome = wait(handle.task).unwrap();
    let ColdOutcome::RolledBack { detail, leftovers } = &outcome else {
        panic!("expected rolled back, got {outcome:?}");
    };
    assert_eq!(detail, "aborted by the operator");
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    assert!(!has_phase(&updates, |p| *p == ColdPhase::Defining));
    let on_source = presence(&lab, &source, "cold-b").unwrap();
    assert!(
        !on_source.active,
        "a shut-off guest is not started by a rollback"
    );
    assert_eq!(
        disk_sha256_on(&lab, &source, "cold-b"),
        guests.sha256_of("cold-b")
    );
    assert_eq!(presence(&lab, &destination, "cold-b"), None);
    assert!(!volume_exists(&lab, &destination, "cold-b"));
}

/// Updates the migration has already sent, without waiting for more (printed as `collect` does).
fn take_pending(updates: &mut UnboundedReceiver<ColdUpdate>) -> Vec<ColdUpdate> {
    let pending: Vec<ColdUpdate> = std::iter::from_fn(|| updates.try_recv().ok()).collect();
    for update in &pending {
        if !matches!(update, ColdUpdate::Progress(_)) {
            eprintln!("  {}", serde_json::to_string(update).unwrap());
        }
    }
    pending
}

/// A domain an operator defined by hand, not ferry's. Removed when dropped (pass or fail), by
/// its UUID, so that no other domain of the same name is touched.
struct OperatorDomain<'a> {
    lab: &'a Lab,
    host: LabHost,
    uuid: String,
}

impl OperatorDomain<'_> {
    /// Defines (does not start) a small domain called `name` on `host`; libvirt picks its UUID.
    fn define<'a>(lab: &'a Lab, host: &LabHost, name: &str) -> OperatorDomain<'a> {
        let xml = format!(
            "<domain type='qemu'>
  <name>{name}</name>
  <description>an operator's own domain, not made by ferry</description>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
</domain>
"
        );
        let defined = lab
            .connect(host)
            .define_domain(&xml, CALL_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: defining the operator's {name}: {e}", host.name));
        OperatorDomain {
            lab,
            host: host.clone(),
            uuid: defined.uuid,
        }
    }
}

impl Drop for OperatorDomain<'_> {
    fn drop(&mut self) {
        match HostConnection::open(&self.lab.plan.uri(&self.host), CALL_TIMEOUT) {
            Ok(connection) => {
                let _ =
                    connection.undefine_domain(&DomainKey::Uuid(self.uuid.clone()), CALL_TIMEOUT);
            }
            Err(e) => eprintln!("cleanup: {} unreachable: {e}", self.host.name),
        }
    }
}

/// The destination refuses the definition: while the disks were being copied, an operator
/// defined another domain of the same name there (another UUID), too late for the prechecks
/// to see it. libvirt then refuses ferry's define, and the rollback must leave that domain be.
#[test]
fn a_definition_refused_by_the_destination_rolls_back_and_spares_the_operators_domain() {
    let Some(lab) = lab_or_skip(
        "a_definition_refused_by_the_destination_rolls_back_and_spares_the_operators_domain",
    ) else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-e",
            running: true,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_e000,
        }],
    );
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);
    let plan = plan_for(
        &lab,
        "cold-e",
        &destination,
        ColdOptions {
            // About 8 s of copying: time to put the conflict in place before the define.
            copy_bandwidth_mib_per_second: Some(4),
            ..ColdOptions::default()
        },
    );
    let source_console = lab.console_length(&source, "cold-e");
    let mut handle = cold::start(plan.clone());
    let mut updates = collect(
        &mut handle.updates,
        |u| matches!(u, ColdUpdate::Progress(p) if !p.verifying && p.bytes_done >= 4 << 20),
    );
    // Declared after the guests, so dropped (undefined) before them.
    let operators = OperatorDomain::define(&lab, &destination, "cold-e");
    eprintln!(
        "{}: the operator's cold-e defined, UUID {}",
        destination.name, operators.uuid
    );
    assert_ne!(operators.uuid, plan.instance_uuid);
    // The engine announces Defining before it calls libvirt: not announced yet means ferry's
    // define comes after the conflict is in place, however the timing falls.
    updates.extend(take_pending(&mut handle.updates));
    assert!(
        !has_phase(&updates, |p| *p == ColdPhase::Defining),
        "the migration reached its define before the conflict was in place; copy slower"
    );
    updates.extend(collect(&mut handle.updates, |_| false));
    let outcome = wait(handle.task).unwrap();
    let ColdOutcome::RolledBack { detail, leftovers } = &outcome else {
        panic!("expected rolled back, got {outcome:?}");
    };
    eprintln!("rolled back: {detail}");
    assert!(
        detail.starts_with(&format!("{}: the definition was refused", destination.name)),
        "{detail}"
    );
    assert!(
        detail.contains(&operators.uuid),
        "libvirt's refusal names the domain in the way: {detail}"
    );
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    assert!(
        updates
            .iter()
            .any(|u| matches!(u, ColdUpdate::Verified { target, .. } if target == "vdb")),
        "the copy was whole and verified before the define"
    );
    assert!(updates
        .iter()
        .any(|u| matches!(u, ColdUpdate::RollbackStep { description }
        if description.contains("deleted the copy"))));

    // Ferry removes only what it made: the operator's domain is still there, as it was.
    let on_destination =
        presence(&lab, &destination, "cold-e").expect("the operator's cold-e is still defined");
    assert_eq!(on_destination.uuid, operators.uuid);
    assert!(on_destination.persistent && !on_destination.active);
    assert!(!updates
        .iter()
        .any(|u| matches!(u, ColdUpdate::RollbackStep { description }
        if description.contains("definition") || description.contains("stopped"))));
    assert!(!volume_exists(&lab, &destination, "cold-e"));

    lab.wait_for_console(&source, "cold-e", source_console, "up: acpi=", BOOT_TIMEOUT)
        .unwrap();
    let on_source = presence(&lab, &source, "cold-e").unwrap();
    assert!(on_source.active, "started again on its source");
    assert_eq!(on_source.uuid, plan.instance_uuid);
    assert_eq!(
        disk_sha256_on(&lab, &source, "cold-e"),
        guests.sha256_of("cold-e")
    );
}

/// Where the destination copy is corrupted: inside the guest data, past the qcow2 metadata
/// (header, refcount and L1/L2 tables fill the first few 64 KiB clusters of a 64 MiB image)
/// and past the 192 KiB file libvirt creates for the empty volume before the upload.
const CORRUPTION_OFFSET_BYTES: u64 = 2 << 20;
const CORRUPTION_LENGTH_BYTES: usize = 4096;

/// Waits until the file at `path` is at least `length_bytes` long; returns it opened for
/// reading and writing (never created: a deleted copy stays deleted).
fn wait_for_file_length(path: &Path, length_bytes: u64, timeout: Duration) -> File {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(file) = OpenOptions::new().read(true).write(true).open(path) {
            if file.metadata().unwrap().len() >= length_bytes {
                return file;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not reach {length_bytes} bytes within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn file_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The copy that landed on the destination is not what the source sent: a few bytes of the
/// destination file are overwritten on disk while the upload is still running. The read-back
/// must catch it, and the migration roll back with the source untouched.
#[test]
fn a_copy_corrupted_on_the_destination_fails_verification_and_rolls_back() {
    let Some(lab) =
        lab_or_skip("a_copy_corrupted_on_the_destination_fails_verification_and_rolls_back")
    else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-f",
            running: true,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_f000,
        }],
    );
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);
    let plan = plan_for(
        &lab,
        "cold-f",
        &destination,
        ColdOptions {
            // About 8 s of copying, most of it after the corrupted range is written.
            copy_bandwidth_mib_per_second: Some(4),
            ..ColdOptions::default()
        },
    );
    let source_image = lab
        .plan
        .host_local_pool_dir(&source)
        .join(data_volume_name("cold-f"));
    let copy_path = lab
        .plan
        .host_local_pool_dir(&destination)
        .join(data_volume_name("cold-f"));
    let source_console = lab.console_length(&source, "cold-f");
    let mut handle = cold::start(plan.clone());
    let mut updates = collect(
        &mut handle.updates,
        |u| matches!(u, ColdUpdate::Progress(p) if !p.verifying && p.bytes_done >= 4 << 20),
    );
    // The guest is off while its disk is copied and nothing else writes the image, so these
    // are the bytes the source streams. Their complement differs from them in every byte.
    let offset = CORRUPTION_OFFSET_BYTES as usize;
    let source_bytes = std::fs::read(&source_image).unwrap();
    let corruption: Vec<u8> = source_bytes[offset..offset + CORRUPTION_LENGTH_BYTES]
        .iter()
        .map(|b| !b)
        .collect();
    let mut expected_landed = source_bytes.clone();
    expected_landed[offset..offset + CORRUPTION_LENGTH_BYTES].copy_from_slice(&corruption);
    // The upload writes the file front to back through one stream into a file that starts at
    // 192 KiB: once the file is longer than the range, the range holds the upload's bytes and
    // nothing writes there again before the read-back. A MiB of margin all the same.
    let copy = wait_for_file_length(
        &copy_path,
        CORRUPTION_OFFSET_BYTES + CORRUPTION_LENGTH_BYTES as u64 + (1 << 20),
        Duration::from_secs(60),
    );
    copy.write_all_at(&corruption, CORRUPTION_OFFSET_BYTES)
        .unwrap();
    copy.sync_data().unwrap();
    eprintln!(
        "{}: {CORRUPTION_LENGTH_BYTES} bytes at {CORRUPTION_OFFSET_BYTES} of {} overwritten",
        destination.name,
        copy_path.display()
    );
    // The engine announces Verifying before it opens the read-back: not announced yet means
    // the read-back starts after the corruption, however the timing falls.
    updates.extend(take_pending(&mut handle.updates));
    assert!(
        !has_phase(&updates, |p| matches!(p, ColdPhase::Verifying { .. })),
        "the copy finished before the corruption landed; copy slower"
    );
    updates.extend(collect(&mut handle.updates, |_| false));
    let outcome = wait(handle.task).unwrap();
    // Read through the still-open file, deleted by now: the corruption was there to the end.
    let mut held = vec![0u8; CORRUPTION_LENGTH_BYTES];
    copy.read_exact_at(&mut held, CORRUPTION_OFFSET_BYTES)
        .unwrap();
    assert_eq!(held, corruption, "the corrupted range was written again");
    drop(copy);

    let ColdOutcome::RolledBack { detail, leftovers } = &outcome else {
        panic!("expected rolled back, got {outcome:?}");
    };
    eprintln!("rolled back: {detail}");
    assert!(
        detail.starts_with(&format!(
            "vdb: the copy on {} differs from the source on {}",
            destination.name, source.name
        )),
        "{detail}"
    );
    // Both sides of the comparison are the real bytes: what the source file holds, and that
    // same file with exactly the corruption in it.
    assert!(
        detail.contains(&format!("{} sent", file_sha256(&source_bytes))),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("{} there", file_sha256(&expected_landed))),
        "{detail}"
    );
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    assert!(has_phase(&updates, |p| matches!(
        p,
        ColdPhase::Verifying { .. }
    )));
    assert!(!updates
        .iter()
        .any(|u| matches!(u, ColdUpdate::Verified { .. })));
    assert!(!has_phase(&updates, |p| *p == ColdPhase::Defining));
    assert!(updates
        .iter()
        .any(|u| matches!(u, ColdUpdate::RollbackStep { description }
        if description.contains("deleted the copy"))));

    assert_eq!(presence(&lab, &destination, "cold-f"), None);
    assert!(!volume_exists(&lab, &destination, "cold-f"));
    assert!(!copy_path.exists(), "{} still on disk", copy_path.display());
    lab.wait_for_console(&source, "cold-f", source_console, "up: acpi=", BOOT_TIMEOUT)
        .unwrap();
    let on_source = presence(&lab, &source, "cold-f").unwrap();
    assert!(on_source.active, "started again on its source");
    assert_eq!(
        disk_sha256_on(&lab, &source, "cold-f"),
        guests.sha256_of("cold-f")
    );
}

/// `ferry migrate --cold`, `ferry revert`, `ferry confirm` and the history, as an operator
/// runs them from a shell (a private state directory holds the history between commands).
#[test]
fn the_cli_cold_migrates_reverts_and_confirms_with_the_history_kept() {
    let Some(lab) = lab_or_skip("cli_cold_migrate_revert_confirm") else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-d",
            running: false,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_d000,
        }],
    );
    let state_dir = std::env::temp_dir().join(format!("ferry-cold-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    let ferry_cli = |args: &[&str]| {
        let output = std::process::Command::new(common::ferry_binary())
            .args(args)
            .env("FERRY_CONFIG", lab.plan.ferry_config_path())
            .env("XDG_STATE_HOME", &state_dir)
            .output()
            .expect("run ferry");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);

    let (ok, stdout, stderr) =
        ferry_cli(&["migrate", "cold-d", "--to", &destination.name, "--cold"]);
    assert!(ok, "cold migrate: {stdout}\n{stderr}");
    assert!(stdout.contains("awaiting confirm"), "{stdout}");
    assert!(presence(&lab, &destination, "cold-d").is_some());
    assert!(
        presence(&lab, &source, "cold-d").is_some(),
        "source copy kept"
    );

    let (ok, stdout, stderr) = ferry_cli(&["revert", "cold-d"]);
    assert!(ok, "revert: {stdout}\n{stderr}");
    assert_eq!(presence(&lab, &destination, "cold-d"), None);
    assert!(!volume_exists(&lab, &destination, "cold-d"));
    assert_eq!(
        disk_sha256_on(&lab, &source, "cold-d"),
        guests.sha256_of("cold-d")
    );
    let (ok, _, stderr) = ferry_cli(&["confirm", "cold-d"]);
    assert!(!ok, "nothing awaits confirm after a revert");
    assert!(stderr.contains("no cold migration awaits"), "{stderr}");

    let (ok, stdout, stderr) = ferry_cli(&[
        "migrate",
        "cold-d",
        "--to",
        &destination.name,
        "--cold",
        "--json",
    ]);
    assert!(ok, "cold migrate again: {stdout}\n{stderr}");
    let (ok, stdout, stderr) = ferry_cli(&["confirm", "cold-d"]);
    assert!(ok, "confirm: {stdout}\n{stderr}");
    assert_eq!(
        presence(&lab, &source, "cold-d"),
        None,
        "source copy removed"
    );
    assert!(!volume_exists(&lab, &source, "cold-d"));
    assert_eq!(
        disk_sha256_on(&lab, &destination, "cold-d"),
        guests.sha256_of("cold-d")
    );

    let (ok, stdout, _) = ferry_cli(&["history", "--json"]);
    assert!(ok);
    let history: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let outcomes: Vec<&str> = history
        .iter()
        .map(|m| m["outcome"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(outcomes, ["confirmed", "reverted"], "newest first");
    assert!(history.iter().all(|m| m["kind"] == "cold"));
    let _ = std::fs::remove_dir_all(&state_dir);
}

/// A ferry child process, killed if the test ends before it does.
struct FerryChild(std::process::Child);

impl Drop for FerryChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the ferry binary on the lab's config with its own state directory (history, locks).
fn ferry_cli_in(lab: &Lab, state_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let started = Instant::now();
    let output = Command::new(common::ferry_binary())
        .args(args)
        .env("FERRY_CONFIG", lab.plan.ferry_config_path())
        .env("XDG_STATE_HOME", state_dir)
        .output()
        .expect("run ferry");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    eprintln!(
        "ferry {} ({:.1} s):\n{stdout}{stderr}",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    (output.status.success(), stdout, stderr)
}

/// The newest migration in the history, as `ferry history --json` prints it.
fn newest_in_history(lab: &Lab, state_dir: &Path) -> serde_json::Value {
    let (ok, stdout, stderr) = ferry_cli_in(lab, state_dir, &["history", "--json"]);
    assert!(ok, "history: {stderr}");
    let history: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    history
        .into_iter()
        .next()
        .expect("a migration in the history")
}

#[test]
fn a_cold_migration_killed_mid_copy_is_rolled_back_by_resume() {
    let Some(lab) = lab_or_skip("a_cold_migration_killed_mid_copy_is_rolled_back_by_resume") else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-g",
            running: true,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_0a01,
        }],
    );
    let state_dir = std::env::temp_dir().join(format!("ferry-cold-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);

    // 4 MiB/s: the 32 MiB of data take seconds to copy, time enough to kill ferry mid-way.
    let mut child = FerryChild(
        Command::new(common::ferry_binary())
            .args([
                "migrate",
                "cold-g",
                "--to",
                &destination.name,
                "--cold",
                "--bandwidth",
                "4",
                "--json",
            ])
            .env("FERRY_CONFIG", lab.plan.ferry_config_path())
            .env("XDG_STATE_HOME", &state_dir)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run ferry migrate"),
    );
    let lines = std::io::BufRead::lines(std::io::BufReader::new(
        child.0.stdout.take().expect("piped stdout"),
    ));
    let mut copying = false;
    for line in lines {
        let line = line.expect("ferry's output");
        eprintln!("  {line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if value["type"] == "progress"
            && value["verifying"] == false
            && value["bytes_done"].as_u64().unwrap_or(0) >= 4 << 20
        {
            copying = true;
            break;
        }
    }
    assert!(copying, "ferry ended before the copy was under way");
    // SIGKILL: nothing of ferry's own rollback runs.
    child.0.kill().expect("kill ferry");
    child.0.wait().unwrap();
    eprintln!("ferry killed mid-copy");

    assert!(
        !presence(&lab, &source, "cold-g").unwrap().active,
        "ferry had shut the guest off before copying"
    );
    assert!(
        volume_exists(&lab, &destination, "cold-g"),
        "a partial copy is on the destination"
    );
    let row = newest_in_history(&lab, &state_dir);
    assert!(row["outcome"].is_null(), "no outcome recorded: {row}");

    let source_console = lab.console_length(&source, "cold-g");
    let resumed = Instant::now();
    let (ok, stdout, stderr) = ferry_cli_in(&lab, &state_dir, &["resume"]);
    assert!(ok, "resume: {stdout}\n{stderr}");
    eprintln!("resume took {:.1} s", resumed.elapsed().as_secs_f64());
    assert!(stdout.contains("rolled back"), "{stdout}");
    assert!(stdout.contains("started cold-g again"), "{stdout}");

    lab.wait_for_console(&source, "cold-g", source_console, "up: acpi=", BOOT_TIMEOUT)
        .unwrap();
    assert!(presence(&lab, &source, "cold-g").unwrap().active);
    assert_eq!(
        disk_sha256_on(&lab, &source, "cold-g"),
        guests.sha256_of("cold-g")
    );
    assert_eq!(presence(&lab, &destination, "cold-g"), None);
    assert!(!volume_exists(&lab, &destination, "cold-g"));
    let row = newest_in_history(&lab, &state_dir);
    assert_eq!(row["outcome"], "rolled_back", "{row}");
    assert!(
        row["outcome_detail"]
            .as_str()
            .unwrap_or("")
            .contains("ferry stopped mid-migration"),
        "{row}"
    );

    // Settled: a second resume finds nothing.
    let (ok, stdout, _) = ferry_cli_in(&lab, &state_dir, &["resume"]);
    assert!(ok);
    assert!(stdout.contains("nothing to resume"), "{stdout}");
    let _ = std::fs::remove_dir_all(&state_dir);
}

/// The state a ferry killed right after starting the guest on the destination leaves: the
/// history row has every event but no outcome. Made without a kill, which could land a moment
/// before or after the start.
#[test]
fn a_cold_migration_interrupted_after_the_start_awaits_confirm_after_resume_and_reverts() {
    let Some(lab) = lab_or_skip(
        "a_cold_migration_interrupted_after_the_start_awaits_confirm_after_resume_and_reverts",
    ) else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-h",
            running: true,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_0b01,
        }],
    );
    let state_dir =
        std::env::temp_dir().join(format!("ferry-cold-interrupted-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);

    let plan = plan_for(&lab, "cold-h", &destination, ColdOptions::default());
    {
        let mut history = History::open(&state_dir.join("ferry").join("history.sqlite3")).unwrap();
        let id = cold_record::record_start(&mut history, &plan).unwrap();
        let (outcome, updates) = drive(&plan);
        expect_awaiting_confirm(&outcome);
        for update in &updates {
            cold_record::record_update(&mut history, id, 0, update).unwrap();
        }
    }
    assert!(presence(&lab, &destination, "cold-h").unwrap().active);
    let row = newest_in_history(&lab, &state_dir);
    assert!(row["outcome"].is_null(), "no outcome recorded: {row}");

    let (ok, stdout, stderr) = ferry_cli_in(&lab, &state_dir, &["resume"]);
    assert!(ok, "resume: {stdout}\n{stderr}");
    assert!(stdout.contains("awaiting confirm"), "{stdout}");
    let row = newest_in_history(&lab, &state_dir);
    assert_eq!(row["outcome"], "awaiting_confirm", "{row}");
    // Nothing was changed: still running on the destination, the source copy kept.
    assert!(presence(&lab, &destination, "cold-h").unwrap().active);
    assert!(!presence(&lab, &source, "cold-h").unwrap().active);

    let source_console = lab.console_length(&source, "cold-h");
    let (ok, stdout, stderr) = ferry_cli_in(&lab, &state_dir, &["revert", "cold-h"]);
    assert!(ok, "revert: {stdout}\n{stderr}");
    lab.wait_for_console(&source, "cold-h", source_console, "up: acpi=", BOOT_TIMEOUT)
        .unwrap();
    assert!(presence(&lab, &source, "cold-h").unwrap().active);
    assert_eq!(presence(&lab, &destination, "cold-h"), None);
    assert!(!volume_exists(&lab, &destination, "cold-h"));
    assert_eq!(
        disk_sha256_on(&lab, &source, "cold-h"),
        guests.sha256_of("cold-h")
    );
    assert_eq!(newest_in_history(&lab, &state_dir)["outcome"], "reverted");
    let _ = std::fs::remove_dir_all(&state_dir);
}
