//! `wasmrtc dev [DIR]`: build the project, serve it with the built-in page, and on
//! every save rebuild it and swap it into the running stream.
//!
//! The stream runs with live reload on ([`Stream::set_live_reload`]): an open
//! connection moves to the rebuilt handler at its next call (a fresh instance given the
//! connection's inputs) when the media, inputs and outputs keep their shape, so a
//! change is heard or seen without reconnecting. `GET /dev/status` tells the page what
//! happened: it shows a failed build's errors over the page (the last good build keeps
//! serving) and reloads itself when the handler's shape changed.
//!
//! The watcher polls the project's files (modification time and size) every
//! [`POLL`], skipping build outputs and package folders ([`SKIPPED`]) and at most
//! [`MAX_WATCHED`] files; a change rebuilds once the files have been quiet for
//! [`QUIET`]. Builds and file walks run on blocking threads, never on the runtime's
//! workers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use axum::Router;
use serde::Serialize;

use super::build::{self, Profile};
use super::project::Project;
use super::toolchain::ToolError;
use crate::runtime::{HandlerComponent, Runtime, RuntimeConfig};
use crate::{Stream, StreamConfig, Transport};

/// How often the project's files are looked at.
pub const POLL: Duration = Duration::from_millis(250);

/// How long the files must stay unchanged before a rebuild starts (editors write a
/// file in several steps).
pub const QUIET: Duration = Duration::from_millis(200);

/// Most files watched; past it the rest are ignored and a warning says so.
pub const MAX_WATCHED: usize = 5000;

/// Folders never watched: build outputs, package caches, version control.
pub const SKIPPED: &[&str] = &[
    "target",
    "node_modules",
    "__pycache__",
    ".venv",
    "venv",
    ".git",
    ".tools",
];

/// The command line of `wasmrtc dev`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The project folder (with `wasmrtc.toml`).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// HTTP address; WebRTC media uses the same IP and port over UDP (and ICE-TCP).
    #[arg(long, env = "WASMRTC_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Build without optimisation (faster builds, slower handler).
    #[arg(long)]
    pub debug: bool,
}

/// What the last build did, as `GET /dev/status` shows it (the stream adds
/// `connections`, counted when asked: [`Stream::dev_status`]).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Builds served so far (1 after the first); the page compares it.
    pub generation: u64,
    /// `"ok"`, `"building"` or `"failed"`.
    pub state: &'static str,
    /// The failed build's output (the toolchain's diagnostics), when `state` is `"failed"`.
    pub error: Option<String>,
    /// Seconds the last build (successful or not) took.
    pub build_seconds: f64,
}

/// A running `wasmrtc dev`: what `main` serves until it is stopped.
pub struct Dev {
    /// The HTTP listener.
    pub http: tokio::net::TcpListener,
    /// The page, FastRTC's routes at `/` and `/dev/status`.
    pub app: Router,
    /// The media transport (its ICE-TCP side and lifecycle are served with `app`).
    pub transport: Transport,
}

type Shared = Arc<Mutex<Status>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Status> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds the project (waiting, while it fails, for a save that fixes it), binds the
/// listener and starts the watcher. The caller serves [`Dev::app`].
pub async fn start(args: Args) -> anyhow::Result<Dev> {
    let dir = args.dir.clone();
    let project = tokio::task::spawn_blocking(move || Project::load(&dir))
        .await?
        .map_err(anyhow::Error::msg)?;
    let profile = if args.debug {
        Profile::Debug
    } else {
        Profile::Release
    };
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let http = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = http.local_addr()?;
    let transport = Transport::bind(addr, None)
        .with_context(|| format!("cannot bind UDP {addr}"))?
        .with_ice_tcp();

    let mut files = snapshot(&project.dir).await;
    let component = loop {
        let started = Instant::now();
        match build_and_load(&runtime, &project, profile).await {
            Ok(c) => {
                eprintln!(
                    "wasmrtc dev: built {} in {:.1} s",
                    project.name,
                    started.elapsed().as_secs_f64()
                );
                break c;
            }
            Err(e) => {
                eprintln!(
                    "{e}\nwasmrtc dev: waiting for a change to {}",
                    project.dir.display()
                );
                files = next_change(&project.dir, files).await;
            }
        }
    };
    let stream = Stream::new(component, transport.clone(), StreamConfig::default());
    stream.set_live_reload(true);
    let status: Shared = Arc::new(Mutex::new(Status {
        generation: 1,
        state: "ok",
        error: None,
        build_seconds: 0.0,
    }));
    stream.set_dev_status(serde_json::to_value(&*lock(&status)).unwrap_or_default());
    let app = crate::http::app(&[(String::new(), stream.clone())]);
    eprintln!(
        "wasmrtc dev: {}: serving on http://{addr} (watching {}; Ctrl-C stops)",
        project.name,
        project.dir.display()
    );
    tokio::spawn(watch(runtime, project, profile, stream, status, files));
    Ok(Dev {
        http,
        app,
        transport,
    })
}

