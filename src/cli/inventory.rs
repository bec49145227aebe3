//! `ferry hosts` and `ferry instances`: one reading of every libvirt host and every cloud,
//! printed as a table or JSON. Each row names its backend (`libvirt` or `nova:CLOUD`). A host
//! or a cloud that cannot be read makes the command exit non-zero with its error on stderr,
//! while every row that was read is still printed.

use std::process::ExitCode;

use anyhow::Result;
use ferry::config::Config;
use ferry::inventory::{self, HostEntry, HostState, Instance, Inventory};
use ferry::model::HostName;

/// Exit status of the scriptable commands: non-zero when any host or cloud could not be read,
/// so a script notices, while the output still lists every row that answered.
fn exit_code_for(inventory: &Inventory) -> ExitCode {
    if inventory.unreachable_count() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The clouds that could not be read, each with the door's message (it names the fix).
fn report_unreadable_clouds(inventory: &Inventory) {
    for (_, error) in inventory.unreadable_clouds() {
        eprintln!("ferry: {error}");
    }
}

pub fn run_hosts(config: &Config, json: bool) -> Result<ExitCode> {
    let inventory = inventory::collect_once(config);
    report_unreadable_clouds(&inventory);
    if json {
        let rows: Vec<&HostEntry> = inventory.all_hosts().collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<12} {:<16} {:<12} {:<14} {:<16} {:<8} {:<22} {:>5} {:>10} {:>10} {:>9}",
            "HOST",
            "BACKEND",
            "STATE",
            "HOSTNAME",
            "HYPERVISOR",
            "LIBVIRT",
            "CPU",
            "CORES",
            "MEM MiB",
            "FREE MiB",
            "RUN/DEF"
        );
        for host in inventory.all_hosts() {
            println!("{}", host_line(host));
        }
    }
    Ok(exit_code_for(&inventory))
}

fn host_line(host: &HostEntry) -> String {
    let lead = format!(
        "{:<12} {:<16} {:<12}",
        host.name.as_str(),
        host.backend.label(),
        host.state.as_str()
    );
    let counts = format!("{}/{}", host.instances_running, host.instances_defined);
    match (&host.facts, &host.nova, host.state) {
        (Some(f), _, HostState::Up) => format!(
            "{lead} {:<14} {:<16} {:<8} {:<22} {:>5} {:>10} {:>10} {:>9}",
            f.hostname,
            format!("{} {}", f.hypervisor_type, f.hypervisor_version),
            f.libvirt_version,
            f.cpu_model,
            f.cpu_count,
            f.memory_total_bytes >> 20,
            f.memory_free_bytes >> 20,
            counts
        ),
        (_, Some(nova), _) => {
            let capacity = nova.capacity;
            let service = nova.service.as_ref();
            let status = match service.and_then(|s| s.disabled_reason.as_deref()) {
                Some(reason) => format!("{} ({reason})", nova.status),
                None => nova.status.to_string(),
            };
            format!(
                "{lead} {:<14} {:<16} {:<8} {:<22} {:>5} {:>10} {:>10} {:>9}  nova: {} {}{}",
                nova.host_ip.as_deref().unwrap_or("-"),
                nova.hypervisor_type.as_deref().unwrap_or("-"),
                "-",
                "-",
                capacity.map_or("-".to_string(), |c| c.vcpus_usable.to_string()),
                capacity.map_or("-".to_string(), |c| c.memory_mib_usable.to_string()),
                capacity.map_or("-".to_string(), |c| c.memory_mib_free().to_string()),
                counts,
                nova.state,
                status,
                if service.and_then(|s| s.forced_down) == Some(true) {
                    ", forced down"
                } else {
                    ""
                }
            )
        }
        // A cloud's own row, or a host not read: what went wrong, else where it is.
        _ => match (host.state, &host.last_error) {
            (HostState::Up, _) | (_, None) => format!("{lead} {}", host.uri),
            (_, Some(error)) => format!("{lead} {error}"),
        },
    }
}

