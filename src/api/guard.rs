//! What stands before the handlers: API-key checks, per-client rate
//! limiting (the client named by trusted proxies' `X-Forwarded-For`),
//! request size limits, read timeouts, and admission of model work.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, AppState};
use crate::config::ServerConfig;
use crate::store::Actor;

/// Longest request target answered with a JSON 414 (hyper itself refuses
/// beyond 64 KiB, before any of this code runs).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header bytes (names and values) answered with a JSON 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header fields answered with a JSON 431 (hyper refuses beyond 100).
pub const MAX_HEADERS: usize = 64;

/// Per-client rate limiting with bounded memory.
pub struct ClientLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    trusted: Vec<IpNet>,
    max_clients: usize,
}

impl ClientLimiter {
    pub fn new(s: &ServerConfig) -> Result<ClientLimiter, String> {
        let per_second = NonZeroU32::new(s.rate_per_second.max(1)).expect("max(1)");
        let burst = NonZeroU32::new(s.rate_burst.max(1)).expect("max(1)");
        let trusted = s
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("server.trusted_proxies: {p:?} is not an address or CIDR range"))
            })
            .collect::<Result<_, _>>()?;
        Ok(ClientLimiter {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            trusted,
            max_clients: s.rate_limit_clients.max(1),
        })
    }

    /// The client a request comes from: the peer, or, when the peer is a
    /// trusted proxy, the nearest untrusted address in `X-Forwarded-For`
    /// (read from the right: entries left of it could be forged by the client).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        // From the right: entries are appended by each proxy, so only the
        // part right of the nearest untrusted hop is trustworthy; anything
        // unreadable stops the walk (a client cannot push itself out of its
        // own bucket with garbage on the left).
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else { break };
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        client
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// Whether `client` may send another message now.
    pub fn check(&self, client: IpAddr) -> bool {
        if self.limiter.len() >= self.max_clients {
            self.forget_idle();
        }
        self.limiter.check_key(&client).is_ok()
    }

    /// Drops clients whose bucket is full again (indistinguishable from new).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// Widget routes: one client's requests within `server.rate_per_second`
/// and `rate_burst`. Counted in this process first (a flood never reaches
/// the database), then, on a database replicas share, across them (behind
/// a load balancer each replica sees only part of a shopper's requests).
pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) {
        let client = state.limiter.client(peer, req.headers());
        if !state.limiter.check(client) || !shared_check(&state, client).await {
            return ApiError::status(StatusCode::TOO_MANY_REQUESTS, "too many messages; please wait a moment")
                .retry_after(1)
                .into_response();
        }
    }
    next.run(req).await
}

/// The replicas' shared count for `client` (always allowed on a database of
/// one process; allowed, and logged, when the database cannot say).
async fn shared_check(state: &AppState, client: IpAddr) -> bool {
    if !state.services.store.is_shared() {
        return true;
    }
    let s = &state.services.config.server;
    let interval_ms = (1000 / s.rate_per_second.max(1)).max(1) as i64;
    let burst = s.rate_burst.max(1) as i64;
    let now = chrono::Utc::now().timestamp_millis();
    let client = client.to_string();
    match super::service(state, move |s| Ok(s.store.rate_allow(&client, now, interval_ms, burst)?)).await {
        Ok(allowed) => allowed,
        Err(e) => {
            tracing::warn!("shared rate limit unavailable: {e:?}");
            true
        }
    }
}

/// Agent routes: who is calling, from `Authorization: Bearer <token>` (or
/// `X-Api-Key`): the store's API key (automation, acting as an admin) or an
/// agent's session token. The [`Actor`] goes into the request's extensions.
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = bearer(req.headers()).map(str::to_string);
    admit(&state, given, req, next).await
}

#[derive(Deserialize)]
struct KeyParam {
    key: Option<String>,
}

/// The agents' event stream: EventSource cannot send headers, so `?key=`
/// (API key or session token) is accepted here (and only here); a header,
/// when sent, decides.
pub async fn authenticate_with_query(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = bearer(req.headers())
        .map(str::to_string)
        .or_else(|| Query::<KeyParam>::try_from_uri(req.uri()).ok().and_then(|q| q.0.key));
    admit(&state, given, req, next).await
}

