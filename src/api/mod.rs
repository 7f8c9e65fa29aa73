//! HTTP API (axum): the chat widget's answer endpoint, the agents' queue,
//! transcript, suggestion, feedback and reply endpoints, knowledge
//! operations, health, metrics and the OpenAPI document generated from
//! these handlers.
//!
//! Depends on `service` (all logic) and `config`. Blocking work (model
//! inference, SQLite) runs on `spawn_blocking`, never on the async runtime.

mod error;
mod guard;
mod metrics;
mod pages;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::{OpenApi, ToSchema};

pub use crate::service::{Event, EventKind};
pub use error::{ApiError, ErrorBody};
pub use guard::{ClientLimiter, MAX_HEADER_BYTES, MAX_HEADERS, MAX_URI_BYTES};
pub use metrics::Metrics;

use crate::decision::{Action, Reason};
use crate::kb::{FaqInput, ImportReport};
use crate::service::{
    AgentUpdate, AnswerRequest, AnswerResponse, CannedSuggestion, Choice, Contact, ExportFormat, ImportOutcome,
    KbSummary, LeaveMessage, LeftMessage, LoginRequest, NewAgent, NewCannedReply, Offline, OfflineReason,
    PreviewCandidate, RankPreview, ServiceError, Services, Session, ShopperTranscript, SurveyAnswer,
};
use crate::store::{
    Actor, Agent, AgentFigures, AgentRole, CannedReply, ContactKind, Conversation, ConversationStatus, DeskFigures,
    FaqStats, FeedbackRecord, Handoff, Message, Proposal, ProposalKind, ProposalStatus, Role, Stats, StoredDecision,
    Suggestion, Transcript, Verdict,
};

