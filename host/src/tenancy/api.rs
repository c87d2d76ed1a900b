//! The admin API under `/api`: JSON, `Authorization: Bearer <token>`. A tenant sees and
//! touches only its own streams; another tenant's stream is 404, a missing or wrong
//! token 401. Errors are `{"error": code, "message": why}`.
//!
//! | route | does |
//! | --- | --- |
//! | `POST /api/streams` `{name, concurrency_limit?, time_limit?, memory_mb?, cpu_ms_per_call?}` | create a stream (201) |
//! | `GET /api/streams` | the tenant's quotas and streams |
//! | `GET /api/streams/{name}` | one stream: active version, versions, limits, connections |
//! | `DELETE /api/streams/{name}` | delete it, closing its connections (204) |
//! | `POST /api/streams/{name}/versions[?activate=false]` body `application/wasm` | upload a version (201), active at once unless `activate=false` |
//! | `GET /api/streams/{name}/versions` | its versions |
//! | `PUT /api/streams/{name}/limits` `{concurrency_limit?, …}` | replace its limits |
//! | `PUT /api/streams/{name}/ice` `{servers?, turn_urls?, turn_secret?, turn_ttl?, transport_policy?}` | set its own STUN/TURN servers ([`super::ice`]) |
//! | `GET /api/streams/{name}/ice` | them, without the shared secret (`null`: none set) |
//! | `DELETE /api/streams/{name}/ice` | back to the tenant's and host's servers |
//! | `POST /api/streams/{name}/activate` `{version}` | make a version active |
//! | `POST /api/streams/{name}/rollback` | undo the last activation |
//! | `GET /api/streams/{name}/connections` | live connections by version |
//! | `PUT /api/streams/{name}/outbound` `{allowed_hosts, variables?}` | set its outbound grant ([`super::outbound`]), within the tenant's `outbound_ceiling` |
//! | `GET /api/streams/{name}/outbound` | the grant as set (`null`: none) |
//! | `DELETE /api/streams/{name}/outbound` | remove it (409 while the active version imports `wasi:http`) |
//! | `PUT /api/secrets/{name}` `{value}` | set a secret its grants may use as `{{secret.NAME}}` ([`super::secrets`]): 201 new, 200 replaced |
//! | `GET /api/secrets` | the tenant's secrets by name (never a value) and the streams using each |
//! | `DELETE /api/secrets/{name}` | delete one (204; 409 naming the streams whose grant uses it) |
//!
//! An upload is checked against the tenant's `max_component_mb` from its
//! `Content-Length` before any of it is read, and again while it is read; then it is
//! validated like any component (compile, imports, `describe`, spec). A refused upload
//! answers 413 (too large), 415 (not `application/wasm`), 400 (body cut short) or 422
//! (not an acceptable component, with the loader's reason) and changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures::StreamExt;
use serde_json::{Value, json};

use super::ice::StreamIce;
use super::registry::{HostingError, LiveStream, Registry};
use super::store::{Added, StreamLimits};
use super::tenants::Tenant;

/// Largest JSON body of the admin routes.
const MAX_JSON: usize = 64 * 1024;

/// An error answer.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 422 `invalid`: a request that makes no sense.
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"wasmrtc\""),
            );
        }
        r
    }
}

impl From<HostingError> for ApiError {
    fn from(e: HostingError) -> Self {
        let (status, code) = match &e {
            HostingError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            HostingError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            HostingError::Quota(_) => (StatusCode::FORBIDDEN, "quota_exceeded"),
            HostingError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            HostingError::Rejected(crate::runtime::LoadError::TooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
            }
            HostingError::Rejected(crate::runtime::LoadError::CompileBusy { .. }) => {
                (StatusCode::TOO_MANY_REQUESTS, "upload_in_progress")
            }
            HostingError::Rejected(crate::runtime::LoadError::CompilerBusy { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "compiler_busy")
            }
            HostingError::Rejected(crate::runtime::LoadError::CompileTimeout { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "compile_timeout")
            }
            HostingError::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
            HostingError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            HostingError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store_error"),
        };
        if status.is_server_error() {
            tracing::error!("admin API: {e}");
        }
        Self::new(status, code, e.to_string())
    }
}

/// A JSON answer (200 unless the handler says otherwise).
type JsonResult = Result<axum::Json<Value>, ApiError>;

/// 201 with a JSON body.
type CreatedResult = Result<(StatusCode, axum::Json<Value>), ApiError>;

