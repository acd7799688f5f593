//! WebSocket streaming ingest on any node: a backend session on a node that does not own its
//! tenant sends each ingest frame's validated events to the owner over NATS request/reply
//! (`phx.node.<owner>.ingest`); the owner logs them through its engine and answers with the
//! outcomes once they are durable there, so the ack is sent only after the owner's append,
//! as over HTTP forwarding. A failure is the error frame the owner (or, when the owner is
//! unreachable, this node) phrases; each is counted in `phoenix_cluster_forwarded_total`
//! like an HTTP forward. In flight: `max_forwards_in_flight` each way, beside the
//! session's own `ws_max_inflight_events`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use phoenix_actors::event::Event;
use phoenix_actors::Outcome;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::forward::{counted, next_request, owner_elsewhere, subscribe};
use super::Node;
use crate::engine_slot::EngineSlot;
use crate::error::ApiError;
use crate::gateway::ws::render::api_error_frame;

fn subject(node: &str) -> String {
    format!("phx.node.{node}.ingest")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WireEvent {
    event_id: String,
    event_type: String,
    user_id: String,
    occurred_at: DateTime<Utc>,
    json: String,
}

impl From<Event> for WireEvent {
    fn from(e: Event) -> WireEvent {
        WireEvent {
            event_id: e.event_id,
            event_type: e.event_type,
            user_id: e.user_id,
            occurred_at: e.occurred_at,
            json: e.json,
        }
    }
}

impl From<WireEvent> for Event {
    fn from(e: WireEvent) -> Event {
        Event {
            event_id: e.event_id,
            event_type: e.event_type,
            user_id: e.user_id,
            occurred_at: e.occurred_at,
            json: e.json,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    tenant: String,
    id: Option<String>,
    events: Vec<WireEvent>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    /// Per event: (duplicate, log position).
    Outcomes(Vec<(bool, u64)>),
    /// The whole error frame to answer with.
    Error(String),
}

fn unavailable(id: Option<&str>, message: String) -> String {
    api_error_frame(id, &ApiError::Unavailable(message))
}

/// Log `events` on `tenant`'s owner (this node's side).
pub(super) async fn ingest(
    node: Arc<Node>,
    tenant: String,
    id: Option<String>,
    events: Vec<Event>,
) -> Result<Vec<Outcome>, String> {
    let id_ref = id.as_deref();
    let Ok(_permit) = node.outbound.clone().try_acquire_owned() else {
        counted("refused");
        return Err(unavailable(
            id_ref,
            "too many requests in flight to other nodes".into(),
        ));
    };
    let Some(owner) = owner_elsewhere(&node, &tenant).await else {
        counted("no_owner");
        return Err(unavailable(
            id_ref,
            format!(
                "tenant {tenant} has no owner node right now (failover in progress); retry shortly"
            ),
        ));
    };
    let n = events.len();
    let req = Request {
        tenant,
        id: id.clone(),
        events: events.into_iter().map(WireEvent::from).collect(),
    };
    let payload = Bytes::from(serde_json::to_vec(&req).expect("a request serialises"));
    let timeout = Duration::from_millis(node.config.forward_timeout_ms);
    let request = async_nats::Request::new()
        .payload(payload)
        .timeout(Some(timeout));
    let gone = || {
        unavailable(
            id_ref,
            format!("the node owning this tenant ({owner}) did not answer; retry (a retry of a stored event is a duplicate)"),
        )
    };
    let msg = node
        .client
        .send_request(subject(&owner), request)
        .await
        .map_err(|e| {
            let timed_out = e.kind() == async_nats::RequestErrorKind::TimedOut;
            counted(if timed_out { "timeout" } else { "unreachable" });
            gone()
        })?;
    counted("ok");
    match serde_json::from_slice(&msg.payload) {
        Ok(Reply::Outcomes(o)) if o.len() == n => Ok(o
            .into_iter()
            .map(|(dup, seq)| match dup {
                true => Outcome::Duplicate { seq },
                false => Outcome::Accepted { seq },
            })
            .collect()),
        Ok(Reply::Error(frame)) => Err(frame),
        _ => Err(gone()),
    }
}

/// Log the events other nodes' sessions send here (the owner's side), until `stop`.
pub(super) async fn serve(node: Arc<Node>, slot: EngineSlot, mut stop: watch::Receiver<bool>) {
    let Some(mut sub) = subscribe(&node, subject(&node.id), &mut stop).await else {
        return;
    };
    while let Some((m, reply_to)) = next_request(&mut sub, &mut stop).await {
        let permit = node.inbound.clone().try_acquire_owned();
        let (node, slot) = (node.clone(), slot.clone());
        tokio::spawn(async move {
            let reply = match (permit, serde_json::from_slice::<Request>(&m.payload)) {
                (Ok(_permit), Ok(req)) => append(&node, &slot, req).await,
                (Err(_), _) => Reply::Error(unavailable(
                    None,
                    "the owner node has too many requests in flight; retry".into(),
                )),
                (_, Err(_)) => Reply::Error(api_error_frame(
                    None,
                    &ApiError::Validation("undecodable forwarded ingest".into()),
                )),
            };
            let body = serde_json::to_vec(&reply).expect("a reply serialises");
            let _ = node.client.publish(reply_to, Bytes::from(body)).await;
        });
    }
}

async fn append(node: &Node, slot: &EngineSlot, req: Request) -> Reply {
    let id = req.id.as_deref();
    let engine = match slot.get() {
        Some(e) if node.table.serves(&req.tenant) => e,
        _ => {
            return Reply::Error(unavailable(
                id,
                format!(
                    "tenant {} is moving between nodes; retry shortly",
                    req.tenant
                ),
            ))
        }
    };
    let events = req.events.into_iter().map(Event::from).collect();
    match engine.ingest(&req.tenant, events).await {
        Ok(outcomes) => Reply::Outcomes(
            outcomes
                .into_iter()
                .map(|o| match o {
                    Outcome::Duplicate { seq } => (true, seq),
                    Outcome::Accepted { seq } => (false, seq),
                })
                .collect(),
        ),
        Err(e) => Reply::Error(api_error_frame(id, &ApiError::from(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_replies_round_trip() {
        let e = WireEvent {
            event_id: "e1".into(),
            event_type: "t".into(),
            user_id: "u1".into(),
            occurred_at: Utc::now(),
            json: "{\"event_id\":\"e1\"}".into(),
        };
        let back: WireEvent =
            serde_json::from_str(&serde_json::to_string(&e).expect("json")).expect("parses");
        assert_eq!(back, e);
        let r: Reply = serde_json::from_str(
            &serde_json::to_string(&Reply::Outcomes(vec![(true, 7)])).expect("json"),
        )
        .expect("parses");
        assert!(matches!(r, Reply::Outcomes(o) if o == [(true, 7)]));
        assert!(serde_json::from_slice::<Request>(b"{\"tenant\":1}").is_err());
    }
}
