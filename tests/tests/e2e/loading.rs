//! What the host refuses at load time, and why.

use wasmrtc::runtime::LoadError;
use wasmrtc_tests::{guests, test_runtime};

async fn load(bytes: Vec<u8>) -> LoadError {
    match test_runtime().load("bad", bytes).await {
        Ok(_) => panic!("a bad component was accepted"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_forbidden_import_is_named() {
    let bytes = std::fs::read(guests::HOSTILE_IMPORT).unwrap();
    let err = load(bytes).await;
    assert!(matches!(err, LoadError::ForbiddenImport(_)), "{err}");
    assert!(err.to_string().contains("fixture:evil/raw-socket"), "{err}");
}

#[tokio::test]
async fn a_core_module_is_not_a_component() {
    let module = wat::parse_str("(module (func (export \"f\")))").unwrap();
    let err = load(module).await;
    assert!(matches!(err, LoadError::CoreModule), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
}

#[tokio::test]
async fn garbage_and_truncated_files_are_refused() {
    let err = load(b"GIF89a this is not wasm at all".to_vec()).await;
    assert!(matches!(err, LoadError::NotWasm), "{err}");
    let err = load(Vec::new()).await;
    assert!(matches!(err, LoadError::NotWasm), "{err}");

    let mut bytes = std::fs::read(guests::FLIP).unwrap();
    bytes.truncate(bytes.len() / 2);
    let err = load(bytes).await;
    assert!(matches!(err, LoadError::Invalid(_)), "{err}");
}

#[tokio::test]
async fn a_spec_the_host_cannot_serve_is_refused_with_reasons() {
    let bytes = std::fs::read(guests::BAD_SPEC).unwrap();
    let err = load(bytes).await;
    let LoadError::Spec(problems) = &err else {
        panic!("{err}")
    };
    let text = problems.join("\n");
    assert!(text.contains("input-sample-rate 7"), "{text}");
    assert!(text.contains("slider min"), "{text}");
}

#[tokio::test]
async fn an_oversized_component_is_refused_before_compiling() {
    let rt = wasmrtc::runtime::Runtime::new(wasmrtc::runtime::RuntimeConfig {
        max_component_bytes: 1024,
        cache_dir: None,
        ..Default::default()
    })
    .unwrap();
    let bytes = std::fs::read(guests::FLIP).unwrap();
    let err = rt.load("big", bytes).await.err().expect("refused");
    assert!(
        matches!(err, LoadError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
}

#[test]
fn wasmrtc_check_prints_the_spec_or_the_reason() {
    let bin = wasmrtc_tests::wasmrtc_bin();
    let out = std::process::Command::new(&bin)
        .args(["check", guests::GAIN])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("modality: audio") && text.contains("mode: send-receive"),
        "{text}"
    );
    assert!(text.contains("input gain"), "{text}");

    let out = std::process::Command::new(&bin)
        .args(["check", guests::HOSTILE_IMPORT])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("rejected") && text.contains("fixture:evil/raw-socket"),
        "{text}"
    );
}
