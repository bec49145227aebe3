//! Snapshot tests of every view and overlay, drawn on ratatui's TestBackend from app state fed
//! with keys and inventory events, as gitui tests its whole app.

use std::time::{Duration, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::inventory::{sample, InventoryEvent};
use crate::model::HostName;
use crate::tui::app::App;
use crate::tui::theme::Theme;

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
}

/// Three hosts of six instances; hv2 went unreachable 95 s before "now".
fn lab_app() -> App {
    let mut inventory = sample::inventory(3, 6, at(0));
    inventory.apply(InventoryEvent::Unreachable {
        host: HostName::parse("hv2").unwrap(),
        error: "connecting to qemu+ssh://root@hv2/system: Cannot recv data: ssh: connect to \
                host 10.77.0.12 port 22: Connection refused"
            .into(),
        at: at(25),
        retry_in: Duration::from_secs(4),
    });
    App::new(inventory, at(120))
}

fn press(app: &mut App, keys: &str) {
    for c in keys.chars() {
        let code = match c {
            '\t' => KeyCode::Tab,
            '\n' => KeyCode::Enter,
            '\u{1b}' => KeyCode::Esc,
            c => KeyCode::Char(c),
        };
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
    }
}

fn render(app: &App, width: u16, height: u16) -> TestBackend {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| super::draw(frame, app, &Theme::default()))
        .unwrap();
    terminal.backend().clone()
}

#[test]
fn main_screen_80x24() {
    insta::assert_snapshot!(render(&lab_app(), 80, 24));
}

#[test]
fn main_screen_120x32() {
    insta::assert_snapshot!(render(&lab_app(), 120, 32));
}

#[test]
fn unreachable_host_selected_shows_its_last_known_instances() {
    let mut app = lab_app();
    press(&mut app, "jj");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn instances_pane_focused_and_sorted_by_memory() {
    let mut app = lab_app();
    // The selection (vm-00000, 512M) follows the sort to the bottom half; jjj moves on
    // from there, so the list is scrolled.
    press(&mut app, "\tsssjjj");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn filter_line_while_typing_a_regex() {
    let mut app = lab_app();
    press(&mut app, "/~vm-0000[2-5]");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn filter_line_with_a_bad_regex() {
    let mut app = lab_app();
    press(&mut app, "/~vm-(");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn help_overlay_80x24() {
    let mut app = lab_app();
    press(&mut app, "?");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn details_of_an_unreachable_host() {
    let mut app = lab_app();
    press(&mut app, "jj\n");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn details_of_a_reachable_host() {
    let mut app = lab_app();
    press(&mut app, "j\n");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn details_of_an_instance() {
    let mut app = lab_app();
    press(&mut app, "\tj\n");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn details_of_all_hosts() {
    let mut app = lab_app();
    press(&mut app, "\n");
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn first_screen_while_connecting() {
    let inventory = crate::inventory::Inventory::new(
        &crate::config::Config {
            hosts: sample::inventory(2, 0, at(0))
                .hosts
                .iter()
                .map(|h| crate::config::HostConfig {
                    name: h.name.clone(),
                    uri: h.uri.clone(),
                    group: None,
                    tags: vec![],
                })
                .collect(),
            ..Default::default()
        },
        at(0),
    );
    insta::assert_snapshot!(render(&App::new(inventory, at(3)), 80, 24));
}

#[test]
fn notice_in_the_status_bar() {
    let mut app = lab_app();
    app.notice = Some("theme t.toml: line 3, key selected.fg: ...; using the default theme".into());
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn tiny_terminal_does_not_panic() {
    let mut app = lab_app();
    for (width, height) in [(1, 1), (20, 5), (40, 10)] {
        render(&app, width, height);
        press(&mut app, "?");
        render(&app, width, height);
        press(&mut app, "\u{1b}j\n");
        render(&app, width, height);
        press(&mut app, "\u{1b}");
    }
}
