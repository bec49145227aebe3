#!/usr/bin/env bash
# Real screenshots of ferry, taken against the running lab.
#
#   flock /tmp/ferry-lab.lock bash screenshots/take.sh
#
# Run it from the repository, as root, with the lab up (`ferry lab up`), under the lab lock
# like every lab test that migrates `busy`. It starts ferry (FERRY=path, else
# target/release/ferry, built if missing) in a tmux pane of its own tmux server, 120×36, with
# the lab's config and a throwaway state directory; drives it with `tmux send-keys` to each
# screen; captures it with `tmux capture-pane -e -p` (colours kept); and renders every capture
# to a PNG with screenshots/render.py (Pillow, installed with pip if missing; DejaVu Sans Mono).
#
#   hosts-and-instances.png           the inventory of the lab, the instances pane focused
#   launch-dialog-refused.png         m on `disk` (a data disk in hv1's local pool) with block
#                                     migration set to no: the storage check refuses the hosts
#   live-progress-not-converging.png  busy (512 MiB, dirtying 200 MiB/s) live-migrating at
#                                     100 MiB/s under a 100 ms max downtime: the detail view
#                                     with its charts says NOT CONVERGING
#   force-complete-confirmation.png   f on that migration (answered n)
#   cold-awaiting-confirm.png         c on `disk`: cold-migrated at 2 MiB/s (its init ignores
#                                     ACPI, so a hard power-off after 5 s), awaiting confirm,
#                                     its copy verified by sha256
#   cold-revert-question.png          R on it; answered y, and `disk` is back on its source
#
# Nothing is staged: every screen is what ferry showed. The migration of busy is then aborted
# from the TUI (a, y) and the script checks busy runs on its source alone. On any exit the
# tmux server is killed, a migration job left on busy is aborted with virsh, and busy is put
# back as it was (shut off again if it was off). The captures (.ansi) are kept beside the PNGs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
config=${FERRY_CONFIG:-/var/lib/ferry-lab/ferry.toml}
ferry=${FERRY:-$repo/target/release/ferry}
cols=120
rows=36
socket="ferry-shots-$$"
work=$(mktemp -d /tmp/ferry-shots.XXXXXX)

die() {
  echo "take.sh: $*" >&2
  exit 1
}

[[ $(id -u) == 0 ]] || die "run as root (the lab's hosts are reached as root)"
[[ -f $config ]] || die "no lab config at $config: bring the lab up with 'ferry lab up'"
command -v tmux >/dev/null || die "tmux is missing: src/lab/install-deps.sh installs it"
command -v virsh >/dev/null || die "virsh is missing: src/lab/install-deps.sh installs it"
if [[ ! -x $ferry ]]; then
  (cd "$repo" && cargo build --release --bin ferry)
fi
if ! python3 -c 'import PIL' 2>/dev/null; then
  python3 -m pip install --quiet pillow ||
    apt-get install -y -q python3-pil ||
    die "Pillow could not be installed (python3 -m pip install pillow, or apt-get install python3-pil)"
fi

