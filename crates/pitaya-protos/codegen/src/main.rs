//! Regenerates the checked-in Rust of `pitaya-protos` from its `.proto` files.
//!
//! Run through `crates/pitaya-protos/regen.sh`, which also formats the output.
//! Building this needs no `protoc`; running it does (`PROTOC` or `protoc` on `PATH`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let proto_dir = crate_dir.join("proto");
    let out_dir = crate_dir.join("src").join("generated");

    let mut config = prost_build::Config::new();
    config.out_dir(&out_dir);
    // Payloads pass through servers untouched, so we keep them as
    // reference-counted `Bytes` instead of copying into `Vec<u8>`.
    config.bytes(["."]);
    match config.compile_protos(&[proto_dir.join("pitaya.proto")], &[proto_dir]) {
        Ok(()) => {
            println!("wrote {}", out_dir.join("protos.rs").display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("codegen failed: {e}");
            ExitCode::FAILURE
        }
    }
}
