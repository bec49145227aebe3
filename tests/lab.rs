//! The lab itself, against real libvirtd + QEMU: hosts answer over qemu+ssh, guests boot and
//! run their workload, a plain peer-to-peer live migration moves a guest, and `lab down` /
//! `lab up` leave the machine as they found it. Run one at a time (`--test-threads=1`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{disk_content_sha256, ferry, lab_or_skip, CALL_TIMEOUT};
use ferry::lab::guest::lab_guests;
use ferry::lab::plan::{BRIDGE_NAME, LAB_DIR, NAME_PREFIX};
use ferry::libvirt::migrate::{LaunchEnd, LiveMigrationRequest};
use ferry::libvirt::HostConnection;

/// Runs `request` from `source` to its end through the libvirt door, at most `timeout`.
fn migrate_live(
    source: &HostConnection,
    request: &LiveMigrationRequest,
    timeout: Duration,
) -> Result<(), String> {
    let migration = async { tokio::time::timeout(timeout, source.migrate_live(request)).await };
    match ferry::runtime::wait(migration) {
        Ok(Ok(LaunchEnd::Migrated)) => Ok(()),
        Ok(Ok(LaunchEnd::RefusedBusy { what })) => Err(format!("refused: {what} runs")),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_elapsed) => Err(format!("no end within {timeout:?}")),
    }
}

#[test]
fn every_lab_host_answers_with_its_own_hostname_and_uuid() {
    let Some(lab) = lab_or_skip("every_lab_host_answers_with_its_own_hostname_and_uuid") else {
        return;
    };
    let mut uuids = Vec::new();
    for host in &lab.plan.hosts {
        let facts = ferry::runtime::wait(lab.connect(host).host_facts(CALL_TIMEOUT)).unwrap();
        assert_eq!(facts.hostname, host.name);
        assert_eq!(facts.host_uuid, host.host_uuid);
        assert_eq!(facts.hypervisor_type, "QEMU");
        eprintln!(
            "{}: hostname {} uuid {} QEMU {} libvirt {}",
            host.name,
            facts.hostname,
            facts.host_uuid,
            facts.hypervisor_version,
            facts.libvirt_version
        );
        uuids.push(facts.host_uuid);
    }
    uuids.sort();
    uuids.dedup();
    assert_eq!(
        uuids.len(),
        lab.plan.hosts.len(),
        "host UUIDs must be distinct"
    );
}

#[test]
fn each_guest_boots_and_runs_its_workload() {
    let Some(lab) = lab_or_skip("each_guest_boots_and_runs_its_workload") else {
        return;
    };
    for spec in lab_guests() {
        let (host, facts) = lab.host_of(spec.name);
        let offset = lab.console_length(&host, spec.name);
        let was_running = facts.state == ferry::model::domain::DomainRunState::Running;
        if was_running {
            // Already up: a fresh heartbeat proves the workload loop is running now.
            lab.wait_for_console(
                &host,
                spec.name,
                offset,
                "heartbeat",
                Duration::from_secs(30),
            )
            .unwrap();
        } else {
            lab.set_running(&host, spec.name, true);
            let banner = format!(
                "FERRY-GUEST {} up: mem_mib={}",
                spec.name, spec.workload_mib
            );
            lab.wait_for_console(&host, spec.name, offset, &banner, Duration::from_secs(90))
                .unwrap();
            lab.wait_for_console(
                &host,
                spec.name,
                offset,
                "workload running",
                Duration::from_secs(60),
            )
            .unwrap();
            // Back to the lab's baseline: this guest is not left running.
            lab.set_running(&host, spec.name, false);
        }
        if let Some(disk) = &spec.data_disk {
            let image = lab.plan.host_local_pool_dir(&host).join(disk.file_name);
            assert_eq!(
                disk_content_sha256(&image),
                lab.state.data_disk_sha256[spec.name],
                "data disk of {} holds its known content",
                spec.name
            );
        }
    }
}

