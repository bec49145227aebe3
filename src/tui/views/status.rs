//! The status bar (last refresh, unreachable hosts, migrations in flight, notices) and the
//! footer of keys that work in the current context.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::inventory::HostState;
use crate::tui::app::{App, Pane};
use crate::tui::theme::Theme;

use super::age;

pub fn draw_status(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let inventory = &app.inventory;
    let refreshed = inventory
        .last_refresh()
        .map_or("never".to_string(), |t| format!("{} ago", age(app.now, t)));
    let mut spans = vec![Span::raw(format!(
        " refreshed {refreshed} │ {} hosts │ {} instances │ {} migrating ",
        inventory.hosts.len(),
        inventory.instance_count(),
        inventory.migrations_in_flight()
    ))];
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

pub fn draw_footer(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let keys: &[(&str, &str)] = if app.filter.editing {
        &[
            ("enter", "apply"),
            ("esc", "clear"),
            ("~re", "regex"),
            ("ctrl-c", "quit"),
        ]
    } else {
        match (app.overlay, app.focus) {
            (Some(_), _) => &[("esc", "close"), ("q", "quit")],
            (None, Pane::Hosts) => &[
                ("j/k", "move"),
                ("tab", "pane"),
                ("enter", "details"),
                ("/", "filter"),
                ("s", "sort"),
                ("?", "help"),
                ("q", "quit"),
            ],
            (None, Pane::Instances) => &[
                ("j/k", "move"),
                ("tab", "pane"),
                ("enter", "details"),
                ("/", "filter"),
                ("s/S", "sort"),
                ("esc", "back"),
                ("?", "help"),
                ("q", "quit"),
            ],
        }
    };
    let mut spans = Vec::new();
    for (key, what) in keys {
        spans.push(Span::styled(format!(" <{key}>"), theme.footer_key));
        spans.push(Span::styled(format!(" {what}"), theme.footer_text));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
