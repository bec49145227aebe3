//! `ferry migrate`, `abort`, `resume` and `history` as an operator runs them, against the lab:
//! real processes, real libvirt hosts, one history per test under its own XDG state dir.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::operator::{collect_rest, json_lines, of_type, wait_for_iteration, Operator};
use common::{disk_content_sha256, lab_or_skip};
use ferry::model::domain::DomainRunState;

#[test]
fn migrate_prints_progress_and_a_summary_and_records_the_history() {
    let Some(lab) = lab_or_skip("migrate_prints_progress") else {
        return;
    };
    let operator = Operator::new(&lab, "idle");
    let (source, _) = lab.host_of("idle");
    let destination = lab.next_host(&source);
    let (ok, stdout, stderr) =
        operator.run(&["migrate", "idle", "--to", &destination.name, "--json"]);
    assert!(ok, "ferry migrate idle: {stdout}\n{stderr}");
    let lines = json_lines(&stdout);
    let precheck = of_type(&lines, "precheck");
    assert_eq!(precheck.len(), 1);
    assert_eq!(precheck[0]["passed"], true);
    assert!(!of_type(&lines, "progress").is_empty(), "{stdout}");
    let summary = of_type(&lines, "summary");
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0]["outcome"], "completed", "{stdout}");
    assert_eq!(summary[0]["runs_on"], destination.name.as_str());
    lab.assert_runs_only_on("idle", &destination, "after ferry migrate");

    let history = operator.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["instance_name"], "idle");
    assert_eq!(history[0]["outcome"], "completed");
    assert_eq!(history[0]["destination_host"], destination.name.as_str());
    assert!(history[0]["plan"]["policy"]["policy"] == "adaptive");
    assert!(
        history[0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "policy"),
        "the policy's start decisions are recorded"
    );
}

#[test]
fn refused_prechecks_start_nothing_and_name_the_problem() {
    let Some(lab) = lab_or_skip("refused_prechecks") else {
        return;
    };
    let operator = Operator::new(&lab, "refused");
    let (source, _) = lab.host_of("idle");
    let (ok, stdout, stderr) = operator.run(&["migrate", "idle", "--to", &source.name]);
    assert!(!ok, "migrating to its own host must be refused");
    assert!(
        stdout.contains("✗"),
        "the report marks the failed check: {stdout}"
    );
    assert!(
        stdout.to_lowercase().contains("same") || stdout.contains(source.name.as_str()),
        "{stdout}"
    );
    assert!(stderr.contains("not started"), "{stderr}");
    let (ok, stdout, stderr) = operator.run(&["migrate", "idle", "--to", "hv2;reboot"]);
    assert!(!ok, "an injected host name is refused");
    assert!(
        stdout.contains("hv2;reboot") && stdout.contains("✗"),
        "the report names the bad destination: {stdout}\n{stderr}"
    );
    let (source_after, facts) = lab.host_of("idle");
    assert_eq!(source_after.name, source.name, "nothing moved");
    assert_eq!(facts.state, DomainRunState::Running);
    assert!(
        operator.history().is_empty(),
        "nothing started, nothing recorded"
    );
}

#[test]
fn abort_from_another_terminal_keeps_the_guest_on_its_source() {
    let Some(lab) = lab_or_skip("abort_from_another_terminal") else {
        return;
    };
    let operator = Operator::new(&lab, "abort");
    let (source, _) = lab.busy_running();
    let destination = lab.next_host(&source);
    let (mut child, lines) = operator.spawn(&[
        "migrate",
        "busy",
        "--to",
        &destination.name,
        "--bandwidth",
        "100",
        "--max-downtime",
        "300",
        "--json",
    ]);
    let mut seen = Vec::new();
    assert!(
        wait_for_iteration(&lines, &mut seen, 2),
        "memory pass 2 reached: {seen:?}"
    );
    let (ok, stdout, stderr) = operator.run(&["abort", "busy"]);
    assert!(ok, "ferry abort: {stdout}\n{stderr}");
    assert!(stdout.contains("abort requested"), "{stdout}");
    collect_rest(&lines, &mut seen);
    let status = child.wait().unwrap();
    assert!(!status.success(), "a cancelled migration exits non-zero");
    let summary = of_type(&seen, "summary");
    assert_eq!(summary[0]["outcome"], "cancelled", "{seen:?}");
    assert_eq!(summary[0]["runs_on"], source.name.as_str());
    lab.assert_runs_only_on("busy", &source, "after abort");
    assert_eq!(operator.history()[0]["outcome"], "cancelled");
    let (ok, _, stderr) = operator.run(&["abort", "busy"]);
    assert!(!ok, "nothing left to abort");
    assert!(stderr.contains("no job"), "{stderr}");
}

