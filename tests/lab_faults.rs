//! Faults an operator meets, on the lab's real hosts: a destination cut off for 60 s (pre-copy
//! and post-copy), ferry's own connections killed mid-migration (source, destination), a
//! migration started outside ferry, two ferry processes racing for one guest, and a post-copy
//! whose stream breaks. Each test ends by checking where the guest really runs, on exactly one
//! host, against what ferry said and its exit code.
//!
//! Run one at a time (two cores, TCG guests):
//! `flock /tmp/ferry-lab.lock cargo test --test lab_faults -- --test-threads=1 --nocapture`

mod common;

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::operator::{of_type, Operator};
use common::{lab_or_skip, Lab, CALL_TIMEOUT};
use ferry::lab::plan::LabHost;
use serde_json::Value;

/// The lab's `busy` at this cap never converges in pre-copy (it dirties 200 MiB/s), so the
/// migration is still running when the fault is made.
const SLOW_MIB_PER_SECOND: &str = "30";

/// A `ferry migrate busy` that waits for the operator: the Nova policy with no completion
/// timeout takes no action of its own, so each test decides how the migration ends.
fn migrate_args<'a>(destination: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "migrate",
        "busy",
        "--to",
        destination,
        "--policy",
        "nova",
        "--completion-timeout-per-gib",
        "0",
        "--json",
    ];
    args.extend_from_slice(extra);
    args
}

/// Lines read so far from a background ferry, and the receiver for more.
struct Watched {
    child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
    /// `ferry abort busy` as this operator: run when the test ends, so that a failed test
    /// leaves no migration running for the next one.
    abort: Command,
}

impl Watched {
    fn start(operator: &Operator, args: &[&str]) -> Watched {
        let (child, lines) = operator.spawn(args);
        Watched {
            child,
            lines,
            seen: Vec::new(),
            abort: operator.command(&["abort", "busy"]),
        }
    }

