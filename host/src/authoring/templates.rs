//! The project templates `wasmrtc new` writes, shipped inside the binary.
//!
//! A template is a language and a kind (a cell of FastRTC's handler table, or
//! turn-taking): `rust-audio`, `python-video`… Every language shares one skeleton (the
//! manifest, README, `test.sh`, the WIT and the language's SDK), so templates differ
//! only in their handler source (`host/templates/<language>/…`) and in the check their
//! `test.sh` makes (`host/templates/tests/<kind>.sh`). The SDKs and the WIT are this
//! repository's own files, embedded at compile time, so a project gets exactly what
//! this wasmrtc was built and tested with.

use std::collections::BTreeSet;

use super::project::{Language, MANIFEST};
use super::toolchain;

/// What a template's handler does, as a cell of FastRTC's handler table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Audio send-receive: plays the audio back scaled by a gain slider.
    Audio,
    /// Video send-receive: flips every frame vertically.
    Video,
    /// Audio-video send-receive: echoes the audio, flips the video.
    AudioVideo,
    /// Audio send (outputs only): the audio's level.
    AudioSend,
    /// Video send (outputs only): the video's brightness.
    VideoSend,
    /// Audio receive: a tone.
    AudioReceive,
    /// Video receive: a moving ramp.
    VideoReceive,
    /// Audio send-receive with turn-taking: plays each utterance back after the pause.
    Turns,
}

impl Kind {
    /// Every kind, in the order `wasmrtc new --list` shows them.
    pub const ALL: [Kind; 8] = [
        Kind::Audio,
        Kind::Video,
        Kind::AudioVideo,
        Kind::AudioSend,
        Kind::VideoSend,
        Kind::AudioReceive,
        Kind::VideoReceive,
        Kind::Turns,
    ];

    /// The kind's part of a template name: `audio`, `video`, `av`, `audio-send`…
    pub fn id(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
            Kind::AudioVideo => "av",
            Kind::AudioSend => "audio-send",
            Kind::VideoSend => "video-send",
            Kind::AudioReceive => "audio-receive",
            Kind::VideoReceive => "video-receive",
            Kind::Turns => "turns",
        }
    }

    /// One line on what the handler does.
    pub fn summary(self) -> &'static str {
        match self {
            Kind::Audio => {
                "audio send-receive: plays the caller's audio back, scaled by a \"gain\" slider"
            }
            Kind::Video => "video send-receive: returns every frame flipped vertically",
            Kind::AudioVideo => {
                "audio-video send-receive: plays the audio back and flips the video vertically"
            }
            Kind::AudioSend => {
                "audio send (outputs only): emits the caller's audio level (dBFS) 4 times a second"
            }
            Kind::VideoSend => {
                "video send (outputs only): emits the mean brightness of the caller's video"
            }
            Kind::AudioReceive => {
                "audio receive: a sine tone with \"frequency\" and \"volume\" inputs"
            }
            Kind::VideoReceive => {
                "video receive: a scrolling grey ramp at 15 fps with a \"brightness\" slider"
            }
            Kind::Turns => {
                "turn-taking (ReplyOnPause): plays each utterance back when the caller pauses"
            }
        }
    }

    /// The check `test.sh` makes, with the helpers it uses filled in.
    fn test_snippet(self) -> String {
        let snippet = match self {
            Kind::Audio => include_str!("../../templates/tests/audio.sh"),
            Kind::Video => include_str!("../../templates/tests/video.sh"),
            Kind::AudioVideo => include_str!("../../templates/tests/av.sh"),
            Kind::AudioSend => include_str!("../../templates/tests/audio-send.sh"),
            Kind::VideoSend => include_str!("../../templates/tests/video-send.sh"),
            Kind::AudioReceive => include_str!("../../templates/tests/audio-receive.sh"),
            Kind::VideoReceive => include_str!("../../templates/tests/video-receive.sh"),
            Kind::Turns => include_str!("../../templates/tests/turns.sh"),
        };
        snippet
            .replace("{{wav}}\n", include_str!("../../templates/tests/wav.sh"))
            .replace("{{peak}}\n", include_str!("../../templates/tests/peak.sh"))
            .replace(
                "{{outputs}}\n",
                include_str!("../../templates/tests/outputs.sh"),
            )
    }

    /// A `wasmrtc run` line for the README.
    fn run_example(self, name: &str) -> String {
        let args = match self {
            Kind::Audio => "--input voice.wav --output louder.wav --set gain=1.5",
            Kind::Video => "--input clip.y4m --output flipped.y4m",
            Kind::AudioVideo => "--input voice.wav --output echo.wav",
            Kind::AudioSend => "--input voice.wav             # prints the level",
            Kind::VideoSend => "--input clip.y4m              # prints the brightness",
            Kind::AudioReceive => "--duration 3 --output tone.wav --set frequency=660",
            Kind::VideoReceive => "--frames 30 --output ramp.y4m",
            Kind::Turns => "--input question.wav --output reply.wav",
        };
        format!("wasmrtc run target/wasmrtc/{name}.wasm {args}")
    }
}