/// The tenant a request's bearer token belongs to.
pub struct Authed(pub Arc<Tenant>);

impl FromRequestParts<Registry> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, registry: &Registry) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let token = bearer_token(&parts.headers).map_err(unauthorized)?;
        registry
            .tenants()
            .authenticate(token)
            .cloned()
            .map(Authed)
            .ok_or_else(|| unauthorized("invalid token"))
    }
}

/// One of the authenticated tenant's streams, by the `{name}` of the path (not yet
/// looked up: see [`TenantStream::live`]).
struct TenantStream {
    registry: Registry,
    tenant: Arc<Tenant>,
    name: String,
}

impl FromRequestParts<Registry> for TenantStream {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, registry: &Registry) -> Result<Self, Response> {
        let Authed(tenant) = Authed::from_request_parts(parts, registry)
            .await
            .map_err(IntoResponse::into_response)?;
        let Path(name) = Path::<String>::from_request_parts(parts, registry)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            registry: registry.clone(),
            tenant,
            name,
        })
    }
}

impl TenantStream {
    /// The stream, or 404 (another tenant's stream is not found either).
    fn live(&self) -> Result<Arc<LiveStream>, ApiError> {
        self.registry
            .get(self.tenant.name(), &self.name)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no stream `{}`", self.name),
                )
            })
    }
}

/// The token of an `Authorization: Bearer <token>` header, or why there is none.
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Result<&str, &'static str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or("missing `Authorization: Bearer <token>`")?
        .to_str()
        .map_err(|_| "malformed Authorization header")?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err("the Authorization header must be `Bearer <token>`"),
    }
}

/// The admin routes.
pub fn routes(registry: Registry) -> Router {
    Router::new()
        .route("/api/streams", post(create).get(list))
        .route("/api/streams/{name}", get(show).delete(delete))
        .route(
            "/api/streams/{name}/versions",
            // The upload reads its body itself, against the tenant's quota.
            post(upload)
                .layer(DefaultBodyLimit::disable())
                .get(versions),
        )
        .route("/api/streams/{name}/limits", put(set_limits))
        .route(
            "/api/streams/{name}/ice",
            put(set_ice).get(show_ice).delete(clear_ice),
        )
        .route("/api/streams/{name}/activate", post(activate))
        .route("/api/streams/{name}/rollback", post(rollback))
        .route("/api/streams/{name}/connections", get(connections))
        .route(
            "/api/streams/{name}/outbound",
            put(set_outbound).get(show_outbound).delete(clear_outbound),
        )
        .route("/api/secrets", get(list_secrets))
        .route("/api/secrets/{name}", put(set_secret).delete(delete_secret))
        .layer(DefaultBodyLimit::max(MAX_JSON))
        .with_state(registry)
}