    /// Waits up to `timeout` for a line matching `wanted`; returns it.
    fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_secs(1)) {
                Ok(line) => {
                    let hit = wanted(&line);
                    self.seen.push(line.clone());
                    if hit {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "no {what} within {timeout:?}; ferry printed:\n{}",
            self.seen
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    fn wait_for_iteration(&mut self, iteration: u64) {
        self.wait_for(Duration::from_secs(180), "memory pass", |line| {
            line["type"] == "progress" && line["iteration"].as_u64().is_some_and(|i| i >= iteration)
        });
    }

    fn wait_for_phase(&mut self, phase: &str) {
        self.wait_for(Duration::from_secs(120), phase, |line| {
            line["type"] == "progress" && line["phase"] == phase
        });
    }

    /// Waits for ferry to exit (at most `timeout`), collecting the rest of its lines.
    fn finish(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if let Some(status) = self.child.try_wait().expect("ferry's status") {
                // The reader thread delivers what was buffered before the pipe closed.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
                    self.seen.push(line);
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "ferry did not end within {timeout:?}; it printed:\n{}",
                    self.printed()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn printed(&self) -> String {
        self.seen
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn summary(&self) -> &Value {
        of_type(&self.seen, "summary")
            .into_iter()
            .next_back()
            .unwrap_or_else(|| panic!("no summary; ferry printed:\n{}", self.printed()))
    }

    fn count(&self, kind: &str) -> usize {
        of_type(&self.seen, kind).len()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // With no ferry watching, this goes straight to libvirt; it fails harmlessly when no
        // job runs (the test's own migration ended).
        let _ = self
            .abort
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Where `busy` runs now, checked on every host: the only host that defines it, which must be
/// one of `allowed`. Returns that host's name.
fn busy_runs_on_exactly_one_of(lab: &Lab, allowed: &[&LabHost], why: &str) -> String {
    let (host, _) = lab.host_of("busy");
    assert!(
        allowed.iter().any(|h| h.name == host.name),
        "{why}: busy runs on {}, expected one of {:?}",
        host.name,
        allowed.iter().map(|h| &h.name).collect::<Vec<_>>()
    );
    lab.assert_runs_only_on("busy", &host, why);
    host.name
}

/// The outcome ferry reported matches where libvirt's hosts really hold the guest, and the
/// exit code matches the outcome.
fn assert_outcome_matches_the_hosts(
    lab: &Lab,
    watched: &Watched,
    status: ExitStatus,
    source: &LabHost,
    destination: &LabHost,
) -> String {
    // What ferry said, but the figures, for the reader of a failure.
    for line in watched.seen.iter().filter(|l| l["type"] != "progress") {
        eprintln!("ferry: {line}");
    }
    let summary = watched.summary();
    let outcome = summary["outcome"].as_str().unwrap_or_default().to_string();
    let runs_on = busy_runs_on_exactly_one_of(lab, &[source, destination], "after the fault");
    match outcome.as_str() {
        "completed" => {
            assert!(status.success(), "completed exits 0: {}", watched.printed());
            assert_eq!(
                runs_on, destination.name,
                "completed: busy runs on the destination"
            );
        }
        "cancelled" | "failed" => {
            assert!(!status.success(), "{outcome} exits 1");
            assert_eq!(runs_on, source.name, "{outcome}: busy runs on the source");
        }
        other => panic!(
            "the outcome must be settled from the hosts' answers, got {other:?}: {}",
            watched.printed()
        ),
    }
    assert_eq!(
        summary["runs_on"],
        runs_on.as_str(),
        "the summary says where it runs"
    );
    outcome
}

/// Where the busy guest is now and a different destination, with busy running and its
/// workload under way.
fn busy_route(lab: &Lab) -> (LabHost, LabHost) {
    let (source, _) = lab.busy_running();
    let destination = lab.next_host(&source);
    (source, destination)
}

/// The ssh clients libvirt spawned for `pid`'s connections to `host` (the lab's wrapper runs
/// `ssh … HOST`), among `pid`'s descendants.
fn ssh_clients_of(pid: u32, host: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let mut frontier = vec![pid as i32];
    while let Some(parent) = frontier.pop() {
        for child in children_of(parent) {
            frontier.push(child);
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            let words: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            let is_ssh = words.first().is_some_and(|w| w.ends_with("ssh"));
            if is_ssh && words.iter().any(|w| w == host) {
                found.push(child);
            }
        }
    }
    found
}

fn children_of(pid: i32) -> Vec<i32> {
    let mut children = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return children;
    };
    for task in tasks.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    children
}

fn kill_all(pids: &[i32]) {
    for pid in pids {
        // SAFETY: kill(2) with a valid signal has no memory-safety preconditions.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
}

/// Waits until ferry holds at least one ssh connection to `host`, then kills them all.
fn kill_ferrys_connections_to(watched: &Watched, host: &LabHost) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let clients = ssh_clients_of(watched.child.id(), &host.name);
        if !clients.is_empty() {
            kill_all(&clients);
            return clients.len();
        }
        assert!(
            Instant::now() < deadline,
            "ferry holds no ssh connection to {}",
            host.name
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

/// Takes the host's link down (its end inside the namespace) for `how_long`, then up again.
/// A cut of this length does not break TCP streams by itself: they carry on afterwards.
fn cut_link(host: &LabHost, how_long: Duration) {
    run("ip", &["-n", &host.netns, "link", "set", "eth0", "down"]);
    std::thread::sleep(how_long);
    run("ip", &["-n", &host.netns, "link", "set", "eth0", "up"]);
}

/// Resets every migration stream between `source` and `destination` (QEMU's migration
/// ports), and keeps new ones from forming until the guard is dropped: a post-copy stream
/// broken for real, as a failing link breaks it. On the lab the REJECT rules alone broke the
/// destination's side only minutes later, so the open sockets are also destroyed (`ss -K`) on
/// both hosts at once.
struct StreamsReset {
    netns: String,
}

const MIGRATION_PORTS: &str = "49152:49215";

impl StreamsReset {
    fn start(source: &LabHost, destination: &LabHost) -> StreamsReset {
        let guard = StreamsReset {
            netns: destination.netns.clone(),
        };
        guard.rules("-I");
        let kill = |netns: &str, filter: &[&str]| {
            let status = Command::new("ip")
                .args(["netns", "exec", netns, "ss", "-K"])
                .args(filter)
                .stdout(Stdio::null())
                .status()
                .expect("run ss");
            assert!(status.success(), "ss -K in {netns}");
        };
        let destination_address = destination.address.to_string();
        kill(
            &destination.netns,
            &["( sport >= :49152 and sport <= :49215 )"],
        );
        // Only the streams to the destination: the range also holds the source's own ssh
        // clients' ephemeral ports.
        kill(
            &source.netns,
            &[
                "dst",
                &destination_address,
                "( dport >= :49152 and dport <= :49215 )",
            ],
        );
        guard
    }

    fn rules(&self, action: &str) {
        for (chain, side) in [("INPUT", "--dport"), ("OUTPUT", "--sport")] {
            let status = Command::new("ip")
                .args(["netns", "exec", &self.netns, "iptables", action, chain])
                .args(["-p", "tcp", side, MIGRATION_PORTS])
                .args(["-j", "REJECT", "--reject-with", "tcp-reset"])
                .status()
                .expect("run iptables");
            assert!(
                status.success() || action == "-D",
                "iptables {action} {chain}"
            );
        }
    }
}

impl Drop for StreamsReset {
    fn drop(&mut self) {
        self.rules("-D");
    }
}

/// libvirtd still runs on every lab host (nothing ferry did crashed one).
fn assert_every_libvirtd_runs(lab: &Lab) {
    for host in &lab.plan.hosts {
        let answers = ferry::runtime::wait(lab.connect(host).host_facts(CALL_TIMEOUT))
            .map(|facts| facts.hostname)
            .unwrap_or_else(|e| panic!("{}'s libvirtd does not answer: {e}", host.name));
        assert_eq!(answers, host.name);
    }
}

#[test]
fn a_destination_cut_off_for_60_s_in_pre_copy_ends_as_the_hosts_show() {
    let Some(lab) = lab_or_skip("destination_cut_in_pre_copy") else {
        return;
    };
    let operator = Operator::new(&lab, "faults-cut-precopy");
    let (source, destination) = busy_route(&lab);
    let mut watched = Watched::start(
        &operator,
        &migrate_args(&destination.name, &["--bandwidth", SLOW_MIB_PER_SECOND]),
    );
    watched.wait_for_iteration(2);
    cut_link(&destination, Duration::from_secs(60));
    // Whatever libvirt made of the cut, ferry must not decide while the destination is
    // silent; once it answers, an operator's force-complete ends a migration still running.
    let _ = operator.run(&["force-complete", "busy"]);
    let status = watched.finish(Duration::from_secs(600));
    assert_outcome_matches_the_hosts(&lab, &watched, status, &source, &destination);
    assert_every_libvirtd_runs(&lab);
}

#[test]
fn a_destination_cut_off_for_60_s_in_post_copy_completes_on_the_destination() {
    let Some(lab) = lab_or_skip("destination_cut_in_post_copy") else {
        return;
    };
    let operator = Operator::new(&lab, "faults-cut-postcopy");
    let (source, destination) = busy_route(&lab);
    let mut watched = Watched::start(
        &operator,
        &migrate_args(&destination.name, &["--postcopy", "--bandwidth", "20"]),
    );
    watched.wait_for_iteration(2);
    let (ok, stdout, stderr) = operator.run(&["force-complete", "busy"]);
    assert!(ok, "force-complete: {stdout}{stderr}");
    watched.wait_for_phase("post-copy");
    cut_link(&destination, Duration::from_secs(60));
    let status = watched.finish(Duration::from_secs(900));
    // Once in post-copy the guest runs on the destination: the only right ending is there.
    let outcome = assert_outcome_matches_the_hosts(&lab, &watched, status, &source, &destination);
    assert_eq!(outcome, "completed", "{}", watched.printed());
    assert_every_libvirtd_runs(&lab);
}

#[test]
fn ferrys_connections_to_the_source_killed_mid_migration_are_reconnected() {
    let Some(lab) = lab_or_skip("source_connections_killed") else {
        return;
    };
    let operator = Operator::new(&lab, "faults-kill-source");
    let (source, destination) = busy_route(&lab);
    let mut watched = Watched::start(
        &operator,
        &migrate_args(&destination.name, &["--bandwidth", SLOW_MIB_PER_SECOND]),
    );
    watched.wait_for_iteration(2);
    let killed = kill_ferrys_connections_to(&watched, &source);
    assert!(
        killed >= 2,
        "ferry had its monitor and its launch call on {}",
        source.name
    );
    watched.wait_for(
        Duration::from_secs(120),
        "reconnection to the source",
        |line| line["type"] == "reconnected" && line["host"] == source.name.as_str(),
    );
    // The watch goes on with the same job: fresh figures after the reconnection.
    watched.wait_for(
        Duration::from_secs(60),
        "progress after reconnecting",
        |line| line["type"] == "progress" && line["phase"] == "copying-memory",
    );
    let (ok, stdout, stderr) = operator.run(&["force-complete", "busy"]);
    assert!(
        ok,
        "force-complete reaches the ferry that still watches: {stdout}{stderr}"
    );
    let status = watched.finish(Duration::from_secs(600));
    let outcome = assert_outcome_matches_the_hosts(&lab, &watched, status, &source, &destination);
    assert_eq!(outcome, "completed", "{}", watched.printed());
}

#[test]
fn ferrys_connections_to_the_destination_killed_mid_migration_are_reconnected() {
    let Some(lab) = lab_or_skip("destination_connections_killed") else {
        return;
    };
    let operator = Operator::new(&lab, "faults-kill-destination");
    let (source, destination) = busy_route(&lab);
    let mut watched = Watched::start(
        &operator,
        &migrate_args(&destination.name, &["--bandwidth", SLOW_MIB_PER_SECOND]),
    );
    watched.wait_for_iteration(2);
    kill_ferrys_connections_to(&watched, &destination);
    watched.wait_for(
        Duration::from_secs(120),
        "reconnection to the destination",
        |line| line["type"] == "reconnected" && line["host"] == destination.name.as_str(),
    );
    let (ok, stdout, stderr) = operator.run(&["force-complete", "busy"]);
    assert!(ok, "force-complete: {stdout}{stderr}");
    let status = watched.finish(Duration::from_secs(600));
    let outcome = assert_outcome_matches_the_hosts(&lab, &watched, status, &source, &destination);
    assert_eq!(outcome, "completed", "{}", watched.printed());
}

#[test]
fn a_migration_started_outside_ferry_is_refused_and_left_to_finish() {
    let Some(lab) = lab_or_skip("outside_migration_refused") else {
        return;
    };
    let operator = Operator::new(&lab, "faults-outside");
    let (source, outside_destination) = busy_route(&lab);
    let ferry_destination = lab.next_host(&outside_destination);
    let virsh = |host: &LabHost, args: &[&str]| {
        Command::new("virsh")
            .arg("-c")
            .arg(lab.plan.uri(host))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run virsh")
    };
    let destination_uri = lab.plan.uri(&outside_destination);
    let mut outside = virsh(
        &source,
        &[
            "migrate",
            "--live",
            "--p2p",
            "--persistent",
            "--undefinesource",
            "--bandwidth",
            SLOW_MIB_PER_SECOND,
            "busy",
            &destination_uri,
        ],
    );
    // Until the outside job runs on the source.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lab
        .placements("busy")
        .iter()
        .any(|(host, facts)| host.name == source.name && facts.job_running)
    {
        assert!(
            Instant::now() < deadline,
            "the outside migration did not start"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let (ok, stdout, stderr) = operator.run(&migrate_args(&ferry_destination.name, &[]));
    assert!(!ok, "refused: {stdout}{stderr}");
    let expected = format!(
        "busy: a migration job is already running on {}; `ferry resume` watches it, `ferry \
         abort busy` stops it",
        source.name
    );
    assert!(
        stdout.contains(&expected) || stderr.contains(&expected),
        "the refusal names the job and the fix:\n{stdout}\n{stderr}"
    );
    assert!(
        !lab.placements("busy")
            .iter()
            .any(|(host, _)| host.name == ferry_destination.name),
        "nothing was started on {}",
        ferry_destination.name
    );

    // The outside migration goes on untouched; a max downtime it can meet lets it complete.
    let status = virsh(&source, &["migrate-setmaxdowntime", "busy", "60000"])
        .wait()
        .expect("virsh migrate-setmaxdowntime");
    assert!(status.success());
    let status = outside.wait().expect("the outside migration ends");
    let mut error = String::new();
    if let Some(mut stderr) = outside.stderr.take() {
        use std::io::Read;
        let _ = stderr.read_to_string(&mut error);
    }
    assert!(status.success(), "the outside migration completed: {error}");
    lab.assert_runs_only_on(
        "busy",
        &outside_destination,
        "the outside migration completes on its own destination",
    );
}

#[test]
fn two_ferry_migrations_of_one_guest_at_once_run_one_and_refuse_the_other() {
    let Some(lab) = lab_or_skip("two_ferry_migrations_at_once") else {
        return;
    };
    let operator = Operator::new(&lab, "faults-race");
    let (source, first) = busy_route(&lab);
    let second = lab.next_host(&first);
    let mut one = Watched::start(
        &operator,
        &migrate_args(&first.name, &["--bandwidth", SLOW_MIB_PER_SECOND]),
    );
    let mut other = Watched::start(
        &operator,
        &migrate_args(&second.name, &["--bandwidth", SLOW_MIB_PER_SECOND]),
    );
    // Whichever lost the race ends first, refused, having started nothing.
    let deadline = Instant::now() + Duration::from_secs(180);
    let (runner, refused, runner_destination, refused_destination) = loop {
        if one.child.try_wait().unwrap().is_some() {
            break (other, one, &second, &first);
        }
        if other.child.try_wait().unwrap().is_some() {
            break (one, other, &first, &second);
        }
        assert!(Instant::now() < deadline, "neither ferry was refused");
        std::thread::sleep(Duration::from_millis(250));
    };
    let mut refused = refused;
    let status = refused.finish(Duration::from_secs(10));
    assert!(
        !status.success(),
        "the second ferry exits 1: {}",
        refused.printed()
    );
    assert_eq!(refused.count("started"), 0, "{}", refused.printed());
    assert!(
        !lab.placements("busy")
            .iter()
            .any(|(host, _)| host.name == refused_destination.name),
        "nothing on {}",
        refused_destination.name
    );
    let mut runner = runner;
    runner.wait_for_iteration(2);
    let (ok, stdout, stderr) = operator.run(&["force-complete", "busy"]);
    assert!(ok, "force-complete: {stdout}{stderr}");
    let status = runner.finish(Duration::from_secs(600));
    let outcome =
        assert_outcome_matches_the_hosts(&lab, &runner, status, &source, runner_destination);
    assert_eq!(outcome, "completed", "{}", runner.printed());
}

#[test]
fn a_broken_post_copy_is_resumed_and_the_guest_lives_on_the_destination() {
    let Some(lab) = lab_or_skip("broken_post_copy_resumed") else {
        return;
    };
    let operator = Operator::new(&lab, "faults-postcopy-broken");
    let (source, destination) = busy_route(&lab);
    let mut watched = Watched::start(
        &operator,
        &migrate_args(&destination.name, &["--postcopy", "--bandwidth", "8"]),
    );
    watched.wait_for_iteration(1);
    let (ok, stdout, stderr) = operator.run(&["force-complete", "busy"]);
    assert!(ok, "force-complete: {stdout}{stderr}");
    watched.wait_for_phase("post-copy");
    // A few seconds into post-copy, as a link that fails mid-way.
    std::thread::sleep(Duration::from_secs(3));
    let reset = StreamsReset::start(&source, &destination);
    watched.wait_for(Duration::from_secs(120), "the break reported", |line| {
        line["type"] == "postcopy_broken"
    });
    let console_at_break = lab.console_length(&destination, "busy");
    drop(reset);
    watched.wait_for(Duration::from_secs(180), "a successful resume", |line| {
        line["type"] == "postcopy_recovery" && line["result"]["Ok"].is_string()
    });
    let status = watched.finish(Duration::from_secs(900));
    let outcome = assert_outcome_matches_the_hosts(&lab, &watched, status, &source, &destination);
    assert_eq!(outcome, "completed", "{}", watched.printed());
    // The guest lived through it: its heartbeat goes on past the break, on the destination.
    lab.wait_for_console(
        &destination,
        "busy",
        console_at_break,
        "heartbeat",
        Duration::from_secs(60),
    )
    .unwrap();
    assert_every_libvirtd_runs(&lab);
    let history = operator.history();
    let events = history[0]["events"].to_string();
    assert!(
        events.contains("post-copy recovery, attempt 1"),
        "every attempt is in the history: {events}"
    );
}
