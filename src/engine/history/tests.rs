use super::*;

use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory per test under the system temp dir, removed when dropped, so tests
/// running in parallel never share a database.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "ferry-history-test-{label}-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            unix_ms_now()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn db(&self) -> PathBuf {
        self.0.join("state/ferry/history.sqlite3")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn host(name: &str) -> HostName {
    HostName::parse(name).unwrap()
}

fn new_live(instance_name: &str, started_at_unix_ms: i64) -> NewMigration {
    NewMigration {
        kind: MigrationKind::Live,
        instance_name: instance_name.to_string(),
        instance_uuid: format!("uuid-of-{instance_name}"),
        source_host: host("hv1"),
        destination_host: host("hv2"),
        policy: "nova".to_string(),
        plan: serde_json::json!({"peer_to_peer": true, "max_downtime_ms": 500}),
        started_at_unix_ms,
    }
}

fn completed(finished_at_unix_ms: i64) -> Outcome {
    Outcome {
        kind: OutcomeKind::Completed,
        detail: String::new(),
        finished_at_unix_ms,
        downtime_ms: Some(84),
        total_time_ms: Some(12_400),
        bytes_transferred: Some(1 << 30),
    }
}

#[test]
fn a_new_file_gets_the_current_schema_in_wal_mode() {
    let dir = TempDir::new("schema");
    let history = History::open(&dir.db()).unwrap();
    assert!(dir.db().exists(), "open creates missing parent directories");
    assert_eq!(history.schema_version().unwrap(), SCHEMA_VERSION);
    let journal_mode: String = history
        .connection
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(journal_mode, "wal");
    assert!(history.list_recent(10).unwrap().is_empty());
    assert!(history.unfinished().unwrap().is_empty());
}

#[test]
fn a_migration_is_recorded_from_start_to_outcome_with_its_events() {
    let dir = TempDir::new("lifecycle");
    let mut history = History::open(&dir.db()).unwrap();
    let id = history
        .start_migration(&new_live("web-1", 1_700_000_000_000))
        .unwrap();

    let running = history.migration(id).unwrap();
    assert_eq!(running.outcome, None);
    assert_eq!(running.finished_at_unix_ms, None);
    assert_eq!(running.source_host, "hv1");
    assert_eq!(running.plan["max_downtime_ms"], 500);
    assert!(running.is_unfinished());

    history
        .record_event(id, 0, EventKind::Phase, "precopy")
        .unwrap();
    history
        .record_event(id, 9_000, EventKind::Policy, "max downtime 500 → 1000 ms")
        .unwrap();
    history
        .record_event(id, 12_300, EventKind::Phase, "switchover")
        .unwrap();
    history
        .finish_migration(id, &completed(1_700_000_012_400))
        .unwrap();

    let done = history.migration(id).unwrap();
    assert_eq!(done.outcome, Some(OutcomeKind::Completed));
    assert_eq!(done.finished_at_unix_ms, Some(1_700_000_012_400));
    assert_eq!(done.downtime_ms, Some(84));
    assert_eq!(done.total_time_ms, Some(12_400));
    assert_eq!(done.bytes_transferred, Some(1 << 30));
    assert!(!done.is_unfinished());

    let events = history.events(id).unwrap();
    let summary: Vec<(u64, EventKind, &str)> = events
        .iter()
        .map(|e| (e.at_ms, e.kind, e.message.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, EventKind::Phase, "precopy"),
            (9_000, EventKind::Policy, "max downtime 500 → 1000 ms"),
            (12_300, EventKind::Phase, "switchover"),
        ]
    );
}

#[test]
fn list_recent_is_newest_first_and_honours_the_limit() {
    let dir = TempDir::new("recent");
    let mut history = History::open(&dir.db()).unwrap();
    for (name, started) in [("a", 1_000), ("c", 3_000), ("b", 2_000)] {
        history.start_migration(&new_live(name, started)).unwrap();
    }
    let names = |records: Vec<MigrationRecord>| -> Vec<String> {
        records.into_iter().map(|r| r.instance_name).collect()
    };
    assert_eq!(names(history.list_recent(10).unwrap()), ["c", "b", "a"]);
    assert_eq!(names(history.list_recent(2).unwrap()), ["c", "b"]);
    assert!(history.list_recent(0).unwrap().is_empty());
}

