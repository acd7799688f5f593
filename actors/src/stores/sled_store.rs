//! The sled database that holds the engine's state (and, in the embedded setup, the log),
//! with the fsync that makes its writes durable.

use std::path::Path;
use std::sync::Arc;

use crate::error::EngineError;

/// One open sled database and its log file. Cheap to clone; every clone is a handle that
/// keeps the database (and its file lock) open.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    /// sled's log file, opened again so [`SledStore::sync`] can `fdatasync` it: on Linux
    /// sled 0.34's `flush()` stops at `sync_file_range`, which persists neither the file
    /// size nor the drive's write cache.
    file: Arc<std::fs::File>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

impl SledStore {
    /// Open (or create) the database under `dir`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledStore, EngineError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Pages over segment_size/4 (2 MiB) become separate blob files, which sled writes
            // without fsync. A leaf holds at most 17 records and log records are at most
            // `store::MAX_RECORD_BYTES`, so every page stays inline in the fsync'd log.
            .segment_size(8 << 20)
            // We flush ourselves, from the single group-commit thread and `Engine::persist`.
            .flush_every_ms(None)
            .open()?;
        let file = std::fs::File::open(dir.join("db"))
            .map_err(|e| EngineError::Storage(format!("open sled log file: {e}")))?;
        Ok(SledStore {
            db,
            file: Arc::new(file),
        })
    }

    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Make every write done before this call durable: sled's flush, then `fdatasync`.
    pub fn sync(&self) -> Result<(), sled::Error> {
        self.db.flush()?;
        self.file.sync_data().map_err(sled::Error::Io)
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, sled::Error> {
        self.db.size_on_disk()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The heal relies on this: while any handle of a store is alive, opening it again in
    /// the same process fails (sled's file lock) instead of running two databases on one
    /// set of files; once every handle is dropped it opens.
    #[test]
    fn a_held_store_cannot_be_opened_twice() {
        let dir = tempfile::tempdir().unwrap();
        let first = SledStore::open(dir.path(), 1 << 20).unwrap();
        let tree = first.db().open_tree("t").unwrap();
        drop(first);
        assert!(
            SledStore::open(dir.path(), 1 << 20).is_err(),
            "a tree handle keeps the store locked"
        );
        drop(tree);
        let again = SledStore::open(dir.path(), 1 << 20).unwrap();
        again.sync().unwrap();
    }
}
