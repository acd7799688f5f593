//! WebSocket views on any node: a session on node X subscribed to a view of a tenant that
//! node O owns gets that view from O.
//!
//! - X subscribes to a subject unique to the subscription (`phx.view.<X>.<n>`, core NATS),
//!   then asks O to open the view (`phx.node.<O>.view`, request/reply). O validates it as a
//!   local subscription would and answers with the snapshot, or with the same error frame a
//!   local subscription gets; then it publishes every update to X's subject.
//! - X renews each view every third of `remote_view_lease_seconds`; O drops a view not
//!   renewed for that long (X died), one X dropped (unsubscribe, session end), and every view
//!   of a tenant it stopped serving. A view that ends, an owner that stops answering, or a
//!   lease table naming another owner ends the subscription with the resubscribe error frame
//!   a board restart gives; resubscribing reaches the new owner for a fresh snapshot.
//! - Bounded: at most `max_remote_views` views served by a node and relayed by a node; the
//!   relay follows the session's queue and slow-consumer rule (a full queue drops the view
//!   and reopens it for a fresh snapshot once room returns).
//!
//! On X's subject a message is `f` + a view frame's JSON body (no subscription id) or `e` +
//! a whole error frame that ends the view.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use phoenix_actors::leaderboard::views::{Published, ViewKey, ViewKind};
use phoenix_actors::leaderboard::window::{Timeframe, WindowKey};
use phoenix_actors::Engine;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch, Semaphore};
use tokio::task::JoinHandle;

use super::forward::{owner_elsewhere, subscribe};
use super::Node;
use crate::engine_slot::EngineSlot;
use crate::gateway::ws::render::{
    ended_frame, error_frame, query_error_frame, render_body, with_id,
};
use crate::gateway::ws::session::{room, RemoteHook, RemoteSub, RemoteViews};

fn ops_subject(node: &str) -> String {
    format!("phx.node.{node}.view")
}

/// A view as it travels to the owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WireKey {
    tf: String,
    window: Option<String>,
    top: Option<usize>,
    around: Option<String>,
    radius: usize,
}

impl WireKey {
    fn of(key: &ViewKey) -> WireKey {
        let (top, around, radius) = match &key.kind {
            ViewKind::Top(n) => (Some(*n), None, 0),
            ViewKind::Around { user, radius } => (None, Some(user.clone()), *radius),
        };
        WireKey {
            tf: key.tf.as_str().to_owned(),
            window: key.window.as_ref().map(ToString::to_string),
            top,
            around,
            radius,
        }
    }

    fn key(&self) -> Option<ViewKey> {
        let tf: Timeframe = self.tf.parse().ok()?;
        let window = match &self.window {
            Some(w) => Some(WindowKey::parse(tf, w).ok()?),
            None => None,
        };
        let kind = match (self.top, &self.around) {
            (Some(n), None) => ViewKind::Top(n),
            (None, Some(user)) => ViewKind::Around {
                user: user.clone(),
                radius: self.radius,
            },
            _ => return None,
        };
        Some(ViewKey { tf, window, kind })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Open {
        subject: String,
        id: String,
        tenant: String,
        board: String,
        key: WireKey,
    },
    Renew {
        subject: String,
    },
    Drop {
        subject: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    /// The view's first frame (body without the subscription id).
    Snapshot(String),
    /// The whole error frame the subscription ends with.
    Error(String),
    Renewed,
    Gone,
}

/// A view this node serves to another node's session.
struct Served {
    tenant: String,
    id: String,
    renewed: Instant,
    task: JoinHandle<()>,
}

/// This node's remote views.
pub(super) struct Registry {
    max: usize,
    /// Served as owner, by the relaying node's subject.
    served: Mutex<HashMap<String, Served>>,
    /// Relayed into this node's sessions.
    relays: Arc<Semaphore>,
    next: AtomicU64,
}

impl Registry {
    pub(super) fn new(max: usize) -> Registry {
        Registry {
            max,
            served: Mutex::new(HashMap::new()),
            relays: Arc::new(Semaphore::new(max)),
            next: AtomicU64::new(1),
        }
    }

    fn served(&self) -> std::sync::MutexGuard<'_, HashMap<String, Served>> {
        self.served.lock().expect("remote views")
    }

    /// Drop the views `gone` picks, ending each with its resubscribe frame when `tell`.
    fn drop_where(&self, node: &Node, gone: impl Fn(&Served) -> bool, tell: bool) {
        let dropped: Vec<(String, Served)> = {
            let mut served = self.served();
            let keys: Vec<String> = served
                .iter()
                .filter(|(_, v)| gone(v))
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| served.remove_entry(&k))
                .collect()
        };
        for (subject, view) in dropped {
            view.task.abort();
            if tell {
                publish(node, subject, b'e', ended_frame(&view.id).as_bytes());
            }
        }
        self.gauge();
    }

