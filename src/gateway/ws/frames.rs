//! Client frames of a WebSocket session: `subscribe`, `unsubscribe`, `ping`, `ingest`. Every
//! string a frame carries is bounded as over HTTP; every refusal is an error frame.

use std::sync::Arc;

use chrono::Utc;
use phoenix_actors::event::MAX_ID_LEN;
use phoenix_actors::leaderboard::definition::valid_id;
use phoenix_actors::leaderboard::views::{ViewKey, ViewKind};
use phoenix_actors::leaderboard::window::{Timeframe, UnknownTimeframe, WindowKey};
use phoenix_actors::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use super::render::{api_error_frame, error_frame, validation_frame};
use super::session::{RemoteHook, SessionHandle, SubscribeError};
use super::Principal;
use crate::error::ApiError;
use crate::gateway::events::{Batch, EventResult};
use crate::tokens::Claims;

/// Longest frame `id` (subscription ids, ingest batch ids), in bytes: ids are echoed in
/// every frame of the subscription.
pub const MAX_FRAME_ID: usize = 128;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Subscribe {
    id: String,
    leaderboard: String,
    #[serde(default)]
    timeframe: Option<String>,
    #[serde(default)]
    window: Option<String>,
    view: ViewSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewSpec {
    top: Option<usize>,
    around: Option<String>,
    radius: Option<usize>,
}

/// The view a `subscribe` frame asks for, or the 400 that names the bad field.
fn view_key(s: &Subscribe) -> Result<ViewKey, ApiError> {
    let bad = ApiError::Validation;
    if s.id.is_empty() || s.id.len() > MAX_FRAME_ID {
        return Err(bad(format!("id: must be 1 to {MAX_FRAME_ID} bytes")));
    }
    if !valid_id(&s.leaderboard) {
        return Err(bad(
            "leaderboard: must be 1-64 characters of A-Z a-z 0-9 - _ .".into(),
        ));
    }
    let tf: Timeframe = s
        .timeframe
        .as_deref()
        .unwrap_or("all_time")
        .parse()
        .map_err(|e: UnknownTimeframe| bad(e.to_string()))?;
    let window = match s.window.as_deref() {
        None | Some("current") => None,
        Some(k) => Some(WindowKey::parse(tf, k).map_err(|e| bad(format!("window: {e}")))?),
    };
    let kind = match (&s.view.top, &s.view.around) {
        (Some(n), None) if (1..=100).contains(n) => ViewKind::Top(*n),
        (None, Some(user)) => {
            if user.is_empty() || user.len() > MAX_ID_LEN {
                return Err(bad(format!(
                    "view.around: a user_id of 1 to {MAX_ID_LEN} bytes"
                )));
            }
            let radius = s.view.radius.unwrap_or(5);
            if radius > 50 {
                return Err(bad("view.radius: must be 0 to 50".into()));
            }
            ViewKind::Around {
                user: user.clone(),
                radius,
            }
        }
        _ => {
            return Err(bad(
                r#"view: must be {"top": 1..100} or {"around": user_id, "radius": 0..50}"#.into(),
            ))
        }
    };
    Ok(ViewKey { tf, window, kind })
}

pub async fn handle(
    text: &str,
    who: &Principal,
    engine: &Engine,
    actor: &SessionHandle,
    out: &mpsc::Sender<String>,
    inflight: &Arc<Semaphore>,
    max_inflight: usize,
) {
    let reply = |f: String| {
        let out = out.clone();
        async move {
            let _ = out.send(f).await;
        }
    };
    let frame: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return reply(validation_frame(None, &format!("Malformed JSON: {e}"))).await,
    };
    let id = frame.get("id").and_then(Value::as_str);
    if id.is_some_and(|i| i.len() > MAX_FRAME_ID) {
        return reply(validation_frame(
            None,
            &format!("id: must be at most {MAX_FRAME_ID} bytes"),
        ))
        .await;
    }
    match frame.get("type").and_then(Value::as_str) {
        Some("ping") => reply(json!({"type": "pong", "id": id}).to_string()).await,
        Some("subscribe") => {
            let mut body = frame.clone();
            body.as_object_mut().map(|o| o.remove("type"));
            let sub: Subscribe = match serde_json::from_value(body) {
                Ok(s) => s,
                Err(e) => return reply(validation_frame(id, &format!("subscribe: {e}"))).await,
            };
            if let Some(Claims {
                lb: Some(allowed), ..
            }) = &who.client
            {
                if !allowed.contains(&sub.leaderboard) {
                    return reply(error_frame(
                        id,
                        "FORBIDDEN",
                        403,
                        "this token may not watch that leaderboard",
                    ))
                    .await;
                }
            }
            let key = match view_key(&sub) {
                Ok(key) => key,
                Err(e) => return reply(api_error_frame(id, &e)).await,
            };
            match actor.subscribe(sub.id, sub.leaderboard, key).await {
                Ok(()) | Err(SubscribeError::Ended) => {}
                Err(e @ SubscribeError::TooMany(_)) => {
                    reply(validation_frame(id, &e.to_string())).await
                }
            }
        }
        Some("unsubscribe") => match id {
            Some(id) => actor.unsubscribe(id.to_owned()),
            None => {
                reply(validation_frame(
                    None,
                    "unsubscribe needs the subscription id",
                ))
                .await
            }
        },
        Some("ingest") => {
            if who.client.is_some() {
                return reply(error_frame(
                    id,
                    "FORBIDDEN",
                    403,
                    "client tokens are read-only: ingest needs tenant HMAC",
                ))
                .await;
            }
            ingest(text, id, who, engine, actor, inflight, max_inflight).await
        }
        _ => {
            reply(validation_frame(
                id,
                "type must be subscribe, unsubscribe, ingest or ping",
            ))
            .await
        }
    }
}

