//! What the lab's cloud is made of, as plain data: its names, addresses, paths, the images,
//! flavors and servers it seeds, and the text of `clouds.yaml`. No I/O, so all of it is tested.

use std::path::{Path, PathBuf};

use super::super::plan::{LabHost, LabPlan, CACHE_DIR, SUBNET_PREFIX};

/// Cached package trees are named this plus the digest of the script that built them.
pub const PACKAGE_TREE_PREFIX: &str = "nova-tree-";
/// One path on every host (each host's own directory is bound there in its mount namespace):
/// Nova assumes every compute has the same `instances_path`.
pub const INSTANCES_DIR: &str = "/var/lib/ferry-lab/nova-instances";
/// The cloud's name in `clouds.yaml`, with the admin user.
pub const CLOUD_NAME: &str = "ferry-lab";
/// The same cloud as an ordinary project's member, without the admin role.
pub const MEMBER_CLOUD_NAME: &str = "ferry-lab-member";
pub const KERNEL_IMAGE: &str = "ferry-guest-kernel";
pub const RAMDISK_IMAGE: &str = "ferry-guest-initrd";

/// A Glance image that boots the lab's own guest program with its workload on the command
/// line, so a server's memory really is dirtied while Nova migrates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabImage {
    pub name: &'static str,
    pub workload_mib: u64,
    pub dirty_mib_per_second: u64,
}

impl LabImage {
    pub fn kernel_command_line(&self) -> String {
        format!(
            "console=ttyS0 quiet panic=-1 ferry.name={} ferry.mem_mib={} ferry.dirty_mibps={}",
            self.name, self.workload_mib, self.dirty_mib_per_second
        )
    }
}

