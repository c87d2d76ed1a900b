//! Reaching the host from behind NAT: the STUN and TURN servers a real `wasmrtc
//! serve` hands its clients at `GET {prefix}/rtc_configuration`, the checks of its
//! `[ice]` settings, and the ICE outcomes it counts. (A browser connecting through a
//! real TURN relay is in `tests/browser/turn.test.mjs`.)

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use wasmrtc_tests::peer::{self, Media};
use wasmrtc_tests::{
    guests, metrics_text, metrics_until, scratch_dir, serve_config_output, start_host_with_config,
    wasmrtc_bin,
};

const SECRET: &str = "north-wind-7f3a";

/// `base64(HMAC-SHA1(secret, username))`, the TURN REST credential coturn expects.
pub(crate) fn expected_credential(secret: &str, username: &str) -> String {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("turn-secret"), format!("{SECRET}\n")).unwrap();
    let path = dir.join("wasmrtc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn rtc_configuration(base: &str, stream: &str) -> (Option<String>, Value) {
    let r = reqwest::get(format!("{base}/streams/{stream}/rtc_configuration"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cache = r
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string());
    (cache, r.json().await.unwrap())
}

#[tokio::test]
async fn rtc_configuration_mints_fresh_turn_credentials_and_never_the_secret() {
    let dir = scratch_dir("ice", "config");
    let config = write_config(
        &dir,
        &format!(
            r#"listen = "127.0.0.1:0"
[secrets]
turn = {{ file = "turn-secret" }}
[ice]
servers = [{{ urls = ["stun:stun.example.org:3478"] }}]
turn_urls = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"]
turn_secret = "turn"
turn_ttl = 600
[[stream]]
name = "echo"
component = "{echo}"
[[stream]]
name = "own"
component = "{echo}"
[stream.ice]
servers = [{{ urls = ["turn:relay.example.net:3478"], username = "static-user", credential = "static-pass" }}]
transport_policy = "relay"
"#,
            echo = guests::ECHO
        ),
    );
    let host = start_host_with_config(&config);

    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let (cache, first) = rtc_configuration(&host.base, "echo").await;
    let (_, second) = rtc_configuration(&host.base, "echo").await;
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(
        cache.as_deref(),
        Some("no-store"),
        "credentials are per client"
    );
    for config in [&first, &second] {
        let text = config.to_string();
        assert!(!text.contains(SECRET), "the shared secret leaked: {text}");
        assert!(config.get("iceTransportPolicy").is_none(), "{config}");
        let servers = config["iceServers"].as_array().unwrap();
        assert_eq!(servers.len(), 2, "{config}");
        assert_eq!(
            servers[0],
            serde_json::json!({"urls": ["stun:stun.example.org:3478"]})
        );
        let turn = &servers[1];
        assert_eq!(
            turn["urls"],
            serde_json::json!([
                "turn:turn.example.org:3478?transport=udp",
                "turns:turn.example.org:5349?transport=tcp"
            ])
        );
        let username = turn["username"].as_str().unwrap();
        let expiry: u64 = username.split(':').next().unwrap().parse().unwrap();
        assert!(
            (before.as_secs() + 600..=after.as_secs() + 600).contains(&expiry),
            "expiry {expiry} is not 600 s after the request ({username})"
        );
        assert_eq!(
            turn["credential"].as_str().unwrap(),
            expected_credential(SECRET, username),
            "not the TURN REST credential of {username}"
        );
    }
    assert_ne!(
        first["iceServers"][1]["username"], second["iceServers"][1]["username"],
        "each client gets its own credentials"
    );

    // A stream with its own servers hands out those, with its policy.
    let (_, own) = rtc_configuration(&host.base, "own").await;
    assert_eq!(
        own,
        serde_json::json!({
            "iceServers": [{"urls": ["turn:relay.example.net:3478"], "username": "static-user", "credential": "static-pass"}],
            "iceTransportPolicy": "relay"
        })
    );

    let metrics = metrics_text(&host.base).await;
    assert!(
        metrics.contains("\nwasmrtc_turn_credentials_total 2\n"),
        "two minted, none for the stream with static credentials:\n{metrics}"
    );
    assert!(!metrics.contains(SECRET));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ice_settings_that_cannot_work_are_refused_at_start() {
    let dir = scratch_dir("ice", "refused");
    let stream = format!(
        "[[stream]]\nname = \"echo\"\ncomponent = \"{}\"\n",
        guests::ECHO
    );
    let secrets = "[secrets]\nturn = { file = \"turn-secret\" }\n";
    let cases = [
        (
            "[ice]\nturn_urls = [\"turn:t.example.org\"]\n".to_string(),
            "`turn_urls` needs `turn_secret`",
        ),
        (
            "[ice]\nturn_urls = [\"turn:t.example.org\"]\nturn_secret = \"missing\"\n".to_string(),
            "`missing` is not declared in [secrets]",
        ),
        (
            format!("{secrets}[ice]\nturn_urls = [\"turn:t.example.org\"]\nturn_secret = \"turn\"\nturn_ttl = 30\n"),
            "outside 60..=86400",
        ),
        (
            format!("{secrets}[ice]\nturn_urls = [\"stun:t.example.org\"]\nturn_secret = \"turn\"\n"),
            "is not a turn: or turns: URL",
        ),
        (
            "[ice]\nservers = [{ urls = [\"http://t.example.org\"] }]\n".to_string(),
            "is not a stun:, stuns:, turn: or turns: URL",
        ),
        (
            "[ice]\nservers = [{ urls = [\"turn:t.example.org\"] }]\n".to_string(),
            "needs both `username` and `credential`",
        ),
        (
            "[ice]\nservers = [{ urls = [\"stun:t.example.org\"] }]\ntransport_policy = \"relay\"\n"
                .to_string(),
            "needs a TURN server",
        ),
        (
            format!(
                "[ice]\nservers = [{}]\n",
                ["{ urls = [\"stun:t.example.org\"] }"; 17].join(", ")
            ),
            "17 ICE servers: at most 16",
        ),
        (
            format!(
                "advertise = [{}]\n",
                ["\"192.0.2.1\""; 9].join(", ")
            ),
            "9 addresses; give 1 to 8",
        ),
    ];
    std::fs::write(dir.join("turn-secret"), SECRET).unwrap();
    for (i, (table, expected)) in cases.iter().enumerate() {
        let path = dir.join(format!("case-{i}.toml"));
        std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\n{table}{stream}")).unwrap();
        let out = serve_config_output(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} was served:\n{table}");
        assert!(stderr.contains(expected), "case {i}: {stderr}");
        assert!(!stderr.contains(SECRET), "case {i} printed the secret");
    }
    // The same checks on the command line.
    let out = Command::new(wasmrtc_bin())
        .args([
            "serve",
            guests::ECHO,
            "--listen",
            "127.0.0.1:0",
            "--stun",
            "stun:t.example.org",
            "--ice-transport-policy",
            "relay",
        ])
        .output()
        .expect("run wasmrtc serve");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a TURN server"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The value of a `wasmrtc_ice_outcomes_total` row.
fn outcome(metrics: &str, outcome: &str) -> u64 {
    let row = format!("wasmrtc_ice_outcomes_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&row))
        .unwrap_or_else(|| panic!("no {row} in\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn connections_are_counted_by_the_route_they_took_and_by_timeouts() {
    let dir = scratch_dir("ice", "outcomes");
    let config = write_config(
        &dir,
        &format!(
            "listen = \"127.0.0.1:0\"\n[[stream]]\nname = \"echo\"\ncomponent = \"{}\"\nconnect_timeout = 1\n",
            guests::ECHO
        ),
    );
    let host = start_host_with_config(&config);
    let base = format!("{}/streams/echo", host.base);

    // The test peer offers its host candidate on 127.0.0.1: a `host` route.
    let client = peer::connect(&base, Media::SendRecv, Media::None).await;
    let metrics = metrics_until(&host.base, |m| outcome(m, "host") == 1).await;
    assert_eq!(outcome(&metrics, "host"), 1, "{metrics}");
    assert_eq!(outcome(&metrics, "relay"), 0);
    drop(client);

    // An offer whose client never sends a packet times out and is counted.
    let body =
        serde_json::json!({"sdp": peer::abandoned_offer(), "type": "offer", "webrtc_id": "silent"});
    let (status, answer) = peer::post_offer(&base, &body).await.unwrap();
    assert_eq!((status, answer["type"].as_str()), (200, Some("answer")));
    let metrics = metrics_until(&host.base, |m| outcome(m, "timeout") == 1).await;
    assert_eq!(outcome(&metrics, "timeout"), 1, "{metrics}");
    assert_eq!(outcome(&metrics, "host"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tenant's `[tenant.ice]` reaches its uploaded streams (minted from a host
/// secret it names), while the host's streams keep the host's `[ice]`.
#[test]
fn a_tenants_streams_get_the_tenants_ice_servers() {
    let dir = scratch_dir("ice", "tenant");
    let token = "tenant-ice-token";
    let hash = wasmrtc::tenancy::tenants::token_sha256(token);
    let config = write_config(
        &dir,
        &format!(
            r#"listen = "127.0.0.1:0"
data_dir = "data"
[secrets]
turn = {{ file = "turn-secret" }}
[ice]
servers = [{{ urls = ["stun:host-stun.example.org"] }}]
[[tenant]]
name = "acme"
token_sha256 = "{hash}"
[tenant.ice]
turn_urls = ["turn:acme-turn.example.org:3478"]
turn_secret = "turn"
turn_ttl = 120
[[stream]]
name = "echo"
component = "{echo}"
"#,
            echo = guests::ECHO
        ),
    );
    let host = start_host_with_config(&config);
    let out = Command::new(wasmrtc_bin())
        .args(["deploy", "--server", &host.base, "--token", token, "talk"])
        .arg(guests::ECHO)
        .output()
        .expect("run wasmrtc deploy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = reqwest::get(format!("{}/t/acme/talk/rtc_configuration", host.base))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let tenant: Value = r.json().await.unwrap();
        let servers = tenant["iceServers"].as_array().unwrap();
        assert_eq!(servers.len(), 1, "{tenant}");
        assert_eq!(
            servers[0]["urls"],
            serde_json::json!(["turn:acme-turn.example.org:3478"])
        );
        let username = servers[0]["username"].as_str().unwrap();
        assert_eq!(
            servers[0]["credential"].as_str().unwrap(),
            expected_credential(SECRET, username)
        );
        assert!(!tenant.to_string().contains(SECRET));

        let (_, own) = rtc_configuration(&host.base, "echo").await;
        assert_eq!(
            own,
            serde_json::json!({"iceServers": [{"urls": ["stun:host-stun.example.org"]}]})
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}
