//! Finding each language's tools, the exact commands that install them, and running
//! them with their diagnostics passed through.
//!
//! The pinned versions are this repository's own pins, embedded when the host is
//! compiled: `examples-guests/python/requirements.txt` (componentize-py),
//! `examples-guests/js/package.json` (componentize-js) and `examples-guests/c/tools.env`
//! (wit-bindgen-cli, wasm-tools).
//!
//! Where a tool is looked for, first to last:
//!
//! | tool | where |
//! |---|---|
//! | `cargo`, `rustc` | `PATH`, `$CARGO_HOME/bin`, `~/.cargo/bin` |
//! | `componentize-py` | `$WASMRTC_COMPONENTIZE_PY`, `PATH`, the project's `.venv/bin` |
//! | `componentize-js` | `$WASMRTC_COMPONENTIZE_JS`, `PATH`, the project's `node_modules/.bin` |
//! | `node` | `PATH` |
//! | `wit-bindgen`, `wasm-tools` | `PATH`, `$WASMRTC_TOOLS_DIR/bin` |
//! | `clang` | `$CC_WASM`, `PATH` |
//! | `wasm-ld` | `PATH` |
//! | wasi-libc | `$WASMRTC_WASI_SYSROOT` or `/usr` (Debian's `wasi-libc`) |
//! | the preview1 reactor adapter | `$WASMRTC_WASI_ADAPTER`, else the copy built into wasmrtc |

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const REQUIREMENTS_TXT: &str = include_str!("../../../examples-guests/python/requirements.txt");
const PACKAGE_JSON: &str = include_str!("../../../examples-guests/js/package.json");
const TOOLS_ENV: &str = include_str!("../../../examples-guests/c/tools.env");

/// The tool versions this wasmrtc is tested with.
#[derive(Debug, Clone)]
pub struct Pins {
    /// componentize-py, from `examples-guests/python/requirements.txt`.
    pub componentize_py: String,
    /// The npm packages of `examples-guests/js/package.json`'s `devDependencies`
    /// (componentize-js and the preview2-shim it needs), as `(name, version)`.
    pub npm: Vec<(String, String)>,
    /// wit-bindgen-cli, from `examples-guests/c/tools.env`.
    pub wit_bindgen: String,
    /// wasm-tools, from `examples-guests/c/tools.env`.
    pub wasm_tools: String,
}

/// The pins, parsed once from the embedded files.
pub fn pins() -> &'static Pins {
    static PINS: OnceLock<Pins> = OnceLock::new();
    PINS.get_or_init(|| {
        let env = |key: &str| {
            TOOLS_ENV
                .lines()
                .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
                .unwrap_or("?")
                .trim()
                .to_string()
        };
        let npm = serde_json::from_str::<serde_json::Value>(PACKAGE_JSON)
            .ok()
            .and_then(|v| v.get("devDependencies")?.as_object().cloned())
            .map(|deps| {
                deps.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("?").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Pins {
            componentize_py: REQUIREMENTS_TXT
                .lines()
                .find_map(|l| l.trim().strip_prefix("componentize-py=="))
                .unwrap_or("?")
                .trim()
                .to_string(),
            npm,
            wit_bindgen: env("WIT_BINDGEN_VERSION"),
            wasm_tools: env("WASM_TOOLS_VERSION"),
        }
    })
}

/// The pinned version of an npm package of the JavaScript toolchain.
pub fn npm_pin(package: &str) -> Option<&'static str> {
    pins()
        .npm
        .iter()
        .find(|(name, _)| name == package)
        .map(|(_, v)| v.as_str())
}

