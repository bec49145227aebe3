//! ferry's TUI in a tmux pane of its own tmux server, driven with `tmux send-keys` and read
//! back with `tmux capture-pane`, as an operator drives it over ssh.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const WIDTH: u16 = 120;
pub const HEIGHT: u16 = 40;
/// The tmux session (and window) ferry runs in, on this test's own tmux server.
pub const SESSION: &str = "ferry";

/// ferry in a tmux pane on a tmux server of its own (`-L`), so that the operator's tmux is
/// never touched; the server, and ferry with it, is killed on drop.
pub struct Console {
    socket: String,
    /// ferry's XDG_STATE_HOME: its history, for a `ferry` command run beside the TUI.
    pub state_dir: PathBuf,
}

impl Console {
    /// ferry with the config at `config`, its state (history) in a directory of its own.
    pub fn start(config: &Path, test: &str) -> Console {
        let pid = std::process::id();
        let state_dir = std::env::temp_dir().join(format!("ferry-tui-{test}-{pid}"));
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        let console = Console {
            socket: format!("ferry-e2e-{pid}"),
            state_dir,
        };
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
            super::ferry_binary(),
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

    pub fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux (installed by src/lab/install-deps.sh)")
    }

    /// Named keys as tmux spells them (`Enter`, `Tab`, `BSpace`) or single characters.
    pub fn keys(&self, keys: &[&str]) {
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
    pub fn type_text(&self, text: &str) {
        let output = self.tmux(&["send-keys", "-t", SESSION, "-l", text]);
        assert!(output.status.success(), "tmux send-keys -l {text:?}");
    }

    /// What the pane shows now, one line per row.
    pub fn screen(&self) -> String {
        let output = self.tmux(&["capture-pane", "-p", "-t", SESSION]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Polls the screen until `predicate` holds and returns that screen; fails the test with
    /// the last screen if it does not within `timeout`.
    pub fn wait_for_screen(
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
