//! Issue 6 on the lab: cold migration with confirm and revert, against real libvirtd + QEMU.
//!
//! The lab's own guests (idle, busy, disk) belong to other tests and are never touched here.
//! These tests define their own guests on hv1 (`cold-a`, `cold-b`, …) with a 64 MiB qcow2
//! data disk of known content in hv1's private `local` pool, and remove them from every host
//! afterwards, also when a test fails. Their init answers the ACPI power button (see
//! tests/cold_guest_init.c), so the graceful shutdown is the real one.
//!
//! Run one at a time, as root, with the lab up:
//!   FERRY_REQUIRE_LAB=1 cargo test --test lab_cold -- --test-threads=1 --nocapture
//! The copy benchmark is ignored by default:
//!   cargo test --release --test lab_cold -- --ignored --nocapture copy_throughput

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{disk_content_sha256, lab_or_skip, Lab, CALL_TIMEOUT};
use ferry::config::Config;
use ferry::engine::cold::{
    self, ColdCommand, ColdMigrationPlan, ColdOptions, ColdOutcome, ColdPhase, ColdUpdate,
};
use ferry::lab::cpio::{newc_archive, CpioEntry};
use ferry::lab::plan::{LabHost, CACHE_DIR};
use ferry::libvirt::lifecycle::{DomainKey, DomainPresence};
use ferry::libvirt::volume_copy::{copy_volume, CopySettings, NewVolume, VolumeRef};
use ferry::libvirt::{HostConnection, LibvirtError};
use sha2::{Digest, Sha256};

const GUEST_INIT_SOURCE: &str = include_str!("cold_guest_init.c");
/// Inside every host; the lab's `local` pool.
const LOCAL_POOL_PATH: &str = "/var/lib/libvirt/images";
const DATA_DISK_MIB: usize = 64;
/// The pattern fills half the disk; the rest reads as zeros (qcow2 keeps it unallocated).
const DATA_PATTERN_MIB: usize = 32;
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// How a test guest treats the ACPI power button.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Acpi {
    PowerOff,
    Ignore,
}

#[derive(Clone, Copy)]
struct GuestSpec {
    name: &'static str,
    running: bool,
    acpi: Acpi,
    /// Seeds the data disk's pattern, so every guest's disk is its own.
    seed: u64,
}

fn data_volume_name(guest: &str) -> String {
    format!("{guest}-data.qcow2")
}

