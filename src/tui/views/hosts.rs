//! The hosts pane: an "all hosts" row, then every configured host with its state and size.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Table};
use ratatui::Frame;

use crate::inventory::{HostEntry, HostState};
use crate::tui::app::{App, Pane};
use crate::tui::theme::Theme;

use super::{age, human_bytes, on_row, scroll_offset};

pub fn state_style(state: HostState, theme: &Theme) -> ratatui::style::Style {
    match state {
        HostState::Up => theme.state_up,
        HostState::Connecting => theme.state_connecting,
        HostState::Slow => theme.warning,
        HostState::Unreachable => theme.state_down,
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let focused = app.focus == Pane::Hosts;
    let hosts = app.sorted_hosts();
    let unreachable = app.inventory.unreachable_count();
    let mut title = vec![Span::styled(
        format!(" Hosts {} ", hosts.len()),
        theme.title,
    )];
    if unreachable > 0 {
        title.push(Span::styled(
            format!("{unreachable} unreachable "),
            theme.error,
        ));
    }
    title.push(Span::styled(
        format!("sort:{} ", app.host_sort.label()),
        theme.footer_text,
    ));
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(if focused {
            theme.border_focused
        } else {
            theme.border
        })
        .title(Line::from(title));
    let inner_rows = area.height.saturating_sub(3) as usize;
    let offset = scroll_offset(app.host_cursor(), inner_rows);
    // The backend column only when a cloud is configured: otherwise every row is libvirt's.
    let with_backend = !app.inventory.clouds.is_empty();
    let mut all_cells = vec![
        Cell::from("(all hosts)"),
        Cell::from(""),
        Cell::from(""),
        Cell::from(format!("{}", app.inventory.instance_count())),
        Cell::from(""),
        Cell::from(""),
    ];
    if with_backend {
        all_cells.insert(1, Cell::from(""));
    }
    let all_row = Row::new(all_cells);
    let highlight = if focused {
        theme.selected
    } else {
        theme.selected.add_modifier(ratatui::style::Modifier::DIM)
    };
    let highlight_of = |row: usize| (row == app.host_cursor()).then_some(highlight);

    let rows =
        std::iter::once(all_row)
            .chain(hosts.iter().enumerate().map(|(index, host)| {
                host_row(host, app, with_backend, highlight_of(index + 1), theme)
            }))
            .enumerate()
            .skip(offset)
            .take(inner_rows)
            .map(|(index, row)| match highlight_of(index) {
                Some(highlight) => row.style(highlight),
                None => row,
            });
    let mut header = vec![
        "HOST",
        "STATE",
        "SINCE",
        "RUN/DEF",
        "MEM FREE/TOTAL",
        "CPU / LAST ERROR",
    ];
    let mut widths = vec![
        Constraint::Length(12),
        Constraint::Length(11),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(14),
        Constraint::Fill(1),
    ];
    if with_backend {
        header.insert(1, "BACKEND");
        widths.insert(1, Constraint::Length(16));
    }
    let header = Row::new(header).style(theme.header);
    let table = Table::new(rows, widths).header(header).block(block);
    frame.render_widget(table, area);
}

fn host_row<'a>(
    host: &'a HostEntry,
    app: &App,
    with_backend: bool,
    highlight: Option<Style>,
    theme: &Theme,
) -> Row<'a> {
    let (memory, detail) = match (&host.facts, host.state) {
        // A Nova hypervisor: what its scheduler can still place, and Nova's own words.
        (None, HostState::Up) if host.nova.is_some() => nova_cells(host),
        (_, HostState::Unreachable) | (None, _) => (
            String::from("-"),
            host.last_error.clone().unwrap_or_else(|| host.uri.clone()),
        ),
        (Some(f), _) => (
            format!(
                "{}/{}",
                human_bytes(f.memory_free_bytes),
                human_bytes(f.memory_total_bytes)
            ),
            format!(
                "{}x {}  libvirt {}{}",
                f.cpu_count,
                f.cpu_model,
                f.libvirt_version,
                if host.migrations_in_flight > 0 {
                    format!("  {} migrating", host.migrations_in_flight)
                } else {
                    String::new()
                }
            ),
        ),
    };
    let detail_style = if host.state == HostState::Unreachable {
        theme.error
    } else {
        theme.base
    };
    let mut cells = vec![
        Cell::from(host.name.as_str()),
        Cell::from(host.state.as_str()).style(on_row(
            state_style(host.state, theme),
            highlight,
            theme,
        )),
        Cell::from(age(app.now, host.state_since)),
        Cell::from(format!(
            "{}/{}",
            host.instances_running, host.instances_defined
        )),
        Cell::from(memory),
        Cell::from(detail).style(on_row(detail_style, highlight, theme)),
    ];
    if with_backend {
        cells.insert(1, Cell::from(host.backend.label()));
    }
    Row::new(cells)
}

/// Memory and detail cells of a Nova hypervisor that is up.
fn nova_cells(host: &HostEntry) -> (String, String) {
    let Some(nova) = &host.nova else {
        return ("-".into(), host.uri.clone());
    };
    let memory = match nova.capacity {
        Some(c) => format!(
            "{}/{}",
            human_bytes(c.memory_mib_free() << 20),
            human_bytes(c.memory_mib_usable << 20)
        ),
        None => "-".into(),
    };
    let mut detail = format!(
        "{} vCPU  nova {} {}",
        nova.capacity.map_or("?".to_string(), |c| format!(
            "{}/{}",
            c.vcpus_used, c.vcpus_usable
        )),
        nova.state,
        nova.status
    );
    if let Some(reason) = nova
        .service
        .as_ref()
        .and_then(|s| s.disabled_reason.as_deref())
    {
        detail.push_str(&format!(" ({reason})"));
    }
    (memory, detail)
}
