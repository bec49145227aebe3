//! The TUI end to end, as an operator drives it over ssh: the real `ferry` binary in a tmux
//! pane (its own tmux server, 120×40), keys sent with `tmux send-keys`, the screen read back
//! with `tmux capture-pane`, and every claim the screen makes checked against libvirt on the
//! lab's hosts. The live test migrates the lab's `busy`; the cold one a guest of its own
//! (`cold-tui`, set up and removed like the cold lab tests' guests: tests/common/cold_guests.rs).
//!
//! Run it under the lab lock, like every lab test that migrates `busy`:
//! `flock /tmp/ferry-lab.lock cargo test --release --test lab_tui -- --test-threads=1 --nocapture`

mod common;

use std::process::Command;
use std::time::Duration;

use common::cold_guests::{
    data_volume_name, disk_sha256_on, presence, set_up, volume_exists, Acpi, GuestSpec,
    BOOT_TIMEOUT,
};
use common::tui::Console;
use common::{lab_or_skip, Lab, CALL_TIMEOUT};
use ferry::lab::plan::LabHost;
use ferry::libvirt::lifecycle::DomainKey;
use regex::Regex;
use sha2::{Digest, Sha256};

/// Leaves the lab as a failed test must not leave it for the next one: with ferry killed,
/// libvirt would carry on a migration of `busy` that nobody watches. Aborts its job and
/// resumes it if it was left paused (a force-complete pauses it).
struct AbortLeftovers<'a> {
    lab: &'a Lab,
    guest: &'static str,
}

impl Drop for AbortLeftovers<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for host in &self.lab.plan.hosts {
            let name = self.guest.to_string();
            let connection = self.lab.connect(host);
            let key = DomainKey::Name(name);
            let result = ferry::runtime::wait(async {
                if connection.presence(&key, CALL_TIMEOUT).await?.is_none() {
                    return Ok(());
                }
                let _ = connection.abort_migration_job(&key, CALL_TIMEOUT).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                connection.resume_if_paused(&key, CALL_TIMEOUT).await
            });
            if let Err(error) = result {
                eprintln!("cleanup of {} on {}: {error}", self.guest, host.name);
            }
        }
    }
}

/// Rows of the instances list showing `guest`: "│busy  hv2  running …".
fn instance_rows<'a>(screen: &'a str, guest: &str) -> Vec<&'a str> {
    let name = Regex::new(&format!(r"│\s*{}\s", regex::escape(guest))).unwrap();
    screen.lines().filter(|l| name.is_match(l)).collect()
}

/// The migrations list's row for `guest` on this route.
fn migration_row<'a>(
    screen: &'a str,
    guest: &str,
    source: &str,
    destination: &str,
) -> Option<&'a str> {
    let route = format!("{source} → {destination}");
    screen
        .lines()
        .find(|l| l.contains(guest) && l.contains(&route))
}

/// "copy pass 3" and "98 MiB/s" off a migrations row: (pass, rate in MiB/s).
fn pass_and_rate(row: &str) -> Option<(u64, u64)> {
    let pass = Regex::new(r"copy pass (\d+)").unwrap();
    let rate = Regex::new(r"(\d+) MiB/s").unwrap();
    let pass = pass.captures(row)?[1].parse().ok()?;
    let rate = rate.captures(row)?[1].parse().ok()?;
    Some((pass, rate))
}

/// Opens the launch dialog with `key` (`m` live, `c` cold), waits for every precheck verdict
/// and checks `destination` passes.
fn open_launch_dialog(console: &Console, key: &str, title: &str, destination: &LabHost) {
    console.keys(&[key]);
    let dialog = console.wait_for_screen(
        "the launch dialog with every precheck verdict",
        Duration::from_secs(90),
        |s| s.contains(title) && !s.contains("checking…"),
    );
    let verdict_row = Regex::new(&format!(r"│\s*{}\s+\S+\s+\S+\s+pass", destination.name)).unwrap();
    assert!(
        verdict_row.is_match(&dialog),
        "{} passes its prechecks in the dialog ({title}):\n{dialog}",
        destination.name
    );
}