#[test]
fn nova_with_a_short_completion_timeout_aborts_the_busy_guest_on_its_source() {
    let Some(lab) = lab_or_skip("nova_short_timeout") else {
        return;
    };
    let operator = Operator::new(&lab, "nova");
    let (source, _) = lab.busy_running();
    let destination = lab.next_host(&source);
    // 2 GiB counted (Nova's minimum per device) × 10 s = a 20 s completion timeout.
    let (ok, stdout, stderr) = operator.run(&[
        "migrate",
        "busy",
        "--to",
        &destination.name,
        "--policy",
        "nova",
        "--bandwidth",
        "100",
        "--completion-timeout-per-gib",
        "10",
        "--json",
    ]);
    assert!(!ok, "the timeout aborts: {stdout}\n{stderr}");
    let lines = json_lines(&stdout);
    assert!(
        of_type(&lines, "policy").iter().any(|p| p["reason"]
            .as_str()
            .unwrap_or("")
            .contains("completion timeout")),
        "{stdout}"
    );
    assert_eq!(of_type(&lines, "summary")[0]["outcome"], "cancelled");
    lab.assert_runs_only_on("busy", &source, "after nova's timeout");
}

#[test]
fn a_killed_ferry_leaves_the_migration_running_and_resume_finishes_it_under_the_policy() {
    let Some(lab) = lab_or_skip("killed_ferry_resume") else {
        return;
    };
    let operator = Operator::new(&lab, "resume");
    let (source, _) = lab.busy_running();
    let destination = lab.next_host(&source);
    let (mut child, lines) = operator.spawn(&[
        "migrate",
        "busy",
        "--to",
        &destination.name,
        "--bandwidth",
        "100",
        // No post-copy: the ladder alone must finish it, so the policy still has work to do
        // after the restart (with post-copy permitted, adaptive switches at pass 2).
        "--json",
    ]);
    let mut seen = Vec::new();
    assert!(wait_for_iteration(&lines, &mut seen, 2), "{seen:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    // libvirtd owns the migration: it goes on with ferry gone.
    let (_, facts) = lab
        .placements("busy")
        .into_iter()
        .find(|(h, _)| h.name == source.name)
        .expect("busy still on its source");
    assert!(facts.job_running, "the job runs on without ferry");
    assert!(
        operator.history()[0]["outcome"].is_null(),
        "left unfinished"
    );

    let (ok, stdout, stderr) = operator.run(&["resume", "--json"]);
    assert!(ok, "ferry resume: {stdout}\n{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(of_type(&lines, "attached").len(), 1, "{stdout}");
    assert!(
        !of_type(&lines, "policy").is_empty(),
        "the policy acts after the restart: {stdout}"
    );
    assert_eq!(of_type(&lines, "summary")[0]["outcome"], "completed");
    lab.assert_runs_only_on("busy", &destination, "after resume");
    let history = operator.history();
    assert_eq!(history.len(), 1, "the same migration, not a new one");
    assert_eq!(history[0]["outcome"], "completed");
    assert!(history[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["message"]
            .as_str()
            .unwrap_or("")
            .contains("resumed monitoring")));
    let (ok, stdout, _) = operator.run(&["resume"]);
    assert!(ok);
    assert!(stdout.contains("nothing to resume"), "{stdout}");
}

#[test]
fn block_migration_copies_the_local_disk_with_its_content_intact() {
    let Some(lab) = lab_or_skip("block_migration") else {
        return;
    };
    let operator = Operator::new(&lab, "block");
    let expected = lab.state.data_disk_sha256["disk"].clone();
    let (source, _) = lab.host_of("disk");
    let destination = lab.next_host(&source);
    for (from, to) in [(&source, &destination), (&destination, &source)] {
        let (ok, stdout, stderr) = operator.run(&["migrate", "disk", "--to", &to.name, "--json"]);
        assert!(ok, "ferry migrate disk → {}: {stdout}\n{stderr}", to.name);
        let lines = json_lines(&stdout);
        let report = &of_type(&lines, "precheck")[0]["report"]["plan"];
        assert_eq!(report["block_migration"], true, "{stdout}");
        lab.assert_runs_only_on("disk", to, "after block migration");
        let image = lab.plan.host_local_pool_dir(to).join("disk-data.qcow2");
        assert_eq!(
            disk_content_sha256(&image),
            expected,
            "disk content on {} after the move from {}",
            to.name,
            from.name
        );
        assert!(
            !lab.plan
                .host_local_pool_dir(from)
                .join("disk-data.qcow2")
                .exists(),
            "the stale copy on {} is removed once the move is verified",
            from.name
        );
    }
}

#[test]
fn two_migrations_from_one_host_queue_behind_each_other_and_both_complete() {
    let Some(lab) = lab_or_skip("two_migrations_queue") else {
        return;
    };
    let operator = Operator::new(&lab, "queue");
    let (idle_host, _) = lab.host_of("idle");
    let (disk_host, _) = lab.host_of("disk");
    let setup_migrations = usize::from(idle_host.name != disk_host.name);
    if idle_host.name != disk_host.name {
        // An earlier test left idle elsewhere: bring it next to disk first.
        let (ok, stdout, stderr) = operator.run(&["migrate", "idle", "--to", &disk_host.name]);
        assert!(ok, "setup: idle to {}: {stdout}\n{stderr}", disk_host.name);
    }
    let idle_host = disk_host;
    let destination = lab.next_host(&idle_host);
    let (ok, stdout, stderr) = operator.run(&[
        "migrate",
        "idle",
        "disk",
        "--to",
        &destination.name,
        "--json",
    ]);
    assert!(ok, "both complete: {stdout}\n{stderr}");
    let lines = json_lines(&stdout);
    let waiting = of_type(&lines, "waiting");
    assert!(
        !waiting.is_empty(),
        "with one migration per source host, the second waits: {stdout}"
    );
    assert!(waiting[0]["description"]
        .as_str()
        .unwrap_or("")
        .starts_with("queued"));
    // The second starts only after the first's summary.
    let position = |kind: &str, nth: usize| {
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l["type"] == kind)
            .nth(nth)
            .map(|(i, _)| i)
            .unwrap()
    };
    assert!(position("started", 1) > position("summary", 0), "{stdout}");
    assert_eq!(of_type(&lines, "summary").len(), 2);
    lab.assert_runs_only_on("idle", &destination, "first of the queue");
    lab.assert_runs_only_on("disk", &destination, "second of the queue");
    // Put them back where the lab keeps them, in one go again.
    let (ok, stdout, stderr) = operator.run(&["migrate", "idle", "disk", "--to", &idle_host.name]);
    assert!(ok, "back to {}: {stdout}\n{stderr}", idle_host.name);
    assert_eq!(operator.history().len(), 4 + setup_migrations);
}

#[test]
fn a_migration_that_ends_while_ferry_is_dead_is_settled_by_resume() {
    let Some(lab) = lab_or_skip("ended_while_ferry_dead") else {
        return;
    };
    let operator = Operator::new(&lab, "ended-while-dead");
    let (source, _) = lab.busy_running();
    let destination = lab.next_host(&source);
    // With post-copy permitted, adaptive switches at the start of pass 2; killed there, ferry
    // is gone while libvirt finishes the move without the caller that would undefine the
    // source.
    let (mut child, lines) = operator.spawn(&[
        "migrate",
        "busy",
        "--to",
        &destination.name,
        "--bandwidth",
        "100",
        "--postcopy",
        "--json",
    ]);
    // Killed once the switch to post-copy was carried out (the policy line follows the call).
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no switch to post-copy: {seen:?}"
        );
        let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) else {
            continue;
        };
        let switched = line["type"] == "policy"
            && line["reason"]
                .as_str()
                .unwrap_or("")
                .ends_with("→ post-copy");
        seen.push(line);
        if switched {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while lab
        .placements("busy")
        .iter()
        .any(|(_, facts)| facts.job_running)
    {
        assert!(Instant::now() < deadline, "the job ends on its own");
        thread::sleep(Duration::from_secs(1));
    }
    let (ok, stdout, stderr) = operator.run(&["resume", "--json"]);
    assert!(ok, "ferry resume: {stdout}\n{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(
        of_type(&lines, "summary")[0]["outcome"],
        "completed",
        "{stdout}"
    );
    lab.assert_runs_only_on("busy", &destination, "moved while ferry was dead");
    assert_eq!(operator.history()[0]["outcome"], "completed");
}

