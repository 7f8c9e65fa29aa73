//! HTTP API (axum): the chat widget's answer endpoint, the agents' queue,
//! transcript, suggestion, feedback and reply endpoints, health, metrics
//! and the OpenAPI document generated from these handlers.
//!
//! Depends on `assistant` (all logic) and `config`. Blocking work (model
//! inference, SQLite) runs on `spawn_blocking`, never on the async runtime.

mod error;
mod events;
mod metrics;
mod pages;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequest, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

pub use error::{ApiError, ErrorBody};
pub use events::{Event, Events};
pub use metrics::Metrics;

use crate::assistant::{AnswerRequest, AnswerResponse, Assistant, Choice, ImportOutcome, KbSummary};
use crate::decision::{Action, Reason};
use crate::kb::{FaqInput, ImportReport};
use crate::store::{
    Conversation, FaqStats, FeedbackRecord, Handoff, Message, Proposal, Stats, StoredDecision, Suggestion, Transcript,
    Verdict,
};

#[derive(Clone)]
pub struct AppState {
    pub assistant: Arc<Assistant>,
    pub api_key: Arc<str>,
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    pub metrics: Arc<Metrics>,
    pub events: Events,
}

impl AppState {
    pub fn new(assistant: Arc<Assistant>, api_key: &str) -> AppState {
        let s = &assistant.config().server;
        let per_second = NonZeroU32::new(s.rate_per_second.max(1)).expect("max(1)");
        let burst = NonZeroU32::new(s.rate_burst.max(1)).expect("max(1)");
        let metrics = Arc::new(Metrics::new());
        // Reloads keep the same model, so registering once covers them.
        if let Some(embedder) = assistant.engine().retriever.embedder() {
            let (seconds, queries) = (metrics.embed_pass_seconds.clone(), metrics.embed_pass_queries.clone());
            embedder.observe_passes(Box::new(move |n, took| {
                seconds.observe(took.as_secs_f64());
                queries.observe(n as f64);
            }));
        }
        AppState {
            api_key: api_key.into(),
            limiter: Arc::new(RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))),
            metrics,
            events: Events::new(),
            assistant,
        }
    }
}

/// `axum::Json` whose rejections (bad JSON, wrong types, missing fields,
/// too large) become the API's JSON errors.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "xiaoer 店小二", description = "E-commerce customer-service answers, handoffs and agent drafts."),
    paths(
        answer, handoffs, conversation, suggestions, feedback, agent_message, close, healthz, readyz, kb_get, kb_put,
        kb_delete, kb_similar, kb_reload, kb_import, rate, stats, mine_gaps, proposals, approve, dismiss
    ),
    components(schemas(
        AnswerRequest, AnswerResponse, Choice, Action, Reason, ErrorBody, Handoff, Transcript, Conversation, Message,
        StoredDecision, Suggestion, FeedbackRequest, FeedbackRecord, Verdict, AgentMessageRequest, FaqInput, KbSummary,
        ImportOutcome, ImportReport, SimilarRequest, RatingRequest, Stats, FaqStats, Proposal, ApproveRequest
    )),
    modifiers(&ApiKeyScheme)
)]
pub struct ApiDoc;

struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "api_key",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

pub fn router(state: AppState) -> Router {
    let max_body = state.assistant.config().server.max_body_bytes;
    let agent = Router::new()
        .route("/v1/handoffs", get(handoffs))
        .route("/v1/conversations/{id}", get(conversation))
        .route("/v1/conversations/{id}/suggestions", post(suggestions))
        .route("/v1/conversations/{id}/messages", post(agent_message))
        .route("/v1/conversations/{id}/close", post(close))
        .route("/v1/suggestions/{id}/feedback", post(feedback))
        .route("/v1/agent/events", get(pages::agent_events))
        .route("/v1/kb/faqs/{id}", get(kb_get).put(kb_put).delete(kb_delete))
        .route("/v1/kb/faqs/{id}/similar", post(kb_similar))
        .route("/v1/kb/reload", post(kb_reload))
        .route("/v1/stats", get(stats))
        .route("/v1/kb/gaps/mine", post(mine_gaps))
        .route("/v1/kb/proposals", get(proposals))
        .route("/v1/kb/proposals/{id}/approve", post(approve))
        .route("/v1/kb/proposals/{id}/dismiss", post(dismiss))
        .route("/v1/kb/import", post(kb_import))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_api_key));
    let widget = Router::new()
        .route("/v1/answer", post(answer))
        .route("/v1/decisions/{id}/rating", post(rate))
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .route("/v1/conversations/{id}/events", get(pages::conversation_events));
    Router::new()
        .merge(agent)
        .merge(widget)
        .merge(pages::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async { ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Binds `addr` and serves until Ctrl-C / SIGTERM.
pub async fn serve(state: AppState, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// Runs blocking work (inference, SQLite) off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let response = next.run(req).await;
    let labels = metrics::RouteLabels { method, route, status: response.status().as_u16() };
    state.metrics.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}

async fn require_api_key(State(state): State<AppState>, headers: HeaderMap, req: Request, next: Next) -> Response {
    // EventSource cannot send headers: the agents' event stream takes `?key=`.
    let query_key =
        req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("key="))).map(str::to_string);
    let given = query_key.as_deref().or_else(|| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
    });
    match given {
        Some(k) if constant_time_eq(k.as_bytes(), state.api_key.as_bytes()) => next.run(req).await,
        _ => ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong API key (Authorization: Bearer <key>)")
            .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(ip) = ip
        && state.limiter.check_key(&ip).is_err()
    {
        return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too many messages; please wait a moment").into_response();
    }
    next.run(req).await
}

