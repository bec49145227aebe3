//! Snapshot tests of the migration screens: the launch dialog fed with precheck reports, the
//! list, and the detail in every phase, driven by the lab's real job-statistics traces
//! replayed through the progress model and the policy (see `tui::test_support`).

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::engine::live::LiveOutcome;
use crate::engine::queue::{QueuePosition, WaitingFor};
use crate::model::migration::MigrationId;
use crate::model::HostName;
use crate::tui::action::Action;
use crate::tui::app::App;
use crate::tui::state::cold_detail::ColdEvent;
use crate::tui::state::migrations::{MigrationChange, MigrationEvent};
use crate::tui::test_support::{
    abort_run_events, adaptive_run_events, app_with_events, at, busy_plan, cold_run_events,
    hands_off_plan, pause_completed_events, post_copy_run_events, precheck_report, press,
    recorded_adaptive_plan, Replay,
};
use crate::tui::theme::Theme;

fn render(app: &App, width: u16, height: u16) -> TestBackend {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| super::draw(frame, app, &Theme::default()))
        .unwrap();
    terminal.backend().clone()
}

fn hv(name: &str) -> HostName {
    HostName::parse(name).unwrap()
}

/// The launch dialog of vm-00001 (hv1, 1 GiB): the runtime's precheck request taken, its id
/// returned.
fn launch_dialog() -> (App, u64) {
    let mut app = app_with_events(Vec::new());
    // Free memory as the reports below will find it.
    for (host, free) in [(2, 380_u64 << 20), (3, 12 << 30)] {
        app.inventory.hosts[host]
            .facts
            .as_mut()
            .unwrap()
            .memory_free_bytes = free;
    }
    press(&mut app, "\tj");
    assert_eq!(app.selected_instance().unwrap().name, "vm-00001");
    press(&mut app, "m");
    let Some(Action::RequestPrechecks(request)) = app.take_actions().pop() else {
        panic!("m asks for prechecks");
    };
    assert_eq!(request.destinations, [hv("hv2"), hv("hv3"), hv("hv4")]);
    (app, request.request_id)
}

fn reports(
    app: &App,
    hosts: &[(&str, u64)],
) -> Vec<(HostName, Result<crate::precheck::PrecheckReport, String>)> {
    let instance = app.selected_instance().unwrap();
    hosts
        .iter()
        .map(|(host, free)| (hv(host), Ok(precheck_report(instance, host, *free))))
        .collect()
}

#[test]
fn launch_dialog_with_a_refused_destination_and_one_still_checking() {
    let (mut app, request_id) = launch_dialog();
    let arrived = reports(&app, &[("hv2", 20 << 30), ("hv3", 380 << 20)]);
    assert!(app.on_precheck_reports(request_id, arrived));
    insta::assert_snapshot!(render(&app, 80, 24));
}

