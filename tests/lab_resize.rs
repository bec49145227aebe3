//! Issue 13, item 5 on the lab: a libvirt guest resized with `ferry migrate --cold --vcpus N
//! --memory-mib M`, in place (the guest's own host, Nova's `allow_resize_to_same_host`) and to
//! another host, then reverted or confirmed, against real libvirtd + QEMU.
//!
//! The guests are the cold tests' own (tests/common/cold_guests.rs: 1 vCPU, 128 MiB, a 64 MiB
//! data disk of known content, an init that answers the ACPI power button), named `cold-r`…
//! `cold-v` here and removed from every host afterwards, pass or fail. The lab's shared guests
//! (idle, busy, disk) are never touched.
//!
//! The size is read the way `virsh dominfo` reads it (libvirt's domain info: vCPUs and max
//! memory of the running guest) and from the persistent definition.
//!
//! Run one at a time, as root, with the lab up:
//!   FERRY_REQUIRE_LAB=1 cargo test --test lab_resize -- --test-threads=1 --nocapture

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::cold_guests::{disk_sha256_on, presence, set_up, Acpi, GuestSpec};
use common::{lab_or_skip, Lab, CALL_TIMEOUT};
use ferry::config::Config;
use ferry::engine::cold::{self, ColdMigrationPlan, ColdOptions, ColdOutcome, NewSize};
use ferry::engine::cold_record;
use ferry::engine::history::History;
use ferry::lab::plan::LabHost;
use ferry::libvirt::guest_size::{defined_size, edit_guest_size, DefinedSize};
use ferry::libvirt::lifecycle::DomainKey;
use ferry::runtime::wait;

/// The cold test guests' size (tests/common/cold_guests.rs).
const OLD_SIZE: DefinedSize = DefinedSize {
    vcpus: 1,
    memory_kib: 128 << 10,
};
/// `--vcpus 2 --memory-mib 384`.
const NEW_SIZE: DefinedSize = DefinedSize {
    vcpus: 2,
    memory_kib: 384 << 10,
};

/// A state directory of the test's own (history, run locks), removed at the end.
struct StateDir(PathBuf);

