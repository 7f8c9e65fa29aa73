//! Prometheus metrics: request latency per route and status, decisions by
//! action, the embedding model's batched passes (duration, queries per
//! pass). A registry per server (no global state), rendered at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

pub struct Metrics {
    registry: Registry,
    pub latency: Family<RouteLabels, Histogram>,
    pub decisions: Family<DecisionLabels, Counter>,
    pub embed_pass_seconds: Histogram,
    pub embed_pass_queries: Histogram,
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
        Metrics { registry, latency, decisions, embed_pass_seconds, embed_pass_queries }
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
