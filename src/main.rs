//! ferry: a terminal console for live and cold migration of VMs between libvirt hypervisors.

mod cli {
    pub mod cold;
    pub mod inventory;
    pub mod migrate;
    pub mod nova;
    pub mod nova_cold;
}

use ferry::engine::live::OperatorCommand;
use ferry::engine::options::LiveOptions;
use ferry::policy::TimeoutAction;
use ferry::precheck::BlockMigrationChoice;
use ferry::{config, lab, libvirt, logging};

use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Default: the config's log_level, else info.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Theme for the TUI: dark, light, high-contrast, a name under
    /// $XDG_CONFIG_HOME/ferry/themes/, or a path to a .toml file. Default: the config's theme.
    #[arg(long, global = true, value_name = "NAME|PATH")]
    theme: Option<String>,
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
    /// Every configured host, and every hypervisor of every configured cloud: reachable or
    /// not, its backend (libvirt or nova:CLOUD), versions, CPU and memory.
    /// Exits non-zero if any host or cloud could not be read.
    Hosts {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every instance on every host (or one host), and every server of every configured
    /// cloud, with its backend, state, size, disks and jobs (Nova's status, task state,
    /// flavor and domain name for servers). Exits non-zero if any host or cloud could not be
    /// read; the others are still listed.
    Instances {
        /// Only this host (its name in the config).
        #[arg(long)]
        host: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Recent migrations from the history under $XDG_STATE_HOME/ferry/, newest first.
    History {
        /// Print JSON, with each migration's events, instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Live-migrate instances: prechecks, then the migration under a policy, one line per
    /// sample and a summary. Exits 0 only when every instance runs on its destination.
    Migrate {
        /// Instance names; several are queued under the per-host and global limits.
        #[arg(required = true)]
        instances: Vec<String>,
        /// Destination host (its name in the config), or `auto`: the host that passes the
        /// prechecks with the most free memory.
        #[arg(long, value_name = "HOST|auto")]
        to: String,
        /// Downtime and timeout policy. Default: the config's (adaptive).
        #[arg(long, value_enum)]
        policy: Option<config::PolicyName>,
        /// Cap on the migration stream, MiB/s (0 = unlimited). Default: the config's. With
        /// --cold it caps the disk copy (default: unlimited).
        #[arg(long, value_name = "MiB/s")]
        bandwidth: Option<u64>,
        /// Highest max downtime the policy may set, ms.
        #[arg(long, value_name = "MS")]
        max_downtime: Option<u64>,
        /// Permit post-copy: the policy and force-complete may switch to it. If the network
        /// fails during post-copy, the guest is lost.
        #[arg(long)]
        postcopy: bool,
        /// Turn on auto-converge (vCPU throttling) even where the policy leaves it off.
        #[arg(long)]
        auto_converge: bool,
        /// Copy local disks: auto (when storage is not shared), yes, no.
        #[arg(long, value_enum, default_value = "auto")]
        block: BlockChoiceArg,
        /// At the completion timeout: abort, or force-complete (post-copy if permitted, else
        /// pause the guest). Default: the policy config's.
        #[arg(long, value_enum)]
        timeout_action: Option<TimeoutActionArg>,
        /// Completion timeout in seconds per GiB of RAM + copied disk (Nova's rule; 0 = none).
        #[arg(long, value_name = "S")]
        completion_timeout_per_gib: Option<u64>,
        /// Cold migration instead (Nova's migrate/resize flow): shut the guest down, copy its
        /// local disks, verify them, define and start it on the destination; the source copy
        /// stays until `ferry confirm` (or `ferry revert` goes back). Of the live options only
        /// --bandwidth applies, to the disk copy.
        #[arg(long)]
        cold: bool,
        /// Cold: power the guest off hard if it has not shut down within the timeout.
        #[arg(long, requires = "cold")]
        hard_power_off: bool,
        /// Cold: seconds to wait for the guest's own shutdown (ACPI).
        #[arg(long, requires = "cold", default_value_t = 60, value_name = "S")]
        shutdown_timeout: u64,
        /// Migrate a server of this OpenStack cloud (a [[clouds]] name) through Nova: Nova
        /// carries out the move, `--to auto` lets its scheduler choose. Of the options only
        /// --cold and --json apply; Nova's own config sets bandwidth, downtime and timeouts.
        #[arg(long, value_name = "CLOUD")]
        cloud: Option<String>,
        /// Cold: resize the guest to this many vCPUs (Nova's resize, without a flavor). With a
        /// new size, --to may name the guest's own host: a resize in place, nothing copied.
        #[arg(long, requires = "cold", value_name = "N",
              value_parser = ferry::engine::cold::resize::parse_vcpus)]
        vcpus: Option<u32>,
        /// Cold: resize the guest to this much memory, MiB.
        #[arg(long, requires = "cold", value_name = "MiB",
              value_parser = ferry::engine::cold::resize::parse_memory_mib)]
        memory_mib: Option<u64>,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Resize a Nova server to another flavor (Nova's resize: a cold move, to the host the
    /// scheduler picks or --to HOST); then `ferry confirm` or `ferry revert` it.
    Resize {
        instance: String,
        /// The new flavor, by name or id.
        #[arg(long)]
        flavor: String,
        /// Ask for this destination host (Nova's scheduler must agree).
        #[arg(long, value_name = "HOST")]
        to: Option<String>,
        #[arg(long, value_name = "CLOUD")]
        cloud: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Keep a cold migration awaiting confirm: removes the source copy (definition and copied
    /// disks). With --cloud, Nova's confirmResize.
    Confirm {
        instance: String,
        #[arg(long, value_name = "CLOUD")]
        cloud: Option<String>,
    },
    /// Undo a cold migration awaiting confirm: removes the destination copy and starts the
    /// instance on its source again as it was. With --cloud, Nova's revertResize.
    Revert {
        instance: String,
        #[arg(long, value_name = "CLOUD")]
        cloud: Option<String>,
    },
    /// Watch again the live migrations a ferry that died left running, and settle the cold
    /// migrations it left mid-way (awaiting confirm, or rolled back), from the history.
    Resume {
        #[arg(long)]
        json: bool,
    },
    /// Abort an instance's live migration: it keeps running on its source. Refused in post-copy.
    /// With --cloud, through Nova (running ones from 2.24, queued ones from 2.65).
    Abort {
        instance: String,
        #[arg(long, value_name = "CLOUD")]
        cloud: Option<String>,
    },
    /// Force an instance's live migration to finish: post-copy if it was permitted, else pause
    /// the guest until the copy completes (it resumes on the destination). With --cloud,
    /// through Nova (2.22), which pauses the guest unless its post-copy is permitted.
    ForceComplete {
        instance: String,
        #[arg(long, value_name = "CLOUD")]
        cloud: Option<String>,
    },
    /// Resume an instance's broken post-copy migration now (its memory is split between the
    /// hosts): through the ferry that watches it, or by taking it over from the history.
    Recover {
        instance: String,
        #[arg(long)]
        json: bool,
    },
    /// Prints frame render and filter times over a synthetic inventory (no libvirt).
    #[command(hide = true)]
    BenchRender {
        #[arg(long, default_value_t = 200)]
        hosts: usize,
        #[arg(long, default_value_t = 50)]
        instances_per_host: usize,
        #[arg(long, default_value_t = 200)]
        rounds: u32,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BlockChoiceArg {
    Auto,
    Yes,
    No,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TimeoutActionArg {
    Abort,
    ForceComplete,
}

#[derive(Subcommand)]
enum LabAction {
    /// Bring the lab up (idempotent) and write a ferry config listing its hosts.
    Up {
        /// Number of hypervisor hosts, named hv1…hvN.
        #[arg(long, default_value_t = 3)]
        hosts: u32,
        /// Delay added to every lab ssh link in each direction, in milliseconds, so the hosts
        /// answer as separate machines would (a relay in the ssh path). Without it, none.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        link_delay_ms: u32,
        /// Also bring up the lab's OpenStack cloud: Keystone, Placement, Glance, Neutron and
        /// Nova in namespace ferry-nova, and nova-compute beside each host's libvirtd. Writes
        /// /var/lib/ferry-lab/clouds.yaml (cloud ferry-lab) and adds it to the ferry config.
        #[arg(long)]
        nova: bool,
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
    // The config's log level counts only when it parses; a broken config is reported later
    // by the command itself, with its file and line.
    let log_level = cli.log_level.clone().unwrap_or_else(|| {
        config::resolve_path(cli.config.as_deref())
            .ok()
            .and_then(|path| config::Config::load(&path).ok())
            .and_then(|config| config.log_level)
            .unwrap_or_else(|| "info".to_string())
    });
    let _log_guard = match logging::init(&log_level) {
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
        Some(Commands::Hosts { json }) => {
            cli::inventory::run_hosts(&load_config(cli.config.as_deref())?, json)
        }
        Some(Commands::Instances { host, json }) => {
            cli::inventory::run_instances(load_config(cli.config.as_deref())?, host, json)
        }
        Some(Commands::BenchRender {
            hosts,
            instances_per_host,
            rounds,
        }) => {
            for figures in ferry::tui::bench::run(hosts, instances_per_host, rounds) {
                println!(
                    "{:<60} mean {:>7.3} ms  worst {:>7.3} ms",
                    figures.label,
                    figures.mean.as_secs_f64() * 1e3,
                    figures.worst.as_secs_f64() * 1e3
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Commands::History { json }) => run_history(json),
        Some(Commands::Migrate {
            instances,
            to,
            policy,
            bandwidth,
            max_downtime,
            postcopy,
            auto_converge,
            block,
            timeout_action,
            completion_timeout_per_gib,
            cold,
            hard_power_off,
            shutdown_timeout,
            cloud,
            vcpus,
            memory_mib,
            json,
        }) => {
            let config = load_config(cli.config.as_deref())?;
            if let Some(cloud) = cloud {
                let output = cli::migrate::Output { json };
                return if cold {
                    cli::nova_cold::migrate(&config, &cloud, &instances, &to, None, output)
                } else {
                    cli::nova::migrate(&config, &cloud, &instances, &to, output)
                };
            }
            if cold {
                let options = ferry::engine::cold::ColdOptions {
                    hard_power_off_allowed: hard_power_off,
                    shutdown_timeout: std::time::Duration::from_secs(shutdown_timeout),
                    copy_bandwidth_mib_per_second: bandwidth.filter(|&mib| mib > 0),
                    new_size: (vcpus.is_some() || memory_mib.is_some())
                        .then_some(ferry::engine::cold::NewSize { vcpus, memory_mib }),
                    ..Default::default()
                };
                return cli::cold::migrate(
                    &config,
                    &instances,
                    &to,
                    &options,
                    cli::migrate::Output { json },
                );
            }
            let options = LiveOptions {
                policy,
                bandwidth_mib_per_second: bandwidth,
                max_downtime_ms: max_downtime,
                post_copy: postcopy.then_some(true),
                auto_converge: auto_converge.then_some(true),
                block: match block {
                    BlockChoiceArg::Auto => BlockMigrationChoice::Auto,
                    BlockChoiceArg::Yes => BlockMigrationChoice::Yes,
                    BlockChoiceArg::No => BlockMigrationChoice::No,
                },
                timeout_action: timeout_action.map(|action| match action {
                    TimeoutActionArg::Abort => TimeoutAction::Abort,
                    TimeoutActionArg::ForceComplete => TimeoutAction::ForceComplete,
                }),
                completion_timeout_seconds_per_gib: completion_timeout_per_gib,
            };
            cli::migrate::migrate(
                &config,
                &instances,
                &to,
                &options,
                cli::migrate::Output { json },
            )
        }
        Some(Commands::Resize {
            instance,
            flavor,
            to,
            cloud,
            json,
        }) => {
            let config = load_config(cli.config.as_deref())?;
            cli::nova_cold::resize(
                &config,
                cloud.as_deref(),
                &instance,
                &flavor,
                to.as_deref(),
                cli::migrate::Output { json },
            )
        }
        Some(Commands::Confirm { instance, cloud }) => {
            let config = load_config(cli.config.as_deref())?;
            match cloud {
                Some(cloud) => cli::nova_cold::settle(&config, &cloud, &instance, true),
                None => cli::cold::settle(&config, &instance, true),
            }
        }
        Some(Commands::Revert { instance, cloud }) => {
            let config = load_config(cli.config.as_deref())?;
            match cloud {
                Some(cloud) => cli::nova_cold::settle(&config, &cloud, &instance, false),
                None => cli::cold::settle(&config, &instance, false),
            }
        }
        Some(Commands::Resume { json }) => {
            let config = config_for_resume(cli.config.as_deref())?;
            let output = cli::migrate::Output { json };
            let libvirt = cli::migrate::resume(&config, output)?;
            // Nova's migrations went on without ferry: watch them again to their end.
            match cli::nova::resume(&config, output)? {
                Some(false) => Ok(ExitCode::FAILURE),
                _ => Ok(libvirt),
            }
        }
        Some(Commands::Abort { instance, cloud }) => {
            let config = load_config(cli.config.as_deref())?;
            match cloud {
                Some(cloud) => {
                    cli::nova::operator_command(&config, &cloud, &instance, OperatorCommand::Abort)
                }
                None => cli::migrate::operator_command(&config, &instance, OperatorCommand::Abort),
            }
        }
        Some(Commands::ForceComplete { instance, cloud }) => {
            let config = load_config(cli.config.as_deref())?;
            match cloud {
                Some(cloud) => cli::nova::operator_command(
                    &config,
                    &cloud,
                    &instance,
                    OperatorCommand::ForceComplete,
                ),
                None => cli::migrate::operator_command(
                    &config,
                    &instance,
                    OperatorCommand::ForceComplete,
                ),
            }
        }
        Some(Commands::Recover { instance, json }) => {
            let config = config_for_resume(cli.config.as_deref())?;
            cli::migrate::recover(&config, &instance, cli::migrate::Output { json })
        }
        None => run_tui(cli.config, cli.theme),
    }
}

fn run_lab(action: LabAction) -> Result<ExitCode> {
    match action {
        LabAction::Up {
            hosts,
            link_delay_ms,
            nova,
        } => {
            let report = lab::up(hosts, link_delay_ms, nova)?;
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
            println!("link delay: {}", link_delay_text(report.plan.link_delay_ms));
            if let Some(cloud) = &report.nova {
                println!(
                    "cloud ferry-lab: {} in {:.1} s to every hypervisor up{}{}; clouds.yaml: {}",
                    if cloud.control_plane_started {
                        "started"
                    } else {
                        "kept"
                    },
                    cloud.to_hypervisors_up.as_secs_f64(),
                    if cloud.package_tree_built {
                        " (package tree built first)"
                    } else {
                        ""
                    },
                    if cloud.computes_started.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", nova-compute started on {}",
                            cloud.computes_started.join(", ")
                        )
                    },
                    cloud.clouds_yaml.display()
                );
            }
            println!(
                "ferry config: {}",
                report.plan.ferry_config_path().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        LabAction::Status => {
            let status = lab::status()?;
            println!("link delay: {}", link_delay_text(status.link_delay_ms));
            let mut all_up = true;
            for host in status.hosts {
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
            println!(
                "cloud ferry-lab: {}",
                if status.cloud_up {
                    "up (control plane in namespace ferry-nova; /var/lib/ferry-lab/clouds.yaml)"
                } else {
                    "not up (`ferry lab up --nova` brings it up)"
                }
            );
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

fn link_delay_text(link_delay_ms: u32) -> String {
    if link_delay_ms == 0 {
        "none".to_string()
    } else {
        format!("{link_delay_ms} ms each way on every ssh link (lab relay)")
    }
}

fn run_tui(config_path: Option<PathBuf>, theme_choice: Option<String>) -> Result<ExitCode> {
    let config = load_config(config_path.as_deref())?;
    let (theme, theme_error) =
        ferry::tui::theme::load(theme_choice.or(config.theme.clone()).as_deref());
    let notice = theme_error.map(|error| {
        // Said on stderr too: it stays readable in the shell after the TUI exits.
        eprintln!("ferry: {error}");
        error.to_string()
    });
    ferry::tui::runtime::run(&config, theme, notice)?;
    Ok(ExitCode::SUCCESS)
}

fn load_config(explicit: Option<&std::path::Path>) -> Result<config::Config> {
    let path = config::resolve_path(explicit)?;
    Ok(config::Config::load(&path)?)
}

/// A resumed migration carries its hosts in its stored plan, so `ferry resume` works without a
/// config file (with the default limits and timeouts); a config that exists must be valid.
fn config_for_resume(explicit: Option<&std::path::Path>) -> Result<config::Config> {
    let path = config::resolve_path(explicit)?;
    if path.exists() {
        Ok(config::Config::load(&path)?)
    } else {
        Ok(config::Config::default())
    }
}

fn run_history(json: bool) -> Result<ExitCode> {
    use ferry::engine::history::{self, History};
    // Enough to see the last working day at a glance; the file keeps everything.
    const RECENT_MIGRATIONS: usize = 50;
    let path = history::default_path();
    // Reading must not create a history file on a machine that never migrated anything.
    let migrations = if path.exists() {
        History::open(&path)?.recent_with_events(RECENT_MIGRATIONS)?
    } else {
        Vec::new()
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&migrations)?);
    } else if migrations.is_empty() {
        println!("no migrations recorded yet ({})", path.display());
    } else {
        let records: Vec<_> = migrations.into_iter().map(|m| m.migration).collect();
        println!("{}", history::render_table(&records));
    }
    Ok(ExitCode::SUCCESS)
}
