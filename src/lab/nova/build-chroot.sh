#!/usr/bin/env bash
# Builds the Nova lab's root filesystem: Debian bookworm with OpenStack Zed's packages
# (Keystone, Placement, Glance, neutron-server, Nova, RabbitMQ, MariaDB). Run once by
# `ferry lab up --nova`; the result is kept under /var/cache/ferry-lab/ and reused until this
# file changes (its digest names the cache directory), because a build takes minutes and the
# lab must come up in under two.
#
# The tree holds packages only. Every config file and every database lives in the lab's own
# overlay upper directories, so the cached tree is never written once built.
#
# usage: build-chroot.sh TARGET_DIR
set -euo pipefail
target=$1
work="$target.building"

if [ "$(id -u)" -ne 0 ]; then
  echo "build-chroot: must run as root (debootstrap)" >&2
  exit 1
fi

# The machine's own Debian mirror and keyring: the first bookworm entry of its apt sources.
sources=/etc/apt/sources.list.d/debian.sources
if [ -f "$sources" ]; then
  mirror=$(awk '/^URIs:/{print $2; exit}' "$sources")
  keyring=$(awk '/^Signed-By:/{print $2; exit}' "$sources")
else
  mirror=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list)
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
fi
if [ -z "$mirror" ]; then
  echo "build-chroot: no bookworm entry in the machine's apt sources to build from" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null; then
  apt-get install -y -q --no-install-recommends debootstrap
fi

cleanup() {
  for m in dev/pts dev sys proc run tmp; do
    mountpoint -q "$work/$m" && umount -R "$work/$m" || true
  done
}
trap cleanup EXIT

rm -rf "$work"
mkdir -p "$work"
debootstrap --variant=minbase --keyring="$keyring" \
  --include=ca-certificates,curl,iproute2,procps,python3,less \
  bookworm "$work" "$mirror"

# The same apt sources as the machine, bookworm-backports included: libvirt's client
# library and qemu-utils in the tree then match the lab's libvirtd and QEMU.
rm -f "$work/etc/apt/sources.list"
cp /etc/apt/sources.list.d/*.sources "$work/etc/apt/sources.list.d/"
cat >"$work/etc/apt/preferences.d/ferry-virt-backports" <<'PIN'
Package: libvirt* libnss-libvirt qemu* libvirt0 python3-libvirt ovmf seabios ipxe-qemu libslirp0 libfdt1
Pin: release n=bookworm-backports
Pin-Priority: 990
PIN
# Package scripts must not start daemons: the lab starts each one itself, in its namespace.
printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
chmod +x "$work/usr/sbin/policy-rc.d"

mount -t proc proc "$work/proc"
mount --rbind /sys "$work/sys" && mount --make-rslave "$work/sys"
mount --rbind /dev "$work/dev" && mount --make-rslave "$work/dev"
mount -t tmpfs tmpfs "$work/run"
mount -t tmpfs tmpfs "$work/tmp"

chroot "$work" apt-get update -q
# nova-compute-kvm, not nova-compute-qemu: the latter pulls every qemu-system architecture,
# one of which cannot be installed with backports' QEMU. The lab sets virt_type = qemu.
chroot "$work" apt-get install -y -q --no-install-recommends \
  keystone placement-api nova-api nova-conductor nova-scheduler glance-api neutron-server \
  rabbitmq-server python3-openstackclient nova-compute-kvm qemu-utils openssh-client \
  mariadb-server python3-pymysql
chroot "$work" apt-get clean
cleanup
trap - EXIT
rm -rf "$target"
mv "$work" "$target"
echo "build-chroot: built $target"