/// The data disk's guest-visible content: a xorshift stream, then zeros.
fn data_content(seed: u64) -> Vec<u8> {
    let mut content = vec![0u8; DATA_DISK_MIB << 20];
    assert_ne!(seed, 0, "xorshift needs a non-zero seed");
    let mut state = seed;
    for chunk in content[..DATA_PATTERN_MIB << 20].chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    content
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// button.ko of the lab's guest kernel, fetched once from the same Debian package as the
/// kernel (`apt-get download`, as `ferry lab up` does) and cached beside the kernel.
fn button_module(lab: &Lab) -> Vec<u8> {
    let cache = Path::new(CACHE_DIR).join("cold-guest");
    let cached = cache.join("button.ko");
    let kernel = std::fs::read(lab.plan.guest_dir().join("vmlinuz")).expect("lab guest kernel");
    if let Ok(module) = std::fs::read(&cached) {
        return module;
    }
    let depends = run("apt-cache", &["depends", "linux-image-cloud-amd64"]);
    let package = depends
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .expect("apt knows linux-image-cloud-amd64")
        .to_string();
    let release = package.trim_start_matches("linux-image-").to_string();
    assert!(
        kernel
            .windows(release.len())
            .any(|w| w == release.as_bytes()),
        "the lab's guest kernel is not {release} (set by FERRY_LAB_KERNEL?): no matching button.ko"
    );
    let download = cache.join("download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download).unwrap();
    let status = Command::new("apt-get")
        .args(["-q", "-o", "APT::Sandbox::User=root", "download", &package])
        .current_dir(&download)
        .status()
        .expect("apt-get");
    assert!(status.success(), "apt-get download {package}");
    let deb = std::fs::read_dir(&download)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb");
    let extracted = download.join("x");
    run(
        "dpkg-deb",
        &["-x", deb.to_str().unwrap(), extracted.to_str().unwrap()],
    );
    let module = extracted
        .join("lib/modules")
        .join(&release)
        .join("kernel/drivers/acpi/button.ko");
    std::fs::copy(&module, &cached)
        .unwrap_or_else(|e| panic!("{} from {package}: {e}", module.display()));
    let _ = std::fs::remove_dir_all(&download);
    std::fs::read(&cached).unwrap()
}

/// The test guests' initramfs in the lab's shared directory (same path on every host),
/// rebuilt only when its content changes.
fn ensure_initrd(lab: &Lab) -> PathBuf {
    let dir = lab.plan.shared_dir().join("cold-guest");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("init.c");
    let binary = dir.join("init");
    std::fs::write(&source, GUEST_INIT_SOURCE).unwrap();
    run(
        "cc",
        &[
            "-static",
            "-O2",
            "-o",
            binary.to_str().unwrap(),
            source.to_str().unwrap(),
        ],
    );
    let init = std::fs::read(&binary).unwrap();
    let button = button_module(lab);
    let archive = newc_archive(&[
        CpioEntry::Directory {
            path: "dev",
            mode: 0o755,
        },
        CpioEntry::CharDevice {
            path: "dev/console",
            mode: 0o600,
            major: 5,
            minor: 1,
        },
        CpioEntry::Directory {
            path: "proc",
            mode: 0o555,
        },
        CpioEntry::File {
            path: "init",
            mode: 0o755,
            data: &init,
        },
        CpioEntry::File {
            path: "button.ko",
            mode: 0o644,
            data: &button,
        },
    ]);
    let initrd = dir.join("initrd.cpio");
    if std::fs::read(&initrd).ok().as_deref() != Some(&archive[..]) {
        let partial = dir.join("initrd.cpio.partial");
        std::fs::write(&partial, &archive).unwrap();
        std::fs::rename(&partial, &initrd).unwrap();
    }
    initrd
}

fn domain_xml(lab: &Lab, spec: &GuestSpec, initrd: &Path) -> String {
    let name = spec.name;
    let acpi = match spec.acpi {
        Acpi::PowerOff => "poweroff",
        Acpi::Ignore => "ignore",
    };
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <description>ferry cold-migration test guest</description>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 ferry.name={name} ferry.acpi={acpi}</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact' check='none'><model fallback='allow'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{pool}/{volume}'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <serial type='pty'>
      <log file='/var/log/libvirt/qemu/{name}-serial.log' append='on'/>
      <target port='0'/>
    </serial>
    <console type='pty'/>
    <memballoon model='none'/>
  </devices>
</domain>
",
        kernel = lab.plan.guest_dir().join("vmlinuz").display(),
        initrd = initrd.display(),
        pool = LOCAL_POOL_PATH,
        volume = data_volume_name(name),
    )
}

fn presence(lab: &Lab, host: &LabHost, guest: &str) -> Option<DomainPresence> {
    lab.connect(host)
        .domain_presence(&DomainKey::Name(guest.to_string()), CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("{}: {e}", host.name))
}

fn local_volume(guest: &str) -> VolumeRef {
    VolumeRef {
        pool: "local".into(),
        name: data_volume_name(guest),
    }
}

fn volume_exists(lab: &Lab, host: &LabHost, guest: &str) -> bool {
    let connection = lab.connect(host);
    refresh_local_pool(&connection);
    connection
        .volume(&local_volume(guest), CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("{}: {e}", host.name))
        .is_some()
}

fn refresh_local_pool(connection: &HostConnection) {
    let _ = connection.call("refreshing pool local", CALL_TIMEOUT, |c| {
        c.lookup_storage_pool_by_name("local")
            .and_then(|p| p.refresh(0))
            .map_err(|e| LibvirtError::call("refreshing pool local", e))
    });
}

fn disk_sha256_on(lab: &Lab, host: &LabHost, guest: &str) -> String {
    disk_content_sha256(
        &lab.plan
            .host_local_pool_dir(host)
            .join(data_volume_name(guest)),
    )
}

/// Removes the named guests and their data volumes from every host.
fn remove_everywhere(lab: &Lab, names: &[&str]) {
    for host in &lab.plan.hosts {
        let Ok(connection) = HostConnection::open(&lab.plan.uri(host), CALL_TIMEOUT) else {
            eprintln!("cleanup: {} unreachable", host.name);
            continue;
        };
        for name in names {
            let key = DomainKey::Name(name.to_string());
            if let Ok(Some(found)) = connection.domain_presence(&key, CALL_TIMEOUT) {
                if found.active {
                    let _ = connection.power_off(&key, CALL_TIMEOUT);
                }
                let _ = connection.undefine_domain(&key, CALL_TIMEOUT);
            }
            let _ = connection.delete_volume(&local_volume(name), CALL_TIMEOUT);
            // A file libvirt did not know about (a pool not refreshed) goes too.
            let _ = std::fs::remove_file(
                lab.plan
                    .host_local_pool_dir(host)
                    .join(data_volume_name(name)),
            );
        }
        refresh_local_pool(&connection);
    }
}

/// The test's guests; removed from every host when dropped, pass or fail.
struct ColdGuests<'a> {
    lab: &'a Lab,
    names: Vec<&'static str>,
    /// sha256 of each guest's data disk as written.
    disk_sha256: Vec<String>,
}

