//! One JetStream KV bucket behind blocking calls: reads, writes, create-if-absent,
//! compare-and-set on revision ([`Bucket::modify`]) and prefix listings, plus the key-part
//! escaping every store uses.
//!
//! **Compare-and-set on nats-server < 2.9.21.** A KV update is a publish with
//! `Nats-Expected-Last-Subject-Sequence`; before 2.9.21 a clustered stream checks it only
//! before the Raft proposal, so two updates of one key on the same revision that arrive
//! close together can *both* be stored (nats-server #4320; measured here on Debian's
//! 2.9.10: 40 of 100 contended increments lost). The stream leader's `Nats-Msg-Id` dedupe
//! also tracks in-flight messages, so every conditional write here also carries
//! `Nats-Msg-Id: <key>@<expected revision>`: of two writers expecting the same revision,
//! the second is a duplicate, which [`Bucket::update`] reports as a lost race.

use std::sync::Arc;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use bytes::Bytes;

use crate::cluster::bridge::Bridge;
use crate::cluster::error::ClusterError;

/// A KV bucket with synchronous calls (bridged). Cheap to clone.
#[derive(Clone)]
pub struct Bucket {
    kv: kv::Store,
    js: jetstream::Context,
    /// `$KV.<bucket>.`: the subject of key `k` is this followed by `k`.
    subjects: String,
    bridge: Arc<Bridge>,
    max_cas_retries: usize,
    /// Bound on one listing (a scan reads until its consumer has nothing pending).
    scan_timeout: std::time::Duration,
}

/// The bucket's stream, as the KV API lays it out (`KV_<bucket>`, `$KV.<bucket>.>`, the
/// latest value per key, deletes only as markers, reads from the leader). Created directly: async-nats'
/// `create_key_value` needs an account-info reply nats-server 2.9 does not give in full.
fn bucket_stream(name: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: format!("KV_{name}"),
        description: Some("Phoenix cluster-wide state".into()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        storage: StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        // Reads go to the stream leader: a direct get may be answered by a replica that has
        // not applied the latest write yet (no read-your-writes, no safe dedupe check).
        allow_direct: false,
        discard: DiscardPolicy::New,
        ..Default::default()
    }
}

