//! Helpers for tests that run against ferry's lab of real libvirt hosts.
//!
//! Lab tests need root. With `FERRY_REQUIRE_LAB=1` (as `.ci/run` sets) a lab test that cannot
//! run fails; without it, a non-root run skips them with a loud message.
#![allow(dead_code)]

pub mod cold_guests;
pub mod nova;
pub mod operator;
pub mod tui;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferry::lab::plan::{LabHost, LabPlan};
use ferry::lab::LabState;
use ferry::libvirt::HostConnection;
use ferry::model::domain::DomainFacts;

pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

pub fn ferry_binary() -> &'static str {
    env!("CARGO_BIN_EXE_ferry")
}

pub fn lab_required() -> bool {
    std::env::var("FERRY_REQUIRE_LAB").is_ok_and(|v| v == "1")
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs ferry with `args`, returns (success, stdout, stderr).
pub fn ferry(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(ferry_binary())
        .args(args)
        .output()
        .expect("run ferry");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub struct Lab {
    pub plan: LabPlan,
    pub state: LabState,
}

/// Brings the lab up (idempotent) and returns it, or None when lab tests are to be skipped.
pub fn lab_or_skip(test: &str) -> Option<Lab> {
    if !is_root() {
        if lab_required() {
            panic!("{test}: FERRY_REQUIRE_LAB=1 but not running as root; lab tests need root");
        }
        eprintln!(
            "\n*** SKIPPED lab test {test}: not root. Run as root (CI sets FERRY_REQUIRE_LAB=1, \
             where this would fail). ***\n"
        );
        return None;
    }
    let (ok, stdout, stderr) = ferry(&["lab", "up"]);
    assert!(ok, "{test}: ferry lab up failed:\n{stdout}\n{stderr}");
    let state = LabState::load().expect("lab state after lab up");
    Some(Lab {
        plan: LabPlan::new(state.host_count).unwrap(),
        state,
    })
}

impl Lab {
    pub fn connect(&self, host: &LabHost) -> HostConnection {
        HostConnection::open(&self.plan.uri(host), CALL_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", host.name))
    }

    /// Every host on which a domain of that name is defined, with its facts.
    pub fn placements(&self, guest: &str) -> Vec<(LabHost, DomainFacts)> {
        self.plan
            .hosts
            .iter()
            .filter_map(|host| {
                let domains = ferry::runtime::wait(self.connect(host).domains(CALL_TIMEOUT))
                    .expect("list domains");
                domains
                    .into_iter()
                    .find(|d| d.name == guest)
                    .map(|d| (host.clone(), d))
            })
            .collect()
    }

    /// The one host the guest is defined on; fails the test if it is on none or several.
    pub fn host_of(&self, guest: &str) -> (LabHost, DomainFacts) {
        let mut placements = self.placements(guest);
        assert_eq!(
            placements.len(),
            1,
            "guest {guest} must be defined on exactly one host, found on {:?}",
            placements.iter().map(|(h, _)| &h.name).collect::<Vec<_>>()
        );
        placements.remove(0)
    }

    /// The host after `host` in the lab, wrapping around: a destination that is not the source.
    pub fn next_host(&self, host: &LabHost) -> LabHost {
        let index = self
            .plan
            .hosts
            .iter()
            .position(|h| h.name == host.name)
            .expect("host of this lab");
        self.plan.hosts[(index + 1) % self.plan.hosts.len()].clone()
    }

    /// Starts (`running`) or hard-stops the guest on `host`.
    pub fn set_running(&self, host: &LabHost, guest: &str, running: bool) {
        let key = ferry::libvirt::lifecycle::DomainKey::Name(guest.to_string());
        let connection = self.connect(host);
        let result = if running {
            connection.start_domain(&key, CALL_TIMEOUT)
        } else {
            connection.power_off(&key, CALL_TIMEOUT)
        };
        result.unwrap_or_else(|e| panic!("{guest} on {}: {e}", host.name));
    }

    /// Starts the busy guest where it is if it is off, and waits for this boot's "workload
    /// running" banner (a guest still booting has touched little memory and would converge on
    /// its own). Returns its host and whether it was already running.
    pub fn busy_running(&self) -> (LabHost, bool) {
        let (source, facts) = self.host_of("busy");
        let was_running = facts.state == ferry::model::domain::DomainRunState::Running;
        if !was_running {
            let offset = self.console_length(&source, "busy");
            self.set_running(&source, "busy", true);
            self.wait_for_console(
                &source,
                "busy",
                offset,
                "workload running",
                Duration::from_secs(90),
            )
            .unwrap();
        }
        (source, was_running)
    }

    /// The guest runs (not paused) on `expected`, with no job left, and is defined nowhere else.
    pub fn assert_runs_only_on(&self, guest: &str, expected: &LabHost, why: &str) {
        let placements = self.placements(guest);
        let hosts: Vec<&str> = placements.iter().map(|(h, _)| h.name.as_str()).collect();
        assert_eq!(
            hosts,
            vec![expected.name.as_str()],
            "{why}: {guest} is defined on {hosts:?}"
        );
        assert_eq!(
            placements[0].1.state,
            ferry::model::domain::DomainRunState::Running,
            "{why}: {guest} runs (not paused) on {}",
            expected.name
        );
        assert!(
            !placements[0].1.job_running,
            "{why}: no job left on {guest}"
        );
    }

    pub fn console_log(&self, host: &LabHost, guest: &str) -> PathBuf {
        self.plan.console_log(host, guest)
    }

    pub fn console_length(&self, host: &LabHost, guest: &str) -> u64 {
        std::fs::metadata(self.console_log(host, guest))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Waits until the guest's console, past byte `offset`, shows `needle`.
    pub fn wait_for_console(
        &self,
        host: &LabHost,
        guest: &str,
        offset: u64,
        needle: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let path = self.console_log(host, guest);
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read(&path).unwrap_or_default();
            let fresh = String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default());
            if fresh.contains(needle) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{guest} on {}: {needle:?} not on the console within {timeout:?}; new console text: {fresh:?}",
                    host.name
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// sha256 of a disk image's guest-visible content (qcow2 converted to raw).
pub fn disk_content_sha256(image: &Path) -> String {
    let raw = std::env::temp_dir().join(format!("ferry-test-{}.raw", std::process::id()));
    let status = Command::new("qemu-img")
        .args(["convert", "-U", "-q", "-O", "raw"])
        .arg(image)
        .arg(&raw)
        .status()
        .expect("run qemu-img");
    assert!(status.success(), "qemu-img convert {}", image.display());
    let output = Command::new("sha256sum")
        .arg(&raw)
        .output()
        .expect("sha256sum");
    let _ = std::fs::remove_file(&raw);
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}
