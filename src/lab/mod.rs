//! The rehearsal lab: N real hypervisor hosts on this machine, each in its own network, mount
//! and UTS namespace, running real libvirtd, virtlogd and sshd, reached as
//! `qemu+ssh://root@hvK/system` with the lab's own ssh key. See `src/lab/host_up.sh` for what
//! happens inside a host, and `plan.rs` for every name, address and file.

pub mod cpio;
pub mod guest;
mod host;
mod link_delay;
pub mod nova;
pub mod plan;
mod system;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::libvirt::provision::DirectoryPool;
use crate::libvirt::HostConnection;
use guest::GuestSpec;
use host::{host_is_healthy, remove_host, restart_dead_daemons, start_host};
use plan::{
    LabHost, LabPlan, BRIDGE_NAME, CACHE_DIR, LAB_DIR, NAME_PREFIX, SUBNET_BITS, SUBNET_PREFIX,
};

const HOST_UP_SCRIPT: &str = include_str!("host_up.sh");
const GUEST_INIT_SOURCE: &str = include_str!("guest_init.c");
pub const INSTALL_DEPS_SCRIPT: &str = include_str!("install-deps.sh");

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What `lab up` leaves for `lab down` and for tests, next to the lab.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LabState {
    pub host_count: u32,
    /// `ip netns add` mounts /run/netns on first use; `lab down` unmounts it again only if the
    /// machine did not have it before the lab.
    pub run_netns_preexisted: bool,
    /// sha256 of each data disk's content (raw, full size) as the lab wrote it.
    #[serde(default)]
    pub data_disk_sha256: BTreeMap<String, String>,
    /// The delay each way on the lab's ssh links (`lab up --link-delay-ms`); 0 when none.
    /// Kept here so `lab status` shows it and `lab up` knows what it changes.
    #[serde(default)]
    pub link_delay_ms: u32,
}

impl LabState {
    pub fn load() -> Option<LabState> {
        let text = std::fs::read_to_string(Path::new(LAB_DIR).join("state.toml")).ok()?;
        toml::from_str(&text).ok()
    }
}

