//! `kiosk-gateway config check`'s report: the effective configuration, every setting with
//! where it came from (the file, a `KIOSK_*` variable, `--dev`, or the default), as TOML with
//! comments. Database URLs are shown with their password replaced by `***`
//! ([`redact_url`]); the pseudonym key and the checkpoint seed are files, of which only the
//! paths are shown; a checkpoint key on a token, as its URI (which names where the PIN is,
//! never the PIN).

use std::fmt::Write as _;

use crate::config::{Config, Profile, TRUST_KEYS};

/// Settings only the `dev` profile reads.
const DEV_ONLY: [&str; 4] = ["data_dir", "pki_dir", "register_url", "synthetic_residents"];

/// The effective configuration of `config` as TOML, each setting commented with its source;
/// `dev_flag` when `--dev` chose the profile.
pub fn render(config: &Config, dev_flag: bool) -> String {
    let mut table = toml::Table::try_from(config).unwrap_or_default();
    let profile = config.profile();
    let production = profile == Profile::Production;
    let mut out = String::new();
    let source = |key: &str| config.sources.of(key);

    let profile_source = if dev_flag {
        "--dev".to_owned()
    } else if source("profile") == "default" {
        match config.sources.file {
            Some(_) => "default: a configuration file is given".to_owned(),
            None => "default: no configuration file".to_owned(),
        }
    } else {
        source("profile")
    };
    let test_only = if production { "" } else { " (TEST ONLY)" };
    let _ = writeln!(
        out,
        "profile = \"{}\"  # {profile_source}{test_only}",
        profile.as_str()
    );
    table.remove("profile");

    // The defaults that are derived rather than fixed, as the dev profile applies them.
    if !production {
        table
            .entry("database_url")
            .or_insert_with(|| config.database_url().into());
        table
            .entry("register_url")
            .or_insert_with(|| config.register_url().into());
        table
            .entry("pki_dir")
            .or_insert_with(|| config.pki_dir().display().to_string().into());
        #[cfg(feature = "embedded")]
        table.entry("card_crl_file").or_insert_with(|| {
            crate::provision::card_crl_file(config)
                .display()
                .to_string()
                .into()
        });
    }
    for key in ["database_url", "register_url"] {
        if let Some(toml::Value::String(url)) = table.get_mut(key) {
            *url = redact_url(url);
        }
    }
    let trust = table.remove("trust");
    let keys = table.remove("keys");
    let remote = table.remove("remote_issuers");

    for (key, value) in &table {
        let mut note = source(key);
        if production && DEV_ONLY.contains(&key.as_str()) {
            note.push_str("; dev profile only, not read");
        }
        let _ = writeln!(out, "{key} = {value}  # {note}");
    }
    let mut unset = vec![
        (
            "max_connections",
            "the soft RLIMIT_NOFILE, raised to the hard limit at start, less fd_reserve",
        ),
        ("rehearsal_clock_start", "the system clock"),
    ];
    if production {
        unset.push(("database_url", "required in the production profile"));
        unset.push(("card_crl_file", "required in the production profile"));
    }
    for (key, meaning) in unset {
        if !table.contains_key(key) {
            let _ = writeln!(out, "# {key}: not set: {meaning}");
        }
    }

    sections(&mut out, config, trust, keys);
    remote_issuers(&mut out, remote);
    out
}

/// `[trust]` and `[keys]`: in production every key, set or not; in dev only if set (which
/// the dev profile refuses).
fn sections(
    out: &mut String,
    config: &Config,
    trust: Option<toml::Value>,
    keys: Option<toml::Value>,
) {
    let production = config.profile() == Profile::Production;
    let source = |key: &str| config.sources.of(key);
    for (name, section) in [("trust", trust), ("keys", keys)] {
        if !production && section.is_none() {
            continue;
        }
        let section = section
            .and_then(|value| value.as_table().cloned())
            .unwrap_or_default();
        let _ = writeln!(out, "\n[{name}]");
        for key in TRUST_KEYS
            .iter()
            .filter(|k| k.starts_with(&format!("{name}.")))
        {
            let field = &key[name.len() + 1..];
            match section.get(field) {
                Some(value) => {
                    let _ = writeln!(out, "{field} = {value}  # {}", source(key));
                }
                None => {
                    let _ = writeln!(out, "# {field}: not set");
                }
            }
        }
        // A key of the section that is not a file of TRUST_KEYS (a list of policies, say)
        // is printed too when set: the report shows every setting the schema has.
        for (field, value) in &section {
            let key = format!("{name}.{field}");
            if !TRUST_KEYS.contains(&key.as_str()) {
                let _ = writeln!(out, "{field} = {value}  # {}", source(&key));
            }
        }
    }
}

/// Each `[[remote_issuers]]` entry as the file gave it.
fn remote_issuers(out: &mut String, remote: Option<toml::Value>) {
    let remote = remote
        .and_then(|value| value.as_array().cloned())
        .unwrap_or_default();
    for entry in remote {
        let _ = writeln!(out, "\n[[remote_issuers]]");
        if let Some(entry) = entry.as_table() {
            for (key, value) in entry {
                let _ = writeln!(out, "{key} = {value}");
            }
        }
    }
}

/// `url` with its password replaced by `***` (`postgres://user:***@host/db`), also a
/// `password=` query parameter: what may be printed or logged of a database URL.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    // The last `@` ends the user information, even when an unencoded password holds `/`.
    let location = match before_query.rsplit_once('@') {
        Some((userinfo, host_and_path)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host_and_path}"),
            None => format!("{userinfo}@{host_and_path}"),
        },
        None => before_query.to_owned(),
    };
    let query = query.map(|query| {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
                _ => param.to_owned(),
            })
            .collect();
        format!("?{}", params.join("&"))
    });
    format!("{scheme}{location}{}", query.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_redacted() {
        for (url, shown) in [
            (
                "postgres://gateway:s3cret@db:5432/kiosk",
                "postgres://gateway:***@db:5432/kiosk",
            ),
            (
                "postgresql://gateway:p@ss@db/kiosk?sslmode=require",
                "postgresql://gateway:***@db/kiosk?sslmode=require",
            ),
            (
                "postgres://db/kiosk?user=gateway&password=s3cret",
                "postgres://db/kiosk?user=gateway&password=***",
            ),
            ("postgres://gateway@db/kiosk", "postgres://gateway@db/kiosk"),
            ("postgres://u:pa/ss@db/kiosk", "postgres://u:***@db/kiosk"),
            (
                "sqlite:///var/lib/kiosk/gateway.db",
                "sqlite:///var/lib/kiosk/gateway.db",
            ),
            (
                "sqlite://gateway.db?mode=rwc",
                "sqlite://gateway.db?mode=rwc",
            ),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }
}
