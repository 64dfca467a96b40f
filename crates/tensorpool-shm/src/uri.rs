//! Region URIs (Wire Spec §15.22).
//!
//! The only scheme v1.2 defines is
//!
//! ```text
//! shm-uri  = "shm:file?path=" abs-path ["|" "require_hugepages=" bool]
//! abs-path = 1*( VCHAR except "?" and "|" and SP )
//! bool     = "true" / "false"
//! ```
//!
//! The parser follows the ABNF exactly: `path` comes first, `require_hugepages` may follow
//! once, nothing else is accepted. Both reference peers write `path` first, so the strict
//! order rejects no conforming peer (decision recorded in `docs/compliance.md`).
//!
//! ```
//! use tensorpool_shm::uri::RegionUri;
//! let uri: RegionUri = "shm:file?path=/dev/shm/tp/1.pool|require_hugepages=false".parse().unwrap();
//! assert_eq!(uri.path().to_str(), Some("/dev/shm/tp/1.pool"));
//! assert!(!uri.requires_hugepages());
//! assert_eq!(uri.to_string(), "shm:file?path=/dev/shm/tp/1.pool|require_hugepages=false");
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The fixed prefix of every v1.2 region URI: scheme, backend and the first parameter name.
pub const URI_PREFIX: &str = "shm:file?path=";

/// The name of the optional second parameter.
pub const HUGEPAGES_PARAM: &str = "require_hugepages";

/// Longest accepted path in bytes (Linux `PATH_MAX` minus the terminating NUL).
pub const MAX_PATH_BYTES: usize = 4095;

/// A parsed, syntactically valid region URI.
///
/// Holding one proves only the syntax; the file it names still has to pass path containment
/// ([`crate::paths`]) before it may be mapped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegionUri {
    path: String,
    require_hugepages: Option<bool>,
}

/// Why a string is not a valid region URI; each variant names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The URI is empty.
    #[error("region URI is empty; expected `shm:file?path=<absolute path>`")]
    Empty,
    /// The scheme is not `shm` (or the scheme separator is missing).
    #[error("unknown region URI scheme `{found}`; expected `shm`")]
    UnknownScheme {
        /// The scheme found (text before the first `:`, or the whole URI if there is none).
        found: String,
    },
    /// The scheme is `shm` but the backend is not `file`.
    #[error("unknown shm backend `{found}`; expected `file`")]
    UnknownBackend {
        /// The backend found between `shm:` and `?`.
        found: String,
    },
    /// No `?` introduces the parameters.
    #[error("region URI has no parameters; expected `?path=<absolute path>`")]
    MissingParameters,
    /// The first parameter is not `path`.
    #[error("first region URI parameter is `{found}`; expected `path`")]
    PathNotFirst {
        /// The name of the parameter found first.
        found: String,
    },
    /// A parameter other than `path` / `require_hugepages`.
    #[error("unknown region URI parameter `{found}`; expected only `path` and `require_hugepages`")]
    UnknownParameter {
        /// The parameter name.
        found: String,
    },
    /// A parameter given twice (or a third parameter after `require_hugepages`).
    #[error("region URI parameter `{name}` repeated; each parameter may appear once")]
    RepeatedParameter {
        /// The repeated parameter name.
        name: String,
    },
    /// A parameter without `=`.
    #[error("region URI parameter `{found}` has no `=value`")]
    MissingValue {
        /// The parameter text.
        found: String,
    },
    /// `path=` with nothing after it.
    #[error("region URI `path` is empty; expected an absolute path")]
    EmptyPath,
    /// The path does not start with `/`.
    #[error("region URI path `{found}` is relative; expected an absolute path starting with `/`")]
    RelativePath {
        /// The path found.
        found: String,
    },
    /// The path contains a byte the ABNF excludes (not VCHAR, or `?`, `|`, space).
    #[error(
        "region URI path contains byte 0x{byte:02x} at offset {offset}; allowed are visible \
         ASCII characters except `?`, `|` and space"
    )]
    ForbiddenPathByte {
        /// The offending byte.
        byte: u8,
        /// Its offset within the whole URI.
        offset: usize,
    },
    /// The path is longer than [`MAX_PATH_BYTES`].
    #[error("region URI path is {len} bytes; at most {max} are accepted")]
    PathTooLong {
        /// Length found.
        len: usize,
        /// Maximum accepted.
        max: usize,
    },
    /// `require_hugepages=` with nothing after it.
    #[error("`require_hugepages` is empty; expected `true` or `false`")]
    EmptyHugepages,
    /// `require_hugepages` is neither `true` nor `false`.
    #[error("`require_hugepages={found}` is not a boolean; expected `true` or `false`")]
    BadBoolean {
        /// The value found.
        found: String,
    },
}

