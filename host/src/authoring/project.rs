//! A handler project on disk: its `wasmrtc.toml`, or what its files say when it has none.
//!
//! ```toml
//! [handler]
//! name = "demo"          # the component is target/wasmrtc/demo.wasm
//! language = "python"    # rust, python, js or c (detected from the files when absent)
//! # world = "turn-taking-component"   # the WIT world; detected from the source when absent
//!
//! [python]
//! module = "app"         # the module componentize-py builds
//! path = ["src"]         # folders on the Python path
//!
//! [js]
//! source = "src/handler.js"
//!
//! [c]
//! sources = ["src/handler.c"]
//! cflags = []
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file `wasmrtc build` reads in a project's folder.
pub const MANIFEST: &str = "wasmrtc.toml";

/// The language a handler is written in, which decides its toolchain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Rust: `cargo build --target wasm32-wasip2` with the `wasmrtc-guest` SDK.
    Rust,
    /// Python: componentize-py.
    Python,
    /// JavaScript: componentize-js.
    Js,
    /// C: wit-bindgen c, clang for wasm32-wasi, wasm-tools and the preview1 adapter.
    C,
}

impl Language {
    /// Every language, in the order `wasmrtc new --list` shows them.
    pub const ALL: [Language; 4] = [Language::Rust, Language::Python, Language::Js, Language::C];

    /// The name used in `wasmrtc.toml` and template names: `rust`, `python`, `js`, `c`.
    pub fn id(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Js => "js",
            Language::C => "c",
        }
    }

    /// The language's usual name: `Rust`, `Python`, `JavaScript`, `C`.
    pub fn title(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::Js => "JavaScript",
            Language::C => "C",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The `[python]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonSettings {
    /// The module componentize-py builds; it assigns `Handler` (and `Turns` for turn-taking).
    #[serde(default = "default_module")]
    pub module: String,
    /// Folders on the Python path, relative to the project (keep virtualenvs out of them:
    /// their modules would be bundled too).
    #[serde(default = "default_python_path")]
    pub path: Vec<PathBuf>,
}

fn default_module() -> String {
    "app".into()
}

fn default_python_path() -> Vec<PathBuf> {
    vec![PathBuf::from("src")]
}

impl Default for PythonSettings {
    fn default() -> Self {
        PythonSettings {
            module: default_module(),
            path: default_python_path(),
        }
    }
}

/// The `[js]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsSettings {
    /// The module componentize-js builds, relative to the project; it exports `handler`
    /// (and `turns` for turn-taking). Its imports must stay inside the project folder.
    #[serde(default = "default_js_source")]
    pub source: PathBuf,
}

fn default_js_source() -> PathBuf {
    PathBuf::from("src/handler.js")
}

impl Default for JsSettings {
    fn default() -> Self {
        JsSettings {
            source: default_js_source(),
        }
    }
}

/// The `[c]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CSettings {
    /// The C files to compile, relative to the project.
    #[serde(default = "default_c_sources")]
    pub sources: Vec<PathBuf>,
    /// Extra flags for clang (e.g. `-DNDEBUG`, `-Iinclude`).
    #[serde(default)]
    pub cflags: Vec<String>,
}

fn default_c_sources() -> Vec<PathBuf> {
    vec![PathBuf::from("src/handler.c")]
}

impl Default for CSettings {
    fn default() -> Self {
        CSettings {
            sources: default_c_sources(),
            cflags: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    handler: HandlerTable,
    #[serde(default)]
    python: Option<PythonSettings>,
    #[serde(default)]
    js: Option<JsSettings>,
    #[serde(default)]
    c: Option<CSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandlerTable {
    name: String,
    language: Option<Language>,
    world: Option<String>,
}

/// A project ready to build.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project's folder.
    pub dir: PathBuf,
    /// `[handler] name`: the component is `target/wasmrtc/<name>.wasm`.
    pub name: String,
    /// `[handler] language`, or what the files say.
    pub language: Language,
    /// `[handler] world`: the WIT world to build against; `None` detects it from the source.
    pub world: Option<String>,
    /// `[python]`.
    pub python: PythonSettings,
    /// `[js]`.
    pub js: JsSettings,
    /// `[c]`.
    pub c: CSettings,
    /// The manifest it was read from; `None` when the folder has none and the
    /// language was detected from its files.
    pub manifest: Option<PathBuf>,
}

/// Why a project cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The manifest exists but cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The manifest.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is not valid TOML or misses or misspells a key.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// What is wrong, with the line and the key.
        message: String,
    },
    /// There is no manifest and nothing in the folder says what to build.
    #[error(
        "{}: not found, and {} has no Cargo.toml, *.py, *.js or *.c file to build \
         (`wasmrtc new --list` shows templates for a new project)",
        path.display(),
        dir.display()
    )]
    NotFound {
        /// The manifest looked for.
        path: PathBuf,
        /// The project folder.
        dir: PathBuf,
    },
}

