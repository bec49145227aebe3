//! One lab host's life: started in its own namespaces (`host_up.sh` does the inside), checked,
//! its dead daemons restarted in place, and removed.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::plan::{LabHost, LabPlan, BRIDGE_NAME, SUBNET_BITS};
use super::{path_str, system};

const HOST_READY_TIMEOUT: Duration = Duration::from_secs(40);

fn read_pids(plan: &LabPlan, host: &LabHost) -> BTreeMap<String, i32> {
    std::fs::read_to_string(plan.host_dir(host).join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (name, pid) = line.split_once(' ')?;
            Some((name.to_string(), pid.trim().parse().ok()?))
        })
        .collect()
}

pub(super) fn host_is_healthy(plan: &LabPlan, host: &LabHost) -> bool {
    let status = std::fs::read_to_string(plan.host_dir(host).join("status")).unwrap_or_default();
    if !status.starts_with("ready") || !system::netns_list().contains(&host.netns) {
        return false;
    }
    let pids = read_pids(plan, host);
    let in_netns = system::netns_pids(&host.netns);
    ["holder", "libvirtd", "virtlogd", "sshd"]
        .iter()
        .all(|daemon| {
            pids.get(*daemon)
                .is_some_and(|pid| system::process_alive(*pid) && in_netns.contains(pid))
        })
}

