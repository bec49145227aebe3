//! The migration history: one embedded SQLite file, `$XDG_STATE_HOME/ferry/history.sqlite3`.
//!
//! This module is the only code that touches that file. Every migration ferry starts gets a
//! row before the first libvirt call and its outcome when it ends, so a ferry that crashed or
//! was restarted can find the migrations it was watching (`unfinished`) and resume monitoring.
//!
//! The TUI and a `ferry history` in another terminal may open the file at the same time, hence
//! WAL (readers never block the writer) and a busy timeout (a second writer waits instead of
//! failing at once). Every write runs in its own `BEGIN IMMEDIATE` transaction: taking the
//! write lock up front means a busy database is reported by the busy timeout, never by a
//! deadlock between two readers upgrading to writers.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::model::HostName;

/// The schema this ferry writes. Each step in `SCHEMA_STEPS` brings a file from version N-1
/// to N; a file at a higher version came from a newer ferry and is refused, not guessed at.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a write waits for another ferry process holding the write lock. Writes are a few
/// rows each, so anything longer than this means the other process is stuck.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA_STEPS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE migrations (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        kind                TEXT    NOT NULL CHECK (kind IN ('live', 'cold')),
        instance_name       TEXT    NOT NULL,
        instance_uuid       TEXT    NOT NULL,
        source_host         TEXT    NOT NULL,
        destination_host    TEXT    NOT NULL,
        policy              TEXT    NOT NULL,
        plan_json           TEXT    NOT NULL,
        started_at_unix_ms  INTEGER NOT NULL,
        finished_at_unix_ms INTEGER,
        outcome             TEXT CHECK (outcome IS NULL OR outcome IN (
                                'completed', 'failed', 'cancelled', 'awaiting_confirm',
                                'confirmed', 'reverted', 'rolled_back')),
        outcome_detail      TEXT    NOT NULL DEFAULT '',
        downtime_ms         INTEGER,
        total_time_ms       INTEGER,
        bytes_transferred   INTEGER
    );
    CREATE INDEX migrations_by_start ON migrations (started_at_unix_ms);
    CREATE INDEX migrations_by_outcome ON migrations (outcome);
    CREATE TABLE migration_events (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        migration_id INTEGER NOT NULL REFERENCES migrations (id) ON DELETE CASCADE,
        at_ms        INTEGER NOT NULL,
        kind         TEXT    NOT NULL CHECK (kind IN ('phase', 'policy', 'operator', 'error')),
        message      TEXT    NOT NULL
    );
    CREATE INDEX migration_events_by_migration ON migration_events (migration_id, at_ms);",
)];

/// `$XDG_STATE_HOME/ferry/history.sqlite3`, next to the log files.
pub fn default_path() -> PathBuf {
    crate::logging::state_dir().join("history.sqlite3")
}

/// Milliseconds since the Unix epoch, the clock the history's timestamps use.
pub fn unix_ms_now() -> i64 {
    unix_ms(SystemTime::now())
}

pub fn unix_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history {path}: cannot create its directory: {source}")]
    CreateDirectory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("history {path}: {action}: {source}")]
    Sqlite {
        path: PathBuf,
        action: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "history {path} has schema version {found}, newer than the {known} this ferry knows; \
         run a newer ferry, or move the file aside to start a new history"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("history {path}: no migration with id {id}")]
    UnknownMigration { path: PathBuf, id: MigrationId },
    #[error("history {path}: migration {id} already ended as {previous}; it cannot become {next}")]
    OutcomeNotAllowed {
        path: PathBuf,
        id: MigrationId,
        previous: OutcomeKind,
        next: OutcomeKind,
    },
    #[error("history {path}: migration {id}: {what}; the file may have been edited by hand")]
    Corrupt {
        path: PathBuf,
        id: MigrationId,
        what: String,
    },
    #[error("history: {field} = {value} does not fit in SQLite's 64-bit signed integer")]
    TooLarge { field: &'static str, value: u64 },
    #[error("history: the plan of {instance_name} cannot be written as JSON: {source}")]
    PlanNotSerializable {
        instance_name: String,
        source: serde_json::Error,
    },
}

