//! Builds the list of templates shipped in `parsers/` into the binary, so adding a provider is adding a file.
use std::io::Write;
use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=parsers");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let parsers = Path::new(&manifest).join("parsers");
    let mut files: Vec<_> = std::fs::read_dir(&parsers)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let out = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("builtin_templates.rs");
    let mut code = String::from(
        "/// `(file name, contents)` of every template in `parsers/`.\npub const BUILTIN: &[(&str, &str)] = &[\n",
    );
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        code.push_str(&format!("    ({name:?}, include_str!({:?})),\n", path.display().to_string()));
    }
    code.push_str("];\n");
    let written = std::fs::File::create(&out).and_then(|mut f| f.write_all(code.as_bytes()));
    if let Err(err) = written {
        panic!("cannot write {}: {err}", out.display());
    }
}
