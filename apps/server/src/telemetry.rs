//! Logging and tracing: `tracing` to stdout (JSON or pretty), a slow-request report
//! naming the spans that took the time, plus OpenTelemetry span export over OTLP/gRPC
//! when an endpoint is configured.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, Settings};

/// Flushes exported spans when dropped (keep it alive for the process lifetime).
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("OTLP exporter: {0}")]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("tracing subscriber already installed: {0}")]
    AlreadyInstalled(String),
}

/// Installs the global subscriber. Call once, early in `main`.
pub fn init(settings: &Settings) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().compact().boxed(),
    };
    let (otel, provider) = match &settings.otel_endpoint {
        None => (None, None),
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name("pto-server").build())
                .build();
            let tracer = provider.tracer("pto-server");
            (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                Some(provider),
            )
        }
    };
    // Per-layer filters: the log lines follow LOG_LEVEL, while the slow-request report
    // also sees the debug-level stage spans (`handler`, `authz`, `db.begin`, …) without
    // them appearing in the logs.
    // Without an exporter there is no OpenTelemetry layer at all: a filtered empty
    // layer would still evaluate its filter on every span of every request.
    let otel = otel.map(|layer| {
        layer.with_filter(
            EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info")),
        )
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(SlowRequestLayer::new(settings.slow_request).with_filter(LevelFilter::DEBUG))
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    Ok(TelemetryGuard { provider })
}

/// The name of the per-request root span (see `http::request_context`).
pub const REQUEST_SPAN: &str = "request";

/// Logs one warning per request slower than a threshold, naming the spans that took
/// the time: every span under a `request` span adds its *own* time (its duration minus
/// that of its children) to the request's tally by span name; when the request span
/// closes after `threshold` or more, the top spans are listed (`slowest`), with the time
/// spent outside any span as `(request)`.
///
/// The report goes to the subscriber this layer belongs to, whichever thread closes the
/// request span (its last holder may be a task on another thread, where another
/// subscriber — or none — is the default).
#[derive(Debug, Clone)]
pub struct SlowRequestLayer {
    threshold: std::time::Duration,
    dispatch: std::sync::Arc<std::sync::OnceLock<tracing::dispatcher::WeakDispatch>>,
}

impl SlowRequestLayer {
    /// A layer reporting requests that take `threshold` or longer.
    #[must_use]
    pub fn new(threshold: std::time::Duration) -> Self {
        Self {
            threshold,
            dispatch: std::sync::Arc::default(),
        }
    }
}

/// How many spans the slow-request line names.
const SLOWEST_LISTED: usize = 5;

/// Timing kept on every span below a request.
struct SpanTiming {
    start: std::time::Instant,
    in_children: std::time::Duration,
}

/// The tally kept on a request span.
struct RequestTally {
    timing: SpanTiming,
    own: Vec<(&'static str, std::time::Duration, u32)>,
    request_id: String,
    method: String,
    path: String,
    route: String,
}

#[derive(Default)]
struct RequestFields {
    request_id: Option<String>,
    method: Option<String>,
    path: Option<String>,
    route: Option<String>,
}

impl tracing::field::Visit for RequestFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let slot = match field.name() {
            "request_id" => &mut self.request_id,
            "method" => &mut self.method,
            "path" => &mut self.path,
            "route" => &mut self.route,
            _ => return,
        };
        *slot = Some(value.to_owned());
    }
}

impl<S> Layer<S> for SlowRequestLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        // Weak: the subscriber owns this layer.
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let timing = SpanTiming {
            start: std::time::Instant::now(),
            in_children: std::time::Duration::ZERO,
        };
        let mut ext = span.extensions_mut();
        if attrs.metadata().name() == REQUEST_SPAN {
            let mut fields = RequestFields::default();
            attrs.record(&mut fields);
            ext.insert(RequestTally {
                timing,
                own: Vec::new(),
                request_id: fields.request_id.unwrap_or_default(),
                method: fields.method.unwrap_or_default(),
                path: fields.path.unwrap_or_default(),
                route: String::new(),
            });
        } else {
            ext.insert(timing);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(tally) = ext.get_mut::<RequestTally>() {
            let mut fields = RequestFields::default();
            values.record(&mut fields);
            if let Some(route) = fields.route {
                tally.route = route;
            }
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let (elapsed, own, is_request) = {
            let ext = span.extensions();
            if let Some(t) = ext.get::<SpanTiming>() {
                let elapsed = t.start.elapsed();
                (elapsed, elapsed.saturating_sub(t.in_children), false)
            } else if let Some(t) = ext.get::<RequestTally>() {
                let elapsed = t.timing.start.elapsed();
                (elapsed, elapsed.saturating_sub(t.timing.in_children), true)
            } else {
                return;
            }
        };
        if is_request {
            if elapsed < self.threshold {
                return;
            }
            let ext = span.extensions();
            let Some(tally) = ext.get::<RequestTally>() else {
                return;
            };
            let mut spans = tally.own.clone();
            spans.push(("(request)", own, 1));
            spans.sort_by_key(|s| std::cmp::Reverse(s.1));
            let slowest = spans
                .iter()
                .take(SLOWEST_LISTED)
                .map(|(name, d, n)| {
                    let ms = d.as_secs_f64() * 1e3;
                    if *n > 1 {
                        format!("{name}={ms:.1}ms(x{n})")
                    } else {
                        format!("{name}={ms:.1}ms")
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            let report = || {
                tracing::warn!(
                    request_id = %tally.request_id,
                    method = %tally.method,
                    path = %tally.path,
                    route = %tally.route,
                    elapsed_ms = elapsed.as_secs_f64() * 1e3,
                    threshold_ms = self.threshold.as_secs_f64() * 1e3,
                    slowest = %slowest,
                    "slow request"
                );
            };
            match self
                .dispatch
                .get()
                .and_then(tracing::dispatcher::WeakDispatch::upgrade)
            {
                Some(own) => tracing::dispatcher::with_default(&own, report),
                None => report(),
            }
            return;
        }
        // Charge the parent with this span's whole time, the request with its own.
        let name = span.metadata().name();
        if let Some(parent) = span.parent() {
            let mut ext = parent.extensions_mut();
            if let Some(t) = ext.get_mut::<SpanTiming>() {
                t.in_children += elapsed;
            } else if let Some(t) = ext.get_mut::<RequestTally>() {
                t.timing.in_children += elapsed;
            }
        }
        if let Some(request) = span
            .scope()
            .skip(1)
            .find(|s| s.metadata().name() == REQUEST_SPAN)
        {
            let mut ext = request.extensions_mut();
            if let Some(tally) = ext.get_mut::<RequestTally>() {
                match tally.own.iter_mut().find(|(n, _, _)| *n == name) {
                    Some(entry) => {
                        entry.1 += own;
                        entry.2 += 1;
                    }
                    None => tally.own.push((name, own, 1)),
                }
            }
        }
    }
}
