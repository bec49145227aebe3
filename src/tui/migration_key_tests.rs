//! Keys on migrations, end to end through `App`: what each key opens, refuses or yields as an
//! action, with migrations fed from the lab's real traces.

use crate::engine::live::{LiveOutcome, MigrationUpdate, OperatorCommand};
use crate::model::migration::{MigrationId, MigrationKind};
use crate::model::HostName;
use crate::policy::{PolicyChoice, TimeoutAction};
use crate::precheck::BlockMigrationChoice;
use crate::progress::MigrationPhase;

use super::action::{Action, PolicyKind, PrecheckRequest};
use super::app::{App, InstanceKey, Screen};
use super::keys::{KeyPress, KeyScreen, KeyTable, EVERYWHERE};
use super::state::cold_detail::ColdEvent;
use super::state::migrations::{MigrationChange, MigrationEvent};
use super::state::prompt::{ColdQuestion, OperatorPrompt};
use super::test_support::{
    adaptive_run_events, app_with_events, at, busy_plan, cold_run_events, hands_off_plan,
    post_copy_run_events, precheck_report, press, Replay,
};
use super::views::status::footer_keys;

fn hv(name: &str) -> HostName {
    HostName::parse(name).unwrap()
}

fn precheck_request(app: &mut App) -> PrecheckRequest {
    let actions = app.take_actions();
    match actions.as_slice() {
        [Action::RequestPrechecks(request)] => request.clone(),
        other => panic!("one precheck request expected, got {other:?}"),
    }
}

/// Instances pane, vm-00001 (hv1, 1 GiB) selected, the live dialog open and its precheck
/// request taken.
fn dialog_on_vm1() -> (App, PrecheckRequest) {
    let mut app = app_with_events(Vec::new());
    app.inventory.hosts[2]
        .facts
        .as_mut()
        .unwrap()
        .memory_free_bytes = 380 << 20;
    app.inventory.hosts[3]
        .facts
        .as_mut()
        .unwrap()
        .memory_free_bytes = 30 << 30;
    press(&mut app, "\tjm");
    let request = precheck_request(&mut app);
    (app, request)
}

/// Every destination answers, with the inventory's free memory.
fn answer_all(app: &mut App, request: &PrecheckRequest) {
    let instance = app.selected_instance().unwrap().clone();
    let reports = request
        .destinations
        .iter()
        .map(|host| {
            let free = app
                .inventory
                .host(host)
                .and_then(|h| h.facts.as_ref())
                .unwrap()
                .memory_free_bytes;
            (
                host.clone(),
                Ok(precheck_report(&instance, host.as_str(), free)),
            )
        })
        .collect();
    assert!(app.on_precheck_reports(request.request_id, reports));
}

#[test]
fn m_opens_the_live_dialog_on_the_selected_instance_and_asks_for_prechecks() {
    let (app, request) = dialog_on_vm1();
    let dialog = app.launch.as_ref().unwrap();
    let vm1 = app.selected_instance().unwrap();
    assert_eq!(vm1.name, "vm-00001");
    assert_eq!(dialog.kind, MigrationKind::Live);
    assert_eq!(dialog.instance, InstanceKey::of(vm1));
    assert_eq!(request.instance, InstanceKey::of(vm1));
    assert_eq!(request.kind, MigrationKind::Live);
    assert_eq!(request.destinations, [hv("hv2"), hv("hv3"), hv("hv4")]);
    assert_eq!(request.block_migration, BlockMigrationChoice::Auto);
    assert!(dialog
        .candidates
        .iter()
        .all(|c| c.check == super::state::launch::DestinationCheck::Checking));
}

#[test]
fn m_in_the_hosts_pane_says_to_pick_an_instance() {
    let mut app = app_with_events(Vec::new());
    press(&mut app, "m");
    assert!(app.launch.is_none());
    assert!(app.take_actions().is_empty());
    assert!(app.flash.as_deref().unwrap().contains("instances pane"));
    press(&mut app, "j");
    assert!(app.flash.is_none(), "the next key clears the answer");
}