#[test]
fn plain_live_migration_moves_the_idle_guest_and_back() {
    let Some(lab) = lab_or_skip("plain_live_migration_moves_the_idle_guest_and_back") else {
        return;
    };
    let (source, facts) = lab.host_of("idle");
    assert_eq!(facts.state, ferry::model::domain::DomainRunState::Running);
    let destination = lab.next_host(&source);

    for (from, to) in [(&source, &destination), (&destination, &source)] {
        let console_offset = lab.console_length(to, "idle");
        let started = Instant::now();
        migrate_live(
            &lab.connect(from),
            &LiveMigrationRequest {
                domain_name: "idle".into(),
                destination_uri: lab.plan.uri(to),
                ..Default::default()
            },
            Duration::from_secs(300),
        )
        .unwrap_or_else(|e| panic!("migrating idle {} → {}: {e}", from.name, to.name));
        eprintln!(
            "plain live migration of idle {} → {}: {:.2} s",
            from.name,
            to.name,
            started.elapsed().as_secs_f64()
        );
        let (now_on, facts) = lab.host_of("idle");
        assert_eq!(now_on.name, to.name, "idle runs on the destination");
        assert_eq!(facts.state, ferry::model::domain::DomainRunState::Running);
        assert!(facts.persistent, "definition moved with the guest");
        // The workload goes on after the switch-over: a new heartbeat on the destination.
        lab.wait_for_console(
            to,
            "idle",
            console_offset,
            "heartbeat",
            Duration::from_secs(30),
        )
        .unwrap();
    }
}

/// sha256 of every file below `dir` (or of `dir` if it is a file), by path.
fn fingerprint(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap().flatten() {
                stack.push(entry.path());
            }
        } else if meta.is_file() {
            use sha2::Digest;
            let bytes = std::fs::read(&path).unwrap_or_default();
            found.insert(
                path.display().to_string(),
                ferry::lab::hex(&sha2::Sha256::digest(&bytes)),
            );
        } else {
            found.insert(path.display().to_string(), "link".into());
        }
    }
    found
}

fn machine_fingerprint() -> BTreeMap<String, String> {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let mut all = BTreeMap::new();
    for dir in [
        "/etc/hosts",
        "/etc/ssh",
        "/etc/libvirt",
        &format!("{home}/.ssh"),
    ] {
        all.extend(fingerprint(Path::new(dir)));
    }
    all
}

fn lab_leftovers() -> Vec<String> {
    let mut leftovers = Vec::new();
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&netns.stdout).lines() {
        if line.starts_with(NAME_PREFIX) {
            leftovers.push(format!("namespace {line}"));
        }
    }
    let links = std::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&links.stdout).lines() {
        if line.contains(NAME_PREFIX) || line.contains(BRIDGE_NAME) {
            leftovers.push(format!("link {line}"));
        }
    }
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if pid != std::process::id() && ferry::lab::is_lab_process(&cmdline) {
            leftovers.push(format!("process {pid}: {cmdline}"));
        }
    }
    if Path::new(LAB_DIR).exists() {
        leftovers.push(format!("directory {LAB_DIR}"));
    }
    leftovers
}

fn qemu_pid_of(guest: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline);
            (cmdline.contains("qemu-system") && cmdline.contains(&format!("guest={guest},")))
                .then_some(pid)
        })
}