pub fn run_instances(mut config: Config, host: Option<String>, json: bool) -> Result<ExitCode> {
    let wanted = match &host {
        Some(wanted) => Some(HostName::parse(wanted)?),
        None => None,
    };
    if let Some(wanted) = &wanted {
        let is_libvirt_host = config.hosts.iter().any(|h| &h.name == wanted);
        if !is_libvirt_host && config.clouds.is_empty() {
            let known: Vec<&str> = config.hosts.iter().map(|h| h.name.as_str()).collect();
            anyhow::bail!(
                "--host {wanted}: no such host in the config; configured hosts: {}",
                known.join(", ")
            );
        }
    }
    let configured: Vec<HostName> = config.hosts.iter().map(|h| h.name.clone()).collect();
    if let Some(wanted) = &wanted {
        // The clouds are read whole: which of their hypervisors is `wanted` is theirs to say.
        config.hosts.retain(|h| &h.name == wanted);
    }
    let inventory = inventory::collect_once(&config);
    if let Some(wanted) = &wanted {
        let listed = inventory.all_hosts().any(|h| &h.name == wanted);
        let clouds_read = inventory.unreadable_clouds().next().is_none();
        if !listed && clouds_read {
            let known: std::collections::BTreeSet<&str> = configured
                .iter()
                .chain(inventory.all_hosts().map(|h| &h.name))
                .map(|name| name.as_str())
                .collect();
            let known: Vec<&str> = known.into_iter().collect();
            anyhow::bail!(
                "--host {wanted}: no such host in the config or in its clouds; known hosts: {}",
                known.join(", ")
            );
        }
    }
    for host in inventory.hosts.iter().filter(|h| h.state != HostState::Up) {
        eprintln!(
            "ferry: {}: unreachable: {}",
            host.name,
            host.last_error.as_deref().unwrap_or("no answer")
        );
    }
    report_unreadable_clouds(&inventory);
    let instances: Vec<&Instance> = inventory
        .instances()
        .filter(|i| wanted.as_ref().is_none_or(|wanted| &i.host == wanted))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&instances)?);
    } else {
        println!(
            "{:<12} {:<16} {:<24} {:<12} {:>5} {:>9} {:<10} {:<7} {:<4} {:<36} MANAGED BY",
            "HOST",
            "BACKEND",
            "NAME",
            "STATE",
            "VCPUS",
            "MEM MiB",
            "KIND",
            "STORAGE",
            "JOB",
            "UUID"
        );
        for i in instances {
            println!("{}", instance_line(i));
        }
    }
    Ok(exit_code_for(&inventory))
}

fn instance_line(i: &Instance) -> String {
    // Nova's server name: the domain is Nova's, and moves only through Nova. A Nova row
    // says Nova's status, task state and the domain's name instead.
    let managed_by = match (&i.nova_server, i.nova()) {
        (Some(server), _) => format!(
            "nova: {} task {} flavor {} domain {}",
            server.status,
            server.task_state.as_deref().unwrap_or("-"),
            server.flavor.name.as_deref().unwrap_or("-"),
            server.instance_name.as_deref().unwrap_or("-")
        ),
        (None, Some(nova)) => format!("nova:{}", nova.server_name.as_deref().unwrap_or("?")),
        (None, None) => "-".to_string(),
    };
    format!(
        "{:<12} {:<16} {:<24} {:<12} {:>5} {:>9} {:<10} {:<7} {:<4} {:<36} {}",
        i.host.as_str(),
        i.backend.label(),
        i.name,
        i.state.as_virsh_str(),
        i.vcpus,
        i.memory_bytes >> 20,
        if i.nova_server.is_some() {
            "server"
        } else if i.persistent {
            "persistent"
        } else {
            "transient"
        },
        i.storage_summary().map_or("none", |s| s.as_str()),
        if i.job_running { "yes" } else { "-" },
        i.uuid,
        managed_by
    )
}