impl ColdGuests<'_> {
    fn sha256_of(&self, guest: &str) -> &str {
        let index = self.names.iter().position(|n| *n == guest).unwrap();
        &self.disk_sha256[index]
    }
}

impl Drop for ColdGuests<'_> {
    fn drop(&mut self) {
        remove_everywhere(self.lab, &self.names);
    }
}

/// Idempotent: whatever an earlier run left, the guests end defined on hv1 only, with fresh
/// data disks, running or shut off as asked (running ones have printed their banner).
fn set_up<'a>(lab: &'a Lab, specs: &[GuestSpec]) -> ColdGuests<'a> {
    let names: Vec<&'static str> = specs.iter().map(|s| s.name).collect();
    remove_everywhere(lab, &names);
    let guests = ColdGuests {
        lab,
        names,
        disk_sha256: Vec::new(),
    };
    let initrd = ensure_initrd(lab);
    let host = lab.plan.hosts[0].clone();
    let connection = lab.connect(&host);
    let mut guests = guests;
    for spec in specs {
        let content = data_content(spec.seed);
        guests.disk_sha256.push(hex(&Sha256::digest(&content)));
        let raw = std::env::temp_dir().join(format!("ferry-cold-{}.raw", spec.name));
        std::fs::write(&raw, &content).unwrap();
        let image = lab
            .plan
            .host_local_pool_dir(&host)
            .join(data_volume_name(spec.name));
        run(
            "qemu-img",
            &[
                "convert",
                "-q",
                "-f",
                "raw",
                "-O",
                "qcow2",
                raw.to_str().unwrap(),
                image.to_str().unwrap(),
            ],
        );
        std::fs::remove_file(&raw).unwrap();
        refresh_local_pool(&connection);
        connection
            .define_domain(&domain_xml(lab, spec, &initrd), CALL_TIMEOUT)
            .unwrap_or_else(|e| panic!("defining {}: {e}", spec.name));
        if spec.running {
            let offset = lab.console_length(&host, spec.name);
            lab.set_running(&host, spec.name, true);
            lab.wait_for_console(&host, spec.name, offset, "up: acpi=", BOOT_TIMEOUT)
                .unwrap();
        }
    }
    guests
}