/// The options as the config's `[migration]` sets them (Nova, 800 ms, 100 MiB/s, post-copy
/// permitted), not the built-in ones.
#[test]
fn launch_dialog_options_from_the_config() {
    let mut config = crate::config::Config::default();
    config.migration.policy = crate::config::PolicyName::Nova;
    config.migration.bandwidth_mib_per_second = 100;
    config.migration.nova.downtime_ms = 800;
    config.migration.nova.permit_post_copy = true;
    let mut app =
        app_with_events(Vec::new()).with_config(&config, crate::tui::keys::KeyTable::default());
    press(&mut app, "	jm	");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn launch_dialog_enter_on_a_refused_destination_flashes_its_reason() {
    let (mut app, request_id) = launch_dialog();
    let arrived = reports(&app, &[("hv2", 20 << 30), ("hv3", 380 << 20)]);
    app.on_precheck_reports(request_id, arrived);
    press(&mut app, "jj\n");
    assert!(app.take_actions().is_empty());
    assert!(app.launch.is_some(), "the dialog stays open");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn launch_dialog_options_edited_with_every_verdict_in() {
    let (mut app, request_id) = launch_dialog();
    let arrived = reports(
        &app,
        &[("hv2", 20 << 30), ("hv3", 380 << 20), ("hv4", 12 << 30)],
    );
    app.on_precheck_reports(request_id, arrived);
    // Bandwidth 100, post-copy permitted; the cursor stays on the post-copy option.
    press(&mut app, "\tj100jj ");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn cold_dialog_is_shown_disabled_with_its_reason() {
    let mut app = app_with_events(Vec::new());
    press(&mut app, "\tjc");
    assert!(
        app.take_actions().is_empty(),
        "no prechecks for what cannot launch"
    );
    press(&mut app, "\n");
    insta::assert_snapshot!(render(&app, 80, 24));
}

/// Two running (one not converging, one in post-copy), two queued behind them, one
/// completed, one cancelled: every row from a real trace but the queued ones.
fn busy_list_app() -> App {
    let mut events = Vec::new();
    events.extend(pause_completed_events(MigrationId(1)));
    let mut cancelled = Replay {
        id: MigrationId(2),
        queued_at_seconds: 30,
        plan: hands_off_plan(false),
        trace: "lab-busy-512mib-abort.jsonl",
        samples: usize::MAX,
        command: Some(crate::engine::live::OperatorCommand::Abort),
        outcome: Some(LiveOutcome::Cancelled {
            detail: "aborted by the operator".into(),
        }),
    };
    cancelled.plan.source.name = "hv3".into();
    cancelled.plan.destination.name = "hv4".into();
    events.extend(cancelled.events());
    let mut running = Replay {
        id: MigrationId(3),
        queued_at_seconds: 60,
        plan: recorded_adaptive_plan(),
        trace: "lab-busy-512mib-adaptive.jsonl",
        samples: 40,
        command: None,
        outcome: None,
    };
    running.plan.instance_name = "busy".into();
    events.extend(running.events());
    let mut post_copy = Replay {
        id: MigrationId(4),
        queued_at_seconds: 70,
        plan: hands_off_plan(true),
        trace: "lab-busy-512mib-postcopy.jsonl",
        samples: usize::MAX,
        command: Some(crate::engine::live::OperatorCommand::ForceComplete),
        outcome: None,
    };
    post_copy.plan.instance_name = "busy-2".into();
    post_copy.plan.source.name = "hv2".into();
    post_copy.plan.destination.name = "hv3".into();
    events.extend(post_copy.events());
    let last = events.last().unwrap().at;
    for (id, name, source, destination, position) in [
        (
            5,
            "web-1",
            "hv1",
            "hv4",
            QueuePosition::Queued {
                place_for_source_host: 1,
                behind: Some(MigrationId(3)),
                waiting_for: WaitingFor::SourceHostLimit,
            },
        ),
        (
            6,
            "db-1",
            "hv1",
            "hv3",
            QueuePosition::Queued {
                place_for_source_host: 2,
                behind: Some(MigrationId(5)),
                waiting_for: WaitingFor::EarlierRequestsFromSourceHost,
            },
        ),
    ] {
        let mut plan = busy_plan(false);
        plan.instance_name = name.into();
        plan.source.name = source.into();
        plan.destination.name = destination.into();
        events.push(MigrationEvent {
            id: MigrationId(id),
            at: last,
            change: MigrationChange::QueuedLive(Box::new(plan)),
        });
        events.push(MigrationEvent {
            id: MigrationId(id),
            at: last,
            change: MigrationChange::QueuePosition(position),
        });
    }
    let mut app = app_with_events(events);
    press(&mut app, "2");
    app
}

#[test]
fn migrations_list_queued_running_completed_cancelled_120x24() {
    insta::assert_snapshot!(render(&busy_list_app(), 120, 24));
}

#[test]
fn migrations_list_80x24() {
    insta::assert_snapshot!(render(&busy_list_app(), 80, 24));
}

#[test]
fn migrations_list_empty() {
    let mut app = app_with_events(Vec::new());
    press(&mut app, "2");
    insta::assert_snapshot!(render(&app, 80, 24));
}

/// The detail of the only migration.
fn detail_of(events: Vec<MigrationEvent>) -> App {
    let mut app = app_with_events(events);
    press(&mut app, "2\n");
    assert!(app.migration_detail);
    app
}

#[test]
fn detail_preparing() {
    insta::assert_snapshot!(render(
        &detail_of(adaptive_run_events(MigrationId(3), 0)),
        80,
        24
    ));
}

#[test]
fn detail_copying_iteration_2() {
    let app = detail_of(adaptive_run_events(MigrationId(3), 12));
    let progress = app.selected_migration().unwrap().progress.clone().unwrap();
    assert_eq!(
        progress.phase,
        crate::progress::MigrationPhase::CopyingMemory { iteration: 2 }
    );
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn detail_not_converging_80x24() {
    let app = detail_of(adaptive_run_events(MigrationId(3), 40));
    let progress = app.selected_migration().unwrap().progress.clone().unwrap();
    assert_eq!(progress.verdict.name(), "not-converging");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn detail_not_converging_120x40() {
    insta::assert_snapshot!(render(
        &detail_of(adaptive_run_events(MigrationId(3), 40)),
        120,
        40
    ));
}

#[test]
fn detail_post_copy() {
    let app = detail_of(post_copy_run_events(MigrationId(4)));
    assert!(app.selected_migration().unwrap().in_post_copy());
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn detail_completed() {
    insta::assert_snapshot!(render(
        &detail_of(pause_completed_events(MigrationId(1))),
        80,
        24
    ));
}

#[test]
fn detail_cancelled() {
    insta::assert_snapshot!(render(&detail_of(abort_run_events(MigrationId(2))), 80, 24));
}

#[test]
fn confirm_abort() {
    let mut app = detail_of(adaptive_run_events(MigrationId(3), 20));
    press(&mut app, "a");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn confirm_force_complete_switches_to_post_copy() {
    let mut app = detail_of(adaptive_run_events(MigrationId(3), 20));
    press(&mut app, "f");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn confirm_force_complete_pauses_the_vm() {
    let mut events = pause_completed_events(MigrationId(1));
    // Still running: everything before the operator's force-complete and the end.
    events.truncate(
        events
            .iter()
            .position(|e| {
                matches!(
                    e.change,
                    MigrationChange::Engine(
                        crate::engine::live::MigrationUpdate::OperatorAction { .. }
                    )
                )
            })
            .unwrap(),
    );
    let mut app = detail_of(events);
    press(&mut app, "f");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn abort_refused_in_post_copy() {
    let mut app = detail_of(post_copy_run_events(MigrationId(4)));
    press(&mut app, "a");
    assert!(app.prompt.is_none());
    insta::assert_snapshot!(render(&app, 80, 24));
}

/// The lab's post-copy run, cut where the stream broke: the engine's words for a broken
/// post-copy (live.rs `broken_post_copy_words`) after the post-copy samples.
fn broken_post_copy_events(id: MigrationId) -> Vec<MigrationEvent> {
    use crate::engine::live::MigrationUpdate;
    let mut events = post_copy_run_events(id);
    // The run ends in the completed job's statistics: a broken one never gets there.
    while events.last().is_some_and(|e| {
        matches!(
            &e.change,
            MigrationChange::Engine(MigrationUpdate::Progress(p))
                if p.phase != crate::progress::MigrationPhase::PostCopy
        )
    }) {
        events.pop();
    }
    let at = events.last().map_or(at(0), |e| e.at);
    events.push(MigrationEvent {
        id,
        at,
        change: MigrationChange::Engine(MigrationUpdate::PostCopyBroken {
            detail: "post-copy broken: busy paused on hv1, memory split between hv1 and hv2; \
                     resuming it"
                .into(),
        }),
    });
    events
}

#[test]
fn broken_post_copy_is_loud_in_the_list_and_r_asks_to_resume() {
    let mut app = app_with_events(broken_post_copy_events(MigrationId(4)));
    press(&mut app, "2");
    let screen = render(&app, 120, 24);
    insta::assert_snapshot!(screen);
    // The row's status is drawn in the theme's error colour.
    let buffer = screen.buffer();
    let row = (0..buffer.area.height)
        .find(|&y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect::<String>()
                .contains("post-copy broken")
        })
        .expect("the list shows the break");
    let cells: Vec<String> = (0..buffer.area.width)
        .map(|x| buffer[(x, row)].symbol().to_string())
        .collect();
    let x = (0..cells.len())
        .find(|&x| cells[x..].concat().starts_with("post-copy broken"))
        .unwrap() as u16;
    assert_eq!(buffer[(x, row)].fg, Theme::default().error.fg.unwrap());
    press(&mut app, "\nr");
    assert!(app.prompt.is_some(), "r opens the resume question");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn r_on_a_healthy_migration_says_there_is_nothing_to_recover() {
    let mut app = detail_of(adaptive_run_events(MigrationId(3), 20));
    press(&mut app, "r");
    assert!(app.prompt.is_none());
    assert!(
        app.flash
            .as_deref()
            .is_some_and(|f| f.contains("nothing to recover")),
        "{:?}",
        app.flash
    );
}

#[test]
fn a_silent_source_shows_the_gap_in_the_detail() {
    use crate::engine::live::MigrationUpdate;
    let mut events = adaptive_run_events(MigrationId(3), 20);
    let at = events.last().unwrap().at;
    events.push(MigrationEvent {
        id: MigrationId(3),
        at,
        change: MigrationChange::Engine(MigrationUpdate::Silent {
            host: "hv1".into(),
            silent_for_ms: 4_200,
            observed: "internal error: client socket is closed".into(),
            figures: true,
        }),
    });
    let app = detail_of(events);
    let text = format!("{:?}", render(&app, 100, 24).buffer());
    assert!(
        text.contains("no figures for 4.2 s: reconnecting to hv1"),
        "{text}"
    );
}

#[test]
fn bandwidth_prompt_refuses_a_letter() {
    let mut app = detail_of(adaptive_run_events(MigrationId(3), 20));
    press(&mut app, "b12x");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn help_on_the_migrations_screen_80x24() {
    let mut app = busy_list_app();
    press(&mut app, "?");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn tiny_terminals_do_not_panic_on_migration_screens() {
    let mut app = busy_list_app();
    for (width, height) in [(1, 1), (20, 5), (40, 10), (60, 15)] {
        render(&app, width, height);
        press(&mut app, "\n");
        render(&app, width, height);
        press(&mut app, "f");
        render(&app, width, height);
        press(&mut app, "\u{1b}\u{1b}1\tjm");
        render(&app, width, height);
        press(&mut app, "\tjjjj");
        render(&app, width, height);
        press(&mut app, "\u{1b}2");
    }
}

const COLD_AWAITING_RUN: &str = "lab-cold-disk-hv1-hv2.jsonl";
const COLD_ROLLED_BACK_RUN: &str = "lab-cold-disk-started-during-copy.jsonl";

/// The cold dialog of vm-00001 with every verdict in.
#[test]
fn cold_dialog_with_verdicts_and_its_options() {
    let mut app = app_with_events(Vec::new());
    app.cold_migration_available = true;
    press(&mut app, "\tjc");
    let Some(Action::RequestPrechecks(request)) = app.take_actions().pop() else {
        panic!("c asks for prechecks");
    };
    let arrived = reports(
        &app,
        &[("hv2", 20 << 30), ("hv3", 380 << 20), ("hv4", 12 << 30)],
    );
    app.on_precheck_reports(request.request_id, arrived);
    press(&mut app, "j\tj ");
    insta::assert_snapshot!(render(&app, 80, 24));
}

/// A live migration running; cold ones copying, awaiting confirm, and rolled back.
fn cold_list_app() -> App {
    let mut events = adaptive_run_events(MigrationId(1), 30);
    events.extend(cold_run_events(
        MigrationId(3),
        10,
        COLD_ROLLED_BACK_RUN,
        usize::MAX,
    ));
    events.extend(cold_run_events(
        MigrationId(5),
        20,
        COLD_AWAITING_RUN,
        usize::MAX,
    ));
    events.extend(cold_run_events(MigrationId(7), 40, COLD_AWAITING_RUN, 7));
    events.sort_by_key(|e| e.at);
    app_with_events(events)
}

#[test]
fn migrations_list_with_cold_migrations_120x24() {
    let mut app = cold_list_app();
    press(&mut app, "2");
    insta::assert_snapshot!(render(&app, 120, 24));
}

fn cold_detail(id: i64, app: &mut App) {
    press(app, "2");
    while app.selected_listed().map(|m| m.id()) != Some(MigrationId(id)) {
        assert!(app.handle_key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Down,
            crossterm::event::KeyModifiers::NONE
        )));
    }
    press(app, "\n");
}

#[test]
fn cold_detail_while_copying() {
    let mut app = cold_list_app();
    cold_detail(7, &mut app);
    insta::assert_snapshot!(render(&app, 100, 24));
}

#[test]
fn cold_detail_awaiting_confirm() {
    let mut app = cold_list_app();
    cold_detail(5, &mut app);
    insta::assert_snapshot!(render(&app, 100, 24));
}

/// The recorded cold run awaiting confirm, as a resize 1 vCPU, 128 MiB → 2 vCPUs, 384 MiB
/// (in place on its source with `in_place`).
fn resize_awaiting_events(in_place: bool) -> Vec<MigrationEvent> {
    use crate::engine::cold::Resize;
    use crate::libvirt::guest_size::DefinedSize;
    let mut events = cold_run_events(MigrationId(5), 20, COLD_AWAITING_RUN, usize::MAX);
    let MigrationChange::Cold(ColdEvent::Launched(plan)) = &mut events[0].change else {
        panic!("the replay starts with the launch");
    };
    if in_place {
        plan.destination = plan.source.clone();
    }
    plan.resize = Some(Resize {
        from: DefinedSize {
            vcpus: 1,
            memory_kib: 128 << 10,
        },
        to: DefinedSize {
            vcpus: 2,
            memory_kib: 384 << 10,
        },
        previous_definition_xml: in_place.then(|| "<domain/>".to_string()),
    });
    events
}

#[test]
fn cold_detail_of_a_resize_shows_the_old_and_the_new_size() {
    let mut app = app_with_events(resize_awaiting_events(false));
    cold_detail(5, &mut app);
    let screen = format!("{:?}", render(&app, 100, 24).buffer());
    assert!(screen.contains("· cold resize"), "{screen}");
    assert!(
        screen.contains("size      resize 1 vCPU, 128 MiB → 2 vCPUs, 384 MiB"),
        "{screen}"
    );
}

#[test]
fn a_resize_in_place_speaks_of_sizes_not_copies() {
    let mut app = app_with_events(resize_awaiting_events(true));
    press(&mut app, "2");
    let list = format!("{:?}", render(&app, 120, 24).buffer());
    assert!(
        list.contains("on hv1 at 2 vCPUs, 384 MiB: C confirm keeps it · R revert to 1 vCPU"),
        "{list}"
    );
    cold_detail(5, &mut app);
    let detail = format!("{:?}", render(&app, 100, 24).buffer());
    assert!(detail.contains("(in place on hv1)"), "{detail}");
    assert!(
        detail.contains("runs on hv1 at 2 vCPUs, 384 MiB"),
        "{detail}"
    );
    assert!(!detail.contains("keeps its copy"), "{detail}");
    press(&mut app, "R");
    let question = format!("{:?}", render(&app, 100, 24).buffer());
    assert!(
        question.contains("Go back to 1 vCPU, 128 MiB"),
        "{question}"
    );
}

#[test]
fn cold_detail_rolled_back_80x24() {
    let mut app = cold_list_app();
    cold_detail(3, &mut app);
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn cold_detail_confirmed_after_a_failed_revert() {
    let mut app = cold_list_app();
    for (seconds, change) in [
        (200, ColdEvent::Settling { keep: false }),
        (
            201,
            ColdEvent::Settled {
                keep: false,
                result: Err("hv2: unreachable: timed out after 15 s".into()),
            },
        ),
        (300, ColdEvent::Settling { keep: true }),
        (
            302,
            ColdEvent::Settled {
                keep: true,
                result: Ok(vec![
                    "hv1: removed the definition of disk".into(),
                    "hv1: deleted local/disk-data.qcow2".into(),
                ]),
            },
        ),
    ] {
        app.on_migration_event(MigrationEvent {
            id: MigrationId(5),
            at: at(seconds),
            change: MigrationChange::Cold(change),
        });
    }
    app.now = at(310);
    cold_detail(5, &mut app);
    insta::assert_snapshot!(render(&app, 100, 24));
}

#[test]
fn cold_confirm_and_revert_questions() {
    let mut app = cold_list_app();
    cold_detail(5, &mut app);
    press(&mut app, "C");
    insta::assert_snapshot!("cold_confirm_question", render(&app, 80, 24));
    press(&mut app, "nR");
    insta::assert_snapshot!("cold_revert_question", render(&app, 80, 24));
}

#[test]
fn tiny_terminals_do_not_panic_on_cold_screens() {
    let mut app = cold_list_app();
    for (width, height) in [(1, 1), (20, 5), (40, 10), (60, 15)] {
        press(&mut app, "2");
        render(&app, width, height);
        press(&mut app, "j\n");
        render(&app, width, height);
        press(&mut app, "C");
        render(&app, width, height);
        press(&mut app, "\u{1b}\u{1b}\u{1b}1");
        app.cold_migration_available = true;
        press(&mut app, "\tjc\tj");
        render(&app, width, height);
        press(&mut app, "\u{1b}");
    }
}

/// Right after `a`, `y`: libvirt's job statistics say cancelled before the engine's outcome
/// comes. The list (phase, counters) and the detail (phase, verdict, timeline) read the same
/// state: both say "ending", neither "cancelled", until the outcome; then both say cancelled.
#[test]
fn after_an_abort_the_list_and_the_detail_agree_until_the_outcome() {
    let events = abort_run_events(MigrationId(3));
    let (before_the_end, end) = events.split_at(events.len() - 1);
    let mut app = app_with_events(before_the_end.to_vec());
    press(&mut app, "2");
    let list = render(&app, 120, 24).to_string();
    press(&mut app, "\n");
    let detail = render(&app, 120, 40).to_string();
    for (view, screen) in [("list", &list), ("detail", &detail)] {
        assert!(screen.contains("ending"), "{view}:\n{screen}");
        assert!(
            screen.contains("waiting for the engine's outcome"),
            "{view}:\n{screen}"
        );
        assert!(
            !screen.contains("cancelled"),
            "{view} ahead of the engine:\n{screen}"
        );
        assert!(screen.contains(" 1 running "), "{view}:\n{screen}");
    }
    app.on_migration_event(end[0].clone());
    let detail = render(&app, 120, 40).to_string();
    press(&mut app, "\u{1b}");
    let list = render(&app, 120, 24).to_string();
    for (view, screen) in [("list", &list), ("detail", &detail)] {
        assert!(screen.contains("cancelled"), "{view}:\n{screen}");
        assert!(screen.contains(" 0 running "), "{view}:\n{screen}");
        assert!(!screen.contains("ending"), "{view}:\n{screen}");
    }
}
