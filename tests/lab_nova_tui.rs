//! The TUI as a Nova operator drives it, against the lab's real Nova (`ferry lab up --nova`):
//! the real `ferry` in a tmux pane, keys sent with `tmux send-keys`, the screen read back with
//! `tmux capture-pane`, and what the screen claims checked against Nova's API (read here with
//! plain curl) and the compute hosts' libvirt (virsh), outside ferry's code.
//!
//! The test boots its own server (the lab's `ferry-busy` image: 384 MiB dirtied at 200 MiB/s,
//! which never converges at the lab computes' 40 MiB/s cap) on hv1 and deletes it however the
//! test ends. Run it under the lab lock:
//! `flock /tmp/ferry-lab.lock cargo test --release --test lab_nova_tui -- --test-threads=1 --nocapture`

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::nova::{hosts_defining, nova_lab_or_skip, PlainCloud, LAB_CONFIG};
use common::tui::Console;
use regex::Regex;

const CLOUD: &str = "ferry-lab";

/// The list row of `server`'s Nova migration (its phase column starts with `nova `).
fn nova_row<'a>(screen: &'a str, server: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|line| line.contains(server) && line.contains(" nova "))
}

/// The domain of the server is defined on `host` only, and runs there.
fn assert_domain_runs_only_on(instance: &str, host: &str, when: &str) {
    let defined = hosts_defining(instance);
    assert_eq!(
        defined,
        vec![(host.to_string(), "running".to_string())],
        "{when}: {instance} must be defined on {host} only, running"
    );
}

/// From the inventory: hv1 as Nova's hypervisor in the hosts pane, then the server alone in
/// the instances pane, selected.
fn select_server_on_hv1(console: &Console, server: &str) {
    // Hosts: (all), hv1..hv3 (libvirt), the cloud, then hv1 as the cloud's hypervisor.
    let scope = format!("Instances (hv1 nova:{CLOUD}) ");
    console.keys(&["g"]);
    for _ in 0..5 {
        console.keys(&["j"]);
    }
    console.wait_for_screen("hv1 of the cloud selected", Duration::from_secs(10), |s| {
        s.contains(&scope)
    });
    console.keys(&["Tab", "/"]);
    console.type_text(server);
    console.keys(&["Enter"]);
    let row = Regex::new(&format!(r"│{server}\s+hv1\s+nova:{CLOUD}\s+running")).unwrap();
    console.wait_for_screen(
        "the server alone in hv1's Nova list",
        Duration::from_secs(10),
        |s| s.contains(&format!("{scope}1 /{server}")) && row.is_match(s),
    );
}

/// `m` on the server: the dialog lists hv2 and hv3 with ferry's verdicts; picks hv2 (the first
/// host after `auto`) and launches.
fn launch_to_hv2(console: &Console, server: &str) {
    console.keys(&["m"]);
    let title = format!("Move {server} from hv1 · cloud {CLOUD}");
    let passes = Regex::new(r"hv2\s+passes: enabled, up").unwrap();
    let dialog = console.wait_for_screen(
        "the Nova dialog with its verdicts",
        Duration::from_secs(60),
        |s| s.contains(&title) && passes.is_match(s),
    );
    assert!(
        dialog.contains("auto") && dialog.contains("Nova's scheduler chooses"),
        "auto is offered:\n{dialog}"
    );
    assert!(dialog.contains("‹ live migration ›"), "{dialog}");
    console.keys(&["j"]);
    console.wait_for_screen("the summary naming hv2", Duration::from_secs(10), |s| {
        s.contains(&format!("live migration of {server} from hv1 to hv2"))
    });
    console.keys(&["Enter"]);
    console.wait_for_screen("the launch asked of Nova", Duration::from_secs(10), |s| {
        !s.contains(&title) && s.contains("asked Nova:")
    });
}