use crate::model::migration::{MigrationId, MigrationKind};

/// How a migration ended. `AwaitingConfirm` is a pause, not an end: a cold migration (like
/// Nova's resize) waits there for the operator to confirm or revert it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Completed,
    Failed,
    Cancelled,
    AwaitingConfirm,
    Confirmed,
    Reverted,
    RolledBack,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 7] = [
        OutcomeKind::Completed,
        OutcomeKind::Failed,
        OutcomeKind::Cancelled,
        OutcomeKind::AwaitingConfirm,
        OutcomeKind::Confirmed,
        OutcomeKind::Reverted,
        OutcomeKind::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Completed => "completed",
            OutcomeKind::Failed => "failed",
            OutcomeKind::Cancelled => "cancelled",
            OutcomeKind::AwaitingConfirm => "awaiting_confirm",
            OutcomeKind::Confirmed => "confirmed",
            OutcomeKind::Reverted => "reverted",
            OutcomeKind::RolledBack => "rolled_back",
        }
    }

    fn parse(text: &str) -> Option<OutcomeKind> {
        OutcomeKind::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }

    /// Whether a migration whose outcome so far is `previous` (None: still running) may be
    /// given this outcome. Only a migration awaiting confirmation is finished a second time,
    /// and only by the operator's answer or a failure while carrying it out; anything else
    /// would rewrite what already happened.
    pub fn may_follow(self, previous: Option<OutcomeKind>) -> bool {
        match previous {
            None => true,
            Some(OutcomeKind::AwaitingConfirm) => matches!(
                self,
                OutcomeKind::Confirmed | OutcomeKind::Reverted | OutcomeKind::Failed
            ),
            Some(_) => false,
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The migration moved to another phase (precopy, post-copy, switchover…).
    Phase,
    /// The policy acted: raised max downtime, turned on auto-converge or post-copy, aborted.
    Policy,
    /// The operator acted: cancel, force post-copy, confirm, revert.
    Operator,
    Error,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Phase => "phase",
            EventKind::Policy => "policy",
            EventKind::Operator => "operator",
            EventKind::Error => "error",
        }
    }

    fn parse(text: &str) -> Option<EventKind> {
        [
            EventKind::Phase,
            EventKind::Policy,
            EventKind::Operator,
            EventKind::Error,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// What is known when a migration starts.
#[derive(Debug, Clone, Serialize)]
pub struct NewMigration {
    pub kind: MigrationKind,
    pub instance_name: String,
    pub instance_uuid: String,
    pub source_host: HostName,
    pub destination_host: HostName,
    /// The policy's name as the operator chose it ("nova", "adaptive").
    pub policy: String,
    /// The chosen options (flags, limits, ladder), kept as JSON so the history reads the same
    /// after the plan type grows new fields.
    pub plan: serde_json::Value,
    pub started_at_unix_ms: i64,
}

/// How a migration ended, with the figures the operator compares between runs. Figures left
/// `None` keep what an earlier outcome recorded, so confirming a cold migration does not erase
/// the downtime measured when it was carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub kind: OutcomeKind,
    /// Why, in the operator's words: "aborted after 3 stalled iterations", or "".
    pub detail: String,
    pub finished_at_unix_ms: i64,
    pub downtime_ms: Option<u64>,
    pub total_time_ms: Option<u64>,
    pub bytes_transferred: Option<u64>,
}

/// One migration as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationRecord {
    pub id: MigrationId,
    pub kind: MigrationKind,
    pub instance_name: String,
    pub instance_uuid: String,
    /// Plain text, not `HostName`: the history outlives the config that named the hosts.
    pub source_host: String,
    pub destination_host: String,
    pub policy: String,
    pub plan: serde_json::Value,
    pub started_at_unix_ms: i64,
    pub finished_at_unix_ms: Option<i64>,
    /// None while the migration runs (or when ferry stopped before it ended).
    pub outcome: Option<OutcomeKind>,
    pub outcome_detail: String,
    pub downtime_ms: Option<u64>,
    pub total_time_ms: Option<u64>,
    pub bytes_transferred: Option<u64>,
}

