//! The server's layers, checked on every test run: each module may use only the modules
//! below it (docs/ARCHITECTURE.md, "Layers of the server"). A `use crate::...` (or a path
//! `crate::...` anywhere in the code) that points up a layer fails this test with the file
//! and the line, so the layering does not rot between reviews.

use std::path::{Path, PathBuf};

/// A layer: the files in it and the crate modules they may name.
struct Layer {
    name: &'static str,
    /// Paths under `server/src`, a folder (ending in `/`) or a file.
    files: &'static [&'static str],
    /// Top-level modules of the crate (`crate::NAME`) these files may use, besides their own.
    may_use: &'static [&'static str],
    /// Whether the files may use axum (the HTTP framework).
    axum: bool,
}

const LAYERS: &[Layer] = &[
    Layer {
        name: "metrics (the series, bumped from every layer)",
        files: &["metrics.rs"],
        may_use: &["metrics"],
        axum: false,
    },
    Layer {
        name: "pure rules and views",
        files: &["domain.rs", "view.rs", "data/shape.rs"],
        may_use: &["domain", "view", "data::shape"],
        axum: false,
    },
    Layer {
        name: "lookups, auditing, presence and live-message writers",
        files: &["access.rs", "admission.rs", "audit.rs", "sync/shared.rs"],
        may_use: &["domain", "view", "metrics", "admission", "sync::shared"],
        axum: false,
    },
    Layer {
        name: "rooms",
        files: &["sync/room/", "sync/rooms.rs"],
        may_use: &[
            "domain",
            "view",
            "data::shape",
            "audit",
            "metrics",
            "sync::shared",
            "sync::room",
            "sync::rooms",
        ],
        axum: false,
    },
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::a::b` path in a line of code (comments excluded), as `a::b`.
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    code.match_indices("crate::")
        .filter(|(at, _)| {
            // `crate::` itself, not the end of another word such as `canvas_crate::`.
            code[..*at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
        .map(|(at, m)| {
            code[at + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect::<String>()
                .trim_end_matches(':')
                .to_owned()
        })
        .collect()
}

fn allowed(path: &str, may_use: &[&str]) -> bool {
    may_use
        .iter()
        .any(|m| path == *m || path.starts_with(&format!("{m}::")))
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let rel = file
            .strip_prefix(&root)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let Some(layer) = LAYERS.iter().find(|l| {
            l.files.iter().any(|f| {
                if f.ends_with('/') {
                    rel.starts_with(f)
                } else {
                    rel == *f
                }
            })
        }) else {
            continue;
        };
        checked += 1;
        let text = std::fs::read_to_string(file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            for path in crate_paths(line) {
                if !path.is_empty() && !allowed(&path, layer.may_use) {
                    broken.push(format!(
                        "{rel}:{}: `crate::{path}` ({} may use {:?})",
                        n + 1,
                        layer.name,
                        layer.may_use
                    ));
                }
            }
            let code = line.split("//").next().unwrap_or("");
            if !layer.axum && (code.contains("axum::") || code.contains("use axum")) {
                broken.push(format!("{rel}:{}: axum in {}", n + 1, layer.name));
            }
        }
    }
    assert!(
        checked >= 15,
        "the layers name too few files ({checked}): did folders move?"
    );
    assert!(
        broken.is_empty(),
        "imports pointing up a layer:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import() {
    let paths = crate_paths("use crate::state::AppState; // crate::http in a comment");
    assert_eq!(paths, ["state::AppState"]);
    assert!(!allowed("state::AppState", LAYERS[3].may_use));
    assert!(allowed("sync::shared::LiveKind", LAYERS[3].may_use));
    assert!(crate_paths("use canvas_crate::x;").is_empty());
}