/// Programs the lab needs, with the Debian package that brings each.
const REQUIRED_PROGRAMS: &[(&str, &str)] = &[
    ("libvirtd", "libvirt-daemon-system"),
    ("virtlogd", "libvirt-daemon-system"),
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("qemu-img", "qemu-utils"),
    ("/usr/sbin/sshd", "openssh-server"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("ip", "iproute2"),
    ("unshare", "util-linux"),
    ("cc", "gcc"),
    ("apt-get", "apt"),
    ("dpkg-deb", "dpkg"),
];

fn preflight() -> Result<()> {
    if !system::is_root() {
        bail!(
            "ferry lab needs root: it creates network namespaces, a bridge and runs libvirtd. \
             Run it as root (sudo ferry lab up)."
        );
    }
    let missing: Vec<String> = REQUIRED_PROGRAMS
        .iter()
        .filter(|(program, _)| !system::program_exists(program))
        .map(|(program, package)| format!("{program} (package {package})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the lab needs programs that are missing: {}. Install them with `ferry lab install` \
             (or src/lab/install-deps.sh), as root.",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Runs the embedded install script (apt packages from bookworm-backports).
pub fn install_dependencies() -> Result<()> {
    let mut child = Command::new("bash")
        .arg("-s")
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot run bash")?;
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(INSTALL_DEPS_SCRIPT.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("installing the lab's packages failed ({status})");
    }
    Ok(())
}

pub struct UpReport {
    pub plan: LabPlan,
    pub elapsed: Duration,
    pub hosts_started: Vec<String>,
    pub hosts_kept: Vec<String>,
    /// With `--nova`: what the cloud's bring-up did.
    pub nova: Option<nova::NovaUpReport>,
}

/// Things this run of `lab up` made, undone in reverse if a later step fails.
#[derive(Default)]
struct MadeThisRun {
    lab_dir: bool,
    bridge: bool,
    hosts: Vec<LabHost>,
}

/// Brings up `host_count` hosts whose ssh links carry `link_delay_ms` each way (0: none),
/// and with `with_nova` the lab's OpenStack cloud beside them (`nova::up_cloud`).
/// Idempotent; a lab of another shape or delay is changed to this one. A cloud already up
/// stays up (and in the ferry config) when `with_nova` is not given.
pub fn up(host_count: u32, link_delay_ms: u32, with_nova: bool) -> Result<UpReport> {
    let started = Instant::now();
    preflight()?;
    let plan = LabPlan::new(host_count)
        .and_then(|plan| plan.with_link_delay_ms(link_delay_ms))
        .map_err(|e| anyhow!(e))?;
    let previous = LabState::load();
    let mut made = MadeThisRun {
        lab_dir: !plan.dir.exists(),
        ..Default::default()
    };
    let run_netns_preexisted = previous
        .as_ref()
        .map(|s| s.run_netns_preexisted)
        .unwrap_or_else(|| Path::new("/run/netns").exists());
    match bring_up(&plan, &mut made, run_netns_preexisted) {
        Ok((hosts_started, hosts_kept)) => {
            let nova = if with_nova {
                Some(nova::up_cloud(&plan).context(
                    "lab up --nova: the lab's hosts are up, its cloud is not (`ferry lab up \
                     --nova` again retries the cloud alone)",
                )?)
            } else {
                None
            };
            write_ferry_config(&plan)?;
            Ok(UpReport {
                plan,
                elapsed: started.elapsed(),
                hosts_started,
                hosts_kept,
                nova,
            })
        }
        Err(error) => {
            tracing::error!("lab up failed: {error:#}; undoing what this run made");
            for host in made.hosts.iter().rev() {
                remove_host(host);
            }
            if made.bridge {
                let _ = system::run("ip", &["link", "del", BRIDGE_NAME]);
            }
            if made.lab_dir {
                let _ = std::fs::remove_dir_all(&plan.dir);
                if !run_netns_preexisted {
                    release_run_netns();
                }
            }
            Err(error.context("lab up failed; what this run had made was removed"))
        }
    }
}

fn bring_up(
    plan: &LabPlan,
    made: &mut MadeThisRun,
    run_netns_preexisted: bool,
) -> Result<(Vec<String>, Vec<String>)> {
    for dir in [
        plan.ssh_dir(),
        plan.guest_dir(),
        plan.shared_dir().join("instances"),
    ] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Hosts beyond the requested count go, with whatever they held: the lab has exactly
    // `host_count` hosts (the lab's guests are defined on hv1 and are recreated if missing).
    for netns in system::netns_list() {
        if let Some(index) = netns.strip_prefix(NAME_PREFIX).and_then(|i| i.parse().ok()) {
            if index > plan.hosts.len() as u32 {
                let extra = LabHost::new(index);
                remove_host(&extra);
                let _ = std::fs::remove_dir_all(plan.host_dir(&extra));
            }
        }
    }

    write_guest_boot_files(plan)?;
    write_ssh_files(plan)?;
    system::rewrite_in_place(&plan.etc_hosts(), &plan.render_etc_hosts())?;

    if !system::link_exists(BRIDGE_NAME) {
        system::run("ip", &["link", "add", BRIDGE_NAME, "type", "bridge"])?;
        made.bridge = true;
    }
    let bridge_address = format!("{SUBNET_PREFIX}.1/{SUBNET_BITS}");
    let addresses = system::run("ip", &["-o", "addr", "show", "dev", BRIDGE_NAME])?;
    if !addresses.contains(&format!(" {bridge_address} ")) {
        system::run("ip", &["addr", "add", &bridge_address, "dev", BRIDGE_NAME])?;
    }
    system::run("ip", &["link", "set", BRIDGE_NAME, "up"])?;

    let mut hosts_started = Vec::new();
    let mut hosts_kept = Vec::new();
    for host in &plan.hosts {
        if host_is_healthy(plan, host) {
            hosts_kept.push(host.name.clone());
            continue;
        }
        // A daemon died but the host's namespaces are there: start only what died, so that
        // its running guests (a post-copy destination holding the only live copy) stay.
        match restart_dead_daemons(plan, host) {
            Ok(true) => {
                hosts_started.push(format!("{} (daemons restarted, guests kept)", host.name));
                continue;
            }
            Ok(false) => {}
            Err(error) => tracing::warn!("{}: restarting its daemons: {error:#}", host.name),
        }
        // Leftovers of a lab whose processes are gone: namespaces and links outlive them.
        remove_host(host);
        made.hosts.push(host.clone());
        start_host(plan, host)?;
        hosts_started.push(host.name.clone());
    }

    let connections = plan
        .hosts
        .iter()
        .map(|host| connect_checked(plan, host))
        .collect::<Result<Vec<_>>>()?;
    for connection in &connections {
        ensure_pools(plan, connection)?;
    }
    let mut state = LabState {
        host_count: plan.hosts.len() as u32,
        run_netns_preexisted,
        data_disk_sha256: LabState::load()
            .map(|s| s.data_disk_sha256)
            .unwrap_or_default(),
        link_delay_ms: plan.link_delay_ms,
    };
    for spec in guest::lab_guests() {
        ensure_guest(plan, &connections, &spec, &mut state)?;
    }
    system::write_atomically(&plan.state_path(), toml::to_string(&state)?.as_bytes())?;
    write_ferry_config(plan)?;
    Ok((hosts_started, hosts_kept))
}

/// The lab's ferry config: its hosts, and its cloud while the cloud is up.
fn write_ferry_config(plan: &LabPlan) -> Result<()> {
    let mut text = plan.render_ferry_config();
    if nova::cloud_is_up(plan) {
        text.push_str(
            &nova::plan::NovaLabPlan::new(plan, &nova::package_tree_key())
                .render_ferry_config_entry(),
        );
    }
    system::write_atomically(&plan.ferry_config_path(), text.as_bytes())
}

fn write_guest_boot_files(plan: &LabPlan) -> Result<()> {
    let kernel = guest_kernel()?;
    let target = plan.guest_dir().join("vmlinuz");
    let kernel_bytes =
        std::fs::read(&kernel).with_context(|| format!("cannot read {}", kernel.display()))?;
    if std::fs::read(&target).ok().as_deref() != Some(&kernel_bytes[..]) {
        system::write_atomically(&target, &kernel_bytes)?;
    }

    let build_dir = plan.dir.join("build");
    std::fs::create_dir_all(&build_dir)?;
    let source = build_dir.join("guest_init.c");
    std::fs::write(&source, GUEST_INIT_SOURCE)?;
    let binary = build_dir.join("init");
    system::run(
        "cc",
        &[
            "-static",
            "-O2",
            "-o",
            path_str(&binary)?,
            path_str(&source)?,
        ],
    )
    .context("building the guest init program (needs gcc and libc6-dev)")?;
    let init = std::fs::read(&binary)?;
    let archive = cpio::newc_archive(&[
        cpio::CpioEntry::Directory {
            path: "dev",
            mode: 0o755,
        },
        cpio::CpioEntry::CharDevice {
            path: "dev/console",
            mode: 0o600,
            major: 5,
            minor: 1,
        },
        cpio::CpioEntry::Directory {
            path: "proc",
            mode: 0o555,
        },
        cpio::CpioEntry::File {
            path: "init",
            mode: 0o755,
            data: &init,
        },
    ]);
    let initrd = plan.guest_dir().join("initrd.cpio");
    if std::fs::read(&initrd).ok() != Some(archive.clone()) {
        system::write_atomically(&initrd, &archive)?;
    }
    Ok(())
}

/// The guest kernel: `$FERRY_LAB_KERNEL`, else Debian's cloud kernel, downloaded once with
/// apt-get into the cache (kept across `lab down`; `lab down --purge` removes it).
fn guest_kernel() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("FERRY_LAB_KERNEL") {
        return Ok(PathBuf::from(path));
    }
    let cached = Path::new(CACHE_DIR).join("vmlinuz");
    if cached.exists() {
        return Ok(cached);
    }
    let download = Path::new(CACHE_DIR).join("download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)?;
    let image_package = || -> Option<String> {
        let depends = system::run("apt-cache", &["depends", "linux-image-cloud-amd64"]).ok()?;
        depends
            .lines()
            .find_map(|l| l.trim().strip_prefix("Depends: ").map(str::to_string))
    };
    let package = match image_package() {
        Some(package) => package,
        None => {
            system::run("apt-get", &["update", "-q"])?;
            image_package().ok_or_else(|| {
                anyhow!(
                    "apt knows no linux-image-cloud-amd64 package; check the machine's apt sources"
                )
            })?
        }
    };
    let status = Command::new("apt-get")
        .args(["-q", "-o", "APT::Sandbox::User=root", "download", &package])
        .current_dir(&download)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("`apt-get download {package}` failed ({status})");
    }
    let deb = std::fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| anyhow!("apt-get download {package} left no .deb"))?;
    let extracted = download.join("x");
    system::run("dpkg-deb", &["-x", path_str(&deb)?, path_str(&extracted)?])?;
    let vmlinuz = std::fs::read_dir(extracted.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
        })
        .ok_or_else(|| anyhow!("{package} holds no boot/vmlinuz"))?;
    std::fs::copy(&vmlinuz, &cached)?;
    let _ = std::fs::remove_dir_all(&download);
    Ok(cached)
}

fn write_ssh_files(plan: &LabPlan) -> Result<()> {
    let key = plan.operator_key();
    if !key.exists() {
        system::run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "ferry-lab",
                "-f",
                path_str(&key)?,
            ],
        )?;
    }
    std::fs::copy(key.with_extension("pub"), plan.authorized_keys())?;
    let mut public_keys = Vec::new();
    for host in &plan.hosts {
        let host_dir = plan.host_dir(host);
        std::fs::create_dir_all(&host_dir)?;
        let host_key = host_dir.join("ssh_host_ed25519_key");
        if !host_key.exists() {
            system::run(
                "ssh-keygen",
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    &host.name,
                    "-f",
                    path_str(&host_key)?,
                ],
            )?;
        }
        let public = std::fs::read_to_string(host_key.with_extension("pub"))?;
        public_keys.push((host.name.clone(), public));
    }
    system::write_atomically(
        &plan.known_hosts(),
        plan.render_known_hosts(&public_keys).as_bytes(),
    )?;
    // The relay is built whatever the delay, so that a change of delay is only a config.
    link_delay::build_link_relay(&plan.dir.join("build"), &plan.link_relay())?;
    system::write_atomically(&plan.ssh_config_path(), plan.render_ssh_config().as_bytes())?;
    system::write_atomically(&plan.ssh_wrapper(), plan.render_ssh_wrapper().as_bytes())?;
    system::set_mode(&plan.ssh_wrapper(), 0o755)?;
    std::fs::write(plan.dir.join("host_up.sh"), HOST_UP_SCRIPT)?;
    Ok(())
}