#[test]
fn reopening_keeps_every_migration_and_event() {
    let dir = TempDir::new("reopen");
    let id = {
        let mut history = History::open(&dir.db()).unwrap();
        let id = history.start_migration(&new_live("db-1", 5_000)).unwrap();
        history
            .record_event(id, 40, EventKind::Operator, "cancel requested")
            .unwrap();
        history
            .finish_migration(
                id,
                &Outcome {
                    kind: OutcomeKind::Cancelled,
                    detail: "cancelled by the operator".to_string(),
                    finished_at_unix_ms: 6_000,
                    downtime_ms: None,
                    total_time_ms: Some(1_000),
                    bytes_transferred: Some(4096),
                },
            )
            .unwrap();
        id
    };
    let mut history = History::open(&dir.db()).unwrap();
    assert_eq!(history.schema_version().unwrap(), SCHEMA_VERSION);
    let record = history.migration(id).unwrap();
    assert_eq!(record.outcome, Some(OutcomeKind::Cancelled));
    assert_eq!(record.outcome_detail, "cancelled by the operator");
    assert_eq!(record.downtime_ms, None);
    assert_eq!(history.events(id).unwrap().len(), 1);
    // Ids keep growing after a reopen: a new migration never takes an old one's id.
    let next = history.start_migration(&new_live("db-2", 7_000)).unwrap();
    assert!(next > id);
}

#[test]
fn an_unfinished_migration_survives_a_reopen_for_the_next_ferry_to_resume() {
    let dir = TempDir::new("unfinished");
    let (running, awaiting) = {
        let mut history = History::open(&dir.db()).unwrap();
        let done = history.start_migration(&new_live("done", 1_000)).unwrap();
        history.finish_migration(done, &completed(2_000)).unwrap();
        let running = history
            .start_migration(&new_live("running", 3_000))
            .unwrap();
        history
            .record_event(running, 0, EventKind::Phase, "precopy")
            .unwrap();
        let mut cold = new_live("resized", 2_500);
        cold.kind = MigrationKind::Cold;
        let awaiting = history.start_migration(&cold).unwrap();
        history
            .finish_migration(
                awaiting,
                &Outcome {
                    kind: OutcomeKind::AwaitingConfirm,
                    detail: "disks copied; guest defined on hv2".to_string(),
                    finished_at_unix_ms: 4_000,
                    downtime_ms: Some(30_000),
                    total_time_ms: Some(1_500),
                    bytes_transferred: Some(10 << 30),
                },
            )
            .unwrap();
        // Dropped without finishing `running`: as if ferry were killed mid-migration.
        (running, awaiting)
    };
    let history = History::open(&dir.db()).unwrap();
    let unfinished = history.unfinished().unwrap();
    let ids: Vec<MigrationId> = unfinished.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![awaiting, running], "oldest first");
    assert_eq!(unfinished[1].outcome, None);
    assert_eq!(unfinished[1].instance_name, "running");
    assert_eq!(history.events(running).unwrap()[0].message, "precopy");
}

#[test]
fn confirming_keeps_the_figures_measured_when_the_migration_ran() {
    let dir = TempDir::new("confirm");
    let mut history = History::open(&dir.db()).unwrap();
    let id = history.start_migration(&new_live("vm", 1_000)).unwrap();
    history
        .finish_migration(
            id,
            &Outcome {
                kind: OutcomeKind::AwaitingConfirm,
                detail: String::new(),
                ..completed(2_000)
            },
        )
        .unwrap();
    history
        .finish_migration(
            id,
            &Outcome {
                kind: OutcomeKind::Confirmed,
                detail: "confirmed by the operator".to_string(),
                finished_at_unix_ms: 9_000,
                downtime_ms: None,
                total_time_ms: None,
                bytes_transferred: None,
            },
        )
        .unwrap();
    let record = history.migration(id).unwrap();
    assert_eq!(record.outcome, Some(OutcomeKind::Confirmed));
    assert_eq!(record.finished_at_unix_ms, Some(9_000));
    assert_eq!(record.downtime_ms, Some(84));
    assert_eq!(record.bytes_transferred, Some(1 << 30));
    assert!(history.unfinished().unwrap().is_empty());
}

#[test]
fn a_final_outcome_is_never_overwritten() {
    let dir = TempDir::new("final");
    let mut history = History::open(&dir.db()).unwrap();
    let id = history.start_migration(&new_live("vm", 1_000)).unwrap();
    history.finish_migration(id, &completed(2_000)).unwrap();
    let error = history
        .finish_migration(
            id,
            &Outcome {
                kind: OutcomeKind::Failed,
                ..completed(3_000)
            },
        )
        .unwrap_err();
    assert!(matches!(
        error,
        HistoryError::OutcomeNotAllowed {
            previous: OutcomeKind::Completed,
            next: OutcomeKind::Failed,
            ..
        }
    ));
    assert!(error.to_string().contains("already ended as completed"));
    assert_eq!(
        history.migration(id).unwrap().outcome,
        Some(OutcomeKind::Completed)
    );
}

