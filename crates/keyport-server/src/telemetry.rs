//! Logs through tracing-subscriber (pretty or JSON, filtered by `RUST_LOG`)
//! and, when `[tracing] otlp_endpoint` is set, the same spans exported as
//! OpenTelemetry traces over OTLP/gRPC.
//!
//! Each call gets one server span, `grpc`, named after its method, child
//! of the caller's W3C `traceparent` when one is sent. It carries the RPC's
//! names, its gRPC status code, Keyport's reason and the user's id once
//! known; never a token, password or email (none of them is a field of any
//! span or event).

use std::time::Duration;

use http::HeaderMap;
use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::TracerProvider as _,
};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
};
use serde::{Deserialize, Serialize};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::LogFormat;

/// Filter used when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,h2=warn";
/// How long one export to the collector may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `[tracing]` section: OpenTelemetry traces; off until
/// `otlp_endpoint` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector's OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    /// Empty: no traces.
    pub otlp_endpoint: String,
    /// The `service.name` of the exported spans.
    pub service_name: String,
    /// Percent of calls traced when the caller did not decide (0 to 100);
    /// a caller's sampled `traceparent` is always followed.
    pub sample_percent: u8,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self { otlp_endpoint: String::new(), service_name: "keyport".into(), sample_percent: 100 }
    }
}

/// The installed telemetry; [`Telemetry::shutdown`] sends the spans still
/// buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the trace exporter, if any.
    pub fn shutdown(self) {
        if let Some(traces) = self.traces
            && let Err(error) = traces.shutdown()
        {
            tracing::warn!(%error, "flushing traces failed");
        }
    }
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// `[tracing]` is wrong.
    #[error("tracing.{field}: {problem}")]
    Invalid {
        /// The key at fault.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber: logs in `format`, and traces when
/// `tracing` has an endpoint. Calling it twice keeps the first. Must run
/// inside the Tokio runtime (the exporter's channel lives there).
pub fn init(format: LogFormat, tracing: &TracingConfig) -> Result<Telemetry, TracingError> {
    let traces = tracer_provider(tracing)?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let logs = tracing_subscriber::fmt::layer().with_target(false).with_ansi(ansi);
    let logs: Boxed = match format {
        LogFormat::Pretty => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    };
    let mut layers = vec![logs];
    if let Some(provider) = &traces {
        layers.push(tracing_opentelemetry::layer().with_tracer(provider.tracer("keyport")).boxed());
    }
    let _already_set = tracing_subscriber::registry().with(layers).with(filter(DEFAULT_FILTER)).try_init();
    Ok(Telemetry { traces })
}

/// Installs the global subscriber for command-line tools (`keyport admin`):
/// warnings and errors only unless `RUST_LOG` says otherwise, on standard
/// error, so that standard output carries the tool's answer alone.
pub fn init_for_tools() {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter("warn"))
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `RUST_LOG`, else `fallback`.
fn filter(fallback: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(fallback))
}

fn tracer_provider(config: &TracingConfig) -> Result<Option<SdkTracerProvider>, TracingError> {
    if config.otlp_endpoint.is_empty() {
        return Ok(None);
    }
    let invalid = |field, problem: String| TracingError::Invalid { field, problem };
    let endpoint = &config.otlp_endpoint;
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(invalid("otlp_endpoint", format!("`{endpoint}` must start with http:// or https://")));
    }
    if config.sample_percent > 100 {
        return Err(invalid("sample_percent", format!("{} is more than 100", config.sample_percent)));
    }
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| invalid("otlp_endpoint", e.to_string()))?;
    let ratio = f64::from(config.sample_percent) / 100.0;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build();
    Ok(Some(provider))
}

/// The span of one gRPC call, child of the caller's `traceparent` if any.
/// Unknown paths are named `unknown`, like in the metrics.
pub(crate) fn rpc_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = crate::rpc_observer::names_of(path);
    let span = tracing::info_span!(
        "grpc",
        method = %path,
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        keyport.reason = Empty,
        enduser.id = Empty,
    );
    if request.headers().contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
        let _ = span.set_parent(parent);
    }
    span
}

/// Notes on the current call's span who the caller is.
pub(crate) fn record_user(user_id: &impl std::fmt::Display) {
    tracing::Span::current().record("enduser.id", tracing::field::display(user_id));
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