/// Connects over qemu+ssh and checks the host says its own name (sshd may take a moment).
fn connect_checked(plan: &LabPlan, host: &LabHost) -> Result<HostConnection> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let attempt = HostConnection::open(&plan.uri(host), CONNECT_TIMEOUT)
            .and_then(|c| crate::runtime::wait(c.host_facts(CALL_TIMEOUT)).map(|facts| (c, facts)));
        match attempt {
            Ok((connection, facts)) if facts.hostname == host.name => return Ok(connection),
            Ok((_, facts)) => bail!(
                "lab host {} answers with hostname {:?}; its UTS namespace is not its own",
                host.name,
                facts.hostname
            ),
            Err(error) if Instant::now() > deadline => {
                return Err(
                    anyhow!(error).context(format!("lab host {} does not answer", host.name))
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn ensure_pools(plan: &LabPlan, connection: &HostConnection) -> Result<()> {
    let pools = [
        DirectoryPool {
            name: "local".into(),
            path: "/var/lib/libvirt/images".into(),
        },
        DirectoryPool {
            name: "shared".into(),
            path: plan.shared_dir().join("instances").display().to_string(),
        },
    ];
    crate::runtime::wait(connection.ensure_directory_pools(&pools, CALL_TIMEOUT))?;
    Ok(())
}

fn ensure_guest(
    plan: &LabPlan,
    connections: &[HostConnection],
    spec: &GuestSpec,
    state: &mut LabState,
) -> Result<()> {
    let mut placement = None;
    for (host, connection) in plan.hosts.iter().zip(connections) {
        let found = crate::runtime::wait(connection.guest_is_active(spec.name, CALL_TIMEOUT))?;
        if let Some(active) = found {
            placement = Some((host, connection, active));
            break;
        }
    }
    let (host, connection, active) = match placement {
        Some(placement) => placement,
        None => {
            let host = &plan.hosts[0];
            let connection = &connections[0];
            if let Some(disk) = &spec.data_disk {
                let sha256 = write_data_disk(plan, host, disk)?;
                state.data_disk_sha256.insert(spec.name.to_string(), sha256);
            }
            let xml = guest::domain_xml(spec, plan);
            crate::runtime::wait(connection.define_guest("local", &xml, CALL_TIMEOUT))?;
            (host, connection, false)
        }
    };
    if spec.start_at_lab_up && !active {
        crate::runtime::wait(connection.start_guest(spec.name, CALL_TIMEOUT))
            .with_context(|| format!("starting guest {} on {}", spec.name, host.name))?;
    }
    Ok(())
}

/// Writes the known content as raw, converts it to qcow2 in the host's local pool, and
/// returns the content's sha256.
fn write_data_disk(plan: &LabPlan, host: &LabHost, disk: &guest::DataDisk) -> Result<String> {
    let content = guest::data_disk_content(disk);
    write_local_qcow2(plan, host, disk.file_name, &content)?;
    Ok(hex(&Sha256::digest(&content)))
}

/// `content` (guest-visible bytes) as a qcow2 named `file_name` in `host`'s local pool, where
/// only the allocated clusters take room. The pool is not refreshed: the caller does that
/// through libvirt once the file is there.
pub fn write_local_qcow2(
    plan: &LabPlan,
    host: &LabHost,
    file_name: &str,
    content: &[u8],
) -> Result<PathBuf> {
    let raw = plan.dir.join("build").join(format!("{file_name}.raw"));
    std::fs::create_dir_all(raw.parent().expect("build dir"))?;
    std::fs::write(&raw, content)?;
    let target = plan.host_local_pool_dir(host).join(file_name);
    system::run(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "qcow2",
            path_str(&raw)?,
            path_str(&target)?,
        ],
    )?;
    std::fs::remove_file(&raw)?;
    Ok(target)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| anyhow!("path {} is not UTF-8", path.display()))
}

/// `ip netns add` leaves /run/netns mounted; undo that when the lab was its only user.
fn release_run_netns() {
    if system::netns_list().is_empty() && Path::new("/run/netns").exists() {
        while system::run("umount", &["/run/netns"]).is_ok() {}
        let _ = std::fs::remove_dir("/run/netns");
    }
}

/// Whether a command line is one of the lab's own processes: the hosts' daemons and holders
/// name their host directory, QEMU names the lab's guest kernel. An operator's clients of the
/// lab (virsh, ssh through the lab's wrapper) are not the lab's, and `lab down` leaves them.
pub fn is_lab_process(cmdline: &str) -> bool {
    cmdline.contains(&format!("{LAB_DIR}/hosts/"))
        || cmdline.contains(&format!("{LAB_DIR}/shared/guest/vmlinuz"))
}

/// Mount points at or below `dir` in this mount namespace.
fn mounts_under(dir: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|mount| mount.starts_with(dir))
        .map(str::to_string)
        .collect()
}

