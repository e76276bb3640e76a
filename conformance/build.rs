//! Embeds the repository's scenarios (`scenarios/**/*.toml`) and the fixtures
//! they publish and replay (`fixtures/flv`, `fixtures/captures`) in the
//! library, so that an installed `conformance` runs from any directory.
//! Writes `$OUT_DIR/embedded.rs`: two sorted tables of (relative path, bytes).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .expect("the crate is inside the workspace")
        .to_path_buf();
    let scenarios = root.join("scenarios");
    let fixtures = root.join("fixtures");
    let mut out = String::new();
    table(
        &mut out,
        "SCENARIOS",
        &scenarios,
        std::slice::from_ref(&scenarios),
        Some("toml"),
    );
    table(
        &mut out,
        "FIXTURES",
        &fixtures,
        &[fixtures.join("flv"), fixtures.join("captures")],
        None,
    );
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

/// `pub static NAME: &[(&str, &[u8])]`: every file below `dirs` (with
/// extension `ext`, when given), named by its path below `root`.
fn table(out: &mut String, name: &str, root: &Path, dirs: &[PathBuf], ext: Option<&str>) {
    let mut files = Vec::new();
    for dir in dirs {
        println!("cargo:rerun-if-changed={}", dir.display());
        walk(dir, &mut files);
    }
    files.retain(|f| ext.is_none_or(|ext| f.extension().is_some_and(|e| e == ext)));
    files.sort();
    let _ = writeln!(out, "pub static {name}: &[(&str, &[u8])] = &[");
    for file in files {
        let relative = file.strip_prefix(root).expect("below its root");
        let relative = relative.to_str().expect("UTF-8 file names").replace('\\', "/");
        let _ = writeln!(
            out,
            "    ({relative:?}, include_bytes!({:?})),",
            file.display().to_string()
        );
    }
    out.push_str("];\n");
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a readable directory").path();
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}
