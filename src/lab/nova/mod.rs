//! The lab's cloud (`ferry lab up --nova`): a real OpenStack control plane in namespace
//! `ferry-nova` on the lab bridge, and a real nova-compute beside each lab host's own libvirtd,
//! so that Nova and ferry see the same hypervisors.
//!
//! The packages come from Debian bookworm (OpenStack Zed: Nova 26, compute API up to 2.93),
//! installed once into a tree cached under `/var/cache/ferry-lab/` and named by the digest of
//! the script that builds it; the control plane and each compute run on overlays of it, so the
//! tree is never written and `lab down` leaves it (`--purge` removes it). What happens inside
//! the namespaces is in `ctl_up.sh` and `compute_up.sh`; this file starts, checks and seeds.

pub mod plan;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use super::plan::{LabHost, LabPlan, BRIDGE_NAME, CACHE_DIR, SUBNET_BITS};
use super::{path_str, system};
use plan::{NovaLabPlan, LAB_FLAVORS, LAB_IMAGES, LAB_SERVERS};

const BUILD_SCRIPT: &str = include_str!("build-chroot.sh");
const CTL_UP_SCRIPT: &str = include_str!("ctl_up.sh");
const COMPUTE_UP_SCRIPT: &str = include_str!("compute_up.sh");

/// The control plane's first start creates every database: minutes on two busy cores.
const CONTROL_PLANE_READY_TIMEOUT: Duration = Duration::from_secs(420);
const COMPUTE_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// nova-compute registers, then the cell learns the host: both take some seconds each.
const HYPERVISORS_UP_TIMEOUT: Duration = Duration::from_secs(240);
const SERVER_ACTIVE_TIMEOUT: Duration = Duration::from_secs(180);

pub struct NovaUpReport {
    pub control_plane_started: bool,
    pub package_tree_built: bool,
    pub computes_started: Vec<String>,
    pub clouds_yaml: PathBuf,
    /// From the start of `up_cloud` to every hypervisor up in Nova.
    pub to_hypervisors_up: Duration,
}

/// The package tree for this version of the build script: built if missing, and the trees of
/// older scripts removed (they would only take disk).
fn ensure_package_tree(plan: &NovaLabPlan) -> Result<(PathBuf, bool)> {
    let tree = plan.package_tree();
    if tree.join("usr/bin/nova-compute").exists() {
        return Ok((tree, false));
    }
    std::fs::create_dir_all(CACHE_DIR)?;
    if let Ok(entries) = std::fs::read_dir(CACHE_DIR) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(plan::PACKAGE_TREE_PREFIX) && entry.path() != tree {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let script = plan.lab_dir.join("build/build-nova-tree.sh");
    std::fs::create_dir_all(script.parent().expect("a build directory"))?;
    std::fs::write(&script, BUILD_SCRIPT)?;
    eprintln!(
        "lab: building the Nova package tree once into {} (several minutes; kept afterwards)",
        tree.display()
    );
    let log = plan.lab_dir.join("build/build-nova-tree.log");
    let status = Command::new("bash")
        .arg(&script)
        .arg(&tree)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(log.with_extension("err"))?)
        .status()
        .context("cannot run bash")?;
    if !status.success() {
        bail!(
            "building the Nova package tree failed ({status}); see {} and {}",
            log.display(),
            log.with_extension("err").display()
        );
    }
    Ok((tree, true))
}

/// The digest that names the package tree: the build script is all that decides its content.
pub fn package_tree_key() -> String {
    super::hex(&Sha256::digest(BUILD_SCRIPT.as_bytes()))[..16].to_string()
}

fn read_pid(file: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find_map(|line| {
            let (key, pid) = line.split_once(' ')?;
            (key == name).then(|| pid.trim().parse().ok())?
        })
        .filter(|pid| system::process_alive(*pid))
}