/// The handler source of a template, if the language has that kind.
fn source(language: Language, kind: Kind) -> Option<&'static str> {
    use Kind::*;
    use Language::*;
    Some(match (language, kind) {
        (Rust, Audio) => include_str!("../../templates/rust/src/audio.rs"),
        (Rust, Video) => include_str!("../../templates/rust/src/video.rs"),
        (Rust, AudioVideo) => include_str!("../../templates/rust/src/av.rs"),
        (Rust, AudioSend) => include_str!("../../templates/rust/src/audio-send.rs"),
        (Rust, VideoSend) => include_str!("../../templates/rust/src/video-send.rs"),
        (Rust, AudioReceive) => include_str!("../../templates/rust/src/audio-receive.rs"),
        (Rust, VideoReceive) => include_str!("../../templates/rust/src/video-receive.rs"),
        (Rust, Turns) => include_str!("../../templates/rust/src/turns.rs"),
        (Python, Audio) => include_str!("../../templates/python/audio.py"),
        (Python, Video) => include_str!("../../templates/python/video.py"),
        (Python, AudioVideo) => include_str!("../../templates/python/av.py"),
        (Python, AudioSend) => include_str!("../../templates/python/audio-send.py"),
        (Python, VideoSend) => include_str!("../../templates/python/video-send.py"),
        (Python, AudioReceive) => include_str!("../../templates/python/audio-receive.py"),
        (Python, VideoReceive) => include_str!("../../templates/python/video-receive.py"),
        (Python, Turns) => include_str!("../../templates/python/turns.py"),
        (Js, Audio) => include_str!("../../templates/js/audio.js"),
        (Js, Video) => include_str!("../../templates/js/video.js"),
        (Js, AudioVideo) => include_str!("../../templates/js/av.js"),
        (Js, AudioSend) => include_str!("../../templates/js/audio-send.js"),
        (Js, VideoSend) => include_str!("../../templates/js/video-send.js"),
        (Js, AudioReceive) => include_str!("../../templates/js/audio-receive.js"),
        (Js, VideoReceive) => include_str!("../../templates/js/video-receive.js"),
        (Js, Turns) => include_str!("../../templates/js/turns.js"),
        (C, Audio) => include_str!("../../templates/c/audio.c"),
        (C, Video) => include_str!("../../templates/c/video.c"),
        (C, _) => return None,
    })
}

/// The WIT contract, `wit/handler.wit` in every project.
pub const WIT: &str = include_str!("../../../wit/handler.wit");

