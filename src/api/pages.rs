//! The pages served by the binary: a demo store page with the embeddable
//! chat widget, the agent console, and the SSE streams that keep both live
//! (events from every replica, replayed after a reconnect's `Last-Event-ID`).
//! Streams end when the server shuts down, so shutdown never waits on an
//! open browser tab.

use std::convert::Infallible;

use axum::Extension;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};

use super::{ApiError, AppState, service};
use crate::service::{LiveEvent, Replay};
use crate::store::Actor;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Html(include_str!("pages/store.html")) }))
        .route("/agent", get(|| async { Html(include_str!("pages/agent.html")) }))
}

pub async fn widget() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8")], include_str!("pages/widget.js"))
}

/// Events for one stream: what it missed after its `Last-Event-ID` (read
/// from the log), then the live ones, each once, in the log's order.
/// `only`: a shopper's conversation (else everything, for agents).
async fn stream(
    state: &AppState,
    headers: &HeaderMap,
    only: Option<String>,
) -> Result<impl Stream<Item = Result<SseEvent, Infallible>> + use<>, ApiError> {
    // Subscribed before the replay is read, so nothing falls in between.
    let live = BroadcastStream::new(state.services.events.subscribe());
    let seen: Option<i64> = headers.get("last-event-id").and_then(|v| v.to_str().ok()?.trim().parse().ok());
    let conversation = only.clone();
    let replay = match seen {
        Some(after) => service(state, move |s| s.events.replay(after, conversation.as_deref())).await?,
        None => Replay { events: Vec::new(), after: 0, complete: true },
    };
    let (after, complete) = (replay.after, replay.complete);
    let mine = move |e: &LiveEvent| only.as_deref().is_none_or(|id| e.for_shopper(id));
    let mine_too = mine.clone();
    let replayed = tokio_stream::iter(replay.events).filter(move |e| mine(e)).map(|e| Ok(sse(&e)));
    // A stream sent only part of what it missed, or fallen behind the live
    // events (lagged), ends: the browser reconnects with the last id it got
    // and the rest comes from the log, so nothing is skipped.
    let live = live.take_while(move |e| complete && e.is_ok()).filter_map(move |e| {
        let e = e.ok()?;
        (e.id > after && mine_too(&e)).then(|| Ok(sse(&e)))
    });
    Ok(futures_util::StreamExt::take_until(replayed.chain(live), state.shutdown.clone().cancelled_owned()))
}

fn sse(e: &LiveEvent) -> SseEvent {
    SseEvent::default().id(e.id.to_string()).event(&*e.kind).data(&*e.data)
}

/// The shopper's live stream: agent replies and closing of one conversation.
pub async fn conversation_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let check = id.clone();
    service(&state, move |s| Ok(s.store.conversation(&check)?)).await?;
    Ok(Sse::new(stream(&state, &headers, Some(id)).await?).keep_alive(KeepAlive::default()))
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
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let events = stream(&state, &headers, None).await?;
    let connected = state.services.presence.connect(q.console, actor.agent_id());
    // The guard lives as long as the stream: a closed tab is no longer present.
    let events = events.map(move |e| {
        let _present = &connected;
        e
    });
    // An agent arriving may get what waits (with automatic assignment); the
    // stream is subscribed already, so this console hears of it.
    let arrived = state.clone();
    tokio::spawn(async move { super::auto_assign(&arrived).await });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
