// Emits tracing-subscriber's JSON format for a service whose PostgreSQL pool times out.
use tracing::{error, info, info_span, trace, warn};

fn main() {
    tracing_subscriber::fmt().json().with_max_level(tracing::Level::TRACE).init();
    info!(port = 8080, "listening");
    let span = info_span!("request", method = "GET", uri = "/orders");
    let _g = span.enter();
    trace!(yaks_shaved = 2);
    warn!(waited_ms = 30000, "slow acquire");
    error!(error = "pool timed out while waiting for an open connection", "failed to acquire connection");
    error!(error = "error communicating with database: Connection refused (os error 111)");
}
