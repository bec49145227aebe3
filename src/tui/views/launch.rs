//! The launch dialog: destinations with free memory, CPUs and precheck verdict (refused ones
//! greyed out with their reason), an `auto` entry, the options, and the line that says what
//! Enter will do.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table};
use ratatui::Frame;

use crate::model::migration::MigrationKind;
use crate::tui::app::App;
use crate::tui::keys::{KeyAction, KeyScreen, KeyTable};
use crate::tui::state::launch::{
    Candidate, DestinationCheck, DialogFocus, LaunchDialog, COLD_NOT_AVAILABLE,
};
use crate::tui::theme::Theme;

use super::{centred, human_bytes, on_row, scroll_offset, wrap_words};

/// The summary says everything that will happen; it wraps onto up to this many rows.
const SUMMARY_ROWS_MAX: usize = 4;
/// Widest the dialog gets: enough for a precheck reason without wrapping the table.
const DIALOG_WIDTH: u16 = 78;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, dialog: &LaunchDialog, theme: &Theme) {
    let banner_rows = u16::from(dialog.is_disabled());
    let summary_width = DIALOG_WIDTH.min(area.width).saturating_sub(4) as usize;
    let (text, summary_style) = match dialog.summary(&app.inventory) {
        Ok(summary) => (format!("→ {summary}"), theme.base),
        Err(reason) => (format!("cannot launch: {reason}"), theme.warning),
    };
    let mut summary_rows = wrap_words(&text, summary_width);
    summary_rows.truncate(SUMMARY_ROWS_MAX);
    // Header, blank, options, blank, summary, flash line, borders.
    let fixed_rows =
        1 + 1 + dialog.fields().len() as u16 + 1 + summary_rows.len() as u16 + 1 + 2 + banner_rows;
    let destination_rows_wanted = dialog.candidates.len() as u16 + 1;
    let area = centred(area, DIALOG_WIDTH, fixed_rows + destination_rows_wanted);
    let destination_rows = area
        .height
        .saturating_sub(fixed_rows)
        .min(destination_rows_wanted);
    let verb = match dialog.kind {
        MigrationKind::Live => "Live-migrate",
        MigrationKind::Cold => "Cold-migrate",
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border_focused)
        .title(Span::styled(
            format!(
                " {verb} {} from {} · {} · {} vCPU ",
                dialog.instance_name,
                dialog.instance.host,
                human_bytes(dialog.instance_memory_bytes),
                dialog.instance_vcpus
            ),
            theme.title,
        ));
    frame.render_widget(Clear, area);
    let inner = block.inner(area);
    frame.render_widget(block.style(theme.base), area);
    let [banner_area, destinations_area, _, options_area, _, summary_area, flash_area] =
        Layout::vertical([
            Constraint::Length(banner_rows),
            Constraint::Length(destination_rows + 1),
            Constraint::Length(1),
            Constraint::Length(dialog.fields().len() as u16),
            Constraint::Length(1),
            Constraint::Length(summary_rows.len() as u16),
            Constraint::Length(1),
        ])
        .areas(inner);
    if dialog.is_disabled() {
        frame.render_widget(
            Paragraph::new(Span::styled(
                format!(" {COLD_NOT_AVAILABLE}"),
                theme.warning,
            )),
            banner_area,
        );
    }
    draw_destinations(frame, destinations_area, app, dialog, theme);
    draw_options(frame, options_area, dialog, &app.keys, theme);

    draw_summary_and_keys(
        frame,
        [summary_area, flash_area],
        (summary_rows, summary_style),
        app,
        keys_line(&app.keys, dialog),
        theme,
    );
}

/// The bottom of a launch dialog: what Enter will do, wrapped, then the answer to the last
/// key or else the dialog's keys.
pub(super) fn draw_summary_and_keys(
    frame: &mut Frame,
    [summary_area, keys_area]: [Rect; 2],
    (summary_rows, summary_style): (Vec<String>, Style),
    app: &App,
    keys_text: String,
    theme: &Theme,
) {
    let summary: Vec<Line> = summary_rows
        .into_iter()
        .map(|row| Line::from(Span::styled(format!(" {row}"), summary_style)))
        .collect();
    frame.render_widget(Paragraph::new(summary), summary_area);
    let last_line = match &app.flash {
        Some(flash) => Line::from(Span::styled(format!(" {flash}"), theme.warning)),
        None => Line::from(Span::styled(keys_text, theme.footer_text)),
    };
    frame.render_widget(Paragraph::new(last_line), keys_area);
}

