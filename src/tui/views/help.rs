//! The `?` overlay: every key ferry understands.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::tui::theme::Theme;

use super::centred;

/// Every key, with what it does. The footer shows the subset that applies in context.
pub const KEYS: [(&str, &str); 17] = [
    ("↑ ↓  j k", "move the cursor"),
    ("PgUp PgDn", "move by a page"),
    ("g G  Home End", "first / last row"),
    ("Tab  Shift-Tab", "switch between hosts and instances"),
    ("← →  h l", "hosts pane / instances pane"),
    ("Enter", "details of the selected host or instance"),
    ("/", "filter instances by name, host, state, UUID"),
    ("/~regex", "filter with a regular expression"),
    (
        "Enter (filter)",
        "keep the filter and leave the filter line",
    ),
    ("Esc (filter)", "clear the filter"),
    ("s", "next sort column of the focused pane"),
    ("S", "reverse the instance sort"),
    ("Esc", "back out: overlay, filter, pane, host selection"),
    ("?", "this help"),
    ("q", "quit"),
    ("Ctrl-C", "quit, from anywhere"),
    ("(all hosts)", "first host row: instances of every host"),
];

pub fn draw(frame: &mut Frame, area: Rect, theme: &Theme) {
    let area = centred(area, 70, KEYS.len() as u16 + 2);
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!(" {key:<16}"), theme.footer_key),
                Span::styled(*what, theme.base),
            ])
        })
        .collect();
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).style(theme.base).block(
            Block::new()
                .borders(Borders::ALL)
                .border_style(theme.border_focused)
                .title(Span::styled(" Help: keys (esc closes) ", theme.title)),
        ),
        area,
    );
}