fn json_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::invalid("the body must be a JSON object")),
        Err(e) => Err(ApiError::invalid(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

fn limits_from(map: serde_json::Map<String, Value>) -> Result<StreamLimits, ApiError> {
    serde_json::from_value(Value::Object(map))
        .map_err(|e| ApiError::invalid(format!("bad limits: {e}")))
}

fn summary(live: &LiveStream) -> Value {
    json!({
        "name": live.name(),
        "url": live.url(),
        "active_version": live.active_version(),
        "connections": live.active_connections(),
        "limits": live.limits(),
        "error": live.error(),
    })
}

async fn detail(registry: &Registry, live: &LiveStream) -> JsonResult {
    let mut v = summary(live);
    v["versions"] = json!(registry.versions(live).await?);
    v["spec"] = json!(live.stream().map(|s| s.spec()));
    v["ice"] = json!(live.ice().as_ref().map(StreamIce::redacted));
    v["outbound"] = outbound_view(live);
    Ok(axum::Json(v))
}

async fn create(
    State(registry): State<Registry>,
    Authed(tenant): Authed,
    body: Bytes,
) -> CreatedResult {
    let mut map = json_object(&body)?;
    let Some(Value::String(name)) = map.remove("name") else {
        return Err(ApiError::invalid("`name` (a string) is required"));
    };
    let limits = limits_from(map)?;
    let live = registry.create(&tenant, &name, limits).await?;
    Ok((StatusCode::CREATED, detail(&registry, &live).await?))
}

async fn list(State(registry): State<Registry>, Authed(tenant): Authed) -> JsonResult {
    let streams: Vec<Value> = registry
        .list(Some(tenant.name()))
        .iter()
        .map(|l| summary(l))
        .collect();
    let mut quotas = json!(tenant.config);
    if let Some(q) = quotas.as_object_mut() {
        q.remove("name");
        q.remove("token_sha256");
    }
    Ok(axum::Json(json!({
        "tenant": tenant.name(),
        "quotas": quotas,
        "connections": tenant.admission.active(),
        "streams": streams,
    })))
}

async fn show(stream: TenantStream) -> JsonResult {
    let live = stream.live()?;
    detail(&stream.registry, &live).await
}

async fn delete(stream: TenantStream) -> Result<StatusCode, ApiError> {
    stream.registry.delete(&stream.tenant, &stream.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn versions(stream: TenantStream) -> JsonResult {
    let live = stream.live()?;
    Ok(axum::Json(json!({
        "name": stream.name,
        "active_version": live.active_version(),
        "versions": stream.registry.versions(&live).await?,
    })))
}

async fn upload(
    stream: TenantStream,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> CreatedResult {
    let live = stream.live()?;
    let TenantStream {
        registry,
        tenant,
        name,
    } = stream;
    let bytes = match read_upload(&tenant, &query, &headers, body).await {
        Ok(b) => b,
        Err(e) => {
            registry.count_upload(tenant.name(), "rejected");
            tracing::info!(tenant = %tenant.name(), stream = %name, "upload refused: {}", e.message);
            return Err(e);
        }
    };
    let activate = !matches!(
        query.get("activate").map(String::as_str),
        Some("false" | "0")
    );
    let (Added { record, removed }, component) =
        registry.upload(&tenant, &name, bytes, activate).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "name": name,
            "url": live.url(),
            "version": record.version,
            "sha256": record.sha256,
            "size": record.size,
            "active": activate,
            "removed_versions": removed,
            "spec": component.spec(),
        })),
    ))
}

/// The checks before validation (query, content type, size) and the body, read
/// against the tenant's quota.
async fn read_upload(
    tenant: &Tenant,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, ApiError> {
    match query.get("activate").map(String::as_str) {
        None | Some("true" | "1" | "false" | "0") => {}
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "activate={other:?}: expected true or false"
            )));
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/wasm") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send the component as `Content-Type: application/wasm` (got {:?})",
                content_type
            ),
        ));
    }
    let limit = tenant.config.max_component_bytes();
    let too_large = |size: usize| ApiError::from(HostingError::TooLarge { size, limit });
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = announced
        && n > limit as u64
    {
        return Err(too_large(usize::try_from(n).unwrap_or(usize::MAX)));
    }
    let mut bytes = Vec::with_capacity(announced.map_or(0, |n| n as usize));
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "incomplete_body",
                format!("the upload was cut short: {e}"),
            )
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large(bytes.len() + chunk.len()));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

async fn set_limits(stream: TenantStream, body: Bytes) -> JsonResult {
    stream.live()?;
    let limits = limits_from(json_object(&body)?)?;
    let (registry, tenant, name) = (&stream.registry, &stream.tenant, &stream.name);
    registry.set_limits(tenant, name, limits.clone()).await?;
    Ok(axum::Json(json!({"name": name, "limits": limits})))
}

/// The stream's own ICE servers as the API shows them (`null`: none set).
fn ice_view(name: &str, ice: Option<&StreamIce>) -> Value {
    json!({"name": name, "ice": ice.map(StreamIce::redacted)})
}

async fn set_ice(stream: TenantStream, body: Bytes) -> JsonResult {
    stream.live()?;
    let ice: StreamIce = serde_json::from_value(Value::Object(json_object(&body)?))
        .map_err(|e| ApiError::invalid(format!("bad ice servers: {e}")))?;
    let (registry, tenant, name) = (&stream.registry, &stream.tenant, &stream.name);
    registry.set_ice(tenant, name, Some(ice.clone())).await?;
    Ok(axum::Json(ice_view(name, Some(&ice))))
}

async fn show_ice(stream: TenantStream) -> JsonResult {
    let live = stream.live()?;
    Ok(axum::Json(ice_view(&stream.name, live.ice().as_ref())))
}

async fn clear_ice(stream: TenantStream) -> JsonResult {
    stream.live()?;
    let (registry, tenant, name) = (&stream.registry, &stream.tenant, &stream.name);
    registry.set_ice(tenant, name, None).await?;
    Ok(axum::Json(ice_view(name, None)))
}