#[test]
fn auto_waits_for_every_verdict_then_picks_the_most_free_memory() {
    let (mut app, request) = dialog_on_vm1();
    press(&mut app, "\n");
    assert!(app.take_actions().is_empty(), "auto cannot pick yet");
    assert!(app.flash.as_deref().unwrap().contains("still checking"));
    answer_all(&mut app, &request);
    press(&mut app, "\n");
    let actions = app.take_actions();
    let [Action::LaunchLiveMigration(launch)] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    // hv4 has 30 GiB free, hv2 20 GiB, hv3 is refused.
    assert_eq!(launch.destination, hv("hv4"));
    assert!(launch.destination_chosen_automatically);
    assert!(app.launch.is_none(), "the dialog closes on launch");
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .starts_with("requested: live-migrate"));
}

#[test]
fn confirm_yields_the_launch_action_with_the_chosen_options() {
    let (mut app, request) = dialog_on_vm1();
    answer_all(&mut app, &request);
    // hv2; then the options: nova, 250 MiB/s, 800 ms, post-copy on, auto-converge flipped,
    // block migration yes, force-complete at timeout.
    press(&mut app, "j\tlj250j\u{8}\u{8}\u{8}800j j jlj ");
    // Block migration changed the verdicts' question: a new request, the old answers void.
    let recheck = precheck_request(&mut app);
    assert_ne!(recheck.request_id, request.request_id);
    assert_eq!(recheck.block_migration, BlockMigrationChoice::Yes);
    let dialog = app.launch.as_ref().unwrap();
    assert_eq!(dialog.still_checking().len(), 3);
    let instance = app.selected_instance().unwrap().clone();
    let stale = vec![(hv("hv2"), Ok(precheck_report(&instance, "hv2", 20 << 30)))];
    assert!(!app.on_precheck_reports(request.request_id, stale));
    assert_eq!(app.launch.as_ref().unwrap().still_checking().len(), 3);
    let fresh = vec![(hv("hv2"), Ok(precheck_report(&instance, "hv2", 20 << 30)))];
    assert!(app.on_precheck_reports(recheck.request_id, fresh));

    press(&mut app, "\n");
    let actions = app.take_actions();
    let [Action::LaunchLiveMigration(launch)] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(launch.instance, InstanceKey::of(&instance));
    assert_eq!(launch.destination, hv("hv2"));
    assert!(!launch.destination_chosen_automatically);
    let options = &launch.options;
    assert_eq!(options.policy, PolicyKind::Nova);
    assert_eq!(options.bandwidth_mib_per_second, Some(250));
    assert_eq!(options.max_downtime_ceiling_ms, 800);
    assert!(options.post_copy_permitted);
    assert!(options.auto_converge, "nova starts without it; flipped on");
    assert_eq!(options.block_migration, BlockMigrationChoice::Yes);
    assert_eq!(options.timeout_action, TimeoutAction::ForceComplete);
    let PolicyChoice::Nova(nova) = launch.policy_choice() else {
        panic!("nova expected");
    };
    assert_eq!(nova.downtime_ms, 800);
    assert!(nova.permit_post_copy && nova.permit_auto_converge);
    assert_eq!(
        launch.summary(),
        "live-migrate vm-00001 hv1 → hv2, nova, ≤250 MiB/s, downtime ≤ 800 ms, post-copy \
         only on force-complete, post-copy at timeout"
    );
}

#[test]
fn enter_on_a_refused_destination_only_flashes_its_reason() {
    let (mut app, request) = dialog_on_vm1();
    answer_all(&mut app, &request);
    press(&mut app, "jj");
    assert!(!app.handle_key(crossterm::event::KeyEvent::from(
        crossterm::event::KeyCode::Char('x')
    )));
    press(&mut app, "\n");
    assert!(app.take_actions().is_empty());
    assert!(app.launch.is_some());
    assert_eq!(
        app.flash.as_deref(),
        Some("hv3: destination has 380 MiB free, guest needs 1024 MiB")
    );
}