#[derive(Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    pub api_key: Arc<str>,
    limiter: Arc<ClientLimiter>,
    admission: guard::Admission,
    /// FAQ rank previews (each builds a scratch engine) have their own
    /// bound, so an operator typing never takes shoppers' places.
    previews: guard::Admission,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server begins to shut down: event streams end.
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn new(services: Arc<Services>, api_key: &str) -> Result<AppState, String> {
        let s = &services.config.server;
        let metrics = Arc::new(Metrics::new());
        // Later engines share the same model, so registering once covers them.
        if let Some(embedder) = services.knowledge.engine().retriever.embedder() {
            let (seconds, queries) = (metrics.embed_pass_seconds.clone(), metrics.embed_pass_queries.clone());
            embedder.observe_passes(Box::new(move |n, took| {
                seconds.observe(took.as_secs_f64());
                queries.observe(n as f64);
            }));
        }
        Ok(AppState {
            api_key: api_key.into(),
            limiter: Arc::new(ClientLimiter::new(s)?),
            admission: guard::Admission::new(s.max_queued_answers),
            previews: guard::Admission::new(MAX_PREVIEWS),
            metrics,
            shutdown: CancellationToken::new(),
            services,
        })
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
        answer, handoffs, conversation, suggestions, feedback, agent_message, close, take, transfer, login, logout, me,
        agents_list, agents_create, agents_update, canned_search, canned_add, canned_delete, canned_suggestions, healthz, readyz, kb_get, kb_put,
        kb_delete, kb_similar, kb_preview, export, kb_reload, kb_import, rate, survey, stats, mine_gaps, proposals, approve, dismiss
    ),
    components(schemas(
        AnswerRequest, AnswerResponse, Choice, Action, Reason, ErrorBody, Handoff, Transcript, Conversation,
        ConversationStatus, Message, Role, StoredDecision, Suggestion, FeedbackRequest, FeedbackRecord, Verdict,
        AgentMessageRequest, FaqInput, KbSummary, ImportOutcome, ImportReport, SimilarRequest, RatingRequest, Stats,
        FaqStats, Proposal, ProposalKind, ProposalStatus, ApproveRequest, Offline, OfflineReason, Contact, ContactKind,
        LeaveMessage, LeftMessage, ShopperTranscript, PresenceRequest, TransferRequest, LoginRequest, Session, Agent,
        AgentRole, NewAgent, AgentUpdate, SurveyAnswer, DeskFigures, AgentFigures, CannedReply, NewCannedReply,
        CannedSuggestion, PreviewRequest, RankPreview, PreviewCandidate, ExportFormat
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
    let server = &state.services.config.server;
    // Accounts and knowledge edits: admins (and the API key) only.
    let admin = Router::new()
        .route("/v1/agents", post(agents_create))
        .route("/v1/agents/{id}", axum::routing::patch(agents_update))
        .route("/v1/kb/faqs/{id}", axum::routing::put(kb_put).delete(kb_delete))
        .route("/v1/kb/faqs/{id}/similar", post(kb_similar))
        .route("/v1/kb/faqs/{id}/preview", post(kb_preview))
        .route("/v1/conversations/export", get(export))
        .route("/v1/kb/reload", post(kb_reload))
        .route("/v1/kb/gaps/mine", post(mine_gaps))
        .route("/v1/kb/proposals", get(proposals))
        .route("/v1/kb/proposals/{id}/approve", post(approve))
        .route("/v1/kb/proposals/{id}/dismiss", post(dismiss))
        .route("/v1/kb/import", post(kb_import))
        .route_layer(middleware::from_fn(guard::require_admin));
    let agent = Router::new()
        .route("/v1/handoffs", get(handoffs))
        .route("/v1/conversations/{id}", get(conversation))
        .route("/v1/conversations/{id}/suggestions", post(suggestions))
        .route("/v1/conversations/{id}/messages", post(agent_message))
        .route("/v1/conversations/{id}/close", post(close))
        .route("/v1/conversations/{id}/take", post(take))
        .route("/v1/conversations/{id}/transfer", post(transfer))
        .route("/v1/suggestions/{id}/feedback", post(feedback))
        .route("/v1/kb/faqs/{id}", get(kb_get))
        .route("/v1/stats", get(stats))
        .route("/v1/agent/presence", post(presence))
        .route("/v1/agents", get(agents_list))
        .route("/v1/canned", get(canned_search).post(canned_add))
        .route("/v1/canned/suggestions", get(canned_suggestions))
        .route("/v1/canned/{id}", axum::routing::delete(canned_delete))
        .route("/v1/auth/me", get(me))
        .route("/v1/auth/logout", post(logout))
        .merge(admin)
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::authenticate));
    let agent_stream = Router::new()
        .route("/v1/agent/events", get(pages::agent_events))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::authenticate_with_query));
    // Logging in is open to anyone, rate-limited like the widget (password guessing).
    let login = Router::new()
        .route("/v1/auth/login", post(login))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::rate_limit));
    // What a store's own site calls from the shopper's browser.
    let widget = Router::new()
        .route("/v1/answer", post(answer))
        .route("/v1/decisions/{id}/rating", post(rate))
        .route("/v1/conversations/{id}/transcript", get(shopper_transcript))
        .route("/v1/conversations/{id}/leave-message", post(leave_message))
        .route("/v1/conversations/{id}/survey", post(survey))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::rate_limit))
        .route("/v1/conversations/{id}/events", get(pages::conversation_events))
        .route("/widget.js", get(pages::widget))
        .layer(cors(&server.allowed_origins));
    Router::new()
        .merge(agent)
        .merge(agent_stream)
        .merge(login)
        .merge(widget)
        .merge(pages::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::status(StatusCode::NOT_FOUND, "no such route") })
        // No `method_not_allowed_fallback`: it would replace the widget
        // routes' CORS-wrapped fallback and refuse preflights; `json_errors`
        // gives the plain 405 its JSON body.
        .layer(middleware::from_fn_with_state(state.clone(), guard::read_timeout))
        .layer(axum::extract::DefaultBodyLimit::max(server.max_body_bytes))
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn(guard::request_limits))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Cross-origin access for the widget routes: a store page on its own
/// domain embeds the widget. `*` in the list allows any origin.
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::HeaderName::from_static("last-event-id")])
        .max_age(Duration::from_secs(3600))
}

