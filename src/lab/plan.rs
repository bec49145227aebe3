//! What the lab is made of, as plain data: names, addresses, paths and the text of every file
//! the lab writes. No I/O here, so all of it is unit-tested.

use std::path::{Path, PathBuf};

/// Everything the lab makes on disk lives below this directory (removed by `lab down`).
pub const LAB_DIR: &str = "/var/lib/ferry-lab";
/// Downloads kept across `lab down` (the guest kernel); removed by `lab down --purge`.
pub const CACHE_DIR: &str = "/var/cache/ferry-lab";
/// The bridge in the operator's network namespace that joins the hosts.
pub const BRIDGE_NAME: &str = "ferry-br0";
/// The lab's own subnet: the bridge is .1, host K is .(10 + K). Nothing else is ever addressed.
pub const SUBNET_PREFIX: &str = "10.77.0";
pub const SUBNET_BITS: u8 = 24;
pub const MAX_HOSTS: u32 = 40;
/// Keep-alive probes every 5 s, 3 may go unanswered (`libvirt::KEEPALIVE_*`): a link delay of
/// seconds would have hosts dropped as dead, which is not what the delay is for.
pub const MAX_LINK_DELAY_MS: u32 = 2000;
/// Prefix of every network namespace and link the lab makes; `lab down` removes exactly these.
pub const NAME_PREFIX: &str = "ferry-hv";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabHost {
    pub index: u32,
    /// Host name, also its hostname inside its UTS namespace: `hv1`, `hv2`, …
    pub name: String,
    pub address: String,
    pub netns: String,
    /// The operator-side end of the host's veth pair, attached to the bridge.
    pub veth: String,
    /// Distinct per host: libvirt refuses to migrate between hosts with the same UUID.
    pub host_uuid: String,
}

