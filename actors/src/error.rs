//! Engine error types: faults only. Outcomes (accepted, duplicate) are values, not errors.

use std::sync::Arc;

use thiserror::Error;

use crate::rewards::RewardError;

/// A fault inside the engine. Anything here means the event was **not** acknowledged.
#[derive(Debug, Error, Clone)]
pub enum EngineError {
    /// sled could not read, write or flush; nothing in the failed batch is acknowledged.
    #[error("storage failure: {0}")]
    Sled(#[from] sled::Error),
    /// A storage fault described in words (a cause that is not an error value, e.g. an
    /// injected failure in tests).
    #[error("storage failure: {0}")]
    Storage(String),
    /// A stored record (`what`) does not decode.
    #[error("storage failure: corrupt {what}: {source}")]
    CorruptRecord {
        what: &'static str,
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// The rewards store (grants, balances) failed inside a close.
    #[error("storage failure: {0}")]
    Rewards(#[source] Arc<RewardError>),
    /// The store is not open (data dir unavailable) or was marked failed.
    #[error("storage unavailable")]
    Unavailable,
    /// Free disk space is below the configured minimum: writes are refused until it returns.
    #[error("disk space low")]
    DiskLow,
    /// No actor for this tenant.
    #[error("unknown tenant {0}")]
    UnknownTenant(String),
    /// The tenant actor did not answer in time or died mid-call.
    #[error("tenant actor unavailable: {0}")]
    ActorUnavailable(String),
    /// A supervised child (a leaderboard actor) could not be started.
    #[error("actor could not start: {0}")]
    ChildStart(#[source] Arc<ractor::ActorProcessingErr>),
    /// A record in the log could not be decoded.
    #[error("corrupt log record at {tenant}/{seq}: {reason}")]
    Corrupt {
        tenant: String,
        seq: u64,
        reason: String,
    },
}

impl From<RewardError> for EngineError {
    fn from(e: RewardError) -> Self {
        EngineError::Rewards(Arc::new(e))
    }
}
