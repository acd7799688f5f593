//! Background upkeep of the store: the low-disk guard, the store's size, and log retention
//! (SPEC §10). Runs on one task started with the engine; each retention step deletes at most
//! [`PURGE_STEP`] records on a blocking thread and then yields, so a purge never stalls
//! ingestion.

use std::time::Duration;

use super::Engine;
use crate::error::EngineError;
use crate::retention::{cutoff_ms, purgeable, record_store_size};

/// Records one retention step inspects (and at most deletes).
pub const PURGE_STEP: usize = 256;
/// Steps per tenant per retention pass; the rest waits for the next pass.
const STEPS_PER_PASS: usize = 64;

impl Engine {
    /// Delete up to [`PURGE_STEP`] of `tenant`'s oldest records that retention allows.
    /// Returns how many went.
    pub fn purge_step(&self, tenant: &str, now_ms: i64) -> Result<usize, EngineError> {
        let i = &self.inner;
        let retention = i
            .config
            .retention_overrides
            .get(tenant)
            .copied()
            .unwrap_or(i.config.log_retention);
        let cutoff = cutoff_ms(now_ms, retention, i.config.dedupe_window);
        let checkpointed = self.min_checkpointed(tenant)?;
        let spans = i.log.oldest_spans(tenant, PURGE_STEP)?;
        let firsts = purgeable(&spans, cutoff, checkpointed);
        if !firsts.is_empty() {
            i.log.purge(tenant, &firsts)?;
            metrics::counter!("phoenix_log_purged_records_total").increment(firsts.len() as u64);
        }
        Ok(firsts.len())
    }

    /// The oldest retained position of `tenant`'s log.
    pub fn first_seq(&self, tenant: &str) -> Result<u64, EngineError> {
        self.inner.log.first_seq(tenant)
    }

    /// Whether writes are refused for lack of disk space.
    pub fn disk_low(&self) -> bool {
        self.inner.disk.low()
    }

    async fn retention_pass(&self) {
        let tenants: Vec<String> = self
            .inner
            .heads
            .read()
            .expect("heads")
            .keys()
            .cloned()
            .collect();
        for tenant in tenants {
            for _ in 0..STEPS_PER_PASS {
                let (engine, t) = (self.clone(), tenant.clone());
                let now = (self.inner.config.clock)().timestamp_millis();
                let step = tokio::task::spawn_blocking(move || engine.purge_step(&t, now)).await;
                match step {
                    Ok(Ok(0)) => break,
                    Ok(Ok(_)) => tokio::time::sleep(Duration::from_millis(5)).await,
                    Ok(Err(e)) => {
                        tracing::warn!(tenant, error = %e, "log retention step failed; retried next pass");
                        break;
                    }
                    Err(e) => {
                        tracing::error!(tenant, error = %e, "log retention step panicked");
                        break;
                    }
                }
            }
        }
    }

    /// Start the upkeep task: disk checks every `disk_check_interval`, retention every
    /// `retention_interval`. It ends when the engine is dropped.
    pub(super) fn start_maintenance(&self) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        let disk_every = self.inner.config.disk_check_interval;
        let retention_every = self.inner.config.retention_interval;
        tokio::spawn(async move {
            let mut disk = tokio::time::interval(disk_every);
            let mut retention = tokio::time::interval(retention_every);
            disk.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = disk.tick() => {
                        let Some(inner) = weak.upgrade() else { return };
                        let guard = inner.disk.clone();
                        let log = inner.log.clone();
                        drop(inner);
                        let _ = tokio::task::spawn_blocking(move || {
                            guard.check();
                            record_store_size(log.as_ref());
                        })
                        .await;
                    }
                    _ = retention.tick() => {
                        let Some(inner) = weak.upgrade() else { return };
                        let engine = Engine { inner };
                        engine.retention_pass().await;
                    }
                }
            }
        });
    }
}
