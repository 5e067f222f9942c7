#!/usr/bin/env bash
# Runs the whole test suite the way CI does: lint, build, Rust tests, benchmark smoke, Node
# interop check, browser check, Go Pitaya interop (needs `go`; its modules come from the Go
# proxy).
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
# libprotobuf-dev holds the well-known .proto files (descriptor.proto) that etcd-client's
# build script imports; protobuf-compiler only recommends it.
apt_packages=(nats-server etcd-server protobuf-compiler libprotobuf-dev chromium fonts-dejavu-core prometheus)
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

target_dir="${CARGO_TARGET_DIR:-target}"
if [[ $target_dir != /* ]]; then target_dir="$root/$target_dir"; fi

# Go Pitaya v1 servers for the mixed-cluster tests (examples/cluster/tests/go_*.rs),
# ignored by a plain `cargo test` and run below with GO_CLUSTER_BIN set. The Go module
# proxy serves Pitaya v1.1.8.
if [[ ${GO_CLUSTER_SKIP:-} == 1 ]]; then
    step "go-cluster skipped (GO_CLUSTER_SKIP=1): the mixed Go/Rust cluster tests will not run"
else
    step "go build interop/go-cluster (Go Pitaya v1)"
    if ! command -v go >/dev/null; then
        echo "test.sh: go not found; install Go or set GO_CLUSTER_SKIP=1" >&2
        exit 1
    fi
    (cd "$root/interop/go-cluster" &&
        GOFLAGS=-buildvcs=false go build -o "$target_dir/go-cluster" .)
    export GO_CLUSTER_BIN="$target_dir/go-cluster"
fi

step "cargo test"
# Compile quietly first, so the output below is the test runner's own.
cargo test --workspace --all-features --no-run --quiet
cargo test --workspace --all-features

if [[ ${GO_CLUSTER_SKIP:-} != 1 ]]; then
    step "mixed clusters with Go Pitaya v1 (cargo test --ignored)"
    # --workspace, as above: `-p cluster-chat` alone would unify other features and
    # recompile much of the dependency tree.
    cargo test --workspace --all-features --test go_cluster --test go_sessions -- --ignored
fi

step "benchmark smoke (one short point per scenario; ratios not judged)"
# Same feature set as the build above, so only the bench crate itself compiles here.
cargo build --workspace --quiet
bench_servers=baseline,rs,go
if [[ ${GO_CLUSTER_SKIP:-} == 1 ]]; then bench_servers=baseline,rs; fi
GOFLAGS=-buildvcs=false "$target_dir/debug/pitaya-bench" run --smoke \
    --servers "$bench_servers" --out "$target_dir/bench-smoke"

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

step "go pitaya interop (Go Pitaya v1 client and server)"
# Go's client tests against the Rust chat, then pitaya-conformance, pitaya-client and
# pitaya-cli against a Go Pitaya v1 chat server; see interop/go-chat/README.md.
GOFLAGS=-buildvcs=false "$root/interop/go-chat/interop.sh" "$target_dir/debug"
