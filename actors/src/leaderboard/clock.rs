//! The server clock a board reads "now" from, injectable so tests can roll windows over.

use std::sync::Arc;

use chrono::Utc;

/// The server clock, injectable so tests can roll windows over.
pub type Clock = Arc<dyn Fn() -> chrono::DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}
