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

/// The first cell of `text` on the row that also holds `row_with`.
fn cell_of<'a>(
    buffer: &'a ratatui::buffer::Buffer,
    row_with: &str,
    text: &str,
) -> &'a ratatui::buffer::Cell {
    for y in 0..buffer.area.height {
        let cells: Vec<String> = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol().to_string())
            .collect();
        let line = cells.concat();
        if line.contains(row_with) && line.contains(text) {
            let x = (0..cells.len())
                .find(|&x| cells[x..].concat().starts_with(text))
                .unwrap();
            return &buffer[(x as u16, y)];
        }
    }
    panic!("no row with {row_with:?} and {text:?}");
}

/// The cursor row reads in the highlight's colours, whatever its cells' own: a paused
/// instance's state under the cursor is drawn in the highlight's foreground on its
/// background, in every theme of themes/ and in 16 colours. An error under the cursor (hv2
/// unreachable) keeps its colour on the theme's background, never on the highlight's.
#[test]
fn the_highlight_wins_over_a_cells_own_colour_in_every_theme() {
    use crate::tui::theme::{load, ColorSupport};
    let mut hosts = lab_app();
    press(&mut hosts, "jj");
    assert_eq!(hosts.selected_host().unwrap().name.as_str(), "hv2");
    let mut instances = lab_app();
    press(&mut instances, "\tssg");
    let paused = instances.selected_instance().unwrap().clone();
    assert_eq!(
        paused.state,
        crate::model::domain::DomainRunState::Paused,
        "troubles first"
    );
    for name in ["dark", "light", "high-contrast"] {
        let (theme, error) = load(Some(name));
        assert!(error.is_none(), "{name}: {error:?}");
        for theme in [theme, theme.for_terminal(ColorSupport::Ansi16)] {
            let draw = |app: &App| {
                let mut terminal = Terminal::new(TestBackend::new(120, 32)).unwrap();
                terminal
                    .draw(|frame| super::draw(frame, app, &theme))
                    .unwrap();
                terminal.backend().buffer().clone()
            };
            let (fg, bg) = (theme.selected.fg.unwrap(), theme.selected.bg.unwrap());
            assert_ne!(fg, bg, "{name}: the highlight is readable");
            let buffer = draw(&instances);
            let cell = cell_of(&buffer, &paused.name, "paused");
            assert_eq!(
                (cell.fg, cell.bg),
                (fg, bg),
                "{name}: 'paused' under the cursor"
            );
            let buffer = draw(&hosts);
            let cell = cell_of(&buffer, "hv2", "unreachable");
            assert_ne!(
                cell.fg, cell.bg,
                "{name}: 'unreachable' under the cursor is readable"
            );
            if theme.state_down == theme.error {
                assert_ne!(cell.bg, bg, "{name}: an error is cut out of the highlight");
            }
        }
    }
}

/// hv1's second domain as Nova defines its servers: libvirt calls it `instance-…`, Nova `web-1`.
fn app_with_a_nova_server() -> App {
    let mut app = lab_app();
    let instance = &mut app.inventory.hosts[0].instances[1];
    instance.name = "instance-00000001".into();
    instance.managed_by = Some(crate::model::domain::ManagedBy::Nova(
        crate::model::domain::NovaOwnership {
            server_id: instance.uuid.clone(),
            server_name: Some("web-1".into()),
            project_name: Some("demo".into()),
            project_id: Some("c2b4e6a8f0d24c6e8a0b2d4f6a8c0e1f".into()),
            flavor_name: Some("m1.small".into()),
            nova_version: Some("26.2.2".into()),
        },
    ));
    app
}

#[test]
fn a_nova_managed_instance_is_marked_in_the_list() {
    insta::assert_snapshot!(render(&app_with_a_nova_server(), 80, 24));
}

#[test]
fn details_of_a_nova_managed_instance_say_nova_moves_it() {
    let mut app = app_with_a_nova_server();
    press(&mut app, "\t");
    let nova_server =
        crate::tui::state::instances::InstanceKey::of(&app.inventory.hosts[0].instances[1]);
    assert!(app.select_instance(&nova_server));
    press(&mut app, "\n");
    insta::assert_snapshot!(render(&app, 80, 24));
}
