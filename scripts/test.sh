#!/usr/bin/env bash
# Runs the whole test suite the way CI does: lint, build, Rust tests, Node interop check,
# browser check.
#
# Installs what the suite needs on a fresh Debian machine first: the nats-server and
# etcd-server packages (cluster tests start their own instances on free ports), chromium
# and a font for the browser check, prometheus for `promtool check metrics` in the metrics
# tests, and the Node packages of interop/node and interop/browser.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"

step() { printf '\n==> %s\n' "$*"; }

# Debian packages, only when missing; `apt-get update` only if something must be installed.
apt_packages=(nats-server etcd-server protobuf-compiler chromium fonts-dejavu-core prometheus)
missing=()
for pkg in "${apt_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} > 0)); then
    step "installing ${missing[*]}"
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings

step "cargo build"
# The benchmark harness is built by its own smoke step below.
cargo build --workspace --exclude pitaya-bench --quiet

step "cargo test"
# Compile quietly first, so the output below is the test runner's own.
cargo test --workspace --all-features --no-run --quiet
cargo test --workspace --all-features

target_dir="${CARGO_TARGET_DIR:-target}"
if [[ $target_dir != /* ]]; then target_dir="$root/$target_dir"; fi

step "benchmark smoke (one short point per scenario; ratios not judged)"
# Same feature set as the build above, so only the bench crate itself compiles here.
cargo build --workspace --quiet
GOFLAGS=-buildvcs=false "$target_dir/debug/pitaya-bench" run --smoke --out "$target_dir/bench-smoke"

step "node interop check (pomelo-protocol)"
cd "$root/interop/node"
if [[ -f package-lock.json ]]; then
    npm ci --no-audit --no-fund --loglevel=error
else
    npm install --no-audit --no-fund --loglevel=error
fi
CHAT_BIN="$target_dir/debug/chat" node --test

step "browser check (chat page in headless Chromium, client codec)"
cd "$root/interop/browser"
npm ci --no-audit --no-fund --loglevel=error
# The chat test keeps screenshots of the page under target/artifacts.
CHAT_BIN="$target_dir/debug/chat" ARTIFACTS_DIR="$target_dir/artifacts" \
    CHROMIUM_BIN=/usr/bin/chromium node --test
