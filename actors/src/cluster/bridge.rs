//! The bridge from the engine's synchronous callers to the NATS client's async world.
//!
//! [`crate::EventLog`] is synchronous: the committer calls it from its own OS threads, and the
//! feed and tenant actors from tokio tasks. The NATS client lives on a small runtime owned by
//! [`Bridge`]; a call spawns its future there and waits on a channel. Waiting on a worker of a
//! multi-thread runtime goes through `block_in_place`, so that runtime moves its other tasks
//! to other workers instead of stalling them; from a current-thread runtime the caller's
//! thread simply waits (it cannot deadlock: the future runs on the bridge's threads).

use std::future::Future;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use super::error::ClusterError;

/// A runtime of its own for the NATS client, with a blocking `run` usable from any thread.
pub struct Bridge {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bridge")
    }
}

impl Bridge {
    /// Start `threads` worker threads named `name`.
    pub fn new(name: &str, threads: usize) -> Result<Bridge, ClusterError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(ClusterError::Runtime)?;
        let handle = runtime.handle().clone();
        Ok(Bridge {
            runtime: Some(runtime),
            handle,
        })
    }

    /// The runtime's handle, to spawn background tasks on it.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Run `fut` on the bridge's runtime and wait for its output.
    pub fn run<F>(&self, fut: F) -> Result<F::Output, ClusterError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        let wait = move || rx.recv().map_err(|_| ClusterError::Shutdown);
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; this does not.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
