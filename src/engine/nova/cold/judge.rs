//! What the watch of a Nova cold migration or resize decides from what it sees: pure
//! functions over the server and Nova's records, unit-tested on the states the lab's Nova
//! showed.

use std::collections::BTreeSet;
use std::time::Instant;

use serde::Serialize;

use crate::engine::history::{MigrationRecord, OutcomeKind};
use crate::engine::nova::NovaMigrationPlan;
use crate::nova::types::{Flavor, InstanceAction, Migration, Server, ServerFault};

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

/// What a watch of a cold migration or resize Nova accepted decides from one look, also when
/// `ferry resume` takes over one whose watch ended without a verdict: the launch's verdicts
/// (`judge_launch`), and a server Nova itself reverted to its source while no ferry watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeVerdict {
    /// Nova still carries it out (a `resize_*` task, or the server between two states):
    /// watch it again, under the watch's bound.
    StillMoving,
    /// The server waits in VERIFY_RESIZE on `host`.
    AwaitingConfirm { host: String },
    /// Nova confirmed it (by `resize_confirm_window`, or someone through Nova).
    ConfirmedByNova { host: String },
    /// Nova reverted it (someone through Nova): the server is back on its source `host`.
    RevertedInNova { host: String },
    /// Nova gave up; the reason is read from its records (`failure_reason`).
    Failed,
}

/// Reads one look at the server and Nova's migration status (None when Nova has no record of
/// the move's migration) for a move of a server that was on `source_host`. Decides only on
/// what Nova answered: the caller does not judge when the cloud did not answer.
pub fn judge_resume(
    server: &Server,
    migration_status: Option<&str>,
    source_host: &str,
) -> ResumeVerdict {
    let host = server.host.clone().unwrap_or_default();
    if migration_status == Some("reverted")
        && server.task_state.is_none()
        && SETTLED.contains(&server.status.as_str())
        && host == source_host
    {
        return ResumeVerdict::RevertedInNova { host };
    }
    match judge_launch(server, migration_status, source_host) {
        LaunchVerdict::Waiting => ResumeVerdict::StillMoving,
        LaunchVerdict::AwaitingConfirm { host } => ResumeVerdict::AwaitingConfirm { host },
        LaunchVerdict::ConfirmedByNova { host } => ResumeVerdict::ConfirmedByNova { host },
        LaunchVerdict::Failed => ResumeVerdict::Failed,
    }
}

/// Whether Nova's time `nova_time` ("2026-12-02T07:51:42.000000", UTC) is before `unix_ms`
/// less `allowance_ms` (for the clocks of ferry's machine and Nova's). A time that does not
/// read as one is not known to be before.
pub fn made_before(nova_time: Option<&str>, unix_ms: i64, allowance_ms: i64) -> bool {
    let Some(nova) = nova_time.and_then(|t| t.get(..19)) else {
        return false;
    };
    let shape_ok = nova.char_indices().all(|(i, c)| match i {
        4 | 7 => c == '-',
        10 => c == 'T' || c == ' ',
        13 | 16 => c == ':',
        _ => c.is_ascii_digit(),
    });
    if !shape_ok {
        return false;
    }
    // "2026-12-02 07:51:42Z" from ferry's formatter; both read alike once the T is a space.
    let limit = crate::engine::history::format_unix_ms_utc(unix_ms - allowance_ms);
    nova.replacen('T', " ", 1).as_str() < &limit[..19]
}

/// The migration of an unfinished history record among the server's migrations of its type:
/// the one with the id the record holds or, when the record never got it, the newest from
/// the record's source made since the record started. Returns it (if Nova has it) and the
/// ids of the others, for a watch to tell a migration Nova makes later from them.
pub fn resumed_migration<'a>(
    migrations: &'a [Migration],
    known_id: Option<u64>,
    source_host: &str,
    started_at_unix_ms: i64,
    allowance_ms: i64,
) -> (Option<&'a Migration>, BTreeSet<u64>) {
    let found = match known_id {
        Some(id) => migrations.iter().find(|m| m.record.id == id),
        None => migrations
            .iter()
            .filter(|m| {
                m.record
                    .source_compute
                    .as_deref()
                    .is_none_or(|source| source == source_host)
            })
            .filter(|m| {
                !made_before(
                    m.record.created_at.as_deref(),
                    started_at_unix_ms,
                    allowance_ms,
                )
            })
            .max_by_key(|m| m.record.id),
    };
    let others = migrations
        .iter()
        .map(|m| m.record.id)
        .filter(|id| Some(*id) != found.map(|m| m.record.id))
        .collect();
    (found, others)
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