    fn gauge(&self) {
        let n = self.served().len();
        metrics::gauge!("phoenix_cluster_remote_views").set(n as f64);
    }
}

/// The request extension that lets this node's WebSocket sessions relay remote views.
pub(super) fn hook(node: &Arc<Node>) -> RemoteHook {
    RemoteHook(Arc::new(Relays(node.clone())))
}

struct Relays(Arc<Node>);

impl RemoteViews for Relays {
    fn is_remote(&self, tenant: &str) -> bool {
        !self.0.table.serves(tenant) && self.0.tenants.get(tenant).is_some()
    }

    fn relay(&self, sub: RemoteSub) -> BoxFuture<'static, ()> {
        Box::pin(relay(self.0.clone(), sub))
    }

    fn ingest(
        &self,
        tenant: String,
        id: Option<String>,
        events: Vec<phoenix_actors::event::Event>,
    ) -> BoxFuture<'static, Result<Vec<phoenix_actors::Outcome>, String>> {
        Box::pin(super::ingest::ingest(self.0.clone(), tenant, id, events))
    }
}

fn publish(node: &Node, subject: String, tag: u8, body: &[u8]) {
    let mut payload = Vec::with_capacity(body.len() + 1);
    payload.push(tag);
    payload.extend_from_slice(body);
    let client = node.client.clone();
    tokio::spawn(async move {
        let _ = client.publish(subject, Bytes::from(payload)).await;
    });
}

// ----- the owner's side -----

/// Serve view requests from other nodes, and drop views nobody renews, until `stop`.
pub(super) async fn serve(node: Arc<Node>, slot: EngineSlot, mut stop: watch::Receiver<bool>) {
    let Some(mut sub) = subscribe(&node, ops_subject(&node.id), &mut stop).await else {
        return;
    };
    let lease = Duration::from_secs(node.config.remote_view_lease_seconds);
    let mut reap = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            m = sub.next() => {
                let Some(m) = m else { break };
                let (node, slot) = (node.clone(), slot.clone());
                tokio::spawn(async move {
                    let Some(reply_to) = m.reply.clone() else { return };
                    let reply = match serde_json::from_slice::<Op>(&m.payload) {
                        Ok(op) => answer(&node, &slot, op).await,
                        Err(_) => Reply::Gone,
                    };
                    let body = serde_json::to_vec(&reply).expect("a reply serialises");
                    let _ = node.client.publish(reply_to, Bytes::from(body)).await;
                });
            }
            _ = reap.tick() => {
                let stale = |v: &Served| v.renewed.elapsed() > lease || !node.table.serves(&v.tenant);
                node.views.drop_where(&node, stale, true);
            }
            _ = stop.changed() => break,
        }
    }
    node.views.drop_where(&node, |_| true, true);
}

async fn answer(node: &Arc<Node>, slot: &EngineSlot, op: Op) -> Reply {
    match op {
        Op::Open {
            subject,
            id,
            tenant,
            board,
            key,
        } => open(node, slot, subject, id, tenant, board, key).await,
        Op::Renew { subject } => {
            let serves = |t: &str| node.table.serves(t);
            match node.views.served().get_mut(&subject) {
                Some(v) if serves(&v.tenant) => {
                    v.renewed = Instant::now();
                    Reply::Renewed
                }
                _ => Reply::Gone,
            }
        }
        Op::Drop { subject } => {
            if let Some(v) = node.views.served().remove(&subject) {
                v.task.abort();
            }
            node.views.gauge();
            Reply::Gone
        }
    }
}