impl StateDir {
    fn new(test: &str) -> StateDir {
        let path = std::env::temp_dir().join(format!("ferry-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        StateDir(path)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the ferry binary on the lab's config with the test's own state directory.
fn ferry_cli(lab: &Lab, state: &StateDir, args: &[&str]) -> (bool, String, String) {
    let started = Instant::now();
    let output = Command::new(common::ferry_binary())
        .args(args)
        .env("FERRY_CONFIG", lab.plan.ferry_config_path())
        .env("XDG_STATE_HOME", &state.0)
        .output()
        .expect("run ferry");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    eprintln!(
        "ferry {} ({:.1} s, {}):\n{stdout}{stderr}",
        args.join(" "),
        started.elapsed().as_secs_f64(),
        output.status
    );
    (output.status.success(), stdout, stderr)
}

/// The migrations in the history, newest first, as `ferry history --json` prints them.
fn history(lab: &Lab, state: &StateDir) -> Vec<serde_json::Value> {
    let (ok, stdout, stderr) = ferry_cli(lab, state, &["history", "--json"]);
    assert!(ok, "history: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// What libvirt reports of the running (or defined) guest on `host`, as `virsh dominfo`
/// does: its vCPUs and its max memory.
fn reported_size(lab: &Lab, host: &LabHost, guest: &str) -> DefinedSize {
    let domains = wait(lab.connect(host).domains(CALL_TIMEOUT))
        .unwrap_or_else(|e| panic!("{}: {e}", host.name));
    let found = domains
        .iter()
        .find(|d| d.name == guest)
        .unwrap_or_else(|| panic!("{}: no {guest}", host.name));
    DefinedSize {
        vcpus: found.vcpus,
        memory_kib: found.memory_bytes >> 10,
    }
}

fn definition_xml(lab: &Lab, host: &LabHost, guest: &str) -> String {
    lab.connect(host)
        .domain_definition_xml(&DomainKey::Name(guest.to_string()), CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("{}: {e}", host.name))
}

fn persistent_size(lab: &Lab, host: &LabHost, guest: &str) -> DefinedSize {
    defined_size(&definition_xml(lab, host, guest)).unwrap()
}

/// The hosts that hold `guest`, and of those the ones it runs on.
fn holders(lab: &Lab, guest: &str) -> (Vec<String>, Vec<String>) {
    let mut defined = Vec::new();
    let mut running = Vec::new();
    for host in &lab.plan.hosts {
        if let Some(found) = presence(lab, host, guest) {
            defined.push(host.name.clone());
            if found.active {
                running.push(host.name.clone());
            }
        }
    }
    (defined, running)
}

#[test]
fn a_resize_in_place_runs_at_the_new_size_and_revert_brings_back_the_old_one() {
    let Some(lab) = lab_or_skip("resize_in_place_then_revert") else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-r",
            running: true,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_5000,
        }],
    );
    let state = StateDir::new("resize-in-place");
    let hv1 = lab.plan.hosts[0].clone();
    assert_eq!(reported_size(&lab, &hv1, "cold-r"), OLD_SIZE);
    let old_definition = definition_xml(&lab, &hv1, "cold-r");

    let (ok, stdout, stderr) = ferry_cli(
        &lab,
        &state,
        &[
            "migrate",
            "cold-r",
            "--cold",
            "--to",
            &hv1.name,
            "--vcpus",
            "2",
            "--memory-mib",
            "384",
        ],
    );
    assert!(ok, "resize in place: {stdout}\n{stderr}");
    assert!(
        stdout.contains("awaiting confirm")
            && stdout.contains("1 vCPU, 128 MiB → 2 vCPUs, 384 MiB (in place on hv1)"),
        "{stdout}"
    );
    assert_eq!(
        reported_size(&lab, &hv1, "cold-r"),
        NEW_SIZE,
        "running at the new size"
    );
    assert_eq!(persistent_size(&lab, &hv1, "cold-r"), NEW_SIZE);
    assert_eq!(
        holders(&lab, "cold-r"),
        (vec![hv1.name.clone()], vec![hv1.name.clone()]),
        "one definition, running on hv1 only"
    );
    assert_eq!(
        disk_sha256_on(&lab, &hv1, "cold-r"),
        guests.sha256_of("cold-r")
    );
    let newest = &history(&lab, &state)[0];
    assert_eq!(newest["policy"], "resize");
    assert_eq!(newest["outcome"], "awaiting_confirm");
    assert_eq!(newest["destination_host"], hv1.name.as_str());
    assert!(newest["outcome_detail"]
        .as_str()
        .unwrap()
        .contains("1 vCPU, 128 MiB → 2 vCPUs, 384 MiB"));

    let (ok, stdout, stderr) = ferry_cli(&lab, &state, &["revert", "cold-r"]);
    assert!(ok, "revert: {stdout}\n{stderr}");
    assert_eq!(
        reported_size(&lab, &hv1, "cold-r"),
        OLD_SIZE,
        "back at the old size"
    );
    assert_eq!(
        definition_xml(&lab, &hv1, "cold-r"),
        old_definition,
        "the old definition, as it was"
    );
    assert_eq!(
        holders(&lab, "cold-r"),
        (vec![hv1.name.clone()], vec![hv1.name.clone()])
    );
    assert_eq!(
        disk_sha256_on(&lab, &hv1, "cold-r"),
        guests.sha256_of("cold-r")
    );
    let newest = &history(&lab, &state)[0];
    assert_eq!(newest["outcome"], "reverted");
    assert_eq!(
        newest["outcome_detail"],
        "back to the old size 1 vCPU, 128 MiB"
    );
    let (ok, _, stderr) = ferry_cli(&lab, &state, &["confirm", "cold-r"]);
    assert!(
        !ok && stderr.contains("no cold migration awaits"),
        "{stderr}"
    );
}

#[test]
fn a_resize_to_another_host_runs_there_at_the_new_size_and_revert_restarts_the_old_copy() {
    let Some(lab) = lab_or_skip("resize_to_another_host_then_revert") else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-s",
            running: true,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_5100,
        }],
    );
    let state = StateDir::new("resize-moved");
    let hv1 = lab.plan.hosts[0].clone();
    let hv2 = lab.next_host(&hv1);