/// Whether `name` may name a project: ASCII letters, digits, `-` and `_`, starting with a
/// letter, at most 64 characters (a valid crate, module, file and stream name).
pub fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The rule [`valid_name`] checks, for messages.
pub const NAME_RULE: &str =
    "use ASCII letters, digits, `-` and `_`, starting with a letter, at most 64 characters";

impl Project {
    /// Reads the project in `dir`: its `wasmrtc.toml`, or, when it has none, what its
    /// files say (a `Cargo.toml`, a `*.py`, `*.js` or `*.c` file).
    pub fn load(dir: &Path) -> Result<Project, ProjectError> {
        let path = dir.join(MANIFEST);
        match std::fs::read_to_string(&path) {
            Ok(text) => Project::parse(dir, &path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Project::detect(dir).ok_or(ProjectError::NotFound {
                    path,
                    dir: dir.to_path_buf(),
                })
            }
            Err(source) => Err(ProjectError::Read { path, source }),
        }
    }

    /// Parses a manifest's `text`; `path` names it in errors.
    pub fn parse(dir: &Path, path: &Path, text: &str) -> Result<Project, ProjectError> {
        let invalid = |message: String| ProjectError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let manifest: Manifest = toml::from_str(text).map_err(|e| {
            // toml's message names the line, shows it, and names the key.
            invalid(
                e.to_string()
                    .trim_end()
                    .replace("TOML parse error", "invalid"),
            )
        })?;
        let HandlerTable {
            name,
            language,
            world,
        } = manifest.handler;
        if !valid_name(&name) {
            return Err(invalid(format!("[handler] name `{name}`: {NAME_RULE}")));
        }
        let language = match language {
            Some(language) => language,
            None => detect_language(dir).ok_or_else(|| {
                invalid(
                    "[handler] language: missing, and the files do not say \
                     (set it to \"rust\", \"python\", \"js\" or \"c\")"
                        .into(),
                )
            })?,
        };
        if let Some(world) = &world
            && ![
                "handler-component",
                "turn-taking-component",
                "conversational-component",
            ]
            .contains(&world.as_str())
        {
            return Err(invalid(format!(
                "[handler] world `{world}`: expected \"handler-component\", \
                 \"turn-taking-component\" or \"conversational-component\""
            )));
        }
        let python = manifest.python.unwrap_or_default();
        if !valid_module(&python.module) {
            return Err(invalid(format!(
                "[python] module `{}`: not a Python module name",
                python.module
            )));
        }
        let c = manifest.c.unwrap_or_default();
        if c.sources.is_empty() {
            return Err(invalid("[c] sources: empty".into()));
        }
        Ok(Project {
            dir: dir.to_path_buf(),
            name,
            language,
            world,
            python,
            js: manifest.js.unwrap_or_default(),
            c,
            manifest: Some(path.to_path_buf()),
        })
    }