pub struct DownReport {
    pub hosts_removed: Vec<String>,
    pub processes_stopped: usize,
}

/// Removes exactly what the lab made: its processes, namespaces, links and files.
pub fn down(purge_cache: bool) -> Result<DownReport> {
    if !system::is_root() {
        bail!("ferry lab down needs root. Run it as root (sudo ferry lab down).");
    }
    let state = LabState::load();
    let mut hosts_removed = Vec::new();
    let mut processes_stopped = 0;
    let cloud_plan = nova::plan::NovaLabPlan::new(
        &LabPlan::new(state.as_ref().map(|s| s.host_count).unwrap_or(1).max(1))
            .map_err(|e| anyhow!(e))?,
        &nova::package_tree_key(),
    );
    if system::netns_list().contains(&cloud_plan.netns) {
        processes_stopped += system::netns_pids(&cloud_plan.netns).len();
        nova::remove_control_plane(&cloud_plan);
    }
    for netns in system::netns_list() {
        if let Some(index) = netns.strip_prefix(NAME_PREFIX).and_then(|i| i.parse().ok()) {
            let host = LabHost::new(index);
            processes_stopped += system::netns_pids(&host.netns).len();
            remove_host(&host);
            hosts_removed.push(host.name);
        }
    }
    // Stray lab processes whose namespace is already gone (someone ran `ip netns del`).
    let strays = system::pids_whose_cmdline(is_lab_process);
    processes_stopped += strays.len();
    system::terminate(&strays, Duration::from_secs(5));
    for link in system::link_names() {
        if link.starts_with(NAME_PREFIX) {
            let _ = system::run("ip", &["link", "del", &link]);
        }
    }
    if system::link_exists(BRIDGE_NAME) {
        system::run("ip", &["link", "del", BRIDGE_NAME])?;
    }
    // Every mount the lab makes is private to a namespace whose processes are gone by now; a
    // mount still under the lab's directory would let the removal below reach through it.
    if let Some(mount) = mounts_under(LAB_DIR).first() {
        bail!("{mount} is still mounted; unmount it (umount -R {mount}) and run lab down again");
    }
    if Path::new(LAB_DIR).exists() {
        std::fs::remove_dir_all(LAB_DIR).with_context(|| format!("cannot remove {LAB_DIR}"))?;
    }
    if !state.map(|s| s.run_netns_preexisted).unwrap_or(true) {
        release_run_netns();
    }
    if purge_cache && Path::new(CACHE_DIR).exists() {
        std::fs::remove_dir_all(CACHE_DIR)?;
    }
    Ok(DownReport {
        hosts_removed,
        processes_stopped,
    })
}

