//! Generates the client from the repository's proto/ at build time: the .proto is the only source of truth.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from("../../proto");
    let proto = proto_root.join("llmgateway/v1/gateway.proto");
    println!("cargo:rerun-if-changed={}", proto.display());

    // prost-build runs the `protoc` named by PROTOC; the vendored one needs no system install.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&[proto], &[proto_root])?;
    Ok(())
}
