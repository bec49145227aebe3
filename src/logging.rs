//! Logs go to a daily-rolling file under `$XDG_STATE_HOME/ferry/` and never to the terminal,
//! which the TUI owns.

use std::path::PathBuf;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::xdg_dir;

pub fn state_dir() -> PathBuf {
    xdg_dir("XDG_STATE_HOME", ".local/state").join("ferry")
}

/// Starts file logging at `level` (a tracing filter such as `info` or `ferry=debug`).
/// Keep the returned guard alive for the whole run, or buffered lines are lost.
pub fn init(level: &str) -> anyhow::Result<WorkerGuard> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create log directory {}: {e}", dir.display()))?;
    let appender = tracing_appender::rolling::daily(&dir, "ferry.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("--log-level {level:?} is not a valid filter: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .init();
    Ok(guard)
}
