//! Small wrappers over the system programs the lab drives (ip, kill, cc, qemu-img, apt-get).
//! Every failure names the command and what it printed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    output_of(program, args, command)
}

/// Runs `command` to its end; its stdout, or an error naming the command and its stderr.
fn output_of(program: &str, args: &[&str], mut command: Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// In a child about to exec: every inherited descriptor above stderr closes at exec. A lab host
/// outlives the command that started it, and must not keep the operator's descriptors open:
/// `flock /tmp/ferry-lab.lock cargo test` handed its lock to the hosts' daemons, which held it
/// for as long as the lab lived.
/// Async-signal-safe (one syscall), for `CommandExt::pre_exec`.
pub fn close_inherited_descriptors_at_exec() -> std::io::Result<()> {
    // SAFETY: close_range with CLOEXEC only sets flags on descriptors; std's own exec-error pipe
    // is CLOEXEC already.
    if unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Starts a daemon (it forks into the background itself) with no inherited descriptors and no
/// pipes to wait on.
pub fn start_daemon(program: &str, args: &[&str]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the hook makes one async-signal-safe syscall.
    unsafe { command.pre_exec(close_inherited_descriptors_at_exec) };
    output_of(program, args, command).map(|_| ())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn program_exists(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .chain(["/usr/sbin".into(), "/sbin".into()])
                .any(|dir| dir.join(program).is_file())
        })
        .unwrap_or(false)
}

pub fn netns_list() -> Vec<String> {
    run("ip", &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

pub fn link_names() -> Vec<String> {
    run("ip", &["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let name = line.split(':').nth(1)?.trim();
            Some(name.split('@').next()?.to_string())
        })
        .collect()
}

pub fn link_exists(name: &str) -> bool {
    link_names().iter().any(|n| n == name)
}

pub fn netns_pids(netns: &str) -> Vec<i32> {
    run("ip", &["netns", "pids", netns])
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name; Z is a zombie.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL what is left.
pub fn terminate(pids: &[i32], grace: Duration) {
    for &pid in pids {
        // SAFETY: kill(2) with a valid signal number has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + grace;
    while pids.iter().any(|&pid| process_alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for &pid in pids.iter().filter(|&&pid| process_alive(pid)) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&pid| process_alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Live processes (other than ferry itself) whose command line, NULs read as spaces, matches.
pub fn pids_whose_cmdline(matches: impl Fn(&str) -> bool) -> Vec<i32> {
    let own_pid = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != own_pid && process_alive(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| matches(&String::from_utf8_lossy(&raw).replace('\0', " ")))
                .unwrap_or(false)
        })
        .collect()
}

/// Rewrites a file keeping its inode, so bind mounts of it (a host's /etc/hosts) see the change.
pub fn rewrite_in_place(path: &Path, content: &str) -> Result<()> {
    std::fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes via a temporary file and rename, so readers never see half a file.
pub fn write_atomically(path: &Path, content: &[u8]) -> Result<()> {
    let temporary = path.with_extension("ferry-tmp");
    std::fs::write(&temporary, content)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot rename {} into place", temporary.display()))
}

pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

/// Makes network namespace `netns` with one veth pair: `veth` on `bridge` in the operator's
/// namespace, `eth0` inside with `address_with_bits` (e.g. `10.77.0.11/24`), both up.
pub fn add_namespace_on_bridge(
    netns: &str,
    veth: &str,
    bridge: &str,
    address_with_bits: &str,
) -> Result<()> {
    run("ip", &["netns", "add", netns])?;
    run(
        "ip",
        &[
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ],
    )?;
    run("ip", &["link", "set", veth, "master", bridge, "up"])?;
    run(
        "ip",
        &["-n", netns, "addr", "add", address_with_bits, "dev", "eth0"],
    )?;
    run("ip", &["-n", netns, "link", "set", "eth0", "up"])?;
    Ok(())
}