/// Serves until `shutdown` completes; then stops accepting, ends the event
/// streams and lets in-flight requests finish, for at most
/// `server.shutdown_grace_secs`.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = state.shutdown.clone();
    let grace = Duration::from_secs(state.services.config.server.shutdown_grace_secs);
    let limiter = state.limiter.clone();
    let sweeper = tokio::spawn({
        let token = token.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            while token.run_until_cancelled(every.tick()).await.is_some() {
                limiter.forget_idle();
            }
        }
    });
    let stop = token.clone();
    let server = axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown => {}
                _ = stop.cancelled() => {}
            }
            tracing::info!("shutting down: finishing in-flight requests");
            stop.cancel();
        })
        .into_future();
    let result = tokio::select! {
        r = server => r,
        _ = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("requests still in flight after {}s; exiting anyway", grace.as_secs());
            Ok(())
        }
    };
    sweeper.abort();
    result
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Runs blocking work (inference, SQLite) off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

/// Runs a service call off the async runtime.
async fn service<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Services) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    let services = state.services.clone();
    blocking(move || Ok(f(&services)?)).await
}

/// Runs model work as `service` does once `admission` lets it in (503 with
/// `Retry-After` when full), holding its place until the work ends.
async fn admitted<T: Send + 'static>(
    state: &AppState,
    admission: &guard::Admission,
    f: impl FnOnce(&Services) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = admission.admit()?;
    service(state, move |s| {
        let _permit = permit;
        f(s)
    })
    .await
}

/// Logs a live event for every replica's streams. What it reports is
/// stored already, so a failure is logged, not the request's error.
async fn publish(state: &AppState, event: Event) {
    if let Err(e) = service(state, move |s| s.events.publish(&event)).await {
        tracing::warn!("live event not published: {e:?}");
    }
}

/// Automatic assignment (`service.auto_assign`) after anything that may
/// leave a conversation waiting or give an agent room. A failure is logged,
/// not the caller's error: the conversation then waits in the queue.
pub(crate) async fn auto_assign(state: &AppState) {
    match service(state, |s| s.desk.auto_assign()).await {
        Ok(assigned) => {
            for id in assigned {
                publish(state, Event::new(id, EventKind::Assigned)).await;
            }
        }
        Err(e) => tracing::warn!("automatic assignment failed: {e:?}"),
    }
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

/// Answer a shopper's message (the chat widget's endpoint; public, rate-limited per client).
#[utoipa::path(post, path = "/v1/answer", request_body = AnswerRequest, responses(
    (status = 200, description = "The decision and the reply (a new `conversation_id` when the given one was closed)", body = AnswerResponse),
    (status = 400, description = "Empty or too long text, bad locale, unknown product", body = ErrorBody),
    (status = 404, description = "Unknown conversation", body = ErrorBody),
    (status = 429, description = "Rate limited", body = ErrorBody),
    (status = 503, description = "Too many questions at once or too slow; nothing recorded (see Retry-After)", body = ErrorBody),
))]
async fn answer(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<AnswerRequest>,
) -> Result<Json<AnswerResponse>, ApiError> {
    let deadline = Instant::now() + Duration::from_secs(state.services.config.server.request_timeout_secs.max(1));
    let response = admitted(&state, &state.admission, move |s| s.turns.answer(&req, deadline)).await?;
    let labels = metrics::DecisionLabels {
        action: response.action.name().to_string(),
        reason: response.reason.name().to_string(),
    };
    state.metrics.decisions.get_or_create(&labels).inc();
    let conversation_id = response.conversation_id.clone();
    publish(&state, Event::new(conversation_id.clone(), EventKind::Shopper)).await;
    if response.action == Action::Handoff && response.reason != Reason::WaitingForAgent {
        publish(&state, Event { reason: Some(response.reason), ..Event::new(conversation_id, EventKind::Handoff) })
            .await;
        auto_assign(&state).await;
    }
    Ok(Json(response))
}

/// Handed-off conversations waiting for an agent, oldest first.
#[utoipa::path(get, path = "/v1/handoffs", security(("api_key" = [])), responses(
    (status = 200, body = Vec<Handoff>), (status = 401, body = ErrorBody)))]