#[test]
fn numbers_in_the_dialog_take_digits_only_and_a_too_low_downtime_is_refused() {
    let (mut app, request) = dialog_on_vm1();
    answer_all(&mut app, &request);
    press(&mut app, "\tjjx");
    assert!(app.flash.as_deref().unwrap().contains("not a digit"));
    press(&mut app, "\u{8}\u{8}\u{8}\u{8}50\tj\n");
    assert!(app.take_actions().is_empty());
    assert!(app.flash.as_deref().unwrap().contains("below 100 ms"));
    press(&mut app, "\u{1b}");
    assert!(app.launch.is_none(), "esc closes the dialog");
}

#[test]
fn cold_is_shown_disabled_until_the_flag_says_it_exists() {
    let mut app = app_with_events(Vec::new());
    press(&mut app, "\tjc");
    assert!(app.take_actions().is_empty());
    assert!(app.launch.as_ref().unwrap().is_disabled());
    press(&mut app, "\n");
    assert_eq!(
        app.flash.as_deref(),
        Some(super::state::launch::COLD_NOT_AVAILABLE)
    );
    assert!(app.take_actions().is_empty());
    press(&mut app, "\u{1b}");

    app.cold_migration_available = true;
    press(&mut app, "c");
    let request = precheck_request(&mut app);
    assert_eq!(request.kind, MigrationKind::Cold);
    answer_all(&mut app, &request);
    // Options: shutdown timeout erased and left empty, which Enter refuses.
    press(&mut app, "j\t\u{8}\u{8}\n");
    assert!(app.take_actions().is_empty());
    assert!(app.flash.as_deref().unwrap().contains("shutdown timeout"));
    // 90 s, hard power-off allowed, the copy capped at 50 MiB/s.
    press(&mut app, "90j jx");
    assert!(app.flash.as_deref().unwrap().contains("not a digit"));
    press(&mut app, "50\n");
    let actions = app.take_actions();
    let [Action::LaunchColdMigration(cold)] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(cold.destination, hv("hv2"));
    assert!(!cold.destination_chosen_automatically);
    assert_eq!(cold.shutdown_timeout_seconds, 90);
    assert!(cold.hard_power_off_allowed);
    assert_eq!(cold.copy_bandwidth_mib_per_second, Some(50));
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .contains("cold-migrate vm-00001 hv1 → hv2"));
}

/// The migrations screen with a cold migration of `disk` from the lab replayed up to `lines`
/// lines of its recording (all of them: awaiting confirm).
fn cold(lines: usize) -> App {
    let mut app = app_with_events(cold_run_events(
        MigrationId(5),
        100,
        "lab-cold-disk-hv1-hv2.jsonl",
        lines,
    ));
    press(&mut app, "2");
    assert!(app.selected_listed().is_some());
    app
}

#[test]
fn c_and_r_ask_first_then_settle_an_awaiting_cold_migration() {
    let mut app = cold(usize::MAX);
    press(&mut app, "f");
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .contains("live migrations only"));
    press(&mut app, "a");
    assert!(
        app.flash
            .as_deref()
            .unwrap()
            .contains("R reverts it to hv1"),
        "{:?}",
        app.flash
    );
    press(&mut app, "C");
    assert_eq!(
        app.prompt,
        Some(OperatorPrompt::Cold {
            id: MigrationId(5),
            question: ColdQuestion::Confirm
        })
    );
    press(&mut app, "n");
    assert!(app.prompt.is_none());
    assert!(app.take_actions().is_empty(), "n sends nothing");
    press(&mut app, "Ry");
    assert_eq!(
        app.take_actions(),
        [Action::SettleCold {
            id: MigrationId(5),
            keep: false
        }]
    );
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .contains("sent revert to #5 disk"));
    // While it is being reverted, neither key asks again.
    app.on_migration_event(MigrationEvent {
        id: MigrationId(5),
        at: at(300),
        change: MigrationChange::Cold(ColdEvent::Settling { keep: false }),
    });
    press(&mut app, "C");
    assert!(app.prompt.is_none());
    assert!(app.flash.as_deref().unwrap().contains("being reverted"));
}

