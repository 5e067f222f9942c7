#!/usr/bin/env bash
# Regenerates src/generated/ from proto/ after a .proto change; needs protoc
# (Debian: protobuf-compiler). The output is checked in, so building the crate
# never needs protoc.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
cargo run --quiet -p pitaya-protos-codegen
rustfmt --edition 2021 src/generated/protos.rs src/generated/grpc/protos.rs