fn lab_config(lab: &Lab) -> Config {
    Config::load(&lab.plan.ferry_config_path()).expect("the lab's ferry config")
}

fn plan_for(
    lab: &Lab,
    guest: &str,
    destination: &LabHost,
    options: ColdOptions,
) -> ColdMigrationPlan {
    let planning = cold::plan(&lab_config(lab), guest, &destination.name, &options)
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
    let handle = cold::start(plan.clone());
    let updates = collect(&handle.updates, |_| false);
    let outcome = handle.thread.join().expect("cold migration thread");
    (outcome, updates)
}

/// Reads updates (printing phases and steps) until `stop` says so or the migration ends.
fn collect(
    updates: &std::sync::mpsc::Receiver<ColdUpdate>,
    mut stop: impl FnMut(&ColdUpdate) -> bool,
) -> Vec<ColdUpdate> {
    let mut seen = Vec::new();
    while let Ok(update) = updates.recv() {
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

    let report = cold::confirm(&plan, CALL_TIMEOUT).expect("confirm");
    eprintln!("confirm: {:?}", report.steps);
    assert_eq!(presence(&lab, &source, "cold-a"), None);
    assert!(!volume_exists(&lab, &source, "cold-a"));
    assert!(presence(&lab, &destination, "cold-a").unwrap().active);
    assert!(volume_exists(&lab, &destination, "cold-a"));
    // Confirm again: nothing left to do, no harm.
    let again = cold::confirm(&plan, CALL_TIMEOUT).expect("second confirm");
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
    let report = cold::revert(&plan, CALL_TIMEOUT).expect("revert");
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
    let refused = cold::confirm(&plan, CALL_TIMEOUT).unwrap_err();
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
    cold::confirm(&plan, CALL_TIMEOUT).expect("confirm");
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
    cold::revert(&hard, CALL_TIMEOUT).expect("revert");
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
    let handle = cold::start(plan.clone());
    let mut updates = collect(
        &handle.updates,
        |u| matches!(u, ColdUpdate::Progress(p) if !p.verifying && p.bytes_done >= 4 << 20),
    );
    let link = LinkDown::take(&destination.veth);
    let down_at = Instant::now();
    eprintln!("{} link down", destination.name);
    updates.extend(collect(&handle.updates, |u| {
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
    updates.extend(collect(&handle.updates, |_| false));
    let outcome = handle.thread.join().unwrap();
    let ColdOutcome::RolledBack { detail, leftovers } = &outcome else {
        panic!("expected rolled back, got {outcome:?}");
    };
    eprintln!("rolled back: {detail}");
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    assert!(updates
        .iter()
        .any(|u| matches!(u, ColdUpdate::RollbackStep { description } if description.contains("deleted the partial copy"))));

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
            let _ = connection.delete_volume(&self.volume, CALL_TIMEOUT);
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
    let bytes = source_connection
        .volume(&volume, CALL_TIMEOUT)
        .unwrap()
        .expect("benchmark volume")
        .physical_bytes;
    assert_eq!(bytes, 1 << 30);
    let fresh_destination = || {
        let _ = destination_connection.delete_volume(&volume, CALL_TIMEOUT);
        destination_connection
            .create_volume(
                "local",
                &NewVolume {
                    name: volume.name.clone(),
                    format: "raw".into(),
                    capacity_bytes: bytes,
                },
                CALL_TIMEOUT,
            )
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
            let digest = copy_volume(
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
            )
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
    let handle = cold::start(plan.clone());
    let mut updates = collect(
        &handle.updates,
        |u| matches!(u, ColdUpdate::Progress(p) if p.bytes_done >= 4 << 20),
    );
    handle.commands.send(ColdCommand::Abort).unwrap();
    updates.extend(collect(&handle.updates, |_| false));
    let outcome = handle.thread.join().unwrap();
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
