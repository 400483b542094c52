//! The architecture, checked: the rules ARCHITECTURE.md states about the code
//! map are read off the source here, so the map cannot drift from the code.
//!
//! 1. Layers only look down. Each top-level module of `src/` may use only the
//!    crate modules below it (`crate::x` paths in code), and none of the
//!    external crates its layer must not know (e.g. no tonic in the domain).
//! 2. Vendors have one home. Outside `src/vendors/` (and the generated
//!    `src/pb.rs`), no identifier in production code names a vendor
//!    (EnOS, Cryptlex, Revenium); comments, string literals and test modules
//!    may.
//! 3. The maps are complete: the layout comment in `src/lib.rs` names every
//!    top-level module, and ARCHITECTURE.md names every module's path.
//!
//! Run it with `cargo test --test architecture`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Each layer and the crate modules it may use. A module not listed here
/// fails the test until it is given a place.
const LAYERS: &[(&str, &[&str])] = &[
    ("pb", &[]),
    ("domain", &["pb"]),
    ("storage", &["pb"]),
    ("vendors", &["pb", "domain"]),
    ("snapshot", &["pb", "domain", "storage"]),
    ("catalog", &["pb", "domain", "storage", "vendors"]),
    ("sync", &["pb", "domain", "storage", "vendors"]),
    ("transport", &["pb", "domain", "storage", "vendors", "catalog"]),
    (
        "app",
        &["pb", "domain", "storage", "vendors", "catalog", "sync", "transport"],
    ),
    // A client of the server: the API's stubs, and the vendors' names.
    ("cli", &["pb", "vendors", "snapshot"]),
];

/// The gRPC stack: tonic and its companion crates.
const GRPC: &[&str] = &[
    "tonic",
    "tonic_types",
    "tonic_health",
    "tonic_reflection",
    "tonic_prost",
];
/// HTTP servers and clients.
const HTTP: &[&str] = &["http", "hyper", "axum", "reqwest"];
/// The storage engines.
const STORAGE: &[&str] = &["sled", "tokio_postgres", "deadpool_postgres"];

/// External crates each layer must not use.
fn forbidden_crates(layer: &str) -> Vec<&'static str> {
    let groups: &[&[&str]] = match layer {
        "domain" => &[GRPC, HTTP, STORAGE, &["tokio"]],
        "storage" => &[GRPC, HTTP],
        // A vendor sends over HTTP (reqwest in `vendors::http`), nothing else.
        "vendors" => &[GRPC, &["hyper", "axum"], STORAGE],
        "catalog" | "sync" => &[GRPC, HTTP, STORAGE],
        "transport" => &[&["reqwest"], STORAGE],
        // The app wires layers together; it reaches tonic through `transport`.
        "app" => &[GRPC, &["sled", "reqwest"]],
        // It reaches the server through the generated stubs (tonic), and
        // nothing else: no store, no vendor API.
        "cli" => &[HTTP, STORAGE, &["tonic_health", "tonic_reflection"]],
        "snapshot" => &[GRPC, HTTP, STORAGE],
        _ => &[],
    };
    groups.iter().flat_map(|g| g.iter().copied()).collect()
}

/// Word parts that name a vendor.
const VENDOR_WORDS: &[&str] = &["enos", "cryptlex", "revenium"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for the crate
/// root, the binaries and their helpers).
fn layer_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src()).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" | "bin" => None,
        file if file.ends_with(".rs") => Some(file.trim_end_matches(".rs").to_owned()),
        dir => Some(dir.to_owned()),
    }
}

/// Whether a whole file is test code (`tests.rs`, `*_tests.rs`).
fn is_test_file(path: &Path) -> bool {
    path.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s == "tests" || s.ends_with("_tests"))
}

/// The production code of a file: comments and string and char literals
/// blanked, and everything from the first top-level `#[cfg(test)]` on (test
/// modules close each file here) left out.
fn code_of(text: &str) -> String {
    let production = match text.find("\n#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    strip_comments_and_literals(production)
}

fn strip_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !is_ident_char(out.chars().last()) {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'); a lifetime ('a) is kept.
            if next == Some('\\') {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Every identifier in `code`.
fn identifiers(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_'))
}

/// The lower-case word parts of an identifier (`ReveniumConfig` → revenium,
/// config; `enos_org_id` → enos, org, id; `ENOSConfig` → enos, config).
fn word_parts(identifier: &str) -> Vec<String> {
    let mut parts = Vec::new();
    for piece in identifier.split('_').filter(|p| !p.is_empty()) {
        let chars: Vec<char> = piece.chars().collect();
        let mut current = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let previous = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let after_lower = previous.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit());
            let ends_acronym = previous.is_some_and(char::is_uppercase) && next.is_some_and(char::is_lowercase);
            if c.is_uppercase() && (after_lower || ends_acronym) && !current.is_empty() {
                parts.push(current.to_lowercase());
                current.clear();
            }
            current.push(c);
        }
        if !current.is_empty() {
            parts.push(current.to_lowercase());
        }
    }
    parts
}