/// The migrations list until the row shows Nova's status and libvirt's reading; then its
/// detail. Returns the detail screen.
fn watch_until_libvirt_figures(console: &Console, server: &str) -> String {
    console.keys(&["2"]);
    let list = console.wait_for_screen(
        "the Nova migration running with libvirt's pass",
        Duration::from_secs(180),
        |s| {
            nova_row(s, server).is_some_and(|row| {
                row.contains("hv1 → hv2")
                    && row.contains("nova running")
                    && row.contains("libvirt: pass")
            })
        },
    );
    println!(
        "migrations list: {}",
        nova_row(&list, server).unwrap().trim()
    );
    console.keys(&["g", "Enter"]);
    console.wait_for_screen(
        "the Nova migration's detail",
        Duration::from_secs(30),
        |s| {
            s.contains("through Nova")
                && s.contains("libvirt on hv1, read-only by ferry")
                && s.contains("memory remaining")
                && s.contains("a asks Nova to abort")
        },
    )
}

fn wait_for_nova(
    cloud: &PlainCloud,
    id: &str,
    what: &str,
    done: impl Fn(&str, Option<&str>, &str) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (status, task, host) = cloud.placement_of(id);
        if done(&status, task.as_deref(), &host) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Nova did not reach {what}: {status} task {task:?} on {host}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn tui_live_migrates_a_nova_server_aborts_then_force_completes_it_through_nova() {
    let Some(cloud) = nova_lab_or_skip("tui_nova_abort_force_complete") else {
        return;
    };
    let name = "nova-tui-busy";
    let server = cloud.boot(name, "ferry-busy", "ferry.medium", "hv1");
    let instance = server.instance_name();
    let console = Console::start(Path::new(LAB_CONFIG), "nova");
    console.wait_for_screen(
        "the server in the cloud's inventory",
        Duration::from_secs(90),
        |s| {
            s.lines().any(|l| l.contains(name) && l.contains("nova"))
                && !s.contains("refreshed never")
        },
    );
    select_server_on_hv1(&console, name);

    // 1. Launch to hv2, watch Nova's record and libvirt's reading, abort with a, y.
    launch_to_hv2(&console, name);
    let detail = watch_until_libvirt_figures(&console, name);
    println!("detail before abort:\n{detail}");
    console.keys(&["a"]);
    console.wait_for_screen("the abort question", Duration::from_secs(10), |s| {
        s.contains(&format!("{name} (through Nova)?")) && s.contains("keeps running on hv1")
    });
    console.keys(&["y"]);
    let cancelled = console.wait_for_screen(
        "the migration cancelled by Nova",
        Duration::from_secs(180),
        |s| s.contains("nova cancelled") || s.contains("cancelled: "),
    );
    println!("after abort:\n{cancelled}");
    assert_eq!(
        cloud.migrations_of(&server.id).last().unwrap()["status"],
        "cancelled",
        "Nova's own record says cancelled"
    );
    wait_for_nova(&cloud, &server.id, "ACTIVE on hv1", |status, task, host| {
        status == "ACTIVE" && task.is_none() && host == "hv1"
    });
    assert_domain_runs_only_on(&instance, "hv1", "after abort from the TUI");

    // 2. Launch again and force-complete with f, y: Nova pauses the guest so the copy
    // catches up, and the server ends ACTIVE on hv2.
    console.keys(&["Escape", "1"]);
    console.wait_for_screen(
        "the server back in hv1's list with no task",
        Duration::from_secs(90),
        |s| {
            s.lines()
                .any(|l| l.contains(name) && !l.contains("migrating"))
        },
    );
    launch_to_hv2(&console, name);
    watch_until_libvirt_figures(&console, name);
    console.keys(&["f"]);
    console.wait_for_screen(
        "the force-complete question",
        Duration::from_secs(10),
        |s| s.contains("Force-complete #") && s.contains("pauses the guest on hv1"),
    );
    console.keys(&["y"]);
    let completed = console.wait_for_screen(
        "the migration completed by Nova",
        Duration::from_secs(300),
        |s| s.contains("completed: Nova reports it on hv2"),
    );
    println!("after force-complete:\n{completed}");
    assert_eq!(
        cloud.migrations_of(&server.id).last().unwrap()["status"],
        "completed"
    );
    wait_for_nova(&cloud, &server.id, "ACTIVE on hv2", |status, task, host| {
        status == "ACTIVE" && task.is_none() && host == "hv2"
    });
    assert_domain_runs_only_on(&instance, "hv2", "after force-complete from the TUI");
    console.keys(&["q"]);
}
