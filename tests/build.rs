//! Builds every handler in `examples-guests/` for wasm32-wasip2 (release) and writes
//! their paths as constants (`FLIP`, `GAIN`, `HOSTILE_LOOP`, …) into `guests.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let guests = root.join("examples-guests");
    // The Rust guests only: the other languages' folders hold large tool trees.
    for watched in [
        "guest-sdk",
        "wit",
        "examples-guests/Cargo.toml",
        "examples-guests/Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for name in members(&guests) {
        println!("cargo:rerun-if-changed={}", guests.join(&name).display());
    }

    let target_dir = guests.join("target");
    build(&guests, &target_dir, &[]);
    // A second build of `gain` whose default factor is 2: "version 2" in hot-swap tests.
    let v2_dir = target_dir.join("gain-v2");
    build(&guests, &v2_dir, &[("GAIN_DEFAULT", "2.0")]);

    let release = |dir: &Path| dir.join("wasm32-wasip2").join("release");
    let mut out = String::new();
    for name in members(&guests) {
        let file = release(&target_dir).join(format!("{}.wasm", name.replace('-', "_")));
        assert!(
            file.exists(),
            "guest {name} was not built: {}",
            file.display()
        );
        let konst = name.replace('-', "_").to_uppercase();
        out += &format!(
            "/// `examples-guests/{name}`, built for wasm32-wasip2.\npub const {konst}: &str = {:?};\n",
            file.display().to_string()
        );
    }
    let v2 = release(&v2_dir).join("gain.wasm");
    out += &format!(
        "/// `examples-guests/gain` built with `GAIN_DEFAULT=2.0`.\npub const GAIN_V2: &str = {:?};\n",
        v2.display().to_string()
    );
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guests.rs");
    std::fs::write(dest, out).unwrap();
}

/// Package names of the guest workspace's members.
fn members(guests: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(guests)
        .unwrap()
        .filter_map(|e| {
            let toml = std::fs::read_to_string(e.ok()?.path().join("Cargo.toml")).ok()?;
            let line = toml.lines().find(|l| l.trim_start().starts_with("name"))?;
            Some(line.split('"').nth(1)?.to_string())
        })
        .collect();
    names.sort();
    names
}

fn build(guests: &Path, target_dir: &Path, env: &[(&str, &str)]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(guests)
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if env.is_empty() {
        cmd.env_remove("GAIN_DEFAULT");
    } else {
        cmd.args(["-p", "gain"]);
    }
    let status = cmd.status().expect("run cargo for the guests");
    assert!(
        status.success(),
        "building examples-guests failed (is the wasm32-wasip2 target installed? run scripts/setup.sh)"
    );
}