    let (ok, stdout, stderr) = ferry_cli(
        &lab,
        &state,
        &[
            "migrate",
            "cold-s",
            "--cold",
            "--to",
            &hv2.name,
            "--vcpus",
            "2",
            "--memory-mib",
            "384",
        ],
    );
    assert!(ok, "resize to {}: {stdout}\n{stderr}", hv2.name);
    assert_eq!(reported_size(&lab, &hv2, "cold-s"), NEW_SIZE);
    assert_eq!(persistent_size(&lab, &hv2, "cold-s"), NEW_SIZE);
    // The source copy waits, shut off, at its old size.
    assert_eq!(persistent_size(&lab, &hv1, "cold-s"), OLD_SIZE);
    let (defined, running) = holders(&lab, "cold-s");
    assert_eq!(running, vec![hv2.name.clone()], "runs on exactly one host");
    assert_eq!(defined, [hv1.name.clone(), hv2.name.clone()]);
    assert_eq!(
        disk_sha256_on(&lab, &hv2, "cold-s"),
        guests.sha256_of("cold-s")
    );

    let (ok, stdout, stderr) = ferry_cli(&lab, &state, &["revert", "cold-s"]);
    assert!(ok, "revert: {stdout}\n{stderr}");
    assert_eq!(reported_size(&lab, &hv1, "cold-s"), OLD_SIZE);
    assert_eq!(
        holders(&lab, "cold-s"),
        (vec![hv1.name.clone()], vec![hv1.name.clone()])
    );
    assert_eq!(
        disk_sha256_on(&lab, &hv1, "cold-s"),
        guests.sha256_of("cold-s")
    );
    let newest = &history(&lab, &state)[0];
    assert_eq!(newest["policy"], "resize");
    assert_eq!(newest["outcome"], "reverted");
}

#[test]
fn a_shut_off_guest_resized_in_place_stays_off_and_confirm_keeps_the_new_size() {
    let Some(lab) = lab_or_skip("resize_in_place_then_confirm") else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-t",
            running: false,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_5200,
        }],
    );
    let state = StateDir::new("resize-confirm");
    let hv1 = lab.plan.hosts[0].clone();
    let (ok, stdout, stderr) = ferry_cli(
        &lab,
        &state,
        &[
            "migrate",
            "cold-t",
            "--cold",
            "--to",
            &hv1.name,
            "--memory-mib",
            "256",
        ],
    );
    assert!(ok, "resize in place: {stdout}\n{stderr}");
    let memory_only = DefinedSize {
        vcpus: 1,
        memory_kib: 256 << 10,
    };
    assert_eq!(persistent_size(&lab, &hv1, "cold-t"), memory_only);
    assert_eq!(holders(&lab, "cold-t"), (vec![hv1.name.clone()], vec![]));

    let (ok, stdout, stderr) = ferry_cli(&lab, &state, &["confirm", "cold-t"]);
    assert!(ok, "confirm: {stdout}\n{stderr}");
    assert!(stdout.contains("keeps its new size"), "{stdout}");
    assert_eq!(persistent_size(&lab, &hv1, "cold-t"), memory_only);
    assert_eq!(holders(&lab, "cold-t"), (vec![hv1.name.clone()], vec![]));
    assert_eq!(
        disk_sha256_on(&lab, &hv1, "cold-t"),
        guests.sha256_of("cold-t")
    );
    let newest = &history(&lab, &state)[0];
    assert_eq!(newest["outcome"], "confirmed");
    assert!(newest["outcome_detail"]
        .as_str()
        .unwrap()
        .starts_with("kept the new size"));
}

