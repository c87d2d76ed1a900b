//! The load generator end to end: a few WebRTC audio echo streams for a few seconds
//! against a server it starts, reported as held with frames received. No timing is
//! asserted beyond the frame-rate threshold the tool itself applies.

use serde_json::Value;

#[test]
fn the_load_generator_holds_a_few_audio_streams() {
    let wasmrtc = wasmrtc_tests::wasmrtc_bin();
    let json = std::env::temp_dir().join(format!("wasmrtc-loadgen-{}.json", std::process::id()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wasmrtc-loadgen"))
        .arg("--wasmrtc")
        .arg(&wasmrtc)
        .args([
            "--mode",
            "audio",
            "--streams",
            "3",
            "--duration",
            "3",
            "--warmup",
            "1",
        ])
        // The machine may be busy: no pinning, and a lenient frame-rate threshold.
        .args([
            "--host-cpus",
            "0-63",
            "--client-cpu",
            "none",
            "--min-fps",
            "40",
            "--max-p50-ms",
            "1000",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run wasmrtc-loadgen");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wasmrtc-loadgen failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("the report is JSON");
    let _ = std::fs::remove_file(&json);
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
