#!/usr/bin/env bash
# Starts a local clustered chat: a private NATS and etcd on free loopback ports, one
# connector (TCP 127.0.0.1:3250, WebSocket 127.0.0.1:3251) and two room servers.
# Ctrl-C stops everything. Needs the nats-server and etcd-server Debian packages
# (`./scripts/test.sh` installs them).
#
# PITAYA_CLUSTER_RPC_TRANSPORT=grpc ./examples/cluster/try.sh runs the same servers
# over gRPC instead, without NATS; each server takes a free gRPC port.
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
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

etcd_port=$(free_port)
etcd_peer=$(free_port)
"$etcd_bin" --data-dir "$work/etcd" --name try \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "try=http://127.0.0.1:$etcd_peer" >"$work/etcd.log" 2>&1 &
pids+=($!)

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
    pids+=($!)
    export PITAYA_CLUSTER_RPC_CLIENT_NATS_CONNECT="nats://127.0.0.1:$nats_port"
    export PITAYA_CLUSTER_RPC_SERVER_NATS_CONNECT="nats://127.0.0.1:$nats_port"
    echo "NATS on $nats_port, etcd on $etcd_port (logs in $work)"
fi

cargo build --release -p cluster-chat
bin=target/release/cluster-chat
for ((i = 1; i <= rooms; i++)); do
    "$bin" room 2>&1 | sed -u "s/^/[room $i] /" &
    pids+=($!)
done
"$bin" connector 2>&1 | sed -u 's/^/[connector] /' &
pids+=($!)

cat <<MSG
Connector on tcp 127.0.0.1:3250 and ws 127.0.0.1:3251 with $rooms room servers.
Try it from another terminal, for example:
    cargo run -p pitaya-cli -- --connect tcp://127.0.0.1:3250
then: request room.room.join {"name":"ann"}
Ctrl-C stops everything.
MSG
wait