# Hosts of the lab config, in config order: "name uri" per line.
mapfile -t hosts < <(awk -F'"' '/^name =/ {name=$2} /^uri =/ {print name, $2}' "$config")
((${#hosts[@]} >= 2)) || die "$config lists fewer than two hosts"

# "name uri" of every host on which GUEST is defined.
placements() {
  local entry
  for entry in "${hosts[@]}"; do
    if virsh -q -c "${entry#* }" domstate "$1" >/dev/null 2>&1; then
      echo "$entry"
    fi
  done
}

busy_was_running=unknown

cleanup() {
  local status=$?
  tmux -L "$socket" kill-server 2>/dev/null || true
  local entry uri state
  while read -r entry; do
    [[ -n $entry ]] || continue
    uri=${entry#* }
    if virsh -q -c "$uri" domjobinfo busy 2>/dev/null | grep -q 'Unbounded'; then
      echo "take.sh: aborting the migration job left on busy (${entry%% *})" >&2
      virsh -q -c "$uri" domjobabort busy || true
      sleep 2
    fi
    state=$(virsh -q -c "$uri" domstate busy 2>/dev/null || true)
    if [[ $state == paused ]]; then
      virsh -q -c "$uri" resume busy || true
    fi
    if [[ $busy_was_running == no && ($state == running || $state == paused) ]]; then
      virsh -q -c "$uri" destroy busy >/dev/null || true
    fi
  done < <(placements busy)
  # A cold migration of disk left awaiting confirm: revert it with the history it was
  # recorded in, before that history goes.
  if (($(placements disk | wc -l) > 1)); then
    echo "take.sh: reverting the cold migration left on disk" >&2
    XDG_STATE_HOME=$work "$ferry" --config "$config" revert disk || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

# busy must run with its workload going, as the lab tests start it.
mapfile -t busy_hosts < <(placements busy)
((${#busy_hosts[@]} == 1)) || die "busy must be defined on exactly one host, found: ${busy_hosts[*]:-none}"
source_host=${busy_hosts[0]%% *}
source_uri=${busy_hosts[0]#* }
if [[ $(virsh -q -c "$source_uri" domstate busy) == running ]]; then
  busy_was_running=yes
else
  busy_was_running=no
  log=/var/lib/ferry-lab/hosts/$source_host/log-libvirt/qemu/busy-serial.log
  offset=$(stat -c %s "$log" 2>/dev/null || echo 0)
  virsh -q -c "$source_uri" start busy >/dev/null
  for _ in $(seq 90); do
    tail -c +"$((offset + 1))" "$log" 2>/dev/null | grep -q 'workload running' && break
    sleep 1
  done
fi
# The destination: the host after busy's in config order; its row in the launch dialog (which
# lists the other hosts in config order, after `auto`).
destination_row=0
for i in "${!hosts[@]}"; do
  if [[ ${hosts[$i]%% *} == "$source_host" ]]; then
    destination_host=${hosts[$(((i + 1) % ${#hosts[@]}))]%% *}
  fi
done
row=0
for entry in "${hosts[@]}"; do
  name=${entry%% *}
  [[ $name == "$source_host" ]] && continue
  row=$((row + 1))
  [[ $name == "$destination_host" ]] && destination_row=$row
done
echo "take.sh: busy runs on $source_host; it will be migrated to $destination_host and aborted" >&2

tm() { tmux -L "$socket" "$@"; }
keys() { tm send-keys -t ferry "$@"; }
text() { tm send-keys -t ferry -l "$1"; }
screen() { tm capture-pane -p -t ferry; }

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds on the screen text (stdin).
wait_for() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout)) now
  while :; do
    now=$(screen)
    if "$@" <<<"$now"; then
      return 0
    fi
    if ((SECONDS > deadline)); then
      printf 'take.sh: waited %ss for %s; the screen:\n%s\n' "$timeout" "$what" "$now" >&2
      exit 1
    fi
    sleep 0.3
  done
}
has() { grep -qE -- "$1"; }
# The dialog is open with every verdict in.
verdicts_in() {
  local s
  s=$(cat)
  grep -q "Live-migrate $1 from" <<<"$s" && ! grep -q 'checking…' <<<"$s"
}

shoot() {
  tm capture-pane -e -p -t ferry >"$here/$1.ansi"
  python3 "$here/render.py" "$here/$1.ansi" "$here/$1.png" --cols "$cols" --rows "$rows"
}

tm -f /dev/null new-session -d -s ferry -x "$cols" -y "$rows" \
  -e "FERRY_CONFIG=$config" -e "XDG_STATE_HOME=$work" -e COLORTERM=truecolor \
  "$ferry" \; set-option -t ferry remain-on-exit on

# 1. Hosts and instances: every host up and refreshed.
all_hosts_up() {
  local s
  s=$(cat)
  (($(grep -cE '│hv[0-9]+ +up ' <<<"$s") == ${#hosts[@]})) && ! grep -q 'refreshed never' <<<"$s"
}
wait_for "every host up" 60 all_hosts_up
keys Tab
sleep 1
shoot hosts-and-instances

# 2. The launch dialog on disk with block migration "no": its data disk is in hv1's local pool,
# so the storage check refuses a live migration without copying it.
keys /
text disk
keys Enter
wait_for "disk alone in the list" 10 has '/disk'
keys m
wait_for "the launch dialog of disk with its verdicts" 90 verdicts_in disk
# Options: policy, bandwidth, max downtime, post-copy, auto-converge, block migration.
keys Tab j j j j j l l
wait_for "block migration no, verdicts in again" 90 \
  bash -c 's=$(cat); grep -qE "block migration +no" <<<"$s" && ! grep -q "checking…" <<<"$s"'
keys Tab j
sleep 1
wait_for "the first destination highlighted, refused" 10 has 'cannot launch'
shoot launch-dialog-refused
keys Escape
sleep 0.5
keys Escape
wait_for "the filter cleared" 10 bash -c '! grep -q "/disk"'

# 3. busy at 100 MiB/s with a 100 ms max downtime, no auto-converge, no post-copy: it never
# converges, and the detail view says so.
keys /
text busy
keys Enter
wait_for "busy alone in the list" 10 has '/busy'
keys m
wait_for "the launch dialog of busy with its verdicts" 90 verdicts_in busy
keys Tab j
text 100
keys j BSpace BSpace BSpace BSpace BSpace
text 100
keys j j Space Tab
for _ in $(seq "$destination_row"); do keys j; done
busy_launch_set() {
  local s
  s=$(cat)
  grep -q "live-migrate busy $source_host → $destination_host, adaptive" <<<"$s" &&
    grep -qE 'bandwidth MiB/s +100 ' <<<"$s" && grep -qE 'max downtime ms +100 ' <<<"$s" &&
    grep -qE 'post-copy +not permitted' <<<"$s" && grep -qE 'auto-converge +off' <<<"$s"
}
wait_for "the options and the summary of the launch" 10 busy_launch_set
keys Enter
keys 2
wait_for "busy copying memory" 120 has "busy +$source_host → $destination_host +copy pass"
keys g Enter
wait_for "the detail: not converging, pass 4 or later" 180 \
  bash -c 's=$(cat); grep -q "NOT CONVERGING" <<<"$s" && grep -qE "· pass ([4-9]|[1-9][0-9])" <<<"$s"'
shoot live-progress-not-converging

# 4. The force-complete confirmation, answered no.
keys f
wait_for "the force-complete question" 10 has 'Force-complete #1 busy\?'
shoot force-complete-confirmation
keys n

# Leave the lab as it was: abort from the TUI, and check busy stayed on its source alone.
keys a
wait_for "the abort question" 10 has 'Abort #1 busy\?'
keys y
wait_for "the migration cancelled" 120 \
  bash -c 's=$(cat); grep -qE "verdict +cancelled: " <<<"$s" && grep -q " 0 running " <<<"$s"'
keys q
mapfile -t busy_hosts < <(placements busy)
[[ ${#busy_hosts[@]} == 1 && ${busy_hosts[0]%% *} == "$source_host" ]] ||
  die "after the abort busy should be on $source_host alone, found: ${busy_hosts[*]:-none}"
echo "take.sh: busy runs on $source_host alone again" >&2

# 5. disk cold-migrated from the TUI, awaiting confirm; then reverted with R, y.
mapfile -t disk_hosts < <(placements disk)
((${#disk_hosts[@]} == 1)) || die "disk must be defined on exactly one host, found: ${disk_hosts[*]:-none}"
disk_source=${disk_hosts[0]%% *}
row=0
for entry in "${hosts[@]}"; do
  name=${entry%% *}
  [[ $name == "$disk_source" ]] && continue
  row=$((row + 1))
  disk_destination=$name
  disk_destination_row=$row
  break
done
tm respawn-pane -k -t ferry "$ferry"
wait_for "every host up again" 60 all_hosts_up
keys Tab /
text disk
keys Enter
wait_for "disk alone in the list" 10 has '/disk'
keys c
wait_for "the cold dialog of disk with its verdicts" 90 \
  bash -c 's=$(cat); grep -q "Cold-migrate disk from" <<<"$s" && ! grep -q "checking…" <<<"$s"'
keys Tab BSpace BSpace
text 5
keys j Space j
text 2
keys Tab
for _ in $(seq "$disk_destination_row"); do keys j; done
wait_for "the cold launch summary" 10 \
  has "cold-migrate disk $disk_source → $disk_destination: shut down \\(ACPI, 5 s, then hard power"
keys Enter 2
wait_for "disk awaiting confirm" 180 has "disk +$disk_source → $disk_destination +awaiting"
keys g Enter
wait_for "the cold detail, verified" 10 has '✓ sha256'
shoot cold-awaiting-confirm
keys R
wait_for "the revert question" 10 has 'Revert #[0-9]+ disk to'
shoot cold-revert-question
keys y
wait_for "disk reverted" 120 has 'reverted: on '
keys q
mapfile -t disk_hosts < <(placements disk)
[[ ${#disk_hosts[@]} == 1 && ${disk_hosts[0]%% *} == "$disk_source" ]] ||
  die "after the revert disk should be on $disk_source alone, found: ${disk_hosts[*]:-none}"
echo "take.sh: disk runs on $disk_source alone again" >&2
ls -l "$here"/*.png >&2
