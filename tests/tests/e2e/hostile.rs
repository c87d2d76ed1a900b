//! Hostile handlers end with a typed error naming the cause; nothing else notices.

use std::time::Duration;

use wasmrtc::runtime::{AudioFrame, CallError, FailureCause, HandlerComponent, InstanceLimits};
use wasmrtc_tests::{guests, test_runtime};

fn frame() -> AudioFrame {
    AudioFrame {
        sample_rate: 48_000,
        channels: 1,
        samples: vec![100; 960],
    }
}

async fn load(path: &str, limits: InstanceLimits) -> HandlerComponent {
    test_runtime()
        .load_file("hostile", path)
        .await
        .unwrap()
        .with_limits(limits)
}

/// An echo instance answering `calls` frames in a task of its own, beside a hostile
/// one: the task returns how many it completed.
async fn benign_echo(calls: usize) -> tokio::task::JoinHandle<usize> {
    let echo = test_runtime()
        .load_file("echo", guests::ECHO)
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut inst = echo.instantiate("benign").await.unwrap();
        let mut done = 0;
        for _ in 0..calls {
            inst.on_audio(&frame()).await.unwrap();
            inst.next_audio().await.unwrap().expect("echoed");
            done += 1;
            tokio::task::yield_now().await;
        }
        done
    })
}

/// Resident set size of this process in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_stopped_by_its_cpu_budget_while_others_run() {
    let limits = InstanceLimits {
        cpu_per_call: Duration::from_millis(20),
        // Far beyond the CPU budget: if the budget failed, this would be the cause.
        wall_per_call: Duration::from_secs(30),
        ..Default::default()
    };
    let hostile = load(guests::HOSTILE_LOOP, limits).await;
    let benign = benign_echo(500).await;
    let mut looping = hostile.instantiate("loop").await.unwrap();
    let err = looping.on_audio(&frame()).await.unwrap_err();
    assert_eq!(err.cause(), FailureCause::CpuBudget, "{err}");
    assert!(err.to_string().contains("CPU budget"), "{err}");
    assert!(matches!(
        looping.on_audio(&frame()).await,
        Err(CallError::Dead)
    ));
    assert_eq!(
        benign.await.unwrap(),
        500,
        "the benign instance completed every call"
    );
}

#[tokio::test]
async fn a_memory_bomb_hits_its_cap_and_host_memory_stays_bounded() {
    let cap = 32 << 20;
    let limits = InstanceLimits {
        memory_bytes: cap,
        ..Default::default()
    };
    let bomb = load(guests::HOSTILE_MEMORY, limits).await;
    // Warm up once so the baseline includes the pool's bookkeeping.
    let _ = bomb
        .instantiate("warm")
        .await
        .unwrap()
        .on_audio(&frame())
        .await;
    let before = rss();
    for i in 0..8 {
        let mut inst = bomb.instantiate(&format!("bomb{i}")).await.unwrap();
        let err = inst.on_audio(&frame()).await.unwrap_err();
        assert_eq!(err.cause(), FailureCause::Memory, "{err}");
        assert!(err.to_string().contains("memory cap"), "{err}");
    }
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 2 * cap,
        "host RSS grew by {grown} bytes over 8 bombs of {cap}"
    );
}

#[tokio::test]
async fn a_trap_names_the_guest_panic() {
    let trap = load(guests::HOSTILE_TRAP, InstanceLimits::default()).await;
    let mut inst = trap.instantiate("t").await.unwrap();
    let err = inst.on_audio(&frame()).await.unwrap_err();
    assert_eq!(err.cause(), FailureCause::Trap);
    assert!(
        err.to_string().contains("refusing the first frame"),
        "{err}"
    );
    assert!(err.to_string().contains("on-audio"), "{err}");
}

#[tokio::test]
async fn an_output_flood_is_stopped_and_bounded() {
    let flood = load(guests::HOSTILE_FLOOD, InstanceLimits::default()).await;
    let before = rss();
    for i in 0..5 {
        let mut inst = flood.instantiate(&format!("f{i}")).await.unwrap();
        let err = inst.on_audio(&frame()).await.unwrap_err();
        assert_eq!(err.cause(), FailureCause::HostCallAbuse, "{err}");
        assert!(inst.take_events().len() <= InstanceLimits::default().events_per_call);
    }
    let grown = rss().saturating_sub(before);
    assert!(grown < 64 << 20, "host RSS grew by {grown} bytes");
}