/// From the top of the destinations (`auto`), down to `destination`: they are listed in
/// config order without the source.
fn highlight_destination(console: &Console, lab: &Lab, source: &LabHost, destination: &LabHost) {
    let row = lab
        .plan
        .hosts
        .iter()
        .filter(|h| h.name != source.name)
        .position(|h| h.name == destination.name)
        .unwrap()
        + 1;
    for _ in 0..row {
        console.keys(&["j"]);
    }
}

/// From the inventory with `busy` alone in the list and selected: opens the launch dialog,
/// waits for every verdict, sets 100 MiB/s, a 100 ms max downtime ceiling, no auto-converge
/// and no post-copy (so it never finishes on its own), picks `destination` and confirms.
fn launch_busy(console: &Console, lab: &Lab, source: &LabHost, destination: &LabHost) {
    let title = format!("Live-migrate busy from {}", source.name);
    open_launch_dialog(console, "m", &title, destination);

    // Options: policy, bandwidth, max downtime, post-copy, auto-converge, …
    console.keys(&["Tab", "j"]);
    console.type_text("100");
    console.keys(&["j", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace"]);
    console.type_text("100");
    console.keys(&["j", "j", "Space", "Tab"]);
    highlight_destination(console, lab, source, destination);
    let route = format!("live-migrate busy {} → {}", source.name, destination.name);
    let options = [
        r"bandwidth MiB/s\s+100\s",
        r"max downtime ms\s+100\s",
        r"post-copy\s+not permitted",
        r"auto-converge\s+off",
        r"policy\s+adaptive",
    ]
    .map(|pattern| Regex::new(pattern).unwrap());
    console.wait_for_screen(
        "the options set and the summary naming the destination",
        Duration::from_secs(10),
        |s| s.contains(&route) && options.iter().all(|o| o.is_match(s)),
    );
    console.keys(&["Enter"]);
    console.wait_for_screen("the launch requested", Duration::from_secs(10), |s| {
        !s.contains(&title) && s.contains("requested: live-migrate busy")
    });
}

/// From the inventory: the migrations list, waiting until the migration copies memory at
/// pass ≥ 2 with a rate; then its detail. Returns the detail screen.
fn watch_migration(console: &Console, source: &LabHost, destination: &LabHost, id: u32) -> String {
    console.keys(&["2"]);
    let list = console.wait_for_screen(
        "busy copying memory, pass 2 or later, at a rate, not converging",
        Duration::from_secs(180),
        |s| {
            migration_row(s, "busy", &source.name, &destination.name).is_some_and(|row| {
                pass_and_rate(row).is_some_and(|(pass, _)| pass >= 2)
                    && row.contains("not converging")
            })
        },
    );
    let row = migration_row(&list, "busy", &source.name, &destination.name).unwrap();
    let (pass, rate_mib) = pass_and_rate(row).unwrap();
    println!("migrations list: {}", row.trim());
    assert!(
        (1..=150).contains(&rate_mib),
        "the rate shown ({rate_mib} MiB/s) is under the 100 MiB/s limit (with slack for libvirt's measure): {row}"
    );
    assert!(pass >= 2);

    // Select the running migration (running ones are listed first) and open it.
    console.keys(&["g", "Enter"]);
    let title = format!(
        "#{id} busy {} → {} · live · adaptive",
        source.name, destination.name
    );
    console.wait_for_screen("the migration's detail", Duration::from_secs(10), |s| {
        s.contains(&title)
            && s.contains("≤100 MiB/s at launch")
            && s.contains("no post-copy")
            && s.contains("copy pass")
    })
}

#[test]
fn tui_launches_aborts_and_force_completes_a_migration_of_busy() {
    let Some(lab) = lab_or_skip("tui_launch_abort_force_complete") else {
        return;
    };
    let (source, was_running) = lab.busy_running();
    let destination = lab.next_host(&source);
    let _leftovers = AbortLeftovers {
        lab: &lab,
        guest: "busy",
    };
    let console = Console::start(&lab.plan.ferry_config_path(), "abort-force");

    // Every host answered, and busy is listed running on its source.
    console.wait_for_screen(
        "the hosts up and busy running",
        Duration::from_secs(60),
        |s| {
            instance_rows(s, "busy")
                .iter()
                .any(|r| r.contains(source.name.as_str()) && r.contains("running"))
                && !s.contains("unreachable")
                && !s.contains("refreshed never")
        },
    );
    console.keys(&["/"]);
    console.type_text("busy");
    console.keys(&["Enter"]);
    console.wait_for_screen("only busy listed", Duration::from_secs(10), |s| {
        s.contains("/busy")
            && instance_rows(s, "busy").len() == 1
            && instance_rows(s, "idle").is_empty()
    });

    // 1. Launch, 2. watch it not converge, abort it.
    launch_busy(&console, &lab, &source, &destination);
    let detail = watch_migration(&console, &source, &destination, 1);
    println!("detail before abort:\n{detail}");
    console.keys(&["a"]);
    console.wait_for_screen("the abort question", Duration::from_secs(10), |s| {
        s.contains("Abort #1 busy?") && s.contains(&format!("keeps running on {}", source.name))
    });
    console.keys(&["y"]);
    // The verdict line holds the outcome only once the engine has finished (the phase may
    // say "cancelled" a moment earlier, from libvirt's last job statistics).
    let outcome = Regex::new(r"verdict\s+cancelled: ").unwrap();
    let cancelled =
        console.wait_for_screen("the migration cancelled", Duration::from_secs(120), |s| {
            outcome.is_match(s) && s.contains(" 0 running ")
        });
    println!("after abort:\n{cancelled}");
    lab.assert_runs_only_on("busy", &source, "after abort from the TUI");

    // 3. Launch again and force-complete: no post-copy permitted, so busy is paused until
    // the copy catches up, then resumed on the destination.
    console.keys(&["1"]);
    console.wait_for_screen(
        "busy listed once, on its source, without a job",
        Duration::from_secs(60),
        |s| {
            let rows = instance_rows(s, "busy");
            rows.len() == 1
                && rows[0].contains(source.name.as_str())
                && rows[0].contains("running")
                && !rows[0].contains("JOB")
        },
    );
    launch_busy(&console, &lab, &source, &destination);
    watch_migration(&console, &source, &destination, 2);
    console.keys(&["f"]);
    console.wait_for_screen(
        "the force-complete question",
        Duration::from_secs(10),
        |s| {
            s.contains("Force-complete #2 busy?")
                && s.contains(&format!("Pause the VM on {}", source.name))
        },
    );
    console.keys(&["y"]);
    let completed =
        console.wait_for_screen("the migration completed", Duration::from_secs(180), |s| {
            s.contains(" 0 running ")
                && s.contains("completed in")
                && s.contains(&format!("nothing: busy runs on {}", destination.name))
        });
    println!("after force-complete:\n{completed}");
    lab.assert_runs_only_on("busy", &destination, "after force-complete from the TUI");

    // The migrations list keeps both, with how each ended.
    console.keys(&["Escape"]);
    // Wait for the list itself: the detail's status bar shows the same counters.
    let list = console.wait_for_screen("both migrations listed", Duration::from_secs(10), |s| {
        s.contains("┌ Migrations") && s.contains("0 running") && s.contains("2 recent")
    });
    assert!(list.contains("cancelled"), "{list}");
    assert!(list.contains("completed in"), "{list}");
    console.keys(&["q"]);

    if !was_running {
        lab.set_running(&destination, "busy", false);
    }
}

/// The cold-migration test guest of this file: its own, never the lab's.
const COLD_GUEST: &str = "cold-tui";

/// From the inventory with `guest` alone in the list and selected: opens the cold launch
/// dialog, waits for every verdict, caps the copy at `bandwidth_mib` if given, picks
/// `destination` and launches.
fn launch_cold(
    console: &Console,
    lab: &Lab,
    guest: &str,
    source: &LabHost,
    destination: &LabHost,
    bandwidth_mib: Option<u64>,
) {
    let title = format!("Cold-migrate {guest} from {}", source.name);
    open_launch_dialog(console, "c", &title, destination);

    // Options: shutdown s, hard power-off, bandwidth MiB/s (empty: no limit).
    if let Some(mib) = bandwidth_mib {
        console.keys(&["Tab", "j", "j"]);
        console.type_text(&mib.to_string());
        console.keys(&["Tab"]);
    }
    highlight_destination(console, lab, source, destination);
    let route = format!(
        "cold-migrate {guest} {} → {}",
        source.name, destination.name
    );
    let bandwidth = match bandwidth_mib {
        Some(mib) => format!(r"bandwidth MiB/s\s+{mib}\s"),
        None => r"bandwidth MiB/s\s+no limit\s".to_string(),
    };
    let options = [
        r"shutdown s\s+60\s",
        r"hard power-off\s+never \(refuse instead\)",
        &bandwidth,
    ]
    .map(|pattern| Regex::new(pattern).unwrap());
    console.wait_for_screen(
        "the options set and the summary naming the destination",
        Duration::from_secs(10),
        |s| s.contains(&route) && options.iter().all(|o| o.is_match(s)),
    );
    console.keys(&["Enter"]);
    console.wait_for_screen("the launch requested", Duration::from_secs(10), |s| {
        !s.contains(&title) && s.contains(&format!("requested: cold-migrate {guest}"))
    });
}

/// The running cold migration `id` in the list (`2`): waits for it to await confirm and
/// returns the list; with `copy_seen`, first for its copy under way (phase, percent, rate).
fn watch_cold_to_awaiting(
    console: &Console,
    source: &LabHost,
    destination: &LabHost,
    id: u32,
    copy_seen: bool,
) -> String {
    console.keys(&["2"]);
    let row_of = |s: &str| {
        migration_row(s, COLD_GUEST, &source.name, &destination.name)
            .filter(|row| {
                row.trim_start_matches('│')
                    .trim_start()
                    .starts_with(&format!("{id} "))
            })
            .map(str::to_string)
    };
    if copy_seen {
        let copying = Regex::new(r"copy 1/1\s+(\d+)%\s+(\d+) MiB/s\s+ETA").unwrap();
        let list = console.wait_for_screen(
            "the copy under way: copy 1/1 with a percent, a rate and an ETA",
            Duration::from_secs(120),
            |s| row_of(s).is_some_and(|row| copying.is_match(&row)),
        );
        let row = row_of(&list).unwrap();
        println!("migrations list while copying: {}", row.trim());
        let rate_mib: u64 = copying.captures(&row).unwrap()[2].parse().unwrap();
        assert!(
            rate_mib <= 8,
            "the copy rate shown ({rate_mib} MiB/s) keeps to the 4 MiB/s cap (with slack for the measure): {row}"
        );
    }
    let awaiting = format!(
        "on {}, {} keeps a copy: C confirm · R revert",
        destination.name, source.name
    );
    console.wait_for_screen(
        "the cold migration awaiting confirm",
        Duration::from_secs(180),
        |s| {
            s.contains("┌ Migrations")
                && s.contains("1 awaiting confirm")
                && row_of(s).is_some_and(|row| {
                    row.contains(" awaiting ") && row.contains("100%") && row.contains(&awaiting)
                })
        },
    )
}

/// sha256 of a file's bytes: what ferry streams and verifies for a disk.
fn file_sha256(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// With cold migration `id` awaiting confirm and listed first: checks with libvirt that the
/// guest runs on the destination while the source keeps its copy, inactive; then opens its
/// detail and waits for the disk shown verified with the sha256 of the volume's bytes, the
/// same on both hosts. Returns the detail screen.
fn open_awaiting_detail(
    console: &Console,
    lab: &Lab,
    source: &LabHost,
    destination: &LabHost,
    id: u32,
) -> String {
    let on_destination =
        presence(lab, destination, COLD_GUEST).expect("defined on the destination");
    assert!(
        on_destination.active,
        "#{id}: runs on {} while awaiting confirm",
        destination.name
    );
    let on_source = presence(lab, source, COLD_GUEST).expect("the source keeps its copy");
    assert!(
        !on_source.active && on_source.persistent,
        "#{id}: the copy on {} is kept, inactive",
        source.name
    );
    // The guest is off on the source from its shutdown on: its volume is what was streamed.
    let volume = data_volume_name(COLD_GUEST);
    let stream_sha256 = file_sha256(&lab.plan.host_local_pool_dir(source).join(&volume));
    assert_eq!(
        file_sha256(&lab.plan.host_local_pool_dir(destination).join(&volume)),
        stream_sha256,
        "#{id}: the copy on {} is the source's volume byte for byte",
        destination.name
    );

    // Running and awaiting migrations are listed before the finished ones.
    console.keys(&["g", "Enter"]);
    let title = format!(
        "#{id} {COLD_GUEST} {} → {} · cold",
        source.name, destination.name
    );
    let phase = Regex::new(r"phase\s+awaiting").unwrap();
    let verified = format!("✓ sha256 {}…", &stream_sha256[..16]);
    console.wait_for_screen(
        "the detail awaiting confirm, the disk verified with the volume's sha256",
        Duration::from_secs(10),
        |s| {
            s.contains(&title)
                && phase.is_match(s)
                && s.contains(&verified)
                && s.contains("C confirm removes it")
        },
    )
}

/// A cold migration driven from the TUI twice: reverted, then confirmed. Its own guest,
/// running, with a data disk of known content; every outcome the screen shows is checked
/// against libvirt, the disk's content, and the history the TUI wrote.
#[test]
fn tui_cold_migrates_a_guest_reverts_then_confirms() {
    let Some(lab) = lab_or_skip("tui_cold_migrates_a_guest_reverts_then_confirms") else {
        return;
    };
    // Declared before the console, so dropped after it: ferry is gone before the cleanup.
    let guests = set_up(
        &lab,
        &[GuestSpec {
            name: COLD_GUEST,
            running: true,
            acpi: Acpi::PowerOff,
            seed: 0xc01d_7001,
        }],
    );
    let content_sha256 = guests.sha256_of(COLD_GUEST).to_string();
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);
    let console = Console::start(&lab.plan.ferry_config_path(), "cold");

    console.wait_for_screen(
        "the hosts up and the test guest running on its source",
        Duration::from_secs(60),
        |s| {
            instance_rows(s, COLD_GUEST)
                .iter()
                .any(|r| r.contains(source.name.as_str()) && r.contains("running"))
                && !s.contains("unreachable")
                && !s.contains("refreshed never")
        },
    );
    console.keys(&["/"]);
    console.type_text(COLD_GUEST);
    console.keys(&["Enter"]);
    console.wait_for_screen("only the test guest listed", Duration::from_secs(10), |s| {
        s.contains(&format!("/{COLD_GUEST}")) && instance_rows(s, COLD_GUEST).len() == 1
    });

    // 1. Launch, copy capped at 4 MiB/s so the copy shows; 2. awaiting confirm, verified.
    launch_cold(&console, &lab, COLD_GUEST, &source, &destination, Some(4));
    let list = watch_cold_to_awaiting(&console, &source, &destination, 1, true);
    println!("list awaiting confirm:\n{list}");
    let detail = open_awaiting_detail(&console, &lab, &source, &destination, 1);
    println!("detail awaiting confirm:\n{detail}");

    // 3. Revert: back on the source, nothing left on the destination.
    console.keys(&["R"]);
    console.wait_for_screen("the revert question", Duration::from_secs(10), |s| {
        s.contains(&format!("Revert #1 {COLD_GUEST} to {}?", source.name))
    });
    let source_console = lab.console_length(&source, COLD_GUEST);
    console.keys(&["y"]);
    let phase = Regex::new(r"phase\s+reverted").unwrap();
    let reverted =
        console.wait_for_screen("the migration reverted", Duration::from_secs(120), |s| {
            phase.is_match(s) && s.contains(&format!("reverted: on {} only", source.name))
        });
    println!("after revert:\n{reverted}");
    lab.wait_for_console(
        &source,
        COLD_GUEST,
        source_console,
        "up: acpi=",
        BOOT_TIMEOUT,
    )
    .unwrap();
    lab.assert_runs_only_on(COLD_GUEST, &source, "after revert from the TUI");
    assert!(
        !volume_exists(&lab, &destination, COLD_GUEST),
        "the copy on {} is deleted by the revert",
        destination.name
    );
    assert_eq!(disk_sha256_on(&lab, &source, COLD_GUEST), content_sha256);

    // 4. Launch again, at full speed, and confirm.
    console.keys(&["1"]);
    console.wait_for_screen(
        "the test guest listed once, running on its source",
        Duration::from_secs(60),
        |s| {
            let rows = instance_rows(s, COLD_GUEST);
            rows.len() == 1 && rows[0].contains(source.name.as_str()) && rows[0].contains("running")
        },
    );
    launch_cold(&console, &lab, COLD_GUEST, &source, &destination, None);
    watch_cold_to_awaiting(&console, &source, &destination, 2, false);
    open_awaiting_detail(&console, &lab, &source, &destination, 2);
    console.keys(&["C"]);
    console.wait_for_screen("the confirm question", Duration::from_secs(10), |s| {
        s.contains(&format!("Confirm #2 {COLD_GUEST} on {}?", destination.name))
    });
    console.keys(&["y"]);
    let phase = Regex::new(r"phase\s+confirmed").unwrap();
    let confirmed =
        console.wait_for_screen("the migration confirmed", Duration::from_secs(120), |s| {
            phase.is_match(s) && s.contains(&format!("confirmed: on {} only", destination.name))
        });
    println!("after confirm:\n{confirmed}");
    lab.assert_runs_only_on(COLD_GUEST, &destination, "after confirm from the TUI");
    assert_eq!(presence(&lab, &source, COLD_GUEST), None);
    assert!(
        !volume_exists(&lab, &source, COLD_GUEST),
        "the source volume is deleted by the confirm"
    );
    assert!(volume_exists(&lab, &destination, COLD_GUEST));
    assert_eq!(
        disk_sha256_on(&lab, &destination, COLD_GUEST),
        content_sha256
    );

    // The list keeps both, with how each ended.
    console.keys(&["Escape"]);
    let list = console.wait_for_screen("both migrations listed", Duration::from_secs(10), |s| {
        s.contains("┌ Migrations") && s.contains("0 running") && s.contains("2 recent")
    });
    println!("list at the end:\n{list}");
    let ended = |id: u32, label: &str| {
        list.lines().any(|row| {
            let row = row.trim_start_matches('│').trim_start();
            row.starts_with(&format!("{id} "))
                && row.contains(COLD_GUEST)
                && row.contains(&format!(" {label} "))
        })
    };
    assert!(ended(1, "reverted"), "#1 listed as reverted:\n{list}");
    assert!(ended(2, "confirmed"), "#2 listed as confirmed:\n{list}");
    console.keys(&["q"]);

    // 5. The history the TUI wrote, read by the CLI from the same state directory.
    let output = Command::new(common::ferry_binary())
        .args(["history", "--json"])
        .env("FERRY_CONFIG", lab.plan.ferry_config_path())
        .env("XDG_STATE_HOME", &console.state_dir)
        .output()
        .expect("run ferry history");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ferry history: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let history: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let outcomes: Vec<(&str, &str, &str)> = history
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap_or(""),
                m["instance_name"].as_str().unwrap_or(""),
                m["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("cold", COLD_GUEST, "confirmed"),
            ("cold", COLD_GUEST, "reverted")
        ],
        "newest first: {stdout}"
    );
}