/// Whether an identifier names a vendor: one of its word parts, or two
/// adjacent ones joined (`EnOS` splits as `En`, `OS`), is a vendor's name.
fn names_a_vendor(identifier: &str) -> bool {
    let parts = word_parts(identifier);
    let joined = parts.windows(2).map(|w| format!("{}{}", w[0], w[1]));
    parts
        .iter()
        .cloned()
        .chain(joined)
        .any(|p| VENDOR_WORDS.contains(&p.as_str()))
}

/// The top-level modules a file reaches with `super::` paths that climb to
/// the crate root (`super::transport` in `src/app.rs`).
fn root_modules_via_super(path: &Path, code: &str) -> BTreeSet<String> {
    let Ok(relative) = path.strip_prefix(src()) else {
        return BTreeSet::new();
    };
    let depth = relative.components().count() - usize::from(relative.ends_with("mod.rs"));
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let before = rest[..at].chars().last();
        let mut tail = &rest[at..];
        let mut climbs = 0;
        while let Some(after) = tail.strip_prefix("super::") {
            climbs += 1;
            tail = after;
        }
        rest = tail;
        if is_ident_char(before) || climbs < depth {
            continue;
        }
        let name: String = tail.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            used.insert(name);
        }
    }
    used
}

/// The crate modules a piece of code uses: `crate::x` and `crate::{x, y}`.
fn crate_modules_used(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if is_ident_char(before) {
            continue; // e.g. `mycrate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    used.insert(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

/// External crates a piece of code names as paths (`name::`), by their
/// first segment.
fn crates_named(code: &str, candidates: &[&str]) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for candidate in candidates {
        let needle = format!("{candidate}::");
        let mut from = 0;
        while let Some(at) = code[from..].find(&needle) {
            let start = from + at;
            let before = code[..start].chars().last();
            // `crate::http` or `super::http` is a module of ours, not the
            // crate; a bare leading `::tonic::` is the crate.
            let qualified =
                code[..start].ends_with("::") && is_ident_char(code[..start.saturating_sub(2)].chars().last());
            if !is_ident_char(before) && !qualified {
                named.insert((*candidate).to_owned());
            }
            from = start + needle.len();
        }
    }
    named
}

struct Source {
    path: PathBuf,
    layer: Option<String>,
    code: String,
}

fn sources() -> Vec<Source> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files
        .into_iter()
        .filter(|path| !is_test_file(path))
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            Source {
                layer: layer_of(&path),
                code: code_of(&text),
                path,
            }
        })
        .collect()
}

