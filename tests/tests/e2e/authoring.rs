//! `wasmrtc new` and `wasmrtc build` as an author uses them: the real binary, in fresh
//! scratch folders, with each language's real toolchain on `PATH` (the repository's
//! own installs from `scripts/setup-languages.sh`, as a user with the tools installed
//! has them).
//!
//! The Rust builds share one target folder (`target/authoring-templates`), so
//! wit-bindgen is compiled once for all of them and across runs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::Value;
use wasmrtc_tests::wav::{read_wav, write_wav};
use wasmrtc_tests::{scratch_dir, wasmrtc_bin};

/// A scratch folder, removed when the test passes (kept for a look when it fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        Scratch(scratch_dir("authoring", tag))
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `PATH` with the repository's language tools in front.
fn tools_path() -> OsString {
    let guests = repo().join("examples-guests");
    let mut dirs = vec![
        guests.join("python/.venv/bin"),
        guests.join("js/node_modules/.bin"),
        std::env::var_os("WASMRTC_TOOLS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| guests.join("c/.tools"))
            .join("bin"),
    ];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

/// The tool overrides `wasmrtc build` honours, unset in every test.
const OVERRIDES: [&str; 6] = [
    "WASMRTC_COMPONENTIZE_PY",
    "WASMRTC_COMPONENTIZE_JS",
    "WASMRTC_WASI_ADAPTER",
    "WASMRTC_WASI_SYSROOT",
    "WASMRTC_TOOLS_DIR",
    "CC_WASM",
];

/// `wasmrtc ARGS` in `dir`, with the tools on `PATH` and the shared Rust target folder.
pub(crate) fn wasmrtc(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(wasmrtc_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("PATH", tools_path())
        .env(
            "CARGO_TARGET_DIR",
            repo().join("target/authoring-templates"),
        );
    for var in OVERRIDES {
        cmd.env_remove(var);
    }
    cmd
}

fn run(mut cmd: impl std::borrow::BorrowMut<Command>) -> Output {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().expect("run wasmrtc");
    eprintln!(
        "$ wasmrtc {:?} -> {}\n{}",
        cmd.get_args().collect::<Vec<_>>(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `wasmrtc new TEMPLATE demo` in a fresh folder, then `wasmrtc build --json`: the
/// scratch folder, the project folder in it and the spec printed.
fn new_and_build(template: &str) -> (Scratch, PathBuf, Value) {
    let parent = Scratch::new(template);
    ok(&run(wasmrtc(&parent, &["new", template, "demo"])));
    let dir = parent.join("demo");
    let started = Instant::now();
    let out = run(wasmrtc(&dir, &["build", "--json"]));
    let spec: Value = serde_json::from_str(&ok(&out)).expect("build --json prints JSON");
    eprintln!(
        "{template}: built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let component = dir.join("target/wasmrtc/demo.wasm");
    assert!(component.is_file(), "{} is missing", component.display());
    (parent, dir, spec)
}

/// `wasmrtc check --json` of the project's component.
fn check(dir: &Path) -> Value {
    let out = run(wasmrtc(
        dir,
        &["check", "--json", "target/wasmrtc/demo.wasm"],
    ));
    serde_json::from_str(&ok(&out)).expect("check --json prints JSON")
}

/// The project's own `test.sh`: `wasmrtc build`, `wasmrtc run` over a generated input
/// (a WAV or a y4m), and its check of the output (the gain set on the command line, the
/// flipped frames, the outputs printed…).
fn project_test(dir: &Path, template: &str) {
    let out = run(Command::new(dir.join("test.sh"))
        .current_dir(dir)
        .env("WASMRTC", wasmrtc_bin())
        .env("PATH", tools_path())
        .env(
            "CARGO_TARGET_DIR",
            repo().join("target/authoring-templates"),
        ));
    assert!(
        ok(&out).contains("test.sh: passed"),
        "{template}: test.sh did not pass"
    );
}

fn assert_cell(spec: &Value, modality: &str, mode: &str, what: &str) {
    assert_eq!(spec["modality"], modality, "{what}: {spec}");
    assert_eq!(spec["mode"], mode, "{what}: {spec}");
}

/// The audio template of a language: audio send-receive with the `gain` slider.
fn audio_template(language: &str) {
    let template = format!("{language}-audio");
    let (_scratch, dir, built) = new_and_build(&template);
    let spec = check(&dir);
    assert_eq!(built, spec, "build prints what check prints");
    assert_cell(&spec, "Audio", "SendReceive", &template);
    assert_eq!(spec["inputs"][0]["name"], "gain", "{spec}");
    assert!(spec["inputs"][0]["control"]["Slider"].is_object(), "{spec}");
    // `wasmrtc run --set gain=0.5` over a generated WAV halves its peak.
    project_test(&dir, &template);
}

/// The video template of a language: video send-receive.
fn video_template(language: &str) {
    let template = format!("{language}-video");
    let (_scratch, dir, _) = new_and_build(&template);
    let spec = check(&dir);
    assert_cell(&spec, "Video", "SendReceive", &template);
    assert_eq!(spec["video_format"], "Rgb24", "{spec}");
    // `wasmrtc run` over a generated y4m turns its frames upside down.
    project_test(&dir, &template);
}

#[test]
fn new_lists_the_templates_and_refuses_bad_names_and_full_folders() {
    let parent = Scratch::new("new");
    let list = ok(&run(wasmrtc(&parent, &["new", "--list"])));
    for kind in [
        "audio",
        "video",
        "av",
        "audio-send",
        "video-send",
        "audio-receive",
        "video-receive",
        "turns",
    ] {
        assert!(list.contains(&format!("rust-{kind} ")), "{list}");
    }
    for language in ["python", "js", "c"] {
        for kind in ["audio", "video"] {
            assert!(list.contains(&format!("{language}-{kind} ")), "{list}");
        }
    }
    assert!(list.contains("gain"), "one line on what each does: {list}");

    for bad in ["a b", "9lives", "x/y", &"n".repeat(65)] {
        let out = run(wasmrtc(&parent, &["new", "rust-audio", bad]));
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot name a project"),
            "{bad}"
        );
    }
    let out = run(wasmrtc(&parent, &["new", "cobol-audio", "x"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown template `cobol-audio`"));

    // A folder with something in it is left alone; an empty one is used.
    std::fs::create_dir(parent.join("full")).unwrap();
    std::fs::write(parent.join("full/notes.txt"), "mine").unwrap();
    let out = run(wasmrtc(&parent, &["new", "python-audio", "full"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(
        std::fs::read_dir(parent.join("full")).unwrap().count(),
        1,
        "nothing was written"
    );
    std::fs::create_dir(parent.join("empty")).unwrap();
    ok(&run(wasmrtc(&parent, &["new", "c-video", "empty"])));
    for file in [
        "wasmrtc.toml",
        "README.md",
        "test.sh",
        "wit/handler.wit",
        "src/handler.c",
    ] {
        assert!(parent.join("empty").join(file).is_file(), "{file}");
    }
    // --dir puts it elsewhere.
    ok(&run(wasmrtc(
        &parent,
        &["new", "js-audio", "there", "--dir", "sub"],
    )));
    assert!(parent.join("sub/there/src/handler.js").is_file());
}

#[test]
fn every_rust_template_builds_and_reports_its_cell() {
    let started = Instant::now();
    let cells = [
        ("audio", "Audio", "SendReceive"),
        ("video", "Video", "SendReceive"),
        ("av", "AudioVideo", "SendReceive"),
        ("audio-send", "Audio", "Send"),
        ("video-send", "Video", "Send"),
        ("audio-receive", "Audio", "Receive"),
        ("video-receive", "Video", "Receive"),
        ("turns", "Audio", "SendReceive"),
    ];
    for (kind, modality, mode) in cells {
        let template = format!("rust-{kind}");
        let (_scratch, dir, spec) = new_and_build(&template);
        assert_cell(&spec, modality, mode, &template);
        assert_eq!(
            spec.get("turn_taking").is_some(),
            kind == "turns",
            "{template}: {spec}"
        );
        if kind == "audio" {
            assert_eq!(check(&dir), spec);
            assert_eq!(spec["inputs"][0]["name"], "gain", "{spec}");
        }
        project_test(&dir, &template);
    }
    eprintln!(
        "every Rust template built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn new_build_run_halves_the_level_at_gain_one_half() {
    let (_scratch, dir, _) = new_and_build("rust-audio");
    let input: Vec<i16> = (0..48_000)
        .map(|i| {
            (16_000.0 * (std::f64::consts::TAU * 440.0 * f64::from(i) / 48_000.0).sin()).round()
                as i16
        })
        .collect();
    write_wav(&dir.join("in.wav"), 48_000, 1, &input);
    let out = run(wasmrtc(
        &dir,
        &[
            "run",
            "target/wasmrtc/demo.wasm",
            "--input",
            "in.wav",
            "--output",
            "out.wav",
            "--set",
            "gain=0.5",
        ],
    ));
    ok(&out);
    let (_, _, output) = read_wav(&dir.join("out.wav"));
    let rms =
        |s: &[i16]| (s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / s.len() as f64).sqrt();
    let peak = output.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!(
        (7_900..=8_100).contains(&peak),
        "peak {peak}, not half of 16000"
    );
    // Compare the level over the part that carries the tone (the output may be padded).
    let loud: Vec<i16> = output
        .iter()
        .copied()
        .filter(|s| s.unsigned_abs() > 0)
        .collect();
    let ratio = rms(&loud) / rms(&input);
    assert!((0.45..=0.55).contains(&ratio), "level ratio {ratio}");
}

#[test]
fn python_templates_build() {
    audio_template("python");
    video_template("python");
}

#[test]
fn js_templates_build() {
    audio_template("js");
    video_template("js");
}

#[test]
fn c_templates_build() {
    audio_template("c");
    video_template("c");
}

/// Every Python and JavaScript template beyond audio and video (slow: each Python
/// component takes ~30 s to build and compile): `cargo test … -- --ignored`.
#[test]
#[ignore]
fn every_python_and_js_template_builds() {
    let cells = [
        ("av", "AudioVideo", "SendReceive"),
        ("audio-send", "Audio", "Send"),
        ("video-send", "Video", "Send"),
        ("audio-receive", "Audio", "Receive"),
        ("video-receive", "Video", "Receive"),
        ("turns", "Audio", "SendReceive"),
    ];
    for language in ["python", "js"] {
        for (kind, modality, mode) in cells {
            let template = format!("{language}-{kind}");
            let (_scratch, _, spec) = new_and_build(&template);
            assert_cell(&spec, modality, mode, &template);
            assert_eq!(spec.get("turn_taking").is_some(), kind == "turns", "{spec}");
        }
    }
}

/// An executable shell script at `path`.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// `wasmrtc build` in `dir` with only `path` on `PATH` and no home to find tools in.
fn build_without_tools(dir: &Path, path: &Path) -> (Option<i32>, String) {
    let home = Scratch::new("home");
    let out = run(wasmrtc(dir, &["build"])
        .env("PATH", path)
        .env("HOME", &*home)
        .env("CARGO_HOME", home.join("no-cargo")));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_toolchain_is_named_with_its_install_command() {
    let parent = Scratch::new("missing");
    let empty = parent.join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let pin = std::fs::read_to_string(repo().join("examples-guests/python/requirements.txt"))
        .unwrap()
        .trim()
        .to_string();
    let cases: [(&str, &[&str]); 4] = [
        (
            "python-audio",
            &["componentize-py", &format!("pip install {pin}")],
        ),
        ("rust-audio", &["cargo", "https://sh.rustup.rs"]),
        ("js-audio", &["node", "apt-get install nodejs"]),
        (
            "c-video",
            &["wit-bindgen", "cargo install --locked wit-bindgen-cli@"],
        ),
    ];
    for (template, wanted) in cases {
        let name = template.replace('-', "_");
        ok(&run(wasmrtc(&parent, &["new", template, &name])));
        let (code, stderr) = build_without_tools(&parent.join(&name), &empty);
        assert_eq!(code, Some(2), "{template}: {stderr}");
        for w in wanted {
            assert!(stderr.contains(w), "{template}: no `{w}` in {stderr}");
        }
    }

    // A Rust toolchain without the wasm32-wasip2 target: a rustc whose target
    // library folder does not exist.
    let fake = parent.join("fake-rust");
    std::fs::create_dir(&fake).unwrap();
    script(&fake.join("cargo"), "exit 99");
    script(
        &fake.join("rustc"),
        "echo /nonexistent/lib/rustlib/wasm32-wasip2/lib",
    );
    let (code, stderr) = build_without_tools(&parent.join("rust_audio"), &fake);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("wasm32-wasip2") && stderr.contains("rustup target add wasm32-wasip2"),
        "{stderr}"
    );

    // componentize-js on PATH but no node.
    let js_only = parent.join("js-only");
    std::fs::create_dir(&js_only).unwrap();
    script(&js_only.join("componentize-js"), "exit 99");
    let (code, stderr) = build_without_tools(&parent.join("js_audio"), &js_only);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("node is not installed"), "{stderr}");
}

#[test]
fn a_rust_syntax_error_is_reported_at_its_line() {
    let parent = Scratch::new("syntax");
    ok(&run(wasmrtc(&parent, &["new", "rust-video", "broken"])));
    let dir = parent.join("broken");
    let lib = dir.join("src/lib.rs");
    let mut lines: Vec<String> = std::fs::read_to_string(&lib)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // Line 4 (blank, after the `use`) becomes a statement outside any function.
    assert_eq!(lines[3], "");
    lines.insert(3, "let oops = ;".into());
    std::fs::write(&lib, lines.join("\n")).unwrap();
    let out = run(wasmrtc(&dir, &["build"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("src/lib.rs:4"), "{stderr}");
    assert!(
        stderr
            .trim_end()
            .ends_with("error: build failed (cargo exited with 101)"),
        "{stderr}"
    );
}

#[test]
fn a_wrong_manifest_names_the_file_and_the_key() {
    let parent = Scratch::new("manifest");
    ok(&run(wasmrtc(&parent, &["new", "python-audio", "p"])));
    let dir = parent.join("p");
    let manifest = dir.join("wasmrtc.toml");
    std::fs::write(&manifest, "[handler]\nname = \"p\"\nlanguage = \"cobol\"\n").unwrap();
    let out = run(wasmrtc(&dir, &["build"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("wasmrtc.toml") && stderr.contains("cobol") && stderr.contains("line 3"),
        "{stderr}"
    );
    std::fs::write(&manifest, "[handler]\nlanguage = \"python\"\n").unwrap();
    let stderr = String::from_utf8_lossy(&run(wasmrtc(&dir, &["build"])).stderr).into_owned();
    assert!(stderr.contains("missing field `name`"), "{stderr}");

    // No manifest and nothing to build.
    let bare = Scratch::new("bare");
    let out = run(wasmrtc(&bare, &["build"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wasmrtc.toml: not found"));
}
