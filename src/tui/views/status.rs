//! The status bar (last refresh, unreachable hosts, migrations, notices) and the footer of
//! keys that work in the current context.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::inventory::HostState;
use crate::tui::app::{App, Overlay, Pane, Screen};
use crate::tui::state::launch::DialogFocus;
use crate::tui::state::migrations::Listed;
use crate::tui::state::prompt::{prompt_for_listed, OperatorKey};
use crate::tui::theme::Theme;

use super::age;

pub fn draw_status(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let inventory = &app.inventory;
    let refreshed = inventory
        .last_refresh()
        .map_or("never".to_string(), |t| format!("{} ago", age(app.now, t)));
    let store = &app.migrations;
    let mut spans = vec![Span::raw(match app.screen {
        Screen::Inventory => format!(
            " refreshed {refreshed} │ {} hosts │ {} instances │ {} migrating ",
            inventory.hosts.len(),
            inventory.instance_count(),
            inventory.migrations_in_flight()
        ),
        Screen::Migrations => format!(
            " {} running │ {} queued │ {}{} recent │ refreshed {refreshed} ",
            store.running_count(),
            store.queued_count(),
            match store.awaiting_confirm_count() {
                0 => String::new(),
                awaiting => format!("{awaiting} awaiting confirm │ "),
            },
            store.finished_count()
        ),
    })];
    // The answer to the last key (`app.flash`) is not here: it needs more than what is left
    // of this line, so it shows in a box of its own (`views::draw_flash`).
    if let Some(notice) = &app.notice {
        spans.push(Span::styled(format!("│ {notice} "), theme.error));
    } else {
        let down: Vec<&str> = inventory
            .hosts
            .iter()
            .filter(|h| h.state == HostState::Unreachable)
            .map(|h| h.name.as_str())
            .collect();
        if !down.is_empty() {
            spans.push(Span::styled(
                format!("│ unreachable: {} ", down.join(", ")),
                theme.error,
            ));
        }
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(theme.status_bar),
        area,
    );
}

/// One key of the footer. `enabled` is false for a key that would only say why it cannot
/// act (cold migration while unavailable, abort on a finished migration): shown greyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FooterKey {
    pub key: &'static str,
    pub what: &'static str,
    pub enabled: bool,
}

const fn on(key: &'static str, what: &'static str) -> FooterKey {
    FooterKey {
        key,
        what,
        enabled: true,
    }
}

/// The keys of the current context, most useful first: when the footer is too narrow the
/// tail is dropped, except `?`, which is always last and always shown (the help lists all).
pub fn footer_keys(app: &App) -> Vec<FooterKey> {
    if app.filter.editing {
        return vec![
            on("enter", "apply"),
            on("esc", "clear"),
            on("~re", "regex"),
            on("ctrl-c", "quit"),
        ];
    }
    match app.overlay {
        Some(Overlay::Help) => {
            return vec![on("esc", "close"), on("j/k", "scroll"), on("q", "quit")]
        }
        Some(Overlay::Details) => return vec![on("esc", "close"), on("q", "quit")],
        None => {}
    }
    if let Some(prompt) = &app.prompt {
        return if prompt.is_confirmation() {
            vec![on("y", "yes"), on("n", "no"), on("esc", "no")]
        } else {
            vec![
                on("0-9", "digits"),
                on("enter", "send"),
                on("esc", "cancel"),
            ]
        };
    }
    if let Some(dialog) = &app.launch {
        if dialog.is_disabled() {
            return vec![on("esc", "close"), on("?", "help")];
        }
        let mut keys = vec![on("enter", "launch")];
        if dialog.focus == DialogFocus::Options {
            keys.extend([on("←/→", "change"), on("0-9", "type")]);
        }
        keys.extend([
            on("tab", "destinations/options"),
            on("j/k", "move"),
            on("esc", "cancel"),
            on("?", "help"),
        ]);
        return keys;
    }
    let mut keys = match (app.screen, app.focus) {
        (Screen::Migrations, _) => {
            let selected = app.selected_listed();
            let allowed =
                |key: OperatorKey| selected.is_some_and(|m| prompt_for_listed(key, m).is_ok());
            let key =
                |operator_key: OperatorKey, key: &'static str, what: &'static str| FooterKey {
                    enabled: allowed(operator_key),
                    ..on(key, what)
                };
            let mut keys = match selected {
                Some(Listed::Cold(_)) => vec![
                    key(OperatorKey::Confirm, "C", "confirm"),
                    key(OperatorKey::Revert, "R", "revert"),
                    key(OperatorKey::Abort, "a", "abort"),
                ],
                _ => vec![
                    key(OperatorKey::Abort, "a", "abort"),
                    key(OperatorKey::ForceComplete, "f", "force"),
                    key(OperatorKey::Bandwidth, "b", "bandwidth"),
                    key(OperatorKey::MaxDowntime, "d", "downtime"),
                ],
            };
            // r shows only where it acts: a broken post-copy is rare, and loud in the row.
            if allowed(OperatorKey::Recover) {
                keys.push(key(OperatorKey::Recover, "r", "recover"));
            }
            if !app.migration_detail {
                keys.push(on("enter", "open"));
            }
            keys.extend([on("esc", "back"), on("j/k", "move"), on("1", "inventory")]);
            if app.migration_detail {
                keys.retain(|k| k.key != "j/k");
            }
            keys.push(on("q", "quit"));
            keys
        }
        // Arrow keys move too, so j/k is the first to go on a narrow screen.
        (Screen::Inventory, Pane::Hosts) => vec![
            on("tab", "pane"),
            on("enter", "details"),
            on("2", "migrations"),
            on("/", "filter"),
            on("s", "sort"),
            on("q", "quit"),
            on("j/k", "move"),
        ],
        (Screen::Inventory, Pane::Instances) => vec![
            on("m", "migrate"),
            FooterKey {
                enabled: app.cold_migration_available,
                ..on("c", "cold")
            },
            on("enter", "details"),
            on("2", "migrations"),
            on("tab", "pane"),
            on("/", "filter"),
            on("s/S", "sort"),
            on("esc", "back"),
            on("j/k", "move"),
            on("q", "quit"),
        ],
    };
    keys.push(on("?", "help"));
    keys
}

fn key_width(key: &FooterKey) -> usize {
    // " <key> what"
    key.key.chars().count() + key.what.chars().count() + 4
}

pub fn draw_footer(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut keys = footer_keys(app);
    // `?` keeps its place at the end whatever the width; contexts without it (the filter
    // line, overlays) just drop their tail.
    let reserved = keys.pop_if(|k| k.key == "?");
    let mut room = (area.width as usize).saturating_sub(reserved.as_ref().map_or(0, key_width));
    let mut shown: Vec<FooterKey> = Vec::new();
    for key in keys {
        if key_width(&key) > room {
            break;
        }
        room -= key_width(&key);
        shown.push(key);
    }
    shown.extend(reserved);
    let mut spans = Vec::new();
    for key in shown {
        let (key_style, text_style) = if key.enabled {
            (theme.footer_key, theme.footer_text)
        } else {
            (theme.disabled, theme.disabled)
        };
        spans.push(Span::styled(format!(" <{}>", key.key), key_style));
        spans.push(Span::styled(format!(" {}", key.what), text_style));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
