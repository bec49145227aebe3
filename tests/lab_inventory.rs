//! Issue 3 on the lab: the inventory against real libvirt hosts.
//!
//! Run one at a time, with the lab up, as root:
//!   FERRY_REQUIRE_LAB=1 cargo test --test lab_inventory -- --test-threads=1 --nocapture
//! With FERRY_REQUIRE_LAB=1 a missing lab fails these tests; without it they skip loudly.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferry::config::Config;
use ferry::inventory::{collect_once, spawn_workers, InventoryEvent};

const LAB_CONFIG: &str = "/var/lib/ferry-lab/ferry.toml";

/// The lab's ferry config, or None (skip) when the lab is not here. Panics instead when
/// FERRY_REQUIRE_LAB=1, so CI never passes by skipping.
fn ferry_lab_config() -> Option<(PathBuf, Config)> {
    let path = PathBuf::from(LAB_CONFIG);
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let problem = if !root {
        Some("not running as root".to_string())
    } else if !path.exists() {
        Some(format!("{LAB_CONFIG} does not exist (run `ferry lab up`)"))
    } else {
        None
    };
    if let Some(problem) = problem {
        if std::env::var("FERRY_REQUIRE_LAB").is_ok_and(|v| v == "1") {
            panic!("FERRY_REQUIRE_LAB=1 but the lab is not available: {problem}");
        }
        eprintln!("\n!!! SKIPPING lab inventory test: {problem} (set FERRY_REQUIRE_LAB=1 to fail instead)\n");
        return None;
    }
    let config = Config::load(&path).expect("lab config parses");
    Some((path, config))
}

/// (name, state) pairs from `virsh list --all`, whose columns are Id, Name, State.
fn virsh_list_all(uri: &str) -> BTreeSet<(String, String)> {
    let output = Command::new("virsh")
        .args(["-c", uri, "list", "--all"])
        .output()
        .expect("run virsh");
    assert!(
        output.status.success(),
        "virsh -c {uri} list --all failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(2) // header and dashes
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let _id = words.next()?;
            let name = words.next()?.to_string();
            let state = words.collect::<Vec<_>>().join(" ");
            Some((name, state))
        })
        .collect()
}

#[test]
fn instances_json_matches_virsh_list_all_on_every_host() {
    let Some((path, config)) = ferry_lab_config() else {
        return;
    };
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["--config", path.to_str().unwrap(), "instances", "--json"])
        .output()
        .expect("run ferry");
    assert!(
        output.status.success(),
        "ferry instances failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let instances: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    for host in &config.hosts {
        let ferry_says: BTreeSet<(String, String)> = instances
            .iter()
            // The libvirt rows: a cloud's server rows on the same host are Nova's view.
            .filter(|i| i["host"] == host.name.as_str() && i["backend"] == "libvirt")
            .map(|i| {
                (
                    i["name"].as_str().unwrap().to_string(),
                    i["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(ferry_says, virsh_list_all(&host.uri), "host {}", host.name);
    }
}

/// Brings a lab host's link back even if the test fails half-way.
struct LinkDown(String);

impl LinkDown {
    fn take(link: &str) -> LinkDown {
        let status = Command::new("ip")
            .args(["link", "set", link, "down"])
            .status()
            .expect("ip");
        assert!(status.success(), "ip link set {link} down");
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
fn unreachable_host_is_shown_while_others_refresh_then_recovers() {
    let Some((_, mut config)) = ferry_lab_config() else {
        return;
    };
    config.refresh_interval_seconds = 1;
    config.call_timeout_seconds = 5;
    let victim = config.hosts.last().expect("lab has hosts").name.clone();
    // The lab's veth on the root side is ferry-<host>-v (see lab::plan).
    let link = format!("ferry-{victim}-v");
    let (tx, rx) = mpsc::channel();
    spawn_workers(&config, move |event| tx.send(event).is_ok());
    let wait_for =
        |what: &str, bound: Duration, mut done: Box<dyn FnMut(&InventoryEvent) -> bool>| {
            let started = Instant::now();
            while started.elapsed() < bound {
                if let Ok(event) = rx.recv_timeout(Duration::from_millis(200)) {
                    if done(&event) {
                        return started.elapsed();
                    }
                }
            }
            panic!("{what}: not within {bound:?}");
        };
    let mut up = BTreeSet::new();
    let host_count = config.hosts.len();
    wait_for(
        "every host up",
        Duration::from_secs(60),
        Box::new(move |e| {
            if let InventoryEvent::Refreshed { host, .. } = e {
                up.insert(host.clone());
            }
            up.len() == host_count
        }),
    );

    let outage = LinkDown::take(&link);
    // Keep-alive (5 s x 3) or the call timeout (5 s) notices; allow both plus a refresh.
    let mut others_refreshed = BTreeSet::new();
    let victim_name = victim.clone();
    let others = host_count - 1;
    let took = wait_for(
        "victim unreachable and others still refreshing",
        Duration::from_secs(45),
        Box::new(move |e| {
            match e {
                InventoryEvent::Refreshed { host, .. } if *host != victim_name => {
                    others_refreshed.insert(host.clone());
                }
                InventoryEvent::Unreachable { host, .. } if *host == victim_name => {
                    others_refreshed.insert(host.clone());
                }
                _ => {}
            }
            others_refreshed.len() == others + 1
        }),
    );
    eprintln!("{victim} shown unreachable (and the others refreshed) {took:?} after link down");

    drop(outage);
    let victim_name = victim.clone();
    // Backoff is capped at 30 s, so recovery is seen within it plus one reading.
    let took = wait_for(
        "victim recovers",
        Duration::from_secs(60),
        Box::new(
            move |e| matches!(e, InventoryEvent::Refreshed { host, .. } if *host == victim_name),
        ),
    );
    eprintln!("{victim} refreshed again {took:?} after link up");
}

/// Every lab host answers one fanned-out reading; prints its time against the slowest single
/// host alone (asserts nothing about time). Without link delay this measures the two cores'
/// CPU, not the fan-out: the fair figure, with 50 ms each way, is `bench_inventory` in
/// `tests/lab_bench.rs`.
#[test]
fn fan_out_time_versus_slowest_single_host() {
    let Some((_, config)) = ferry_lab_config() else {
        return;
    };
    let time = |config: &Config| {
        let started = Instant::now();
        let inventory = collect_once(config);
        assert_eq!(inventory.unreachable_count(), 0, "every lab host answers");
        started.elapsed()
    };
    let slowest_single = config
        .hosts
        .iter()
        .map(|host| {
            time(&Config {
                hosts: vec![host.clone()],
                ..config.clone()
            })
        })
        .max()
        .expect("lab has hosts");
    let all = time(&config);
    eprintln!(
        "inventory fan-out: {} hosts in {all:?}; slowest single host {slowest_single:?}; ratio {:.2} (no link delay; see bench_inventory for the fair figure)",
        config.hosts.len(),
        all.as_secs_f64() / slowest_single.as_secs_f64()
    );
}
