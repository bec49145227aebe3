//! The cold side of the engine: a cold launch planned, recorded and run; confirm and revert;
//! and what a stopped ferry left (migrations awaiting an answer, or interrupted mid-way).

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::UnboundedSender;

use super::{ColdEvent, EngineEvent, Inbox};
use crate::config::Config;
use crate::engine::cold::{self, ColdOptions, ColdOutcome, ColdUpdate, Recovery};
use crate::engine::cold_record;
use crate::engine::history::{self, History};
use crate::model::migration::{MigrationId, MigrationKind};
use crate::model::HostName;

/// Cold migrations waiting for an answer are announced, so a front end can offer confirm and
/// revert. Returns the problems found reading them.
pub(super) fn announce_awaiting(
    history: &History,
    events: &UnboundedSender<EngineEvent>,
) -> Vec<String> {
    let mut problems = Vec::new();
    match cold_record::all_awaiting(history) {
        Err(error) => problems.push(format!("cold migrations: {error}")),
        Ok(awaiting) => {
            for found in awaiting {
                match found.plan {
                    Err(problem) => problems.push(problem),
                    Ok(plan) => {
                        let record = found.record;
                        let _ = events.send(EngineEvent::Cold(
                            record.id,
                            ColdEvent::FoundAwaiting {
                                plan: Box::new(plan),
                                started_at: unix_ms(record.started_at_unix_ms),
                                total_time_ms: record.total_time_ms,
                                downtime_ms: record.downtime_ms,
                                bytes_copied: record.bytes_transferred,
                            },
                        ));
                    }
                }
            }
        }
    }
    problems
}