impl MigrationRecord {
    /// Still to be watched or answered by a restarted ferry.
    pub fn is_unfinished(&self) -> bool {
        matches!(self.outcome, None | Some(OutcomeKind::AwaitingConfirm))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub migration_id: MigrationId,
    /// Milliseconds since the migration started.
    pub at_ms: u64,
    pub kind: EventKind,
    pub message: String,
}

/// A migration with its events, the shape of `ferry history --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationWithEvents {
    #[serde(flatten)]
    pub migration: MigrationRecord,
    pub events: Vec<EventRecord>,
}

const MIGRATION_COLUMNS: &str = "id, kind, instance_name, instance_uuid, source_host, \
    destination_host, policy, plan_json, started_at_unix_ms, finished_at_unix_ms, outcome, \
    outcome_detail, downtime_ms, total_time_ms, bytes_transferred";

/// A row as SQLite holds it, before its text columns are checked against ferry's enums.
struct RawMigration {
    id: i64,
    kind: String,
    instance_name: String,
    instance_uuid: String,
    source_host: String,
    destination_host: String,
    policy: String,
    plan_json: String,
    started_at_unix_ms: i64,
    finished_at_unix_ms: Option<i64>,
    outcome: Option<String>,
    outcome_detail: String,
    downtime_ms: Option<i64>,
    total_time_ms: Option<i64>,
    bytes_transferred: Option<i64>,
}

impl RawMigration {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<RawMigration> {
        Ok(RawMigration {
            id: row.get(0)?,
            kind: row.get(1)?,
            instance_name: row.get(2)?,
            instance_uuid: row.get(3)?,
            source_host: row.get(4)?,
            destination_host: row.get(5)?,
            policy: row.get(6)?,
            plan_json: row.get(7)?,
            started_at_unix_ms: row.get(8)?,
            finished_at_unix_ms: row.get(9)?,
            outcome: row.get(10)?,
            outcome_detail: row.get(11)?,
            downtime_ms: row.get(12)?,
            total_time_ms: row.get(13)?,
            bytes_transferred: row.get(14)?,
        })
    }
}

pub struct History {
    connection: Connection,
    path: PathBuf,
}

impl History {
    /// Opens (creating if needed) the history at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(directory).map_err(|source| HistoryError::CreateDirectory {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let sqlite = |action: &'static str| {
            move |source| HistoryError::Sqlite {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        let connection = Connection::open(path).map_err(sqlite("cannot open"))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(sqlite("cannot set the busy timeout"))?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite("cannot switch to WAL"))?;
        connection
            .pragma_update(None, "foreign_keys", true)
            .map_err(sqlite("cannot turn on foreign keys"))?;
        let mut history = History {
            connection,
            path: path.to_path_buf(),
        };
        history.upgrade_schema()?;
        Ok(history)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sqlite_error(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> HistoryError {
        let path = self.path.clone();
        move |source| HistoryError::Sqlite {
            path: path.clone(),
            action,
            source,
        }
    }

    fn write_transaction(&mut self) -> Result<rusqlite::Transaction<'_>, HistoryError> {
        let error = self.sqlite_error("cannot begin a write (another ferry may hold the lock)");
        self.connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(error)
    }

    /// The version the file is at; 0 for a file this ferry has just created.
    pub fn schema_version(&self) -> Result<i64, HistoryError> {
        read_schema_version(&self.connection).map_err(self.sqlite_error("cannot read its version"))
    }

