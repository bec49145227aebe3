#!/usr/bin/env bash
# The README's two quick-start commands, for a fresh Debian bookworm machine, as root:
#   bash src/lab/quickstart.sh          install, build, bring the lab up, open ferry on it
#   bash src/lab/quickstart.sh test     install, build, run the whole test suite (lab included)
# Everything needed is installed here: apt packages (src/lab/install-deps.sh), the build, and
# the lab's guest kernel (downloaded by `ferry lab up`).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v cargo >/dev/null; then
  echo "quickstart: cargo is missing; install a Rust toolchain (1.85 or newer) first" >&2
  exit 1
fi
bash src/lab/install-deps.sh

case "${1:-lab}" in
  lab)
    cargo build --release --locked
    ./target/release/ferry lab up
    exec ./target/release/ferry --config /var/lib/ferry-lab/ferry.toml
    ;;
  test)
    cargo build --locked --all-targets
    # Lab tests share two cores and one lab: every test binary runs its tests one at a time.
    exec cargo test --locked -- --test-threads=1
    ;;
  *)
    echo "usage: $0 [lab|test]" >&2
    exit 2
    ;;
esac