pub const LAB_IMAGES: &[LabImage] = &[
    LabImage {
        name: "ferry-idle",
        workload_mib: 16,
        dirty_mib_per_second: 0,
    },
    // Dirties a small working set slowly: converges at the lab's bandwidth cap, but a live
    // migration still moves memory that changes under it.
    LabImage {
        name: "ferry-dirty",
        workload_mib: 96,
        dirty_mib_per_second: 8,
    },
    // Dirties 200 MiB/s of 384 MiB: never converges at the cloud's 40 MiB/s cap without a
    // pause (Nova's force-complete) or an abort.
    LabImage {
        name: "ferry-busy",
        workload_mib: 384,
        dirty_mib_per_second: 200,
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabFlavor {
    pub name: &'static str,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub disk_gib: u32,
}

pub const LAB_FLAVORS: &[LabFlavor] = &[
    LabFlavor {
        name: "ferry.small",
        memory_mib: 256,
        vcpus: 1,
        disk_gib: 1,
    },
    LabFlavor {
        name: "ferry.medium",
        memory_mib: 512,
        vcpus: 1,
        disk_gib: 1,
    },
    // The resize target: more memory and a second vCPU.
    LabFlavor {
        name: "ferry.large",
        memory_mib: 768,
        vcpus: 2,
        disk_gib: 2,
    },
];

/// Servers `lab up --nova` keeps running, each on a named host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabServer {
    pub name: &'static str,
    pub image: &'static str,
    pub flavor: &'static str,
    pub host: &'static str,
}

pub const LAB_SERVERS: &[LabServer] = &[LabServer {
    name: "nova-idle",
    image: "ferry-idle",
    flavor: "ferry.small",
    host: "hv2",
}];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NovaLabPlan {
    pub lab_dir: PathBuf,
    pub netns: String,
    /// The operator-side end of the control plane's veth pair, on the lab bridge.
    pub veth: String,
    pub address: String,
    /// Every service user's, the admin's and the member's password: a lab, not a cloud.
    pub password: String,
    pub package_tree_key: String,
    /// Nova's `[libvirt] live_migration_bandwidth` on every compute: low enough that the
    /// `ferry-busy` workload never converges, high enough that the others do in seconds.
    pub live_migration_bandwidth_mib_per_second: u32,
}

impl NovaLabPlan {
    pub fn new(lab: &LabPlan, package_tree_key: &str) -> NovaLabPlan {
        NovaLabPlan {
            lab_dir: lab.dir.clone(),
            netns: "ferry-nova".into(),
            veth: "ferry-nova-v".into(),
            address: format!("{SUBNET_PREFIX}.10"),
            password: "ferry-lab-secret".into(),
            package_tree_key: package_tree_key.into(),
            live_migration_bandwidth_mib_per_second: 40,
        }
    }

    pub fn package_tree(&self) -> PathBuf {
        Path::new(CACHE_DIR).join(format!("{PACKAGE_TREE_PREFIX}{}", self.package_tree_key))
    }
    pub fn nova_dir(&self) -> PathBuf {
        self.lab_dir.join("nova")
    }
    pub fn ctl_dir(&self) -> PathBuf {
        self.nova_dir().join("control")
    }
    /// Bound at `/ferry-lab` inside the control plane: how files reach its private overlay.
    pub fn exchange_dir(&self) -> PathBuf {
        self.ctl_dir().join("exchange")
    }
    pub fn compute_dir(&self, host: &LabHost) -> PathBuf {
        self.nova_dir().join(format!("compute-{}", host.name))
    }
    /// Where a host's instances really are; bound at [`INSTANCES_DIR`] inside the host.
    pub fn host_instances_dir(&self, lab: &LabPlan, host: &LabHost) -> PathBuf {
        lab.host_dir(host).join("nova-instances")
    }
    pub fn clouds_yaml_path(&self) -> PathBuf {
        self.lab_dir.join("clouds.yaml")
    }
    pub fn auth_url(&self) -> String {
        format!("http://{}:5000/v3", self.address)
    }

    /// Nova's live migration URI template: the lab's own ssh wrapper, as ferry's own lab
    /// migrations use, so the source libvirtd reaches the destination with the lab's key.
    pub fn live_migration_uri(&self, lab: &LabPlan) -> String {
        super::super::plan::lab_uri("%s", &lab.ssh_wrapper())
    }

    pub fn render_clouds_yaml(&self) -> String {
        let cloud = |name: &str, user: &str, project: &str| {
            format!(
                "  {name}:\n    auth:\n      auth_url: {url}\n      username: {user}\n      \
                 password: {password}\n      project_name: {project}\n      \
                 user_domain_name: Default\n      project_domain_name: Default\n    \
                 region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n",
                url = self.auth_url(),
                password = self.password,
            )
        };
        format!(
            "# The ferry lab's OpenStack cloud (written by `ferry lab up --nova`).\nclouds:\n{}{}",
            cloud(CLOUD_NAME, "admin", "admin"),
            cloud(MEMBER_CLOUD_NAME, "demo", "demo")
        )
    }

    /// The `[[clouds]]` entry the lab adds to its ferry config.
    pub fn render_ferry_config_entry(&self) -> String {
        format!(
            "\n[[clouds]]\nname = \"{CLOUD_NAME}\"\nclouds_yaml = \"{}\"\n",
            self.clouds_yaml_path().display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn plan() -> (LabPlan, NovaLabPlan) {
        let lab = LabPlan::new(3).unwrap();
        let nova = NovaLabPlan::new(&lab, "0123456789abcdef");
        (lab, nova)
    }

    #[test]
    fn the_control_plane_has_an_address_no_host_has() {
        let (lab, nova) = plan();
        assert!(lab.hosts.iter().all(|host| host.address != nova.address));
        assert!(nova.address.starts_with(SUBNET_PREFIX));
        assert!(nova.veth.len() <= 15, "link names fit IFNAMSIZ");
        assert!(!nova
            .netns
            .starts_with(super::super::super::plan::NAME_PREFIX));
    }

    #[test]
    fn the_migration_uri_template_reaches_the_destination_by_the_labs_ssh() {
        let (lab, nova) = plan();
        let uri = nova.live_migration_uri(&lab);
        assert_eq!(uri.matches("%s").count(), 1, "{uri}");
        assert_eq!(uri.replace("%s", "hv2"), lab.uri(&lab.hosts[1]));
    }

    #[test]
    fn busy_never_converges_at_the_cap_and_dirty_does() {
        let (_, nova) = plan();
        let cap = u64::from(nova.live_migration_bandwidth_mib_per_second);
        let by_name = |name: &str| LAB_IMAGES.iter().find(|i| i.name == name).unwrap();
        assert!(by_name("ferry-busy").dirty_mib_per_second > cap);
        assert!(by_name("ferry-dirty").dirty_mib_per_second * 2 < cap);
        let busy_flavor = LAB_FLAVORS
            .iter()
            .find(|f| f.name == "ferry.medium")
            .unwrap();
        assert!(by_name("ferry-busy").workload_mib < busy_flavor.memory_mib);
        assert!(by_name("ferry-busy")
            .kernel_command_line()
            .contains("ferry.mem_mib=384 ferry.dirty_mibps=200"));
    }

    #[test]
    fn seeded_servers_use_seeded_images_and_flavors_on_lab_hosts() {
        let (lab, _) = plan();
        for server in LAB_SERVERS {
            assert!(LAB_IMAGES.iter().any(|i| i.name == server.image));
            assert!(LAB_FLAVORS.iter().any(|f| f.name == server.flavor));
            assert!(lab.host_by_name(server.host).is_some());
        }
    }

    #[test]
    fn clouds_yaml_names_both_clouds_and_the_config_entry_parses() {
        let (lab, nova) = plan();
        let yaml = nova.render_clouds_yaml();
        assert!(yaml.contains("  ferry-lab:\n") && yaml.contains("  ferry-lab-member:\n"));
        assert!(yaml.contains("auth_url: http://10.77.0.10:5000/v3"));
        let text = lab.render_ferry_config() + &nova.render_ferry_config_entry();
        let config = Config::parse(&text, Path::new("lab.toml")).unwrap();
        assert_eq!(config.clouds.len(), 1);
        assert_eq!(config.clouds[0].name, CLOUD_NAME);
        assert_eq!(
            config.compute_libvirt_uri(&config.clouds[0], "hv2"),
            Some(lab.uri(&lab.hosts[1]))
        );
    }
}