async fn handoffs(State(state): State<AppState>) -> Result<Json<Vec<Handoff>>, ApiError> {
    Ok(Json(service(&state, |s| s.desk.handoffs()).await?))
}

/// A conversation with its messages and the bot's decisions.
#[utoipa::path(get, path = "/v1/conversations/{id}", security(("api_key" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Transcript), (status = 404, body = ErrorBody)))]
async fn conversation(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Transcript>, ApiError> {
    Ok(Json(service(&state, move |s| s.desk.transcript(&id)).await?))
}

/// Draft three replies for the conversation's latest shopper message.
#[utoipa::path(post, path = "/v1/conversations/{id}/suggestions", security(("api_key" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Vec<Suggestion>), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 503, body = ErrorBody)))]
async fn suggestions(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Vec<Suggestion>>, ApiError> {
    Ok(Json(admitted(&state, &state.admission, move |s| s.desk.suggest(&id)).await?))
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
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<FeedbackRequest>,
) -> Result<Json<FeedbackRecord>, ApiError> {
    let record = service(&state, move |s| s.desk.feedback(&id, req.verdict, req.text.as_deref(), &actor)).await?;
    if let Some(m) = &record.message {
        publish(&state, Event { message: Some(m.clone()), ..Event::new(&record.conversation_id, EventKind::Agent) })
            .await;
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
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AgentMessageRequest>,
) -> Result<Json<Message>, ApiError> {
    let conversation_id = id.clone();
    let message = service(&state, move |s| s.desk.agent_message(&id, &req.text, &actor)).await?;
    publish(&state, Event { message: Some(message.clone()), ..Event::new(conversation_id, EventKind::Agent) }).await;
    Ok(Json(message))
}

/// Close a conversation and its handoff ticket; the shopper's page is told
/// (`closed` event) and their next message starts a new conversation.
#[utoipa::path(post, path = "/v1/conversations/{id}/close", security(("api_key" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Conversation), (status = 404, body = ErrorBody), (status = 409, description = "Already closed", body = ErrorBody)))]
async fn close(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    let conversation = service(&state, move |s| s.desk.close(&id, &actor)).await?;
    publish(&state, Event::new(&conversation.id, EventKind::Closed)).await;
    auto_assign(&state).await;
    Ok(Json(conversation))
}

/// Take a waiting conversation: from now on only this agent answers it.
#[utoipa::path(post, path = "/v1/conversations/{id}/take", security(("api_key" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Conversation), (status = 404, body = ErrorBody),
    (status = 409, description = "Another agent handles it, it is not waiting for an agent, or the caller is the API key", body = ErrorBody)))]
async fn take(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    let conversation = service(&state, move |s| s.desk.take(&id, &actor)).await?;
    publish(&state, Event::new(&conversation.id, EventKind::Assigned)).await;
    Ok(Json(conversation))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The agent to hand it to; null: back to the queue.
    pub agent_id: Option<i64>,
}

/// Hand a conversation to another agent or back to the queue (its owner, or an admin).
#[utoipa::path(post, path = "/v1/conversations/{id}/transfer", security(("api_key" = [])), params(("id" = String, Path)),
    request_body = TransferRequest, responses(
    (status = 200, body = Conversation), (status = 404, description = "Unknown conversation or agent", body = ErrorBody),
    (status = 409, description = "Another agent handles it, the target is disabled, or it is not waiting for an agent", body = ErrorBody)))]
async fn transfer(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TransferRequest>,
) -> Result<Json<Conversation>, ApiError> {
    let conversation = service(&state, move |s| s.desk.transfer(&id, &actor, req.agent_id)).await?;
    publish(&state, Event::new(&conversation.id, EventKind::Assigned)).await;
    auto_assign(&state).await;
    Ok(Json(conversation))
}

/// Log in to the console: a session token for `Authorization: Bearer`.
#[utoipa::path(post, path = "/v1/auth/login", request_body = LoginRequest, responses(
    (status = 200, body = Session), (status = 401, description = "Wrong login or password", body = ErrorBody),
    (status = 429, body = ErrorBody)))]