#[test]
fn a_size_the_host_cannot_hold_is_refused_and_nothing_changes() {
    let Some(lab) = lab_or_skip("resize_refused") else {
        return;
    };
    let _guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-u",
            running: true,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_5300,
        }],
    );
    let state = StateDir::new("resize-refused");
    let hv1 = lab.plan.hosts[0].clone();
    let facts = wait(lab.connect(&hv1).host_facts(CALL_TIMEOUT)).unwrap();
    let definition = definition_xml(&lab, &hv1, "cold-u");
    let unchanged = |what: &str| {
        assert_eq!(definition_xml(&lab, &hv1, "cold-u"), definition, "{what}");
        assert_eq!(reported_size(&lab, &hv1, "cold-u"), OLD_SIZE, "{what}");
        assert_eq!(
            holders(&lab, "cold-u"),
            (vec![hv1.name.clone()], vec![hv1.name.clone()]),
            "{what}: still running where it was"
        );
    };

    // More memory than the host has at all (so more than it has free, the guest's own
    // 128 MiB counted in).
    let too_much_mib = (facts.memory_total_bytes >> 20) + 1024;
    let too_much = too_much_mib.to_string();
    let hv2 = lab.next_host(&hv1);
    for destination in [hv1.name.as_str(), hv2.name.as_str()] {
        let (ok, stdout, stderr) = ferry_cli(
            &lab,
            &state,
            &[
                "migrate",
                "cold-u",
                "--cold",
                "--to",
                destination,
                "--memory-mib",
                &too_much,
            ],
        );
        assert!(!ok, "{stdout}");
        assert!(
            stderr.contains("not started") && stderr.contains("free, guest needs"),
            "{stdout}\n{stderr}"
        );
        unchanged("too much memory");
    }

    // More vCPUs than the host has CPUs.
    let too_wide = (facts.cpu_count + 1).to_string();
    let (ok, stdout, stderr) = ferry_cli(
        &lab,
        &state,
        &[
            "migrate", "cold-u", "--cold", "--to", &hv1.name, "--vcpus", &too_wide,
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains(&format!("has {} CPUs", facts.cpu_count)),
        "{stdout}\n{stderr}"
    );
    unchanged("too many vCPUs");

    // Absurd values never reach a host.
    for (flag, value, reason) in [
        ("--vcpus", "0", "1 to 4096 vCPUs"),
        ("--memory-mib", "0", "16 MiB to"),
        ("--memory-mib", "two", "whole number of MiB"),
    ] {
        let (ok, stdout, stderr) = ferry_cli(
            &lab,
            &state,
            &[
                "migrate", "cold-u", "--cold", "--to", &hv1.name, flag, value,
            ],
        );
        assert!(
            !ok && stderr.contains(reason),
            "{flag} {value}: {stdout}\n{stderr}"
        );
    }
    unchanged("absurd sizes");

    // Without a size the own host stays refused, as before.
    let (ok, stdout, stderr) = ferry_cli(
        &lab,
        &state,
        &["migrate", "cold-u", "--cold", "--to", &hv1.name],
    );
    assert!(!ok);
    assert!(
        stderr.contains("already runs on hv1; pick another destination, or give a new size"),
        "{stdout}\n{stderr}"
    );
    unchanged("a plain cold migration to its own host");
    assert!(
        history(&lab, &state).is_empty(),
        "a refused resize is never recorded as started"
    );
}

/// Plans a resize in place of `guest` to the new size through the engine, as `ferry migrate`
/// does.
fn plan_in_place(lab: &Lab, guest: &str) -> ColdMigrationPlan {
    let config = Config::load(&lab.plan.ferry_config_path()).expect("the lab's ferry config");
    let options = ColdOptions {
        new_size: Some(NewSize {
            vcpus: Some(NEW_SIZE.vcpus),
            memory_mib: Some(NEW_SIZE.memory_kib >> 10),
        }),
        ..ColdOptions::default()
    };
    let host = lab.plan.hosts[0].name.clone();
    let planning = wait(cold::plan(&config, guest, &host, &options)).unwrap();
    let plan = planning.plan.unwrap_or_else(|| {
        panic!(
            "prechecks of {guest} failed: {}",
            planning.report.failure_reasons()
        )
    });
    assert!(plan.resizes_in_place().is_some());
    plan
}

