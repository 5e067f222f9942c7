//! Regenerates the checked-in Rust of `pitaya-protos` from its `.proto` files.
//!
//! Run through `crates/pitaya-protos/regen.sh`, which also formats the output.
//! Building this needs no `protoc`; running it does (`PROTOC` or `protoc` on `PATH`).
//!
//! Two files come out: `src/generated/protos.rs`, the messages (prost), and
//! `src/generated/grpc/protos.rs`, the tonic client and server of service
//! `protos.Pitaya`, which refer to the messages instead of repeating them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let proto_dir = crate_dir.join("proto");
    let out_dir = crate_dir.join("src").join("generated");
    let proto = proto_dir.join("pitaya.proto");

    let result = messages(&proto, &proto_dir, &out_dir)
        .and_then(|()| service(&proto, &proto_dir, &out_dir.join("grpc")));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codegen failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn messages(proto: &Path, proto_dir: &Path, out_dir: &Path) -> std::io::Result<()> {
    let mut config = prost_build::Config::new();
    config.out_dir(out_dir);
    // Payloads pass through servers untouched, so we keep them as
    // reference-counted `Bytes` instead of copying into `Vec<u8>`.
    config.bytes(["."]);
    // The service is generated separately, behind the crate's `grpc` feature.
    config.service_generator(Box::new(NoServices));
    config.compile_protos(&[proto], &[proto_dir])?;
    println!("wrote {}", out_dir.join("protos.rs").display());
    Ok(())
}

fn service(proto: &Path, proto_dir: &Path, out_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out_dir)?;
    tonic_prost_build::configure()
        .out_dir(out_dir)
        // Every message of package `protos` is the one generated above.
        .extern_path(".protos", "crate")
        .build_client(true)
        .build_server(true)
        .compile_protos(&[proto], &[proto_dir])?;
    println!("wrote {}", out_dir.join("protos.rs").display());
    Ok(())
}

/// Leaves services out of the message file.
#[derive(Debug)]
struct NoServices;

impl prost_build::ServiceGenerator for NoServices {
    fn generate(&mut self, _service: prost_build::Service, _buf: &mut String) {}
}