async fn login(State(state): State<AppState>, ApiJson(req): ApiJson<LoginRequest>) -> Result<Json<Session>, ApiError> {
    Ok(Json(service(&state, move |s| s.accounts.login(&req)).await?))
}

/// End the caller's session (the API key has none: nothing happens).
#[utoipa::path(post, path = "/v1/auth/logout", security(("api_key" = [])), responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let token = guard::bearer(&headers).unwrap_or_default().to_string();
    service(&state, move |s| s.accounts.logout(&token)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The logged-in agent (null for the API key).
#[utoipa::path(get, path = "/v1/auth/me", security(("api_key" = [])), responses((status = 200, body = Option<Agent>), (status = 401, body = ErrorBody)))]
async fn me(Extension(actor): Extension<Actor>) -> Json<Option<Agent>> {
    Json(actor.agent)
}

/// Agent accounts (for transfers and the admin's account list).
#[utoipa::path(get, path = "/v1/agents", security(("api_key" = [])), responses((status = 200, body = Vec<Agent>), (status = 401, body = ErrorBody)))]
async fn agents_list(State(state): State<AppState>) -> Result<Json<Vec<Agent>>, ApiError> {
    Ok(Json(service(&state, |s| s.accounts.list()).await?))
}

#[derive(Debug, Deserialize)]
struct CannedQuery {
    q: Option<String>,
}

/// The canned replies the caller may use (store-wide, then their own), those
/// whose title or text contains `q` when given.
#[utoipa::path(get, path = "/v1/canned", security(("api_key" = [])), params(("q" = Option<String>, Query)),
    responses((status = 200, body = Vec<CannedReply>)))]
async fn canned_search(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    axum::extract::Query(query): axum::extract::Query<CannedQuery>,
) -> Result<Json<Vec<CannedReply>>, ApiError> {
    Ok(Json(service(&state, move |s| s.canned.search(&actor, query.q.as_deref())).await?))
}

/// Add a canned reply: `personal` for the caller alone, else store-wide (admins).
#[utoipa::path(post, path = "/v1/canned", security(("api_key" = [])), request_body = NewCannedReply, responses(
    (status = 201, body = CannedReply), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn canned_add(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(new): ApiJson<NewCannedReply>,
) -> Result<(StatusCode, Json<CannedReply>), ApiError> {
    Ok((StatusCode::CREATED, Json(service(&state, move |s| s.canned.add(&actor, &new)).await?)))
}

/// Delete one's own canned reply, or (admins) a store-wide one.
#[utoipa::path(delete, path = "/v1/canned/{id}", security(("api_key" = [])), params(("id" = i64, Path)), responses(
    (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn canned_delete(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    service(&state, move |s| s.canned.delete(&actor, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Edited drafts agents keep sending (3 times in 30 days) that are no canned reply yet.
#[utoipa::path(get, path = "/v1/canned/suggestions", security(("api_key" = [])),
    responses((status = 200, body = Vec<CannedSuggestion>)))]
async fn canned_suggestions(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<Vec<CannedSuggestion>>, ApiError> {
    Ok(Json(service(&state, move |s| s.canned.suggestions(&actor)).await?))
}

/// Create an agent account (admins).
#[utoipa::path(post, path = "/v1/agents", security(("api_key" = [])), request_body = NewAgent, responses(
    (status = 201, body = Agent), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 409, description = "Login taken", body = ErrorBody)))]
async fn agents_create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewAgent>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    Ok((StatusCode::CREATED, Json(service(&state, move |s| s.accounts.create(&req)).await?)))
}

/// Change an agent account: name, role, password, disabled (admins).
#[utoipa::path(patch, path = "/v1/agents/{id}", security(("api_key" = [])), params(("id" = i64, Path)), request_body = AgentUpdate,
    responses((status = 200, body = Agent), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody)))]
async fn agents_update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<AgentUpdate>,
) -> Result<Json<Agent>, ApiError> {
    let agent = service(&state, move |s| s.accounts.update(id, &req)).await?;
    // A disabled agent's conversations went back to the queue.
    auto_assign(&state).await;
    Ok(Json(agent))
}

