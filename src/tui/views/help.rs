//! The `?` overlay: every key ferry understands, the section of the screen in use first.
//! Taller than the screen, it scrolls (j/k).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::tui::app::{App, Screen};
use crate::tui::theme::Theme;

use super::centred;

/// Keys of one screen or dialog, with what they do. The key column is space-separated
/// tokens; the footer shows the subset that applies in context.
#[derive(Debug, Clone, Copy)]
pub struct HelpSection {
    pub title: &'static str,
    pub keys: &'static [(&'static str, &'static str)],
}

pub const INVENTORY: HelpSection = HelpSection {
    title: "Inventory (1)",
    keys: &[
        ("↑ ↓ j k", "move the cursor"),
        ("PgUp PgDn", "move by a page"),
        ("g G Home End", "first / last row"),
        ("Tab Shift-Tab", "switch between hosts and instances"),
        ("← → h l", "hosts pane / instances pane"),
        ("Enter", "details of the selected host or instance"),
        ("m", "live-migrate the selected instance (launch dialog)"),
        ("c", "cold-migrate it (says why while not available)"),
        ("2", "migrations: queued, running and recent"),
        ("/", "filter instances by name, host, state, UUID"),
        ("/~regex", "filter with a regular expression"),
        (
            "Enter (filter)",
            "keep the filter and leave the filter line",
        ),
        ("Esc (filter)", "clear the filter"),
        ("s", "next sort column of the focused pane"),
        ("S", "reverse the instance sort"),
        ("Esc", "back out: filter, pane, host selection"),
        ("(all hosts)", "first host row: instances of every host"),
    ],
};

pub const LAUNCH: HelpSection = HelpSection {
    title: "Launch dialog (m, c)",
    keys: &[
        ("↑ ↓ j k", "move among destinations, or among options"),
        ("Tab", "switch between destinations and options"),
        ("← → h l space", "change the highlighted option"),
        (
            "0-9 Backspace",
            "type bandwidth MiB/s (empty: no limit), max downtime ms",
        ),
        (
            "Enter",
            "launch to the highlighted destination (refused: why)",
        ),
        ("auto", "the passing destination with the most free memory"),
        ("Esc", "close without launching"),
    ],
};

pub const MIGRATIONS: HelpSection = HelpSection {
    title: "Migrations (2)",
    keys: &[
        ("↑ ↓ j k", "move the cursor"),
        ("PgUp PgDn g G", "by a page; first / last row"),
        ("Enter", "the selected migration in detail"),
        (
            "a",
            "abort (y/n); refused in post-copy; dequeues a queued one",
        ),
        (
            "f",
            "force-complete (y/n): post-copy if permitted, else pause",
        ),
        ("b", "set the bandwidth in MiB/s"),
        ("d", "set the max downtime in ms"),
        ("y n", "answer a confirmation"),
        ("Esc", "back out: prompt, detail, list"),
        ("1", "back to the inventory"),
    ],
};

pub const EVERYWHERE: HelpSection = HelpSection {
    title: "Everywhere",
    keys: &[
        ("?", "this help (j k scroll)"),
        ("q", "quit"),
        ("Ctrl-C", "quit, from anywhere"),
    ],
};

/// The sections in the order the help shows them: the one in use first.
pub fn sections(app: &App) -> [HelpSection; 4] {
    if app.launch.is_some() {
        [LAUNCH, INVENTORY, MIGRATIONS, EVERYWHERE]
    } else if app.screen == Screen::Migrations {
        [MIGRATIONS, INVENTORY, LAUNCH, EVERYWHERE]
    } else {
        [INVENTORY, LAUNCH, MIGRATIONS, EVERYWHERE]
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut lines: Vec<Line> = Vec::new();
    for (index, section) in sections(app).iter().enumerate() {
        if index > 0 {
            lines.push(Line::raw(""));
        }
        lines.push(Line::from(Span::styled(
            format!(" {}", section.title),
            theme.header,
        )));
        for (key, what) in section.keys {
            lines.push(Line::from(vec![
                Span::styled(format!(" {key:<15}"), theme.footer_key),
                Span::styled(*what, theme.base),
            ]));
        }
    }
    let area = centred(area, 78, lines.len() as u16 + 2);
    let rows_on_screen = area.height.saturating_sub(2);
    let last_scroll = (lines.len() as u16).saturating_sub(rows_on_screen);
    let scroll = app.help_scroll.min(last_scroll);
    let title = if last_scroll > 0 {
        format!(
            " Help: keys (j/k scroll {}/{}, esc closes) ",
            scroll + 1,
            last_scroll + 1
        )
    } else {
        " Help: keys (esc closes) ".to_string()
    };
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .style(theme.base)
            .scroll((scroll, 0))
            .block(
                Block::new()
                    .borders(Borders::ALL)
                    .border_style(theme.border_focused)
                    .title(Span::styled(title, theme.title)),
            ),
        area,
    );
}
