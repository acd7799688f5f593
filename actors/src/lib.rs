//! The Phoenix engine: actors, the durable event log, dedupe — no HTTP in here.
//!
//! Supervision tree:
//!
//! ```text
//! Supervisor (supervisor.rs)                restarts a failed child from sled
//!  ├── TenantActor "acme"   (tenant.rs)     dedupe window + log position
//!  ├── LeaderboardActor "acme/weekly"       (leaderboard/actor.rs) takes decoded entries
//!  │                                         from its tenant's feed; checkpoint + replay on
//!  │                                         restart; shared live views for push subscribers
//!  └── …                                     (restarts back off: 100 ms → 30 s, jittered)
//! Feed "acme" (feed.rs)                     one reader per tenant: follows the durable head,
//!                                            decodes each entry once, wakes only the boards
//!                                            whose rules can match its type
//! SessionActor (session.rs)                 one per WebSocket connection, owned by the edge;
//!                                            bounded outbound queue, resync or close
//! Committer threads (committer.rs)          writer: each round's events as few log records as
//!                                            fit, bounded bytes per tenant per round (fair);
//!                                            fsync: one fsync acknowledges whole rounds
//! SledLog (store.rs)                        one sled tree per tenant, ≤ 64 KB records,
//!                                            LZ4-compressed from 512 bytes
//! Upkeep task (engine/maintenance.rs)       low-disk guard (retention.rs) every second,
//!                                            log retention in bounded steps every minute
//! RewardStore (rewards.rs)                  vote-reward dedupe + grants, one transaction each
//! CloseStore (leaderboard/close.rs)         a window close: record + grants + outbox, one tx
//! Outbox (outbox.rs)                        durable webhook deliveries, retried by the edge
//! cluster/ (not wired yet)                  JetStreamLog, KV leases, EventLog contract suite
//! ```
//!
//! Data flow: the edge validates an [`event::Event`], calls [`engine::Engine::ingest`]; the
//! tenant actor dedupes and assigns positions, hands the events and its reply to the
//! committer, which writes them, answers after `fsync` and advances the tenant's durable
//! head. The tenant's feed reads and decodes the log up to that head once; leaderboard actors
//! take the entries their rules can match, score events into event-time
//! windows (rank index per window), checkpoint, freeze closed windows into history, and
//! publish view changes to sessions.

pub mod cluster;
pub mod committer;
pub mod dedupe;
pub mod engine;
pub mod error;
pub mod event;
pub mod feed;
pub mod leaderboard;
pub mod outbox;
pub mod retention;
pub mod rewards;
pub mod session;
pub mod store;
pub mod supervisor;
pub mod tenant;
pub mod throttle;

pub use engine::{Engine, EngineConfig};
pub use error::EngineError;
pub use event::{Event, EventError};
pub use store::{EventLog, LogEntry, SledLog};
pub use tenant::Outcome;
