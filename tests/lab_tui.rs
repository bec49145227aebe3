//! The TUI end to end, as an operator drives it over ssh: the real `ferry` binary in a tmux
//! pane (its own tmux server, 120×40), keys sent with `tmux send-keys`, the screen read back
//! with `tmux capture-pane`, and every claim the screen makes checked against libvirt on the
//! lab's hosts.
//!
//! Run it under the lab lock, like every lab test that migrates `busy`:
//! `flock /tmp/ferry-lab.lock cargo test --release --test lab_tui -- --test-threads=1 --nocapture`

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{lab_or_skip, Lab, CALL_TIMEOUT};
use ferry::lab::plan::LabHost;
use ferry::libvirt::facts::DomainRunState;
use ferry::libvirt::LibvirtError;
use regex::Regex;

const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;
/// The tmux session (and window) ferry runs in, on this test's own tmux server.
const SESSION: &str = "ferry";

/// ferry in a tmux pane on a tmux server of its own (`-L`), so that the operator's tmux is
/// never touched; the server, and ferry with it, is killed on drop.
struct Console {
    socket: String,
    state_dir: PathBuf,
}

impl Console {
    fn start(lab: &Lab, test: &str) -> Console {
        let pid = std::process::id();
        let state_dir = std::env::temp_dir().join(format!("ferry-tui-{test}-{pid}"));
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        let console = Console {
            socket: format!("ferry-e2e-{pid}"),
            state_dir,
        };
        let config = lab.plan.ferry_config_path();
        let width = WIDTH.to_string();
        let height = HEIGHT.to_string();
        let env_config = format!("FERRY_CONFIG={}", config.display());
        let env_state = format!("XDG_STATE_HOME={}", console.state_dir.display());
        let output = console.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            &width,
            "-y",
            &height,
            "-e",
            &env_config,
            "-e",
            &env_state,
            common::ferry_binary(),
            // Keep the pane (and what ferry last drew, or its panic) if ferry exits.
            ";",
            "set-option",
            "-t",
            SESSION,
            "remain-on-exit",
            "on",
        ]);
        assert!(
            output.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        console
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux (installed by src/lab/install-deps.sh)")
    }

    /// Named keys as tmux spells them (`Enter`, `Tab`, `BSpace`) or single characters.
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", SESSION];
        args.extend_from_slice(keys);
        let output = self.tmux(&args);
        assert!(
            output.status.success(),
            "tmux send-keys {keys:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Text typed as is, character by character.
    fn type_text(&self, text: &str) {
        let output = self.tmux(&["send-keys", "-t", SESSION, "-l", text]);
        assert!(output.status.success(), "tmux send-keys -l {text:?}");
    }

    /// What the pane shows now, one line per row.
    fn screen(&self) -> String {
        let output = self.tmux(&["capture-pane", "-p", "-t", SESSION]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Polls the screen until `predicate` holds and returns that screen; fails the test with
    /// the last screen if it does not within `timeout`.
    fn wait_for_screen(
        &self,
        what: &str,
        timeout: Duration,
        predicate: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if predicate(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("waited {timeout:?} for the screen to show {what}; last screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

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
            let result =
                self.lab
                    .connect(host)
                    .call("abort a leftover migration", CALL_TIMEOUT, move |c| {
                        let Ok(domain) = c.lookup_domain_by_name(&name) else {
                            return Ok(());
                        };
                        let _ = ferry::libvirt::job_stats::abort_job(&domain);
                        std::thread::sleep(Duration::from_secs(2));
                        let paused = domain.state().is_ok_and(|(state, _)| {
                            DomainRunState::from_libvirt(state) == DomainRunState::Paused
                        });
                        if paused {
                            domain
                                .resume()
                                .map_err(|e| LibvirtError::call("resuming", e))?;
                        }
                        Ok(())
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

/// From the inventory with `busy` alone in the list and selected: opens the launch dialog,
/// waits for every verdict, sets 100 MiB/s, a 100 ms max downtime ceiling, no auto-converge
/// and no post-copy (so it never finishes on its own), picks `destination` and confirms.
fn launch_busy(console: &Console, lab: &Lab, source: &LabHost, destination: &LabHost) {
    console.keys(&["m"]);
    let title = format!("Live-migrate busy from {}", source.name);
    let dialog = console.wait_for_screen(
        "the launch dialog with every precheck verdict",
        Duration::from_secs(90),
        |s| s.contains(&title) && !s.contains("checking…"),
    );
    let verdict_row = Regex::new(&format!(r"│\s*{}\s+\S+\s+\S+\s+pass", destination.name)).unwrap();
    assert!(
        verdict_row.is_match(&dialog),
        "{} passes its prechecks in the dialog:\n{dialog}",
        destination.name
    );

    // Options: policy, bandwidth, max downtime, post-copy, auto-converge, …
    console.keys(&["Tab", "j"]);
    console.type_text("100");
    console.keys(&["j", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace"]);
    console.type_text("100");
    console.keys(&["j", "j", "Space", "Tab"]);
    // Destinations in config order without the source, `auto` first.
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
    let console = Console::start(&lab, "abort-force");

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