/// The Rust SDK's sources (`guest-sdk/src/`), written to `wasmrtc-guest/src/`.
pub const RUST_SDK: [(&str, &str); 3] = [
    ("lib.rs", include_str!("../../../guest-sdk/src/lib.rs")),
    ("spec.rs", include_str!("../../../guest-sdk/src/spec.rs")),
    ("turns.rs", include_str!("../../../guest-sdk/src/turns.rs")),
];
const RUST_SDK_MANIFEST: &str = include_str!("../../../guest-sdk/Cargo.toml");
const EXAMPLES_LOCK: &str = include_str!("../../../examples-guests/Cargo.lock");
const PYTHON_SDK: &str = include_str!("../../../examples-guests/python/wasmrtc_handler.py");
const JS_SDK: &str = include_str!("../../../examples-guests/js/wasmrtc-handler.js");

/// A template: a language and a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// The language of its handler.
    pub language: Language,
    /// What its handler does.
    pub kind: Kind,
}

/// A file of a project, relative to its folder.
#[derive(Debug, Clone)]
pub struct ProjectFile {
    /// Where, relative to the project folder, with `/` separators.
    pub path: String,
    /// What.
    pub contents: String,
    /// Whether it is a script to run (`test.sh`).
    pub executable: bool,
}

impl Template {
    /// Every template, by language, then kind.
    pub fn all() -> Vec<Template> {
        Language::ALL
            .into_iter()
            .flat_map(|language| {
                Kind::ALL
                    .into_iter()
                    .filter(move |&kind| source(language, kind).is_some())
                    .map(move |kind| Template { language, kind })
            })
            .collect()
    }

    /// The template called `name` (`rust-audio`…), if there is one.
    pub fn find(name: &str) -> Option<Template> {
        Template::all().into_iter().find(|t| t.name() == name)
    }

