//! `wasmrtc build`: turns a handler project into a component with its language's
//! toolchain, exactly as this repository's build scripts do, then loads it as
//! `wasmrtc serve` would and prints its stream spec (as `wasmrtc check`).
//!
//! | language | what runs |
//! |---|---|
//! | Rust | `cargo build --release --target wasm32-wasip2` |
//! | Python | `componentize-py -d wit -w WORLD componentize MODULE -p src` |
//! | JavaScript | `componentize-js SOURCE --wit wit --world-name WORLD --disable http fetch-event` |
//! | C | `wit-bindgen c`, `clang --target=wasm32-wasi -mexec-model=reactor`, `wasm-tools component new --adapt` (preview1 reactor adapter) |
//!
//! The component is `target/wasmrtc/<name>.wasm` in the project. Exit codes: 0 built
//! and accepted; 1 the build failed (the toolchain's diagnostics are passed through,
//! then `error: build failed (<tool> exited with N)`) or the host refused the
//! component; 2 a tool is missing (the message names it and the command that
//! installs it) or the project's `wasmrtc.toml` is wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use super::project::{Language, Project, ProjectError};
use super::toolchain::{self, Line, ToolError, env_path, find_program, pins};
use crate::runtime::{HandlerComponent, Runtime, RuntimeConfig};

/// The command line of `wasmrtc build`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The project folder, with its `wasmrtc.toml`.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Build with optimisations (the default).
    #[arg(long, conflicts_with = "debug")]
    pub release: bool,
    /// Build without optimisations, with debug information where the language has it.
    #[arg(long)]
    pub debug: bool,
    /// Print the spec as JSON (as `wasmrtc check --json`); the component's path goes to stderr.
    #[arg(long)]
    pub json: bool,
}

/// Optimised or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Optimised: `cargo build --release`, `clang -O2`.
    Release,
    /// Not optimised, with debug information: `cargo build`, `clang -O0 -g`.
    Debug,
}