fn control_plane_holder(plan: &NovaLabPlan) -> Option<i32> {
    let status = std::fs::read_to_string(plan.ctl_dir().join("status")).unwrap_or_default();
    if !status.starts_with("ready") || !system::netns_list().contains(&plan.netns) {
        return None;
    }
    let holder = read_pid(&plan.ctl_dir().join("pids"), "holder")?;
    let all_alive = [
        "nova-api",
        "nova-conductor",
        "nova-scheduler",
        "keystone",
        "mariadb",
    ]
    .iter()
    .all(|service| read_pid(&plan.ctl_dir().join("pids"), service).is_some());
    all_alive.then_some(holder)
}

/// Stops every process of the control plane (all of namespace `ferry-nova`) and removes the
/// namespace, its link and its state. Its mounts were private to its holder and go with it.
pub fn remove_control_plane(plan: &NovaLabPlan) {
    if system::netns_list().contains(&plan.netns) {
        let pids = system::netns_pids(&plan.netns);
        system::terminate(&pids, Duration::from_secs(10));
        if let Err(error) = system::run("ip", &["netns", "del", &plan.netns]) {
            tracing::warn!("{error:#}");
        }
    }
    if system::link_exists(&plan.veth) {
        let _ = system::run("ip", &["link", "del", &plan.veth]);
    }
    let _ = std::fs::remove_dir_all(plan.ctl_dir());
}

fn spawn_detached(mut command: Command, log: &Path) -> Result<std::process::Child> {
    let log = std::fs::File::create(log)?;
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid and close_range are async-signal-safe. The cloud outlives this command
    // and must not share the operator's session, terminal or descriptors (a test's flock).
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            system::close_inherited_descriptors_at_exec()
        });
    }
    command.spawn().context("cannot start a lab cloud process")
}

