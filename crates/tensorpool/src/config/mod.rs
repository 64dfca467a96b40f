//! Configuration machinery shared by every role: TOML files read through serde, environment
//! overrides (Driver Model §17: uppercase the key, `.` becomes `_`; the environment wins),
//! where each value came from, unknown keys, and errors that name the key and the expected
//! form.
//!
//! A role declares its keys by reading them through a [`Loader`]; whatever the file holds
//! that no role read is an unknown key (reported, not an error: peers' files carry keys of
//! their own).
//!
//! ```
//! use tensorpool::config::{Loader, Source};
//! use std::collections::HashMap;
//!
//! let env = HashMap::from([("DRIVER_CONTROL_STREAM_ID".to_string(), "1500".to_string())]);
//! let mut l = Loader::from_str("[driver]\ncontrol_stream_id = 1000\nfoo = 1\n", "inline", &env)?;
//! let id: u32 = l.value_or("driver.control_stream_id", 1000, "an unsigned 32-bit integer")?;
//! assert_eq!(id, 1500);
//! assert_eq!(l.provenance().source("driver.control_stream_id"), Some(&Source::Env("DRIVER_CONTROL_STREAM_ID".into())));
//! assert_eq!(l.unknown_keys(), vec!["driver.foo".to_string()]);
//! # Ok::<(), tensorpool::config::ConfigError>(())
//! ```

mod range;

pub use range::{IdRange, ParseRangeError};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file.
    File,
    /// This environment variable.
    Env(String),
    /// Derived from other values (e.g. `driver.announce_channel` = `driver.control_channel`).
    Derived(&'static str),
    /// Taken from a peer's file: the text names the file and the key (e.g. the driver file's
    /// `shm.base_dir` for a producer given `--driver-config`).
    Peer(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File => f.write_str("file"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Derived(from) => write!(f, "default ({from})"),
            Source::Peer(from) => f.write_str(from),
        }
    }
}

/// One resolved key: its value as TOML text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The key, dotted (`driver.control_stream_id`).
    pub key: String,
    /// The value, rendered as TOML.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// Every key a role read, in reading order, with its value and source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    entries: Vec<Resolved>,
}

impl Provenance {
    /// The resolved keys in the order they were read.
    pub fn entries(&self) -> &[Resolved] {
        &self.entries
    }

    /// Where `key` came from, if it was read.
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.source)
    }

    fn record(&mut self, key: &str, value: String, source: Source) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            e.value = value;
            e.source = source;
        } else {
            self.entries.push(Resolved {
                key: key.to_owned(),
                value,
                source,
            });
        }
    }

    /// Records a value taken from `source` after loading (a peer's file, a tool's flag).
    pub fn record_from<T: Serialize>(&mut self, key: &str, value: &T, source: Source) {
        self.record(key, render(value), source);
    }

    /// Records a value set by the role itself (derived from other keys).
    pub fn record_derived<T: Serialize>(&mut self, key: &str, value: &T, from: &'static str) {
        self.record(key, render(value), Source::Derived(from));
    }
}

