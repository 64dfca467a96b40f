//! Parity of the C and C++ APIs with the Rust API (issue 18): every public inherent method of
//! the role types (parsed from the Rust sources with `syn`) has a row in the parity table of
//! docs/cpp.md, every row names a method that exists, and every `tp_*` name the table gives is
//! declared in include/tensorpool.h. A method deliberately not exposed still needs its row
//! (saying why).

use std::collections::BTreeSet;
use std::path::Path;

/// (source file under crates/tensorpool/src, type) of every role type with a C/C++ surface.
const TYPES: &[(&str, &str)] = &[
    ("context.rs", "Context"),
    ("frame.rs", "TensorSpec"),
    ("frame.rs", "Frame"),
    ("producer/mod.rs", "Producer"),
    ("producer/wait.rs", "Producer"),
    ("producer/claim.rs", "Claim"),
    ("consumer/mod.rs", "Consumer"),
    ("consumer/progress.rs", "Progress"),
    ("driver/mod.rs", "ShmDriver"),
    ("supervisor/mod.rs", "Supervisor"),
    ("ratelimiter/mod.rs", "RateLimiter"),
    ("bridge/mod.rs", "Bridge"),
    ("discovery/provider.rs", "DiscoveryProvider"),
];

/// Public free functions with a C surface: (source file, module name in the table).
const FREE: &[(&str, &str)] = &[
    ("client/admin.rs", "client"),
    ("discovery/client.rs", "discovery"),
];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn parse(file: &str) -> syn::File {
    let path = root().join("crates/tensorpool/src").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn is_pub(v: &syn::Visibility) -> bool {
    matches!(v, syn::Visibility::Public(_))
}

/// `Type::method` for every `pub fn` of an inherent `impl Type` block in `file`.
fn methods(file: &str, ty: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for item in parse(file).items {
        let syn::Item::Impl(imp) = item else { continue };
        if imp.trait_.is_some() {
            continue;
        }
        let syn::Type::Path(p) = &*imp.self_ty else {
            continue;
        };
        if p.path.segments.last().is_none_or(|s| s.ident != ty) {
            continue;
        }
        for it in &imp.items {
            if let syn::ImplItem::Fn(f) = it
                && is_pub(&f.vis)
            {
                out.insert(format!("{ty}::{}", f.sig.ident));
            }
        }
    }
    out
}

fn free_functions(file: &str, module: &str) -> BTreeSet<String> {
    parse(file)
        .items
        .into_iter()
        .filter_map(|item| match item {
            syn::Item::Fn(f) if is_pub(&f.vis) => Some(format!("{module}::{}", f.sig.ident)),
            _ => None,
        })
        .collect()
}

/// The parity table's rows: (first column's `Type::method`, the C column).
fn table() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(root().join("docs/cpp.md")).expect("docs/cpp.md");
    let section = doc
        .split("## Parity: Rust -> C -> C++")
        .nth(1)
        .expect("docs/cpp.md has the section \"Parity: Rust -> C -> C++\"");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            let item = cols.get(1)?.trim_matches('`').to_owned();
            Some((item, cols.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn every_public_rust_operation_has_a_c_and_cpp_row() {
    let mut items = BTreeSet::new();
    for (file, ty) in TYPES {
        let m = methods(file, ty);
        assert!(!m.is_empty(), "no public methods of {ty} found in {file}");
        items.extend(m);
    }
    for (file, module) in FREE {
        items.extend(free_functions(file, module));
    }
    let rows = table();
    let documented: BTreeSet<String> = rows.iter().map(|(i, _)| i.clone()).collect();
    let missing: Vec<_> = items.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "public Rust items without a row in docs/cpp.md \"Parity: Rust -> C -> C++\" \
         (add the C function and C++ member, or a row saying why not): {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&items).collect();
    assert!(
        stale.is_empty(),
        "parity rows for items that no longer exist: {stale:?}"
    );

    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/tensorpool.h"))
            .expect("tensorpool.h");
    for (item, c) in &rows {
        for name in c.split('`').skip(1).step_by(2) {
            let name = name.split(['.', ' ', '(']).next().unwrap_or(name);
            if name.starts_with("tp_") {
                assert!(
                    header.contains(name),
                    "the row of {item} names {name}, which tensorpool.h does not declare"
                );
            }
        }
    }
}