#[derive(Debug, Serialize)]
pub struct HostStatus {
    pub name: String,
    pub address: String,
    pub namespace_present: bool,
    pub daemons_running: bool,
    pub answers: Result<Vec<String>, String>,
}

pub struct LabStatus {
    pub link_delay_ms: u32,
    pub hosts: Vec<HostStatus>,
    /// The lab's cloud's control plane runs (`lab up --nova`).
    pub cloud_up: bool,
}

/// The link delay, and each host: namespace, daemons, and whether it answers over qemu+ssh
/// (with its guests).
pub fn status() -> Result<LabStatus> {
    let state = LabState::load().ok_or_else(|| anyhow!("no lab here (run `ferry lab up`)"))?;
    let plan = LabPlan::new(state.host_count)
        .and_then(|plan| plan.with_link_delay_ms(state.link_delay_ms))
        .map_err(|e| anyhow!(e))?;
    let namespaces = system::netns_list();
    // Each host is asked on a thread of its own: one host that does not answer costs its own
    // timeout, not everyone's.
    let answers: Vec<_> = plan
        .hosts
        .iter()
        .map(|host| {
            let uri = plan.uri(host);
            std::thread::spawn(move || {
                HostConnection::open(&uri, Duration::from_secs(10))
                    .and_then(|c| crate::runtime::wait(c.domains(Duration::from_secs(10))))
                    .map(|domains| {
                        domains
                            .into_iter()
                            .map(|d| format!("{} ({})", d.name, d.state.as_virsh_str()))
                            .collect()
                    })
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let hosts = plan
        .hosts
        .iter()
        .zip(answers)
        .map(|(host, answer)| HostStatus {
            name: host.name.clone(),
            address: host.address.clone(),
            namespace_present: namespaces.contains(&host.netns),
            daemons_running: host_is_healthy(&plan, host),
            answers: answer
                .join()
                .unwrap_or_else(|_| Err("status thread panicked".into())),
        })
        .collect();
    Ok(LabStatus {
        link_delay_ms: plan.link_delay_ms,
        cloud_up: nova::cloud_is_up(&plan),
        hosts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_processes_are_told_from_the_operators_clients() {
        assert!(is_lab_process(
            "/usr/sbin/sshd -f /var/lib/ferry-lab/hosts/hv1/sshd_config -E /var/lib/ferry-lab/hosts/hv1/sshd.log"
        ));
        assert!(is_lab_process(
            "sh /var/lib/ferry-lab/host_up.sh /var/lib/ferry-lab/hosts/hv2 hv2 10.77.0.12 /var/lib/ferry-lab"
        ));
        assert!(is_lab_process(
            "/usr/bin/qemu-system-x86_64 -name guest=idle,debug-threads=on -kernel /var/lib/ferry-lab/shared/guest/vmlinuz"
        ));
        assert!(!is_lab_process(
            "ssh -F /var/lib/ferry-lab/ssh/config -l root -T -e none -- hv1 sh -c virt-ssh-helper"
        ));
        assert!(!is_lab_process(
            "virsh -c qemu+ssh://root@hv1/system?command=/var/lib/ferry-lab/ssh/ssh&no_tty=1 list"
        ));
    }
}
