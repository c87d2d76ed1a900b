//! The load generator end to end: a few WebRTC audio echo streams for a few seconds
//! against a server it starts, reported as held with frames received; a hot swap and
//! hostile neighbours under a small load against a two-tenant server it starts. No
//! timing is asserted beyond the frame-rate threshold the tool itself applies.

use serde_json::Value;

/// Run `wasmrtc-loadgen ARGS` unpinned (the machine may be busy) and return its JSON
/// report and its standard output.
fn run_loadgen(args: &[&str]) -> (Value, String) {
    let wasmrtc = wasmrtc_tests::wasmrtc_bin();
    let json = std::env::temp_dir().join(format!(
        "wasmrtc-loadgen-{}-{}.json",
        std::process::id(),
        wasmrtc_tests::peer::new_webrtc_id()
    ));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wasmrtc-loadgen"))
        .arg("--wasmrtc")
        .arg(&wasmrtc)
        .args(args)
        .args(["--host-cpus", "0-63", "--client-cpu", "none"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run wasmrtc-loadgen");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "wasmrtc-loadgen failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("the report is JSON");
    let _ = std::fs::remove_file(&json);
    eprintln!("{stdout}");
    (doc, stdout)
}

#[test]
fn the_load_generator_holds_a_few_audio_streams() {
    // A lenient frame-rate threshold: the machine may be busy.
    let (doc, stdout) = run_loadgen(&[
        "--mode",
        "audio",
        "--streams",
        "3",
        "--duration",
        "3",
        "--warmup",
        "1",
        "--min-fps",
        "40",
        "--max-p50-ms",
        "1000",
    ]);
    assert_eq!(doc["client"], "str0m", "{doc}");
    let step = &doc["results"]["steps"][0];
    assert_eq!(step["streams"], 3, "{doc}");
    assert_eq!(step["failed"], 0, "{doc}");
    assert!(
        step["fps"]["min"].as_f64().unwrap() > 0.0,
        "no frames came back: {doc}"
    );
    assert!(
        step["rtt_ms"]["samples"].as_u64().unwrap() > 0,
        "no burst came back: {doc}"
    );
    assert_eq!(step["held"], true, "{stdout}");
    assert_eq!(doc["results"]["max_streams_held"], 3, "{stdout}");
    assert!(stdout.contains("most streams held: 3"), "{stdout}");
}

#[test]
fn a_hot_swap_under_load_keeps_every_connection_on_its_version() {
    let (doc, stdout) = run_loadgen(&[
        "--mode",
        "ws",
        "--scenario",
        "hot-swap",
        "--streams",
        "4",
        "--duration",
        "3",
        "--warmup",
        "1",
    ]);
    let groups = doc["results"]["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 3, "{doc}");
    for g in groups {
        assert_eq!(g["failed"], 0, "{g}");
        assert!(g["bursts"].as_u64().unwrap() > 0, "no burst came back: {g}");
    }
    // Old connections stay on version 1 (factor 1), new ones get version 2 (factor 2),
    // connections after the rollback version 1 again.
    let (old, new, back) = (&groups[0], &groups[1], &groups[2]);
    assert_eq!(old["at_v2"], 0, "{old}");
    assert!(old["at_v1"].as_u64().unwrap() > 0, "{old}");
    assert_eq!(new["at_v1"], 0, "{new}");
    assert!(new["at_v2"].as_u64().unwrap() > 0, "{new}");
    assert_eq!(back["at_v2"], 0, "{back}");
    assert!(back["at_v1"].as_u64().unwrap() > 0, "{back}");
    assert_eq!(doc["results"]["ok"], true, "{stdout}");
}

#[test]
fn hostile_neighbours_are_killed_while_a_tenant_keeps_streaming() {
    let (doc, _) = run_loadgen(&[
        "--mode",
        "audio",
        "--scenario",
        "isolation",
        "--streams",
        "3",
        "--joins",
        "3",
        "--duration",
        "3",
        "--warmup",
        "1",
    ]);
    let r = &doc["results"];
    assert_eq!(r["tenant_a_failed"], 0, "{r}");
    assert_eq!(
        r["tenant_a_handler_failures"].as_array().map(Vec::len),
        Some(0),
        "{r}"
    );
    assert!(
        r["attacked"]["min_fps"].as_f64().unwrap() > 0.0,
        "a stream stopped: {r}"
    );
    let killed: u64 = r["killed_by_cause"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["count"].as_u64().unwrap())
        .sum();
    assert!(killed > 0, "no hostile instance was killed: {r}");
}