fn shown(path: &Path) -> String {
    path.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn layers_only_look_down() {
    let mut problems = Vec::new();
    for source in sources() {
        let Some(layer) = &source.layer else { continue };
        let Some((_, allowed)) = LAYERS.iter().find(|(name, _)| name == layer) else {
            problems.push(format!(
                "{}: module `{layer}` has no place in LAYERS (tests/architecture.rs) and ARCHITECTURE.md",
                shown(&source.path)
            ));
            continue;
        };
        let mut used_modules = crate_modules_used(&source.code);
        used_modules.extend(root_modules_via_super(&source.path, &source.code));
        for used in used_modules {
            if used != *layer && !allowed.contains(&used.as_str()) {
                problems.push(format!(
                    "{}: `{layer}` uses `crate::{used}`, which is not below it (it may use {allowed:?})",
                    shown(&source.path)
                ));
            }
        }
        for named in crates_named(&source.code, &forbidden_crates(layer)) {
            problems.push(format!(
                "{}: `{layer}` uses the `{named}` crate, which its layer must not know",
                shown(&source.path)
            ));
        }
    }
    // Every layer the rules name has files, so no rule passes for want of any.
    let all = sources();
    for (layer, _) in LAYERS {
        if !all.iter().any(|s| s.layer.as_deref() == Some(layer)) {
            problems.push(format!("LAYERS names `{layer}`, but src/ has no such module"));
        }
    }
    assert!(problems.is_empty(), "layering broken:\n{}", problems.join("\n"));
}

#[test]
fn vendors_are_named_only_in_their_home() {
    let home = src().join("vendors");
    let generated = src().join("pb.rs");
    // The benchmark harness, like the tests, plays a vendor with a fake of
    // it (its import benchmark): it is not part of the service.
    let harness = src().join("bin").join("producthub-bench");
    let mut problems = Vec::new();
    for source in sources() {
        if source.path.starts_with(&home) || source.path == generated || source.path.starts_with(&harness) {
            continue;
        }
        let mut named = BTreeSet::new();
        for identifier in identifiers(&source.code) {
            if names_a_vendor(identifier) {
                named.insert(identifier.to_owned());
            }
        }
        if !named.is_empty() {
            problems.push(format!("{}: names a vendor: {named:?}", shown(&source.path)));
        }
    }
    assert!(
        problems.is_empty(),
        "vendor knowledge outside src/vendors/ (move it into the vendor's folder, or ask the \
         registry in src/vendors/mod.rs):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_layout_comment_and_the_code_map_name_every_module() {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("src/lib.rs");
    let architecture =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut modules = Vec::new();
    for line in lib.lines() {
        if let Some(name) = line.strip_prefix("pub mod ").and_then(|r| r.strip_suffix(';')) {
            modules.push(name.to_owned());
        }
    }
    assert!(!modules.is_empty(), "src/lib.rs declares no modules");
    let mut problems = Vec::new();
    for module in &modules {
        if !lib.contains(&format!("[`{module}`]")) {
            problems.push(format!("the layout comment in src/lib.rs does not name [`{module}`]"));
        }
        if !LAYERS.iter().any(|(name, _)| name == module) {
            problems.push(format!("`{module}` has no place in LAYERS (tests/architecture.rs)"));
        }
    }
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut paths = BTreeSet::new();
    for file in &files {
        let relative = file
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
            .expect("under the crate");
        // Every directory of src/ and every file directly in a top-level
        // module's directory (tests aside) is on the map.
        let depth = relative.components().count();
        if is_test_file(file) {
            continue;
        }
        if depth <= 3 {
            paths.insert(relative.display().to_string());
        } else if let Some(parent) = relative.parent() {
            paths.insert(format!("{}/", parent.display()));
        }
    }
    for path in paths {
        let named = architecture.contains(&format!("`{path}`"))
            || path
                .strip_suffix("/mod.rs")
                .is_some_and(|dir| architecture.contains(&format!("`{dir}/`")));
        if !named {
            problems.push(format!("ARCHITECTURE.md's code map does not name `{path}`"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checks_see_what_they_claim_to() {
    // The lexer blanks comments and literals, keeps code and lifetimes.
    let code = strip_comments_and_literals(
        "let a = \"crate::x Enos\"; // crate::y\nfn f<'a>(c: char) { r#\"Revenium\"#; '\\n'; 'x'; crate::z }",
    );
    assert!(!code.contains("Enos") && !code.contains("Revenium") && !code.contains("crate::y"));
    assert!(code.contains("<'a>") && code.contains("crate::z"));
    assert_eq!(
        crate_modules_used("use crate::{domain::x, storage};\nuse crate::vendors::Vendor;"),
        ["domain", "storage", "vendors"].map(String::from).into_iter().collect()
    );
    assert_eq!(word_parts("ReveniumConfig"), ["revenium", "config"]);
    assert_eq!(word_parts("ENOSConfig"), ["enos", "config"]);
    assert!(names_a_vendor("EnOS") && names_a_vendor("EnOSClient") && names_a_vendor("CRYPTLEX_TOKEN"));
    assert!(!names_a_vendor("tenosynovitis") && !names_a_vendor("VendorSync"));
    let app = src().join("app.rs");
    assert_eq!(
        root_modules_via_super(&app, "use super::transport::x; use self::super_thing;"),
        ["transport"].map(String::from).into_iter().collect()
    );
    let nested = src().join("vendors").join("api.rs");
    assert!(
        root_modules_via_super(&nested, "use super::Vendor;").is_empty(),
        "super:: inside vendors stays there"
    );
    assert_eq!(
        root_modules_via_super(&nested, "use super::super::catalog::X;"),
        ["catalog"].map(String::from).into_iter().collect()
    );
    assert_eq!(
        crates_named("let x = ::sled::Db::open(); crate::sled::y;", &["sled"]),
        ["sled"].map(String::from).into_iter().collect()
    );
    assert_eq!(word_parts("enos_org_id"), ["enos", "org", "id"]);
    assert!(word_parts("tenosynovitis").iter().all(|p| p != "enos"));
    assert_eq!(
        crates_named(
            "use tonic::Status; use super::http::Reply;",
            &[
                "tonic",
                "tonic_types",
                "tonic_health",
                "tonic_reflection",
                "tonic_prost",
                "http"
            ]
        ),
        ["tonic"].map(String::from).into_iter().collect()
    );
}