#[tokio::test]
async fn a_stdout_flood_is_rate_limited_not_buffered() {
    // 200 000 lines per call take far more than the default CPU budget; give them room,
    // since what is tested here is that the lines are rate-limited, not buffered.
    let limits = InstanceLimits {
        cpu_per_call: Duration::from_secs(10),
        wall_per_call: Duration::from_secs(30),
        ..Default::default()
    };
    let flood = load(guests::HOSTILE_STDOUT, limits).await;
    let mut inst = flood.instantiate("s").await.unwrap();
    let before = rss();
    for _ in 0..5 {
        inst.on_audio(&frame())
            .await
            .expect("printing is allowed, only rate-limited");
    }
    let grown = rss().saturating_sub(before);
    assert!(grown < 32 << 20, "host RSS grew by {grown} bytes");
}

#[tokio::test]
async fn a_blocked_guest_hits_the_wall_clock_deadline() {
    let limits = InstanceLimits {
        wall_per_call: Duration::from_millis(300),
        ..Default::default()
    };
    let sleeper = load(guests::HOSTILE_SLEEP, limits).await;
    let mut inst = sleeper.instantiate("z").await.unwrap();
    let err = inst.on_audio(&frame()).await.unwrap_err();
    assert_eq!(err.cause(), FailureCause::WallClock, "{err}");
}

/// Audio the host would resample, mix or queue on the handler's behalf past its
/// bounds (a rate outside 8..48 kHz, over a second in one frame, more than two
/// channels) ends the instance as `host-call-abuse` before any of that work; a
/// valid frame from the same handler plays.
#[tokio::test]
async fn audio_past_the_output_bounds_is_refused_before_the_host_works_on_it() {
    let hostile = load(guests::HOSTILE_AUDIO, InstanceLimits::default()).await;
    for (mode, expected) in [
        (0.0, None),
        (1.0, Some("1000 Hz")),
        (2.0, Some("96000 samples in one audio frame")),
        (3.0, Some("9 channels")),
        (4.0, Some("1000000 Hz")),
    ] {
        let mut inst = hostile.instantiate(&format!("a{mode}")).await.unwrap();
        inst.set_inputs(&[wasmrtc::runtime::Value::Number(mode)])
            .await
            .unwrap();
        let r = inst.next_audio().await;
        match expected {
            None => assert_eq!(r.unwrap().map(|f| f.samples.len()), Some(960)),
            Some(text) => {
                let err = r.unwrap_err();
                assert_eq!(err.cause(), FailureCause::HostCallAbuse, "{err}");
                assert!(err.to_string().contains(text), "mode {mode}: {err}");
                assert!(matches!(inst.next_audio().await, Err(CallError::Dead)));
            }
        }
    }
}

/// `examples-guests/hostile-bulk` set to `mode` (see its doc), with `limits`.
async fn bulk(mode: f64, limits: InstanceLimits) -> wasmrtc::runtime::HandlerInstance {
    let bulk = load(guests::HOSTILE_BULK, limits).await;
    let mut inst = bulk.instantiate(&format!("bulk{mode}")).await.unwrap();
    inst.set_inputs(&[wasmrtc::runtime::Value::Number(mode)])
        .await
        .unwrap();
    inst
}