/// An FAQ entry as the admin API shows it.
#[utoipa::path(get, path = "/v1/kb/faqs/{id}", security(("api_key" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = FaqInput), (status = 404, body = ErrorBody)))]
async fn kb_get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<FaqInput>, ApiError> {
    Ok(Json(service(&state, move |s| s.knowledge.faq(&id)).await?))
}

/// Create or replace an FAQ entry; live once the response arrives, kept across restarts.
#[utoipa::path(put, path = "/v1/kb/faqs/{id}", security(("api_key" = [])), params(("id" = String, Path)),
    request_body = FaqInput, responses((status = 200, body = KbSummary), (status = 400, body = ErrorBody),
    (status = 409, description = "The knowledge files have problems; nothing changed", body = ErrorBody),
    (status = 500, description = "The rebuild failed; nothing changed", body = ErrorBody)))]
async fn kb_put(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<FaqInput>,
) -> Result<Json<KbSummary>, ApiError> {
    Ok(Json(service(&state, move |s| s.knowledge.edit_faq(&id, Some(input), &actor)).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// The entry as edited (not saved).
    pub entry: FaqInput,
    /// A shopper's question to rank.
    pub question: String,
}

/// How a question would rank were the entry as edited: nothing is saved.
#[utoipa::path(post, path = "/v1/kb/faqs/{id}/preview", security(("api_key" = [])), params(("id" = String, Path)),
    request_body = PreviewRequest, responses((status = 200, body = RankPreview), (status = 400, body = ErrorBody),
    (status = 503, description = "Too much model work queued", body = ErrorBody)))]
async fn kb_preview(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PreviewRequest>,
) -> Result<Json<RankPreview>, ApiError> {
    Ok(Json(admitted(&state, &state.previews, move |s| s.knowledge.preview(&id, &req.entry, &req.question)).await?))
}

/// FAQ rank previews built at once; more are refused with 503 + `Retry-After`.
const MAX_PREVIEWS: usize = 2;

/// The longest window one export covers.
const MAX_EXPORT_DAYS: i64 = 92;

#[derive(Debug, Deserialize)]
struct ExportQuery {
    from: Option<i64>,
    to: Option<i64>,
    format: Option<ExportFormat>,
}

/// The conversations started in a window (default the last 7 days), one row
/// per message with the bot's decision on it, as CSV or JSON Lines.
#[utoipa::path(get, path = "/v1/conversations/export", security(("api_key" = [])),
    params(("from" = Option<i64>, Query), ("to" = Option<i64>, Query), ("format" = Option<ExportFormat>, Query)),
    responses((status = 200, description = "text/csv (UTF-8 with a byte-order mark) or application/x-ndjson"),
    (status = 400, body = ErrorBody)))]
async fn export(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let (from, to) = Window { from: q.from, to: q.to }.bounds()?;
    // Held in memory whole: a bounded window keeps one request bounded.
    if to.saturating_sub(from) > MAX_EXPORT_DAYS * 86_400 {
        let why = format!("export at most {MAX_EXPORT_DAYS} days at a time");
        return Err(ApiError::status(StatusCode::BAD_REQUEST, why));
    }
    let format = q.format.unwrap_or_default();
    let body = service(&state, move |s| s.desk.export(from, to, format)).await?;
    let (content_type, ext) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Jsonl => ("application/x-ndjson", "jsonl"),
    };
    let disposition = format!("attachment; filename=\"xiaoer-conversations-{from}-{to}.{ext}\"");
    Ok(([(header::CONTENT_TYPE, content_type.to_string()), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response())
}

/// Delete an FAQ entry.
#[utoipa::path(delete, path = "/v1/kb/faqs/{id}", security(("api_key" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = KbSummary), (status = 404, body = ErrorBody)))]
async fn kb_delete(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<KbSummary>, ApiError> {
    Ok(Json(service(&state, move |s| s.knowledge.edit_faq(&id, None, &actor)).await?))
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
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SimilarRequest>,
) -> Result<Json<KbSummary>, ApiError> {
    Ok(Json(
        service(&state, move |s| {
            let text = crate::service::message_text(&req.text, s.config.server.max_text_chars)?;
            s.knowledge.add_similar(&id, text, &actor)
        })
        .await?,
    ))
}

/// Re-read the knowledge files (after editing them) and swap in the new index.
#[utoipa::path(post, path = "/v1/kb/reload", security(("api_key" = [])), responses(
    (status = 200, body = KbSummary), (status = 409, description = "The files have problems; the old index stays", body = ErrorBody)))]
