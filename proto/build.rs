//! Compiles the kiosk.v1 contract with protox (pure Rust), so no machine needs `protoc`, writes
//! the encoded descriptor set that server reflection serves, and turns the reasons table
//! (`kiosk/v1/reasons.toml`, data rather than code) into the `reasons!` call of `src/reasons.rs`.
use std::path::PathBuf;

const PROTO_FILES: &[&str] = &[
    "kiosk/v1/common.proto",
    "kiosk/v1/errors.proto",
    "kiosk/v1/terminal.proto",
    "kiosk/v1/audit.proto",
    "kiosk/v1/verify.proto",
    "kiosk/v1/issuer.proto",
];

const REASONS_TABLE: &str = "kiosk/v1/reasons.toml";

/// The gRPC codes a reason may travel with (tonic's `Code` variant names), and `none` for the
/// terminal-side reasons that never cross the wire.
const CODES: &[&str] = &[
    "none",
    "InvalidArgument",
    "FailedPrecondition",
    "OutOfRange",
    "Unauthenticated",
    "PermissionDenied",
    "NotFound",
    "AlreadyExists",
    "Aborted",
    "ResourceExhausted",
    "Unavailable",
    "DeadlineExceeded",
    "Internal",
    "Unimplemented",
    "Cancelled",
    "Unknown",
    "DataLoss",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=kiosk");
    let descriptors = protox::compile(PROTO_FILES, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("kiosk_v1_descriptor.bin"),
        protox::prost::Message::encode_to_vec(&descriptors),
    )?;
    std::fs::write(
        out_dir.join("reasons_table.rs"),
        reasons_call(&std::fs::read_to_string(REASONS_TABLE)?)?,
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}

/// The `reasons! { NAME, code, "ja", "en"; … }` call for the table, refusing a row with a
/// missing field, an unknown code or a name that is not an upper-case identifier.
fn reasons_call(table: &str) -> Result<String, Box<dyn std::error::Error>> {
    let table: toml::Table = toml::from_str(table)?;
    let rows = table
        .get("reason")
        .and_then(toml::Value::as_array)
        .ok_or(format!("{REASONS_TABLE}: no [[reason]] rows"))?;
    let mut call = String::from("reasons! {\n");
    for (i, row) in rows.iter().enumerate() {
        let field = |key: &str| {
            row.get(key)
                .and_then(toml::Value::as_str)
                .ok_or(format!("{REASONS_TABLE}: row {} has no {key}", i + 1))
        };
        let (name, code, ja, en) = (field("name")?, field("code")?, field("ja")?, field("en")?);
        let identifier = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !identifier {
            return Err(
                format!("{REASONS_TABLE}: {name:?} is not an upper-case identifier").into(),
            );
        }
        if !CODES.contains(&code) {
            return Err(format!("{REASONS_TABLE}: {name} has the unknown code {code:?}").into());
        }
        let code = match code {
            "none" => "None".to_owned(),
            code => format!("Some(Code::{code})"),
        };
        call.push_str(&format!("    {name}, {code}, {ja:?}, {en:?};\n"));
    }
    call.push_str("}\n");
    Ok(call)
}
