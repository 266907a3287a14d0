//! Compiles the kiosk.v1 contract with protox (pure Rust), so no machine needs `protoc`, writes
//! the encoded descriptor set that server reflection serves, and turns the reasons table
//! (`kiosk/v1/reasons.toml`, data rather than code) into the `reasons!` call of `src/reasons.rs`,
//! the certificate types' menu names (`kiosk/v1/certificate_types.toml`) into
//! `src/certificate_types.rs`, and the further languages' kiosk texts (`kiosk/v1/locales/*.toml`)
//! into `LOCALES` of `src/locales.rs`, refusing a file that misses a reason or a type or names
//! one the tables lack.
use std::path::{Path, PathBuf};

const PROTO_FILES: &[&str] = &[
    "kiosk/v1/common.proto",
    "kiosk/v1/errors.proto",
    "kiosk/v1/terminal.proto",
    "kiosk/v1/audit.proto",
    "kiosk/v1/verify.proto",
    "kiosk/v1/issuer.proto",
];

const REASONS_TABLE: &str = "kiosk/v1/reasons.toml";

const LOCALES_DIR: &str = "kiosk/v1/locales";

const TYPES_TABLE: &str = "kiosk/v1/certificate_types.toml";

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
    let reasons_table = std::fs::read_to_string(REASONS_TABLE)?;
    std::fs::write(
        out_dir.join("reasons_table.rs"),
        reasons_call(&reasons_table)?,
    )?;
    let types_table = std::fs::read_to_string(TYPES_TABLE)?;
    std::fs::write(
        out_dir.join("types_table.rs"),
        types_table_code(&types_table)?,
    )?;
    let names = Names {
        reasons: row_names(&reasons_table, "reason", REASONS_TABLE)?,
        types: row_names(&types_table, "type", TYPES_TABLE)?,
    };
    std::fs::write(
        out_dir.join("locales_table.rs"),
        locales_table(&names, Path::new(LOCALES_DIR))?,
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

/// The reasons and certificate types every language file must name.
struct Names {
    reasons: Vec<String>,
    types: Vec<String>,
}

/// The `name` of every `[[row]]` of `table`, in its order.
fn row_names(
    table: &str,
    row: &str,
    file: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let table: toml::Table = toml::from_str(table)?;
    let rows = table
        .get(row)
        .and_then(toml::Value::as_array)
        .ok_or(format!("{file}: no [[{row}]] rows"))?;
    Ok(rows
        .iter()
        .filter_map(|row| row.get("name").and_then(toml::Value::as_str))
        .map(str::to_owned)
        .collect())
}

/// The `ALL` constant of the certificate types table, in the table's order.
fn types_table_code(table: &str) -> Result<String, Box<dyn std::error::Error>> {
    let table: toml::Table = toml::from_str(table)?;
    let rows = table
        .get("type")
        .and_then(toml::Value::as_array)
        .ok_or(format!("{TYPES_TABLE}: no [[type]] rows"))?;
    let mut out = String::from(
        "/// Every certificate type's menu name, in the order of `certificate_types.toml`.\n\
         pub const ALL: &[TypeName] = &[\n",
    );
    for (i, row) in rows.iter().enumerate() {
        let field = |key: &str| {
            row.get(key)
                .and_then(toml::Value::as_str)
                .filter(|value| !value.is_empty())
                .ok_or(format!("{TYPES_TABLE}: row {} has no {key}", i + 1))
        };
        let (name, ja, en) = (field("name")?, field("ja")?, field("en")?);
        out.push_str(&format!(
            "    TypeName {{ name: {name:?}, ja: {ja:?}, en: {en:?} }},\n"
        ));
    }
    out.push_str("];\n");
    Ok(out)
}

/// The `LOCALES` constant: one `Locale` per file of `dir`, in the order of their tags, each
/// with a text for every reason and a name for every certificate type, in the tables' order.
fn locales_table(names: &Names, dir: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|e| e == "toml"));
    files.sort();
    let mut out = String::from(
        "/// The further languages of the kiosk texts, one per file of `kiosk/v1/locales/`, \
         in the order of their tags.\npub const LOCALES: &[Locale] = &[\n",
    );
    for path in &files {
        out.push_str(&locale_entry(names, path)?);
    }
    out.push_str("];\n");
    Ok(out)
}

/// One `Locale { … }` entry from the file at `path`, refusing a tag that is not the file's
/// name, a missing or empty text, and a reason or type the tables do not have.
fn locale_entry(names: &Names, path: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let shown = path.display().to_string();
    let file: toml::Table = toml::from_str(&std::fs::read_to_string(path)?)?;
    let string = |key: &str| {
        file.get(key)
            .and_then(toml::Value::as_str)
            .filter(|value| !value.is_empty())
            .ok_or(format!("{shown}: no {key}"))
    };
    let (tag, language) = (string("locale")?, string("language")?);
    if path.file_stem().and_then(|s| s.to_str()) != Some(tag) {
        return Err(format!("{shown}: locale {tag:?} is not the file's name").into());
    }
    let reviewed = file
        .get("reviewed")
        .and_then(toml::Value::as_bool)
        .ok_or(format!("{shown}: no reviewed = true|false"))?;
    let texts = section_pairs(&file, "reasons", &names.reasons, &shown)?;
    let type_names = section_pairs(&file, "types", &names.types, &shown)?;
    Ok(format!(
        "    Locale {{\n        tag: {tag:?},\n        language: {language:?},\n        \
         reviewed: {reviewed},\n        texts: &[\n{texts}        ],\n        \
         type_names: &[\n{type_names}        ],\n    }},\n"
    ))
}

/// The `(name, text)` lines of the `[section]` table of a language file: one per name of
/// `expected`, in its order, refusing a missing or empty text and a name not in `expected`.
fn section_pairs(
    file: &toml::Table,
    section: &str,
    expected: &[String],
    shown: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let texts = file
        .get(section)
        .and_then(toml::Value::as_table)
        .ok_or(format!("{shown}: no [{section}] table"))?;
    if let Some(unknown) = texts.keys().find(|name| !expected.contains(name)) {
        return Err(format!("{shown}: [{section}] names {unknown}, which the table lacks").into());
    }
    let mut out = String::new();
    for name in expected {
        let text = texts
            .get(name)
            .and_then(toml::Value::as_str)
            .filter(|text| !text.trim().is_empty())
            .ok_or(format!("{shown}: [{section}] has no text for {name}"))?;
        out.push_str(&format!("            ({name:?}, {text:?}),\n"));
    }
    Ok(out)
}
