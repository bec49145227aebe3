#!/bin/bash
# nova-compute beside one lab host's own libvirtd: runs inside that host's network, UTS and
# mount namespaces (a private child of the host's mount namespace, so its mounts vanish with
# it), from an overlay of the cached package tree. nova-compute talks to the host's libvirtd
# through the host's /run/libvirt socket, so Nova and ferry see the same hypervisor.
#
# Instances live in INSTANCES_DIR at the same absolute path in nova-compute's view and in
# libvirtd's (the lab bound it into the host's mount namespace before this script runs):
# libvirtd and QEMU open the paths that nova-compute writes into domain XML.
#
# usage: compute_up.sh ROOTFS NODE_DIR HOST_NAME HOST_IP CTL_IP PASSWORD INSTANCES_DIR SSH_KEY LIVE_MIGRATION_URI BANDWIDTH_MIB_PER_SECOND
set -euo pipefail
rootfs=$1
node_dir=$2
host_name=$3
host_ip=$4
ctl_ip=$5
password=$6
instances_dir=$7
ssh_key=$8
live_migration_uri=$9
bandwidth_mib_per_second=${10}
root=$node_dir/root

fail() {
  echo "failed: $*" >"$node_dir/status"
  exit 1
}
trap 'fail "compute_up.sh stopped at line $LINENO (see $node_dir/compute.out)"' ERR

mkdir -p "$node_dir/upper" "$node_dir/work" "$root"
mount -t overlay "ferry-nova-$host_name" -o "lowerdir=$rootfs,upperdir=$node_dir/upper,workdir=$node_dir/work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
# The host's own /run: it holds libvirtd's socket.
mount --rbind /run "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
# The host's own disks too: nova-compute reads every domain's disks for its resource
# accounting, the lab's own guests included.
for dir in "$instances_dir" /var/lib/libvirt /var/lib/ferry-lab/shared; do
  mkdir -p "$root$dir"
  mount --rbind "$dir" "$root$dir"
done
mkdir -p "$root/var/lib/nova/lock" "$root/var/log/nova" "$root/root/.ssh"

# Cold migration copies disks with ssh and scp from nova-compute to the other host's address
# (Nova's remotefs), as root with this key, which every lab sshd accepts.
install -m 600 "$ssh_key" "$root/root/.ssh/id_ed25519"
printf 'Host *\n  IdentityFile /root/.ssh/id_ed25519\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel ERROR\n' \
  >"$root/root/.ssh/config"

auth_block() {
  cat <<CONF
[$1]
auth_url = http://$ctl_ip:5000/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $2
password = $password
region_name = RegionOne
CONF
}
{
  cat <<CONF
[DEFAULT]
host = $host_name
my_ip = $host_ip
compute_driver = libvirt.LibvirtDriver
instances_path = $instances_dir
state_path = /var/lib/nova
log_dir = /var/log/nova
transport_url = rabbit://nova:$password@$ctl_ip:5672/
# The lab's guests have no OS to answer ACPI: power off at once when Nova stops one.
shutdown_timeout = 0
# Only the lab's own guests may use the hosts' memory.
reserved_host_memory_mb = 512
[libvirt]
virt_type = qemu
# The live migration goes over the lab's own ssh (its key and known hosts), started by the
# source host's libvirtd as the lab's own migrations are; %s is the destination's host name.
live_migration_uri = $live_migration_uri
live_migration_bandwidth = $bandwidth_mib_per_second
[workarounds]
# Nova 26 inspects a kernel or ramdisk image fetched for a live migration's destination as a
# disk image and refuses it ("Image content does not match disk_format"); boot fetches them
# without that check. The lab's images are its own.
disable_deep_image_inspection = true
[vnc]
enabled = false
[service_user]
send_service_user_token = false
[oslo_concurrency]
lock_path = /var/lib/nova/lock
[oslo_messaging_rabbit]
heartbeat_timeout_threshold = 60
CONF
  auth_block keystone_authtoken nova
  auth_block placement placement
  auth_block neutron neutron
  auth_block glance glance
} >"$root/etc/nova/nova.conf"

setsid chroot "$root" nova-compute --config-file /etc/nova/nova.conf \
  >"$node_dir/compute.out" 2>&1 </dev/null &
printf 'holder %s\nnova-compute %s\n' "$$" "$!" >"$node_dir/pids"
echo "ready $host_ip" >"$node_dir/status"
trap - ERR
exec sleep infinity