#[test]
fn outcome_rules() {
    for next in OutcomeKind::ALL {
        assert!(next.may_follow(None), "{next} may end a running migration");
    }
    let after_awaiting: Vec<OutcomeKind> = OutcomeKind::ALL
        .into_iter()
        .filter(|next| next.may_follow(Some(OutcomeKind::AwaitingConfirm)))
        .collect();
    assert_eq!(
        after_awaiting,
        [
            OutcomeKind::Failed,
            OutcomeKind::Confirmed,
            OutcomeKind::Reverted
        ]
    );
    assert!(!OutcomeKind::Reverted.may_follow(Some(OutcomeKind::RolledBack)));
    for outcome in OutcomeKind::ALL {
        assert_eq!(OutcomeKind::parse(outcome.as_str()), Some(outcome));
        assert_eq!(
            serde_json::to_value(outcome).unwrap(),
            serde_json::Value::String(outcome.as_str().to_string()),
            "JSON and the database spell outcomes the same"
        );
    }
}

#[test]
fn unknown_migration_ids_are_named_in_the_error() {
    let dir = TempDir::new("unknown");
    let mut history = History::open(&dir.db()).unwrap();
    let error = history
        .record_event(MigrationId(42), 0, EventKind::Error, "boom")
        .unwrap_err();
    assert!(error.to_string().contains("no migration with id 42"));
    assert!(matches!(
        history.finish_migration(MigrationId(42), &completed(1)),
        Err(HistoryError::UnknownMigration { .. })
    ));
    assert!(matches!(
        history.migration(MigrationId(42)),
        Err(HistoryError::UnknownMigration { .. })
    ));
}

#[test]
fn a_file_from_a_newer_ferry_is_refused_not_guessed_at() {
    let dir = TempDir::new("newer");
    drop(History::open(&dir.db()).unwrap());
    let connection = Connection::open(dir.db()).unwrap();
    connection
        .execute(
            "UPDATE schema_version SET version = ?1",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
    drop(connection);
    let error = History::open(&dir.db()).err().unwrap();
    assert!(
        matches!(error, HistoryError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1)
    );
    assert!(error.to_string().contains("move the file aside"));
}

#[test]
fn two_connections_share_one_file() {
    // The TUI writes while `ferry history` reads from another process; WAL lets the
    // reader see committed rows without blocking the writer.
    let dir = TempDir::new("shared");
    let mut writer = History::open(&dir.db()).unwrap();
    let reader = History::open(&dir.db()).unwrap();
    let id = writer.start_migration(&new_live("vm", 1_000)).unwrap();
    assert_eq!(reader.unfinished().unwrap()[0].id, id);
    writer.finish_migration(id, &completed(2_000)).unwrap();
    assert!(reader.unfinished().unwrap().is_empty());
}

#[test]
fn json_carries_the_events_beside_the_migration() {
    let dir = TempDir::new("json");
    let mut history = History::open(&dir.db()).unwrap();
    let id = history.start_migration(&new_live("vm", 1_000)).unwrap();
    history
        .record_event(
            id,
            5,
            EventKind::Error,
            "destination refused the connection",
        )
        .unwrap();
    let json = serde_json::to_value(history.recent_with_events(5).unwrap()).unwrap();
    assert_eq!(json[0]["instance_name"], "vm");
    assert_eq!(json[0]["kind"], "live");
    assert_eq!(json[0]["outcome"], serde_json::Value::Null);
    assert_eq!(json[0]["events"][0]["kind"], "error");
    assert_eq!(json[0]["events"][0]["at_ms"], 5);
    let back: Vec<MigrationWithEvents> = serde_json::from_value(json).unwrap();
    assert_eq!(back[0].migration.id, id);
}

#[test]
fn times_are_printed_in_utc() {
    assert_eq!(format_unix_ms_utc(0), "1970-01-01 00:00:00Z");
    assert_eq!(
        format_unix_ms_utc(1_700_000_000_000),
        "2023-11-14 22:13:20Z"
    );
    assert_eq!(format_unix_ms_utc(951_782_400_000), "2000-02-29 00:00:00Z");
    assert_eq!(format_unix_ms_utc(-1_000), "1969-12-31 23:59:59Z");
}

#[test]
fn the_table_shows_figures_or_dashes() {
    let dir = TempDir::new("table");
    let mut history = History::open(&dir.db()).unwrap();
    let done = history
        .start_migration(&new_live("web-1", 1_700_000_000_000))
        .unwrap();
    history
        .finish_migration(done, &completed(1_700_000_012_400))
        .unwrap();
    history
        .start_migration(&new_live("web-2", 1_700_000_100_000))
        .unwrap();
    let table = render_table(&history.list_recent(10).unwrap());
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("ID"));
    assert!(lines[1].contains("web-2") && lines[1].contains("unfinished"));
    assert!(
        lines[1].starts_with("2     "),
        "the id keeps its column width"
    );
    assert!(lines[1].contains("hv1 → hv2"));
    assert!(lines[2].contains("2023-11-14 22:13:20Z"));
    assert!(lines[2].contains("completed"));
    assert!(lines[2].contains("84 ms"));
    assert!(lines[2].contains("12 s"));
    assert!(lines[2].contains("1024 MiB"));
}
