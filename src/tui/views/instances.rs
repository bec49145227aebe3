//! The instances pane: instances of the selected host (or all), filtered and sorted.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Table};
use ratatui::Frame;

use crate::inventory::{HostState, Instance};
use crate::model::domain::DomainRunState;
use crate::tui::app::{App, Pane};
use crate::tui::theme::Theme;

use super::{human_bytes, on_row, scroll_offset};

pub fn state_style(state: DomainRunState, theme: &Theme) -> Style {
    match state {
        DomainRunState::Running | DomainRunState::Blocked => theme.instance_running,
        DomainRunState::ShutOff => theme.instance_stopped,
        DomainRunState::Crashed | DomainRunState::Unknown => theme.error,
        _ => theme.instance_paused,
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let focused = app.focus == Pane::Instances;
    let instances = app.visible_instances();
    let selected_host = app.selected_host();
    // A cloud's hypervisor has the name of its libvirt host: the backend tells them apart.
    let scope = selected_host.map_or("all hosts".to_string(), |h| {
        if h.backend.is_nova() {
            format!("{} {}", h.name, h.backend.label())
        } else {
            h.name.to_string()
        }
    });
    let mut title = vec![Span::styled(
        format!(" Instances ({scope}) {} ", instances.len()),
        theme.title,
    )];
    if let Some(host) = selected_host.filter(|h| h.state == HostState::Unreachable) {
        title.push(Span::styled(
            format!("host {} unreachable: last known ", host.name),
            theme.error,
        ));
    }
    if app.filter.editing || !app.filter.text.is_empty() {
        title.push(Span::styled(
            format!(
                "/{}{} ",
                app.filter.text,
                if app.filter.editing { "▏" } else { "" }
            ),
            theme.filter,
        ));
        if let Some(error) = &app.filter.error {
            title.push(Span::styled(format!("{error} "), theme.error));
        }
    }
    title.push(Span::styled(
        format!(
            "sort:{}{} ",
            app.instance_sort.label(),
            if app.sort_descending { "↓" } else { "" }
        ),
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
    let offset = scroll_offset(app.instance_cursor(), inner_rows);
    // The backend column only when a cloud is configured: otherwise every row is libvirt's.
    let with_backend = !app.inventory.clouds.is_empty();
    // Only the rows on screen are built: with 10,000 instances, that is the frame budget.
    let rows = instances
        .iter()
        .enumerate()
        .skip(offset)
        .take(inner_rows)
        .map(|(index, instance)| {
            let highlight = (index == app.instance_cursor() && focused).then_some(theme.selected);
            let row = instance_row(instance, with_backend, highlight, theme);
            match highlight {
                Some(highlight) => row.style(highlight),
                None => row,
            }
        });
    let mut header = vec![
        "NAME", "HOST", "STATE", "CPU", "MEM", "KIND", "DISKS", "JOB",
    ];
    let mut widths = vec![
        Constraint::Fill(1),
        Constraint::Length(10),
        Constraint::Length(11),
        Constraint::Length(3),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(3),
    ];
    if with_backend {
        header.insert(2, "BACKEND");
        widths.insert(2, Constraint::Length(16));
    }
    let header = Row::new(header).style(theme.header);
    let table = Table::new(rows, widths).header(header).block(block);
    frame.render_widget(table, area);
}

fn instance_row<'a>(
    instance: &'a Instance,
    with_backend: bool,
    highlight: Option<Style>,
    theme: &Theme,
) -> Row<'a> {
    let disks = match (&instance.nova_server, instance.storage_summary()) {
        // A Nova row has no disks of its own: its flavor says its size.
        (Some(server), _) => server.flavor.name.clone().unwrap_or_else(|| "-".into()),
        (None, Some(storage)) => format!("{} {}", instance.disks.len(), storage.as_str()),
        (None, None) => "-".to_string(),
    };
    // A domain Nova defined is Nova's kind, moved only through Nova; beside libvirt's
    // `instance-…` name stands Nova's name for the server.
    let nova = instance.nova();
    let libvirt_domain_of_nova = nova.filter(|_| instance.nova_server.is_none());
    let name = match libvirt_domain_of_nova.and_then(|nova| nova.server_name.as_deref()) {
        Some(server) => Cell::from(Line::from(vec![
            Span::raw(instance.name.as_str()),
            Span::styled(
                format!(" ({server})"),
                on_row(theme.warning, highlight, theme),
            ),
        ])),
        // A Nova row: Nova's task (migrating, resize_prep…) beside the name while one runs.
        None => match instance
            .nova_server
            .as_ref()
            .and_then(|s| s.task_state.as_deref())
        {
            Some(task) => Cell::from(Line::from(vec![
                Span::raw(instance.name.as_str()),
                Span::styled(format!(" [{task}]"), on_row(theme.job, highlight, theme)),
            ])),
            None => Cell::from(instance.name.as_str()),
        },
    };
    let kind = match (&instance.nova_server, nova) {
        (Some(_), _) | (None, Some(_)) => {
            Cell::from("nova").style(on_row(theme.warning, highlight, theme))
        }
        (None, None) => Cell::from(if instance.persistent { "pers" } else { "trans" }),
    };
    let mut cells = vec![
        name,
        Cell::from(instance.host.as_str()),
        Cell::from(instance.state.as_virsh_str()).style(on_row(
            state_style(instance.state, theme),
            highlight,
            theme,
        )),
        Cell::from(instance.vcpus.to_string()),
        Cell::from(human_bytes(instance.memory_bytes)),
        kind,
        Cell::from(disks),
        if instance.job_running {
            Cell::from("JOB").style(on_row(theme.job, highlight, theme))
        } else {
            Cell::from("-")
        },
    ];
    if with_backend {
        cells.insert(2, Cell::from(instance.backend.label()));
    }
    Row::new(cells)
}
