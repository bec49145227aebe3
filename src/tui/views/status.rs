//! The status bar (last refresh, unreachable hosts, migrations, notices) and the footer of
//! keys that work in the current context.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::inventory::HostState;
use crate::model::migration::MigrationKind;
use crate::tui::app::{App, Pane, Screen};
use crate::tui::keys::{KeyAction, KeyScreen};
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
            inventory.all_hosts().count(),
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
        let down: Vec<String> = inventory
            .hosts
            .iter()
            .filter(|h| h.state == HostState::Unreachable)
            .map(|h| h.name.to_string())
            .chain(
                inventory
                    .unreadable_clouds()
                    .map(|(cloud, _)| format!("cloud {cloud}")),
            )
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FooterKey {
    /// As the key table names it: "j/k" for two actions, "0-9" for typed digits.
    pub key: String,
    pub what: &'static str,
    pub enabled: bool,
}

/// Builds one context's footer from the key table: each entry names the actions, and the
/// table gives their keys and the word; an action the config unbound drops out.
struct Footer<'a> {
    app: &'a App,
    screen: KeyScreen,
    keys: Vec<FooterKey>,
}

impl<'a> Footer<'a> {
    fn new(app: &'a App) -> Footer<'a> {
        Footer {
            app,
            screen: app.key_screen(),
            keys: Vec::new(),
        }
    }

    /// The actions under the table's word for the first of them.
    fn add(&mut self, actions: &[KeyAction]) -> &mut Self {
        let word = actions
            .first()
            .and_then(|&first| self.app.keys.binding(self.screen, first))
            .map_or("", |b| b.footer);
        self.add_as(actions, word, true)
    }

    fn add_as(&mut self, actions: &[KeyAction], what: &'static str, enabled: bool) -> &mut Self {
        if let Some(key) = self.app.keys.footer_label(self.screen, actions) {
            self.keys.push(FooterKey { key, what, enabled });
        }
        self
    }

    fn add_if(&mut self, action: KeyAction, enabled: bool) -> &mut Self {
        let word = self
            .app
            .keys
            .binding(self.screen, action)
            .map_or("", |b| b.footer);
        self.add_as(&[action], word, enabled)
    }

    /// A key that is typed, not an action of the table (digits, the filter's `~`).
    fn typed(&mut self, key: &str, what: &'static str) -> &mut Self {
        self.keys.push(FooterKey {
            key: key.to_string(),
            what,
            enabled: true,
        });
        self
    }

    fn done(&mut self) -> Vec<FooterKey> {
        std::mem::take(&mut self.keys)
    }
}

/// The keys of the current context, most useful first: when the footer is too narrow the
/// tail is dropped, except the help key, which is always last and always shown (the help
/// lists all).
pub fn footer_keys(app: &App) -> Vec<FooterKey> {
    use KeyAction::*;
    let mut footer = Footer::new(app);
    match footer.screen {
        KeyScreen::Filter => {
            return footer
                .add(&[Apply])
                .add(&[Clear])
                .typed("~re", "regex")
                .typed("ctrl-c", "quit")
                .done()
        }
        KeyScreen::Help => {
            return footer
                .add(&[Close])
                .add(&[ScrollDown, ScrollUp])
                .add(&[Quit])
                .done()
        }
        KeyScreen::Details => return footer.add(&[Close]).add(&[Quit]).done(),
        KeyScreen::Prompt => {
            let confirmation = app.prompt.as_ref().is_some_and(|p| p.is_confirmation());
            return if confirmation {
                footer
                    .add(&[Yes])
                    .add(&[No])
                    .add_as(&[Cancel], "no", true)
                    .done()
            } else {
                footer
                    .typed("0-9", "digits")
                    .add(&[Send])
                    .add(&[Cancel])
                    .done()
            };
        }
        KeyScreen::Launch => {
            let Some(dialog) = &app.launch else {
                return Vec::new();
            };
            if dialog.is_disabled() {
                return footer.add_as(&[Close], "close", true).add(&[Help]).done();
            }
            footer.add(&[Launch]);
            if dialog.focus == DialogFocus::Options {
                footer.add(&[PreviousValue, NextValue]).typed("0-9", "type");
            }
            return footer
                .add(&[SwitchFocus])
                .add(&[MoveDown, MoveUp])
                .add(&[Close])
                .add(&[Help])
                .done();
        }
        KeyScreen::Migrations => {
            let selected = app.selected_listed();
            let allowed =
                |key: OperatorKey| selected.is_some_and(|m| prompt_for_listed(key, m).is_ok());
            let commands: &[OperatorKey] = match selected {
                Some(Listed::Nova(nova)) if nova.kind == MigrationKind::Cold => {
                    &[OperatorKey::Confirm, OperatorKey::Revert]
                }
                Some(Listed::Nova(_)) => &[OperatorKey::Abort, OperatorKey::ForceComplete],
                Some(Listed::Cold(_)) => &[
                    OperatorKey::Confirm,
                    OperatorKey::Revert,
                    OperatorKey::Abort,
                ],
                _ => &[
                    OperatorKey::Abort,
                    OperatorKey::ForceComplete,
                    OperatorKey::Bandwidth,
                    OperatorKey::MaxDowntime,
                ],
            };
            for &command in commands {
                footer.add_if(command.action(), allowed(command));
            }
            // r shows only where it acts: a broken post-copy is rare, and loud in the row.
            if allowed(OperatorKey::Recover) {
                footer.add(&[Recover]);
            }
            if !app.migration_detail {
                footer.add(&[Open]);
            }
            footer.add(&[Back]);
            if !app.migration_detail {
                footer.add(&[MoveDown, MoveUp]);
            }
            footer.add(&[ShowInventory]).add(&[Quit]);
        }
        // Arrow keys move too, so j/k is the first to go on a narrow screen.
        KeyScreen::Inventory => match app.focus {
            Pane::Hosts => {
                footer
                    .add(&[SwitchPane])
                    .add(&[Details])
                    .add(&[ShowMigrations])
                    .add(&[KeyAction::Filter])
                    .add(&[Sort])
                    .add(&[Quit])
                    .add(&[MoveDown, MoveUp]);
            }
            Pane::Instances => {
                footer
                    .add(&[LiveMigrate])
                    .add_if(ColdMigrate, app.cold_migration_available)
                    .add(&[Details])
                    .add(&[ShowMigrations])
                    .add(&[SwitchPane])
                    .add(&[KeyAction::Filter])
                    .add(&[Sort, ReverseSort])
                    .add(&[Back])
                    .add(&[MoveDown, MoveUp])
                    .add(&[Quit]);
            }
        },
    }
    footer.add(&[Help]);
    footer.done()
}

/// The help key's label, which the footer keeps in view whatever its width.
fn help_label(app: &App) -> Option<String> {
    app.keys.footer_label(app.key_screen(), &[KeyAction::Help])
}

fn key_width(key: &FooterKey) -> usize {
    // " <key> what"
    key.key.chars().count() + key.what.chars().count() + 4
}

pub fn draw_footer(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut keys = footer_keys(app);
    // The help key keeps its place at the end whatever the width; contexts without it (the
    // filter line, overlays) just drop their tail.
    let help = help_label(app);
    let reserved = keys.pop_if(|k| Some(&k.key) == help.as_ref());
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