async fn open(
    node: &Arc<Node>,
    slot: &EngineSlot,
    subject: String,
    id: String,
    tenant: String,
    board: String,
    key: WireKey,
) -> Reply {
    let (Some(key), Some(engine)) = (key.key(), slot.get()) else {
        return Reply::Error(ended_frame(&id));
    };
    if !node.table.serves(&tenant) {
        // Moved meanwhile: the client resubscribes and reaches the new owner.
        return Reply::Error(ended_frame(&id));
    }
    let (snap, rx) = match engine.subscribe_view(&tenant, &board, key.clone()).await {
        Ok(s) => s,
        Err(e) => return Reply::Error(query_error_frame(&id, e)),
    };
    let body = render_body(&board, &key, &snap);
    let mut served = node.views.served();
    if served.len() >= node.views.max && !served.contains_key(&subject) {
        return Reply::Error(error_frame(
            Some(&id),
            "UNAVAILABLE",
            503,
            &format!(
                "the owner node serves at most {} remote views; retry later",
                node.views.max
            ),
        ));
    }
    let task = tokio::spawn(stream(
        node.clone(),
        engine,
        subject.clone(),
        (tenant.clone(), id.clone(), board),
        key,
        rx,
    ));
    let view = Served {
        tenant,
        id,
        renewed: Instant::now(),
        task,
    };
    if let Some(old) = served.insert(subject, view) {
        old.task.abort();
    }
    drop(served);
    node.views.gauge();
    Reply::Snapshot(body)
}

/// Publish one view's frames to `subject` until the view ends (then an `e` frame).
async fn stream(
    node: Arc<Node>,
    engine: Engine,
    subject: String,
    (tenant, id, board): (String, String, String),
    key: ViewKey,
    mut rx: broadcast::Receiver<Arc<Published>>,
) {
    let frames = metrics::counter!("phoenix_cluster_remote_view_frames_total");
    loop {
        let body = match rx.recv().await {
            Ok(p) => p
                .rendered
                .get_or_init(|| render_body(&board, &key, &p.frame))
                .clone(),
            // Fell behind the board: start again from a fresh snapshot.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                match engine.subscribe_view(&tenant, &board, key.clone()).await {
                    Ok((snap, new)) => {
                        rx = new;
                        render_body(&board, &key, &snap)
                    }
                    Err(_) => break,
                }
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        frames.increment(1);
        publish(&node, subject.clone(), b'f', body.as_bytes());
    }
    publish(&node, subject.clone(), b'e', ended_frame(&id).as_bytes());
    node.views.served().remove(&subject);
    node.views.gauge();
}

// ----- the relaying node's side -----

async fn request(node: &Node, owner: &str, op: &Op, timeout: Duration) -> Result<Reply, bool> {
    let payload = serde_json::to_vec(op).expect("an op serialises");
    let req = async_nats::Request::new()
        .payload(Bytes::from(payload))
        .timeout(Some(timeout));
    match node.client.send_request(ops_subject(owner), req).await {
        Ok(m) => serde_json::from_slice(&m.payload).map_err(|_| true),
        // `true`: the owner is gone for sure (nobody listens on its subject).
        Err(e) => Err(e.kind() == async_nats::RequestErrorKind::NoResponders),
    }
}

/// Tells the owner the view is no longer wanted when the relay ends (unsubscribe, session
/// end, resync).
struct Opened {
    client: async_nats::Client,
    owner: String,
    subject: String,
}

impl Drop for Opened {
    fn drop(&mut self) {
        let op = Op::Drop {
            subject: std::mem::take(&mut self.subject),
        };
        let payload = Bytes::from(serde_json::to_vec(&op).expect("an op serialises"));
        let (client, to) = (self.client.clone(), ops_subject(&self.owner));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = client.publish(to, payload).await;
            });
        }
    }
}

