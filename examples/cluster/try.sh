#!/usr/bin/env bash
# Starts a local clustered chat: a private NATS and etcd on free loopback ports, one
# connector (TCP 127.0.0.1:3250, WebSocket 127.0.0.1:3251, or CHAT_TCP_ADDR and
# CHAT_WS_ADDR) and two room servers.
# Ctrl-C stops everything. Needs the nats-server and etcd-server Debian packages
# (`./scripts/test.sh` installs them).
#
# PITAYA_CLUSTER_RPC_TRANSPORT=grpc ./examples/cluster/try.sh runs the same servers
# over gRPC instead, without NATS; each server takes a free gRPC port.
#
# PITAYA_METRICS_PROMETHEUS_ENABLED=true turns /metrics on in every server, each on
# its own port so that they do not collide: the connector on 9090 (or
# PITAYA_METRICS_PROMETHEUS_PORT), room i on that port + i. /healthz and /readyz
# are served on the same ports.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
rooms="${ROOMS:-2}"

find_bin() {
    local name=$1
    command -v "$name" 2>/dev/null && return
    for dir in /usr/sbin /usr/local/sbin /usr/local/bin; do
        if [[ -x $dir/$name ]]; then echo "$dir/$name"; return; fi
    done
    echo "try.sh: $name not found; install the Debian package (${2})" >&2
    exit 1
}
transport="${PITAYA_CLUSTER_RPC_TRANSPORT:-nats}"
if [[ $transport != grpc ]]; then nats_bin=$(find_bin nats-server nats-server); fi
etcd_bin=$(find_bin etcd etcd-server)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

work=$(mktemp -d)
servers=()
infra=()
cleanup() {
    trap - EXIT INT TERM
    # The servers first, so they can leave etcd and NATS before those stop.
    for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
    for pid in "${infra[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

etcd_port=$(free_port)
etcd_peer=$(free_port)
"$etcd_bin" --data-dir "$work/etcd" --name try \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "try=http://127.0.0.1:$etcd_peer" >"$work/etcd.log" 2>&1 &
infra+=($!)

wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return; fi
        sleep 0.1
    done
    echo "try.sh: nothing listens on port $1; see the logs in $work" >&2
    exit 1
}
wait_port "$etcd_port"

export PITAYA_CLUSTER_SD_ETCD_ENDPOINTS="127.0.0.1:$etcd_port"
export PITAYA_GROUPS_ETCD_ENDPOINTS="127.0.0.1:$etcd_port"
if [[ $transport == grpc ]]; then
    export PITAYA_CLUSTER_RPC_TRANSPORT=grpc
    export PITAYA_CLUSTER_RPC_SERVER_GRPC_PORT=0
    export PITAYA_CLUSTER_RPC_SERVER_GRPC_HOST=127.0.0.1
    export PITAYA_MODULES_BINDINGSTORAGE_ETCD_ENDPOINTS="127.0.0.1:$etcd_port"
    echo "gRPC between the servers, etcd on $etcd_port (logs in $work)"
else
    nats_port=$(free_port)
    "$nats_bin" -a 127.0.0.1 -p "$nats_port" >"$work/nats.log" 2>&1 &
    infra+=($!)
    wait_port "$nats_port"
    export PITAYA_CLUSTER_RPC_CLIENT_NATS_CONNECT="nats://127.0.0.1:$nats_port"
    export PITAYA_CLUSTER_RPC_SERVER_NATS_CONNECT="nats://127.0.0.1:$nats_port"
    echo "NATS on $nats_port, etcd on $etcd_port (logs in $work)"
fi

# CLUSTER_CHAT_BIN runs an already built binary instead of building a release one.
bin="${CLUSTER_CHAT_BIN:-}"
if [[ -z $bin ]]; then
    cargo build --release -p cluster-chat
    bin=target/release/cluster-chat
fi
# One /metrics port per process; health shares it, so it takes no port of its own.
metrics_base="${PITAYA_METRICS_PROMETHEUS_PORT:-9090}"
metrics_port() {
    echo "PITAYA_METRICS_PROMETHEUS_PORT=$((metrics_base + $1))"
}
health_port() {
    echo "PITAYA_HEALTH_PORT=$((metrics_base + $1))"
}
# Process substitution keeps `$!` the server's pid (a pipe would give the filter's).
for ((i = 1; i <= rooms; i++)); do
    env "$(metrics_port "$i")" "$(health_port "$i")" \
        "$bin" room > >(sed -u "s/^/[room $i] /") 2>&1 &
    servers+=($!)
done
env "$(metrics_port 0)" "$(health_port 0)" \
    "$bin" connector > >(sed -u 's/^/[connector] /') 2>&1 &
servers+=($!)

# The connector reads the same variables, with the same defaults.
tcp_addr=${CHAT_TCP_ADDR:-127.0.0.1:3250}
ws_addr=${CHAT_WS_ADDR:-127.0.0.1:3251}
cat <<MSG
Connector on tcp $tcp_addr and ws $ws_addr with $rooms room servers.
Try it from another terminal, for example:
    cargo run -p pitaya-cli -- --connect $tcp_addr
then: request room.room.join {"name":"ann"}
Ctrl-C stops everything.
MSG
# The values Go's strconv.ParseBool reads as true, as the servers do.
case "${PITAYA_METRICS_PROMETHEUS_ENABLED:-}" in
1 | t | T | TRUE | true | True)
    echo "Metrics: curl -s 127.0.0.1:$metrics_base/metrics (connector)"
    for ((i = 1; i <= rooms; i++)); do
        echo "         curl -s 127.0.0.1:$((metrics_base + i))/metrics (room $i)"
    done
    ;;
esac
# Returns when a server exits on its own (or on a signal, through the traps).
wait -n "${servers[@]}" || true
echo "try.sh: a server stopped; stopping the rest" >&2
