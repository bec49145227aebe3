//! Unit tests of the migration store: events folded in, the list and its order out.

use super::*;
use crate::tui::test_support::{self, at, busy_plan};

fn event(id: i64, seconds: u64, change: MigrationChange) -> MigrationEvent {
    MigrationEvent {
        id: MigrationId(id),
        at: at(seconds),
        change,
    }
}

#[test]
fn series_thins_out_but_keeps_the_start_and_the_newest_point() {
    let mut series = ChartSeries::with_capacity(8);
    let point = |at_ms| ChartPoint {
        at_ms,
        memory_remaining_bytes: 1,
        transfer_rate_bytes_per_second: None,
        dirty_rate_bytes_per_second: None,
    };
    for at_ms in 0..100 {
        series.push(point(at_ms));
    }
    let points = series.points();
    assert!(points.len() <= 9, "{}", points.len());
    assert_eq!(points.first().unwrap().at_ms, 0);
    assert_eq!(points.last().unwrap().at_ms, 99);
    assert!(points.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
}

#[test]
fn a_migration_goes_from_queued_to_finished_by_events_only() {
    let mut store = MigrationStore::default();
    assert!(!store.apply(event(
        1,
        0,
        MigrationChange::Engine(MigrationUpdate::Started {
            flags: 0,
            policy: "adaptive".into()
        })
    )));
    assert!(store.is_empty(), "an unknown id is ignored");
    store.apply(event(
        1,
        0,
        MigrationChange::QueuedLive(Box::new(busy_plan(false))),
    ));
    let migration = store.get(MigrationId(1)).unwrap();
    assert!(migration.is_queued());
    assert_eq!(migration.phase(), None);
    assert_eq!(
        migration
            .downtime_ladder
            .iter()
            .map(|s| s.max_downtime_ms)
            .collect::<Vec<_>>(),
        [300, 500, 1000, 2000]
    );
    store.apply(event(1, 1, MigrationChange::Starting));
    store.apply(event(
        1,
        2,
        MigrationChange::Engine(MigrationUpdate::Started {
            flags: 0,
            policy: "adaptive".into(),
        }),
    ));
    let migration = store.get(MigrationId(1)).unwrap();
    assert_eq!(migration.phase(), Some(MigrationPhase::Preparing));
    assert_eq!(migration.started_at, Some(at(1)));
    store.apply(event(
        1,
        9,
        MigrationChange::Engine(MigrationUpdate::Finished(LiveOutcome::Cancelled {
            detail: "aborted by the operator".into(),
        })),
    ));
    let migration = store.get(MigrationId(1)).unwrap();
    assert_eq!(migration.phase(), Some(MigrationPhase::Cancelled));
    assert!(
        !store.apply(event(1, 10, MigrationChange::Starting)),
        "stays finished"
    );
}

#[test]
fn replaying_a_real_trace_fills_series_ladder_and_timeline() {
    let mut store = MigrationStore::default();
    for event in test_support::adaptive_run_events(MigrationId(7), usize::MAX) {
        store.apply(event);
    }
    let migration = store.get(MigrationId(7)).unwrap();
    let progress = migration.progress.as_ref().unwrap();
    assert!(matches!(
        progress.verdict,
        crate::progress::ConvergenceVerdict::NotConverging { .. }
    ));
    // Every poll of the 41-sample lab trace is a chart point; nothing was thinned yet.
    assert_eq!(migration.series.points().len(), 41);
    // Stalled passes climbed the ladder past its first rung.
    assert!(
        migration.downtime_step.unwrap() >= 2,
        "{:?}",
        migration.downtime_step
    );
    let phases: Vec<&str> = migration
        .phase_marks
        .iter()
        .map(|m| m.phase.name())
        .collect();
    assert_eq!(phases, ["preparing", "copying-memory"]);
    assert!(migration
        .policy_events
        .iter()
        .any(|e| e.reason.contains("stalled")));
}

#[test]
fn cancelled_job_statistics_do_not_erase_what_the_job_did() {
    let mut store = MigrationStore::default();
    let events = test_support::abort_run_events(MigrationId(3));
    let (before_the_end, end) = events.split_at(events.len() - 1);
    for event in before_the_end {
        store.apply(event.clone());
    }
    let migration = store.get(MigrationId(3)).unwrap();
    assert_eq!(
        migration.phase(),
        Some(MigrationPhase::Cancelled),
        "the job statistics said so before the engine's outcome"
    );
    assert!(migration.is_running_stage());
    store.apply(end[0].clone());
    let migration = store.get(MigrationId(3)).unwrap();
    assert_eq!(migration.phase(), Some(MigrationPhase::Cancelled));
    let points = migration.series.points();
    assert!(points.iter().all(|p| p.memory_remaining_bytes > 0));
    let progress = migration.progress.as_ref().unwrap();
    assert_eq!(progress.iteration, Some(2));
    assert!(progress.memory_processed_bytes.unwrap() > 400 << 20);
    assert_eq!(
        migration.phase_marks.last().unwrap().phase,
        MigrationPhase::Cancelled
    );
}

#[test]
fn list_order_is_running_then_queued_then_recent_finished() {
    let mut store = MigrationStore::default();
    for id in 1..=4 {
        store.apply(event(
            id,
            id as u64,
            MigrationChange::QueuedLive(Box::new(busy_plan(false))),
        ));
    }
    store.apply(event(3, 10, MigrationChange::Starting));
    store.apply(event(
        1,
        11,
        MigrationChange::Engine(MigrationUpdate::Finished(LiveOutcome::Failed {
            detail: "hv2 unreachable".into(),
        })),
    ));
    store.apply(event(
        2,
        12,
        MigrationChange::Engine(MigrationUpdate::Finished(LiveOutcome::Cancelled {
            detail: "removed from the queue".into(),
        })),
    ));
    let order: Vec<i64> = store.listed().iter().map(|m| m.id().0).collect();
    assert_eq!(order, [3, 4, 2, 1]);
    assert_eq!(
        (
            store.running_count(),
            store.queued_count(),
            store.finished_count()
        ),
        (1, 1, 2)
    );
}

#[test]
fn only_the_most_recent_finished_migrations_are_kept() {
    let mut store = MigrationStore::default();
    let total = RECENT_FINISHED_KEPT as i64 + 5;
    for id in 0..total {
        store.apply(event(
            id,
            0,
            MigrationChange::QueuedLive(Box::new(busy_plan(false))),
        ));
        store.apply(event(
            id,
            id as u64,
            MigrationChange::Engine(MigrationUpdate::Finished(LiveOutcome::Cancelled {
                detail: "x".into(),
            })),
        ));
    }
    assert_eq!(store.len(), RECENT_FINISHED_KEPT);
    assert!(store.get(MigrationId(4)).is_none());
    assert!(store.get(MigrationId(5)).is_some());
}

#[test]
fn queued_migrations_say_what_they_wait_for() {
    let mut store = MigrationStore::default();
    store.apply(event(
        1,
        0,
        MigrationChange::QueuedLive(Box::new(busy_plan(false))),
    ));
    store.apply(event(
        2,
        0,
        MigrationChange::QueuedLive(Box::new(busy_plan(false))),
    ));
    store.apply(event(1, 1, MigrationChange::Starting));
    store.apply(event(
        2,
        1,
        MigrationChange::QueuePosition(QueuePosition::Queued {
            place_for_source_host: 1,
            behind: Some(MigrationId(1)),
            waiting_for: WaitingFor::SourceHostLimit,
        }),
    ));
    let waiting = store.waiting_for(store.get(MigrationId(2)).unwrap());
    assert_eq!(waiting, "after #1 busy (hv1 limit)");
}
