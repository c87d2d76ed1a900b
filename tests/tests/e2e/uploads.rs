//! The host's bounds on what tenants make it do: compiling their uploads (one at a
//! time per tenant, within a time limit), keeping them (versions per stream, bytes
//! per tenant, removed files gone) and their share of the instance pool (a full pool
//! or share answers `503 host_full`, which never trips a stream's breaker).
//!
//! Each test runs an in-process host with tenants `a` and `b` on 127.0.0.1 and
//! speaks to it over HTTP and WebRTC, as a tenant's tools and its clients would.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wasmrtc::Transport;
use wasmrtc::runtime::{Runtime, RuntimeConfig};
use wasmrtc::tenancy::{Registry, SqliteStore, TenantConfig, Tenants};
use wasmrtc_tests::admin::{self, read, upload};
use wasmrtc_tests::guests;
use wasmrtc_tests::peer::{self, Media, PeerOptions, Rejected, TestPeer};

const TOKEN_A: &str = "token-a";
const TOKEN_B: &str = "token-b";

/// A host serving tenants `a` and `b` with `config` (the test cache unless it says otherwise).
struct Host {
    base: String,
    dir: PathBuf,
    runtime: Runtime,
    _registry: Registry,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn test_cache() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasmtime-cache")
}

async fn host(tag: &str, config: RuntimeConfig) -> Host {
    host_with(tag, config, |_| {}).await
}

/// [`host`], with tenant `a`'s quotas set by `tune`.
async fn host_with(tag: &str, config: RuntimeConfig, tune: impl FnOnce(&mut TenantConfig)) -> Host {
    let dir = wasmrtc_tests::scratch_dir("uploads", tag);
    let store = SqliteStore::open(&dir).expect("open the store");
    let transport =
        Transport::bind("127.0.0.1:0".parse().unwrap(), None).expect("bind the UDP socket");
    let runtime = Runtime::new(config).expect("runtime");
    let mut a = TenantConfig::new("a", TOKEN_A);
    a.max_connections = 100;
    tune(&mut a);
    let mut b = TenantConfig::new("b", TOKEN_B);
    b.max_connections = 100;
    let registry = Registry::open(
        runtime.clone(),
        transport,
        Tenants::new(vec![a, b]).unwrap(),
        Arc::new(store),
    )
    .await
    .expect("open the registry");
    let (addr, _server) = peer::serve_router(registry.router(&[])).await;
    Host {
        base: format!("http://{addr}"),
        dir,
        runtime,
        _registry: registry,
    }
}

/// (status, JSON reply) of an admin call.
async fn admin(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, reply, _) = admin::call(base, Some(token), method, path, body).await;
    (status, reply)
}

async fn create(base: &str, token: &str, stream: &str) {
    let (status, reply) = admin(
        base,
        token,
        "POST",
        "/api/streams",
        Some(json!({"name": stream})),
    )
    .await;
    assert_eq!(status, 201, "create {stream}: {reply}");
}

/// A WebRTC client of `url`, or the host's refusal.
async fn offer(url: &str) -> Result<TestPeer, Rejected> {
    let options = PeerOptions {
        connect_timeout: Duration::from_secs(20),
        ..PeerOptions::new(Media::SendRecv, Media::None)
    };
    match TestPeer::connect(url, options).await {
        Ok(p) => Ok(p),
        Err(e) => Err(e
            .downcast::<Rejected>()
            .unwrap_or_else(|e| panic!("{url}: not a refusal: {e:#}"))),
    }
}