/// The throwaway Nova-managed domain of `nova_managed_domains_are_refused_*`, and its server.
const NOVA_PROBE: &str = "nova-managed-probe";
const NOVA_PROBE_SERVER_ID: &str = "7e3b9d15-2c4a-4f68-9b0d-1a2c3e4f5a6b";

/// Removes the Nova-managed probe domain from every lab host when dropped, even on failure
/// (wherever a regression might have moved it).
struct NovaProbeGuard<'a> {
    lab: &'a common::Lab,
}

impl NovaProbeGuard<'_> {
    fn remove_everywhere(&self) {
        for host in &self.lab.plan.hosts {
            let removed = ferry::runtime::wait(async {
                let connection = ferry::libvirt::HostConnection::connect(
                    &self.lab.plan.uri(host),
                    common::CALL_TIMEOUT,
                )
                .await?;
                connection
                    .remove_copy(
                        &ferry::libvirt::lifecycle::DomainKey::Name(NOVA_PROBE.into()),
                        common::CALL_TIMEOUT,
                    )
                    .await
            });
            if let Err(error) = removed {
                eprintln!("could not remove {NOVA_PROBE} from {}: {error}", host.name);
            }
        }
    }
}

impl Drop for NovaProbeGuard<'_> {
    fn drop(&mut self) {
        self.remove_everywhere();
    }
}

