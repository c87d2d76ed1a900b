//! The README's tutorial, run as it is written: every line of its `<!-- tutorial -->`
//! block in a fresh folder, with the `wasmrtc` just built first on `PATH`. The long-
//! running `wasmrtc dev` is started on a free port, checked and stopped; `deploy` goes
//! to a host with a tenant that this test starts.

use std::path::Path;

use super::authoring::repo;
use std::process::Command;

use wasmrtc_tests::wav::read_wav;
use wasmrtc_tests::{scratch_dir, start_host_with_config, start_process, wasmrtc_bin};

const TOKEN: &str = "tutorial-token";

/// The commands of the README's tutorial block, comments dropped.
fn tutorial_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let block = readme
        .split("<!-- tutorial -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- /tutorial -->").next())
        .expect("README.md has a <!-- tutorial --> block");
    block
        .lines()
        .filter(|l| !l.starts_with("```") && !l.trim().is_empty())
        // A comment starts after two spaces or more.
        .map(|l| l.split("  #").next().unwrap_or(l).trim().to_string())
        .collect()
}

/// `PATH` with the `wasmrtc` under test first.
fn path() -> std::ffi::OsString {
    let bin = wasmrtc_bin();
    let mut dirs = vec![bin.parent().unwrap().to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

fn shell(line: &str, dir: &Path, server: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", line])
        .current_dir(dir)
        .env("PATH", path())
        .env("WASMRTC_SERVER", server)
        .env("WASMRTC_TOKEN", TOKEN)
        // The template tests' shared Rust build folder.
        .env(
            "CARGO_TARGET_DIR",
            repo().join("target/authoring-templates"),
        );
    cmd
}

/// A host with tenant `you` (token [`TOKEN`]) for the deploy step.
fn tenant_host(dir: &Path) -> wasmrtc_tests::HostProcess {
    let hash = wasmrtc::tenancy::token_sha256(TOKEN);
    let config = dir.join("host.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n[[tenant]]\nname = \"you\"\ntoken_sha256 = \"{hash}\"\n"
        ),
    )
    .unwrap();
    start_host_with_config(&config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tutorial_runs_as_written() {
    let lines = tutorial_lines();
    assert!(lines.len() >= 6, "the tutorial block: {lines:?}");
    let root = scratch_dir("tutorial", "readme");
    let host = tenant_host(&root);
    let mut dir = root.clone();
    let mut ran = Vec::new();
    for line in &lines {
        eprintln!("$ {line}");
        if let Some(to) = line.strip_prefix("cd ") {
            dir = dir.join(to);
            assert!(dir.is_dir(), "cd {to}: no such folder");
        } else if line.starts_with("wasmrtc dev") {
            // Runs until stopped: on a free port, checked, then stopped.
            let mut cmd = Command::new("bash");
            cmd.args(["-c", &format!("exec {line}")])
                .current_dir(&dir)
                .env("PATH", path())
                .env("WASMRTC_LISTEN", "127.0.0.1:0")
                .env(
                    "CARGO_TARGET_DIR",
                    repo().join("target/authoring-templates"),
                );
            let dev = start_process(cmd);
            let page = reqwest::get(format!("{}/", dev.base)).await.unwrap();
            assert_eq!(page.status(), 200, "the page");
            let status: serde_json::Value = reqwest::get(format!("{}/dev/status", dev.base))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(status["state"], "ok", "{status}");
            drop(dev);
        } else {
            let out = shell(line, &dir, &host.base).output().expect("run bash");
            assert!(
                out.status.success(),
                "`{line}` failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ran.push(
            line.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    eprintln!("ran: {ran:?}");

    // What the steps made: the halved WAV and the deployed stream.
    let (_, _, input) = read_wav(&dir.join("in.wav"));
    let (_, _, output) = read_wav(&dir.join("out.wav"));
    let rms =
        |s: &[i16]| (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt();
    let ratio = rms(&output[4800..output.len() - 4800]) / rms(&input[4800..input.len() - 4800]);
    assert!(
        (0.45..0.55).contains(&ratio),
        "gain=0.5 halves the level: x{ratio:.3}"
    );
    let spec = reqwest::get(format!("{}/t/you/hello/spec", host.base))
        .await
        .unwrap();
    assert_eq!(spec.status(), 200, "the deployed stream is served");
    let spec: serde_json::Value = spec.json().await.unwrap();
    assert_eq!(spec["spec"]["inputs"][0]["name"], "gain", "{spec}");
    for step in [
        "wasmrtc new",
        "wasmrtc build",
        "./test.sh",
        "wasmrtc run",
        "wasmrtc dev",
        "wasmrtc deploy",
    ] {
        assert!(
            ran.iter().any(|r| r.starts_with(step)),
            "the tutorial has no `{step}` step"
        );
    }
    drop(host);
    let _ = std::fs::remove_dir_all(&root);
}