async fn activate(stream: TenantStream, body: Bytes) -> JsonResult {
    stream.live()?;
    let version = json_object(&body)?
        .get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::invalid("`version` (a positive integer) is required"))?;
    let (registry, tenant, name) = (&stream.registry, &stream.tenant, &stream.name);
    registry.activate(tenant, name, version).await?;
    Ok(axum::Json(json!({"name": name, "active_version": version})))
}

async fn rollback(stream: TenantStream) -> JsonResult {
    let (registry, tenant, name) = (&stream.registry, &stream.tenant, &stream.name);
    let (from, to) = registry.rollback(tenant, name).await?;
    Ok(axum::Json(
        json!({"name": name, "from": from, "active_version": to}),
    ))
}

async fn connections(stream: TenantStream) -> JsonResult {
    let live = stream.live()?;
    let by_version = live.connections_by_version();
    let list: Vec<Value> = by_version
        .iter()
        .flat_map(|(v, ids)| ids.iter().map(move |id| json!({"id": id, "version": v})))
        .collect();
    let counts: serde_json::Map<String, Value> = by_version
        .iter()
        .map(|(v, ids)| (v.to_string(), json!(ids.len())))
        .collect();
    Ok(axum::Json(json!({
        "name": stream.name,
        "active_version": live.active_version(),
        "admitted": live.active_connections(),
        "by_version": counts,
        "connections": list,
    })))
}

/// A stream's outbound grant as the API shows it (`null`: none), with `error` when the
/// stored one could not be applied at start-up.
fn outbound_view(live: &LiveStream) -> Value {
    let Some(entry) = live.outbound() else {
        return Value::Null;
    };
    let mut v = json!(entry);
    if let Some(why) = live.outbound_error() {
        v["error"] = json!(why);
    }
    v
}

async fn set_outbound(stream: TenantStream, body: Bytes) -> JsonResult {
    let live = stream.live()?;
    let entry = serde_json::from_value(Value::Object(json_object(&body)?))
        .map_err(|e| ApiError::invalid(format!("bad outbound grant: {e}")))?;
    let (registry, tenant, name) = (&stream.registry, &stream.tenant, &stream.name);
    registry.set_outbound(tenant, name, Some(entry)).await?;
    Ok(axum::Json(
        json!({"name": name, "outbound": outbound_view(&live)}),
    ))
}

async fn show_outbound(stream: TenantStream) -> JsonResult {
    let live = stream.live()?;
    Ok(axum::Json(
        json!({"name": stream.name, "outbound": outbound_view(&live)}),
    ))
}

async fn clear_outbound(stream: TenantStream) -> JsonResult {
    stream.live()?;
    let (registry, tenant, name) = (&stream.registry, &stream.tenant, &stream.name);
    registry.set_outbound(tenant, name, None).await?;
    Ok(axum::Json(json!({"name": name, "outbound": null})))
}

async fn list_secrets(State(registry): State<Registry>, Authed(tenant): Authed) -> JsonResult {
    let secrets: Vec<Value> = registry
        .secrets(&tenant)
        .await?
        .into_iter()
        .map(|s| {
            let used_by = registry.secret_users(&tenant, &s.name);
            json!({"name": s.name, "updated_at": s.updated_at, "used_by": used_by})
        })
        .collect();
    Ok(axum::Json(json!({
        "max_secrets": tenant.config.max_secrets,
        "max_secret_bytes": tenant.config.max_secret_bytes,
        "secrets": secrets,
    })))
}

/// `PUT /api/secrets/{name}` with `{"value": "…"}`: the value is never answered.
async fn set_secret(
    State(registry): State<Registry>,
    Authed(tenant): Authed,
    Path(name): Path<String>,
    body: Bytes,
) -> CreatedResult {
    let mut map = json_object(&body)?;
    let value = match map.remove("value") {
        Some(Value::String(v)) => v,
        _ => {
            return Err(ApiError::invalid(
                "the body must be {\"value\": \"...\"} with the secret as a string",
            ));
        }
    };
    if let Some(other) = map.keys().next() {
        return Err(ApiError::invalid(format!(
            "unknown field `{other}`: the body is {{\"value\": \"...\"}}"
        )));
    }
    let created = registry.set_secret(&tenant, &name, value).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        axum::Json(json!({"name": name, "created": created})),
    ))
}

async fn delete_secret(
    State(registry): State<Registry>,
    Authed(tenant): Authed,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    registry.delete_secret(&tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