/// A diskless lab guest with the metadata Nova 26's libvirt driver writes into its domains,
/// for a server that exists in no cloud: nothing but the refusal stands between it and a move.
fn nova_probe_xml(lab: &common::Lab) -> String {
    let spec = ferry::lab::guest::GuestSpec {
        name: NOVA_PROBE,
        memory_mib: 128,
        workload_mib: 16,
        dirty_mib_per_second: 0,
        data_disk: None,
        start_at_lab_up: false,
    };
    let xml = ferry::lab::guest::domain_xml(&spec, &lab.plan);
    let nova = format!(
        "</name>\n  <uuid>{NOVA_PROBE_SERVER_ID}</uuid>\n  <metadata>\n    \
         <nova:instance xmlns:nova=\"http://openstack.org/xmlns/libvirt/nova/1.1\">\n      \
         <nova:package version=\"26.2.2\"/>\n      <nova:name>probe-web</nova:name>\n      \
         <nova:creationTime>2026-12-02 05:00:00</nova:creationTime>\n      \
         <nova:flavor name=\"m1.nano\"><nova:memory>128</nova:memory><nova:disk>0</nova:disk>\
         <nova:swap>0</nova:swap><nova:ephemeral>0</nova:ephemeral><nova:vcpus>1</nova:vcpus>\
         </nova:flavor>\n      <nova:owner><nova:user uuid=\"0a1b2c3d4e5f40718293a4b5c6d7e8f9\">\
         admin</nova:user><nova:project uuid=\"f9e8d7c6b5a440392817f6e5d4c3b2a1\">demo\
         </nova:project></nova:owner>\n      <nova:root type=\"image\" \
         uuid=\"3c5e7a9b-1d2f-4a6c-8e0b-2d4f6a8c0e1b\"/>\n      <nova:ports/>\n    \
         </nova:instance>\n  </metadata>\n"
    );
    xml.replacen("</name>\n", &nova, 1)
}