/// Answer a shopper's message (the chat widget's endpoint; public, rate-limited per client).
#[utoipa::path(post, path = "/v1/answer", request_body = AnswerRequest, responses(
    (status = 200, description = "The decision and the reply", body = AnswerResponse),
    (status = 400, description = "Empty or too long text, bad locale, unknown product", body = ErrorBody),
    (status = 404, description = "Unknown conversation", body = ErrorBody),
    (status = 409, description = "Conversation closed", body = ErrorBody),
    (status = 429, description = "Rate limited", body = ErrorBody),
))]
async fn answer(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<AnswerRequest>,
) -> Result<Json<AnswerResponse>, ApiError> {
    let assistant = state.assistant.clone();
    let response = blocking(move || Ok(assistant.answer(&req)?)).await?;
    let labels = metrics::DecisionLabels {
        action: format!("{:?}", response.action).to_lowercase(),
        reason: response.reason.name().to_string(),
    };
    state.metrics.decisions.get_or_create(&labels).inc();
    let conversation_id = response.conversation_id.clone();
    state.events.send(Event { conversation_id: conversation_id.clone(), kind: "shopper", message: None, reason: None });
    if response.action == Action::Handoff && response.reason != Reason::WaitingForAgent {
        let reason = Some(response.reason.name().to_string());
        state.events.send(Event { conversation_id, kind: "handoff", message: None, reason });
    }
    Ok(Json(response))
}

/// Handed-off conversations waiting for an agent, oldest first.
#[utoipa::path(get, path = "/v1/handoffs", security(("api_key" = [])), responses(
    (status = 200, body = Vec<Handoff>), (status = 401, body = ErrorBody)))]
async fn handoffs(State(state): State<AppState>) -> Result<Json<Vec<Handoff>>, ApiError> {
    Ok(Json(blocking(move || Ok(state.assistant.handoffs()?)).await?))
}

/// A conversation with its messages and the bot's decisions.
#[utoipa::path(get, path = "/v1/conversations/{id}", security(("api_key" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Transcript), (status = 404, body = ErrorBody)))]
async fn conversation(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Transcript>, ApiError> {
    Ok(Json(blocking(move || Ok(state.assistant.transcript(&id)?)).await?))
}

/// Draft three replies for the conversation's latest shopper message.
#[utoipa::path(post, path = "/v1/conversations/{id}/suggestions", security(("api_key" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Vec<Suggestion>), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn suggestions(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Vec<Suggestion>>, ApiError> {
    Ok(Json(blocking(move || Ok(state.assistant.suggest(&id)?)).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub verdict: Verdict,
    /// The text actually sent (required for `edited`).
    pub text: Option<String>,
}

/// Record an agent's verdict on a draft; accepted or edited drafts are sent to the shopper.
#[utoipa::path(post, path = "/v1/suggestions/{id}/feedback", security(("api_key" = [])), params(("id" = String, Path)),
    request_body = FeedbackRequest, responses(
    (status = 200, body = FeedbackRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, description = "Feedback already given", body = ErrorBody)))]
