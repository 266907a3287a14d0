//! Reading a [`Config`]: the TOML file and the `KIOSK_*` variables become two figment
//! providers, merged (a variable over the file, the file over the defaults of `Config`'s serde
//! `default`) and extracted by figment into the typed tree.
//!
//! The variables are derived from the schema, not listed: every key of `Config` (serialized
//! with its `[trust]` and `[keys]` sections present) has the variable `KIOSK_<KEY>`, a key of a
//! section `KIOSK_<SECTION>_<KEY>`, so a field added to `Config`, `TrustConfig` or
//! `KeysConfig` is read from its variable with no new code. A variable's value is text, read
//! as a number where the setting's default is one (`typed`), and a list is written `[a, b]`
//! (items without quotes or commas: paths, codes, numbers).
//! The duration settings' human forms (`KIOSK_RECONCILE_INTERVAL=60s`) come from
//! `crate::durations::DURATION_KEYS`.
//!
//! Extraction stops at a value that does not fit (figment, like serde, reports one error per
//! pass), so a refused value is taken out and extraction repeated: every type error, unknown
//! key and missing field of the file and the variables is reported at once.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile as FigmentProfile, Provider};

use super::{Config, ConfigError, Environment, KeysConfig, TrustConfig, env_var};

/// The name of the variables' provider in figment's metadata.
const VARIABLES: &str = "KIOSK_* variables";

/// At most this many values are taken out and extraction repeated: a bound on the work for
/// a file of nothing but errors (the problems past it are not listed).
const MOST_PROBLEMS: usize = 64;

/// Where the settings of a loaded [`Config`] came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// The configuration file, if one was read.
    pub file: Option<PathBuf>,
    /// The keys the file sets (top-level keys, and `<section>.<key>` for `[trust]`/`[keys]`).
    pub file_keys: BTreeSet<String>,
    /// The `KIOSK_*` variables that were set and read.
    pub variables: BTreeSet<String>,
}

impl Sources {
    /// Where `key` came from: its variable, the file, or the default.
    pub fn of(&self, key: &str) -> String {
        let variable = env_var(key);
        let human = crate::durations::human_key(key).map(env_var);
        if self.variables.contains(&variable) {
            variable
        } else if let Some(human) = human.filter(|v| self.variables.contains(v)) {
            human
        } else if self.file_keys.contains(key) {
            match &self.file {
                Some(file) => file.display().to_string(),
                None => "file".to_owned(),
            }
        } else {
            "default".to_owned()
        }
    }
}

/// One source of settings as a figment provider: the values, and which source they are.
struct Values {
    dict: Dict,
    metadata: Metadata,
}

impl Provider for Values {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<FigmentProfile, Dict>, figment::Error> {
        Ok(FigmentProfile::Default.collect(self.dict.clone()))
    }
}

/// The file's values and the keys it sets (human durations already turned into their integer
/// keys); a file that cannot be read or is not TOML is refused here.
fn file_values(path: &Path) -> Result<(Values, BTreeSet<String>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))?;
    crate::durations::normalize(&mut table).map_err(ConfigError::Parse)?;
    let keys = file_keys(&table);
    let dict = Value::serialize(&table)
        .ok()
        .and_then(Value::into_dict)
        .ok_or_else(|| ConfigError::Parse("the file is not a table of settings".to_owned()))?;
    let metadata = Metadata::from("configuration file", path);
    Ok((Values { dict, metadata }, keys))
}

/// The keys a configuration file sets: top-level keys, and `<section>.<key>` for the keys of
/// its sections.
fn file_keys(table: &toml::Table) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (key, value) in table {
        keys.insert(key.clone());
        if let Some(section) = value.as_table() {
            keys.extend(section.keys().map(|field| format!("{key}.{field}")));
        }
    }
    keys
}

/// Every settable key, from the schema: `(section, key, default)` with `section` empty for
/// the top-level keys. `[[remote_issuers]]` entries are only written in the file.
fn schema_keys() -> Vec<(String, String, Value)> {
    let full = Config {
        trust: Some(TrustConfig::default()),
        keys: Some(KeysConfig::default()),
        ..Config::default()
    };
    let Some(dict) = Value::serialize(&full).ok().and_then(Value::into_dict) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    for (key, value) in dict {
        match value {
            Value::Dict(_, section) => {
                keys.extend(
                    section
                        .into_iter()
                        .map(|(field, default)| (key.clone(), field, default)),
                );
            }
            _ if key == "remote_issuers" => {}
            default => keys.push((String::new(), key, default)),
        }
    }
    keys
}

