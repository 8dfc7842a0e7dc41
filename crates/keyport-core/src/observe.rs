//! What the use cases report to the process's metrics recorder.
//!
//! Through the `metrics` facade: without an installed recorder (metrics
//! off, the default) each call is a no-op. The names are declared once,
//! here, and described by the server's exporter.

use std::time::Duration;

/// `GetSession`'s and API keys' cache lookups, by `kind` and `result`.
pub const CACHE_LOOKUPS: &str = "keyport_session_cache_lookups_total";
/// Time a password hash or verification waited for a hashing thread.
pub const HASHING_WAIT: &str = "keyport_hashing_wait_seconds";
/// Hashes refused because the hashing queue was full or the wait ran out.
pub const HASHING_REJECTIONS: &str = "keyport_hashing_rejections_total";
/// Requests refused by a rate limit, by the `limit` that refused them.
pub const RATE_LIMIT_REJECTIONS: &str = "keyport_rate_limit_rejections_total";

/// What a cache lookup was for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CacheKind {
    Session,
    ApiKey,
}

/// Counts one cache lookup.
pub(crate) fn cache_lookup(kind: CacheKind, hit: bool) {
    let kind = match kind {
        CacheKind::Session => "session",
        CacheKind::ApiKey => "api_key",
    };
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!(CACHE_LOOKUPS, "kind" => kind, "result" => result).increment(1);
}

/// Records how long a hashing job waited for its permit.
pub(crate) fn hashing_waited(wait: Duration) {
    metrics::histogram!(HASHING_WAIT).record(wait.as_secs_f64());
}

/// Counts a hashing job refused for want of a thread.
pub(crate) fn hashing_rejected() {
    metrics::counter!(HASHING_REJECTIONS).increment(1);
}

/// Counts a request refused by the limit named `limit` (a counter scope).
pub(crate) fn rate_limited(limit: &'static str) {
    metrics::counter!(RATE_LIMIT_REJECTIONS, "limit" => limit).increment(1);
}
