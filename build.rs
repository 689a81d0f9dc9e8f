//! Builds the list of templates shipped in `parsers/` into the binary, so adding a provider is adding a file,
//! and names the commit the binary is built from (`keypost --version`).
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn main() {
    commit();
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

/// Sets `KEYPOST_COMMIT` to the short commit id and date, from `KEYPOST_BUILD_COMMIT` when a packager sets it,
/// else from git; "unknown commit" outside a checkout, so a build never fails for want of git.
fn commit() {
    println!("cargo::rerun-if-env-changed=KEYPOST_BUILD_COMMIT");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
    };
    // A new commit changes HEAD (detached) or the branch it names; packed-refs after a gc.
    // Only files that exist: cargo reruns a build script on every build while a named file is missing.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for path in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(file) = git(&["rev-parse", "--git-path", path]).filter(|f| Path::new(f).exists()) {
            println!("cargo::rerun-if-changed={file}");
        }
    }
    let commit = std::env::var("KEYPOST_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["log", "-1", "--date=short", "--format=%h %ad"]).map(|c| format!("commit {c}")))
        .unwrap_or_else(|| "unknown commit".to_owned());
    println!("cargo::rustc-env=KEYPOST_COMMIT={commit}");
}
