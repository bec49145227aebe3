//! ferry run as an operator runs it, for the CLI tests: real processes with the lab's config
//! and a private state directory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Lab;

/// ferry run as an operator would, with the lab's config and a private state directory (its
/// own history and control sockets), shared by every command of one test.
pub struct Operator {
    pub state_dir: PathBuf,
    pub config: PathBuf,
}

impl Operator {
    pub fn new(lab: &Lab, test: &str) -> Operator {
        let state_dir =
            std::env::temp_dir().join(format!("ferry-cli-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        Operator {
            state_dir,
            config: lab.plan.ferry_config_path(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(super::ferry_binary());
        command
            .args(args)
            .env("FERRY_CONFIG", &self.config)
            .env("XDG_STATE_HOME", &self.state_dir);
        command
    }

    /// Runs to the end: (exit success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let output = self.command(args).output().expect("run ferry");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Starts in the background; its JSON lines arrive on the returned channel.
    pub fn spawn(&self, args: &[&str]) -> (Child, mpsc::Receiver<Value>) {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ferry");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        (child, rx)
    }

    pub fn history(&self) -> Vec<Value> {
        let (ok, stdout, stderr) = self.run(&["history", "--json"]);
        assert!(ok, "ferry history: {stderr}");
        serde_json::from_str(&stdout).unwrap()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

pub fn of_type<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == kind).collect()
}

/// Waits for a progress line of `instance` at memory pass ≥ `iteration`, collecting lines.
pub fn wait_for_iteration(
    lines: &mpsc::Receiver<Value>,
    seen: &mut Vec<Value>,
    iteration: u64,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        match lines.recv_timeout(Duration::from_secs(5)) {
            Ok(line) => {
                let reached = line["type"] == "progress"
                    && line["iteration"].as_u64().is_some_and(|i| i >= iteration);
                seen.push(line);
                if reached {
                    return true;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return false,
        }
    }
    false
}

pub fn collect_rest(lines: &mpsc::Receiver<Value>, seen: &mut Vec<Value>) {
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(600)) {
        seen.push(line);
    }
}