    /// Its name: `<language>-<kind>`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.language.id(), self.kind.id())
    }

    /// One line on what its handler does.
    pub fn description(&self) -> &'static str {
        self.kind.summary()
    }

    /// The files of a project called `name` made from this template.
    pub fn files(&self, name: &str) -> Vec<ProjectFile> {
        let handler = source(self.language, self.kind).unwrap_or_default();
        let file = |path: &str, contents: String| ProjectFile {
            path: path.to_string(),
            contents,
            executable: path.ends_with(".sh"),
        };
        let mut files = vec![
            file(MANIFEST, self.manifest(name)),
            file("README.md", self.readme(name)),
            file(
                "test.sh",
                include_str!("../../templates/common/test.sh")
                    .replace("{{test}}\n", &self.kind.test_snippet())
                    .replace("{{name}}", name),
            ),
            file(
                ".gitignore",
                include_str!("../../templates/common/gitignore").to_string(),
            ),
            file("wit/handler.wit", WIT.to_string()),
        ];
        match self.language {
            Language::Rust => {
                files.push(file(
                    "Cargo.toml",
                    include_str!("../../templates/rust/Cargo.toml").replace("{{name}}", name),
                ));
                if let Some(lock) = cargo_lock(name) {
                    files.push(file("Cargo.lock", lock));
                }
                files.push(file("src/lib.rs", handler.to_string()));
                files.push(file("wasmrtc-guest/Cargo.toml", sdk_manifest()));
                for (path, text) in RUST_SDK {
                    files.push(file(&format!("wasmrtc-guest/src/{path}"), text.to_string()));
                }
            }
            Language::Python => {
                files.push(file("src/app.py", handler.to_string()));
                files.push(file("src/wasmrtc_handler.py", PYTHON_SDK.to_string()));
            }
            Language::Js => {
                files.push(file("src/handler.js", handler.to_string()));
                files.push(file("src/wasmrtc-handler.js", JS_SDK.to_string()));
                files.push(file("package.json", package_json(name)));
            }
            Language::C => files.push(file("src/handler.c", handler.to_string())),
        }
        files
    }

    /// `wasmrtc.toml`.
    fn manifest(&self, name: &str) -> String {
        let settings = match self.language {
            Language::Rust => "\n# The crate is Cargo.toml's; `wasmrtc build` runs \
                 `cargo build --release --target wasm32-wasip2`.\n"
                .to_string(),
            Language::Python => "\n[python]\n\
                 module = \"app\"         # the module componentize-py builds (src/app.py)\n\
                 path = [\"src\"]         # folders on the Python path: every module in them is bundled\n"
                .to_string(),
            Language::Js => "\n[js]\n\
                 source = \"src/handler.js\"   # the module componentize-js builds; \
                 its imports stay in this folder\n"
                .to_string(),
            Language::C => "\n[c]\n\
                 sources = [\"src/handler.c\"]   # compiled with the generated bindings\n\
                 cflags = []                   # extra clang flags\n"
                .to_string(),
        };
        format!(
            "# A wasmrtc handler project (template {template}), read by `wasmrtc build`.\n\
             [handler]\n\
             name = \"{name}\"   # the component is target/wasmrtc/{name}.wasm\n\
             language = \"{language}\"\n\
             # world = \"handler-component\"   # the WIT world; by default {world_default}\n\
             {settings}",
            template = self.name(),
            language = self.language.id(),
            world_default = match self.language {
                Language::Rust => "the SDK exports every interface",
                Language::Python => "turn-taking-component when the module assigns `Turns`",
                Language::Js => "turn-taking-component when the module exports `turns`",
                Language::C => "handler-component",
            },
        )
    }

    /// `README.md`.
    fn readme(&self, name: &str) -> String {
        let files = match self.language {
            Language::Rust => {
                "| `src/lib.rs` | the handler: a `Handler` impl and `export_handler!` |\n\
                 | `Cargo.toml`, `Cargo.lock` | the crate (a `cdylib`), a workspace of its own |\n\
                 | `wasmrtc-guest/` | the Rust SDK (not on crates.io, so it is copied here) |"
            }
            Language::Python => {
                "| `src/app.py` | the handler: a `StreamHandler` subclass and `Handler = export(…)` |\n\
                 | `src/wasmrtc_handler.py` | the Python SDK |"
            }
            Language::Js => {
                "| `src/handler.js` | the handler: a `StreamHandler` subclass and `export const handler` |\n\
                 | `src/wasmrtc-handler.js` | the JavaScript SDK |\n\
                 | `package.json` | the pinned componentize-js, for `npm install` |"
            }
            Language::C => {
                "| `src/handler.c` | the handler: the six exports of `wasmrtc:handler/handler` |"
            }
        };
        include_str!("../../templates/common/README.md")
            .replace("{{files}}", files)
            .replace("{{toolchain}}", &toolchain::readme_section(self.language))
            .replace("{{run}}", &self.kind.run_example(name))
            .replace("{{language_title}}", self.language.title())
            .replace("{{template}}", &self.name())
            .replace("{{description}}", &format!("{}.", self.description()))
            .replace("{{name}}", name)
    }
}

/// `wasmrtc-guest/Cargo.toml`: guest-sdk's own `wit-bindgen` dependency line, verbatim.
fn sdk_manifest() -> String {
    let dependency = RUST_SDK_MANIFEST
        .lines()
        .find(|l| l.trim_start().starts_with("wit-bindgen"))
        .unwrap_or("wit-bindgen = { version = \"*\", default-features = false, features = [\"macros\", \"realloc\"] }");
    include_str!("../../templates/rust/sdk-Cargo.toml")
        .replace("{{wasmrtc_version}}", env!("CARGO_PKG_VERSION"))
        .replace("{{wit_bindgen_dependency}}", dependency)
}