#[test]
fn a_aborts_a_cold_migration_still_copying_and_c_waits_for_awaiting() {
    let mut app = cold(7);
    press(&mut app, "C");
    assert!(app.flash.as_deref().unwrap().contains("still moving"));
    press(&mut app, "ay");
    assert_eq!(
        app.take_actions(),
        [Action::AbortCold { id: MigrationId(5) }]
    );
}

#[test]
fn a_cold_question_is_withdrawn_when_the_migration_ends() {
    let mut events = cold_run_events(
        MigrationId(3),
        100,
        "lab-cold-disk-started-during-copy.jsonl",
        usize::MAX,
    );
    let rest = events.split_off(6);
    let mut app = app_with_events(events);
    press(&mut app, "2a");
    assert!(app.prompt.is_some());
    for event in rest {
        app.on_migration_event(event);
    }
    assert!(app.prompt.is_none());
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .starts_with("question withdrawn"));
    press(&mut app, "y");
    assert!(app.take_actions().is_empty());
}

#[test]
fn confirm_and_revert_keys_refuse_a_live_migration() {
    let mut app = running(adaptive_run_events(MigrationId(3), 20));
    press(&mut app, "C");
    assert!(app.prompt.is_none());
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .contains("is a live migration"));
}

/// The migrations screen with one running migration selected.
fn running(events: Vec<MigrationEvent>) -> App {
    let mut app = app_with_events(events);
    press(&mut app, "2");
    assert_eq!(app.screen, Screen::Migrations);
    app
}

#[test]
fn a_then_y_yields_abort_and_n_sends_nothing() {
    let mut app = running(adaptive_run_events(MigrationId(3), 20));
    press(&mut app, "a");
    assert_eq!(
        app.prompt,
        Some(OperatorPrompt::ConfirmAbort { id: MigrationId(3) })
    );
    press(&mut app, "x");
    assert!(app.prompt.is_some(), "only y, n and esc answer");
    press(&mut app, "n");
    assert!(app.prompt.is_none());
    assert!(app.take_actions().is_empty());
    press(&mut app, "a\u{1b}");
    assert!(app.prompt.is_none());
    assert!(app.take_actions().is_empty());

    press(&mut app, "ay");
    assert_eq!(
        app.take_actions(),
        [Action::Operator {
            id: MigrationId(3),
            command: OperatorCommand::Abort
        }]
    );
    assert!(app.prompt.is_none());
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .starts_with("sent abort to #3 busy"));
}

#[test]
fn a_in_post_copy_is_refused_at_once_with_the_reason() {
    let mut app = running(post_copy_run_events(MigrationId(4)));
    assert!(app.selected_migration().unwrap().in_post_copy());
    press(&mut app, "a");
    assert!(app.prompt.is_none());
    assert!(app.take_actions().is_empty());
    let flash = app.flash.clone().unwrap();
    assert!(flash.starts_with("abort refused"), "{flash}");
    assert!(flash.contains("post-copy"), "{flash}");
    // Also from the detail.
    press(&mut app, "\na");
    assert!(app.prompt.is_none() && app.take_actions().is_empty());
    press(&mut app, "f");
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .contains("already in post-copy"));
}

