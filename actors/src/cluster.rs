//! Cluster mode on NATS JetStream (SPEC §11, issue 14): the engine-side pieces.
//!
//! - [`JetStreamLog`] (`log.rs`): the [`crate::EventLog`] on one JetStream stream per tenant,
//!   stream sequence = log position, `Nats-Msg-Id` dedupe, group-committed publish acks.
//! - [`Leases`] (`lease.rs`): tenant ownership in a JetStream KV bucket — create-if-absent,
//!   renew on revision, the bucket's `max_age` as the TTL (nats-server 2.9 has no per-key
//!   TTL), the acquiring revision as fencing token.
//! - [`log_contract`]: the contract suite every `EventLog` passes (sled and JetStream).
//! - [`testkit`]: a real 3-server JetStream cluster on 127.0.0.1 for tests and examples.
//!
//! The service wires them in (`src/cluster/`: engine, lease loop, forwarding);
//! `docs/cluster.md` has the design and what is left.

pub mod bridge;
pub mod error;
pub mod kv;
pub mod lease;
pub mod log;
pub mod log_contract;
pub mod testkit;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod tests;

pub use error::ClusterError;
pub use lease::{Acquired, Lease, LeaseConfig, Leases, Renewal};
pub use log::{JetStreamLog, JetStreamLogConfig};
