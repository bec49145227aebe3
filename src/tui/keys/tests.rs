//! The key table: key syntax, the config's remapping and its refusals, and the app obeying a
//! remapped key.

use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::config::{Config, KeyList};

fn press(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn overrides(screen: &str, entries: &[(&str, &[&str])]) -> KeyOverrides {
    let mut table = std::collections::BTreeMap::new();
    for (action, keys) in entries {
        table.insert(
            action.to_string(),
            KeyList::Many(keys.iter().map(|k| k.to_string()).collect()),
        );
    }
    KeyOverrides::from([(screen.to_string(), table)])
}

#[test]
fn keys_parse_and_print_as_the_footer_names_them() {
    for text in [
        "a",
        "A",
        "?",
        "/",
        "enter",
        "esc",
        "tab",
        "shift-tab",
        "space",
        "pgup",
        "f5",
        "ctrl-r",
        "alt-x",
        "↑",
    ] {
        let key = KeyPress::parse(text).unwrap();
        assert_eq!(KeyPress::parse(&key.to_string()).unwrap(), key, "{text}");
    }
    assert_eq!(KeyPress::parse("up").unwrap().to_string(), "↑");
    assert_eq!(
        KeyPress::parse("Enter").unwrap(),
        KeyPress::plain(KeyCode::Enter)
    );
    for bad in ["", "ctrl-", "ctrl-enter", "f13", "hyper-a", "ab"] {
        let error = KeyPress::parse(bad).unwrap_err();
        assert!(
            error.contains("is not a key") && error.contains("ctrl-"),
            "{error}"
        );
    }
}

#[test]
fn a_capital_matches_with_or_without_shift_and_ctrl_must_be_held() {
    let capital = KeyPress::char('C');
    assert!(capital.matches(&press(KeyCode::Char('C'))));
    assert!(capital.matches(&KeyEvent::new(KeyCode::Char('C'), KeyModifiers::SHIFT)));
    assert!(!capital.matches(&press(KeyCode::Char('c'))));
    let control = KeyPress::parse("ctrl-r").unwrap();
    assert!(control.matches(&KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL)));
    assert!(!control.matches(&press(KeyCode::Char('r'))));
    assert!(!KeyPress::char('r').matches(&KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL)));
}

#[test]
fn the_defaults_bind_no_key_twice_on_a_screen() {
    let table = KeyTable::default();
    for screen in KeyScreen::ALL {
        assert_eq!(
            double_binding(table.screen(screen)),
            None,
            "{}",
            screen.name()
        );
    }
    let inventory = KeyScreen::Inventory;
    assert_eq!(
        table.action(inventory, &press(KeyCode::Char('m'))),
        Some(KeyAction::LiveMigrate)
    );
    assert_eq!(
        table
            .footer_label(inventory, &[KeyAction::MoveDown, KeyAction::MoveUp])
            .unwrap(),
        "j/k"
    );
}

#[test]
fn the_config_remaps_an_action_on_one_screen() {
    let table = KeyTable::with_overrides(&overrides(
        "migrations",
        &[("abort", &["A"]), ("force_complete", &["F", "ctrl-f"])],
    ))
    .unwrap();
    let migrations = KeyScreen::Migrations;
    assert_eq!(
        table.action(migrations, &press(KeyCode::Char('A'))),
        Some(KeyAction::Abort)
    );
    assert_eq!(
        table.action(migrations, &press(KeyCode::Char('a'))),
        None,
        "a is free now"
    );
    assert_eq!(
        table.action(
            migrations,
            &KeyEvent::new(KeyCode::Char('f'), KeyModifiers::CONTROL)
        ),
        Some(KeyAction::ForceComplete)
    );
    assert_eq!(
        table.footer_label(migrations, &[KeyAction::Abort]).unwrap(),
        "A"
    );
    // Other screens keep their keys.
    assert_eq!(
        table.action(KeyScreen::Launch, &press(KeyCode::Esc)),
        Some(KeyAction::Close)
    );
    // `[]` unbinds: the footer drops the action.
    let unbound = KeyTable::with_overrides(&overrides("migrations", &[("recover", &[])])).unwrap();
    assert_eq!(
        unbound.footer_label(migrations, &[KeyAction::Recover]),
        None
    );
}

#[test]
fn the_config_is_refused_with_the_entry_and_what_was_expected() {
    let refused = |screen: &str, entries: &[(&str, &[&str])]| {
        KeyTable::with_overrides(&overrides(screen, entries)).unwrap_err()
    };
    let error = refused("migrations", &[("abortt", &["A"])]);
    assert!(
        error.contains("keys.migrations.abortt")
            && error.contains("expected one of")
            && error.contains("force_complete"),
        "{error}"
    );
    let error = refused("migration", &[("abort", &["A"])]);
    assert!(
        error.contains("[keys.migration]") && error.contains("inventory, launch, migrations"),
        "{error}"
    );
    let error = refused("migrations", &[("abort", &["ctrl-enter"])]);
    assert!(
        error.contains("keys.migrations.abort") && error.contains("\"ctrl-enter\" is not a key"),
        "{error}"
    );
    let error = refused("migrations", &[("abort", &["f"])]);
    assert!(
        error.contains("[keys.migrations]")
            && error.contains("\"f\" is bound to both")
            && error.contains("abort")
            && error.contains("force_complete"),
        "{error}"
    );
    let error = refused("inventory", &[("quit", &["ctrl-c"])]);
    assert!(error.contains("ctrl-c always quits"), "{error}");
    // Two remapped actions swapping their keys are fine.
    KeyTable::with_overrides(&overrides(
        "migrations",
        &[("abort", &["f"]), ("force_complete", &["a"])],
    ))
    .unwrap();
}

/// tests/invalid_configs/keys_*.toml: each parses as a config, and its `[keys]` is refused
/// with an error naming the file and containing every `# expect:` line.
#[test]
fn every_invalid_keys_config_gives_its_own_error() {
    let checked = crate::config::check_invalid_configs(true, |path| {
        let config = Config::load(path).unwrap();
        KeyTable::from_config(&config).unwrap_err().to_string()
    });
    assert!(checked >= 4, "only {checked} invalid keys configs");
}

#[test]
fn the_app_dispatches_through_a_remapped_table() {
    let mut app = crate::tui::app::App::new(
        crate::inventory::sample::inventory(2, 2, std::time::SystemTime::UNIX_EPOCH),
        std::time::SystemTime::UNIX_EPOCH,
    );
    app.keys = KeyTable::with_overrides(&overrides(
        "inventory",
        &[("quit", &["Q"]), ("show_migrations", &["M"])],
    ))
    .unwrap();
    app.handle_key(press(KeyCode::Char('q')));
    assert!(!app.quit, "q is no longer quit");
    app.handle_key(press(KeyCode::Char('M')));
    assert_eq!(app.screen, crate::tui::app::Screen::Migrations);
    app.handle_key(press(KeyCode::Char('1')));
    app.handle_key(press(KeyCode::Char('Q')));
    assert!(app.quit);
}

#[test]
fn the_example_config_keys_are_accepted() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/config.example.toml"
    ));
    let config = Config::load(path).unwrap();
    assert!(!config.keys.is_empty(), "the example shows [keys]");
    assert_eq!(KeyTable::from_config(&config).unwrap(), KeyTable::default());
}