#[test]
fn nova_managed_domains_are_refused_live_auto_and_cold_and_stay_untouched() {
    let Some(lab) = lab_or_skip("nova_managed_domains_are_refused") else {
        return;
    };
    let operator = Operator::new(&lab, "nova-managed");
    let source = lab.plan.hosts[0].clone();
    let destination = lab.next_host(&source);
    let guard = NovaProbeGuard { lab: &lab };
    guard.remove_everywhere(); // a run killed before its guard dropped
    let connection = lab.connect(&source);
    connection
        .define_domain(&nova_probe_xml(&lab), common::CALL_TIMEOUT)
        .expect("define the Nova-managed probe");
    // Running and persistent: live and cold migration would both take it.
    lab.set_running(&source, NOVA_PROBE, true);
    let key = ferry::libvirt::lifecycle::DomainKey::Name(NOVA_PROBE.into());
    let definition_before = connection
        .domain_definition_xml(&key, common::CALL_TIMEOUT)
        .expect("the probe's definition");

    // The door reads the domain as Nova's, and `ferry instances --json` says so.
    let (_, facts) = lab.host_of(NOVA_PROBE);
    let nova = facts.nova.as_ref().expect("the door reads Nova's metadata");
    assert_eq!(nova.server_id, NOVA_PROBE_SERVER_ID);
    assert_eq!(nova.server_name.as_deref(), Some("probe-web"));
    assert_eq!(nova.project_name.as_deref(), Some("demo"));
    assert_eq!(nova.flavor_name.as_deref(), Some("m1.nano"));
    let (ok, stdout, stderr) = operator.run(&["instances", "--json"]);
    assert!(ok, "ferry instances --json: {stderr}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let probe = listed
        .iter()
        .find(|i| i["name"] == NOVA_PROBE)
        .unwrap_or_else(|| panic!("{NOVA_PROBE} listed: {stdout}"));
    assert_eq!(
        probe["managed_by"]["nova"]["server_id"], NOVA_PROBE_SERVER_ID,
        "{probe}"
    );
    assert!(
        listed
            .iter()
            .filter(|i| i["name"] == "idle")
            .all(|i| i.get("managed_by").is_none()),
        "a plain libvirt guest is nobody's: {stdout}"
    );

    let why = format!(
        "{NOVA_PROBE} on {} is managed by OpenStack Nova (server probe-web, \
         {NOVA_PROBE_SERVER_ID}, project demo): moving it with libvirt would leave Nova's \
         database placing it on {}. Migrate it through Nova: ",
        source.name, source.name
    );
    for attempt in [
        vec!["migrate", NOVA_PROBE, "--to", destination.name.as_str()],
        vec!["migrate", NOVA_PROBE, "--to", "auto"],
        vec![
            "migrate",
            NOVA_PROBE,
            "--cold",
            "--to",
            destination.name.as_str(),
        ],
    ] {
        let (ok, stdout, stderr) = operator.run(&attempt);
        assert!(!ok, "{attempt:?} must be refused: {stdout}\n{stderr}");
        assert!(
            stderr.contains(&format!("ferry: {NOVA_PROBE}: not started: {why}"))
                && stderr.contains(&format!("ferry migrate {NOVA_PROBE_SERVER_ID} --cloud")),
            "{attempt:?} names Nova, the reason and what to use instead: {stdout}\n{stderr}"
        );
    }

    // Untouched: still running on its source only, the same definition, nothing recorded.
    lab.assert_runs_only_on(NOVA_PROBE, &source, "after the refusals");
    assert_eq!(
        connection
            .domain_definition_xml(&key, common::CALL_TIMEOUT)
            .expect("the probe's definition"),
        definition_before,
        "the definition is unchanged"
    );
    assert!(
        operator.history().is_empty(),
        "nothing started, nothing recorded"
    );
    drop(guard);
    assert!(
        lab.placements(NOVA_PROBE).is_empty(),
        "the probe is removed"
    );
}