/// `meta.error` of a refusal.
fn code(r: &Rejected) -> &str {
    r.body
        .pointer("/meta/error")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `n` offers to `url`, each refused `503 host_full` with a message naming `naming`.
async fn refused_host_full(url: &str, n: usize, naming: &str) {
    for _ in 0..n {
        let r = offer(url)
            .await
            .err()
            .unwrap_or_else(|| panic!("{url}: connected, expected host_full ({naming})"));
        assert_eq!((r.status, code(&r)), (503, "host_full"), "{}", r.body);
        let message = r
            .body
            .pointer("/meta/message")
            .and_then(Value::as_str)
            .unwrap_or("");
        assert!(message.contains(naming), "{message}");
    }
}

/// Offers until one connects (instances of closed connections come back once the
/// host has noticed), at most 30 tries.
async fn offer_until_connected(url: &str) -> TestPeer {
    for _ in 0..30 {
        match offer(url).await {
            Ok(p) => return p,
            Err(r) => {
                assert_eq!((r.status, code(&r)), (503, "host_full"), "{}", r.body);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    panic!("{url}: no instance came back");
}

/// A pool of 4 instances, 2 per tenant: a tenant's clients past its share, and any
/// client once the pool is full (here held by another tenant and the host's own
/// stream), are answered `503 host_full`, however many times; the stream's breaker
/// (5 failures open it) never opens, so each stream serves as soon as room is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_or_share_answers_host_full_and_never_trips_the_breaker() {
    let host = host(
        "pool",
        RuntimeConfig {
            max_instances: 4,
            tenant_pool_percent: 50,
            cache_dir: Some(test_cache()),
            ..RuntimeConfig::default()
        },
    )
    .await;
    let base = &host.base;
    for token in [TOKEN_A, TOKEN_B] {
        create(base, token, "echo").await;
        let (status, reply) = upload(base, token, "echo", read(guests::ECHO)).await;
        assert_eq!(status, 201, "{reply}");
    }
    let (a, b) = (format!("{base}/t/a/echo"), format!("{base}/t/b/echo"));

    // Tenant a's clients: two connect, the rest find its share taken.
    let mut a_peers = vec![offer(&a).await.unwrap(), offer(&a).await.unwrap()];
    refused_host_full(&a, 8, "tenant `a`").await;
    // Tenant b still gets its share.
    let b_peer = offer(&b).await.expect("b has its own share");

    // a's clients leave; the host's own stream and b fill the pool.
    for p in &mut a_peers {
        p.close().await;
    }
    drop(a_peers);
    let a_peer = offer_until_connected(&a).await;
    let operator = host
        .runtime
        .load("operator", read(guests::ECHO))
        .await
        .unwrap();
    let held = [
        operator
            .instantiate("operator-1")
            .await
            .expect("room for the host's stream"),
        operator
            .instantiate("operator-2")
            .await
            .expect("room for the host's stream"),
    ];
    refused_host_full(&b, 8, "all 4 instances").await;
    drop(held);
    let b_second = offer(&b)
        .await
        .expect("b serves again: its breaker is closed");
    assert!(b_second.wait_channel_open(Duration::from_secs(20)).await);
    drop((a_peer, b_peer, b_second));
}

/// A tenant's uploads while one of its own compiles are answered `429
/// upload_in_progress` at once (that one still lands); another tenant compiles
/// meanwhile. An upload compiling past the limit is answered `422 compile_timeout`
/// and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_compile_one_at_a_time_per_tenant_within_a_time_limit() {
    // No code cache: the JavaScript handler (12 MB, SpiderMonkey inside) takes seconds
    // to compile, the Rust echo a fraction of that.
    let js = read(&crate::languages::built("js-gain"));
    let busy = host(
        "compile",
        RuntimeConfig {
            cache_dir: None,
            ..RuntimeConfig::default()
        },
    )
    .await;
    let base = busy.base.clone();
    for (token, stream) in [(TOKEN_A, "one"), (TOKEN_A, "two"), (TOKEN_B, "other")] {
        create(&base, token, stream).await;
    }
    // Three uploads of a at once: one compiles, the others are refused meanwhile.
    let uploads: Vec<_> = ["one", "one", "two"]
        .into_iter()
        .map(|stream| {
            let (base, js) = (base.clone(), js.clone());
            tokio::spawn(async move { upload(&base, TOKEN_A, stream, js).await })
        })
        .collect();
    let (status, reply) = upload(&base, TOKEN_B, "other", read(guests::ECHO)).await;
    assert_eq!(status, 201, "b compiles while a does: {reply}");
    let mut landed = 0;
    let mut refused = Vec::new();
    for u in uploads {
        match u.await.unwrap() {
            (201, _) => landed += 1,
            (429, reply) => refused.push(reply),
            (status, reply) => panic!("{status}: {reply}"),
        }
    }
    assert!(landed >= 1, "no upload of a landed");
    assert!(
        !refused.is_empty(),
        "no upload of a was refused while another compiled"
    );
    for reply in &refused {
        assert_eq!(reply["error"], "upload_in_progress", "{reply}");
        assert!(
            reply["message"]
                .as_str()
                .unwrap_or("")
                .contains("tenant `a`"),
            "{reply}"
        );
    }

    // A host whose limit the JavaScript handler's compilation overruns.
    let strict = host(
        "timeout",
        RuntimeConfig {
            cache_dir: None,
            compile_timeout: Duration::from_millis(300),
            ..RuntimeConfig::default()
        },
    )
    .await;
    create(&strict.base, TOKEN_A, "slow").await;
    let (status, reply) = upload(&strict.base, TOKEN_A, "slow", js).await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"], "compile_timeout", "{reply}");
    assert!(
        reply["message"].as_str().unwrap_or("").contains("300ms"),
        "{reply}"
    );
    let (status, versions) = admin(&strict.base, TOKEN_A, "GET", "/api/streams/slow", None).await;
    assert_eq!(status, 200, "{versions}");
    assert!(
        versions["active_version"].is_null(),
        "nothing was stored: {versions}"
    );
}

/// `component` with a custom section named `tag` of `pad` bytes appended: the same
/// handler, other bytes (a custom section may end a component binary).
fn variant(component: &[u8], tag: &str, pad: usize) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut contents = Vec::new();
    leb128(tag.len(), &mut contents);
    contents.extend(tag.as_bytes());
    contents.resize(contents.len() + pad, 0x5a);
    let mut out = component.to_vec();
    out.push(0);
    leb128(contents.len(), &mut out);
    out.extend(contents);
    out
}

/// The component files in the host's store.
fn stored_files(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir.join("components"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".wasm")
                .to_string()
        })
        .collect()
}

