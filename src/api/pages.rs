//! The pages served by the binary: a demo store page with the embeddable
//! chat widget, the agent console, and the SSE streams that keep both live.
//! Streams end when the server shuts down, so shutdown never waits on an
//! open browser tab.

use std::convert::Infallible;

use axum::Extension;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};

use super::events::EventKind;
use super::{ApiError, AppState, service};
use crate::store::Actor;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Html(include_str!("pages/store.html")) }))
        .route("/agent", get(|| async { Html(include_str!("pages/agent.html")) }))
}

pub async fn widget() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8")], include_str!("pages/widget.js"))
}

fn stream(state: &AppState, only: Option<String>) -> impl Stream<Item = Result<SseEvent, Infallible>> + use<> {
    let events = BroadcastStream::new(state.events.subscribe()).filter_map(move |e| {
        let e = e.ok()?; // a lagging listener skips what it missed
        let mine = only.as_ref().is_none_or(|id| *id == e.conversation_id && e.kind != EventKind::Shopper);
        mine.then(|| Ok(SseEvent::default().event(e.kind.name()).json_data(&e).unwrap_or_default()))
    });
    futures_util::StreamExt::take_until(events, state.shutdown.clone().cancelled_owned())
}

/// The shopper's live stream: agent replies and closing of one conversation.
pub async fn conversation_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let check = id.clone();
    service(&state, move |s| Ok(s.store.conversation(&check)?)).await?;
    Ok(Sse::new(stream(&state, Some(id))).keep_alive(KeepAlive::default()))
}

#[derive(Debug, serde::Deserialize)]
pub struct ConsoleQuery {
    /// The console's own id, to set itself away (`POST /v1/agent/presence`).
    console: Option<String>,
}

/// The agents' live stream: every conversation event. While it is open its
/// console counts as a present agent.
pub async fn agent_events(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Query(q): Query<ConsoleQuery>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let connected = state.services.presence.connect(q.console, actor.agent_id());
    // The guard lives as long as the stream: a closed tab is no longer present.
    let events = stream(&state, None).map(move |e| {
        let _present = &connected;
        e
    });
    // An agent arriving may get what waits (with automatic assignment); the
    // stream is subscribed already, so this console hears of it.
    let arrived = state.clone();
    tokio::spawn(async move { super::auto_assign(&arrived).await });
    Sse::new(events).keep_alive(KeepAlive::default())
}
