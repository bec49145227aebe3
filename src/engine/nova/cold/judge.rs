//! What the watch of a Nova cold migration or resize decides from what it sees: pure
//! functions over the server and Nova's records, unit-tested on the states the lab's Nova
//! showed.

use std::time::Instant;

use serde::Serialize;

use crate::engine::history::{MigrationRecord, OutcomeKind};
use crate::engine::nova::NovaMigrationPlan;
use crate::nova::types::{Flavor, InstanceAction, Server, ServerFault};

/// One thing ferry saw while it watched, for a progress line (text or JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchLine {
    pub server: String,
    pub status: String,
    pub task_state: Option<String>,
    pub host: Option<String>,
    /// Nova's migration status (`pre-migrating`, `migrating`, `finished`, …), once found.
    pub migration_status: Option<String>,
    /// Seconds since ferry asked Nova.
    pub elapsed_s: u64,
}

impl WatchLine {
    pub fn observed(
        server: &Server,
        migration_status: Option<&str>,
        started: Instant,
    ) -> WatchLine {
        WatchLine {
            server: server.name.clone(),
            status: server.status.clone(),
            task_state: server.task_state.clone(),
            host: server.host.clone(),
            migration_status: migration_status.map(str::to_string),
            elapsed_s: started.elapsed().as_secs(),
        }
    }

    /// Whether anything but the clock differs.
    pub fn same_as(&self, other: &WatchLine) -> bool {
        (
            &self.status,
            &self.task_state,
            &self.host,
            &self.migration_status,
        ) == (
            &other.status,
            &other.task_state,
            &other.host,
            &other.migration_status,
        )
    }

    pub fn text(&self) -> String {
        format!(
            "{}: {} task {} on {}{} ({} s)",
            self.server,
            self.status,
            self.task_state.as_deref().unwrap_or("none"),
            self.host.as_deref().unwrap_or("?"),
            self.migration_status
                .as_deref()
                .map(|status| format!(", migration {status}"))
                .unwrap_or_default(),
            self.elapsed_s
        )
    }
}

/// What the watch of a launch decided from one look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchVerdict {
    Waiting,
    /// The server waits in VERIFY_RESIZE on `host`.
    AwaitingConfirm {
        host: String,
    },
    /// Nova confirmed it by itself (`resize_confirm_window`): the server runs on `host`.
    ConfirmedByNova {
        host: String,
    },
    /// Nova gave up; the reason is read from its records.
    Failed,
}

const SETTLED: &[&str] = &["ACTIVE", "SHUTOFF"];
const MIGRATION_FAILED: &[&str] = &["error", "failed"];

/// Reads one look at the server (and Nova's migration status, once found) after Nova
/// accepted a cold migration or resize of a server that was on `source_host`.
pub fn judge_launch(
    server: &Server,
    migration_status: Option<&str>,
    source_host: &str,
) -> LaunchVerdict {
    let host = server.host.clone().unwrap_or_default();
    if migration_status.is_some_and(|status| MIGRATION_FAILED.contains(&status))
        || server.status == "ERROR"
    {
        return LaunchVerdict::Failed;
    }
    if server.task_state.is_some() {
        return LaunchVerdict::Waiting;
    }
    if server.status == "VERIFY_RESIZE" {
        return LaunchVerdict::AwaitingConfirm { host };
    }
    if SETTLED.contains(&server.status.as_str()) {
        if migration_status == Some("confirmed") {
            return LaunchVerdict::ConfirmedByNova { host };
        }
        // Nova set a task before it answered 202; a server settled again on its source with
        // no task and no confirmation is one whose move Nova dropped.
        if host == source_host {
            return LaunchVerdict::Failed;
        }
    }
    LaunchVerdict::Waiting
}

/// What the watch of a confirm or revert decided from one look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleVerdict {
    Waiting,
    Done,
    Failed(String),
}

