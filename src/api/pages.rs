//! The pages served by the binary: a demo store page with the embeddable
//! chat widget, the agent console, and the SSE streams that keep both live.

use std::convert::Infallible;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};

use super::{ApiError, AppState, blocking};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Html(include_str!("pages/store.html")) }))
        .route("/agent", get(|| async { Html(include_str!("pages/agent.html")) }))
        .route("/widget.js", get(widget))
}

async fn widget() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8")], include_str!("pages/widget.js"))
}

fn stream(state: &AppState, only: Option<String>) -> impl Stream<Item = Result<SseEvent, Infallible>> + use<> {
    BroadcastStream::new(state.events.subscribe()).filter_map(move |e| {
        let e = e.ok()?; // a lagging listener skips what it missed
        if only.as_ref().is_some_and(|id| *id != e.conversation_id) || (only.is_some() && e.kind == "shopper") {
            return None;
        }
        Some(Ok(SseEvent::default().event(e.kind).json_data(&e).unwrap_or_default()))
    })
}

/// The shopper's live stream: agent replies and closing of one conversation.
pub async fn conversation_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let assistant = state.assistant.clone();
    let check = id.clone();
    blocking(move || {
        assistant
            .store()
            .conversation(&check)
            .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "conversation not found"))
    })
    .await?;
    Ok(Sse::new(stream(&state, Some(id))).keep_alive(KeepAlive::default()))
}

/// The agents' live stream: every conversation event.
pub async fn agent_events(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    Sse::new(stream(&state, None)).keep_alive(KeepAlive::default())
}