#[test]
fn a_question_is_withdrawn_when_the_migration_enters_post_copy() {
    let events = post_copy_run_events(MigrationId(4));
    // Everything up to the operator's force-complete: still copying.
    let switch = events
        .iter()
        .position(|e| {
            matches!(
                e.change,
                MigrationChange::Engine(MigrationUpdate::OperatorAction { .. })
            )
        })
        .unwrap();
    let mut app = running(events[..switch].to_vec());
    press(&mut app, "a");
    assert!(app.prompt.is_some());
    for event in events[switch..].iter().cloned() {
        app.on_migration_event(event);
    }
    assert!(app.selected_migration().unwrap().in_post_copy());
    assert!(app.prompt.is_none(), "the abort question no longer holds");
    assert!(app.flash.as_deref().unwrap().contains("question withdrawn"));
    press(&mut app, "y");
    assert!(app.take_actions().is_empty());
}

#[test]
fn f_wording_says_post_copy_or_pause_from_the_plan() {
    let mut permitted = running(adaptive_run_events(MigrationId(3), 20));
    press(&mut permitted, "f");
    let prompt = permitted.prompt.clone().unwrap();
    assert_eq!(
        prompt,
        OperatorPrompt::ConfirmForceComplete {
            id: MigrationId(3),
            switches_to_post_copy: true
        }
    );
    let text = prompt
        .text(permitted.selected_migration().unwrap())
        .join(" ");
    assert!(text.contains("post-copy now"), "{text}");
    assert!(text.contains("cannot be aborted"), "{text}");
    assert!(text.contains("the VM is lost"), "{text}");
    press(&mut permitted, "y");
    assert_eq!(
        permitted.take_actions(),
        [Action::Operator {
            id: MigrationId(3),
            command: OperatorCommand::ForceComplete
        }]
    );

    let mut pausing = running(
        Replay {
            id: MigrationId(5),
            queued_at_seconds: 0,
            plan: hands_off_plan(false),
            trace: "lab-busy-512mib-pause.jsonl",
            samples: 10,
            command: None,
            outcome: None,
        }
        .events(),
    );
    press(&mut pausing, "f");
    let prompt = pausing.prompt.clone().unwrap();
    let text = prompt.text(pausing.selected_migration().unwrap()).join(" ");
    assert!(text.contains("Pause the VM on hv1"), "{text}");
    assert!(!text.contains("cannot be aborted"), "{text}");
}

#[test]
fn b_and_d_take_digits_only_and_send_the_number() {
    let mut app = running(adaptive_run_events(MigrationId(3), 20));
    press(&mut app, "b\n");
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .contains("whole number of MiB/s"));
    press(&mut app, "2x");
    assert!(app.flash.as_deref().unwrap().contains("'x' is not a digit"));
    assert_eq!(
        app.prompt,
        Some(OperatorPrompt::Bandwidth {
            id: MigrationId(3),
            typed: "2".into()
        })
    );
    press(&mut app, "\u{8}0\n");
    assert!(app.flash.as_deref().unwrap().contains("at least 1"));
    assert!(app.take_actions().is_empty());
    press(&mut app, "\u{8}250\n");
    assert_eq!(
        app.take_actions(),
        [Action::Operator {
            id: MigrationId(3),
            command: OperatorCommand::SetBandwidth {
                mib_per_second: 250
            }
        }]
    );

    press(&mut app, "d8-00\n");
    assert_eq!(
        app.take_actions(),
        [Action::Operator {
            id: MigrationId(3),
            command: OperatorCommand::SetMaxDowntime { downtime_ms: 800 }
        }]
    );
    press(&mut app, "d1234567890");
    assert!(app.flash.as_deref().unwrap().contains("at most 9 digits"));
    press(&mut app, "\u{1b}");
    assert!(app.prompt.is_none() && app.take_actions().is_empty());
}