/// A configuration could not be loaded. Every variant names the key (or file) and what was
/// expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file is not valid TOML.
    #[error("{origin} is not valid TOML: {reason}")]
    Syntax {
        /// The file (or "inline").
        origin: String,
        /// The parser's message.
        reason: String,
    },
    /// A value has the wrong type or form.
    #[error("{key} = {found} (from {origin}): expected {expected}")]
    Invalid {
        /// The key.
        key: String,
        /// Where the value came from.
        origin: Source,
        /// The value found, as text.
        found: String,
        /// The form expected.
        expected: String,
    },
    /// A required key is missing.
    #[error("{key} is missing: expected {expected}")]
    Missing {
        /// The key.
        key: String,
        /// What it must hold.
        expected: String,
    },
    /// Values are each valid but do not fit together.
    #[error("{key}: {reason}")]
    Inconsistent {
        /// The key at fault.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Where environment variables are read from: the process environment, or a map (tests).
pub trait EnvSource {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// No environment at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl EnvSource for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

/// The environment variable of a key: uppercase, `.` and `-` become `_`
/// (`driver.control_stream_id` -> `DRIVER_CONTROL_STREAM_ID`).
pub fn env_var_name(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

fn render<T: Serialize>(value: &T) -> String {
    match toml::Value::try_from(value) {
        Ok(v) => v.to_string(),
        Err(_) => "<unrenderable>".to_owned(),
    }
}

/// Reads typed values out of one TOML document with environment overrides, recording where
/// each came from and which keys were read.
pub struct Loader<'e> {
    table: toml::Table,
    origin: String,
    env: &'e dyn EnvSource,
    provenance: Provenance,
    read: BTreeSet<String>,
}

impl fmt::Debug for Loader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loader")
            .field("origin", &self.origin)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl<'e> Loader<'e> {
    /// Parses TOML text; `origin` names it in errors.
    pub fn from_str(text: &str, origin: &str, env: &'e dyn EnvSource) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            table,
            origin: origin.to_owned(),
            env,
            provenance: Provenance::default(),
            read: BTreeSet::new(),
        })
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path, env: &'e dyn EnvSource) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_str(&text, &path.display().to_string(), env)
    }

    /// The TOML file at `path`, or, without one, defaults and environment only.
    pub fn open(path: Option<&Path>, env: &'e dyn EnvSource) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::from_file(p, env),
            None => Ok(Self::empty(env)),
        }
    }

    /// No file: defaults and environment only.
    pub fn empty(env: &'e dyn EnvSource) -> Self {
        Self {
            table: toml::Table::new(),
            origin: "defaults".to_owned(),
            env,
            provenance: Provenance::default(),
            read: BTreeSet::new(),
        }
    }

    /// What was read so far.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// Takes the provenance (at the end of loading).
    pub fn take_provenance(&mut self) -> Provenance {
        std::mem::take(&mut self.provenance)
    }

    /// The value of `key` from the environment (which wins) or the file, if either has it.
    /// `expected` describes the form for error messages.
    pub fn value<T: DeserializeOwned + Serialize>(
        &mut self,
        key: &str,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.read.insert(key.to_owned());
        let var = env_var_name(key);
        if let Some(text) = self.env.var(&var) {
            let v = parse_env::<T>(&text).ok_or_else(|| ConfigError::Invalid {
                key: key.to_owned(),
                origin: Source::Env(var.clone()),
                found: format!("{text:?}"),
                expected: expected.to_owned(),
            })?;
            self.provenance.record(key, render(&v), Source::Env(var));
            return Ok(Some(v));
        }
        let Some(raw) = lookup(&self.table, key) else {
            return Ok(None);
        };
        let found = raw.to_string();
        let v: T = raw.clone().try_into().map_err(|_| ConfigError::Invalid {
            key: key.to_owned(),
            origin: Source::File,
            found,
            expected: expected.to_owned(),
        })?;
        self.provenance.record(key, render(&v), Source::File);
        Ok(Some(v))
    }

    /// Like [`Loader::value`], with a default recorded as such when neither source has it.
    pub fn value_or<T: DeserializeOwned + Serialize>(
        &mut self,
        key: &str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.value(key, expected)? {
            Some(v) => Ok(v),
            None => {
                self.provenance
                    .record(key, render(&default), Source::Default);
                Ok(default)
            }
        }
    }

    /// A value parsed from text by `parse` (e.g. a range given as `"a-b"` or `[a, b]`).
    pub fn parsed<T, P>(
        &mut self,
        key: &str,
        expected: &str,
        parse: P,
    ) -> Result<Option<T>, ConfigError>
    where
        P: Fn(&toml::Value) -> Option<T>,
    {
        self.read.insert(key.to_owned());
        let var = env_var_name(key);
        let (raw, source) = if let Some(text) = self.env.var(&var) {
            let v = parse_env::<toml::Value>(&text).unwrap_or(toml::Value::String(text));
            (v, Source::Env(var))
        } else if let Some(v) = lookup(&self.table, key) {
            (v.clone(), Source::File)
        } else {
            return Ok(None);
        };
        match parse(&raw) {
            Some(v) => {
                self.provenance.record(key, raw.to_string(), source);
                Ok(Some(v))
            }
            None => Err(ConfigError::Invalid {
                key: key.to_owned(),
                origin: source,
                found: raw.to_string(),
                expected: expected.to_owned(),
            }),
        }
    }

    /// Records that `key` took a value derived from another key.
    pub fn record_derived<T: Serialize>(&mut self, key: &str, value: &T, from: &'static str) {
        self.read.insert(key.to_owned());
        self.provenance.record_derived(key, value, from);
    }

    /// Records that `key` took its default (for values whose default is computed by the role).
    pub fn record_default<T: Serialize>(&mut self, key: &str, value: &T) {
        self.read.insert(key.to_owned());
        self.provenance.record(key, render(value), Source::Default);
    }

    /// Names of the sub-tables of `key` (e.g. the profiles under `profiles`), in file order.
    /// Errors if `key` holds something other than a table.
    pub fn table_names(&mut self, key: &str) -> Result<Vec<String>, ConfigError> {
        match lookup(&self.table, key) {
            None => Ok(Vec::new()),
            Some(toml::Value::Table(t)) => Ok(t.keys().cloned().collect()),
            Some(other) => Err(ConfigError::Invalid {
                key: key.to_owned(),
                origin: Source::File,
                found: other.to_string(),
                expected: "a table".to_owned(),
            }),
        }
    }

    /// Every leaf key of the file that no one read, dotted (`supervisor.consumer_capacity`);
    /// array elements are named `key[i].field`.
    pub fn unknown_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_unknown(&self.table, "", &self.read, &mut out);
        out
    }

    /// Marks an array-of-tables element's field as read (`profiles.x.payload_pools[0].pool_id`).
    pub fn mark_read(&mut self, key: &str) {
        self.read.insert(key.to_owned());
    }

    /// The raw file value of `key` (no environment), e.g. to walk an array of tables.
    pub fn raw(&self, key: &str) -> Option<&toml::Value> {
        lookup(&self.table, key)
    }

    /// Where the document came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

