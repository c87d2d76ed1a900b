//! Reply bodies shared by the routes: FastRTC's soft failures and FastAPI-style 422s.

// A route answers its error at once, so the size of `Response` in `Err` costs nothing.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `{"status":"failed","meta":{"error":CODE}}` with HTTP 200, as FastRTC answers.
pub(crate) fn failed(code: &str) -> Response {
    Json(json!({"status": "failed", "meta": {"error": code}})).into_response()
}

/// A failure FastRTC has no code for, with a readable message and a real status.
pub(crate) fn failed_with(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"status": "failed", "meta": {"error": code, "message": message}})),
    )
        .into_response()
}

/// `{"status":"success"}`.
pub(crate) fn success() -> Response {
    Json(json!({"status": "success"})).into_response()
}

/// HTTP 422 naming the field, in FastAPI's shape.
pub(crate) fn unprocessable(kind: &str, loc: &[&str], msg: &str) -> Response {
    let mut path = vec!["body"];
    path.extend_from_slice(loc);
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"detail": [{"type": kind, "loc": path, "msg": msg}]})),
    )
        .into_response()
}

/// Parse a JSON object body, or answer 422.
pub(crate) fn json_object(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, Response> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(unprocessable(
            "model_attributes_type",
            &[],
            "Input should be a JSON object",
        )),
        Err(e) => Err(unprocessable(
            "json_invalid",
            &[],
            &format!("JSON decode error: {e}"),
        )),
    }
}

/// A required string field, or 422 naming it.
pub(crate) fn required_str<'a>(
    body: &'a serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<&'a str, Response> {
    match body.get(field) {
        None | Some(serde_json::Value::Null) => {
            Err(unprocessable("missing", &[field], "Field required"))
        }
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(_) => Err(unprocessable(
            "string_type",
            &[field],
            "Input should be a valid string",
        )),
    }
}