impl RegionUri {
    /// Builds a URI for an absolute path, validating it like the parser does.
    pub fn new(path: impl AsRef<Path>, require_hugepages: Option<bool>) -> Result<Self, UriError> {
        let path = path.as_ref();
        let Some(text) = path.to_str() else {
            let bytes = path.as_os_str().as_encoded_bytes();
            let offset = bytes.iter().position(|b| !b.is_ascii()).unwrap_or(0);
            return Err(UriError::ForbiddenPathByte {
                byte: bytes.get(offset).copied().unwrap_or(0),
                offset: URI_PREFIX.len() + offset,
            });
        };
        check_path(text, URI_PREFIX.len())?;
        Ok(Self {
            path: text.to_owned(),
            require_hugepages,
        })
    }

    /// Parses a URI string (same as [`str::parse`]).
    pub fn parse(text: &str) -> Result<Self, UriError> {
        text.parse()
    }

    /// The absolute path of the backing file, exactly as announced (not canonicalized).
    pub fn path(&self) -> &Path {
        Path::new(&self.path)
    }

    /// The path as text.
    pub fn path_str(&self) -> &str {
        &self.path
    }

    /// Whether the region must be backed by hugepages (absent means `false`).
    pub fn requires_hugepages(&self) -> bool {
        self.require_hugepages.unwrap_or(false)
    }

    /// The `require_hugepages` parameter as written: `None` when it was absent.
    pub fn hugepages_param(&self) -> Option<bool> {
        self.require_hugepages
    }

    /// The path as an owned [`PathBuf`].
    pub fn to_path_buf(&self) -> PathBuf {
        PathBuf::from(&self.path)
    }
}

fn check_path(path: &str, base_offset: usize) -> Result<(), UriError> {
    if path.is_empty() {
        return Err(UriError::EmptyPath);
    }
    if let Some((i, &b)) = path
        .as_bytes()
        .iter()
        .enumerate()
        .find(|&(_, &b)| !(0x21..=0x7e).contains(&b) || b == b'?' || b == b'|')
    {
        return Err(UriError::ForbiddenPathByte {
            byte: b,
            offset: base_offset + i,
        });
    }
    if !path.starts_with('/') {
        return Err(UriError::RelativePath {
            found: path.to_owned(),
        });
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(UriError::PathTooLong {
            len: path.len(),
            max: MAX_PATH_BYTES,
        });
    }
    Ok(())
}

impl FromStr for RegionUri {
    type Err = UriError;

    fn from_str(text: &str) -> Result<Self, UriError> {
        if text.is_empty() {
            return Err(UriError::Empty);
        }
        let Some((scheme, rest)) = text.split_once(':') else {
            return Err(UriError::UnknownScheme {
                found: text.to_owned(),
            });
        };
        if scheme != "shm" {
            return Err(UriError::UnknownScheme {
                found: scheme.to_owned(),
            });
        }
        let Some((backend, params)) = rest.split_once('?') else {
            if rest != "file" {
                return Err(UriError::UnknownBackend {
                    found: rest.to_owned(),
                });
            }
            return Err(UriError::MissingParameters);
        };
        if backend != "file" {
            return Err(UriError::UnknownBackend {
                found: backend.to_owned(),
            });
        }
        let params_offset = text.len() - params.len();
        let mut parts = params.split('|');
        // `split` always yields at least one item.
        let first = parts.next().unwrap_or("");
        let (name, value) = split_param(first)?;
        if name != "path" {
            return Err(match name {
                HUGEPAGES_PARAM => UriError::PathNotFirst {
                    found: name.to_owned(),
                },
                _ => UriError::UnknownParameter {
                    found: name.to_owned(),
                },
            });
        }
        check_path(value, params_offset + name.len() + 1)?;
        let mut require_hugepages = None;
        if let Some(second) = parts.next() {
            let (name, value) = split_param(second)?;
            match name {
                HUGEPAGES_PARAM => {}
                "path" => {
                    return Err(UriError::RepeatedParameter {
                        name: name.to_owned(),
                    });
                }
                _ => {
                    return Err(UriError::UnknownParameter {
                        found: name.to_owned(),
                    });
                }
            }
            require_hugepages = Some(match value {
                "true" => true,
                "false" => false,
                "" => return Err(UriError::EmptyHugepages),
                other => {
                    return Err(UriError::BadBoolean {
                        found: other.to_owned(),
                    });
                }
            });
        }
        if let Some(third) = parts.next() {
            let name = third.split_once('=').map_or(third, |(n, _)| n);
            return Err(match name {
                "path" | HUGEPAGES_PARAM => UriError::RepeatedParameter {
                    name: name.to_owned(),
                },
                _ => UriError::UnknownParameter {
                    found: name.to_owned(),
                },
            });
        }
        Ok(Self {
            path: value.to_owned(),
            require_hugepages,
        })
    }
}

