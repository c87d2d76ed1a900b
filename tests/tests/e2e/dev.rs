//! `wasmrtc dev`: a project from the Rust audio template is served, its source edited
//! while a WebRTC client is connected, and the client hears the rebuilt handler on the
//! same connection; a build error is shown in `/dev/status` while the last good build
//! keeps serving.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::authoring::wasmrtc;
use serde_json::Value;
use wasmrtc_tests::peer::{self, Media};
use wasmrtc_tests::{scratch_dir, start_process};

const WAIT: Duration = Duration::from_secs(20);
/// A rebuild of the template (incremental, on a busy 2-core machine) stays well inside.
const REBUILD: Duration = Duration::from_secs(240);

fn ok(cmd: &mut Command) {
    let out = cmd.output().expect("run wasmrtc");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn status(base: &str) -> Value {
    reqwest::get(format!("{base}/dev/status"))
        .await
        .expect("GET /dev/status")
        .json()
        .await
        .expect("status JSON")
}

/// Poll `/dev/status` until `done` says so; the last status.
async fn status_until(base: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let s = status(base).await;
        if done(&s) {
            eprintln!(
                "{what}: after {:.1} s: {s}",
                started.elapsed().as_secs_f64()
            );
            return s;
        }
        assert!(started.elapsed() < REBUILD, "{what}: still {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_is_rebuilt_and_heard_on_the_open_connection_and_a_build_error_is_shown() {
    let parent = scratch_dir("dev", "rust-audio");
    ok(&mut wasmrtc(&parent, &["new", "rust-audio", "demo"]));
    let dir = parent.join("demo");
    // The first build outside `dev`, so that its start does not wait on a cold cargo.
    ok(&mut wasmrtc(&dir, &["build"]));
    let mut cmd = wasmrtc(&dir, &["dev", ".", "--listen", "127.0.0.1:0"]);
    cmd.stdin(std::process::Stdio::null());
    let host = start_process(cmd);
    let base = host.base.clone();
    assert_eq!(status(&base).await["generation"], 1);

    let client = peer::connect(&base, Media::SendRecv, Media::None).await;
    let before = client.level_after(0, WAIT).await;
    assert!(before > 2000.0, "the template echoes: level {before:.0}");

    // Halve the gain in the source: the same connection hears it.
    let source = dir.join("src/lib.rs");
    edit(&source, "* self.factor)", "* self.factor * 0.5)");
    let saved = Instant::now();
    status_until(&base, "rebuilt", |s| {
        s["generation"] == 2 && s["state"] == "ok"
    })
    .await;
    let mut ratio = 0.0;
    for _ in 0..10 {
        ratio = client.level_after(client.audio_len(), WAIT).await / before;
        if ratio < 0.6 {
            break;
        }
    }
    eprintln!(
        "edit heard on the open connection {:.1} s after the save (level x{ratio:.2})",
        saved.elapsed().as_secs_f64()
    );
    assert!(
        (0.4..0.6).contains(&ratio),
        "level ratio after the edit {ratio:.3}"
    );

    // A syntax error: the status shows the compiler's message with the file and line;
    // the connection keeps the last good build.
    edit(
        &source,
        "export_handler!(Gain);",
        "export_handler!(Gain);\nfn broken( {}",
    );
    let failed = status_until(&base, "build failed", |s| s["state"] == "failed").await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("src/lib.rs:"),
        "the error names the file and line: {error}"
    );
    assert_eq!(failed["generation"], 2);
    let from = client.audio_len();
    assert!(
        client.wait_audio(from + 48_000, WAIT).await,
        "audio still flows"
    );
    let still = client.level_after(from, WAIT).await / before;
    assert!(
        (0.4..0.6).contains(&still),
        "still the last good build: x{still:.2}"
    );

    // Fixed: served again.
    edit(&source, "\nfn broken( {}", "");
    status_until(&base, "fixed", |s| {
        s["generation"] == 3 && s["state"] == "ok"
    })
    .await;
    assert_eq!(status(&base).await["connections"], 1);
    drop(client);
    drop(host);
    let _ = std::fs::remove_dir_all(&parent);
}
