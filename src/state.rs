//! `AppState`: what every handler shares. A leaf of the edge: it imports the config, the
//! tenant registry and the error type, and no handler module, so handlers can import it
//! without an import circle.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use phoenix_actors::{Engine, EngineError};

use crate::config::Config;
use crate::engine_slot::EngineSlot;
use crate::error::ApiError;
use crate::fair::FairGate;
use crate::tenants::Tenants;

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub tenants: Tenants,
    /// The engine once the store is open (until then the service is alive but not ready);
    /// replaced when a failed store heals (`engine_slot.rs`).
    pub(crate) engine: EngineSlot,
    pub(crate) metrics: PrometheusHandle,
    /// Turns to check ingest requests, fair across tenants (`fair.rs`).
    pub(crate) gate: Arc<FairGate>,
}

/// The 503 of a write while the store is not open or has failed.
const NO_WRITES: &str = "Persistence is unavailable; events cannot be stored. Retry later";

impl AppState {
    pub fn engine(&self) -> Option<Engine> {
        self.engine.get()
    }

    /// The engine for a read (standings, the log, dimensions, wallets): answers while writes
    /// are refused (a failed store, low disk); 503 only while no store is open (before it
    /// first opens, and for the moment a failed one is being reopened).
    pub fn read_engine(&self) -> Result<Engine, ApiError> {
        self.engine
            .get()
            .ok_or_else(|| ApiError::Unavailable("Persistence is unavailable; retry later".into()))
    }

    /// The engine for a write, or 503 while persistence is unavailable or the disk is low.
    pub fn require_engine(&self) -> Result<Engine, ApiError> {
        let engine = self
            .engine
            .get()
            .ok_or_else(|| ApiError::Unavailable(NO_WRITES.into()))?;
        engine.writable().map_err(|err| match err {
            EngineError::DiskLow => ApiError::from(err),
            _ => ApiError::Unavailable(NO_WRITES.into()),
        })?;
        Ok(engine)
    }
}