fn split_param(param: &str) -> Result<(&str, &str), UriError> {
    param.split_once('=').ok_or_else(|| UriError::MissingValue {
        found: param.to_owned(),
    })
}

impl fmt::Display for RegionUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{URI_PREFIX}{}", self.path)?;
        if let Some(h) = self.require_hugepages {
            write!(f, "|{HUGEPAGES_PARAM}={h}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> UriError {
        RegionUri::parse(s).unwrap_err()
    }

    #[test]
    fn w_15_22_parses_path_only() {
        let u = RegionUri::parse("shm:file?path=/dev/shm/x").unwrap();
        assert_eq!(u.path_str(), "/dev/shm/x");
        assert!(!u.requires_hugepages());
        assert_eq!(u.hugepages_param(), None);
        assert_eq!(u.to_string(), "shm:file?path=/dev/shm/x");
    }

    #[test]
    fn w_15_22_parses_require_hugepages_true_and_false() {
        let t = RegionUri::parse("shm:file?path=/dev/hugepages/a|require_hugepages=true").unwrap();
        assert!(t.requires_hugepages());
        let f = RegionUri::parse("shm:file?path=/a|require_hugepages=false").unwrap();
        assert!(!f.requires_hugepages());
        assert_eq!(f.hugepages_param(), Some(false));
        assert_eq!(
            t.to_string(),
            "shm:file?path=/dev/hugepages/a|require_hugepages=true"
        );
    }

    #[test]
    fn w_15_22_rejects_unknown_scheme() {
        assert_eq!(
            err("file:/dev/shm/x"),
            UriError::UnknownScheme {
                found: "file".into()
            }
        );
        assert_eq!(
            err("aeron:ipc"),
            UriError::UnknownScheme {
                found: "aeron".into()
            }
        );
        assert_eq!(
            err("/dev/shm/x"),
            UriError::UnknownScheme {
                found: "/dev/shm/x".into()
            }
        );
        assert_eq!(
            err("SHM:file?path=/x"),
            UriError::UnknownScheme {
                found: "SHM".into()
            }
        );
        assert_eq!(
            err("shm:memfd?path=/x"),
            UriError::UnknownBackend {
                found: "memfd".into()
            }
        );
        assert_eq!(err("shm:file"), UriError::MissingParameters);
        assert_eq!(err(""), UriError::Empty);
    }

    #[test]
    fn w_15_22_rejects_unknown_parameter() {
        assert_eq!(
            err("shm:file?path=/x|mode=rw"),
            UriError::UnknownParameter {
                found: "mode".into()
            }
        );
        assert_eq!(
            err("shm:file?size=1|path=/x"),
            UriError::UnknownParameter {
                found: "size".into()
            }
        );
        assert_eq!(
            err("shm:file?path=/x|require_hugepages=true|prefault=true"),
            UriError::UnknownParameter {
                found: "prefault".into()
            }
        );
        // `&` is not a separator: it becomes part of the path? No: `&` is VCHAR, so
        // `path=/x&require_hugepages=true` is the path `/x&require_hugepages=true` (valid).
        let u = RegionUri::parse("shm:file?path=/x&require_hugepages=true").unwrap();
        assert_eq!(u.path_str(), "/x&require_hugepages=true");
        assert!(!u.requires_hugepages());
    }

    #[test]
    fn w_15_22_rejects_repeated_parameter() {
        assert_eq!(
            err("shm:file?path=/x|path=/y"),
            UriError::RepeatedParameter {
                name: "path".into()
            }
        );
        assert_eq!(
            err("shm:file?path=/x|require_hugepages=true|require_hugepages=false"),
            UriError::RepeatedParameter {
                name: "require_hugepages".into()
            }
        );
    }

    #[test]
    fn w_15_22_abnf_path_first() {
        assert_eq!(
            err("shm:file?require_hugepages=true|path=/x"),
            UriError::PathNotFirst {
                found: "require_hugepages".into()
            }
        );
    }

    #[test]
    fn w_15_22_rejects_relative_path() {
        assert_eq!(
            err("shm:file?path=dev/shm/x"),
            UriError::RelativePath {
                found: "dev/shm/x".into()
            }
        );
        assert_eq!(
            err("shm:file?path=./x"),
            UriError::RelativePath {
                found: "./x".into()
            }
        );
        assert!(RegionUri::new("rel/x", None).is_err());
    }

    #[test]
    fn w_15_22_rejects_empty_values() {
        assert_eq!(err("shm:file?path="), UriError::EmptyPath);
        assert_eq!(
            err("shm:file?path=/x|require_hugepages="),
            UriError::EmptyHugepages
        );
        assert_eq!(
            err("shm:file?path"),
            UriError::MissingValue {
                found: "path".into()
            }
        );
        assert_eq!(
            err("shm:file?path=/x|"),
            UriError::MissingValue { found: "".into() }
        );
        assert_eq!(
            err("shm:file?"),
            UriError::MissingValue { found: "".into() }
        );
    }

    #[test]
    fn w_15_22_rejects_bad_boolean() {
        for bad in ["TRUE", "1", "yes", "False", "true ", "truex"] {
            assert_eq!(
                err(&format!("shm:file?path=/x|require_hugepages={bad}")),
                UriError::BadBoolean { found: bad.into() },
                "{bad}"
            );
        }
    }

    #[test]
    fn w_15_22_rejects_chars_excluded_by_abnf() {
        assert_eq!(
            err("shm:file?path=/a b"),
            UriError::ForbiddenPathByte {
                byte: b' ',
                offset: 16
            }
        );
        assert_eq!(
            err("shm:file?path=/a?b"),
            UriError::ForbiddenPathByte {
                byte: b'?',
                offset: 16
            }
        );
        assert_eq!(
            err("shm:file?path=/a\tb"),
            UriError::ForbiddenPathByte {
                byte: b'\t',
                offset: 16
            }
        );
        assert_eq!(
            err("shm:file?path=/a\0b"),
            UriError::ForbiddenPathByte {
                byte: 0,
                offset: 16
            }
        );
        assert_eq!(
            err("shm:file?path=/a\x7fb"),
            UriError::ForbiddenPathByte {
                byte: 0x7f,
                offset: 16
            }
        );
        assert!(matches!(
            err("shm:file?path=/caf\u{e9}"),
            UriError::ForbiddenPathByte { offset: 18, .. }
        ));
        assert!(matches!(
            err("shm:file?path=/a\nb"),
            UriError::ForbiddenPathByte { byte: b'\n', .. }
        ));
    }

    #[test]
    fn w_15_22_rejects_overlong_path() {
        let long = format!("shm:file?path=/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(
            err(&long),
            UriError::PathTooLong {
                len: MAX_PATH_BYTES + 1,
                max: MAX_PATH_BYTES
            }
        );
    }

    #[test]
    fn w_15_22_print_parse_roundtrip() {
        for s in [
            "shm:file?path=/dev/shm/tensorpool-a/default/10000/5/header.ring",
            "shm:file?path=/dev/shm/tensorpool-a/default/10000/5/1.pool|require_hugepages=true",
            "shm:file?path=/x|require_hugepages=false",
        ] {
            assert_eq!(RegionUri::parse(s).unwrap().to_string(), s);
        }
        let u = RegionUri::new("/dev/shm/a", Some(true)).unwrap();
        assert_eq!(RegionUri::parse(&u.to_string()).unwrap(), u);
    }
}
