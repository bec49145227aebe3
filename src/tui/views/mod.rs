//! Views: each panel is a function of the app state and the theme, drawn once per frame.

pub mod details;
pub mod help;
pub mod hosts;
pub mod instances;
pub mod status;

#[cfg(test)]
mod tests;

use std::time::SystemTime;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::Frame;

use super::app::{App, Overlay};
use super::theme::Theme;

pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let area = frame.area();
    frame.render_widget(ratatui::widgets::Block::new().style(theme.base), area);
    // Hosts get up to a third of the screen (at least 3 rows of hosts), instances the rest.
    let host_rows = (app.inventory.hosts.len() as u16 + 1 + 3).min((area.height / 3).max(6));
    let [hosts_area, instances_area, status_area, footer_area] = Layout::vertical([
        Constraint::Length(host_rows),
        Constraint::Min(4),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    hosts::draw(frame, hosts_area, app, theme);
    instances::draw(frame, instances_area, app, theme);
    status::draw_status(frame, status_area, app, theme);
    status::draw_footer(frame, footer_area, app, theme);
    match app.overlay {
        Some(Overlay::Help) => help::draw(frame, area, theme),
        Some(Overlay::Details) => details::draw(frame, area, app, theme),
        None => {}
    }
}

/// A centred rectangle of at most `width` x `height` inside `area`.
pub fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// Binary units, the way free(1) -h prints them: 512M, 7.8G.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 && unit > 0 && value.fract() > 0.05 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

/// "12s", "5m", "3h", "2d" since `then`.
pub fn age(now: SystemTime, then: SystemTime) -> String {
    let seconds = now.duration_since(then).map_or(0, |d| d.as_secs());
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m", seconds / 60),
        3600..=86_399 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// First row to show so that `cursor` is visible in `rows` rows (keeps the cursor near the
/// bottom while scrolling down, like k9s).
pub fn scroll_offset(cursor: usize, rows: usize) -> usize {
    if rows == 0 {
        0
    } else {
        cursor.saturating_sub(rows - 1)
    }
}