    /// Applies each missing schema step in one transaction, so a crash mid-upgrade leaves the
    /// file at the old version rather than half-way.
    fn upgrade_schema(&mut self) -> Result<(), HistoryError> {
        let error = self.sqlite_error("cannot upgrade its schema");
        let path = self.path.clone();
        let transaction = self.write_transaction()?;
        let found = read_schema_version(&transaction).map_err(&error)?;
        if found > SCHEMA_VERSION {
            return Err(HistoryError::NewerSchema {
                path,
                found,
                known: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        transaction
            .execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(&error)?;
        for (version, sql) in SCHEMA_STEPS.iter().filter(|(v, _)| *v > found) {
            transaction.execute_batch(sql).map_err(&error)?;
            transaction
                .execute("DELETE FROM schema_version", [])
                .map_err(&error)?;
            transaction
                .execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [version],
                )
                .map_err(&error)?;
        }
        transaction.commit().map_err(&error)
    }

    /// Records a migration as started, before ferry asks libvirt for anything, so a crash
    /// right after still leaves a row for the next ferry to find.
    pub fn start_migration(
        &mut self,
        migration: &NewMigration,
    ) -> Result<MigrationId, HistoryError> {
        let plan_json = serde_json::to_string(&migration.plan).map_err(|source| {
            HistoryError::PlanNotSerializable {
                instance_name: migration.instance_name.clone(),
                source,
            }
        })?;
        let error = self.sqlite_error("cannot record a started migration");
        let transaction = self.write_transaction()?;
        transaction
            .execute(
                "INSERT INTO migrations (kind, instance_name, instance_uuid, source_host,
                    destination_host, policy, plan_json, started_at_unix_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    migration.kind.as_str(),
                    migration.instance_name,
                    migration.instance_uuid,
                    migration.source_host.as_str(),
                    migration.destination_host.as_str(),
                    migration.policy,
                    plan_json,
                    migration.started_at_unix_ms,
                ],
            )
            .map_err(&error)?;
        let id = MigrationId(transaction.last_insert_rowid());
        transaction.commit().map_err(&error)?;
        Ok(id)
    }

    /// Replaces a running migration's stored plan: a migration another system carries out
    /// (Nova) learns its id there only after it started.
    pub fn set_plan(
        &mut self,
        id: MigrationId,
        plan: &serde_json::Value,
    ) -> Result<(), HistoryError> {
        let error = self.sqlite_error("cannot update a migration's plan");
        let path = self.path.clone();
        let transaction = self.write_transaction()?;
        let changed = transaction
            .execute(
                "UPDATE migrations SET plan_json = ?2 WHERE id = ?1",
                params![id.0, plan.to_string()],
            )
            .map_err(&error)?;
        if changed == 0 {
            return Err(HistoryError::UnknownMigration { path, id });
        }
        transaction.commit().map_err(&error)
    }

    pub fn record_event(
        &mut self,
        id: MigrationId,
        at_ms: u64,
        kind: EventKind,
        message: &str,
    ) -> Result<(), HistoryError> {
        let at_ms = to_sql_integer("at_ms", at_ms)?;
        let error = self.sqlite_error("cannot record an event");
        let path = self.path.clone();
        let transaction = self.write_transaction()?;
        if outcome_of(&transaction, id).map_err(&error)?.is_none() {
            return Err(HistoryError::UnknownMigration { path, id });
        }
        transaction
            .execute(
                "INSERT INTO migration_events (migration_id, at_ms, kind, message)
                 VALUES (?1, ?2, ?3, ?4)",
                params![id.0, at_ms, kind.as_str(), message],
            )
            .map_err(&error)?;
        transaction.commit().map_err(&error)
    }

    /// Records how a migration ended. Refuses to overwrite a final outcome (see
    /// `OutcomeKind::may_follow`), so a late or duplicate report cannot rewrite history.
    pub fn finish_migration(
        &mut self,
        id: MigrationId,
        outcome: &Outcome,
    ) -> Result<(), HistoryError> {
        let downtime_ms = outcome
            .downtime_ms
            .map(|v| to_sql_integer("downtime_ms", v))
            .transpose()?;
        let total_time_ms = outcome
            .total_time_ms
            .map(|v| to_sql_integer("total_time_ms", v))
            .transpose()?;
        let bytes_transferred = outcome
            .bytes_transferred
            .map(|v| to_sql_integer("bytes_transferred", v))
            .transpose()?;
        let error = self.sqlite_error("cannot record an outcome");
        let path = self.path.clone();
        let transaction = self.write_transaction()?;
        let previous = match outcome_of(&transaction, id).map_err(&error)? {
            None => return Err(HistoryError::UnknownMigration { path, id }),
            Some(None) => None,
            Some(Some(text)) => {
                Some(
                    OutcomeKind::parse(&text).ok_or_else(|| HistoryError::Corrupt {
                        path: path.clone(),
                        id,
                        what: format!("unknown outcome {text:?}"),
                    })?,
                )
            }
        };
        // Every outcome may end a running migration, so only a previous outcome can refuse.
        if let Some(previous) = previous.filter(|p| !outcome.kind.may_follow(Some(*p))) {
            return Err(HistoryError::OutcomeNotAllowed {
                path,
                id,
                previous,
                next: outcome.kind,
            });
        }
        transaction
            .execute(
                "UPDATE migrations SET
                    outcome = ?2,
                    outcome_detail = ?3,
                    finished_at_unix_ms = ?4,
                    downtime_ms = COALESCE(?5, downtime_ms),
                    total_time_ms = COALESCE(?6, total_time_ms),
                    bytes_transferred = COALESCE(?7, bytes_transferred)
                 WHERE id = ?1",
                params![
                    id.0,
                    outcome.kind.as_str(),
                    outcome.detail,
                    outcome.finished_at_unix_ms,
                    downtime_ms,
                    total_time_ms,
                    bytes_transferred,
                ],
            )
            .map_err(&error)?;
        transaction.commit().map_err(&error)
    }

    pub fn migration(&self, id: MigrationId) -> Result<MigrationRecord, HistoryError> {
        let raw = self
            .connection
            .query_row(
                &format!("SELECT {MIGRATION_COLUMNS} FROM migrations WHERE id = ?1"),
                [id.0],
                RawMigration::from_row,
            )
            .optional()
            .map_err(self.sqlite_error("cannot read a migration"))?;
        match raw {
            Some(raw) => self.check(raw),
            None => Err(HistoryError::UnknownMigration {
                path: self.path.clone(),
                id,
            }),
        }
    }

    /// The latest `limit` migrations, newest first.
    pub fn list_recent(&self, limit: usize) -> Result<Vec<MigrationRecord>, HistoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.select_migrations(
            "ORDER BY started_at_unix_ms DESC, id DESC LIMIT ?1",
            [limit],
        )
    }

