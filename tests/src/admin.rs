//! The admin API (`/api/...`) as the tests call it: one client, one call, one upload.

use std::time::Duration;

use serde_json::Value;

/// An HTTP client for admin calls (long timeout: uploads compile before replying).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("HTTP client")
}

/// `method {base}{path}` with an optional bearer `token` and JSON `body`: the status,
/// the JSON reply (`Value::Null` when it is not JSON) and the raw text.
pub async fn call(
    base: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, String) {
    let mut req = http().request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let reply = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = reply.status().as_u16();
    let text = reply.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

/// Upload `bytes` as a new version of `stream`: the status and the JSON reply.
pub async fn upload(base: &str, token: &str, stream: &str, bytes: Vec<u8>) -> (u16, Value) {
    let reply = http()
        .post(format!("{base}/api/streams/{stream}/versions"))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload {stream}: {e}"));
    let status = reply.status().as_u16();
    let text = reply.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The bytes of the file at `path` (a built component), or a panic naming it.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
