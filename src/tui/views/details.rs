//! The details panel (Enter): everything ferry knows of the selected host or instance.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::inventory::{HostEntry, HostState, Instance, NovaHypervisorFacts, NovaServerFacts};
use crate::tui::app::{App, Pane};
use crate::tui::theme::Theme;

use super::{age, centred, human_bytes};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let (title, lines) = match app.focus {
        Pane::Instances => match app.selected_instance() {
            Some(instance) => (
                format!(" Instance {} ", instance.name),
                instance_lines(instance, theme),
            ),
            None => (
                " Instance ".to_string(),
                vec![Line::raw("No instance selected.")],
            ),
        },
        Pane::Hosts => match app.selected_host() {
            Some(host) => (
                format!(" Host {} ", host.name),
                host_lines(host, app, theme),
            ),
            None => (" All hosts ".to_string(), all_hosts_lines(app)),
        },
    };
    // Two spare rows: a long error wraps onto more than one line.
    let area = centred(area, 76, lines.len() as u16 + 4);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .style(theme.base)
            .wrap(Wrap { trim: false })
            .block(
                Block::new()
                    .borders(Borders::ALL)
                    .border_style(theme.border_focused)
                    .title(Span::styled(title, theme.title)),
            ),
        area,
    );
}

fn field<'a>(name: &str, value: String, theme: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!(" {name:<16}"), theme.header),
        Span::raw(value),
    ])
}

fn host_lines<'a>(host: &HostEntry, app: &App, theme: &Theme) -> Vec<Line<'a>> {
    let mut lines = Vec::new();
    // With no cloud configured every host is libvirt's: the line would say nothing.
    if !app.inventory.clouds.is_empty() {
        lines.push(field("backend", host.backend.label(), theme));
    }
    lines.extend([
        field("uri", host.uri.clone(), theme),
        Line::from(vec![
            Span::styled(format!(" {:<16}", "state"), theme.header),
            Span::styled(
                host.state.as_str(),
                super::hosts::state_style(host.state, theme),
            ),
            Span::raw(format!(" for {}", age(app.now, host.state_since))),
        ]),
    ]);
    if let Some(group) = &host.group {
        lines.push(field("group", group.clone(), theme));
    }
    if !host.tags.is_empty() {
        lines.push(field("tags", host.tags.join(", "), theme));
    }
    if let Some(error) = &host.last_error {
        let when = host
            .last_error_at
            .map_or(String::new(), |t| format!(" ({} ago)", age(app.now, t)));
        lines.push(Line::from(vec![
            Span::styled(format!(" {:<16}", "last error"), theme.header),
            Span::styled(format!("{error}{when}"), theme.error),
        ]));
    }
    if host.state == HostState::Unreachable {
        lines.push(field(
            "retrying",
            format!(
                "attempt {}, backing off up to 30s",
                host.connect_attempts + 1
            ),
            theme,
        ));
    }
    if let Some(nova) = &host.nova {
        lines.extend(nova_hypervisor_lines(nova, theme));
    }
    if let Some(f) = &host.facts {
        lines.extend([
            field("hostname", f.hostname.clone(), theme),
            field(
                "hypervisor",
                format!("{} {}", f.hypervisor_type, f.hypervisor_version),
                theme,
            ),
            field("libvirt", f.libvirt_version.clone(), theme),
            field(
                "cpu",
                format!("{} x {} ({})", f.cpu_count, f.cpu_model, f.cpu_arch),
                theme,
            ),
            field(
                "memory",
                format!(
                    "{} free of {}",
                    human_bytes(f.memory_free_bytes),
                    human_bytes(f.memory_total_bytes)
                ),
                theme,
            ),
            field("host uuid", f.host_uuid.clone(), theme),
        ]);
    }
    lines.push(field(
        "instances",
        format!(
            "{} running, {} defined",
            host.instances_running, host.instances_defined
        ),
        theme,
    ));
    lines.push(field(
        "migrating",
        host.migrations_in_flight.to_string(),
        theme,
    ));
    if let (Some(at), Some(took)) = (host.last_refresh, host.last_refresh_took_ms) {
        lines.push(field(
            "refreshed",
            format!("{} ago in {took} ms", age(app.now, at)),
            theme,
        ));
    }
    lines
}

/// What Nova says of a hypervisor: its state and status, its compute service (a disabled
/// one with the operator's reason) and what the scheduler can still place there.
fn nova_hypervisor_lines<'a>(nova: &NovaHypervisorFacts, theme: &Theme) -> Vec<Line<'a>> {
    let mut lines = vec![
        field("nova", format!("{} {}", nova.state, nova.status), theme),
        field("hypervisor id", nova.hypervisor_id.clone(), theme),
    ];
    if let Some(service) = &nova.service {
        let mut words = format!("{} {}", service.status, service.state);
        if let Some(reason) = &service.disabled_reason {
            words.push_str(&format!(" (reason: {reason})"));
        }
        if service.forced_down == Some(true) {
            words.push_str(", forced down");
        }
        let style = if service.status == "enabled" && service.state == "up" {
            theme.base
        } else {
            theme.warning
        };
        lines.push(Line::from(vec![
            Span::styled(format!(" {:<16}", "compute service"), theme.header),
            Span::styled(words, style),
        ]));
    }
    if let Some(ip) = &nova.host_ip {
        lines.push(field("host ip", ip.clone(), theme));
    }
    if let Some(capacity) = &nova.capacity {
        lines.push(field(
            "capacity",
            format!(
                "{}/{} vCPU, {}/{} MiB, {}/{} GiB used ({})",
                capacity.vcpus_used,
                capacity.vcpus_usable,
                capacity.memory_mib_used,
                capacity.memory_mib_usable,
                capacity.disk_gib_used,
                capacity.disk_gib_usable,
                capacity.source
            ),
            theme,
        ));
    }
    lines
}