fn draw_destinations(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    dialog: &LaunchDialog,
    theme: &Theme,
) {
    let focused = dialog.focus == DialogFocus::Destinations;
    let rows_on_screen = area.height.saturating_sub(1) as usize;
    let offset = scroll_offset(dialog.destination_cursor, rows_on_screen);
    let marker = |index: usize| {
        if index == dialog.destination_cursor && !focused {
            "›"
        } else {
            ""
        }
    };
    let (auto_text, auto_style) = match dialog.auto_destination(&app.inventory) {
        Ok(candidate) => (
            format!("→ {}, most free memory among passing", candidate.host),
            theme.success,
        ),
        Err(_) if dialog.is_disabled() => ("-".to_string(), theme.disabled),
        Err(_) if !dialog.still_checking().is_empty() => (
            "checking… (picks once every verdict is in)".to_string(),
            theme.base,
        ),
        Err(reason) => (reason, theme.disabled),
    };
    let highlight_of =
        |row: usize| (focused && row == dialog.destination_cursor).then_some(theme.selected);
    let auto_row = Row::new(vec![
        Cell::from(marker(0)),
        Cell::from("auto"),
        Cell::from(""),
        Cell::from(""),
        Cell::from(auto_text).style(on_row(auto_style, highlight_of(0), theme)),
    ]);
    let rows = std::iter::once(auto_row)
        .chain(
            dialog
                .candidates
                .iter()
                .enumerate()
                .map(|(index, candidate)| {
                    let highlight = highlight_of(index + 1);
                    let in_place = candidate.host == dialog.instance.host;
                    candidate_row(
                        app,
                        candidate,
                        in_place,
                        marker(index + 1),
                        highlight,
                        theme,
                    )
                }),
        )
        .enumerate()
        .skip(offset)
        .take(rows_on_screen)
        .map(|(index, row)| match highlight_of(index) {
            Some(highlight) => row.style(highlight),
            None => row,
        });
    let header = Row::new(["", "DESTINATION", "FREE", "CPUS", "PRECHECK"]).style(theme.header);
    let table = Table::new(
        rows,
        [
            Constraint::Length(1),
            Constraint::Length(14),
            Constraint::Length(6),
            Constraint::Length(4),
            Constraint::Fill(1),
        ],
    )
    .header(header);
    frame.render_widget(table, area);
}

fn candidate_row<'a>(
    app: &App,
    candidate: &'a Candidate,
    // The guest's own host, listed for a resize in place.
    in_place: bool,
    marker: &'static str,
    highlight: Option<Style>,
    theme: &Theme,
) -> Row<'a> {
    let facts = app
        .inventory
        .host(&candidate.host)
        .and_then(|h| h.facts.as_ref());
    let free = facts.map_or("-".to_string(), |f| human_bytes(f.memory_free_bytes));
    let cpus = facts.map_or("-".to_string(), |f| f.cpu_count.to_string());
    let (verdict, verdict_style, row_style): (String, Style, Style) = match &candidate.check {
        DestinationCheck::Checking => ("checking…".to_string(), theme.base, theme.base),
        DestinationCheck::NotChecked => ("-".to_string(), theme.disabled, theme.disabled),
        check => match check.refusal() {
            // Greyed out like virt-manager's refused hosts, with the reason in full.
            Some(reason) => (reason, theme.disabled, theme.disabled),
            None => match check.warnings().first() {
                Some(warning) => (
                    format!("pass, warning: {warning}"),
                    theme.warning,
                    theme.base,
                ),
                None => ("pass".to_string(), theme.success, theme.base),
            },
        },
    };
    Row::new(vec![
        Cell::from(marker),
        Cell::from(if in_place {
            format!("{} (in place)", candidate.host)
        } else {
            candidate.host.to_string()
        }),
        Cell::from(free),
        Cell::from(cpus),
        Cell::from(verdict).style(on_row(verdict_style, highlight, theme)),
    ])
    .style(on_row(row_style, highlight, theme))
}

/// The dialog's own line of keys, named as the key table binds them.
fn keys_line(keys: &KeyTable, dialog: &LaunchDialog) -> String {
    let key = |action: KeyAction| {
        keys.label_joined(KeyScreen::Launch, &[action], "")
            .unwrap_or_else(|| "(unbound)".to_string())
    };
    let (launch, switch, close) = (
        key(KeyAction::Launch),
        key(KeyAction::SwitchFocus),
        key(KeyAction::Close),
    );
    match dialog.focus {
        _ if dialog.is_disabled() => format!(" {close} close"),
        DialogFocus::Destinations => {
            format!(" {launch} launch · {switch} options · {close} cancel")
        }
        DialogFocus::Options => format!(
            " {} change · 0-9 type · {launch} launch · {switch} destinations",
            change_keys(keys)
        ),
    }
}

/// "← →": the keys that change an option, from the key table.
fn change_keys(keys: &KeyTable) -> String {
    keys.label_joined(
        KeyScreen::Launch,
        &[KeyAction::PreviousValue, KeyAction::NextValue],
        " ",
    )
    .unwrap_or_else(|| "(unbound)".to_string())
}

fn draw_options(
    frame: &mut Frame,
    area: Rect,
    dialog: &LaunchDialog,
    keys: &KeyTable,
    theme: &Theme,
) {
    let focused = dialog.focus == DialogFocus::Options;
    let lines: Vec<Line> = dialog
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let applies = !dialog.is_disabled();
            let on_cursor = focused && index == dialog.option_cursor;
            let value = dialog.value_text(*field);
            let hint = match (on_cursor, field.is_numeric()) {
                (false, _) => String::new(),
                (true, true) => "  0-9 type, backspace erase".to_string(),
                (true, false) => format!("  {} change", change_keys(keys)),
            };
            let style = if !applies {
                theme.disabled
            } else if on_cursor {
                theme.selected
            } else {
                theme.base
            };
            let value = if on_cursor && field.is_numeric() {
                format!("{value}▏")
            } else {
                value
            };
            Line::from(vec![
                Span::styled(format!(" {:<16} {value:<14}", field.label()), style),
                Span::styled(hint, theme.footer_text),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}