#[test]
fn queued_and_finished_migrations_refuse_what_does_not_apply() {
    let mut plan = busy_plan(false);
    plan.instance_name = "web-1".into();
    let mut app = running(vec![MigrationEvent {
        id: MigrationId(9),
        at: at(0),
        change: MigrationChange::QueuedLive(Box::new(plan)),
    }]);
    press(&mut app, "f");
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .contains("has not started yet"));
    press(&mut app, "a");
    let prompt = app.prompt.clone().unwrap();
    assert!(prompt
        .title(app.selected_migration().unwrap())
        .contains("from the queue"));
    press(&mut app, "y");
    assert_eq!(
        app.take_actions(),
        [Action::Operator {
            id: MigrationId(9),
            command: OperatorCommand::Abort
        }]
    );
    app.on_migration_event(MigrationEvent {
        id: MigrationId(9),
        at: at(1),
        change: MigrationChange::Engine(MigrationUpdate::Finished(LiveOutcome::Cancelled {
            detail: "removed from the queue before it started".into(),
        })),
    });
    for key in ["a", "f", "b", "d"] {
        press(&mut app, key);
        assert!(app.prompt.is_none(), "{key}");
        assert!(
            app.flash
                .as_deref()
                .unwrap()
                .contains("was already cancelled"),
            "{key}"
        );
    }
    assert!(app.take_actions().is_empty());
}

#[test]
fn screens_and_esc_back_out_one_level_at_a_time() {
    let mut app = running(adaptive_run_events(MigrationId(3), 5));
    press(&mut app, "\n");
    assert!(app.migration_detail);
    press(&mut app, "\u{1b}");
    assert!(!app.migration_detail);
    assert_eq!(app.screen, Screen::Migrations);
    press(&mut app, "\u{1b}");
    assert_eq!(app.screen, Screen::Inventory);
    press(&mut app, "2\n1");
    assert_eq!(app.screen, Screen::Inventory);
    assert!(!app.migration_detail);
    press(&mut app, "?");
    assert_eq!(super::views::help::sections(&app)[0], KeyScreen::Inventory);
}

#[test]
fn the_selection_follows_a_migration_as_the_list_reorders() {
    let mut events = adaptive_run_events(MigrationId(1), 5);
    events.extend(
        Replay {
            id: MigrationId(2),
            queued_at_seconds: 10,
            plan: busy_plan(false),
            trace: "lab-busy-512mib-adaptive.jsonl",
            samples: 3,
            command: None,
            outcome: None,
        }
        .events(),
    );
    let mut app = running(events);
    press(&mut app, "j");
    assert_eq!(app.selected_migration().unwrap().id, MigrationId(2));
    // #1 finishes: it moves below #2, the selection stays on #2.
    app.on_migration_event(MigrationEvent {
        id: MigrationId(1),
        at: at(60),
        change: MigrationChange::Engine(MigrationUpdate::Finished(LiveOutcome::Failed {
            detail: "hv2: connection reset".into(),
        })),
    });
    assert_eq!(app.selected_migration().unwrap().id, MigrationId(2));
    assert_eq!(app.migration_cursor(), 0);
    assert_eq!(
        app.migrations.get(MigrationId(1)).unwrap().phase(),
        Some(MigrationPhase::Failed)
    );
}

