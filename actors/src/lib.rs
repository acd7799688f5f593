//! The Phoenix engine: actors, the durable event log, dedupe — no HTTP in here.
//!
//! Supervision tree:
//!
//! ```text
//! Supervisor (supervisor.rs)
//!  ├── TenantActor "acme"   (tenant.rs)  dedupe window + log position; restarted from sled
//!  └── TenantActor "…"
//! Committer thread (committer.rs)        one fsync acknowledges every batch queued before it
//! SledLog (store.rs)                     one sled tree per tenant, one record per batch
//! ```
//!
//! Data flow: the edge validates an [`event::Event`], calls [`engine::Engine::ingest`]; the
//! tenant actor dedupes, appends one record, hands its reply to the committer, which answers
//! after `fsync` and advances the tenant's durable head — the position log consumers follow.

pub mod committer;
pub mod dedupe;
pub mod engine;
pub mod error;
pub mod event;
pub mod leaderboard;
pub mod rewards;
pub mod session;
pub mod store;
pub mod supervisor;
pub mod tenant;

pub use engine::{Engine, EngineConfig};
pub use error::EngineError;
pub use event::{Event, EventError};
pub use store::{EventLog, LogEntry, SledLog};
pub use tenant::Outcome;
