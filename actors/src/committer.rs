//! Group commit: one thread that makes appended log batches durable, many at a time.
//!
//! Tenant actors append to the log (buffered), then hand the committer a completion. The
//! committer thread takes every completion queued so far, calls [`EventLog::sync`] once, and
//! then runs them all — so one fsync acknowledges every request that arrived while the
//! previous fsync ran, across tenants. Calling sled's blocking `flush()` from this single
//! thread avoids the `flush_async` deadlock of sled 0.34 (sled #1308, #1241).

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use crate::error::EngineError;
use crate::store::EventLog;

/// What to run once the batches appended before it are durable (or failed to become so).
pub type Completion = Box<dyn FnOnce(Result<(), EngineError>) + Send>;

/// Handle to the group-commit thread. Cloning shares the same thread.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Completion>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Committer")
    }
}

impl Committer {
    /// Start the committer thread for `log`. It stops when every handle is dropped.
    pub fn start(log: Arc<dyn EventLog>) -> Committer {
        let (tx, rx) = mpsc::channel::<Completion>();
        std::thread::Builder::new()
            .name("phoenix-commit".into())
            .spawn(move || run(log, rx))
            .expect("spawn the group-commit thread");
        Committer { tx }
    }

    /// Run `done` after everything appended so far is durable.
    pub fn submit(&self, done: Completion) {
        if let Err(mpsc::SendError(done)) = self.tx.send(done) {
            done(Err(EngineError::Unavailable));
        }
    }
}

fn run(log: Arc<dyn EventLog>, rx: mpsc::Receiver<Completion>) {
    let mut batch: Vec<Completion> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        batch.extend(rx.try_iter());
        let started = Instant::now();
        let result = log.sync();
        metrics::histogram!("phoenix_fsync_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("phoenix_fsync_batch_size").record(batch.len() as f64);
        metrics::counter!("phoenix_fsyncs_total").increment(1);
        for done in batch.drain(..) {
            done(result.clone());
        }
    }
}