/// The exact commands that install a tool (or a piece of one).
pub fn install_command(tool: &str) -> String {
    let p = pins();
    match tool {
        "cargo" => "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --target wasm32-wasip2".into(),
        "wasm32-wasip2" => "rustup target add wasm32-wasip2".into(),
        "componentize-py" => format!("pip install componentize-py=={}", p.componentize_py),
        "node" => "apt-get install nodejs npm".into(),
        "componentize-js" => format!(
            "npm install --save-dev {}",
            p.npm
                .iter()
                .map(|(name, v)| format!("{name}@{v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "clang" | "wasm-ld" | "wasi-libc" => {
            "apt-get install clang lld wasi-libc libclang-rt-dev-wasm32".into()
        }
        "wit-bindgen" => format!(
            "cargo install --locked wit-bindgen-cli@{} --no-default-features --features c",
            p.wit_bindgen
        ),
        "wasm-tools" => format!(
            "cargo install --locked wasm-tools@{} --no-default-features --features component,validate,print,parse,wit-component",
            p.wasm_tools
        ),
        other => format!("install {other}"),
    }
}

/// What to know beside [`install_command`], if anything.
pub fn install_hint(tool: &str) -> String {
    match tool {
        "componentize-py" => format!(
            "\n  (e.g. into a virtualenv, kept out of the project's src/: python3 -m venv .venv && \
             .venv/bin/pip install componentize-py=={}; wasmrtc build looks in .venv/bin)",
            pins().componentize_py
        ),
        "componentize-js" => {
            "\n  (in the project folder: its package.json pins them, so `npm install` does \
             the same; wasmrtc build looks in node_modules/.bin)"
                .into()
        }
        "cargo" => "\n  (then open a new shell, or add ~/.cargo/bin to PATH)".into(),
        _ => String::new(),
    }
}

/// The toolchain section of a project's README, in Markdown.
pub fn readme_section(language: crate::authoring::project::Language) -> String {
    use crate::authoring::project::Language;
    let p = pins();
    let bullet = |tool: &str, what: &str| format!("- {what}: `{}`\n", install_command(tool));
    match language {
        Language::Rust => format!(
            "`wasmrtc build` runs `cargo build --release --target wasm32-wasip2` and copies the\n\
             component to `target/wasmrtc/`. It needs:\n\n{}{}",
            bullet("cargo", "Rust (rustup)"),
            bullet("wasm32-wasip2", "the wasm32-wasip2 target"),
        ),
        Language::Python => format!(
            "`wasmrtc build` runs componentize-py {} (found in `$WASMRTC_COMPONENTIZE_PY`, on `PATH`\n\
             or in `.venv/bin/`). Install it with:\n\n{}\n\
             Keep virtualenvs out of `src/`: every module on the Python path is bundled.\n",
            p.componentize_py,
            bullet("componentize-py", "componentize-py"),
        ),
        Language::Js => format!(
            "`wasmrtc build` runs componentize-js {} (found in `$WASMRTC_COMPONENTIZE_JS`, on `PATH`\n\
             or in `node_modules/.bin/`; `npm install` here installs the pinned one). It needs:\n\n{}{}\n\
             componentize-js only reads modules inside the project folder.\n",
            npm_pin("@bytecodealliance/componentize-js").unwrap_or("?"),
            bullet("node", "Node.js"),
            bullet("componentize-js", "componentize-js"),
        ),
        Language::C => format!(
            "`wasmrtc build` generates the bindings with `wit-bindgen c`, compiles with clang for\n\
             wasm32-wasi (a reactor: no `main`) and makes the component with `wasm-tools component new`\n\
             and the WASI preview1 adapter built into wasmrtc. It needs:\n\n{}{}{}\n\
             `wit-bindgen` and `wasm-tools` are looked for on `PATH`, then in `$WASMRTC_TOOLS_DIR/bin`.\n",
            bullet("clang", "clang, lld and wasi-libc (Debian)"),
            bullet("wit-bindgen", &format!("wit-bindgen-cli {}", p.wit_bindgen)),
            bullet("wasm-tools", &format!("wasm-tools {}", p.wasm_tools)),
        ),
    }
}

/// Why a tool could not do its part of the build.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The tool is not installed where it is looked for.
    #[error("{tool} is not installed{detail}\n  install it with: {install}{hint}")]
    Missing {
        /// The tool, as the user knows it (`componentize-py`, `wasm32-wasip2`…).
        tool: String,
        /// Where it was looked for, or what was found instead (starts with a separator).
        detail: String,
        /// The exact command that installs it.
        install: String,
        /// What else to know (starts with a line break, or is empty).
        hint: String,
    },
    /// The tool could not be started.
    #[error("cannot run {tool} ({}): {source}", path.display())]
    Spawn {
        /// The tool.
        tool: String,
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The tool ran and failed; its diagnostics went to stderr.
    #[error("build failed ({tool} exited with {code})")]
    Failed {
        /// The tool.
        tool: String,
        /// Its exit code, or the signal that ended it.
        code: String,
        /// The end of what it wrote to stderr (at most [`DIAGNOSTICS_LIMIT`] bytes): the
        /// diagnostics `wasmrtc dev` shows on the page.
        diagnostics: String,
    },
}

impl ToolError {
    /// A [`ToolError::Missing`] for `tool`, with its install command.
    pub fn missing(tool: &str, detail: impl Into<String>) -> ToolError {
        ToolError::Missing {
            tool: tool.to_string(),
            detail: detail.into(),
            install: install_command(tool),
            hint: install_hint(tool),
        }
    }
}

/// Whether `path` is a file this process may execute.
fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// `program` in the folders of `PATH`, then in `extra`, if it is there.
pub fn find_program(program: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .map(|dir| dir.join(format!("{program}{}", std::env::consts::EXE_SUFFIX)))
        .find(|p| is_executable(p))
}

/// The value of an environment variable naming a tool's file, if set and not empty.
pub fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The first line of `program --version`, if it answers.
pub fn version_of(program: &Path) -> Option<String> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().next()?.trim().to_string())
}