async fn feedback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<FeedbackRequest>,
) -> Result<Json<FeedbackRecord>, ApiError> {
    let assistant = state.assistant.clone();
    let record = blocking(move || Ok(assistant.feedback(&id, req.verdict, req.text.as_deref())?)).await?;
    if let Some(m) = &record.message {
        state.events.send(Event {
            conversation_id: record.conversation_id.clone(),
            kind: "agent",
            message: Some(m.clone()),
            reason: None,
        });
    }
    Ok(Json(record))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentMessageRequest {
    pub text: String,
}

/// Send an agent's own reply to the shopper.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages", security(("api_key" = [])), params(("id" = String, Path)),
    request_body = AgentMessageRequest, responses(
    (status = 200, body = Message), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn agent_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AgentMessageRequest>,
) -> Result<Json<Message>, ApiError> {
    let assistant = state.assistant.clone();
    let conversation_id = id.clone();
    let message = blocking(move || Ok(assistant.agent_message(&id, &req.text)?)).await?;
    state.events.send(Event { conversation_id, kind: "agent", message: Some(message.clone()), reason: None });
    Ok(Json(message))
}

/// Close a conversation and its handoff ticket.
#[utoipa::path(post, path = "/v1/conversations/{id}/close", security(("api_key" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Conversation), (status = 404, body = ErrorBody)))]
async fn close(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Conversation>, ApiError> {
    Ok(Json(
        blocking(move || Ok(state.assistant.store().close(&id).map_err(crate::assistant::ServiceError::from)?)).await?,
    ))
}

/// An FAQ entry as the admin API shows it.
#[utoipa::path(get, path = "/v1/kb/faqs/{id}", security(("api_key" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = FaqInput), (status = 404, body = ErrorBody)))]
async fn kb_get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<FaqInput>, ApiError> {
    Ok(Json(blocking(move || Ok(state.assistant.faq(&id)?)).await?))
}

/// Create or replace an FAQ entry; live once the response arrives, kept across restarts.
#[utoipa::path(put, path = "/v1/kb/faqs/{id}", security(("api_key" = [])), params(("id" = String, Path)),
    request_body = FaqInput, responses((status = 200, body = KbSummary), (status = 400, body = ErrorBody)))]
async fn kb_put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<FaqInput>,
) -> Result<Json<KbSummary>, ApiError> {
    Ok(Json(blocking(move || Ok(state.assistant.edit_faq(&id, Some(input))?)).await?))
}

/// Delete an FAQ entry.
#[utoipa::path(delete, path = "/v1/kb/faqs/{id}", security(("api_key" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = KbSummary), (status = 404, body = ErrorBody)))]
async fn kb_delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<KbSummary>, ApiError> {
    Ok(Json(blocking(move || Ok(state.assistant.edit_faq(&id, None)?)).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimilarRequest {
    pub text: String,
}

/// Add a similar question (相似问法) to an FAQ entry.
#[utoipa::path(post, path = "/v1/kb/faqs/{id}/similar", security(("api_key" = [])), params(("id" = String, Path)),
    request_body = SimilarRequest, responses((status = 200, body = KbSummary), (status = 404, body = ErrorBody)))]
async fn kb_similar(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SimilarRequest>,
) -> Result<Json<KbSummary>, ApiError> {
    Ok(Json(blocking(move || Ok(state.assistant.add_similar(&id, &req.text)?)).await?))
}

/// Re-read the knowledge files (after editing them) and swap in the new index.
#[utoipa::path(post, path = "/v1/kb/reload", security(("api_key" = [])), responses(
    (status = 200, body = KbSummary), (status = 400, description = "The files have problems; the old index stays", body = ErrorBody)))]
async fn kb_reload(State(state): State<AppState>) -> Result<Json<KbSummary>, ApiError> {
    Ok(Json(blocking(move || Ok(state.assistant.reload()?)).await?))
}

#[derive(Debug, Deserialize)]
struct ImportParams {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    partial: bool,
}

/// Import a CSV spreadsheet (UTF-8 or GBK; `text/csv`) or JSON Lines
/// (`application/x-ndjson`). `dry_run` only reports; bad rows block the whole
/// import unless `partial`.
#[utoipa::path(post, path = "/v1/kb/import", security(("api_key" = [])),
    params(("dry_run" = Option<bool>, Query), ("partial" = Option<bool>, Query)),
    request_body(content = String, content_type = "text/csv"), responses((status = 200, body = ImportOutcome)))]
