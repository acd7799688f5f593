//! Fair admission of ingest work across tenants (SPEC §9: "fair scheduling, not a shared
//! queue").
//!
//! Checking a request (HMAC over the body, JSON parse, validation) is the CPU-heavy part of an
//! ingest. Without a gate every request in flight does it at once, so a tenant flooding over
//! many connections fills the runtime's run queue and another tenant's single event waits
//! behind all of it. The gate lets at most `ingest_fair_slots` requests check at a time and
//! hands a freed slot to the tenants waiting in turn (round robin, FIFO within a tenant), so a
//! quiet tenant waits for at most one slot to free, however many requests a flood has queued.
//! A slot is held only while checking: the wait for the durable write (`Engine::ingest`) runs
//! without one, and the committer's rounds are fair per tenant themselves.
//!
//! The tenant is taken from `X-Tenant-Id` before the signature is checked (the check is what
//! the slot is for); a request that claims another tenant's id only queues behind that
//! tenant's own requests and is then refused by the signature check. Waiting is bounded by the
//! global concurrency limit (`max_concurrent_requests`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

/// The gate: free slots and, per tenant, the requests waiting for one.
#[derive(Debug)]
pub struct FairGate {
    state: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    free: usize,
    /// Requests waiting, per tenant, oldest first.
    queues: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Tenants with waiting requests, in the order they get the next free slots.
    turn: VecDeque<String>,
    waiting: usize,
}

impl FairGate {
    /// A gate with `slots` (at least 1).
    pub fn new(slots: usize) -> Arc<FairGate> {
        Arc::new(FairGate {
            state: Mutex::new(Waiting {
                free: slots.max(1),
                ..Default::default()
            }),
        })
    }

    /// Wait for a slot for `tenant`.
    pub async fn admit(self: &Arc<Self>, tenant: &str) -> Slot {
        let rx = {
            let mut s = self.state.lock().expect("fair gate");
            if s.free > 0 && s.turn.is_empty() {
                s.free -= 1;
                return Slot(Some(self.clone()));
            }
            let (tx, rx) = oneshot::channel();
            let queue = s.queues.entry(tenant.to_owned()).or_default();
            let first = queue.is_empty();
            queue.push_back(tx);
            if first {
                s.turn.push_back(tenant.to_owned());
            }
            s.waiting += 1;
            metrics::gauge!("phoenix_ingest_gate_waiting").set(s.waiting as f64);
            rx
        };
        let started = Instant::now();
        let mut pending = Pending {
            rx: Some(rx),
            gate: self.clone(),
        };
        let handed = pending.rx.as_mut().expect("set above").await;
        pending.rx = None;
        metrics::histogram!("phoenix_ingest_gate_wait_seconds")
            .record(started.elapsed().as_secs_f64());
        debug_assert!(
            handed.is_ok(),
            "a waiting sender is only dropped by a handover"
        );
        Slot(Some(self.clone()))
    }

    /// A slot came free: hand it to the next tenant in turn, or keep it.
    fn release(&self) {
        let mut s = self.state.lock().expect("fair gate");
        while let Some(tenant) = s.turn.pop_front() {
            let queue = s
                .queues
                .get_mut(&tenant)
                .expect("a tenant in turn has a queue");
            let next = queue.pop_front().expect("a queue in turn is not empty");
            if queue.is_empty() {
                s.queues.remove(&tenant);
            } else {
                s.turn.push_back(tenant);
            }
            s.waiting -= 1;
            metrics::gauge!("phoenix_ingest_gate_waiting").set(s.waiting as f64);
            if next.send(()).is_ok() {
                return;
            }
            // That request gave up waiting (its connection closed): try the next one.
        }
        s.free += 1;
    }
}

/// A request's wait for a slot; if it is dropped after the slot was handed over but before
/// it was taken, the slot goes back.
struct Pending {
    rx: Option<oneshot::Receiver<()>>,
    gate: Arc<FairGate>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            if rx.try_recv().is_ok() {
                self.gate.release();
            }
        }
    }
}

/// A held slot; give it back with [`Slot::done`] once the request is checked (dropping it
/// does the same).
#[derive(Debug)]
pub struct Slot(Option<Arc<FairGate>>);

impl Slot {
    /// No slot (a request the gate does not cover).
    pub fn none() -> Slot {
        Slot(None)
    }

    /// The checking is over: free the slot before waiting for the durable write (the
    /// release is the drop's).
    pub fn done(self) {}

    /// Between two chunks of a long check: give the slot to whoever waits in turn and queue
    /// for it again as `tenant` (at once when nobody waits), and let the worker run other
    /// tasks meanwhile — so a 100-event bulk holds a slot for a chunk at a time, not for the
    /// whole body.
    pub async fn pass(&mut self, tenant: &str) {
        if let Some(g) = self.0.take() {
            g.release();
            tokio::task::yield_now().await;
            *self = g.admit(tenant).await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            g.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_quiet_tenant_gets_the_next_slot_ahead_of_a_queued_flood() {
        let gate = FairGate::new(1);
        let held = gate.admit("a").await;
        // Tenant a queues three more; then b asks once.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, t) in ["a", "a", "a", "b"].into_iter().enumerate() {
            let (gate, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                let slot = gate.admit(t).await;
                order.lock().unwrap().push(format!("{t}{i}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
                slot.done();
            }));
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        held.done();
        for t in tasks {
            t.await.unwrap();
        }
        // a's first waiter, then b (its turn comes before a's second), then a's others.
        assert_eq!(*order.lock().unwrap(), ["a0", "b3", "a1", "a2"]);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_lose_the_slot() {
        let gate = FairGate::new(1);
        let held = gate.admit("a").await;
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.admit("b").await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        waiter.abort();
        let _ = waiter.await;
        held.done();
        // The slot is free again: a new request gets it at once.
        let got = tokio::time::timeout(Duration::from_secs(1), gate.admit("c")).await;
        assert!(got.is_ok(), "the slot was lost");
        let s = gate.state.lock().unwrap();
        assert_eq!((s.free, s.waiting, s.turn.len()), (0, 0, 0));
    }

    #[tokio::test]
    async fn slots_bound_how_many_check_at_once() {
        let gate = FairGate::new(2);
        let a = gate.admit("a").await;
        let _b = gate.admit("b").await;
        let third = tokio::time::timeout(Duration::from_millis(50), gate.admit("c")).await;
        assert!(third.is_err(), "a third request got a slot of two");
        drop(a);
        let third = tokio::time::timeout(Duration::from_secs(1), gate.admit("c")).await;
        assert!(third.is_ok());
    }
}
