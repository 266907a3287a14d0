//! Compiles the kiosk.v1 contract with protox (pure Rust), so no machine needs `protoc`, and
//! writes the encoded descriptor set that server reflection serves.
use std::path::PathBuf;

const PROTO_FILES: &[&str] = &[
    "kiosk/v1/common.proto",
    "kiosk/v1/errors.proto",
    "kiosk/v1/terminal.proto",
    "kiosk/v1/audit.proto",
    "kiosk/v1/verify.proto",
    "kiosk/v1/issuer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=kiosk");
    let descriptors = protox::compile(PROTO_FILES, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("kiosk_v1_descriptor.bin"),
        protox::prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