    /// A project without a manifest, from its files: the name is the folder's (or the
    /// crate's), the settings the defaults, adjusted to where the sources are.
    fn detect(dir: &Path) -> Option<Project> {
        let language = detect_language(dir)?;
        let folder = std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
        let crate_name = (language == Language::Rust)
            .then(|| cargo_package_name(&dir.join("Cargo.toml")))
            .flatten();
        let name = crate_name.or(folder).filter(|n| valid_name(n))?;
        let mut project = Project {
            dir: dir.to_path_buf(),
            name,
            language,
            world: None,
            python: PythonSettings::default(),
            js: JsSettings::default(),
            c: CSettings::default(),
            manifest: None,
        };
        let src = dir.join("src");
        let base = if src.is_dir() { src } else { dir.to_path_buf() };
        let rel = |p: &Path| p.strip_prefix(dir).unwrap_or(p).to_path_buf();
        match language {
            Language::Rust => {}
            Language::Python => {
                let files = files_with(&base, "py");
                let module = files
                    .iter()
                    .find(|f| f.file_stem().is_some_and(|s| s == "app"))
                    .or_else(|| files.first())?;
                project.python.module = module.file_stem()?.to_string_lossy().into_owned();
                project.python.path = vec![rel(&base)];
            }
            Language::Js => {
                let files = files_with(&base, "js");
                let source = files
                    .iter()
                    .find(|f| f.file_stem().is_some_and(|s| s == "handler"))
                    .or_else(|| files.first())?;
                project.js.source = rel(source);
            }
            Language::C => {
                project.c.sources = files_with(&base, "c").iter().map(|f| rel(f)).collect();
            }
        }
        Some(project)
    }

    /// Where `wasmrtc build` writes the component: `target/wasmrtc/<name>.wasm`.
    pub fn component_path(&self) -> PathBuf {
        self.out_dir().join(format!("{}.wasm", self.name))
    }

    /// `target/wasmrtc/` in the project: the component and the build's scratch files.
    pub fn out_dir(&self) -> PathBuf {
        self.dir.join("target").join("wasmrtc")
    }
}

fn valid_module(name: &str) -> bool {
    name.split('.').all(|part| {
        part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The language of the files in `dir` (or `dir/src`): a `Cargo.toml` is Rust, then
/// `*.py`, `*.js`, `*.c` in that order.
fn detect_language(dir: &Path) -> Option<Language> {
    if dir.join("Cargo.toml").is_file() {
        return Some(Language::Rust);
    }
    let src = dir.join("src");
    [
        ("py", Language::Python),
        ("js", Language::Js),
        ("c", Language::C),
    ]
    .into_iter()
    .find(|(ext, _)| !files_with(&src, ext).is_empty() || !files_with(dir, ext).is_empty())
    .map(|(_, language)| language)
}

/// The files directly in `dir` with extension `ext`, sorted.
fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// `package.name` of a Cargo.toml, if it has one.
fn cargo_package_name(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    Some(table.get("package")?.get("name")?.as_str()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Project, ProjectError> {
        Project::parse(
            Path::new("/nonexistent"),
            Path::new("/p/wasmrtc.toml"),
            text,
        )
    }

    #[test]
    fn names() {
        for ok in ["demo", "a", "my-handler_2", &"x".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "2x", "-x", "a b", "a/b", "é", "a.b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_full_manifest() {
        let p = parse(
            "[handler]\nname = \"demo\"\nlanguage = \"python\"\n[python]\nmodule = \"main\"\n",
        )
        .unwrap();
        assert_eq!((p.name.as_str(), p.language), ("demo", Language::Python));
        assert_eq!(p.python.module, "main");
        assert_eq!(p.python.path, [PathBuf::from("src")]);
        assert_eq!(
            p.component_path(),
            Path::new("/nonexistent/target/wasmrtc/demo.wasm")
        );
    }

    #[test]
    fn mistakes_name_the_file_and_the_key() {
        let cases = [
            ("[handler]\nlanguage = \"rust\"\n", "name"),
            ("[handler]\nname = \"x\"\nlanguage = \"go\"\n", "go"),
            (
                "[handler]\nname = \"a b\"\nlanguage = \"c\"\n",
                "[handler] name",
            ),
            (
                "[handler]\nname = \"x\"\nlanguage = \"c\"\ncolour = 1\n",
                "colour",
            ),
            ("[handler]\nname = \"x\"\n", "[handler] language"),
            ("[handler\n", "line 1"),
            ("", "handler"),
        ];
        for (text, key) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with("/p/wasmrtc.toml: "), "{e}");
            assert!(e.contains(key), "{text:?}: {e}");
        }
    }
}
