//! The login message format against the contract's test vector
//! (`proto/kiosk/v1/testdata/card_auth_vector.json`, computed independently in Python).

use card::login;

fn field(json: &str, key: &str) -> String {
    // The vector file is flat JSON of string values; a tiny scan keeps serde out of `card`.
    let needle = format!("\"{key}\": \"");
    let start = json.find(&needle).expect("key in vector") + needle.len();
    let end = start + json[start..].find('"').expect("closing quote");
    json[start..end].to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn login_bytes_match_the_contract_vector() {
    let json = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proto/kiosk/v1/testdata/card_auth_vector.json"
    ))
    .unwrap();
    let context = login::context_bytes(
        &field(&json, "gateway_id"),
        &field(&json, "terminal_id"),
        &field(&json, "session_id"),
    )
    .unwrap();
    assert_eq!(hex(&context), field(&json, "auth_context_bytes_hex"));
    let challenge: Vec<u8> = (0u8..32).collect();
    assert_eq!(hex(&challenge), field(&json, "challenge_hex"));
    assert_eq!(
        hex(&login::signed_message(&context, &challenge)),
        field(&json, "signed_message_hex")
    );
    assert_eq!(
        hex(&login::digest_info(&context, &challenge)),
        field(&json, "digest_info_hex")
    );
}

#[test]
fn ambiguous_context_is_refused() {
    assert!(login::context_bytes("gw", "a\nb", "s").is_none());
    assert!(login::context_bytes("", "t", "s").is_none());
}
