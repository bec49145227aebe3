#!/usr/bin/env bash
# The README's two quick-start commands, for a fresh Debian bookworm machine, as root:
#   bash src/lab/quickstart.sh          install, build, bring the lab and its cloud up, open ferry
#   bash src/lab/quickstart.sh test     install, build, run the whole test suite (lab included)
# Everything needed is installed here: apt packages (src/lab/install-deps.sh), the build, and
# the lab's guest kernel (downloaded by `ferry lab up`).
set -euo pipefail
cd "$(dirname "$0")/../.."

bash src/lab/install-deps.sh

# Rust. A toolchain the machine has is used as it is: on PATH, or rustup's in ~/.cargo/bin
# (which sudo's PATH leaves out). Without one, Debian's own: bookworm's rustc is 1.63, too old,
# but bookworm-security carries rustc-web and cargo-web (1.96), which install plain
# /usr/bin/rustc and /usr/bin/cargo. They conflict only with Debian's rustup package, never
# with a rustup under ~/.cargo, and are not installed when a toolchain is there.
if ! command -v cargo >/dev/null && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
  export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
  echo "quickstart: no Rust toolchain; installing Debian's rustc-web and cargo-web"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  if ! apt-get install -y -q --no-install-recommends rustc-web cargo-web; then
    echo "quickstart: cannot install rustc-web and cargo-web (is bookworm-security in the apt sources?);" \
      "install a Rust toolchain (1.85 or newer) and run this again" >&2
    exit 1
  fi
fi
echo "quickstart: building with $(cargo --version) at $(command -v cargo)"

case "${1:-lab}" in
  lab)
    cargo build --release --locked
    # The lab's hosts and its OpenStack cloud beside them (the cloud's package tree is built
    # once, a few minutes; later runs reuse it).
    ./target/release/ferry lab up --nova
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
