#!/bin/sh
# Runs as the first process of one lab host, already inside the host's network namespace and
# a fresh mount + UTS namespace with private propagation (ferry's lab module starts it so).
# It gives the host its own hostname, /run, libvirt state and /etc/hosts, starts virtlogd,
# libvirtd and sshd, reports their pids, then stays as the namespace's holder process.
#
# usage: host_up.sh HOST_DIR HOSTNAME ADDRESS LAB_DIR
set -eu
host_dir=$1
host_name=$2
address=$3
lab_dir=$4

fail() {
  echo "failed: $*" >"$host_dir/status"
  exit 1
}
trap 'fail "host_up.sh stopped at line $LINENO"' EXIT

hostname "$host_name"
ip link set lo up
# A private /run: libvirtd's, virtlogd's and sshd's pid files and sockets would otherwise
# collide between hosts.
mount -t tmpfs -o mode=0755 ferry-lab-run /run
mkdir -p /run/sshd /run/libvirt /run/lock
for pair in etc-libvirt:/etc/libvirt var-lib-libvirt:/var/lib/libvirt \
  log-libvirt:/var/log/libvirt cache-libvirt:/var/cache/libvirt; do
  mount --bind "$host_dir/${pair%%:*}" "${pair#*:}"
done
mount --bind "$lab_dir/etc-hosts" /etc/hosts

virtlogd -d || fail "virtlogd did not start (see $host_dir/log-libvirt)"
libvirtd -d || fail "libvirtd did not start (see $host_dir/log-libvirt/libvirtd.log)"
/usr/sbin/sshd -f "$host_dir/sshd_config" -E "$host_dir/sshd.log" || fail "sshd did not start (see $host_dir/sshd.log)"

# Wait for the three pid files and libvirtd's socket, up to 20 s.
tries=0
while [ ! -s /run/libvirtd.pid ] || [ ! -s /run/virtlogd.pid ] || [ ! -s /run/sshd.pid ] \
  || [ ! -S /run/libvirt/libvirt-sock ]; do
  tries=$((tries + 1))
  [ $tries -gt 200 ] && fail "daemons did not come up within 20 s"
  sleep 0.1
done
{
  echo "holder $$"
  echo "virtlogd $(cat /run/virtlogd.pid)"
  echo "libvirtd $(cat /run/libvirtd.pid)"
  echo "sshd $(cat /run/sshd.pid)"
} >"$host_dir/pids"
echo "ready $address" >"$host_dir/status"
trap - EXIT
# Stay alive as the holder of this host's mount and UTS namespaces.
exec sleep infinity