/// A `memory.fill` of 96 MiB (or `memory.copy` of 48 MiB) takes many epoch ticks but
/// reaches the next tick check only once: the CPU meter charges the time it took, so
/// the endless loop ends on its CPU budget, far before the wall clock (a meter adding
/// one tick per check would let it run 500 fills, past the 3 s deadline). A benign
/// instance keeps answering meanwhile, and the benign mode of the same handler passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_memory_work_is_charged_to_the_cpu_budget_not_left_to_the_wall_clock() {
    let limits = InstanceLimits {
        cpu_per_call: Duration::from_millis(500),
        wall_per_call: Duration::from_secs(3),
        ..Default::default()
    };
    let benign = benign_echo(200).await;
    let mut calm = bulk(0.0, limits.clone()).await;
    calm.on_audio(&frame()).await.expect("mode 0 does nothing");
    for (mode, what) in [(1.0, "memory.fill"), (2.0, "memory.copy")] {
        let mut inst = bulk(mode, limits.clone()).await;
        let err = inst.on_audio(&frame()).await.unwrap_err();
        assert_eq!(err.cause(), FailureCause::CpuBudget, "{what}: {err}");
        assert!(err.to_string().contains("CPU budget of 500ms"), "{err}");
    }
    benign
        .await
        .expect("the benign instance answered every call");
}

/// `get-random-bytes` past the per-call bound (64 KiB) ends the instance as
/// `host-call-abuse` before the host makes any; calls within it, made in an endless
/// loop, end on the CPU budget.
#[tokio::test]
async fn random_bytes_are_bounded_per_call_and_charged_to_the_cpu_budget() {
    let mut inst = bulk(3.0, InstanceLimits::default()).await;
    let before = rss();
    let err = inst.on_audio(&frame()).await.unwrap_err();
    assert_eq!(err.cause(), FailureCause::HostCallAbuse, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("get-random-bytes") && text.contains("33554432") && text.contains("65536"),
        "{text}"
    );
    let grown = rss().saturating_sub(before);
    assert!(grown < 16 << 20, "host RSS grew by {grown} bytes");

    let limits = InstanceLimits {
        wall_per_call: Duration::from_secs(30),
        ..Default::default()
    };
    let mut inst = bulk(4.0, limits).await;
    let err = inst.on_audio(&frame()).await.unwrap_err();
    assert_eq!(err.cause(), FailureCause::CpuBudget, "{err}");
}

/// Host resources the guest creates and never drops (pollables here) stop at the
/// per-instance cap: the instance ends as `host-call-abuse` naming it, and the host's
/// memory stays bounded. A new instance starts with an empty table.
#[tokio::test]
async fn leaked_host_resources_stop_at_the_cap() {
    let limits = InstanceLimits {
        cpu_per_call: Duration::from_secs(10),
        wall_per_call: Duration::from_secs(30),
        ..Default::default()
    };
    let before = rss();
    for i in 0..3 {
        let mut inst = bulk(5.0, limits.clone()).await;
        let err = inst.on_audio(&frame()).await.unwrap_err();
        assert_eq!(err.cause(), FailureCause::HostCallAbuse, "round {i}: {err}");
        assert!(
            err.to_string().contains("more than 10000 host resources"),
            "{err}"
        );
    }
    let grown = rss().saturating_sub(before);
    assert!(grown < 64 << 20, "host RSS grew by {grown} bytes");
}

/// Imports are checked on the component's bytes before anything is compiled: a
/// component whose core module would not even validate is refused for its import,
/// by name; an interface the host offers in another version is refused naming the
/// version it implements; a bare function import is refused too.
#[tokio::test]
async fn imports_outside_the_wasi_surface_are_refused_before_compiling() {
    let cases = [
        (
            "wasi:keyvalue/store@0.2.0-draft",
            "(instance)",
            "which wasmrtc does not offer",
        ),
        (
            "wasi:sockets/tcp@0.3.0",
            "(instance)",
            "this host implements wasi:sockets/tcp@0.2.x",
        ),
        ("get-secret", "(func)", "which wasmrtc does not offer"),
    ];
    for (import, kind, why) in cases {
        // The core module returns nothing from a function declared to return an i32:
        // compiling it would fail on that first.
        let text =
            format!(r#"(component (import "{import}" {kind}) (core module (func (result i32))))"#);
        let bytes = wat::parse_str(&text).unwrap();
        let err = test_runtime()
            .load("imports", bytes)
            .await
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(msg.contains(import) && msg.contains(why), "{import}: {msg}");
        assert!(
            matches!(
                err,
                wasmrtc::runtime::LoadError::ForbiddenImport(_)
                    | wasmrtc::runtime::LoadError::ImportVersion { .. }
            ),
            "{err}"
        );
    }
}