/// Relay `sub` from its tenant's owner into the session until it ends.
async fn relay(node: Arc<Node>, sub: RemoteSub) {
    let Ok(_slot) = node.views.relays.clone().try_acquire_owned() else {
        let _ = sub.out.try_send(error_frame(
            Some(&sub.id),
            "UNAVAILABLE",
            503,
            &format!(
                "this node relays at most {} remote views; retry later",
                node.views.max
            ),
        ));
        return;
    };
    let lease = Duration::from_secs(node.config.remote_view_lease_seconds);
    let timeout = Duration::from_millis(node.config.forward_timeout_ms.min(10_000));
    let mut resync = false;
    loop {
        let Some(permit) = room(&sub.out, &sub.close, sub.stall_timeout).await else {
            return;
        };
        if resync {
            metrics::counter!("phoenix_ws_resyncs_total").increment(1);
        }
        let Some(owner) = owner_elsewhere(&node, &sub.tenant).await else {
            permit.send(ended_frame(&sub.id));
            return;
        };
        let n = node.views.next.fetch_add(1, Ordering::Relaxed);
        let subject = format!("phx.view.{}.{n}", node.id);
        let Ok(mut frames) = node.client.subscribe(subject.clone()).await else {
            permit.send(ended_frame(&sub.id));
            return;
        };
        let open = Op::Open {
            subject: subject.clone(),
            id: sub.id.clone(),
            tenant: sub.tenant.clone(),
            board: sub.board.clone(),
            key: WireKey::of(&sub.key),
        };
        let _opened = Opened {
            client: node.client.clone(),
            owner: owner.clone(),
            subject: subject.clone(),
        };
        match request(&node, &owner, &open, timeout).await {
            Ok(Reply::Snapshot(body)) => permit.send(with_id(&sub.id, &body)),
            Ok(Reply::Error(frame)) => return permit.send(frame),
            _ => return permit.send(ended_frame(&sub.id)),
        }
        let renew = Op::Renew { subject };
        let mut tick = tokio::time::interval(lease / 3);
        tick.tick().await;
        let mut renewed = Instant::now();
        // `true`: the queue was full, so reopen for a fresh snapshot once room returns.
        resync = loop {
            tokio::select! {
                m = frames.next() => {
                    let Some(m) = m else { break false };
                    match m.payload.split_first() {
                        Some((b'f', body)) => {
                            let body = String::from_utf8_lossy(body);
                            match sub.out.try_send(with_id(&sub.id, &body)) {
                                Ok(()) => {}
                                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                                    metrics::counter!("phoenix_ws_frames_dropped_total").increment(1);
                                    break true;
                                }
                                Err(_) => return,
                            }
                        }
                        Some((b'e', frame)) => {
                            let _ = sub.out.try_send(String::from_utf8_lossy(frame).into_owned());
                            return;
                        }
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    let moved = node.table.owners.read().expect("table").get(&sub.tenant)
                        .is_some_and(|o| *o != owner);
                    let alive = match request(&node, &owner, &renew, lease / 3).await {
                        Ok(Reply::Renewed) => { renewed = Instant::now(); true }
                        Ok(_) | Err(true) => false,
                        Err(false) => renewed.elapsed() < lease,
                    };
                    if moved || !alive {
                        break false;
                    }
                }
            }
        };
        if !resync {
            let _ = sub.out.try_send(ended_frame(&sub.id));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_keys_round_trip_over_the_wire() {
        let keys = [
            ViewKey {
                tf: Timeframe::AllTime,
                window: None,
                kind: ViewKind::Top(10),
            },
            ViewKey {
                tf: Timeframe::Daily,
                window: Some(WindowKey::parse(Timeframe::Daily, "2026-12-01").expect("day")),
                kind: ViewKind::Around {
                    user: "u1".into(),
                    radius: 3,
                },
            },
        ];
        for key in keys {
            let wire: WireKey =
                serde_json::from_str(&serde_json::to_string(&WireKey::of(&key)).expect("json"))
                    .expect("parses");
            assert_eq!(wire.key(), Some(key));
        }
        let both = WireKey {
            tf: "all_time".into(),
            window: None,
            top: Some(1),
            around: Some("u1".into()),
            radius: 0,
        };
        assert_eq!(both.key(), None);
        let bad_tf = WireKey {
            tf: "no such timeframe!".into(),
            ..both.clone()
        };
        assert_eq!(bad_tf.key(), None);
    }
}