impl LabHost {
    pub fn new(index: u32) -> LabHost {
        LabHost {
            index,
            name: format!("hv{index}"),
            address: format!("{SUBNET_PREFIX}.{}", 10 + index),
            netns: format!("{NAME_PREFIX}{index}"),
            veth: format!("{NAME_PREFIX}{index}-v"),
            host_uuid: format!("f3a7e2c0-1ab0-4000-8000-{index:012}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabPlan {
    pub dir: PathBuf,
    pub hosts: Vec<LabHost>,
    /// Added to every lab ssh connection in each direction by the lab's relay, so that the
    /// hosts answer as separate machines on a long link would. 0: no relay at all.
    pub link_delay_ms: u32,
}

impl LabPlan {
    pub fn new(host_count: u32) -> Result<LabPlan, String> {
        if host_count == 0 || host_count > MAX_HOSTS {
            return Err(format!(
                "--hosts {host_count}: the lab holds 1 to {MAX_HOSTS} hosts"
            ));
        }
        Ok(LabPlan {
            dir: PathBuf::from(LAB_DIR),
            hosts: (1..=host_count).map(LabHost::new).collect(),
            link_delay_ms: 0,
        })
    }

    /// The same lab with `link_delay_ms` of delay each way on its ssh links.
    pub fn with_link_delay_ms(self, link_delay_ms: u32) -> Result<LabPlan, String> {
        if link_delay_ms > MAX_LINK_DELAY_MS {
            return Err(format!(
                "--link-delay-ms {link_delay_ms}: at most {MAX_LINK_DELAY_MS} ms (libvirt's \
                 keep-alive gives up on links slower than that)"
            ));
        }
        Ok(LabPlan {
            link_delay_ms,
            ..self
        })
    }

    pub fn host_dir(&self, host: &LabHost) -> PathBuf {
        self.dir.join("hosts").join(&host.name)
    }
    pub fn ssh_dir(&self) -> PathBuf {
        self.dir.join("ssh")
    }
    /// The ssh program libvirt runs for the lab's URIs: plain ssh with the lab's own config,
    /// so the operator's ~/.ssh is never read or written.
    pub fn ssh_wrapper(&self) -> PathBuf {
        self.ssh_dir().join("ssh")
    }
    /// The delay line ssh runs as its ProxyCommand when the lab has a link delay
    /// (`link_relay.c`, built by `lab up`).
    pub fn link_relay(&self) -> PathBuf {
        self.ssh_dir().join("link-relay")
    }
    pub fn ssh_config_path(&self) -> PathBuf {
        self.ssh_dir().join("config")
    }
    pub fn operator_key(&self) -> PathBuf {
        self.ssh_dir().join("id_ed25519")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.ssh_dir().join("known_hosts")
    }
    pub fn authorized_keys(&self) -> PathBuf {
        self.ssh_dir().join("authorized_keys")
    }
    /// /etc/hosts as seen inside every lab host (bind-mounted there).
    pub fn etc_hosts(&self) -> PathBuf {
        self.dir.join("etc-hosts")
    }
    /// Shared by all hosts at the same path, like Nova's shared instances directory.
    pub fn shared_dir(&self) -> PathBuf {
        self.dir.join("shared")
    }
    pub fn guest_dir(&self) -> PathBuf {
        self.shared_dir().join("guest")
    }
    pub fn ferry_config_path(&self) -> PathBuf {
        self.dir.join("ferry.toml")
    }
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.toml")
    }
    /// A host's local pool directory as the operator sees it; inside the host it is
    /// `/var/lib/libvirt/images`, private to that host.
    pub fn host_local_pool_dir(&self, host: &LabHost) -> PathBuf {
        self.host_dir(host).join("var-lib-libvirt/images")
    }
    pub fn console_log(&self, host: &LabHost, guest: &str) -> PathBuf {
        self.host_dir(host)
            .join("log-libvirt/qemu")
            .join(format!("{guest}-serial.log"))
    }

    pub fn uri(&self, host: &LabHost) -> String {
        lab_uri(&host.name, &self.ssh_wrapper())
    }

    pub fn host_by_name(&self, name: &str) -> Option<&LabHost> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn render_etc_hosts(&self) -> String {
        let mut text = String::from(
            "# /etc/hosts inside ferry lab hosts (written by ferry lab up)\n127.0.0.1 localhost\n",
        );
        for host in &self.hosts {
            text.push_str(&format!("{} {}\n", host.address, host.name));
        }
        text
    }

    pub fn render_ssh_config(&self) -> String {
        let mut text = format!(
            "# ssh config of the ferry lab (written by ferry lab up); used only by {wrapper}\n\
             Host {prefix}*\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  \
             BatchMode yes\n  ConnectTimeout 5\n  ServerAliveInterval 5\n  ServerAliveCountMax 3\n",
            wrapper = self.ssh_wrapper().display(),
            prefix = "hv",
            key = self.operator_key().display(),
            known = self.known_hosts().display(),
        );
        if self.link_delay_ms > 0 {
            // %h is the HostName below (the host's address), %p sshd's port.
            text.push_str(&format!(
                "  ProxyCommand {relay} {delay} %h %p\n",
                relay = self.link_relay().display(),
                delay = self.link_delay_ms
            ));
        }
        for host in &self.hosts {
            text.push_str(&format!(
                "Host {name}\n  HostName {address}\n  HostKeyAlias {name}\n",
                name = host.name,
                address = host.address
            ));
        }
        text
    }

    pub fn render_ssh_wrapper(&self) -> String {
        format!(
            "#!/bin/sh\n# ssh with the ferry lab's own config (written by ferry lab up)\nexec ssh -F {} \"$@\"\n",
            self.ssh_config_path().display()
        )
    }

    pub fn render_known_hosts(&self, host_public_keys: &[(String, String)]) -> String {
        host_public_keys
            .iter()
            .map(|(name, key)| format!("{name} {}\n", key.trim()))
            .collect()
    }

    pub fn render_sshd_config(&self, host: &LabHost) -> String {
        let host_dir = self.host_dir(host);
        format!(
            "# sshd of lab host {name} (written by ferry lab up)\n\
             ListenAddress {address}\n\
             HostKey {key}\n\
             PidFile /run/sshd.pid\n\
             AuthorizedKeysFile {authorized}\n\
             PermitRootLogin prohibit-password\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             X11Forwarding no\n\
             # scp speaks SFTP since OpenSSH 9 (Nova's cold migration copies disks with it)\n\
             Subsystem sftp internal-sftp\n",
            name = host.name,
            address = host.address,
            key = host_dir.join("ssh_host_ed25519_key").display(),
            authorized = self.authorized_keys().display(),
        )
    }

    /// Appended to a private copy of the machine's libvirtd.conf.
    pub fn render_libvirtd_conf(&self, host: &LabHost) -> String {
        format!(
            "\n# ferry lab host {name}\nhost_uuid = \"{uuid}\"\nlog_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n",
            name = host.name,
            uuid = host.host_uuid
        )
    }

    /// Appended to a private copy of the machine's qemu.conf.
    pub fn render_qemu_conf(&self) -> String {
        format!(
            "\n# ferry lab (written by ferry lab up)\n\
             stdio_handler = \"file\"\n\
             user = \"root\"\n\
             group = \"root\"\n\
             dynamic_ownership = 0\n\
             remember_owner = 0\n\
             security_driver = \"none\"\n\
             # Hosts share one cgroup tree; per-domain cgroups named qemu-ID-NAME would collide.\n\
             cgroup_controllers = [ ]\n\
             # The shared directory is one filesystem for all hosts: tell libvirt so that\n\
             # shared-storage live migration is considered safe (libvirt >= 10.3).\n\
             shared_filesystems = [ \"{shared}\" ]\n",
            shared = self.shared_dir().display()
        )
    }

    pub fn render_ferry_config(&self) -> String {
        let mut text = String::from(
            "# ferry config for the lab, written by `ferry lab up`.\n\
             # Use it with: ferry --config /var/lib/ferry-lab/ferry.toml\n",
        );
        for host in &self.hosts {
            text.push_str(&format!(
                "\n[[hosts]]\nname = \"{name}\"\nuri = \"{uri}\"\ngroup = \"lab\"\n",
                name = host.name,
                uri = self.uri(host)
            ));
        }
        text
    }
}

/// The URI of a lab host: plain qemu+ssh, with libvirt told to run the lab's ssh wrapper.
pub fn lab_uri(host_name: &str, ssh_wrapper: &Path) -> String {
    format!(
        "qemu+ssh://root@{host_name}/system?command={}&no_tty=1",
        ssh_wrapper.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn hosts_get_distinct_names_addresses_and_uuids() {
        let plan = LabPlan::new(3).unwrap();
        let names: Vec<_> = plan.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["hv1", "hv2", "hv3"]);
        assert_eq!(plan.hosts[1].address, "10.77.0.12");
        let mut uuids: Vec<_> = plan.hosts.iter().map(|h| &h.host_uuid).collect();
        uuids.dedup();
        assert_eq!(uuids.len(), 3);
        assert!(
            plan.hosts.iter().all(|h| h.veth.len() <= 15),
            "link names fit IFNAMSIZ"
        );
        assert!(LabPlan::new(0).is_err());
        assert!(LabPlan::new(MAX_HOSTS + 1).is_err());
        assert_eq!(
            LabPlan::new(MAX_HOSTS).unwrap().hosts[39].veth,
            "ferry-hv40-v"
        );
    }

    #[test]
    fn ferry_config_parses_and_names_every_host() {
        let plan = LabPlan::new(3).unwrap();
        let config = Config::parse(&plan.render_ferry_config(), Path::new("lab.toml")).unwrap();
        assert_eq!(config.hosts.len(), 3);
        assert_eq!(
            config.hosts[2].uri,
            "qemu+ssh://root@hv3/system?command=/var/lib/ferry-lab/ssh/ssh&no_tty=1"
        );
    }

    #[test]
    fn ssh_config_pins_every_host_to_its_address_and_the_lab_files() {
        let plan = LabPlan::new(2).unwrap();
        let text = plan.render_ssh_config();
        assert!(text.contains("Host hv2\n  HostName 10.77.0.12\n  HostKeyAlias hv2\n"));
        assert!(text.contains("UserKnownHostsFile /var/lib/ferry-lab/ssh/known_hosts"));
        assert!(text.contains("StrictHostKeyChecking yes"));
        assert!(!text.contains("~/.ssh"));
        assert!(plan
            .render_ssh_wrapper()
            .contains("-F /var/lib/ferry-lab/ssh/config"));
    }

    #[test]
    fn ssh_goes_through_the_link_relay_only_with_a_link_delay() {
        let plain = LabPlan::new(2).unwrap();
        assert!(!plain.render_ssh_config().contains("ProxyCommand"));
        let delayed = LabPlan::new(2).unwrap().with_link_delay_ms(50).unwrap();
        assert!(delayed
            .render_ssh_config()
            .contains("\n  ProxyCommand /var/lib/ferry-lab/ssh/link-relay 50 %h %p\n"));
        assert!(LabPlan::new(2)
            .unwrap()
            .with_link_delay_ms(MAX_LINK_DELAY_MS + 1)
            .is_err());
        // Back to no delay: the relay leaves the path entirely.
        let undone = delayed.with_link_delay_ms(0).unwrap();
        assert_eq!(undone.render_ssh_config(), plain.render_ssh_config());
    }

    #[test]
    fn host_files_carry_the_host_identity() {
        let plan = LabPlan::new(2).unwrap();
        let host = &plan.hosts[1];
        assert!(plan
            .render_sshd_config(host)
            .contains("ListenAddress 10.77.0.12\n"));
        assert!(plan
            .render_libvirtd_conf(host)
            .contains("host_uuid = \"f3a7e2c0-1ab0-4000-8000-000000000002\""));
        assert_eq!(
            plan.render_etc_hosts().lines().last(),
            Some("10.77.0.12 hv2")
        );
        assert!(plan.render_qemu_conf().contains("cgroup_controllers = [ ]"));
    }
}
