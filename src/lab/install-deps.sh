#!/usr/bin/env bash
# Installs what ferry's build and its lab need on a Debian bookworm machine, as root.
# Idempotent: packages already present are left alone.
#
# Why bookworm-backports: the machine may ship qemu-utils 10 from backports, which "Breaks"
# bookworm's qemu-system-common 7.2, so libvirt and QEMU come from backports too
# (libvirt 11.x, QEMU 10.x). The suite entry is derived from the machine's own Debian
# sources entry (same URIs and keyring) so no mirror is named here.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (apt-get install); try: sudo $0" >&2
  exit 1
fi

packages=(libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
  qemu-system-x86 qemu-utils openssh-server openssh-client pkg-config gcc libc6-dev
  iproute2 util-linux procps tmux debootstrap)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"

backports=/etc/apt/sources.list.d/ferry-bookworm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ]; then
    # First stanza's URIs and Signed-By lines, suite replaced.
    uris=$(awk '/^URIs:/{print; exit}' "$src")
    signed=$(awk '/^Signed-By:/{print; exit}' "$src")
  else
    uri=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list)
    uris="URIs: $uri"
    signed="Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
  fi
  if [ -z "${uris#URIs: }" ]; then
    echo "install-deps: cannot find a bookworm entry in the apt sources to derive bookworm-backports from" >&2
    exit 1
  fi
  printf 'Types: deb\n%s\nSuites: bookworm-backports\nComponents: main\n%s\n' "$uris" "$signed" >"$backports"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# policy-rc.d keeps package scripts from starting daemons on the machine: the lab runs
# its own libvirtd and sshd inside namespaces, never the machine's.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; made_policy=1
fi
trap '[ $made_policy = 1 ] && rm -f "$policy"' EXIT
apt-get install -y -q -t bookworm-backports --no-install-recommends "${missing[@]}"
echo "install-deps: done"
