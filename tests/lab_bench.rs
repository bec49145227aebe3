//! Benchmarks, not tests: each prints its figures side by side in one run and asserts nothing
//! about speed.
//!
//! - Policies: the same hostile workload (the busy guest dirtying 200 MiB/s of its 512 MiB
//!   while the link is capped at 100 MiB/s) under ferry's `adaptive` policy (with and without
//!   post-copy), under `nova`, and under plain `virsh migrate --live`.
//! - Inventory fan-out: 8 hosts behind 50 ms of link delay each way, read all at once versus
//!   the slowest host alone, from cold (fresh connections) and warm (connections kept).
//!
//! ```text
//! flock /tmp/ferry-lab.lock cargo test --release --test lab_bench -- --ignored --nocapture --test-threads=1
//! FERRY_BENCH_RUNS=3 (default) runs of each; FERRY_RECORD_TRACES=DIR keeps adaptive traces.
//! cargo test --release --test lab_bench bench_inventory -- --ignored --nocapture   (fan-out only)
//! ```

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ferry, lab_or_skip, Lab, CALL_TIMEOUT};
use ferry::config::Config;
use ferry::engine::live::{self, HostTarget, LiveMigrationPlan, LiveOutcome, MigrationUpdate};
use ferry::inventory::collect_once;
use ferry::inventory::worker::read_host;
use ferry::lab::plan::LabHost;
use ferry::libvirt::HostConnection;
use ferry::policy::{AdaptivePolicyConfig, NovaPolicyConfig, PolicyChoice};

const BANDWIDTH_MIB_PER_SECOND: u64 = 100;
const MEMORY_BYTES: u64 = 512 << 20;
/// Plain virsh has no completion timeout: it is stopped after this long and counted as not
/// completed.
const VIRSH_LIMIT: Duration = Duration::from_secs(120);

struct Run {
    label: String,
    completed: bool,
    total: Duration,
    downtime_ms: Option<u64>,
    bytes_moved: Option<u64>,
    note: String,
}

fn runs_each() -> usize {
    std::env::var("FERRY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn target(lab: &Lab, host: &LabHost) -> HostTarget {
    HostTarget {
        name: host.name.clone(),
        uri: lab.plan.uri(host),
    }
}

fn ferry_run(lab: &Lab, label: &str, policy: PolicyChoice, trace: Option<String>) -> Run {
    let source = lab.busy_running().0;
    let destination = lab.next_host(&source);
    let post_copy_permitted = match &policy {
        PolicyChoice::Adaptive(c) => c.permit_post_copy,
        PolicyChoice::Nova(c) => c.permit_post_copy,
    };
    let started = Instant::now();
    let mut handle = live::start(LiveMigrationPlan {
        instance_name: "busy".into(),
        source: target(lab, &source),
        destination: target(lab, &destination),
        policy,
        instance_memory_bytes: MEMORY_BYTES,
        bandwidth_mib_per_second: Some(BANDWIDTH_MIB_PER_SECOND),
        post_copy_permitted,
        block_migration_disks: Vec::new(),
        block_migration_disk_sizes_bytes: Vec::new(),
        guest_was_paused: false,
        poll_interval: Duration::from_millis(500),
        call_timeout: Duration::from_secs(20),
    });
    let mut recorder = trace.and_then(|name| {
        let dir = std::env::var_os("FERRY_RECORD_TRACES")?;
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::File::create(std::path::Path::new(&dir).join(format!("{name}.jsonl"))).ok()
    });
    let mut last_processed = None;
    let mut decisions = Vec::new();
    while let Some(update) = handle.updates.blocking_recv() {
        match &update {
            MigrationUpdate::Sample(sample) => {
                // The last sample after an abort may read 0: keep the most seen.
                last_processed = last_processed.max(sample.data_processed_bytes);
                if let Some(file) = recorder.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(file, "{}", serde_json::to_string(sample).unwrap());
                }
            }
            MigrationUpdate::Policy(event) => decisions.push(event.reason.clone()),
            _ => {}
        }
    }
    let outcome = ferry::runtime::wait(handle.task).unwrap();
    let total = started.elapsed();
    let last_decision = decisions.last().cloned().unwrap_or_default();
    match outcome {
        LiveOutcome::Completed {
            downtime_ms,
            data_transferred_bytes,
            ..
        } => Run {
            label: label.into(),
            completed: true,
            total,
            downtime_ms,
            bytes_moved: data_transferred_bytes.or(last_processed),
            note: last_decision,
        },
        other => Run {
            label: label.into(),
            completed: false,
            total,
            downtime_ms: None,
            bytes_moved: last_processed,
            note: format!("{other:?}"),
        },
    }
}

