//! The engine API on the real lab: a cold migration obeys the queue limits the live ones do.
//! One engine (as the TUI holds one) launches a live migration that cannot converge, then a
//! cold one; with one migration at a time allowed, the cold one waits, untouched, until the
//! live one is aborted, then runs to "awaiting confirm" and is reverted.

mod common;

use std::time::{Duration, Instant};

use common::{disk_content_sha256, lab_or_skip};
use ferry::config::Config;
use ferry::engine::cold::{ColdOptions, ColdOutcome, ColdUpdate};
use ferry::engine::live::{LiveOutcome, OperatorCommand};
use ferry::engine::options::LiveOptions;
use ferry::engine::service::{
    ColdEvent, Destination, Engine, EngineEvent, EngineRequest, TakeOver,
};
use ferry::engine::supervisor::SupervisorEvent;
use ferry::runtime::wait;
use tokio::sync::mpsc::UnboundedReceiver;

/// The next event of the engine, or a panic naming what was awaited.
fn next_event(
    events: &mut UnboundedReceiver<EngineEvent>,
    deadline: Instant,
    awaiting: &str,
) -> EngineEvent {
    let left = deadline.saturating_duration_since(Instant::now());
    // The timer is made inside the runtime: tokio timers need its context.
    match wait(async { tokio::time::timeout(left, events.recv()).await }) {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the engine stopped while waiting for {awaiting}"),
        Err(_) => panic!("no {awaiting} in time"),
    }
}

#[test]
fn a_cold_migration_waits_its_turn_behind_a_live_one_then_runs() {
    let Some(lab) = lab_or_skip("cold_waits_behind_live") else {
        return;
    };
    // The engine keeps its history and run locks under XDG_STATE_HOME; this test's own.
    let state_dir = std::env::temp_dir().join(format!("ferry-queue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    std::fs::create_dir_all(&state_dir).unwrap();
    std::env::set_var("XDG_STATE_HOME", &state_dir);
    let mut config = Config::load(&lab.plan.ferry_config_path()).expect("the lab's config");
    // One migration at a time in all: the cold one must wait for the live one whatever
    // hosts the guests are on.
    config.migration.max_concurrent_total = 1;

    let (busy_host, _) = lab.busy_running();
    let (disk_host, _) = lab.host_of("disk");
    let disk_destination = lab.next_host(&disk_host);
    let expected_disk = lab.state.data_disk_sha256["disk"].clone();
    let (engine, mut events) = Engine::start(&config, TakeOver::Nothing);
    assert_eq!(engine.unavailable(), None);

    // 8 MiB/s never carries busy's 200 MiB/s of dirtied memory: it runs until aborted.
    engine.send(EngineRequest::LaunchLive {
        instance: "busy".into(),
        source: None,
        destination: Destination::Named(lab.next_host(&busy_host).name.clone()),
        options: LiveOptions {
            bandwidth_mib_per_second: Some(8),
            ..LiveOptions::default()
        },
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let live_id = loop {
        match next_event(&mut events, deadline, "the live migration's start") {
            EngineEvent::Live(event) => match *event {
                SupervisorEvent::Started { request, .. } => break request,
                SupervisorEvent::Rejected { reason, .. } => panic!("busy rejected: {reason}"),
                _ => {}
            },
            EngineEvent::Refused { reason, .. } => panic!("busy refused: {reason}"),
            _ => {}
        }
    };

    engine.send(EngineRequest::LaunchCold {
        instance: "disk".into(),
        source: None,
        destination: disk_destination.name.clone(),
        options: ColdOptions {
            hard_power_off_allowed: true,
            shutdown_timeout: Duration::from_secs(30),
            ..ColdOptions::default()
        },
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let (cold_id, place) = loop {
        match next_event(
            &mut events,
            deadline,
            "the cold migration's place in the queue",
        ) {
            EngineEvent::Cold(id, ColdEvent::Queued { description }) => break (id, description),
            EngineEvent::Cold(_, ColdEvent::Engine(update)) => {
                panic!("the cold migration ran while the live one held the only place: {update:?}")
            }
            EngineEvent::Refused { reason, .. } => panic!("disk refused: {reason}"),
            _ => {}
        }
    };
    assert!(place.starts_with("queued"), "{place}");
    // Waiting means untouched: for a while it stays queued and the guest runs where it was.
    let watch_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < watch_until {
        let left = watch_until.saturating_duration_since(Instant::now());
        if let Ok(Some(EngineEvent::Cold(id, ColdEvent::Engine(update)))) =
            wait(async { tokio::time::timeout(left, events.recv()).await })
        {
            assert_ne!(
                id, cold_id,
                "the cold migration started while queued: {update:?}"
            );
        }
    }
    lab.assert_runs_only_on("disk", &disk_host, "while its cold migration is queued");

    engine.send(EngineRequest::Live {
        id: live_id,
        command: OperatorCommand::Abort,
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut live_done = false;
    let mut cold_outcome = None;
    while !(live_done && cold_outcome.is_some()) {
        match next_event(
            &mut events,
            deadline,
            "the abort and the cold migration's end",
        ) {
            EngineEvent::Live(event) => {
                if let SupervisorEvent::Done { request, outcome } = *event {
                    assert_eq!(request, live_id);
                    assert!(
                        matches!(outcome, LiveOutcome::Cancelled { .. }),
                        "busy: {outcome:?}"
                    );
                    live_done = true;
                }
            }
            EngineEvent::Cold(id, ColdEvent::Engine(update)) if id == cold_id => {
                assert!(
                    live_done,
                    "the cold migration started before the live one ended"
                );
                if let ColdUpdate::Finished(outcome) = update {
                    cold_outcome = Some(outcome);
                }
            }
            _ => {}
        }
    }
    lab.assert_runs_only_on("busy", &busy_host, "after the abort");
    assert!(
        matches!(cold_outcome, Some(ColdOutcome::AwaitingConfirm { .. })),
        "disk: {cold_outcome:?}"
    );

    engine.send(EngineRequest::SettleCold {
        id: cold_id,
        keep: false,
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let EngineEvent::Cold(id, ColdEvent::Settled { keep, result }) =
            next_event(&mut events, deadline, "the revert")
        {
            assert_eq!((id, keep), (cold_id, false));
            result.unwrap_or_else(|reason| panic!("revert failed: {reason}"));
            break;
        }
    }
    lab.assert_runs_only_on("disk", &disk_host, "after the revert");
    let image = lab
        .plan
        .host_local_pool_dir(&disk_host)
        .join("disk-data.qcow2");
    assert_eq!(
        disk_content_sha256(&image),
        expected_disk,
        "disk content after the revert"
    );
    let _ = std::fs::remove_dir_all(&state_dir);
}