fn unix_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// What a cold launch works with besides its request.
pub(super) struct ColdSurroundings {
    pub(super) config: Config,
    pub(super) events: UnboundedSender<EngineEvent>,
    pub(super) inbox: UnboundedSender<Inbox>,
    pub(super) checking: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// One cold launch, as asked.
pub(super) struct ColdLaunch {
    pub(super) instance: String,
    pub(super) source: Option<HostName>,
    pub(super) destination: String,
    pub(super) options: ColdOptions,
}

/// Plans on fresh facts, records the plan in the history, then runs the cold migration and
/// records each phase. Blocking: runs on the blocking pool.
pub(super) fn run_cold(around: &ColdSurroundings, launch: &ColdLaunch) {
    let ColdSurroundings {
        config,
        events,
        inbox,
        checking,
    } = around;
    let ColdLaunch {
        instance,
        source,
        destination,
        options,
    } = launch;
    let instance = instance.as_str();
    let notice = |message: String| {
        let _ = events.send(EngineEvent::Notice(message));
    };
    let refused = |reason: String| {
        let _ = events.send(EngineEvent::Refused {
            kind: MigrationKind::Cold,
            instance: instance.to_string(),
            reason,
        });
    };
    let checked = checking.blocking_lock();
    let planning = match crate::runtime::wait(cold::plan(config, instance, destination, options)) {
        Ok(planning) => planning,
        Err(error) => return refused(error.to_string()),
    };
    drop(checked);
    let _ = events.send(EngineEvent::Planned {
        kind: MigrationKind::Cold,
        instance: instance.to_string(),
        source: planning
            .plan
            .as_ref()
            .map(|plan| plan.source.name.clone())
            .unwrap_or_default(),
        destination: destination.to_string(),
        report: planning.report.clone(),
        passed_over: Vec::new(),
    });
    let Some(plan) = planning.plan else {
        return refused(format!(
            "{}; fix the failed checks and retry",
            planning.report.failure_reasons()
        ));
    };
    if let Some(source) = source
        .as_ref()
        .filter(|source| plan.source.name != source.as_str())
    {
        return refused(format!(
            "it is on {} now, not on {source}",
            plan.source.name
        ));
    }
    let mut history = match History::open(&history::default_path()) {
        Ok(history) => history,
        Err(error) => return refused(error.to_string()),
    };
    // Held until the outcome is recorded: a recovery (`ferry resume`, another terminal)
    // leaves this migration alone meanwhile.
    let _running = match cold_record::lock_run(&plan) {
        Ok(lock) => lock,
        Err(error) => return refused(error.to_string()),
    };
    let id = match cold_record::record_start(&mut history, &plan) {
        Ok(id) => id,
        Err(error) => return refused(error.to_string()),
    };
    let send = |event: ColdEvent| {
        let _ = events.send(EngineEvent::Cold(id, event));
    };
    send(ColdEvent::Launched(Box::new(plan.clone())));
    // Its turn under the same per-host and global limits as the live migrations.
    if let (Ok(source_host), Ok(destination_host)) = (
        HostName::parse(&plan.source.name),
        HostName::parse(&plan.destination.name),
    ) {
        let (granted, turn) = tokio::sync::oneshot::channel();
        let _ = inbox.send(Inbox::ColdReserve {
            id,
            source: source_host,
            destination: destination_host,
            granted,
        });
        if turn.blocking_recv().is_err() {
            let outcome = ColdOutcome::Refused {
                detail: "taken out of the queue before it started; nothing was changed".into(),
            };
            if let Err(error) = cold_record::record_outcome(&mut history, id, &outcome) {
                notice(format!("#{id} {instance}: {error}"));
            }
            send(ColdEvent::Engine(ColdUpdate::Finished(outcome)));
            let _ = inbox.send(Inbox::ColdEnded { id });
            return;
        }
    }
    let started = Instant::now();
    let mut handle = cold::start(plan);
    let _ = inbox.send(Inbox::ColdStarted {
        id,
        commands: handle.commands.clone(),
    });
    while let Some(update) = handle.updates.blocking_recv() {
        let at_ms = started.elapsed().as_millis() as u64;
        if let Err(error) = cold_record::record_update(&mut history, id, at_ms, &update) {
            notice(format!("#{id} {instance}: {error}"));
        }
        if let ColdUpdate::Finished(outcome) = &update {
            if let Err(error) = cold_record::record_outcome(&mut history, id, outcome) {
                notice(format!("#{id} {instance}: {error}"));
            }
        }
        // The front end may be gone (quit): the migration still runs to its end and is
        // recorded, so nothing is left half-done.
        send(ColdEvent::Engine(update));
    }
    let _ = inbox.send(Inbox::ColdEnded { id });
    let _ = crate::runtime::wait(handle.task);
}

/// Confirm or revert with the plan the history kept: the same path for every front end.
pub(super) fn settle_cold(
    id: MigrationId,
    keep: bool,
    call_timeout: Duration,
) -> Result<Vec<String>, String> {
    let mut history = History::open(&history::default_path()).map_err(|e| e.to_string())?;
    let plan = cold_record::awaiting_by_id(&history, id).map_err(|e| e.to_string())?;
    cold_record::settle(&mut history, id, &plan, keep, call_timeout)
        .map(|report| report.steps)
        .map_err(|e| e.to_string())
}

/// Settles the cold migrations a ferry left mid-way when it stopped (no outcome recorded):
/// one recovered as awaiting confirm is announced like those found awaiting, a rolled-back one
/// or one left as it is gets a notice.
pub(super) async fn recover_cold_migrations(events: UnboundedSender<EngineEvent>) {
    let interrupted = tokio::task::spawn_blocking(|| {
        History::open(&history::default_path())
            .map_err(|e| e.to_string())
            .and_then(|mut history| {
                cold_record::recover_interrupted(&mut history).map_err(|e| e.to_string())
            })
    })
    .await
    .unwrap_or_else(|error| Err(format!("the recovery failed: {error}")));
    let notice = |message: String| {
        let _ = events.send(EngineEvent::Notice(message));
    };
    let interrupted = match interrupted {
        Ok(interrupted) => interrupted,
        Err(error) => return notice(format!("interrupted cold migrations: {error}")),
    };
    for found in interrupted {
        let record = found.record;
        let heading = format!(
            "cold migration #{} of {} ({} → {}) was interrupted when ferry stopped",
            record.id, record.instance_name, record.source_host, record.destination_host
        );
        match found.result {
            Ok((plan, Recovery::AwaitingConfirm { .. })) => {
                let _ = events.send(EngineEvent::Cold(
                    record.id,
                    ColdEvent::FoundAwaiting {
                        plan: Box::new(plan),
                        started_at: unix_ms(record.started_at_unix_ms),
                        total_time_ms: None,
                        downtime_ms: None,
                        bytes_copied: None,
                    },
                ));
                notice(format!(
                    "{heading}; its verified copy awaits confirm or revert"
                ));
            }
            Ok((_, Recovery::RolledBack { leftovers, .. })) => notice(format!(
                "{heading}; rolled back: {} is on {} as before{}",
                record.instance_name,
                record.source_host,
                if leftovers.is_empty() {
                    String::new()
                } else {
                    format!(" (left on the destination: {})", leftovers.join(", "))
                }
            )),
            Err(reason) => notice(format!("{heading}; not recovered: {reason}")),
        }
    }
}