/// Restarts the dead daemons of a host whose namespace holder still runs, inside the holder's
/// namespaces, and leaves every other process (QEMU above all) alone: libvirtd reconnects to
/// the running guests. Ok(false) when the holder is gone, and the host must be rebuilt.
pub(super) fn restart_dead_daemons(plan: &LabPlan, host: &LabHost) -> Result<bool> {
    let status = std::fs::read_to_string(plan.host_dir(host).join("status")).unwrap_or_default();
    if !status.starts_with("ready") || !system::netns_list().contains(&host.netns) {
        return Ok(false);
    }
    let mut pids = read_pids(plan, host);
    let in_netns = system::netns_pids(&host.netns);
    let Some(holder) = pids
        .get("holder")
        .copied()
        .filter(|pid| system::process_alive(*pid) && in_netns.contains(pid))
    else {
        return Ok(false);
    };
    let host_dir = plan.host_dir(host);
    let sshd_config = host_dir.join("sshd_config");
    let sshd_log = host_dir.join("sshd.log");
    let holder_run = PathBuf::from(format!("/proc/{holder}/root/run"));
    // virtlogd before libvirtd: libvirtd hands guests' logs to it.
    let daemons: [(&str, Vec<&str>, &str); 3] = [
        ("virtlogd", vec!["virtlogd", "-d"], "virtlogd.pid"),
        ("libvirtd", vec!["libvirtd", "-d"], "libvirtd.pid"),
        (
            "sshd",
            vec![
                "/usr/sbin/sshd",
                "-f",
                path_str(&sshd_config)?,
                "-E",
                path_str(&sshd_log)?,
            ],
            "sshd.pid",
        ),
    ];
    for (daemon, command, pid_file) in daemons {
        let alive = pids
            .get(daemon)
            .is_some_and(|pid| system::process_alive(*pid) && in_netns.contains(pid));
        if alive {
            continue;
        }
        let pid_path = holder_run.join(pid_file);
        let _ = std::fs::remove_file(&pid_path);
        let holder_arg = holder.to_string();
        let mut args = vec!["-t", holder_arg.as_str(), "-m", "-u", "-n", "--"];
        args.extend(command.iter().copied());
        system::start_daemon("nsenter", &args)
            .with_context(|| format!("{}: starting {daemon} again", host.name))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let pid = loop {
            let pid = std::fs::read_to_string(&pid_path)
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok());
            if let Some(pid) = pid.filter(|pid| system::process_alive(*pid)) {
                break pid;
            }
            if Instant::now() > deadline {
                bail!("{}: {daemon} did not come back within 20 s", host.name);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        tracing::info!("{}: {daemon} restarted as pid {pid}", host.name);
        pids.insert(daemon.to_string(), pid);
    }
    let text: String = ["holder", "virtlogd", "libvirtd", "sshd"]
        .iter()
        .filter_map(|name| pids.get(*name).map(|pid| format!("{name} {pid}\n")))
        .collect();
    system::write_atomically(&host_dir.join("pids"), text.as_bytes())?;
    Ok(true)
}

/// Stops every process in the host's namespace and removes the namespace and its link.
/// Touches nothing that is not the lab's: only processes inside the lab's own namespace.
pub(super) fn remove_host(host: &LabHost) {
    if system::netns_list().contains(&host.netns) {
        let pids = system::netns_pids(&host.netns);
        system::terminate(&pids, Duration::from_secs(5));
        if let Err(e) = system::run("ip", &["netns", "del", &host.netns]) {
            tracing::warn!("{e:#}");
        }
    }
    if system::link_exists(&host.veth) {
        let _ = system::run("ip", &["link", "del", &host.veth]);
    }
}

pub(super) fn start_host(plan: &LabPlan, host: &LabHost) -> Result<()> {
    let host_dir = plan.host_dir(host);
    for sub in [
        "var-lib-libvirt/images",
        "var-lib-libvirt/qemu",
        "var-lib-libvirt/boot",
        "log-libvirt/qemu",
        "cache-libvirt/qemu",
    ] {
        std::fs::create_dir_all(host_dir.join(sub))?;
    }
    // The host's /etc/libvirt is made once and then kept: it holds the host's persistent
    // domain definitions. Only the two config files are rewritten, from the machine's.
    let etc = host_dir.join("etc-libvirt");
    if !etc.exists() {
        system::run("cp", &["-a", "/etc/libvirt", path_str(&etc)?])?;
        let _ = std::fs::remove_dir_all(etc.join("qemu/networks/autostart"));
    }
    let machine_libvirtd =
        std::fs::read_to_string("/etc/libvirt/libvirtd.conf").unwrap_or_default();
    std::fs::write(
        etc.join("libvirtd.conf"),
        machine_libvirtd + &plan.render_libvirtd_conf(host),
    )?;
    let machine_qemu = std::fs::read_to_string("/etc/libvirt/qemu.conf").unwrap_or_default();
    std::fs::write(
        etc.join("qemu.conf"),
        machine_qemu + &plan.render_qemu_conf(),
    )?;
    std::fs::write(host_dir.join("sshd_config"), plan.render_sshd_config(host))?;
    let _ = std::fs::remove_file(host_dir.join("status"));
    let _ = std::fs::remove_file(host_dir.join("pids"));

    system::add_namespace_on_bridge(
        &host.netns,
        &host.veth,
        BRIDGE_NAME,
        &format!("{}/{SUBNET_BITS}", host.address),
    )?;

    let log = std::fs::File::create(host_dir.join("host.log"))?;
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &host.netns])
        .args(["unshare", "--mount", "--uts", "--propagation", "private"])
        .arg("sh")
        .arg(plan.dir.join("host_up.sh"))
        .arg(&host_dir)
        .arg(&host.name)
        .arg(&host.address)
        .arg(&plan.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the host must not share ferry's session or
    // terminal, so it outlives this command and ignores the operator's Ctrl-C.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            system::close_inherited_descriptors_at_exec()
        });
    }
    let mut child = command.spawn().context("cannot start the lab host")?;

    let deadline = Instant::now() + HOST_READY_TIMEOUT;
    loop {
        let status = std::fs::read_to_string(host_dir.join("status")).unwrap_or_default();
        if status.starts_with("ready") {
            return Ok(());
        }
        if let Some(reason) = status.strip_prefix("failed: ") {
            bail!("lab host {}: {}", host.name, reason.trim());
        }
        if let Ok(Some(exit)) = child.try_wait() {
            let log = std::fs::read_to_string(host_dir.join("host.log")).unwrap_or_default();
            bail!(
                "lab host {} stopped while starting ({exit}): {}",
                host.name,
                log.trim()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "lab host {} was not ready within {:?}; see {}",
                host.name,
                HOST_READY_TIMEOUT,
                host_dir.join("host.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