/// The variables' values, as the file's keys, typed as their settings' defaults (`typed`);
/// a human duration becomes its integer key.
fn variable_values(env: &dyn Environment) -> Result<Values, ConfigError> {
    let mut dict = Dict::new();
    for (section, key, default) in schema_keys() {
        let dotted = if section.is_empty() {
            key.clone()
        } else {
            format!("{section}.{key}")
        };
        let Some(text) = env.var(&env_var(&dotted)) else {
            continue;
        };
        let value = typed(&text, &default);
        let target = if section.is_empty() {
            &mut dict
        } else {
            match dict
                .entry(section)
                .or_insert_with(|| Value::from(Dict::new()))
            {
                Value::Dict(_, inner) => inner,
                _ => continue,
            }
        };
        target.insert(key, value);
    }
    for (human, integer, unit_ms) in crate::durations::DURATION_KEYS {
        let Some(text) = env.var(&env_var(human)) else {
            continue;
        };
        let invalid = |why: String| ConfigError::Invalid {
            field: human,
            why: format!("{} ({})", why, env_var(human)),
        };
        if env.var(&env_var(integer)).is_some() {
            return Err(invalid(format!("{} is set too: set one", env_var(integer))));
        }
        let units = crate::durations::in_units(&text, unit_ms).map_err(invalid)?;
        dict.insert(integer.to_owned(), Value::from(units));
    }
    let metadata = Metadata::named(VARIABLES)
        .interpolater(|_: &FigmentProfile, keys: &[&str]| env_var(&keys.join(".")));
    Ok(Values { dict, metadata })
}

/// A variable's text as a value of the kind its setting's default has: a number where the
/// default is a number (or unset: `max_connections`), else text; `[a, b]` a list, each item
/// typed by the default's first item. What does not parse stays text, so the extraction
/// names the variable and the type it wanted. The file's values are TOML's own types and
/// are extracted strictly: a number in quotes is refused there.
fn typed(text: &str, default: &Value) -> Value {
    if let Some(inner) = text
        .trim()
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        let item_default = match default {
            Value::Array(_, items) => items.first().cloned(),
            _ => None,
        }
        .unwrap_or_else(|| Value::from(String::new()));
        let items: Vec<Value> = match inner.trim() {
            "" => Vec::new(),
            inner => inner
                .split(',')
                .map(|item| typed(item.trim(), &item_default))
                .collect(),
        };
        return Value::from(items);
    }
    if matches!(default, Value::Num(..) | Value::Empty(..)) {
        if let Ok(n) = text.parse::<u64>() {
            return Value::from(n);
        }
        if let Ok(n) = text.parse::<i64>() {
            return Value::from(n);
        }
    }
    Value::from(text.to_owned())
}

/// An [`Environment`] that remembers which variables were set.
struct Recording<'a> {
    env: &'a dyn Environment,
    seen: RefCell<BTreeSet<String>>,
}

impl Environment for Recording<'_> {
    fn var(&self, name: &str) -> Option<String> {
        let value = self.env.var(name);
        if value.is_some() {
            self.seen.borrow_mut().insert(name.to_owned());
        }
        value
    }
}

/// Reads `file` (if given) and the variables of `env` into a `Config` (profile and
/// validation are the caller's), with where each setting came from.
pub(super) fn read(file: Option<&Path>, env: &dyn Environment) -> Result<Config, ConfigError> {
    let env = &Recording {
        env,
        seen: RefCell::default(),
    };
    let (file_values, keys) = match file {
        Some(path) => {
            let (values, keys) = file_values(path)?;
            (Some(values), keys)
        }
        None => (None, BTreeSet::new()),
    };
    let variables = variable_values(env)?;
    let mut config = extract_all(file_values, variables)?;
    config.sources = Sources {
        file: file.map(Path::to_owned),
        file_keys: keys,
        variables: env.seen.take(),
    };
    Ok(config)
}

