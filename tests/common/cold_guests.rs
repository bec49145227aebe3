//! The cold-migration test guests (`cold-a`, `cold-b`, …), shared by the cold lab tests and the
//! TUI's: each defined on hv1 with a 64 MiB qcow2 data disk of known content in hv1's private
//! `local` pool, booting an init that answers the ACPI power button (tests/cold_guest_init.c),
//! and removed from every host when the test ends, pass or fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferry::lab::cpio::{newc_archive, CpioEntry};
use ferry::lab::plan::{LabHost, CACHE_DIR};
use ferry::libvirt::lifecycle::{DomainKey, DomainPresence};
use ferry::libvirt::volume_copy::VolumeRef;
use ferry::libvirt::HostConnection;
use sha2::{Digest, Sha256};

use super::{disk_content_sha256, Lab, CALL_TIMEOUT};

const GUEST_INIT_SOURCE: &str = include_str!("../cold_guest_init.c");
/// Inside every host; the lab's `local` pool.
const LOCAL_POOL_PATH: &str = "/var/lib/libvirt/images";
const DATA_DISK_MIB: usize = 64;
/// The pattern fills half the disk; the rest reads as zeros (qcow2 keeps it unallocated).
const DATA_PATTERN_MIB: usize = 32;
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// How a test guest treats the ACPI power button.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Acpi {
    PowerOff,
    Ignore,
}

#[derive(Clone, Copy)]
pub struct GuestSpec {
    pub name: &'static str,
    pub running: bool,
    pub acpi: Acpi,
    /// Seeds the data disk's pattern, so every guest's disk is its own.
    pub seed: u64,
}

pub fn data_volume_name(guest: &str) -> String {
    format!("{guest}-data.qcow2")
}

/// The data disk's guest-visible content: a xorshift stream, then zeros.
fn data_content(seed: u64) -> Vec<u8> {
    let mut content = vec![0u8; DATA_DISK_MIB << 20];
    assert_ne!(seed, 0, "xorshift needs a non-zero seed");
    let mut state = seed;
    for chunk in content[..DATA_PATTERN_MIB << 20].chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    content
}

pub use ferry::lab::hex;

pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// button.ko of the lab's guest kernel, fetched once from the same Debian package as the
/// kernel (`apt-get download`, as `ferry lab up` does) and cached beside the kernel.
fn button_module(lab: &Lab) -> Vec<u8> {
    let cache = Path::new(CACHE_DIR).join("cold-guest");
    let cached = cache.join("button.ko");
    let kernel = std::fs::read(lab.plan.guest_dir().join("vmlinuz")).expect("lab guest kernel");
    if let Ok(module) = std::fs::read(&cached) {
        return module;
    }
    let depends = run("apt-cache", &["depends", "linux-image-cloud-amd64"]);
    let package = depends
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .expect("apt knows linux-image-cloud-amd64")
        .to_string();
    let release = package.trim_start_matches("linux-image-").to_string();
    assert!(
        kernel
            .windows(release.len())
            .any(|w| w == release.as_bytes()),
        "the lab's guest kernel is not {release} (set by FERRY_LAB_KERNEL?): no matching button.ko"
    );
    let download = cache.join("download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download).unwrap();
    let status = Command::new("apt-get")
        .args(["-q", "-o", "APT::Sandbox::User=root", "download", &package])
        .current_dir(&download)
        .status()
        .expect("apt-get");
    assert!(status.success(), "apt-get download {package}");
    let deb = std::fs::read_dir(&download)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb");
    let extracted = download.join("x");
    run(
        "dpkg-deb",
        &["-x", deb.to_str().unwrap(), extracted.to_str().unwrap()],
    );
    let module = extracted
        .join("lib/modules")
        .join(&release)
        .join("kernel/drivers/acpi/button.ko");
    std::fs::copy(&module, &cached)
        .unwrap_or_else(|e| panic!("{} from {package}: {e}", module.display()));
    let _ = std::fs::remove_dir_all(&download);
    std::fs::read(&cached).unwrap()
}

/// The test guests' initramfs in the lab's shared directory (same path on every host),
/// rebuilt only when its content changes.
fn ensure_initrd(lab: &Lab) -> PathBuf {
    let dir = lab.plan.shared_dir().join("cold-guest");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("init.c");
    let binary = dir.join("init");
    std::fs::write(&source, GUEST_INIT_SOURCE).unwrap();
    run(
        "cc",
        &[
            "-static",
            "-O2",
            "-o",
            binary.to_str().unwrap(),
            source.to_str().unwrap(),
        ],
    );
    let init = std::fs::read(&binary).unwrap();
    let button = button_module(lab);
    let archive = newc_archive(&[
        CpioEntry::Directory {
            path: "dev",
            mode: 0o755,
        },
        CpioEntry::CharDevice {
            path: "dev/console",
            mode: 0o600,
            major: 5,
            minor: 1,
        },
        CpioEntry::Directory {
            path: "proc",
            mode: 0o555,
        },
        CpioEntry::File {
            path: "init",
            mode: 0o755,
            data: &init,
        },
        CpioEntry::File {
            path: "button.ko",
            mode: 0o644,
            data: &button,
        },
    ]);
    let initrd = dir.join("initrd.cpio");
    if std::fs::read(&initrd).ok().as_deref() != Some(&archive[..]) {
        let partial = dir.join("initrd.cpio.partial");
        std::fs::write(&partial, &archive).unwrap();
        std::fs::rename(&partial, &initrd).unwrap();
    }
    initrd
}

fn domain_xml(lab: &Lab, spec: &GuestSpec, initrd: &Path) -> String {
    let name = spec.name;
    let acpi = match spec.acpi {
        Acpi::PowerOff => "poweroff",
        Acpi::Ignore => "ignore",
    };
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <description>ferry cold-migration test guest</description>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 ferry.name={name} ferry.acpi={acpi}</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact' check='none'><model fallback='allow'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{pool}/{volume}'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <serial type='pty'>
      <log file='/var/log/libvirt/qemu/{name}-serial.log' append='on'/>
      <target port='0'/>
    </serial>
    <console type='pty'/>
    <memballoon model='none'/>
  </devices>
</domain>
",
        kernel = lab.plan.guest_dir().join("vmlinuz").display(),
        initrd = initrd.display(),
        pool = LOCAL_POOL_PATH,
        volume = data_volume_name(name),
    )
}