/// `virsh migrate --live` with libvirt's defaults (P2P so that it runs host to host like
/// ferry's), the same bandwidth cap, stopped with `domjobabort` after `VIRSH_LIMIT`.
fn virsh_run(lab: &Lab) -> Run {
    let source = lab.busy_running().0;
    let destination = lab.next_host(&source);
    let source_uri = lab.plan.uri(&source);
    let destination_uri = lab.plan.uri(&destination);
    let started = Instant::now();
    let mut child = Command::new("virsh")
        .args([
            "-c",
            &source_uri,
            "migrate",
            "--live",
            "--p2p",
            "--persistent",
        ])
        .args(["--undefinesource", "--bandwidth"])
        .arg(BANDWIDTH_MIB_PER_SECOND.to_string())
        .args(["busy", &destination_uri])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run virsh");
    let mut aborted = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if !aborted && started.elapsed() > VIRSH_LIMIT {
            let _ = Command::new("virsh")
                .args(["-c", &source_uri, "domjobabort", "busy"])
                .output();
            aborted = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let total = started.elapsed();
    let completed = status.success();
    let job_uri = if completed {
        &destination_uri
    } else {
        &source_uri
    };
    let info = Command::new("virsh")
        .args(["-c", job_uri, "domjobinfo", "--completed", "busy"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
    };
    let downtime_ms = field("Total downtime")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .filter(|_| completed);
    let bytes_moved = field("Data processed").and_then(|v| {
        let mut parts = v.split_whitespace();
        let number: f64 = parts.next()?.parse().ok()?;
        let unit = match parts.next()? {
            "KiB" => 1u64 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => 1,
        };
        Some((number * unit as f64) as u64)
    });
    Run {
        label: "virsh migrate --live (defaults)".into(),
        completed,
        total,
        downtime_ms,
        bytes_moved,
        note: if aborted {
            format!(
                "stopped by domjobabort after {} s: never converged",
                VIRSH_LIMIT.as_secs()
            )
        } else {
            String::new()
        },
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_policies_on_a_guest_that_never_converges_on_its_own() {
    let Some(lab) = lab_or_skip("bench_policies") else {
        return;
    };
    let runs_each = runs_each();
    let adaptive = AdaptivePolicyConfig::default();
    let adaptive_post_copy = AdaptivePolicyConfig {
        permit_post_copy: true,
        ..AdaptivePolicyConfig::default()
    };
    // Nova's defaults would give 150 s between downtime steps and a 1600 s completion timeout
    // for this guest (2 GiB counted); Nova's smallest allowed delay (3 s/GiB) and a 40 s/GiB
    // timeout keep the same ladder and the same end, 25× sooner.
    let nova = NovaPolicyConfig {
        downtime_delay_seconds_per_gib: 3,
        completion_timeout_seconds_per_gib: 40,
        ..NovaPolicyConfig::default()
    };
    // FERRY_BENCH_ONLY=adaptive,postcopy,nova,virsh picks the contenders (default: all).
    let only = std::env::var("FERRY_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|w| w.trim() == name);
    let mut runs = Vec::new();
    for round in 1..=runs_each {
        if wanted("adaptive") {
            runs.push(ferry_run(
                &lab,
                "ferry adaptive",
                PolicyChoice::Adaptive(adaptive.clone()),
                Some(format!("lab-busy-512mib-bench-adaptive-{round}")),
            ));
        }
        if wanted("postcopy") {
            runs.push(ferry_run(
                &lab,
                "ferry adaptive, post-copy permitted",
                PolicyChoice::Adaptive(adaptive_post_copy.clone()),
                Some(format!("lab-busy-512mib-bench-adaptive-postcopy-{round}")),
            ));
        }
        if wanted("nova") {
            runs.push(ferry_run(
                &lab,
                "ferry nova (time ×1/25)",
                PolicyChoice::Nova(nova.clone()),
                None,
            ));
        }
        if wanted("virsh") {
            runs.push(virsh_run(&lab));
        }
    }
    let bound_seconds = (MEMORY_BYTES >> 20) as f64 / BANDWIDTH_MIB_PER_SECOND as f64;
    println!(
        "\nbusy guest: 512 MiB, dirtying 200 MiB/s, link capped at {BANDWIDTH_MIB_PER_SECOND} MiB/s; \
         memory ÷ bandwidth = {bound_seconds:.2} s"
    );
    println!(
        "{:<38} {:>9} {:>9} {:>11} {:>10} {:>8}  note",
        "run", "completed", "total s", "downtime ms", "moved MiB", "÷ bound"
    );
    for run in &runs {
        println!(
            "{:<38} {:>9} {:>9.1} {:>11} {:>10} {:>8.2}  {}",
            run.label,
            if run.completed { "yes" } else { "NO" },
            run.total.as_secs_f64(),
            run.downtime_ms.map_or("-".into(), |d| d.to_string()),
            run.bytes_moved
                .map_or("-".into(), |b| (b >> 20).to_string()),
            run.total.as_secs_f64() / bound_seconds,
            run.note
        );
    }
}

const FAN_OUT_HOSTS: u32 = 8;
const FAN_OUT_LINK_DELAY_MS: u32 = 50;

/// The lab in a shape of a benchmark's choosing, put back to the default shape (3 hosts, no
/// link delay) when dropped, a failed benchmark included. The caller holds the lab lock
/// throughout, as every lab run does.
struct LabShape;

impl LabShape {
    fn take(hosts: u32, link_delay_ms: u32) -> (LabShape, Duration) {
        let started = Instant::now();
        let (ok, stdout, stderr) = ferry(&[
            "lab",
            "up",
            "--hosts",
            &hosts.to_string(),
            "--link-delay-ms",
            &link_delay_ms.to_string(),
        ]);
        let shape = LabShape;
        assert!(
            ok,
            "lab up --hosts {hosts} --link-delay-ms {link_delay_ms}:\n{stdout}\n{stderr}"
        );
        (shape, started.elapsed())
    }
}

impl Drop for LabShape {
    fn drop(&mut self) {
        let (ok, stdout, stderr) = ferry(&["lab", "up"]);
        if !ok {
            eprintln!(
                "!!! the lab could not be put back to its default shape:\n{stdout}\n{stderr}"
            );
        }
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Resident memory of every process inside the lab hosts' namespaces (daemons and guests).
fn lab_hosts_resident_mib() -> u64 {
    let output = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let resident_kib = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let kib: u64 = output(&["netns", "list"])
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|netns| netns.starts_with("ferry-hv"))
        .flat_map(|netns| {
            output(&["netns", "pids", netns])
                .lines()
                .map(|pid| resident_kib(pid.trim()))
                .collect::<Vec<_>>()
        })
        .sum();
    kib >> 10
}

/// One `virsh hostname` (a fresh qemu+ssh connection and one call): the delay as a client sees it.
fn time_virsh_hostname(uri: &str) -> Duration {
    let started = Instant::now();
    let output = Command::new("virsh")
        .args(["-c", uri, "hostname"])
        .output()
        .expect("run virsh");
    assert!(output.status.success(), "virsh -c {uri} hostname");
    started.elapsed()
}

/// Every host read at once, each in a task of its own over its kept connection, as the
/// inventory's host tasks read them.
fn read_all_warm(connections: &[HostConnection], call_timeout: Duration) -> Duration {
    let started = Instant::now();
    ferry::runtime::wait(async {
        let readers: Vec<_> = connections
            .iter()
            .cloned()
            .map(|connection| {
                tokio::spawn(async move {
                    let reading = read_host(&connection, call_timeout).await;
                    (connection.uri.clone(), reading)
                })
            })
            .collect();
        for reader in readers {
            let (uri, reading) = reader.await.expect("reader task");
            if let Err(error) = reading {
                panic!("{uri}: {error}");
            }
        }
    });
    started.elapsed()
}

fn collect_cold(config: &Config) -> Duration {
    let started = Instant::now();
    let inventory = collect_once(config);
    assert_eq!(inventory.unreachable_count(), 0, "every lab host answers");
    started.elapsed()
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_inventory_fan_out_over_delayed_links() {
    let Some(default_lab) = lab_or_skip("bench_inventory_fan_out") else {
        return;
    };
    let runs = runs_each();
    let probe_host = default_lab.plan.hosts[1].clone();
    let virsh_undelayed = median(
        (0..runs)
            .map(|_| time_virsh_hostname(&default_lab.plan.uri(&probe_host)))
            .collect(),
    );
    let resident_before_mib = lab_hosts_resident_mib();
    let (_shape, shape_took) = LabShape::take(FAN_OUT_HOSTS, FAN_OUT_LINK_DELAY_MS);
    let resident_after_mib = lab_hosts_resident_mib();
    let config = Config::load(Path::new("/var/lib/ferry-lab/ferry.toml")).expect("lab config");
    assert_eq!(config.hosts.len(), FAN_OUT_HOSTS as usize);
    let virsh_delayed = median(
        (0..runs)
            .map(|_| time_virsh_hostname(&config.hosts[1].uri))
            .collect(),
    );

    // Cold: every reading opens its connections afresh (ssh handshake, libvirt's greeting).
    let cold_single: Vec<(String, Duration)> = config
        .hosts
        .iter()
        .map(|host| {
            let alone = Config {
                hosts: vec![host.clone()],
                ..config.clone()
            };
            (
                host.name.to_string(),
                median((0..runs).map(|_| collect_cold(&alone)).collect()),
            )
        })
        .collect();
    let cold_all = median((0..runs).map(|_| collect_cold(&config)).collect());

    // Warm: connections opened once and kept, as the TUI's workers keep theirs.
    let call_timeout = config.call_timeout();
    let connections: Vec<HostConnection> = config
        .hosts
        .iter()
        .map(|host| HostConnection::open(&host.uri, CALL_TIMEOUT).expect("connect"))
        .collect();
    let warm_single: Vec<(String, Duration)> = config
        .hosts
        .iter()
        .zip(&connections)
        .map(|(host, connection)| {
            let alone = std::slice::from_ref(connection);
            (
                host.name.to_string(),
                median(
                    (0..runs)
                        .map(|_| read_all_warm(alone, call_timeout))
                        .collect(),
                ),
            )
        })
        .collect();
    let warm_all = median(
        (0..runs)
            .map(|_| read_all_warm(&connections, call_timeout))
            .collect(),
    );

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let slowest = |singles: &[(String, Duration)]| {
        singles
            .iter()
            .max_by_key(|(_, took)| *took)
            .cloned()
            .expect("lab has hosts")
    };
    println!(
        "\ninventory fan-out: {FAN_OUT_HOSTS} hosts, {FAN_OUT_LINK_DELAY_MS} ms link delay each way, \
         median of {runs} run(s)"
    );
    println!(
        "lab up --hosts {FAN_OUT_HOSTS} --link-delay-ms {FAN_OUT_LINK_DELAY_MS}: {:.1} s; \
         the lab hosts' processes hold {resident_after_mib} MiB resident ({} hosts: \
         {resident_before_mib} MiB)",
        shape_took.as_secs_f64(),
        default_lab.plan.hosts.len()
    );
    println!(
        "virsh hostname on {}: {:.0} ms without delay, {:.0} ms with it",
        probe_host.name,
        ms(virsh_undelayed),
        ms(virsh_delayed)
    );
    println!("{:<6} {:>12} {:>12}", "host", "cold ms", "warm ms");
    for ((name, cold), (_, warm)) in cold_single.iter().zip(&warm_single) {
        println!("{name:<6} {:>12.0} {:>12.0}", ms(*cold), ms(*warm));
    }
    let (cold_slowest_name, cold_slowest) = slowest(&cold_single);
    let (warm_slowest_name, warm_slowest) = slowest(&warm_single);
    println!(
        "{:<26} {:>12} {:>12} {:>8}",
        "", "all hosts ms", "slowest ms", "ratio"
    );
    for (label, all, slowest_name, slowest) in [
        (
            "cold (fresh connections)",
            cold_all,
            cold_slowest_name,
            cold_slowest,
        ),
        (
            "warm (connections kept)",
            warm_all,
            warm_slowest_name,
            warm_slowest,
        ),
    ] {
        println!(
            "{label:<26} {:>12.0} {:>12.0} {:>8.2}  (slowest alone: {slowest_name}; goal <= 1.2)",
            ms(all),
            ms(slowest),
            all.as_secs_f64() / slowest.as_secs_f64()
        );
    }
}
