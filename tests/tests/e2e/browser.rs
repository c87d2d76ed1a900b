//! The built-in web UI in a real browser: runs the Node suite in `tests/browser/`
//! (`node --test`, playwright-core driving Debian's headless Chromium with fake camera
//! and microphone), each test against its own `wasmrtc serve`.
//!
//! Needs Node, `/usr/bin/chromium` and `tests/browser/node_modules`: `scripts/setup.sh
//! --browser` installs them. Without them this test fails; it never skips.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the whole suite may take.
const SUITE_TIMEOUT: Duration = Duration::from_secs(600);

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What is missing to run the suite, if anything.
fn missing(suite: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        missing.push("Node.js (`node` on PATH)".to_string());
    }
    let chromium = chromium();
    if !chromium.exists() {
        missing.push(format!("Chromium ({})", chromium.display()));
    }
    let playwright = suite.join("node_modules").join("playwright-core");
    if !playwright.exists() {
        missing.push(format!("playwright-core ({})", playwright.display()));
    }
    missing
}

#[test]
fn browser_suite() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf();
    let suite = root.join("tests").join("browser");
    let missing = missing(&suite);
    assert!(
        missing.is_empty(),
        "the browser tests cannot run: missing {}. Run `scripts/setup.sh --browser` to install them.",
        missing.join(", ")
    );

    let bin = wasmrtc_tests::wasmrtc_bin();
    let guests = Path::new(wasmrtc_tests::guests::FLIP)
        .parent()
        .expect("guest directory")
        .to_path_buf();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&suite)
        .expect("read tests/browser")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".test.mjs"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.test.mjs in {}", suite.display());

    // Output goes to files: a pipe left unread could fill and stall node.
    let log_dir = root.join("tests").join("artifacts");
    std::fs::create_dir_all(&log_dir).expect("create tests/artifacts");
    let out_path = log_dir.join("browser-suite.log");
    let out = std::fs::File::create(&out_path).expect("create the log");
    let err = out.try_clone().expect("clone the log handle");
    let started = Instant::now();
    let mut child = Command::new("node")
        .args(["--test", "--test-concurrency=1"])
        .args(&files)
        .current_dir(&suite)
        .env("WASMRTC_BIN", &bin)
        .env("WASMRTC_GUESTS", &guests)
        .env("CHROMIUM_BIN", chromium())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group, so that a timeout ends the servers and browsers too.
        .process_group(0)
        .spawn()
        .expect("run node --test");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > SUITE_TIMEOUT {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", child.id())])
                .status();
            std::thread::sleep(Duration::from_secs(3));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!("{log}");
    println!(
        "browser suite: {:.1} s, screenshots in {}",
        started.elapsed().as_secs_f64(),
        log_dir.display()
    );
    match status {
        None => panic!("the browser suite took longer than {SUITE_TIMEOUT:?}"),
        Some(s) => assert!(
            s.success(),
            "the browser suite failed ({s}); its output is above"
        ),
    }
}