async fn kb_import(
    State(state): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<ImportParams>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ImportOutcome>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "empty import body"));
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let jsonl = ["ndjson", "jsonl", "json-lines"].iter().any(|t| content_type.contains(t));
    Ok(Json(blocking(move || Ok(state.assistant.import(&body, jsonl, params.dry_run, params.partial)?)).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// 👍 (`true`) or 👎 (`false`).
    pub helpful: bool,
}

/// A shopper rates an automatic answer (the widget's thumbs).
#[utoipa::path(post, path = "/v1/decisions/{id}/rating", params(("id" = i64, Path)), request_body = RatingRequest,
    responses((status = 200, description = "stored"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rate(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<RatingRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(move || {
        Ok(state.assistant.store().rate(id, req.helpful).map_err(crate::assistant::ServiceError::from)?)
    })
    .await?;
    Ok(Json(serde_json::json!({"status": "stored"})))
}

#[derive(Debug, Deserialize)]
struct Window {
    /// Unix seconds, inclusive (default: 7 days ago).
    from: Option<i64>,
    /// Unix seconds, exclusive (default: now).
    to: Option<i64>,
}

impl Window {
    /// `[from, to)`, defaulting to the last 7 days.
    fn bounds(&self) -> Result<(i64, i64), ApiError> {
        let to = self.to.unwrap_or_else(|| chrono::Utc::now().timestamp() + 1);
        let from = self.from.unwrap_or(to - 7 * 24 * 3600);
        if from >= to {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "`from` must be before `to`"));
        }
        Ok((from, to))
    }
}

/// Cluster the window's unanswered questions into new-FAQ proposals.
#[utoipa::path(post, path = "/v1/kb/gaps/mine", security(("api_key" = [])),
    params(("from" = Option<i64>, Query), ("to" = Option<i64>, Query)), responses((status = 200, body = Vec<Proposal>)))]
async fn mine_gaps(
    State(state): State<AppState>,
    axum::extract::Query(w): axum::extract::Query<Window>,
) -> Result<Json<Vec<Proposal>>, ApiError> {
    let (from, to) = w.bounds()?;
    Ok(Json(blocking(move || Ok(state.assistant.mine_gaps(from, to)?)).await?))
}

#[derive(Debug, Deserialize)]
struct StatusFilter {
    status: Option<String>,
}

/// Proposals (default: pending), largest first.
#[utoipa::path(get, path = "/v1/kb/proposals", security(("api_key" = [])),
    params(("status" = Option<String>, Query, description = "pending (default), approved or dismissed")),
    responses((status = 200, body = Vec<Proposal>)))]
async fn proposals(
    State(state): State<AppState>,
    axum::extract::Query(f): axum::extract::Query<StatusFilter>,
) -> Result<Json<Vec<Proposal>>, ApiError> {
    let status = f.status.unwrap_or_else(|| "pending".into());
    if !["pending", "approved", "dismissed"].contains(&status.as_str()) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "`status` is pending, approved or dismissed"));
    }
    Ok(Json(
        blocking(move || {
            Ok(state.assistant.store().proposals(&status).map_err(crate::assistant::ServiceError::from)?)
        })
        .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// For a new-FAQ proposal: the id of the entry to create …
    pub faq_id: Option<String>,
    /// … and the entry itself (the operator writes the answer).
    pub entry: Option<FaqInput>,
}

/// Approve a proposal: a learned phrasing joins its FAQ, a mined gap becomes a new FAQ.
#[utoipa::path(post, path = "/v1/kb/proposals/{id}/approve", security(("api_key" = [])), params(("id" = i64, Path)),
    request_body = ApproveRequest, responses(
    (status = 200, body = KbSummary), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn approve(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<ApproveRequest>,
) -> Result<Json<KbSummary>, ApiError> {
    Ok(Json(blocking(move || Ok(state.assistant.approve(id, req.faq_id.as_deref(), req.entry)?)).await?))
}

/// Dismiss a proposal.
#[utoipa::path(post, path = "/v1/kb/proposals/{id}/dismiss", security(("api_key" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "dismissed"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn dismiss(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(move || Ok(state.assistant.dismiss(id)?)).await?;
    Ok(Json(serde_json::json!({"status": "dismissed"})))
}

/// Service analytics for a time window.
#[utoipa::path(get, path = "/v1/stats", security(("api_key" = [])),
    params(("from" = Option<i64>, Query), ("to" = Option<i64>, Query)), responses((status = 200, body = Stats)))]
async fn stats(
    State(state): State<AppState>,
    axum::extract::Query(w): axum::extract::Query<Window>,
) -> Result<Json<Stats>, ApiError> {
    let to = w.to.unwrap_or_else(|| chrono::Utc::now().timestamp() + 1);
    let from = w.from.unwrap_or(to - 7 * 24 * 3600);
    if from >= to {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "`from` must be before `to`"));
    }
    Ok(Json(
        blocking(move || Ok(state.assistant.store().stats(from, to).map_err(crate::assistant::ServiceError::from)?))
            .await?,
    ))
}

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "ok")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the knowledge base, model and database are usable.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let assistant = state.assistant.clone();
    blocking(move || {
        assistant.store().ping().map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
    })
    .await?;
    Ok(Json(serde_json::json!({"status": "ready"})))
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], ApiDoc::openapi().to_json().unwrap_or_default())
}
