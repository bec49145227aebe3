//! ferry: a terminal console for live and cold migration of VMs between libvirt hypervisors.

use ferry::{config, lab, libvirt, logging};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Live and cold migration of VMs between libvirt hypervisors"
)]
struct Cli {
    /// Config file (else $FERRY_CONFIG, else $XDG_CONFIG_HOME/ferry/config.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log filter for the log file under $XDG_STATE_HOME/ferry/ (e.g. info, debug, ferry=trace).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Option<Commands>,
}

#[derive(Subcommand)]
enum Commands {
    /// The rehearsal lab: real libvirt hosts in namespaces on this machine (root only).
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Every configured host: reachable or not, hostname, versions, CPU and memory.
    Hosts {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum LabAction {
    /// Bring the lab up (idempotent) and write a ferry config listing its hosts.
    Up {
        /// Number of hypervisor hosts, named hv1…hvN.
        #[arg(long, default_value_t = 3)]
        hosts: u32,
    },
    /// Show each lab host: namespace, daemons, and whether it answers over qemu+ssh.
    Status,
    /// Remove exactly what the lab made: processes, namespaces, links, files.
    Down {
        /// Also remove the downloaded guest kernel cache.
        #[arg(long)]
        purge: bool,
    },
    /// Install the packages the lab needs (apt, as root).
    Install,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log_guard = match logging::init(&cli.log_level) {
        Ok(guard) => Some(guard),
        Err(error) => {
            eprintln!("ferry: {error:#}");
            return ExitCode::from(2);
        }
    };
    libvirt::init();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("ferry: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Commands::Lab { action }) => run_lab(action),
        Some(Commands::Hosts { json }) => run_hosts(cli.config, json),
        None => run_hosts(cli.config, false),
    }
}

fn run_lab(action: LabAction) -> Result<ExitCode> {
    match action {
        LabAction::Up { hosts } => {
            let report = lab::up(hosts)?;
            println!(
                "lab up in {:.1} s: {} host(s) started{}, {} kept",
                report.elapsed.as_secs_f64(),
                report.hosts_started.len(),
                if report.hosts_started.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", report.hosts_started.join(", "))
                },
                report.hosts_kept.len()
            );
            for host in &report.plan.hosts {
                println!(
                    "  {:<5} {:<12} {}",
                    host.name,
                    host.address,
                    report.plan.uri(host)
                );
            }
            println!(
                "ferry config: {}",
                report.plan.ferry_config_path().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        LabAction::Status => {
            let hosts = lab::status()?;
            let mut all_up = true;
            for host in hosts {
                let answers = match &host.answers {
                    Ok(guests) => format!("answers; guests: {}", guests.join(", ")),
                    Err(error) => {
                        all_up = false;
                        format!("does not answer: {error}")
                    }
                };
                all_up &= host.namespace_present && host.daemons_running;
                println!(
                    "{:<5} {:<12} namespace {}  daemons {}  {}",
                    host.name,
                    host.address,
                    if host.namespace_present {
                        "present"
                    } else {
                        "MISSING"
                    },
                    if host.daemons_running {
                        "running"
                    } else {
                        "NOT RUNNING"
                    },
                    answers
                );
            }
            Ok(if all_up {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        LabAction::Down { purge } => {
            let report = lab::down(purge)?;
            println!(
                "lab down: {} host(s) removed ({}), {} process(es) stopped",
                report.hosts_removed.len(),
                report.hosts_removed.join(", "),
                report.processes_stopped
            );
            Ok(ExitCode::SUCCESS)
        }
        LabAction::Install => {
            lab::install_dependencies()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_hosts(config_path: Option<PathBuf>, json: bool) -> Result<ExitCode> {
    let path = config::resolve_path(config_path.as_deref())?;
    let config = config::Config::load(&path)?;
    let timeout = Duration::from_secs(15);
    // One thread per host: a slow host never holds up the others.
    let handles: Vec<_> = config
        .hosts
        .iter()
        .map(|host| {
            let uri = host.uri.clone();
            std::thread::spawn(move || {
                libvirt::HostConnection::open(&uri, timeout).and_then(|c| c.host_facts(timeout))
            })
        })
        .collect();
    let mut rows = Vec::new();
    let mut all_reached = true;
    for (host, handle) in config.hosts.iter().zip(handles) {
        let facts = handle.join().expect("host facts thread");
        all_reached &= facts.is_ok();
        rows.push((host, facts));
    }
    if json {
        let value: Vec<_> = rows
            .iter()
            .map(|(host, facts)| match facts {
                Ok(facts) => serde_json::json!({"name": host.name, "uri": host.uri, "state": "up", "facts": facts}),
                Err(error) => serde_json::json!({"name": host.name, "uri": host.uri, "state": "unreachable", "error": error.to_string()}),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        for (host, facts) in &rows {
            match facts {
                Ok(f) => println!(
                    "{:<10} up           {:<10} {} {} libvirt {} {} x{} mem {} MiB free {} MiB uuid {}",
                    host.name,
                    f.hostname,
                    f.hypervisor_type,
                    f.hypervisor_version,
                    f.libvirt_version,
                    f.cpu_model,
                    f.cpu_count,
                    f.memory_total_bytes >> 20,
                    f.memory_free_bytes >> 20,
                    f.host_uuid
                ),
                Err(error) => println!("{:<10} unreachable  {error}", host.name),
            }
        }
    }
    Ok(if all_reached {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