/// The project's `Cargo.lock`: the packages `wasmrtc-guest` depends on, at the versions
/// of this repository's `examples-guests/Cargo.lock` (so the project builds with the
/// crates the examples are tested with, and without a registry lookup when they are
/// in cargo's cache).
fn cargo_lock(name: &str) -> Option<String> {
    let lock: toml::Table = toml::from_str(EXAMPLES_LOCK).ok()?;
    let packages: Vec<&toml::Table> = lock
        .get("package")?
        .as_array()?
        .iter()
        .filter_map(toml::Value::as_table)
        .collect();
    let field =
        |p: &toml::Table, k: &str| p.get(k).and_then(toml::Value::as_str).map(str::to_string);
    // A dependency entry: "name", "name version" or "name version (source)".
    let find = |dep: &str| {
        let mut parts = dep.split(' ');
        let name = parts.next()?;
        let version = parts.next();
        packages.iter().position(|p| {
            field(p, "name").as_deref() == Some(name)
                && version.is_none_or(|v| field(p, "version").as_deref() == Some(v))
        })
    };
    let sdk = find("wasmrtc-guest")?;
    let mut wanted = BTreeSet::new();
    let mut todo = vec![sdk];
    while let Some(i) = todo.pop() {
        if !wanted.insert(i) {
            continue;
        }
        let deps = packages[i]
            .get("dependencies")
            .and_then(toml::Value::as_array);
        for dep in deps.into_iter().flatten().filter_map(toml::Value::as_str) {
            todo.push(find(dep)?);
        }
    }
    let mut out: Vec<toml::Table> = wanted
        .into_iter()
        .map(|i| {
            let mut p = packages[i].clone();
            if i == sdk {
                p.insert("version".into(), env!("CARGO_PKG_VERSION").into());
            }
            p
        })
        .collect();
    let mut project = toml::Table::new();
    project.insert("name".into(), name.into());
    project.insert("version".into(), "0.1.0".into());
    project.insert(
        "dependencies".into(),
        toml::Value::Array(vec!["wasmrtc-guest".into()]),
    );
    out.push(project);
    out.sort_by_key(|p| (field(p, "name"), field(p, "version")));
    let mut file = toml::Table::new();
    file.insert("version".into(), lock.get("version")?.clone());
    file.insert(
        "package".into(),
        toml::Value::Array(out.into_iter().map(toml::Value::Table).collect()),
    );
    Some(format!(
        "# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\n{}",
        toml::to_string(&file).ok()?
    ))
}

/// `package.json` of a JavaScript project: the pinned toolchain as dev-dependencies.
fn package_json(name: &str) -> String {
    let deps: serde_json::Map<String, serde_json::Value> = toolchain::pins()
        .npm
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let json = serde_json::json!({
        "name": name,
        "private": true,
        "type": "module",
        "description": "A wasmrtc handler, built into a component by `wasmrtc build` (componentize-js).",
        "devDependencies": deps,
    });
    serde_json::to_string_pretty(&json).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_audio_and_video_and_rust_has_every_kind() {
        for language in Language::ALL {
            for kind in [Kind::Audio, Kind::Video] {
                assert!(source(language, kind).is_some(), "{language} {kind:?}");
            }
        }
        for kind in Kind::ALL {
            assert!(source(Language::Rust, kind).is_some(), "{kind:?}");
        }
        assert_eq!(Template::find("rust-av").unwrap().kind, Kind::AudioVideo);
        assert!(Template::find("c-turns").is_none());
    }

    #[test]
    fn the_rust_sdk_copy_is_the_whole_sdk() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<&str> = RUST_SDK.iter().map(|(p, _)| *p).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "add guest-sdk's new files to RUST_SDK");
        assert!(sdk_manifest().contains("wit-bindgen = { version = "));
    }

    #[test]
    fn the_lock_file_holds_wit_bindgen_and_the_project() {
        let lock = cargo_lock("demo").unwrap();
        let parsed: toml::Table = toml::from_str(&lock).unwrap();
        let names: Vec<&str> = parsed["package"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in [
            "demo",
            "wasmrtc-guest",
            "wit-bindgen",
            "wit-bindgen-rust-macro",
        ] {
            assert!(names.contains(&name), "{name}: {names:?}");
        }
    }

    #[test]
    fn placeholders_are_all_filled() {
        for t in Template::all() {
            for f in t.files("demo") {
                assert!(
                    !f.contents.contains("{{"),
                    "{} {}: {}",
                    t.name(),
                    f.path,
                    f.contents
                );
            }
        }
    }
}