fn lookup<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
    let mut parts = key.split('.');
    let mut v = table.get(parts.next()?)?;
    for p in parts {
        v = v.as_table()?.get(p)?;
    }
    Some(v)
}

/// An environment value as TOML (`1500`, `true`, `[1, 2]`, `{ a = 1 }`), else as a string.
fn parse_env<T: DeserializeOwned>(text: &str) -> Option<T> {
    let as_toml = toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"));
    if let Some(v) = as_toml
        && let Ok(parsed) = v.try_into()
    {
        return Some(parsed);
    }
    toml::Value::String(text.to_owned()).try_into().ok()
}

fn collect_unknown(
    table: &toml::Table,
    prefix: &str,
    read: &BTreeSet<String>,
    out: &mut Vec<String>,
) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let table_array = matches!(v, toml::Value::Array(items)
            if !items.is_empty() && items.iter().all(toml::Value::is_table));
        // an array of tables read as a whole still has its elements' fields checked
        if read.contains(&key) && !table_array {
            continue;
        }
        match v {
            toml::Value::Table(t) => collect_unknown(t, &key, read, out),
            toml::Value::Array(items) if table_array => {
                for (i, item) in items.iter().enumerate() {
                    let element = format!("{key}[{i}]");
                    if let Some(t) = item.as_table() {
                        collect_unknown(t, &element, read, out);
                    }
                }
            }
            _ => out.push(key),
        }
    }
}

/// A role's configuration as loaded: the values, where each came from, and the keys of the
/// role's table that nobody knows (other tables of a shared file belong to peers).
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The configuration.
    pub config: T,
    /// Every key read, its value and its source.
    pub provenance: Provenance,
    /// Unknown keys of the role's table.
    pub unknown_keys: Vec<String>,
}

impl<T> Loaded<T> {
    /// Loads a role's configuration: the `[table]` of `path` (or no file) read by `read`,
    /// environment variables overriding it, defaults for the rest; with where each value
    /// came from and the keys of `[table]` nobody knows.
    pub fn read_table(
        path: Option<&Path>,
        env: &dyn EnvSource,
        table: &str,
        read: impl FnOnce(&mut Loader<'_>) -> Result<T, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let mut l = Loader::open(path, env)?;
        let config = read(&mut l)?;
        Ok(Self {
            unknown_keys: unknown_keys_under(&l, table),
            provenance: l.take_provenance(),
            config,
        })
    }
}

/// A duration given in milliseconds under `key` (`*_ms` keys), with its default.
pub fn duration_ms(
    l: &mut Loader<'_>,
    key: &str,
    default: std::time::Duration,
) -> Result<std::time::Duration, ConfigError> {
    let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    let ms = l.value_or(key, default_ms, "a duration in milliseconds")?;
    Ok(std::time::Duration::from_millis(ms))
}

/// Keys of the file nobody read that lie under `table.` (the role's own table: other tables
/// of a shared file belong to peers).
pub fn unknown_keys_under(l: &Loader<'_>, table: &str) -> Vec<String> {
    let prefix = format!("{table}.");
    l.unknown_keys()
        .into_iter()
        .filter(|k| k.starts_with(&prefix))
        .collect()
}

/// Renders resolved values as aligned `key = value  # source` lines.
pub fn render_provenance(p: &Provenance) -> String {
    let width = p
        .entries()
        .iter()
        .map(|e| e.key.len() + e.value.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for e in p.entries() {
        let pad = width.saturating_sub(e.key.len() + e.value.len());
        out.push_str(&format!(
            "{} = {}{}  # {}\n",
            e.key,
            e.value,
            " ".repeat(pad),
            e.source
        ));
    }
    out
}

/// A map of every key's value as strings (for tests and JSON output).
pub fn provenance_map(p: &Provenance) -> BTreeMap<String, (String, String)> {
    p.entries()
        .iter()
        .map(|e| (e.key.clone(), (e.value.clone(), e.source.to_string())))
        .collect()
}