/// Waits for `dir/status` to say ready; a failure it reports, or the child's exit, is an error.
fn wait_ready(
    what: &str,
    dir: &Path,
    child: &mut std::process::Child,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        if status.starts_with("ready") {
            return Ok(());
        }
        if let Some(reason) = status.strip_prefix("failed: ") {
            bail!("{what}: {}", reason.trim());
        }
        if let Ok(Some(exit)) = child.try_wait() {
            bail!(
                "{what} stopped while starting ({exit}); see {}",
                dir.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{what} was not ready within {timeout:?}; see {}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_control_plane(plan: &NovaLabPlan, tree: &Path) -> Result<()> {
    remove_control_plane(plan);
    std::fs::create_dir_all(plan.ctl_dir())?;
    let script = plan.lab_dir.join("nova/ctl_up.sh");
    std::fs::write(&script, CTL_UP_SCRIPT)?;
    system::add_namespace_on_bridge(
        &plan.netns,
        &plan.veth,
        BRIDGE_NAME,
        &format!("{}/{SUBNET_BITS}", plan.address),
    )?;
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &plan.netns])
        .args(["unshare", "--mount", "--propagation", "private"])
        .arg("bash")
        .arg(&script)
        .arg(tree)
        .arg(plan.ctl_dir())
        .arg(&plan.address)
        .arg(&plan.password);
    let mut child = spawn_detached(command, &plan.ctl_dir().join("ctl.log"))?;
    wait_ready(
        "the lab cloud's control plane",
        &plan.ctl_dir(),
        &mut child,
        CONTROL_PLANE_READY_TIMEOUT,
    )
}

fn host_holder(lab: &LabPlan, host: &LabHost) -> Result<i32> {
    read_pid(&lab.host_dir(host).join("pids"), "holder")
        .ok_or_else(|| anyhow!("lab host {} has no running holder process", host.name))
}

fn compute_is_running(plan: &NovaLabPlan, host: &LabHost) -> bool {
    let node = plan.compute_dir(host);
    let status = std::fs::read_to_string(node.join("status")).unwrap_or_default();
    status.starts_with("ready")
        && read_pid(&node.join("pids"), "holder").is_some()
        && read_pid(&node.join("pids"), "nova-compute").is_some()
}

fn start_compute(plan: &NovaLabPlan, lab: &LabPlan, host: &LabHost, tree: &Path) -> Result<()> {
    let node = plan.compute_dir(host);
    if let Some(holder) = read_pid(&node.join("pids"), "holder") {
        system::terminate(&[holder], Duration::from_secs(5));
    }
    if let Some(compute) = read_pid(&node.join("pids"), "nova-compute") {
        system::terminate(&[compute], Duration::from_secs(10));
    }
    // A fresh upper directory: nova-compute's state is in Nova's database, not here.
    let _ = std::fs::remove_dir_all(&node);
    std::fs::create_dir_all(&node)?;
    let instances = plan.host_instances_dir(lab, host);
    std::fs::create_dir_all(&instances)?;
    std::fs::create_dir_all(plan::INSTANCES_DIR)?;
    let holder = host_holder(lab, host)?.to_string();
    // The instances directory at one path on every host, each host's own underneath: Nova
    // assumes the same instances_path everywhere, and libvirtd must open what Nova writes.
    let bind = format!(
        "mountpoint -q {dir} || mount --bind {own} {dir}",
        dir = plan::INSTANCES_DIR,
        own = path_str(&instances)?
    );
    system::run("nsenter", &["-t", &holder, "-m", "--", "sh", "-c", &bind])
        .with_context(|| format!("{}: binding the instances directory", host.name))?;
    let script = plan.lab_dir.join("nova/compute_up.sh");
    std::fs::write(&script, COMPUTE_UP_SCRIPT)?;
    let mut command = Command::new("nsenter");
    command
        .args(["-t", &holder, "-m", "-u", "-n", "--"])
        .args(["unshare", "--mount", "--propagation", "private"])
        .arg("bash")
        .arg(&script)
        .arg(tree)
        .arg(&node)
        .arg(&host.name)
        .arg(&host.address)
        .arg(&plan.address)
        .arg(&plan.password)
        .arg(plan::INSTANCES_DIR)
        .arg(lab.operator_key())
        .arg(plan.live_migration_uri(lab))
        .arg(plan.live_migration_bandwidth_mib_per_second.to_string());
    let mut child = spawn_detached(command, &node.join("up.log"))?;
    wait_ready(
        &format!("nova-compute on {}", host.name),
        &node,
        &mut child,
        COMPUTE_READY_TIMEOUT,
    )
}

/// Runs a command inside the control plane's namespaces and tree (`openstack`, `nova-manage`).
fn in_control_plane(plan: &NovaLabPlan, args: &[&str]) -> Result<String> {
    let holder = read_pid(&plan.ctl_dir().join("pids"), "holder")
        .ok_or_else(|| anyhow!("the lab cloud's control plane is not running"))?
        .to_string();
    let root = plan.ctl_dir().join("root");
    let mut full = vec!["-t", &holder, "-m", "-n", "--", "chroot", path_str(&root)?];
    full.extend_from_slice(args);
    system::run("nsenter", &full)
}

fn openstack(plan: &NovaLabPlan, args: &[&str]) -> Result<String> {
    let mut full = vec![
        "env",
        "OS_CLOUD=ferry-lab",
        "OS_CLIENT_CONFIG_FILE=/ferry-lab/clouds.yaml",
        "openstack",
        "--os-compute-api-version",
        "2.74",
    ];
    full.extend_from_slice(args);
    in_control_plane(plan, &full)
}

fn wait_for_hypervisors(plan: &NovaLabPlan, lab: &LabPlan) -> Result<()> {
    let deadline = Instant::now() + HYPERVISORS_UP_TIMEOUT;
    let wanted: Vec<&str> = lab.hosts.iter().map(|h| h.name.as_str()).collect();
    loop {
        let _ = in_control_plane(plan, &["nova-manage", "cell_v2", "discover_hosts"]);
        let listing = openstack(
            plan,
            &[
                "hypervisor",
                "list",
                "-f",
                "value",
                "-c",
                "Hypervisor Hostname",
                "-c",
                "State",
            ],
        )
        .unwrap_or_default();
        let up: Vec<&str> = listing
            .lines()
            .filter_map(|line| line.strip_suffix(" up"))
            .collect();
        if wanted.iter().all(|name| up.contains(name)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the lab cloud's hypervisors were not all up within {HYPERVISORS_UP_TIMEOUT:?} \
                 (up: {up:?}); see {}/*/compute.out",
                plan.nova_dir().display()
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Images, flavors and the lab's servers, each made only if missing. Images and flavors are
/// made once per control plane (a marker says so): each `openstack` call costs seconds.
fn seed(plan: &NovaLabPlan, lab: &LabPlan) -> Result<()> {
    let marker = plan.ctl_dir().join("seeded");
    if !marker.exists() {
        seed_images_and_flavors(plan, lab)?;
        std::fs::write(&marker, "images and flavors made\n")?;
    }
    seed_servers(plan)
}

fn seed_images_and_flavors(plan: &NovaLabPlan, lab: &LabPlan) -> Result<()> {
    let images_dir = plan.exchange_dir();
    for file in ["vmlinuz", "initrd.cpio"] {
        std::fs::copy(lab.guest_dir().join(file), images_dir.join(file))
            .with_context(|| format!("copying the guest's {file} for Glance"))?;
    }
    in_control_plane(
        plan,
        &[
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "/ferry-lab/blank.qcow2",
            "64M",
        ],
    )?;
    let existing_images = openstack(plan, &["image", "list", "-f", "value", "-c", "Name"])?;
    let has_image = |name: &str| existing_images.lines().any(|line| line == name);
    let id_of = |kind: &str, name: &str| -> Result<String> {
        Ok(
            openstack(plan, &[kind, "show", name, "-f", "value", "-c", "id"])?
                .trim()
                .to_string(),
        )
    };
    for (name, format, file) in [
        (plan::KERNEL_IMAGE, "aki", "vmlinuz"),
        (plan::RAMDISK_IMAGE, "ari", "initrd.cpio"),
    ] {
        if !has_image(name) {
            let path = format!("/ferry-lab/{file}");
            openstack(
                plan,
                &[
                    "image",
                    "create",
                    "--public",
                    "--disk-format",
                    format,
                    "--container-format",
                    format,
                    "--file",
                    &path,
                    name,
                ],
            )?;
        }
    }
    let kernel_id = id_of("image", plan::KERNEL_IMAGE)?;
    let ramdisk_id = id_of("image", plan::RAMDISK_IMAGE)?;
    for image in LAB_IMAGES {
        if has_image(image.name) {
            continue;
        }
        let kernel = format!("kernel_id={kernel_id}");
        let ramdisk = format!("ramdisk_id={ramdisk_id}");
        let command_line = format!("os_command_line={}", image.kernel_command_line());
        openstack(
            plan,
            &[
                "image",
                "create",
                "--public",
                "--disk-format",
                "qcow2",
                "--container-format",
                "bare",
                "--file",
                "/ferry-lab/blank.qcow2",
                "--property",
                &kernel,
                "--property",
                &ramdisk,
                "--property",
                &command_line,
                image.name,
            ],
        )?;
    }
    let existing_flavors = openstack(
        plan,
        &["flavor", "list", "--all", "-f", "value", "-c", "Name"],
    )?;
    for flavor in LAB_FLAVORS {
        if existing_flavors.lines().any(|line| line == flavor.name) {
            continue;
        }
        let (ram, vcpus, disk) = (
            flavor.memory_mib.to_string(),
            flavor.vcpus.to_string(),
            flavor.disk_gib.to_string(),
        );
        openstack(
            plan,
            &[
                "flavor",
                "create",
                "--public",
                "--ram",
                &ram,
                "--vcpus",
                &vcpus,
                "--disk",
                &disk,
                "--id",
                flavor.name,
                flavor.name,
            ],
        )?;
    }
    Ok(())
}

fn seed_servers(plan: &NovaLabPlan) -> Result<()> {
    for server in LAB_SERVERS {
        let listing = openstack(
            plan,
            &[
                "server",
                "list",
                "--all-projects",
                "--name",
                &format!("^{}$", server.name),
                "-f",
                "value",
                "-c",
                "Status",
            ],
        )?;
        if listing.lines().any(|status| status == "ACTIVE") {
            continue;
        }
        let zone = format!("nova:{}", server.host);
        openstack(
            plan,
            &[
                "server",
                "create",
                "--nic",
                "none",
                "--image",
                server.image,
                "--flavor",
                server.flavor,
                "--availability-zone",
                &zone,
                server.name,
            ],
        )?;
        let deadline = Instant::now() + SERVER_ACTIVE_TIMEOUT;
        loop {
            let status = openstack(
                plan,
                &["server", "show", server.name, "-f", "value", "-c", "status"],
            )?;
            match status.trim() {
                "ACTIVE" => break,
                "ERROR" => bail!(
                    "the lab's Nova server {} went to ERROR: {}",
                    server.name,
                    openstack(
                        plan,
                        &["server", "show", server.name, "-f", "value", "-c", "fault"]
                    )
                    .unwrap_or_default()
                    .trim()
                ),
                _ if Instant::now() > deadline => bail!(
                    "the lab's Nova server {} was not ACTIVE within {SERVER_ACTIVE_TIMEOUT:?}",
                    server.name
                ),
                _ => std::thread::sleep(Duration::from_secs(1)),
            }
        }
    }
    Ok(())
}

/// Brings the cloud up beside an already running lab (`lab::up` calls it for `--nova`).
pub fn up_cloud(lab: &LabPlan) -> Result<NovaUpReport> {
    let started = Instant::now();
    let plan = NovaLabPlan::new(lab, &package_tree_key());
    std::fs::create_dir_all(plan.nova_dir())?;
    let (tree, package_tree_built) = ensure_package_tree(&plan)?;
    let control_plane_started = control_plane_holder(&plan).is_none();
    let started = if package_tree_built {
        Instant::now()
    } else {
        started
    };
    if control_plane_started {
        start_control_plane(&plan, &tree)?;
    }
    // clouds.yaml: for the operator (and ferry) here, and inside the control plane for the
    // lab's own `openstack` calls.
    system::write_atomically(
        &plan.clouds_yaml_path(),
        plan.render_clouds_yaml().as_bytes(),
    )?;
    system::write_atomically(
        &plan.exchange_dir().join("clouds.yaml"),
        plan.render_clouds_yaml().as_bytes(),
    )?;
    let mut computes_started = Vec::new();
    for host in &lab.hosts {
        if control_plane_started || !compute_is_running(&plan, host) {
            start_compute(&plan, lab, host, &tree)?;
            computes_started.push(host.name.clone());
        }
    }
    wait_for_hypervisors(&plan, lab)?;
    let to_hypervisors_up = started.elapsed();
    seed(&plan, lab)?;
    Ok(NovaUpReport {
        control_plane_started,
        package_tree_built,
        computes_started,
        clouds_yaml: plan.clouds_yaml_path(),
        to_hypervisors_up,
    })
}

/// Whether the lab's cloud is running (its control plane's services are alive).
pub fn cloud_is_up(lab: &LabPlan) -> bool {
    control_plane_holder(&NovaLabPlan::new(lab, &package_tree_key())).is_some()
}

/// Stops the cloud: the control plane's namespace; nova-compute goes with each lab host.
pub fn down_cloud(lab: &LabPlan) {
    let plan = NovaLabPlan::new(lab, &package_tree_key());
    for host in &lab.hosts {
        let node = plan.compute_dir(host);
        let pids: Vec<i32> = ["nova-compute", "holder"]
            .iter()
            .filter_map(|name| read_pid(&node.join("pids"), name))
            .collect();
        system::terminate(&pids, Duration::from_secs(10));
    }
    remove_control_plane(&plan);
}