pub fn presence(lab: &Lab, host: &LabHost, guest: &str) -> Option<DomainPresence> {
    lab.connect(host)
        .domain_presence(&DomainKey::Name(guest.to_string()), CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("{}: {e}", host.name))
}

pub fn local_volume(guest: &str) -> VolumeRef {
    VolumeRef {
        pool: "local".into(),
        name: data_volume_name(guest),
    }
}

pub fn volume_exists(lab: &Lab, host: &LabHost, guest: &str) -> bool {
    let connection = lab.connect(host);
    refresh_local_pool(&connection);
    ferry::runtime::wait(connection.volume(&local_volume(guest), CALL_TIMEOUT))
        .unwrap_or_else(|e| panic!("{}: {e}", host.name))
        .is_some()
}

pub fn refresh_local_pool(connection: &HostConnection) {
    let _ = ferry::runtime::wait(connection.refresh_storage_pool("local", CALL_TIMEOUT));
}

pub fn disk_sha256_on(lab: &Lab, host: &LabHost, guest: &str) -> String {
    disk_content_sha256(
        &lab.plan
            .host_local_pool_dir(host)
            .join(data_volume_name(guest)),
    )
}

/// Removes the named guests and their data volumes from every host.
pub fn remove_everywhere(lab: &Lab, names: &[&str]) {
    for host in &lab.plan.hosts {
        let Ok(connection) = HostConnection::open(&lab.plan.uri(host), CALL_TIMEOUT) else {
            eprintln!("cleanup: {} unreachable", host.name);
            continue;
        };
        for name in names {
            let key = DomainKey::Name(name.to_string());
            if let Ok(Some(found)) = connection.domain_presence(&key, CALL_TIMEOUT) {
                if found.active {
                    let _ = connection.power_off(&key, CALL_TIMEOUT);
                }
                let _ = connection.undefine_domain(&key, CALL_TIMEOUT);
            }
            let _ =
                ferry::runtime::wait(connection.delete_volume(&local_volume(name), CALL_TIMEOUT));
            // A file libvirt did not know about (a pool not refreshed) goes too.
            let _ = std::fs::remove_file(
                lab.plan
                    .host_local_pool_dir(host)
                    .join(data_volume_name(name)),
            );
        }
        refresh_local_pool(&connection);
    }
}

/// The test's guests; removed from every host when dropped, pass or fail.
pub struct ColdGuests<'a> {
    lab: &'a Lab,
    names: Vec<&'static str>,
    /// sha256 of each guest's data disk as written.
    disk_sha256: Vec<String>,
}

impl ColdGuests<'_> {
    pub fn sha256_of(&self, guest: &str) -> &str {
        let index = self.names.iter().position(|n| *n == guest).unwrap();
        &self.disk_sha256[index]
    }
}

impl Drop for ColdGuests<'_> {
    fn drop(&mut self) {
        remove_everywhere(self.lab, &self.names);
    }
}

/// Idempotent: whatever an earlier run left, the guests end defined on hv1 only, with fresh
/// data disks, running or shut off as asked (running ones have printed their banner).
pub fn set_up<'a>(lab: &'a Lab, specs: &[GuestSpec]) -> ColdGuests<'a> {
    let names: Vec<&'static str> = specs.iter().map(|s| s.name).collect();
    remove_everywhere(lab, &names);
    let guests = ColdGuests {
        lab,
        names,
        disk_sha256: Vec::new(),
    };
    let initrd = ensure_initrd(lab);
    let host = lab.plan.hosts[0].clone();
    let connection = lab.connect(&host);
    let mut guests = guests;
    for spec in specs {
        let content = data_content(spec.seed);
        guests.disk_sha256.push(hex(&Sha256::digest(&content)));
        ferry::lab::write_local_qcow2(&lab.plan, &host, &data_volume_name(spec.name), &content)
            .unwrap_or_else(|e| panic!("data disk of {}: {e}", spec.name));
        refresh_local_pool(&connection);
        connection
            .define_domain(&domain_xml(lab, spec, &initrd), CALL_TIMEOUT)
            .unwrap_or_else(|e| panic!("defining {}: {e}", spec.name));
        if spec.running {
            let offset = lab.console_length(&host, spec.name);
            lab.set_running(&host, spec.name, true);
            lab.wait_for_console(&host, spec.name, offset, "up: acpi=", BOOT_TIMEOUT)
                .unwrap();
        }
    }
    guests
}