#[derive(Deserialize)]
struct IngestFrame<'a> {
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    #[serde(borrow)]
    events: Option<Vec<&'a RawValue>>,
}

/// Validate, then log durably in a task; the ack goes out after fsync. Reading the next frame
/// waits while `max_inflight` events are unacknowledged.
/// `{"type":"ack","id":…,"results":[…]}`, serialized straight from the results.
fn ack_frame(id: Option<&str>, results: &[EventResult]) -> String {
    #[derive(Serialize)]
    struct Ack<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        id: Option<&'a str>,
        results: &'a [EventResult],
    }
    serde_json::to_string(&Ack {
        kind: "ack",
        id,
        results,
    })
    .expect("an ack serializes")
}

async fn ingest(
    text: &str,
    id: Option<&str>,
    who: &Principal,
    engine: &Engine,
    session: &SessionHandle,
    inflight: &Arc<Semaphore>,
    max_inflight: usize,
) {
    let out = &session.outbound();
    let frame: IngestFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let _ = out
                .send(validation_frame(id, &format!("ingest: {e}")))
                .await;
            return;
        }
    };
    let raws: Vec<&RawValue> = match (frame.event, frame.events) {
        (Some(e), None) => vec![e],
        (None, Some(list)) if (1..=crate::gateway::events::MAX_BULK).contains(&list.len()) => list,
        (None, Some(_)) => {
            let _ = out
                .send(validation_frame(id, "events must hold 1 to 100 events"))
                .await;
            return;
        }
        _ => {
            let _ = out
                .send(validation_frame(id, "ingest needs \"event\" or \"events\""))
                .await;
            return;
        }
    };
    let n = raws.len().min(max_inflight) as u32;
    let Ok(permits) = inflight.clone().acquire_many_owned(n).await else {
        return;
    };
    let mut batch = Batch::validate(&raws, &who.tenant, Utc::now());
    let (engine, remote, tenant, out, id) = (
        engine.clone(),
        session.remote(),
        who.tenant.clone(),
        out.clone(),
        id.map(str::to_owned),
    );
    tokio::spawn(async move {
        let valid = std::mem::take(&mut batch.valid);
        let outcomes = match remote {
            _ if valid.is_empty() => Ok(Vec::new()),
            // Cluster mode: a tenant owned by another node is logged there.
            Some(RemoteHook(r)) if r.is_remote(&tenant) => {
                r.ingest(tenant, id.clone(), valid).await
            }
            _ => engine
                .ingest(&tenant, valid)
                .await
                .map_err(|e| api_error_frame(id.as_deref(), &ApiError::from(e))),
        };
        let frame = match outcomes {
            Ok(outcomes) => {
                let (results, ..) = batch.results(&outcomes);
                ack_frame(id.as_deref(), &results)
            }
            Err(frame) => frame,
        };
        let _ = out.send(frame).await;
        drop(permits);
    });
}