#[test]
fn lab_down_leaves_nothing_and_lab_up_is_idempotent() {
    let Some(lab) = lab_or_skip("lab_down_leaves_nothing_and_lab_up_is_idempotent") else {
        return;
    };
    let run_netns_preexisted = lab.state.run_netns_preexisted;
    let machine_before = machine_fingerprint();

    let started = Instant::now();
    let (ok, stdout, stderr) = ferry(&["lab", "down"]);
    assert!(ok, "lab down: {stdout}{stderr}");
    eprintln!(
        "lab down: {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        stdout.trim()
    );
    assert_eq!(
        lab_leftovers(),
        Vec::<String>::new(),
        "lab down leaves nothing"
    );
    if !run_netns_preexisted {
        assert!(!Path::new("/run/netns").exists(), "/run/netns restored");
    }
    assert_eq!(
        machine_fingerprint(),
        machine_before,
        "the machine's own files are untouched"
    );
    let (ok, _, _) = ferry(&["lab", "down"]);
    assert!(ok, "lab down on no lab is harmless");

    let started = Instant::now();
    let (ok, stdout, stderr) = ferry(&["lab", "up"]);
    assert!(ok, "lab up: {stdout}{stderr}");
    eprintln!(
        "lab up from nothing: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(stdout.contains("3 host(s) started"), "{stdout}");
    let idle_qemu = qemu_pid_of("idle").expect("idle runs after lab up");

    let (ok, stdout, stderr) = ferry(&["lab", "up"]);
    assert!(ok, "second lab up: {stdout}{stderr}");
    assert!(stdout.contains("0 host(s) started, 3 kept"), "{stdout}");
    assert_eq!(
        qemu_pid_of("idle"),
        Some(idle_qemu),
        "second lab up leaves running guests alone"
    );
    for spec in lab_guests() {
        lab.host_of(spec.name);
    }

    // Leftovers of a lab whose processes are gone: kill every lab process, keep namespaces
    // and links, and lab up must bring the same lab back, guests included.
    let pids: Vec<i32> = lab
        .plan
        .hosts
        .iter()
        .flat_map(|host| {
            let out = std::process::Command::new("ip")
                .args(["netns", "pids", &host.netns])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    assert!(!pids.is_empty());
    for pid in &pids {
        // SAFETY: kill(2) on pids of the lab's own namespaces.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_secs(1));
    let (ok, stdout, stderr) = ferry(&["lab", "up"]);
    assert!(ok, "lab up over dead leftovers: {stdout}{stderr}");
    assert!(stdout.contains("3 host(s) started"), "{stdout}");
    for spec in lab_guests() {
        let (_, facts) = lab.host_of(spec.name);
        assert_eq!(
            facts.state == ferry::model::domain::DomainRunState::Running,
            spec.start_at_lab_up,
            "{} state after recovery",
            spec.name
        );
    }
    let (ok, stdout, _) = ferry(&["lab", "status"]);
    assert!(ok, "lab status after recovery: {stdout}");
}

/// A host whose libvirtd died (as it did on the lab when libvirt's post-copy resume crashed
/// it) gets its daemons back from `lab up` while its guests keep running: their QEMU processes
/// are the same, and libvirtd reconnects to them.
#[test]
fn lab_up_restarts_a_dead_libvirtd_and_leaves_its_running_guests_alone() {
    let Some(lab) = lab_or_skip("lab_up_restarts_a_dead_libvirtd") else {
        return;
    };
    let (host, facts) = lab.host_of("idle");
    assert_eq!(
        facts.state,
        ferry::model::domain::DomainRunState::Running,
        "lab up keeps idle running"
    );
    let idle_qemu = qemu_pid_of("idle").expect("idle's QEMU");
    let pids = std::fs::read_to_string(lab.plan.host_dir(&host).join("pids")).unwrap();
    let libvirtd: i32 = pids
        .lines()
        .find_map(|line| line.strip_prefix("libvirtd "))
        .and_then(|pid| pid.trim().parse().ok())
        .expect("libvirtd's pid in the host's pids file");
    // SAFETY: kill(2) on the lab host's own libvirtd.
    unsafe { libc::kill(libvirtd, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{libvirtd}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }

    let (ok, stdout, stderr) = ferry(&["lab", "up"]);
    assert!(ok, "lab up: {stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{} (daemons restarted, guests kept)", host.name)),
        "{stdout}"
    );
    assert_eq!(
        qemu_pid_of("idle"),
        Some(idle_qemu),
        "the guest's QEMU process is the same one"
    );
    lab.assert_runs_only_on("idle", &host, "libvirtd reconnected to the running guest");
    let (ok, stdout, _) = ferry(&["lab", "status"]);
    assert!(ok && !stdout.contains("NOT RUNNING"), "{stdout}");
}

/// `lab up --link-delay-ms` puts a delay on every lab ssh link, kept in the lab's state and
/// named by `lab status`; `lab up` without it takes the delay away and keeps the hosts.
#[test]
fn lab_up_link_delay_delays_every_ssh_link_until_lab_up_without_it() {
    let Some(lab) = lab_or_skip("lab_up_link_delay") else {
        return;
    };
    /// Back to no delay even when an assertion below fails.
    struct NoDelayAfter;
    impl Drop for NoDelayAfter {
        fn drop(&mut self) {
            let _ = ferry(&["lab", "up"]);
        }
    }
    let uri = lab.plan.uri(&lab.plan.hosts[1]);
    let time_hostname = || {
        let started = Instant::now();
        let output = std::process::Command::new("virsh")
            .args(["-c", &uri, "hostname"])
            .output()
            .expect("run virsh");
        assert!(output.status.success(), "virsh hostname");
        started.elapsed()
    };
    let undelayed = time_hostname();

    const DELAY_MS: u64 = 200;
    let _restore = NoDelayAfter;
    let (ok, stdout, stderr) = ferry(&["lab", "up", "--link-delay-ms", &DELAY_MS.to_string()]);
    assert!(ok, "lab up with a delay: {stdout}{stderr}");
    assert!(stdout.contains("0 host(s) started, 3 kept"), "{stdout}");
    assert_eq!(
        ferry::lab::LabState::load().map(|s| s.link_delay_ms),
        Some(DELAY_MS as u32)
    );
    let (ok, stdout, _) = ferry(&["lab", "status"]);
    assert!(
        ok && stdout.contains(&format!("link delay: {DELAY_MS} ms each way")),
        "{stdout}"
    );
    // An ssh connection needs several round trips before libvirt says a word: at least one
    // round trip of delay is a floor no load on the machine can lower.
    let delayed = time_hostname();
    assert!(
        delayed >= Duration::from_millis(2 * DELAY_MS),
        "virsh hostname took {delayed:?} with {DELAY_MS} ms each way"
    );
    eprintln!(
        "virsh hostname: {undelayed:?} without delay, {delayed:?} with {DELAY_MS} ms each way"
    );

    let (ok, stdout, stderr) = ferry(&["lab", "up"]);
    assert!(ok, "lab up without a delay: {stdout}{stderr}");
    assert!(stdout.contains("link delay: none"), "{stdout}");
    assert_eq!(
        ferry::lab::LabState::load().map(|s| s.link_delay_ms),
        Some(0)
    );
    let ssh_config = std::fs::read_to_string(lab.plan.ssh_config_path()).unwrap();
    assert!(!ssh_config.contains("ProxyCommand"), "{ssh_config}");
    let (ok, stdout, _) = ferry(&["lab", "status"]);
    assert!(ok && stdout.contains("link delay: none"), "{stdout}");
}

/// Benchmark, not a timed test: prints the wall time of plain peer-to-peer live migrations of
/// the idle guest back and forth. Run with
/// `cargo test --release --test lab -- --ignored --nocapture bench_plain_live_migration`.
#[test]
#[ignore]
fn bench_plain_live_migration() {
    let Some(lab) = lab_or_skip("bench_plain_live_migration") else {
        return;
    };
    let (mut from, _) = lab.host_of("idle");
    let mut seconds = Vec::new();
    for round in 0..10 {
        let to = lab.next_host(&from);
        let started = Instant::now();
        migrate_live(
            &lab.connect(&from),
            &LiveMigrationRequest {
                domain_name: "idle".into(),
                destination_uri: lab.plan.uri(&to),
                ..Default::default()
            },
            Duration::from_secs(300),
        )
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        seconds.push(started.elapsed().as_secs_f64());
        assert_eq!(lab.host_of("idle").0.name, to.name);
        from = to;
    }
    seconds.sort_by(f64::total_cmp);
    eprintln!(
        "plain P2P live migration of idle (256 MiB, 16 MiB touched), {} runs: min {:.2} s, median {:.2} s, max {:.2} s",
        seconds.len(),
        seconds[0],
        seconds[seconds.len() / 2],
        seconds[seconds.len() - 1]
    );
}