    /// Migrations with no final outcome, oldest first: still running when ferry last stopped,
    /// or awaiting the operator's confirmation. A restarted ferry resumes watching these.
    pub fn unfinished(&self) -> Result<Vec<MigrationRecord>, HistoryError> {
        self.select_migrations(
            "WHERE outcome IS NULL OR outcome = 'awaiting_confirm'
             ORDER BY started_at_unix_ms, id",
            [],
        )
    }

    /// A migration's events in the order they happened.
    pub fn events(&self, id: MigrationId) -> Result<Vec<EventRecord>, HistoryError> {
        let error = self.sqlite_error("cannot read events");
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT at_ms, kind, message FROM migration_events
                 WHERE migration_id = ?1 ORDER BY at_ms, id",
            )
            .map_err(&error)?;
        let rows = statement
            .query_map([id.0], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(&error)?;
        let mut events = Vec::new();
        for row in rows {
            let (at_ms, kind, message) = row.map_err(&error)?;
            let corrupt = |what: String| HistoryError::Corrupt {
                path: self.path.clone(),
                id,
                what,
            };
            events.push(EventRecord {
                migration_id: id,
                at_ms: u64::try_from(at_ms)
                    .map_err(|_| corrupt(format!("event at negative time {at_ms} ms")))?,
                kind: EventKind::parse(&kind)
                    .ok_or_else(|| corrupt(format!("unknown event kind {kind:?}")))?,
                message,
            });
        }
        Ok(events)
    }