async fn kb_reload(State(state): State<AppState>) -> Result<Json<KbSummary>, ApiError> {
    Ok(Json(service(&state, |s| s.knowledge.reload()).await?))
}

#[derive(Debug, Deserialize)]
struct ImportParams {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    partial: bool,
}

/// Import a CSV spreadsheet (UTF-8, GBK or UTF-16; `text/csv`) or JSON Lines
/// (`application/x-ndjson`). `dry_run` only reports; bad rows block the whole
/// import unless `partial`.
#[utoipa::path(post, path = "/v1/kb/import", security(("api_key" = [])),
    params(("dry_run" = Option<bool>, Query), ("partial" = Option<bool>, Query)),
    request_body(content = String, content_type = "text/csv"), responses((status = 200, body = ImportOutcome)))]
async fn kb_import(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    axum::extract::Query(params): axum::extract::Query<ImportParams>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ImportOutcome>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::status(StatusCode::BAD_REQUEST, "empty import body"));
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let jsonl = ["ndjson", "jsonl", "json-lines"].iter().any(|t| content_type.contains(t));
    Ok(Json(service(&state, move |s| s.knowledge.import(&body, jsonl, params.dry_run, params.partial, &actor)).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// The conversation the answer was given in: only its shopper may rate.
    pub conversation_id: String,
    /// 👍 (`true`) or 👎 (`false`).
    pub helpful: bool,
}

/// A shopper rates an automatic answer of their own conversation (the widget's thumbs).
#[utoipa::path(post, path = "/v1/decisions/{id}/rating", params(("id" = i64, Path)), request_body = RatingRequest,
    responses((status = 200, description = "stored"), (status = 404, description = "No such answer in that conversation", body = ErrorBody),
    (status = 409, body = ErrorBody)))]
async fn rate(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<RatingRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    service(&state, move |s| s.turns.rate(id, &req.conversation_id, req.helpful)).await?;
    Ok(Json(serde_json::json!({"status": "stored"})))
}

/// The conversation as its shopper reads it again: the widget restores it
/// after a reload (the conversation id is the shopper's credential).
#[utoipa::path(get, path = "/v1/conversations/{id}/transcript", params(("id" = String, Path)), responses(
    (status = 200, body = ShopperTranscript), (status = 404, body = ErrorBody)))]
async fn shopper_transcript(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ShopperTranscript>, ApiError> {
    Ok(Json(service(&state, move |s| s.turns.transcript(&id)).await?))
}

/// The shopper rates the service (1–5, optional comment) after an agent
/// closed the conversation; once per handoff.
#[utoipa::path(post, path = "/v1/conversations/{id}/survey", params(("id" = String, Path)),
    request_body = SurveyAnswer, responses(
    (status = 200, description = "Stored"), (status = 400, description = "Score outside 1–5 or comment too long", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "Not closed by an agent yet, or already answered", body = ErrorBody)))]
async fn survey(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(answer): ApiJson<SurveyAnswer>,
) -> Result<Json<serde_json::Value>, ApiError> {
    service(&state, move |s| s.turns.answer_survey(&id, &answer)).await?;
    Ok(Json(serde_json::json!({"status": "stored"})))
}

/// A shopper waiting for an agent leaves a message and how to reach them
/// (offered when no agent can answer); the ticket goes to the head of the queue.
#[utoipa::path(post, path = "/v1/conversations/{id}/leave-message", params(("id" = String, Path)),
    request_body = LeaveMessage, responses(
    (status = 200, body = LeftMessage), (status = 400, description = "Empty text or invalid contact", body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, description = "Not waiting for an agent", body = ErrorBody)))]
