//! Engine error types: faults only. Outcomes (accepted, duplicate) are values, not errors.

use thiserror::Error;

/// A fault inside the engine. Anything here means the event was **not** acknowledged.
#[derive(Debug, Error, Clone)]
pub enum EngineError {
    /// The store could not write or flush; nothing in the failed batch is acknowledged.
    #[error("storage failure: {0}")]
    Storage(String),
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
    /// A record in the log could not be decoded.
    #[error("corrupt log record at {tenant}/{seq}: {reason}")]
    Corrupt {
        tenant: String,
        seq: u64,
        reason: String,
    },
}

impl From<sled::Error> for EngineError {
    fn from(e: sled::Error) -> Self {
        EngineError::Storage(e.to_string())
    }
}