    /// `list_recent` with each migration's events: what `ferry history --json` prints.
    pub fn recent_with_events(
        &self,
        limit: usize,
    ) -> Result<Vec<MigrationWithEvents>, HistoryError> {
        self.list_recent(limit)?
            .into_iter()
            .map(|migration| {
                Ok(MigrationWithEvents {
                    events: self.events(migration.id)?,
                    migration,
                })
            })
            .collect()
    }

    fn select_migrations<P: rusqlite::Params>(
        &self,
        rest_of_query: &str,
        params: P,
    ) -> Result<Vec<MigrationRecord>, HistoryError> {
        let error = self.sqlite_error("cannot read migrations");
        let mut statement = self
            .connection
            .prepare(&format!(
                "SELECT {MIGRATION_COLUMNS} FROM migrations {rest_of_query}"
            ))
            .map_err(&error)?;
        let raws = statement
            .query_map(params, RawMigration::from_row)
            .map_err(&error)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&error)?;
        raws.into_iter().map(|raw| self.check(raw)).collect()
    }

    /// Turns a row into a record, naming the migration and the column if the file holds
    /// something this ferry never writes.
    fn check(&self, raw: RawMigration) -> Result<MigrationRecord, HistoryError> {
        let id = MigrationId(raw.id);
        let corrupt = |what: String| HistoryError::Corrupt {
            path: self.path.clone(),
            id,
            what,
        };
        let unsigned = |field: &str, value: Option<i64>| {
            value
                .map(|v| u64::try_from(v).map_err(|_| corrupt(format!("negative {field} {v}"))))
                .transpose()
        };
        Ok(MigrationRecord {
            id,
            kind: MigrationKind::parse(&raw.kind)
                .ok_or_else(|| corrupt(format!("unknown kind {:?}", raw.kind)))?,
            instance_name: raw.instance_name,
            instance_uuid: raw.instance_uuid,
            source_host: raw.source_host,
            destination_host: raw.destination_host,
            policy: raw.policy,
            plan: serde_json::from_str(&raw.plan_json)
                .map_err(|e| corrupt(format!("plan_json is not JSON: {e}")))?,
            started_at_unix_ms: raw.started_at_unix_ms,
            finished_at_unix_ms: raw.finished_at_unix_ms,
            outcome: raw
                .outcome
                .map(|text| {
                    OutcomeKind::parse(&text)
                        .ok_or_else(|| corrupt(format!("unknown outcome {text:?}")))
                })
                .transpose()?,
            outcome_detail: raw.outcome_detail,
            downtime_ms: unsigned("downtime_ms", raw.downtime_ms)?,
            total_time_ms: unsigned("total_time_ms", raw.total_time_ms)?,
            bytes_transferred: unsigned("bytes_transferred", raw.bytes_transferred)?,
        })
    }
}

fn read_schema_version(connection: &Connection) -> rusqlite::Result<i64> {
    let table_exists: bool = connection.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')",
        [],
        |row| row.get(0),
    )?;
    if !table_exists {
        return Ok(0);
    }
    connection
        .query_row("SELECT MAX(version) FROM schema_version", [], |row| {
            row.get::<_, Option<i64>>(0)
        })
        .map(|version| version.unwrap_or(0))
}

/// `None`: no such migration; `Some(None)`: running; `Some(Some(outcome))`: its outcome text.
fn outcome_of(
    connection: &Connection,
    id: MigrationId,
) -> rusqlite::Result<Option<Option<String>>> {
    connection
        .query_row(
            "SELECT outcome FROM migrations WHERE id = ?1",
            [id.0],
            |row| row.get(0),
        )
        .optional()
}

fn to_sql_integer(field: &'static str, value: u64) -> Result<i64, HistoryError> {
    i64::try_from(value).map_err(|_| HistoryError::TooLarge { field, value })
}

mod render;
pub use render::{format_unix_ms_utc, render_table};

#[cfg(test)]
mod tests;