/// Warns on stderr when `program --version` does not mention `want`.
pub fn warn_unless_version(tool: &str, program: &Path, want: &str) {
    match version_of(program) {
        Some(have) if have.contains(want) => {}
        have => eprintln!(
            "warning: {tool} {want} is the tested version; {} has {}\n  to install it: {}",
            program.display(),
            have.as_deref().unwrap_or("an unknown version"),
            install_command(tool)
        ),
    }
}

/// `PATH` with `dir` in front, for children that must find a tool's siblings.
pub fn path_with(dir: &Path) -> OsString {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap_or_default()
}

/// Most bytes of a tool's stdout kept for the caller (the rest is passed through only).
pub const CAPTURE_LIMIT: usize = 1 << 20;

/// How much of a failed tool's stderr its error keeps (the end: where the summary is).
pub const DIAGNOSTICS_LIMIT: usize = 64 << 10;

/// What [`run`] does with a line of a tool's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Return it to the caller.
    Keep,
    /// Copy it to this process's stderr.
    Forward,
    /// Neither.
    Drop,
}

/// Runs `command` (the tool `tool`) to its end: stdin closed, stderr copied through as
/// it comes (so its diagnostics, with the author's file:line, reach the user as the
/// tool wrote them; a failure's error keeps their end),
/// stdout read line by line and sorted by `sort`: lines to keep are returned (at most
/// [`CAPTURE_LIMIT`] bytes in all), lines to forward are copied to this process's
/// stderr, so that its stdout carries only the build's result.
pub fn run(
    tool: &str,
    command: &mut Command,
    sort: impl Fn(&str) -> Line,
) -> Result<Vec<String>, ToolError> {
    let program = PathBuf::from(command.get_program());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ToolError::Spawn {
            tool: tool.to_string(),
            path: program,
            source,
        })?;
    // Stderr is copied through as it comes, keeping its end for the error.
    let diagnostics = child.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            let mut tail = std::collections::VecDeque::<u8>::new();
            let mut chunk = [0u8; 8192];
            let mut reader = stderr;
            while let Ok(n) = std::io::Read::read(&mut reader, &mut chunk) {
                if n == 0 {
                    break;
                }
                let _ = std::io::stderr().write_all(&chunk[..n]);
                tail.extend(&chunk[..n]);
                let over = tail.len().saturating_sub(DIAGNOSTICS_LIMIT);
                tail.drain(..over);
            }
            String::from_utf8_lossy(tail.make_contiguous()).into_owned()
        })
    });
    let mut kept = Vec::new();
    let mut kept_bytes = 0;
    if let Some(stdout) = child.stdout.take() {
        let stderr = std::io::stderr();
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line);
            match sort(&line) {
                Line::Keep if kept_bytes + line.len() <= CAPTURE_LIMIT => {
                    kept_bytes += line.len();
                    kept.push(line.into_owned());
                }
                Line::Forward => {
                    let _ = writeln!(stderr.lock(), "{line}");
                }
                Line::Keep | Line::Drop => {}
            }
        }
    }
    let status = child.wait().map_err(|source| ToolError::Spawn {
        tool: tool.to_string(),
        path: PathBuf::from(command.get_program()),
        source,
    })?;
    if status.success() {
        return Ok(kept);
    }
    let code = match status.code() {
        Some(code) => code.to_string(),
        None => {
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                format!("signal {}", status.signal().unwrap_or(0))
            }
            #[cfg(not(unix))]
            {
                "no code".to_string()
            }
        }
    };
    let diagnostics = diagnostics.and_then(|t| t.join().ok()).unwrap_or_default();
    Err(ToolError::Failed {
        tool: tool.to_string(),
        code,
        diagnostics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pins_are_the_repositorys() {
        let p = pins();
        assert!(p.componentize_py.chars().next().unwrap().is_ascii_digit());
        assert!(p.wit_bindgen.chars().next().unwrap().is_ascii_digit());
        assert!(p.wasm_tools.chars().next().unwrap().is_ascii_digit());
        assert!(npm_pin("@bytecodealliance/componentize-js").is_some());
        assert!(
            install_command("componentize-py")
                .contains(&format!("componentize-py=={}", p.componentize_py))
        );
        assert!(install_command("wit-bindgen").contains(&format!("@{}", p.wit_bindgen)));
    }
}
