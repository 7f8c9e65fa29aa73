//! Prometheus metrics: request latency per route and status, decisions by
//! action, the embedding model's batched passes (duration, queries per
//! pass), and the agent desk's figures over the last day (read from the
//! store at each scrape). A registry per server (no global state), rendered
//! at `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::{AgentFigures, DeskFigures};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub action: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeskLabels {
    /// A `DeskFigures` field (README: "Service metrics").
    pub figure: String,
    /// `all`, or an agent's id.
    pub agent: String,
}

/// The window `/metrics` reports the desk's figures for, ending now.
pub const DESK_WINDOW_SECS: i64 = 24 * 3600;

pub struct Metrics {
    registry: Registry,
    pub latency: Family<RouteLabels, Histogram>,
    pub decisions: Family<DecisionLabels, Counter>,
    pub embed_pass_seconds: Histogram,
    pub embed_pass_queries: Histogram,
    desk: Family<DeskLabels, Gauge<f64, AtomicU64>>,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~8 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("xiaoer");
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register("http_request_duration_seconds", "HTTP request latency", latency.clone());
        registry.register("decisions", "Decisions taken on shopper messages", decisions.clone());
        let embed_pass_seconds = latency_histogram();
        let embed_pass_queries = Histogram::new(exponential_buckets(1.0, 2.0, 7));
        registry.register(
            "embedding_pass_seconds",
            "Forward passes of the embedding model for shopper queries",
            embed_pass_seconds.clone(),
        );
        registry.register(
            "embedding_pass_queries",
            "Queries batched into one forward pass",
            embed_pass_queries.clone(),
        );
        let desk = Family::<DeskLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "desk",
            "Agent desk figures for the handoffs opened in the last 24 hours, overall and per agent id",
            desk.clone(),
        );
        Metrics { registry, latency, decisions, embed_pass_seconds, embed_pass_queries, desk }
    }

    /// Replaces the desk's figures (a figure with nothing to count is left out).
    pub fn set_desk(&self, all: &DeskFigures, agents: &[AgentFigures]) {
        self.desk.clear();
        let by_agent = agents.iter().map(|a| (a.agent_id.to_string(), &a.figures));
        for (agent, figures) in std::iter::once(("all".to_string(), all)).chain(by_agent) {
            for (figure, value) in figures.named() {
                if let Some(v) = value {
                    let labels = DeskLabels { figure: figure.to_string(), agent: agent.clone() };
                    self.desk.get_or_create(&labels).set(v);
                }
            }
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