/// Reads one look at the server after a confirm (or revert) was accepted: done when it is
/// settled with no task on `expected_host` (the destination, or for a revert the source).
pub fn judge_settle(
    server: &Server,
    migration_status: Option<&str>,
    expected_host: &str,
) -> SettleVerdict {
    if server.status == "ERROR" {
        return SettleVerdict::Failed(format!("{} went to ERROR", server.name));
    }
    if migration_status.is_some_and(|status| MIGRATION_FAILED.contains(&status)) {
        return SettleVerdict::Failed(format!(
            "Nova's migration of {} is {}",
            server.name,
            migration_status.unwrap_or_default()
        ));
    }
    if server.task_state.is_none() && SETTLED.contains(&server.status.as_str()) {
        let host = server.host.as_deref().unwrap_or("?");
        return if host == expected_host {
            SettleVerdict::Done
        } else {
            SettleVerdict::Failed(format!(
                "{} is {} on {host}, not on {expected_host}",
                server.name, server.status
            ))
        };
    }
    SettleVerdict::Waiting
}

/// Nova's reason for a failed move, in one line: the failed events of its instance action
/// (`details` from 2.84), the server's fault, the migration's status.
pub fn failure_reason(
    action: Option<&InstanceAction>,
    fault: Option<&ServerFault>,
    migration_status: Option<&str>,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(action) = action {
        for event in action.failed_events() {
            let details = event
                .details
                .as_deref()
                .filter(|d| !d.trim().is_empty())
                .map(|d| format!(": {}", d.trim()))
                .unwrap_or_default();
            parts.push(format!(
                "{} {}{details}",
                event.event,
                event.result.as_deref().unwrap_or("Error")
            ));
        }
    }
    if let Some(fault) = fault.filter(|f| !f.message.trim().is_empty()) {
        let message = fault.message.trim();
        if !parts.iter().any(|part| part.contains(message)) {
            parts.push(format!("fault: {message}"));
        }
    }
    if let Some(status) = migration_status {
        parts.push(format!("migration status {status}"));
    }
    if parts.is_empty() {
        "Nova recorded no reason (no failed instance-action event, no fault): see \
         nova-conductor's and nova-compute's logs"
            .to_string()
    } else {
        parts.join("; ")
    }
}

/// Why the resize to `flavor` is refused before asking, if it is.
pub fn flavor_refusal(server: &Server, flavor: &Flavor) -> Option<String> {
    if flavor.disabled {
        return Some(format!(
            "flavor {} is disabled: choose another",
            flavor.name
        ));
    }
    let current = server.flavor.name.as_deref();
    let same_id = server.flavor.id.as_deref() == Some(flavor.id.as_str());
    if current == Some(flavor.name.as_str()) || same_id {
        return Some(format!(
            "server {} already has flavor {}: choose another flavor (a move to another host \
             is `ferry migrate --cold`)",
            server.name, flavor.name
        ));
    }
    None
}

/// Why a resized server waiting for confirm is not what was asked, if it is not: Nova shows
/// the new flavor from VERIFY_RESIZE on.
pub fn flavor_mismatch(server: &Server, wanted: &str) -> Option<String> {
    let shown = server.flavor.name.as_deref()?;
    (shown != wanted).then(|| {
        format!(
            "Nova shows flavor {shown}, not the {wanted} asked for: revert it (`ferry revert`) \
             and look at the flavor's definition"
        )
    })
}

/// The server's last Nova migration in the history that awaits confirm.
pub fn awaiting_record(unfinished: &[MigrationRecord], server_id: &str) -> Option<MigrationRecord> {
    unfinished
        .iter()
        .filter(|record| record.outcome == Some(OutcomeKind::AwaitingConfirm))
        .filter(|record| {
            NovaMigrationPlan::from_history(&record.plan)
                .is_some_and(|plan| plan.server_id == server_id)
        })
        .max_by_key(|record| (record.started_at_unix_ms, record.id.0))
        .cloned()
}