/// Extracts the merged `file` and `variables`, reporting every value that does not fit: each
/// refused value is taken out of its source and extraction repeated.
fn extract_all(mut file: Option<Values>, mut variables: Values) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    loop {
        let mut figment = Figment::new();
        if let Some(file) = &file {
            figment = figment.merge(Values {
                dict: file.dict.clone(),
                metadata: file.metadata.clone(),
            });
        }
        figment = figment.merge(Values {
            dict: variables.dict.clone(),
            metadata: variables.metadata.clone(),
        });
        let error = match figment.extract::<Config>() {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => break,
            Err(error) => error,
        };
        let mut removed = false;
        for error in error {
            let from_variables = error.metadata.as_ref().is_some_and(|m| m.name == VARIABLES);
            let path = refused_path(&error);
            problems.push(problem(&error, &path, from_variables));
            let source = match (&mut file, from_variables) {
                (_, true) => &mut variables.dict,
                (Some(file), false) => &mut file.dict,
                (None, false) => &mut variables.dict,
            };
            removed |= remove(source, &path);
        }
        if !removed || problems.len() >= MOST_PROBLEMS {
            break;
        }
    }
    Err(match problems.len() {
        1 => problems.remove(0),
        _ => ConfigError::Several(problems),
    })
}

/// The key path of the value an extraction error refused: for an unknown key, the key itself.
fn refused_path(error: &figment::Error) -> Vec<String> {
    let mut path = error.path.clone();
    if let figment::error::Kind::UnknownField(name, _) = &error.kind
        && path.last() != Some(name)
    {
        path.push(name.clone());
    }
    path
}

/// The problem an extraction error is: a file's is [`ConfigError::Parse`] naming the key and
/// the file; a variable's names the variable. `KIOSK_PROFILE` keeps its own field, as the
/// profile chooses what else is read.
fn problem(error: &figment::Error, path: &[String], from_variables: bool) -> ConfigError {
    let key = key_name(path);
    let why = match &error.kind {
        // figment's text lists every key of the schema: the key is named before it already.
        figment::error::Kind::UnknownField(..) => "unknown key".to_owned(),
        kind => kind.to_string(),
    };
    if from_variables {
        if key == "profile" {
            return ConfigError::Invalid {
                field: "KIOSK_PROFILE",
                why: "dev or production".to_owned(),
            };
        }
        return ConfigError::Variable {
            variable: env_var(
                &path
                    .iter()
                    .filter(|part| part.parse::<usize>().is_err())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("."),
            ),
            key,
            why,
        };
    }
    let file = match error.metadata.as_ref().and_then(|m| m.source.as_ref()) {
        Some(figment::Source::File(path)) => format!(" ({})", path.display()),
        Some(other) => format!(" ({other})"),
        None => String::new(),
    };
    match key.as_str() {
        "" => ConfigError::Parse(format!("{why}{file}")),
        _ => ConfigError::Parse(format!("{key}: {why}{file}")),
    }
}

/// A key path as the documentation writes it: `trust.terminal_ca`, `remote_issuers[0].name`.
fn key_name(path: &[String]) -> String {
    let mut name = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            name.push_str(&format!("[{part}]"));
        } else {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(part);
        }
    }
    name
}

/// Takes the value at `path` out of `dict` (an index into a list takes out its entry).
/// Whether there was one.
fn remove(dict: &mut Dict, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = dict;
    for (i, key) in parents.iter().enumerate() {
        match current.get_mut(key) {
            Some(Value::Dict(_, inner)) => current = inner,
            Some(Value::Array(_, items)) => {
                return remove_from_list(items, &path[i + 1..]);
            }
            _ => return false,
        }
    }
    current.remove(last).is_some()
}

/// [`remove`] within a list: the first key is the index.
fn remove_from_list(items: &mut Vec<Value>, path: &[String]) -> bool {
    let Some(index) = path.first().and_then(|i| i.parse::<usize>().ok()) else {
        return false;
    };
    if index >= items.len() {
        return false;
    }
    match (path.len(), &mut items[index]) {
        (1, _) => {
            items.remove(index);
            true
        }
        (_, Value::Dict(_, inner)) => remove(inner, &path[1..]),
        _ => {
            items.remove(index);
            true
        }
    }
}