/// What Nova says of a server: its status and task, its flavor, project and libvirt domain.
fn nova_server_lines<'a>(server: &NovaServerFacts, theme: &Theme) -> Vec<Line<'a>> {
    let mut lines = vec![
        field("server id", server.server_id.clone(), theme),
        field(
            "status",
            format!(
                "{}, task {}, vm {}, power {}",
                server.status,
                server.task_state.as_deref().unwrap_or("none"),
                server.vm_state.as_deref().unwrap_or("-"),
                server.power_state.unwrap_or("-")
            ),
            theme,
        ),
        field(
            "flavor",
            format!(
                "{} ({} MiB, {} vCPU)",
                server.flavor.name.as_deref().unwrap_or("-"),
                server
                    .flavor
                    .memory_mib
                    .map_or("?".to_string(), |mib| mib.to_string()),
                server
                    .flavor
                    .vcpus
                    .map_or("?".to_string(), |vcpus| vcpus.to_string())
            ),
            theme,
        ),
        field(
            "project",
            server.project_id.clone().unwrap_or_else(|| "-".into()),
            theme,
        ),
        field(
            "instance_name",
            server.instance_name.clone().unwrap_or_else(|| "-".into()),
            theme,
        ),
    ];
    if let Some(fault) = &server.fault {
        lines.push(Line::from(vec![
            Span::styled(format!(" {:<16}", "fault"), theme.header),
            Span::styled(fault.clone(), theme.error),
        ]));
    }
    lines
}

fn instance_lines<'a>(instance: &Instance, theme: &Theme) -> Vec<Line<'a>> {
    if let Some(server) = &instance.nova_server {
        let mut lines = vec![
            field("backend", instance.backend.label(), theme),
            field("host", instance.host.to_string(), theme),
        ];
        lines.extend(nova_server_lines(server, theme));
        lines.push(field(
            "migrate",
            "through Nova only: ferry migrate UUID --cloud CLOUD".to_string(),
            theme,
        ));
        return lines;
    }
    let mut lines = vec![
        field("uuid", instance.uuid.clone(), theme),
        field("host", instance.host.to_string(), theme),
        Line::from(vec![
            Span::styled(format!(" {:<16}", "state"), theme.header),
            Span::styled(
                instance.state.as_virsh_str(),
                super::instances::state_style(instance.state, theme),
            ),
        ]),
        field("vcpus", instance.vcpus.to_string(), theme),
        field("memory", human_bytes(instance.memory_bytes), theme),
        field(
            "definition",
            if instance.persistent {
                "persistent"
            } else {
                "transient (gone when it stops)"
            }
            .into(),
            theme,
        ),
        field(
            "job",
            if instance.job_running {
                "running".into()
            } else {
                "none".into()
            },
            theme,
        ),
    ];
    if let Some(nova) = instance.nova() {
        lines.push(Line::from(vec![
            Span::styled(format!(" {:<16}", "managed by"), theme.header),
            Span::styled(
                match &nova.server_name {
                    Some(name) => format!("OpenStack Nova, server {name} (its id is the uuid)"),
                    None => "OpenStack Nova (its server id is the uuid)".to_string(),
                },
                theme.warning,
            ),
        ]));
        let mut owner = Vec::new();
        if let Some(project) = &nova.project_name {
            owner.push(format!("project {project}"));
        }
        if let Some(flavor) = &nova.flavor_name {
            owner.push(format!("flavor {flavor}"));
        }
        if let Some(version) = &nova.nova_version {
            owner.push(format!("Nova {version}"));
        }
        if !owner.is_empty() {
            lines.push(field("nova", owner.join(", "), theme));
        }
        lines.push(field(
            "migrate",
            "through Nova only: ferry migrate UUID --cloud CLOUD".to_string(),
            theme,
        ));
    }
    if instance.disks.is_empty() {
        lines.push(field("disks", "none".into(), theme));
    }
    for disk in &instance.disks {
        let source = match &disk.source {
            crate::model::domain::DiskSource::Path { path } => path.clone(),
            crate::model::domain::DiskSource::Network { protocol, name } => {
                format!("{protocol}://{name}")
            }
            crate::model::domain::DiskSource::Volume { pool, volume } => {
                format!("pool {pool} / {volume}")
            }
            crate::model::domain::DiskSource::None => "(no medium)".into(),
        };
        lines.push(field(
            &format!("disk {}", disk.target),
            format!("{} {} {source}", disk.storage.as_str(), disk.device),
            theme,
        ));
    }
    lines
}

fn all_hosts_lines<'a>(app: &App) -> Vec<Line<'a>> {
    let inventory = &app.inventory;
    vec![
        Line::raw(format!(
            " {} hosts, {} unreachable",
            inventory.all_hosts().count(),
            inventory.unreachable_count()
        )),
        Line::raw(format!(" {} instances", inventory.instance_count())),
        Line::raw(format!(
            " {} migrations in flight",
            inventory.migrations_in_flight()
        )),
        Line::raw(" Select a host (j/k) for its details."),
    ]
}