/// What a tenant keeps is bounded: with `max_versions = 3` its sixth upload to a
/// stream has removed the three oldest versions (named in `removed_versions`), their
/// files are gone from the data directory and they cannot be activated; with
/// `max_stored_mb = 1` an upload that would take its components past 1 MiB is
/// refused `403 quota_exceeded` and stores nothing, one that fits is taken; a deleted
/// stream's files go at once. Tenant `b` uploads meanwhile, unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_stored_versions_and_bytes_are_bounded_and_removed_files_go() {
    const KIB: usize = 1024;
    let host = host_with(
        "retention",
        RuntimeConfig {
            cache_dir: Some(test_cache()),
            ..RuntimeConfig::default()
        },
        |a| {
            a.max_versions = 3;
            a.max_stored_mb = 1;
            a.max_component_mb = 1;
        },
    )
    .await;
    let base = &host.base;
    let echo = read(wasmrtc_tests::guests::ECHO);
    create(base, TOKEN_A, "kept").await;
    create(base, TOKEN_A, "big").await;
    create(base, TOKEN_B, "other").await;

    // Six versions of ~150 KiB, each active at once: the stream keeps three.
    let mut shas = Vec::new();
    let mut removed = Vec::new();
    for v in 1..=6 {
        let (status, reply) = upload(
            base,
            TOKEN_A,
            "kept",
            variant(&echo, &format!("v{v}"), 96 * KIB),
        )
        .await;
        assert_eq!(status, 201, "upload v{v}: {reply}");
        assert_eq!(reply["version"], v);
        shas.push(reply["sha256"].as_str().unwrap().to_string());
        removed.extend(
            reply["removed_versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap()),
        );
    }
    assert_eq!(removed, [1, 2, 3], "the oldest versions go, one per upload");
    let (_, versions) = admin(base, TOKEN_A, "GET", "/api/streams/kept/versions", None).await;
    let kept: Vec<u64> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(kept, [4, 5, 6]);
    let files = stored_files(&host.dir);
    for (i, sha) in shas.iter().enumerate() {
        assert_eq!(files.contains(sha), i >= 3, "v{}'s file: {files:?}", i + 1);
    }
    // A removed version cannot be activated; a kept one can.
    for (version, expected) in [(2, 404), (4, 200)] {
        let (status, reply) = admin(
            base,
            TOKEN_A,
            "POST",
            "/api/streams/kept/activate",
            Some(json!({ "version": version })),
        )
        .await;
        assert_eq!(status, expected, "activate v{version}: {reply}");
    }

    // Tenant a stores 3 x ~150 KiB. One more of 600 KiB would pass its 1 MiB.
    let before = stored_files(&host.dir);
    let (status, reply) = upload(base, TOKEN_A, "big", variant(&echo, "big", 600 * KIB)).await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(reply["error"], "quota_exceeded", "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("max_stored_mb"),
        "{reply}"
    );
    assert_eq!(
        stored_files(&host.dir),
        before,
        "a refused upload left a file"
    );
    let (_, versions) = admin(base, TOKEN_A, "GET", "/api/streams/big/versions", None).await;
    assert_eq!(versions["versions"], json!([]), "{versions}");
    // Tenant b is not charged for a's components.
    let (status, reply) = upload(base, TOKEN_B, "other", variant(&echo, "b", 600 * KIB)).await;
    assert_eq!(status, 201, "{reply}");
    // One that fits is taken.
    let (status, reply) = upload(base, TOKEN_A, "big", variant(&echo, "fits", 400 * KIB)).await;
    assert_eq!(status, 201, "{reply}");

    // A deleted stream's files go with it.
    let (status, _) = admin(base, TOKEN_A, "DELETE", "/api/streams/kept", None).await;
    assert_eq!(status, 204);
    let files = stored_files(&host.dir);
    for sha in &shas {
        assert!(
            !files.contains(sha),
            "{sha} stayed after its stream was deleted"
        );
    }
    assert_eq!(files.len(), 2, "b's and big's components stay: {files:?}");
}