/// Why a project did not build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The project's manifest is missing or wrong.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// A tool is missing or failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// A file the build needs is missing or unusable.
    #[error("{}: {message}", path.display())]
    Files {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl BuildError {
    /// The exit code: 2 for a missing tool or a wrong manifest, 1 for a failed build.
    pub fn exit_code(&self) -> u8 {
        match self {
            BuildError::Tool(ToolError::Missing { .. }) | BuildError::Project(_) => 2,
            _ => 1,
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |e| BuildError::Files {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Builds `project` into `target/wasmrtc/<name>.wasm` and returns that path. Blocks
/// on the toolchain: call it off the async runtime's workers.
pub fn build(project: &Project, profile: Profile) -> Result<PathBuf, BuildError> {
    let out_dir = project.out_dir();
    std::fs::create_dir_all(&out_dir).map_err(io_error(&out_dir))?;
    if project.language != Language::Rust {
        let wit = project.dir.join("wit");
        if !wit.is_dir() {
            return Err(BuildError::Files {
                path: wit,
                message: "not found: the WIT contract (wit/handler.wit) must be in the project \
                          (`wasmrtc new` writes it)"
                    .into(),
            });
        }
    }
    let out = project.component_path();
    let tmp = out.with_extension("wasm.tmp");
    match project.language {
        Language::Rust => build_rust(project, profile, &tmp)?,
        Language::Python => build_python(project, &tmp)?,
        Language::Js => build_js(project, &tmp)?,
        Language::C => build_c(project, profile, &tmp)?,
    }
    std::fs::rename(&tmp, &out).map_err(io_error(&out))?;
    Ok(out)
}

/// `cargo` (and `rustc` beside it) on `PATH`, in `$CARGO_HOME/bin` or `~/.cargo/bin`.
fn find_cargo() -> Result<PathBuf, ToolError> {
    let mut extra = Vec::new();
    if let Some(home) = env_path("CARGO_HOME") {
        extra.push(home.join("bin"));
    }
    if let Some(home) = env_path("HOME") {
        extra.push(home.join(".cargo").join("bin"));
    }
    find_program("cargo", &extra).ok_or_else(|| {
        ToolError::missing(
            "cargo",
            " (looked on PATH, in $CARGO_HOME/bin and ~/.cargo/bin)",
        )
    })
}

fn build_rust(project: &Project, profile: Profile, tmp: &Path) -> Result<(), BuildError> {
    let dir = &project.dir;
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::Files {
            path: manifest,
            message:
                "not found: a Rust handler is a crate (`wasmrtc new rust-audio NAME` writes one)"
                    .into(),
        });
    }
    let cargo = find_cargo()?;
    let bin = cargo.parent().unwrap_or(Path::new("")).to_path_buf();
    let path_env = toolchain::path_with(&bin);
    // The target's standard library, where this project's toolchain keeps it.
    let rustc = find_program("rustc", std::slice::from_ref(&bin))
        .ok_or_else(|| ToolError::missing("cargo", " (cargo was found, rustc was not)"))?;
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .current_dir(dir)
        .env("PATH", &path_env)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if !libdir
        .as_deref()
        .is_some_and(|d| std::fs::read_dir(d).is_ok_and(|mut entries| entries.next().is_some()))
    {
        return Err(ToolError::missing(
            "wasm32-wasip2",
            " (the Rust target: its standard library is missing from the toolchain)",
        )
        .into());
    }
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(dir)
        .env("PATH", &path_env)
        .args(["build", "--target", "wasm32-wasip2"])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    // Diagnostics are rendered on stderr; stdout has one JSON message per line.
    let artifacts = toolchain::run("cargo", &mut cmd, |line| {
        if line.contains("\"compiler-artifact\"") && line.contains(".wasm\"") {
            Line::Keep
        } else if line.starts_with('{') {
            Line::Drop
        } else {
            Line::Forward
        }
    })?;
    let root = std::fs::canonicalize(dir.join("Cargo.toml")).unwrap_or_default();
    let mut wasm = None;
    for line in artifacts.iter().rev() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let ours = msg
            .get("manifest_path")
            .and_then(|m| m.as_str())
            .is_some_and(|m| Path::new(m) == root);
        let file = msg
            .get("filenames")
            .and_then(|f| f.as_array())
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .find(|f| f.ends_with(".wasm"))
            .map(PathBuf::from);
        if ours && file.is_some() {
            wasm = file;
            break;
        }
        wasm = wasm.or(file);
    }
    let wasm = wasm.ok_or_else(|| BuildError::Files {
        path: dir.join("Cargo.toml"),
        message: "cargo built no .wasm: the handler crate needs `[lib] crate-type = [\"cdylib\"]`"
            .into(),
    })?;
    std::fs::copy(&wasm, tmp).map_err(io_error(tmp))?;
    Ok(())
}

/// The tool named by `var` if set (it must exist), else `program` on `PATH` or in `local`.
fn find_tool(tool: &str, var: &str, local: PathBuf) -> Result<PathBuf, ToolError> {
    if let Some(path) = env_path(var) {
        if path.is_file() {
            return Ok(path);
        }
        return Err(ToolError::missing(
            tool,
            format!(" (${var} names {}, which does not exist)", path.display()),
        ));
    }
    find_program(tool, std::slice::from_ref(&local)).ok_or_else(|| {
        ToolError::missing(
            tool,
            format!(" (looked in ${var}, on PATH and in {})", local.display()),
        )
    })
}

/// The world to build against: the manifest's, else `turn-taking-component` when the
/// source exports turns, else `handler-component`.
fn world(project: &Project, source: &str, exports_turns: impl Fn(&str) -> bool) -> String {
    project.world.clone().unwrap_or_else(|| {
        if source.lines().any(exports_turns) {
            "turn-taking-component".into()
        } else {
            "handler-component".into()
        }
    })
}

/// Whether `line` starts with `name` and then `=` (not `==`), spaces allowed.
fn assigns(line: &str, name: &str) -> bool {
    line.strip_prefix(name)
        .map(str::trim_start)
        .is_some_and(|rest| rest.starts_with('=') && !rest.starts_with("=="))
}

fn build_python(project: &Project, tmp: &Path) -> Result<(), BuildError> {
    let dir = &project.dir;
    let tool = find_tool(
        "componentize-py",
        "WASMRTC_COMPONENTIZE_PY",
        dir.join(".venv").join("bin"),
    )?;
    toolchain::warn_unless_version(
        "componentize-py",
        &tool,
        &format!("componentize-py {}", pins().componentize_py),
    );
    let settings = &project.python;
    let file = format!("{}.py", settings.module.replace('.', "/"));
    let module = settings
        .path
        .iter()
        .map(|p| dir.join(p).join(&file))
        .find(|p| p.is_file())
        .ok_or_else(|| BuildError::Files {
            path: dir
                .join(settings.path.first().cloned().unwrap_or_default())
                .join(&file),
            message: format!(
                "not found: [python] module `{}` must be a file in a folder of [python] path",
                settings.module
            ),
        })?;
    let text = std::fs::read_to_string(&module).map_err(io_error(&module))?;
    let world = world(project, &text, |l| assigns(l, "Turns"));
    let mut cmd = Command::new(&tool);
    cmd.current_dir(dir).args([
        "-q",
        "-d",
        "wit",
        "-w",
        &world,
        "componentize",
        &settings.module,
    ]);
    for p in &settings.path {
        cmd.arg("-p").arg(p);
    }
    cmd.arg("-o").arg(tmp);
    toolchain::run("componentize-py", &mut cmd, |_| Line::Forward)?;
    Ok(())
}

fn build_js(project: &Project, tmp: &Path) -> Result<(), BuildError> {
    let dir = &project.dir;
    find_program("node", &[]).ok_or_else(|| ToolError::missing("node", " (looked on PATH)"))?;
    let tool = find_tool(
        "componentize-js",
        "WASMRTC_COMPONENTIZE_JS",
        dir.join("node_modules").join(".bin"),
    )?;
    if let Some(want) = toolchain::npm_pin("@bytecodealliance/componentize-js") {
        toolchain::warn_unless_version("componentize-js", &tool, want);
    }
    let source = dir.join(&project.js.source);
    let text = std::fs::read_to_string(&source).map_err(|e| BuildError::Files {
        path: source.clone(),
        message: format!("{e} ([js] source)"),
    })?;
    let world = world(project, &text, |l| {
        l.strip_prefix("export")
            .map(str::trim_start)
            .and_then(|l| l.strip_prefix("const"))
            .map(str::trim_start)
            .is_some_and(|l| assigns(l, "turns"))
    });
    // componentize-js resolves imports only inside the current folder: run it in the project.
    let mut cmd = Command::new(&tool);
    cmd.current_dir(dir)
        .arg(&project.js.source)
        .args(["--wit", "wit", "--world-name", &world, "--out"])
        .arg(tmp)
        // The host links WASI 0.2 without wasi:http; keep stdio, random and clocks.
        .args(["--disable", "http", "fetch-event"]);
    toolchain::run("componentize-js", &mut cmd, |_| Line::Forward)?;
    Ok(())
}

/// The WASI preview1 reactor adapter of wasmtime 48 (what `examples-guests/c/tools.env`
/// pins as `ADAPTER_VERSION`), for `wasm-tools component new --adapt`.
const PREVIEW1_ADAPTER: &[u8] =
    wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;

fn build_c(project: &Project, profile: Profile, tmp: &Path) -> Result<(), BuildError> {
    let dir = &project.dir;
    let p = pins();
    let extra: Vec<PathBuf> = env_path("WASMRTC_TOOLS_DIR")
        .map(|d| d.join("bin"))
        .into_iter()
        .collect();
    let tool = |name: &str| {
        find_program(name, &extra).ok_or_else(|| {
            ToolError::missing(name, " (looked on PATH and in $WASMRTC_TOOLS_DIR/bin)")
        })
    };
    let wit_bindgen = tool("wit-bindgen")?;
    let wasm_tools = tool("wasm-tools")?;
    let clang = match env_path("CC_WASM") {
        Some(cc) => cc,
        None => find_program("clang", &[])
            .ok_or_else(|| ToolError::missing("clang", " (looked in $CC_WASM and on PATH)"))?,
    };
    find_program("wasm-ld", &[])
        .ok_or_else(|| ToolError::missing("wasm-ld", " (lld's linker for wasm; looked on PATH)"))?;
    let sysroot = env_path("WASMRTC_WASI_SYSROOT").unwrap_or_else(|| PathBuf::from("/usr"));
    if !["wasm32-wasi", "wasm32-wasip1"]
        .iter()
        .any(|t| sysroot.join("lib").join(t).join("libc.a").is_file())
    {
        return Err(ToolError::missing(
            "wasi-libc",
            format!(
                " (no {}/lib/wasm32-wasi/libc.a; $WASMRTC_WASI_SYSROOT names another sysroot)",
                sysroot.display()
            ),
        )
        .into());
    }
    toolchain::warn_unless_version(
        "wit-bindgen",
        &wit_bindgen,
        &format!("wit-bindgen-cli {}", p.wit_bindgen),
    );
    toolchain::warn_unless_version(
        "wasm-tools",
        &wasm_tools,
        &format!("wasm-tools {}", p.wasm_tools),
    );
    let work = project.out_dir().join("c");
    let gen_dir = work.join("gen");
    let _ = std::fs::remove_dir_all(&gen_dir);
    std::fs::create_dir_all(&gen_dir).map_err(io_error(&gen_dir))?;
    let adapter = match env_path("WASMRTC_WASI_ADAPTER") {
        Some(path) if path.is_file() => path,
        Some(path) => {
            return Err(BuildError::Files {
                path,
                message: "not found ($WASMRTC_WASI_ADAPTER)".into(),
            });
        }
        None => {
            let path = work.join("wasi_snapshot_preview1.reactor.wasm");
            std::fs::write(&path, PREVIEW1_ADAPTER).map_err(io_error(&path))?;
            path
        }
    };
    let world = project
        .world
        .clone()
        .unwrap_or_else(|| "handler-component".into());
    let stem = world.replace('-', "_");

    let mut cmd = Command::new(&wit_bindgen);
    cmd.current_dir(dir)
        .args(["c", "--out-dir"])
        .arg(&gen_dir)
        .args(["--world", &world, "wit"]);
    toolchain::run("wit-bindgen", &mut cmd, |_| Line::Drop)?;

    let core = work.join(format!("{}.core.wasm", project.name));
    let mut cmd = Command::new(&clang);
    cmd.current_dir(dir)
        .arg("--target=wasm32-wasi")
        .arg(format!("--sysroot={}", sysroot.display()))
        // A reactor: no main(); the host calls the exports after _initialize.
        .arg("-mexec-model=reactor")
        .args(["-Wall", "-Wextra", "-Wno-unused-parameter"])
        .args(match profile {
            Profile::Release => &["-O2"][..],
            Profile::Debug => &["-O0", "-g"][..],
        })
        .arg("-I")
        .arg(&gen_dir)
        .args(&project.c.cflags)
        .args(&project.c.sources)
        .arg(gen_dir.join(format!("{stem}.c")))
        .arg(gen_dir.join(format!("{stem}_component_type.o")));
    if profile == Profile::Release {
        cmd.arg("-Wl,--strip-all");
    }
    cmd.arg("-lm").arg("-o").arg(&core);
    toolchain::run("clang", &mut cmd, |_| Line::Forward)?;

    let mut cmd = Command::new(&wasm_tools);
    cmd.args(["component", "new"])
        .arg(&core)
        .arg("--adapt")
        .arg(format!("wasi_snapshot_preview1={}", adapter.display()))
        .arg("-o")
        .arg(tmp);
    toolchain::run("wasm-tools", &mut cmd, |_| Line::Forward)?;
    let mut cmd = Command::new(&wasm_tools);
    cmd.arg("validate").arg(tmp);
    toolchain::run("wasm-tools", &mut cmd, |_| Line::Forward)?;
    Ok(())
}

/// A component's spec as `wasmrtc check --json` prints it: the spec, with
/// `turn_taking` when the handler takes turns and `outbound_import` when it imports
/// `wasi:http`.
pub fn spec_json(component: &HandlerComponent) -> serde_json::Result<serde_json::Value> {
    let mut spec = serde_json::to_value(component.spec())?;
    if let Some(map) = spec.as_object_mut() {
        if let Some(turns) = component.turn_taking() {
            map.insert("turn_taking".into(), serde_json::to_value(turns)?);
        }
        if let Some(import) = component.http_import() {
            map.insert("outbound_import".into(), import.into());
        }
    }
    Ok(spec)
}

/// A component's spec as `wasmrtc check` prints it: one fact per line.
pub fn spec_text(component: &HandlerComponent) -> String {
    let mut text = crate::runtime::spec::describe_text(component.spec());
    if let Some(turns) = component.turn_taking() {
        text.push_str(&crate::runtime::spec::turn_taking_text(turns));
        text.push('\n');
    }
    if let Some(import) = component.http_import() {
        text.push_str(&format!(
            "outbound: imports {import}; serve it from a configuration file whose \
             [stream.outbound] grants the hosts it calls\n"
        ));
    }
    text
}

/// Runs `wasmrtc build`.
pub async fn main(args: Args) -> anyhow::Result<ExitCode> {
    let profile = if args.debug {
        Profile::Debug
    } else {
        Profile::Release
    };
    let dir = args.dir.clone();
    // The toolchain blocks for seconds to minutes: off the runtime's workers.
    let built = tokio::task::spawn_blocking(move || {
        let project = Project::load(&dir)?;
        if project.manifest.is_none() {
            eprintln!(
                "wasmrtc: no {} in {}: building it as {} `{}`",
                super::project::MANIFEST,
                dir.display(),
                project.language.title(),
                project.name
            );
        }
        let out = build(&project, profile)?;
        Ok::<_, BuildError>((project, out))
    })
    .await?;
    let (project, out) = match built {
        Ok(built) => built,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(e.exit_code()));
        }
    };
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let built_line = format!("built {} ({size} bytes)", out.display());
    if args.json {
        eprintln!("{built_line}");
    } else {
        println!("{built_line}");
    }
    let runtime = Runtime::new(RuntimeConfig::default())?;
    match runtime.load_file(&project.name, &out).await {
        Ok(component) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&spec_json(&component)?)?);
            } else {
                print!("{}", spec_text(&component));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: rejected: {e}", out.display());
            eprintln!("error: the host refuses the component it built");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_detected_from_an_assignment() {
        assert!(assigns("Turns = export_turns(P)", "Turns"));
        assert!(assigns("Turns=x", "Turns"));
        assert!(!assigns("Turns == x", "Turns"));
        assert!(!assigns("TurnsX = 1", "Turns"));
    }
}