/// Every key the footer offers is explained in the help: for each context, each key token
/// of the footer (j/k is j and k) is a token of some help entry.
#[test]
fn every_footer_key_is_in_the_help() {
    let table = KeyTable::default();
    let help_tokens: Vec<String> = KeyScreen::ALL
        .iter()
        .map(|&screen| table.screen(screen))
        .flat_map(|keys| {
            keys.bindings
                .iter()
                .flat_map(|b| b.keys.iter().map(KeyPress::to_string))
                .chain(
                    keys.typed
                        .iter()
                        .chain(EVERYWHERE)
                        .flat_map(|(key, _)| key.split_whitespace().map(str::to_string)),
                )
        })
        .map(|token| token.to_lowercase())
        .collect();
    let check = |app: &App, context: &str| {
        for key in footer_keys(app) {
            // "j/k" is two keys; "/" is the filter key itself.
            let tokens: Vec<&str> = if key.key == "/" {
                vec!["/"]
            } else {
                key.key.split('/').collect()
            };
            for token in tokens {
                assert!(
                    help_tokens.contains(&token.to_lowercase()),
                    "{context}: footer key {token:?} is not in the help"
                );
            }
        }
    };
    let (mut app, _) = dialog_on_vm1();
    check(&app, "launch dialog, destinations");
    press(&mut app, "\t");
    check(&app, "launch dialog, options");
    press(&mut app, "\u{1b}");
    check(&app, "instances pane");
    press(&mut app, "\t");
    check(&app, "hosts pane");

    let mut app = running(adaptive_run_events(MigrationId(3), 20));
    check(&app, "migrations list");
    press(&mut app, "\n");
    check(&app, "migration detail");
    press(&mut app, "a");
    check(&app, "confirmation");
    press(&mut app, "\u{1b}b");
    check(&app, "number prompt");
    press(&mut app, "\u{1b}?");
    check(&app, "help overlay");

    let mut app = cold(usize::MAX);
    check(&app, "cold migration awaiting confirm");
    let footer = footer_keys(&app);
    let enabled: Vec<&str> = footer
        .iter()
        .filter(|k| k.enabled)
        .map(|k| k.key.as_str())
        .collect();
    assert!(enabled.starts_with(&["C", "R"]), "{enabled:?}");
    press(&mut app, "C");
    check(&app, "cold confirmation");
}

/// The config's `[migration]` for the launch-dialog tests: Nova, 800 ms, 100 MiB/s, post-copy
/// permitted, force-complete at timeout, and a completion timeout the dialog does not show.
fn nova_config() -> crate::config::Config {
    let mut config = crate::config::Config::default();
    config.migration.policy = crate::config::PolicyName::Nova;
    config.migration.bandwidth_mib_per_second = 100;
    config.migration.nova.downtime_ms = 800;
    config.migration.nova.permit_post_copy = true;
    config.migration.nova.timeout_action = TimeoutAction::ForceComplete;
    config.migration.nova.completion_timeout_seconds_per_gib = 300;
    config
}

/// The dialog opens with the config's `[migration]` values, and what it launches is what it
/// showed, with the config's thresholds for the rest.
#[test]
fn the_launch_dialog_starts_from_the_configs_migration_table() {
    let mut app = app_with_events(Vec::new()).with_config(&nova_config(), KeyTable::default());
    press(&mut app, "\tjm");
    let request = precheck_request(&mut app);
    let dialog = app.launch.as_ref().unwrap();
    use super::state::launch::LaunchField;
    let shown: Vec<String> = LaunchField::LIVE
        .iter()
        .map(|&field| dialog.value_text(field))
        .collect();
    assert_eq!(
        shown,
        [
            "nova",
            "100",
            "800",
            "permitted",
            "off",
            "auto",
            "force-complete"
        ]
    );
    answer_all(&mut app, &request);
    press(&mut app, "\n");
    let actions = app.take_actions();
    let [Action::LaunchLiveMigration(launch)] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    let PolicyChoice::Nova(nova) = launch.policy_choice() else {
        panic!("nova expected");
    };
    assert_eq!(nova.downtime_ms, 800);
    assert_eq!(nova.completion_timeout_seconds_per_gib, 300, "the config's");
    assert_eq!(launch.live_options().bandwidth_mib_per_second, Some(100));
    assert!(launch.summary().contains("≤100 MiB/s, downtime ≤ 800 ms"));

    // Without a config file: the built-in defaults, as before.
    let (app, _) = dialog_on_vm1();
    let dialog = app.launch.as_ref().unwrap();
    assert_eq!(dialog.value_text(LaunchField::Policy), "adaptive");
    assert_eq!(dialog.value_text(LaunchField::MaxDowntime), "2000");
    assert_eq!(dialog.value_text(LaunchField::Bandwidth), "no limit");
}
