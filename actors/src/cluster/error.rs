//! Cluster-mode faults: what can go wrong talking to NATS JetStream, typed, with their cause.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::error::EngineError;

/// The cause of a failed NATS call, kept as the client's own error.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A fault of the JetStream event log, the lease bucket or the bridge between them.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// No connection to any of the configured NATS servers.
    #[error("connect to NATS: {0}")]
    Connect(#[source] async_nats::ConnectError),
    /// A JetStream API request (stream info, create, message get, KV …) failed.
    #[error("JetStream {op} failed")]
    Api {
        op: &'static str,
        #[source]
        cause: Cause,
    },
    /// A publish was not acknowledged at `replicas` before the sync deadline (no stream
    /// leader or no quorum for that long).
    #[error("publish of {tenant}/{seq} not acknowledged within {after:?}")]
    NotAcknowledged {
        tenant: String,
        seq: u64,
        after: Duration,
        #[source]
        cause: Option<Cause>,
    },
    /// JetStream reported the event as a duplicate of a message logged at another position
    /// (by another writer, within the stream's `duplicate_window`). The position the caller
    /// assigned to it stays empty, so nothing after it in the group can be logged.
    #[error("event {event_id} of {tenant} is a JetStream duplicate of position {existing} (it was given {position})")]
    Duplicate {
        tenant: String,
        event_id: String,
        position: u64,
        existing: u64,
    },
    /// Another writer already holds the position this log meant to write: a stale owner.
    #[error("position {tenant}/{position} was written by another writer (message id {found:?})")]
    Fenced {
        tenant: String,
        position: u64,
        found: Option<String>,
    },
    /// An append did not start at the position the log expects next (it would leave a gap
    /// or overwrite).
    #[error("append for {tenant} starts at {got}, the log expects {expected}")]
    Gap {
        tenant: String,
        expected: u64,
        got: u64,
    },
    /// A stored message is not a Phoenix log entry.
    #[error("undecodable message {tenant}/{seq}: {reason}")]
    Decode {
        tenant: String,
        seq: u64,
        reason: &'static str,
    },
    /// An earlier append or sync failed: the log refuses writes until it is reopened (its
    /// caller's positions may be ahead of the stream).
    #[error("event log failed earlier")]
    Failed(#[source] Arc<ClusterError>),
    /// A bounded wait ran out.
    #[error("{op} timed out after {after:?}")]
    Timeout { op: &'static str, after: Duration },
    /// The log's own runtime is gone (it is being dropped).
    #[error("cluster runtime stopped")]
    Shutdown,
    /// The runtime for the NATS client could not start.
    #[error("start the cluster runtime")]
    Runtime(#[source] std::io::Error),
}

impl ClusterError {
    /// Wrap a NATS client error from `op`.
    pub fn api(op: &'static str, cause: impl Into<Cause>) -> ClusterError {
        ClusterError::Api {
            op,
            cause: cause.into(),
        }
    }
}

impl From<ClusterError> for EngineError {
    /// The one place a cluster fault becomes an engine fault. `EngineError` carries text
    /// only today; the typed error stays available from `JetStreamLog::failure`.
    fn from(e: ClusterError) -> EngineError {
        match e {
            ClusterError::Decode {
                tenant,
                seq,
                reason,
            } => EngineError::Corrupt {
                tenant,
                seq,
                reason: reason.to_owned(),
            },
            ClusterError::Failed(_) | ClusterError::Shutdown => EngineError::Unavailable,
            other => EngineError::Storage(display_chain(&other)),
        }
    }
}

/// `e` and its causes, `: `-separated, for the one string `EngineError` keeps.
pub fn display_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