async fn leave_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<LeaveMessage>,
) -> Result<Json<LeftMessage>, ApiError> {
    let conversation_id = id.clone();
    let left = service(&state, move |s| s.turns.leave_message(&id, &req)).await?;
    publish(&state, Event { message: Some(left.message.clone()), ..Event::new(conversation_id, EventKind::Shopper) })
        .await;
    Ok(Json(left))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    /// The console's own id, as given to `/v1/agent/events?console=`.
    pub console: String,
    /// Away: connected but not taking shoppers.
    pub away: bool,
}

/// An agent's console sets itself away or back (a connected console not away is a present agent).
#[utoipa::path(post, path = "/v1/agent/presence", security(("api_key" = [])), request_body = PresenceRequest, responses(
    (status = 200, description = "Agents present now"), (status = 404, description = "No such console connected", body = ErrorBody)))]
async fn presence(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PresenceRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let away = req.away;
    service(&state, move |s| s.presence.set_away(&req.console, req.away)).await?;
    if !away {
        auto_assign(&state).await;
    }
    Ok(Json(serde_json::json!({"present": state.services.presence.present()})))
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
        let from = self.from.unwrap_or(to.saturating_sub(7 * 24 * 3600));
        if from >= to {
            return Err(ApiError::status(StatusCode::BAD_REQUEST, "`from` must be before `to`"));
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
    Ok(Json(admitted(&state, &state.admission, move |s| s.learning.mine_gaps(from, to)).await?))
}

#[derive(Debug, Deserialize)]
struct StatusFilter {
    status: Option<ProposalStatus>,
}

/// Proposals (default: pending), largest first.
#[utoipa::path(get, path = "/v1/kb/proposals", security(("api_key" = [])),
    params(("status" = Option<String>, Query, description = "pending (default), approved or dismissed")),
    responses((status = 200, body = Vec<Proposal>)))]
async fn proposals(
    State(state): State<AppState>,
    axum::extract::Query(f): axum::extract::Query<StatusFilter>,
) -> Result<Json<Vec<Proposal>>, ApiError> {
    let status = f.status.unwrap_or(ProposalStatus::Pending);
    Ok(Json(service(&state, move |s| s.learning.proposals(status)).await?))
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
    Extension(actor): Extension<Actor>,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<ApproveRequest>,
) -> Result<Json<KbSummary>, ApiError> {
    Ok(Json(service(&state, move |s| s.learning.approve(id, req.faq_id.as_deref(), req.entry, &actor)).await?))
}

/// Dismiss a proposal.
#[utoipa::path(post, path = "/v1/kb/proposals/{id}/dismiss", security(("api_key" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "dismissed"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn dismiss(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Json<serde_json::Value>, ApiError> {
    service(&state, move |s| s.learning.dismiss(id)).await?;
    Ok(Json(serde_json::json!({"status": "dismissed"})))
}

/// Service analytics for a time window.
#[utoipa::path(get, path = "/v1/stats", security(("api_key" = [])),
    params(("from" = Option<i64>, Query), ("to" = Option<i64>, Query)), responses((status = 200, body = Stats)))]
async fn stats(
    State(state): State<AppState>,
    axum::extract::Query(w): axum::extract::Query<Window>,
) -> Result<Json<Stats>, ApiError> {
    let (from, to) = w.bounds()?;
    Ok(Json(service(&state, move |s| s.stats(from, to)).await?))
}

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "ok")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the database responds and the live index and vectors are whole.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::status(StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
    }
    let services = state.services.clone();
    blocking(move || Ok(services.check_ready()))
        .await?
        .map_err(|why| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", why))?;
    Ok(Json(serde_json::json!({"status": "ready", "kb_version": state.services.knowledge.version()})))
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    let to = chrono::Utc::now().timestamp() + 1;
    match service(&state, move |s| Ok(s.store.desk_figures(to - metrics::DESK_WINDOW_SECS, to)?)).await {
        Ok((all, agents)) => state.metrics.set_desk(&all, &agents),
        // The other metrics still render; the desk's keep their last values.
        Err(e) => tracing::warn!("desk figures for /metrics: {}", e.message),
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], ApiDoc::openapi().to_json().unwrap_or_default())
}