/// Escape one key token: `[A-Za-z0-9_-]` stay, every other byte is `=XX` (hex), and the
/// empty string is `=`. The result is always a valid, non-empty KV token.
pub fn part(s: &str) -> String {
    if s.is_empty() {
        return "=".into();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// Undo [`part`] (`None` when `s` is not an escaped token).
pub fn unpart(s: &str) -> Option<String> {
    if s == "=" {
        return Some(String::new());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The key of escaped `parts`, `.`-joined.
pub fn key(parts: &[&str]) -> String {
    parts.iter().map(|p| part(p)).collect::<Vec<_>>().join(".")
}

/// Publish `value` on KV subject `subject` only if the subject's last revision is still
/// `revision` (0: never written), with `Nats-Msg-Id: <subject>@<revision>` so that of two
/// writers expecting the same revision only one is stored even on nats-server < 2.9.21 (see
/// the module doc): the new revision, or `None` if the revision moved or another writer
/// won. `delete` writes a delete marker (`KV-Operation: DEL`) instead.
pub(crate) async fn publish_if(
    js: jetstream::Context,
    subject: String,
    value: Bytes,
    revision: u64,
    delete: bool,
) -> Result<Option<u64>, ClusterError> {
    use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID};
    let mut headers = async_nats::HeaderMap::new();
    if delete {
        headers.insert("KV-Operation", "DEL");
    }
    headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, revision.to_string());
    headers.insert(NATS_MESSAGE_ID, format!("{subject}@{revision}"));
    let ack = match js.publish_with_headers(subject, headers, value).await {
        Ok(ack) => ack.await,
        Err(e) => return Err(ClusterError::api("KV update", e)),
    };
    match ack {
        Ok(ack) if ack.duplicate => Ok(None),
        Ok(ack) => Ok(Some(ack.sequence)),
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
        Err(e) => Err(ClusterError::api("KV update", e)),
    }
}

impl Bucket {
    /// Open bucket `name`, creating it with `replicas` if it does not exist.
    pub fn open(
        bridge: &Arc<Bridge>,
        js: &jetstream::Context,
        name: &str,
        replicas: usize,
    ) -> Result<Bucket, ClusterError> {
        let (js2, name) = (js.clone(), name.to_owned());
        let kv = bridge.run(async move {
            let js = js2;
            match js.get_key_value(&name).await {
                Ok(kv) => Ok(kv),
                Err(_) => {
                    if let Err(e) = js.create_stream(bucket_stream(&name, replicas)).await {
                        // Another node may have created it meanwhile; opening decides.
                        tracing::debug!(bucket = %name, error = %e, "create state bucket");
                    }
                    js.get_key_value(&name)
                        .await
                        .map_err(|e| ClusterError::api("open state bucket", e))
                }
            }
        })??;
        // A bucket's stream elects its leader in its own time (seconds on a fresh, loaded
        // cluster): wait, bounded, until it answers a read, so that the first board or
        // tenant to use it does not fail its start on a timeout.
        let probe = kv.clone();
        bridge.run(async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                match probe.get("phoenix-open-probe").await {
                    Ok(_) => return Ok(()),
                    Err(e) if tokio::time::Instant::now() < deadline => {
                        tracing::debug!(error = %e, "state bucket not answering yet");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(ClusterError::api("state bucket not answering", e)),
                }
            }
        })??;
        let subjects = kv.put_prefix.clone().unwrap_or_else(|| kv.prefix.clone());
        Ok(Bucket {
            kv,
            js: js.clone(),
            subjects,
            bridge: bridge.clone(),
            max_cas_retries: 64,
            scan_timeout: std::time::Duration::from_secs(30),
        })
    }

    /// Retry a lost compare-and-set at most `n` times.
    pub fn with_cas_retries(mut self, n: usize) -> Bucket {
        self.max_cas_retries = n;
        self
    }

    /// Give up a listing after `d`.
    pub fn with_scan_timeout(mut self, d: std::time::Duration) -> Bucket {
        self.scan_timeout = d;
        self
    }

    fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, ClusterError>> + Send + 'static,
    ) -> Result<T, ClusterError> {
        self.bridge.run(fut)?
    }

    /// The value of `key` and its revision (`None` if absent or deleted).
    pub fn get(&self, key: &str) -> Result<Option<(Bytes, u64)>, ClusterError> {
        let (kv, key) = (self.kv.clone(), key.to_owned());
        self.run(async move {
            let e = kv
                .entry(key)
                .await
                .map_err(|e| ClusterError::api("KV get", e))?;
            Ok(e.filter(|e| e.operation == Operation::Put)
                .map(|e| (e.value, e.revision)))
        })
    }

    /// Write `value` at `key` unconditionally; returns the new revision.
    pub fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, ClusterError> {
        let (kv, key) = (self.kv.clone(), key.to_owned());
        self.run(async move {
            kv.put(key, Bytes::from(value))
                .await
                .map_err(|e| ClusterError::api("KV put", e))
        })
    }

    /// Write `value` at `key` only if it is absent (never written, or deleted): `None` if
    /// it exists or another writer created it first.
    pub fn create(&self, key: &str, value: Vec<u8>) -> Result<Option<u64>, ClusterError> {
        if let Some(r) = self.update(key, value.clone(), 0)? {
            return Ok(Some(r));
        }
        // A deleted key's last message is its delete marker: create on top of that.
        let (kv, k) = (self.kv.clone(), key.to_owned());
        let marker = self.run(async move {
            let e = kv
                .entry(k)
                .await
                .map_err(|e| ClusterError::api("KV get", e))?;
            Ok(e.filter(|e| e.operation != Operation::Put)
                .map(|e| e.revision))
        })?;
        match marker {
            Some(rev) => self.update(key, value, rev),
            None => Ok(None),
        }
    }

    /// Write `value` at `key` only if its revision is still `revision` (0: never written):
    /// `None` if it moved, or another writer expecting the same revision won.
    pub fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        revision: u64,
    ) -> Result<Option<u64>, ClusterError> {
        self.publish_on(key, value, revision, false)
    }

    /// The conditional publish behind [`Bucket::update`] and [`Bucket::delete_at`] (then
    /// with `KV-Operation: DEL` and no payload).
    fn publish_on(
        &self,
        key: &str,
        value: Vec<u8>,
        revision: u64,
        delete: bool,
    ) -> Result<Option<u64>, ClusterError> {
        let js = self.js.clone();
        let subject = format!("{}{key}", self.subjects);
        self.run(publish_if(
            js,
            subject,
            Bytes::from(value),
            revision,
            delete,
        ))
    }

    /// Delete `key` (a no-op if absent).
    pub fn delete(&self, key: &str) -> Result<(), ClusterError> {
        let (kv, key) = (self.kv.clone(), key.to_owned());
        self.run(async move {
            kv.delete(key)
                .await
                .map_err(|e| ClusterError::api("KV delete", e))
        })
    }

    /// Delete `key` only if its revision is still `revision`: `false` if it moved (or
    /// another writer deleting on the same revision won).
    pub fn delete_at(&self, key: &str, revision: u64) -> Result<bool, ClusterError> {
        Ok(self.publish_on(key, Vec::new(), revision, true)?.is_some())
    }

    /// Every live key under `prefix` (empty, or whole tokens ending in `.`), sorted.
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>, ClusterError> {
        Ok(self
            .scan(prefix, true)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Every live key under `prefix` with its value, sorted by key.
    pub fn entries(&self, prefix: &str) -> Result<Vec<(String, Bytes)>, ClusterError> {
        self.scan(prefix, false)
    }

    /// The latest message of every subject under `prefix`, live keys only (values dropped
    /// if `headers_only`). Walks the stream with leader-served message gets
    /// (`next_by_subj` from the last sequence seen): an ordered consumer may be served by a
    /// replica that has not applied the latest writes, and a listing must see every write
    /// acknowledged before it. One round trip per key under the prefix.
    fn scan(&self, prefix: &str, headers_only: bool) -> Result<Vec<(String, Bytes)>, ClusterError> {
        use jetstream::stream::RawMessageErrorKind;
        let stream = self.kv.stream.clone();
        let subjects = self.subjects.clone();
        let filter = format!("{subjects}{prefix}>");
        let after = self.scan_timeout;
        let scan = async move {
            let mut out = Vec::new();
            let mut seq = 1;
            loop {
                let m = match stream
                    .raw_message_builder()
                    .sequence(seq)
                    .next_by_subject(filter.clone())
                    .send()
                    .await
                {
                    Ok(m) => m,
                    Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => break,
                    Err(e) => return Err(ClusterError::api("KV scan", e)),
                };
                seq = m.sequence + 1;
                if m.headers.get("KV-Operation").is_some() {
                    continue;
                }
                if let Some(k) = m.subject.strip_prefix(subjects.as_str()) {
                    let v = if headers_only {
                        Bytes::new()
                    } else {
                        m.payload
                    };
                    out.push((k.to_owned(), v));
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        };
        self.run(async move {
            tokio::time::timeout(after, scan)
                .await
                .map_err(|_| ClusterError::Timeout {
                    op: "KV scan",
                    after,
                })?
        })
    }

    /// Read-modify-write `key` atomically: `change` sees the current value (`None` if
    /// absent) and returns the new value to write (or `None` to write nothing) and a result.
    /// The write is a create-if-absent or an update on the revision read, so a concurrent
    /// writer makes it fail and `change` runs again on the newer value (at most
    /// `max_cas_retries` times, then [`ClusterError::Api`]).
    pub fn modify<T, E>(
        &self,
        key: &str,
        mut change: impl FnMut(Option<&[u8]>) -> Result<(Option<Vec<u8>>, T), E>,
    ) -> Result<T, E>
    where
        E: From<ClusterError>,
    {
        for _ in 0..=self.max_cas_retries {
            let current = self.get(key)?;
            let (new, out) = change(current.as_ref().map(|(v, _)| v.as_ref()))?;
            let Some(new) = new else {
                return Ok(out);
            };
            let written = match current {
                Some((_, rev)) => self.update(key, new, rev)?,
                None => self.create(key, new)?,
            };
            if written.is_some() {
                return Ok(out);
            }
            metrics::counter!("phoenix_cluster_kv_cas_conflicts_total").increment(1);
        }
        Err(ClusterError::api(
            "KV compare-and-set",
            format!("lost {} races in a row", self.max_cas_retries + 1),
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_escape_and_round_trip() {
        for s in ["", "acme", "a.b", "x y/z", "é=", "=", "-_"] {
            let p = part(s);
            assert!(!p.is_empty());
            assert!(p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)));
            assert_eq!(unpart(&p).as_deref(), Some(s), "{s:?} → {p}");
        }
        assert_eq!(key(&["t", "a.b"]), "t.a=2Eb");
        assert_eq!(unpart("=Z"), None);
    }
}