fn history_file(state: &StateDir) -> History {
    History::open(&state.0.join("ferry").join("history.sqlite3")).unwrap()
}

#[test]
fn an_interrupted_resize_in_place_is_settled_by_resume_from_what_the_host_holds() {
    let Some(lab) = lab_or_skip("resize_in_place_interrupted") else {
        return;
    };
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: "cold-v",
            running: true,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_5400,
        }],
    );
    let state = StateDir::new("resize-interrupted");
    let hv1 = lab.plan.hosts[0].clone();
    let old_definition = definition_xml(&lab, &hv1, "cold-v");

    // A ferry that died after defining the new size, before starting the guest again: its
    // row has no outcome, and the host holds the new definition, shut off.
    let plan = plan_in_place(&lab, "cold-v");
    cold_record::record_start(&mut history_file(&state), &plan).unwrap();
    lab.set_running(&hv1, "cold-v", false);
    let new_definition = edit_guest_size(
        &old_definition,
        Some(NEW_SIZE.vcpus),
        Some(NEW_SIZE.memory_kib),
    )
    .unwrap();
    lab.connect(&hv1)
        .define_domain(&new_definition, CALL_TIMEOUT)
        .unwrap();
    assert_eq!(persistent_size(&lab, &hv1, "cold-v"), NEW_SIZE);

    let (ok, stdout, stderr) = ferry_cli(&lab, &state, &["resume"]);
    assert!(ok, "resume: {stdout}\n{stderr}");
    assert!(stdout.contains("rolled back"), "{stdout}\n{stderr}");
    assert_eq!(history(&lab, &state)[0]["outcome"], "rolled_back");
    assert_eq!(definition_xml(&lab, &hv1, "cold-v"), old_definition);
    assert_eq!(reported_size(&lab, &hv1, "cold-v"), OLD_SIZE);
    assert_eq!(
        holders(&lab, "cold-v"),
        (vec![hv1.name.clone()], vec![hv1.name.clone()]),
        "started again where it was"
    );

    // A ferry that died once the guest ran at its new size: kept, awaiting an answer.
    let plan = plan_in_place(&lab, "cold-v");
    {
        let mut history = history_file(&state);
        let id = cold_record::record_start(&mut history, &plan).unwrap();
        let mut handle = cold::start(plan.clone());
        while let Some(update) = handle.updates.blocking_recv() {
            cold_record::record_update(&mut history, id, 0, &update).unwrap();
        }
        let outcome = wait(handle.task).unwrap();
        assert!(
            matches!(outcome, ColdOutcome::AwaitingConfirm { .. }),
            "{outcome:?}"
        );
    }
    assert!(history(&lab, &state)[0]["outcome"].is_null());
    let (ok, stdout, stderr) = ferry_cli(&lab, &state, &["resume"]);
    assert!(ok, "resume: {stdout}\n{stderr}");
    assert!(
        stdout.contains("awaiting confirm") && stdout.contains("keeps the new size"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(history(&lab, &state)[0]["outcome"], "awaiting_confirm");
    assert_eq!(
        reported_size(&lab, &hv1, "cold-v"),
        NEW_SIZE,
        "left as it was"
    );

    let (ok, stdout, stderr) = ferry_cli(&lab, &state, &["revert", "cold-v"]);
    assert!(ok, "revert: {stdout}\n{stderr}");
    assert_eq!(reported_size(&lab, &hv1, "cold-v"), OLD_SIZE);
    assert_eq!(definition_xml(&lab, &hv1, "cold-v"), old_definition);
    assert_eq!(
        holders(&lab, "cold-v"),
        (vec![hv1.name.clone()], vec![hv1.name.clone()])
    );
    assert_eq!(
        disk_sha256_on(&lab, &hv1, "cold-v"),
        guests.sha256_of("cold-v")
    );
}