/// Runs the request as the [`Actor`] `given` names, or answers 401.
async fn admit(state: &AppState, given: Option<String>, mut req: Request, next: Next) -> Response {
    match actor(state, given).await {
        Ok(actor) => {
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Admin routes (accounts, knowledge edits): after [`authenticate`].
pub async fn require_admin(req: Request, next: Next) -> Response {
    match req.extensions().get::<Actor>() {
        Some(a) if a.is_admin() => next.run(req).await,
        Some(_) => ApiError::status(StatusCode::FORBIDDEN, "this needs an admin account").into_response(),
        None => unauthorized(),
    }
}

async fn actor(state: &AppState, given: Option<String>) -> Result<Actor, ApiError> {
    let Some(given) = given else { return Err(unauthorized_error()) };
    if key_matches(state, &given) {
        return Ok(Actor::API_KEY);
    }
    let services = state.services.clone();
    let agent = tokio::task::spawn_blocking(move || services.accounts.agent(&given)).await??;
    agent.map(|a| Actor { agent: Some(a) }).ok_or_else(unauthorized_error)
}

/// The credential sent with a request (`Authorization: Bearer` or `X-Api-Key`).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
}

fn key_matches(state: &AppState, given: &str) -> bool {
    let (a, b) = (given.as_bytes(), state.api_key.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized_error() -> ApiError {
    ApiError::status(
        StatusCode::UNAUTHORIZED,
        "missing, wrong or expired credentials (Authorization: Bearer <API key or session token>)",
    )
}

fn unauthorized() -> Response {
    unauthorized_error().into_response()
}

/// Oversized request targets and headers get JSON errors like every other.
pub async fn request_limits(req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        let message = format!("request target of {uri_len} bytes; at most {MAX_URI_BYTES}");
        return ApiError::status(StatusCode::URI_TOO_LONG, message).into_response();
    }
    let headers = req.headers();
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        let message = format!(
            "{} headers of {bytes} bytes; at most {MAX_HEADERS} headers, {MAX_HEADER_BYTES} bytes",
            headers.len()
        );
        return ApiError::status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, message).into_response();
    }
    next.run(req).await
}

/// Reads (GET) are cut at the request timeout. Writes are not: a write
/// either completes or fails before changing anything, and an answer checks
/// its own deadline before it records the turn.
pub async fn read_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::GET {
        return next.run(req).await;
    }
    let limit = Duration::from_secs(state.services.config.server.request_timeout_secs.max(1));
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long")
            .retry_after(1)
            .into_response(),
    }
}

/// Admission of work that needs the model: at most `max_queued_answers`
/// requests are running or waiting; more are refused at once rather than
/// queued into unbounded latency.
#[derive(Clone)]
pub struct Admission(Arc<Semaphore>);

impl Admission {
    pub fn new(max: usize) -> Admission {
        Admission(Arc::new(Semaphore::new(max.max(1))))
    }

    pub fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.0.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "too many questions at once; please retry")
                .retry_after(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(trusted: &[&str]) -> ClientLimiter {
        let config =
            ServerConfig { trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        ClientLimiter::new(&config).unwrap()
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let none = limiter(&[]);
        assert_eq!(none.client(ip("10.0.0.5"), &xff("1.2.3.4")), ip("10.0.0.5"), "untrusted peer: header ignored");
        let proxy = limiter(&["10.0.0.0/24", "::1"]);
        assert_eq!(proxy.client(ip("10.0.0.5"), &xff("1.2.3.4")), ip("1.2.3.4"));
        // A client forging the leftmost entry does not escape its own address.
        assert_eq!(proxy.client(ip("10.0.0.5"), &xff("9.9.9.9, 1.2.3.4")), ip("1.2.3.4"));
        // Garbage on the left changes nothing; garbage from a trusted hop stops at the last readable one.
        assert_eq!(proxy.client(ip("10.0.0.5"), &xff("not-an-ip, 1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(proxy.client(ip("10.0.0.5"), &xff("1.2.3.4, junk")), ip("10.0.0.5"));
        // Chained trusted proxies are skipped.
        assert_eq!(proxy.client(ip("10.0.0.5"), &xff("1.2.3.4, 10.0.0.7")), ip("1.2.3.4"));
        assert_eq!(proxy.client(ip("::1"), &HeaderMap::new()), ip("::1"));
        assert!(
            ClientLimiter::new(&ServerConfig { trusted_proxies: vec!["nonsense".into()], ..Default::default() })
                .is_err()
        );
    }

    #[test]
    fn limiter_memory_is_bounded() {
        let config =
            ServerConfig { rate_limit_clients: 100, rate_per_second: 1000, rate_burst: 1, ..Default::default() };
        let limiter = ClientLimiter::new(&config).unwrap();
        let mut most = 0;
        for i in 0..10_000u32 {
            if i % 1000 == 0 {
                // Buckets refill in 1 ms: older clients become forgettable.
                std::thread::sleep(Duration::from_millis(3));
            }
            assert!(limiter.check(IpAddr::from(i.to_be_bytes())));
            most = most.max(limiter.tracked());
        }
        assert!(most <= 100 + 1000, "tracked up to {most} clients");
    }
}