/// Rebuild on every change and swap the result in; a failed build leaves the last
/// good one serving and its errors in the status.
async fn watch(
    runtime: Runtime,
    project: Project,
    profile: Profile,
    stream: Stream,
    status: Shared,
    mut files: Files,
) {
    loop {
        files = next_change(&project.dir, files).await;
        eprintln!("wasmrtc dev: change seen; rebuilding {}", project.name);
        lock(&status).state = "building";
        stream.set_dev_status(serde_json::to_value(&*lock(&status)).unwrap_or_default());
        let started = Instant::now();
        let built = build_and_load(&runtime, &project, profile).await;
        let seconds = started.elapsed().as_secs_f64();
        let mut s = lock(&status);
        s.build_seconds = seconds;
        let publish =
            |s: &Status| stream.set_dev_status(serde_json::to_value(s).unwrap_or_default());
        match built {
            Ok(component) => {
                stream.replace_component(component);
                s.generation += 1;
                s.state = "ok";
                s.error = None;
                eprintln!(
                    "wasmrtc dev: rebuilt in {seconds:.1} s; swapped in ({} open connection(s) move to it)",
                    stream.active_connections()
                );
            }
            Err(e) => {
                eprintln!("{e}\nwasmrtc dev: build failed; still serving the last good build");
                s.state = "failed";
                s.error = Some(e);
            }
        }
        publish(&s);
    }
}

/// Build the project on a blocking thread and load the component; the error is the
/// text to show (the toolchain's diagnostics, or why the host refuses the component).
async fn build_and_load(
    runtime: &Runtime,
    project: &Project,
    profile: Profile,
) -> Result<HandlerComponent, String> {
    let p = project.clone();
    let built = tokio::task::spawn_blocking(move || build::build(&p, profile))
        .await
        .map_err(|e| format!("the build task failed: {e}"))?;
    let wasm = built.map_err(|e| match &e {
        build::BuildError::Tool(ToolError::Failed { diagnostics, .. }) => {
            format!("{}\nerror: {e}", diagnostics.trim_end())
        }
        _ => format!("error: {e}"),
    })?;
    runtime
        .load_file(&project.name, &wasm)
        .await
        .map_err(|e| format!("{}: rejected: {e}", wasm.display()))
}

/// Modification time and size of each watched file.
type Files = BTreeMap<PathBuf, (Option<SystemTime>, u64)>;

/// Wait until the files differ from `seen` and then stay unchanged for [`QUIET`];
/// returns them as they are then.
async fn next_change(dir: &Path, seen: Files) -> Files {
    loop {
        tokio::time::sleep(POLL).await;
        let now = snapshot(dir).await;
        if now == seen {
            continue;
        }
        let mut last = now;
        loop {
            tokio::time::sleep(QUIET).await;
            let again = snapshot(dir).await;
            if again == last {
                return again;
            }
            last = again;
        }
    }
}

/// The project's files now, walked on a blocking thread.
async fn snapshot(dir: &Path) -> Files {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || walk(&dir))
        .await
        .unwrap_or_default()
}

fn walk(root: &Path) -> Files {
    let mut files = Files::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // `file_type` does not follow symbolic links: a link is not walked into.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name();
            if kind.is_dir() {
                if !SKIPPED.iter().any(|s| name == *s) {
                    pending.push(path);
                }
            } else if kind.is_file() {
                if files.len() == MAX_WATCHED {
                    static WARNED: std::sync::Once = std::sync::Once::new();
                    WARNED.call_once(|| {
                        eprintln!(
                            "wasmrtc dev: more than {MAX_WATCHED} files under {}; the rest are not watched",
                            root.display()
                        );
                    });
                    return files;
                }
                let meta = entry.metadata().ok();
                let stamp = (
                    meta.as_ref().and_then(|m| m.modified().ok()),
                    meta.map_or(0, |m| m.len()),
                );
                files.insert(path, stamp);
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_sees_sources_and_skips_build_outputs() {
        let dir = std::env::temp_dir().join(format!("wasmrtc-dev-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join("target/wasmrtc")).unwrap();
        std::fs::create_dir_all(dir.join("node_modules/x")).unwrap();
        std::fs::write(dir.join("src/lib.rs"), "fn main() {}").unwrap();
        std::fs::write(dir.join("target/wasmrtc/x.wasm"), "x").unwrap();
        std::fs::write(dir.join("node_modules/x/i.js"), "x").unwrap();
        let files = walk(&dir);
        let names: Vec<_> = files
            .keys()
            .map(|p| p.strip_prefix(&dir).unwrap().to_owned())
            .collect();
        assert_eq!(names, vec![PathBuf::from("src/lib.rs")]);
        std::fs::write(dir.join("src/lib.rs"), "fn main() { let _ = 1; }").unwrap();
        assert_ne!(walk(&dir), files, "a change in size is seen");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
