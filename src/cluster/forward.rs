//! Any node serves any request: a tenant-scoped request for a tenant another node owns is
//! sent to the owner over NATS request/reply (`phx.node.<owner>.http`) and run through the
//! owner's own router, so the owner checks auth on the raw request as if it came directly.
//!
//! Frame (both ways): a 4-byte big-endian length, a JSON head (method, URI and headers, or
//! status and headers), then the body. A request that arrived forwarded carries
//! `x-phoenix-forwarded-by`; it is never forwarded again (a tenant that moved meanwhile gets
//! a 503 and the client retries).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tower::ServiceExt;

use super::Node;
use crate::config::TenantConfig;
use crate::error::ApiError;

/// Marks a request another node forwarded here (its value: that node's id).
pub(super) const FORWARDED: &str = "x-phoenix-forwarded-by";

/// Labels of `phoenix_cluster_forwarded_total{result}`.
pub(super) const RESULTS: [&str; 5] = ["ok", "refused", "timeout", "unreachable", "no_owner"];

/// Most bytes of a forwarded request or response body (the edge's body limit, plus room).
const MAX_BODY: usize = crate::gateway::BODY_LIMIT + 64 * 1024;

fn subject(node: &str) -> String {
    format!("phx.node.{node}.http")
}

#[derive(Serialize, Deserialize)]
struct RequestHead {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct ResponseHead {
    status: u16,
    headers: Vec<(String, String)>,
}

/// The tenant a request is for, when it is tenant-scoped and may need its owner: the
/// `X-Tenant-Id` header, the GAMEMONITORING webhook's path, the dashboard's per-tenant
/// paths, the Ninja Metrics app of `POST /event`. WebSocket upgrades are served here.
pub(super) fn tenant_of(tenants: &[TenantConfig], req: &Request) -> Option<String> {
    let path = req.uri().path();
    if path == "/v1/ws" {
        return None;
    }
    if let Some(rest) = path.strip_prefix("/v1/webhooks/gamemonitoring/") {
        return Some(rest.split('/').next().unwrap_or(rest).to_owned());
    }
    if let Some(rest) = path.strip_prefix("/v1/admin/tenants/") {
        let mut parts = rest.split('/');
        let id = parts.next()?;
        return matches!(parts.next(), Some("leaderboards" | "players")).then(|| id.to_owned());
    }
    if path == "/event" {
        return ninja_tenant(tenants, req.uri().query().unwrap_or(""));
    }
    req.headers()
        .get("x-tenant-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The tenant whose Ninja Metrics app `client_id` + `app_id` name.
fn ninja_tenant(tenants: &[TenantConfig], query: &str) -> Option<String> {
    let (mut client, mut app) = (None, None);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("client_id", v)) => client = Some(v),
            Some(("app_id", v)) => app = Some(v),
            _ => {}
        }
    }
    let (client, app) = (client?, app?);
    tenants
        .iter()
        .find(|t| {
            t.ninja_metrics
                .as_ref()
                .is_some_and(|n| n.client_id == client && n.app_id == app)
        })
        .map(|t| t.id.clone())
}

pub(super) fn counted(result: &'static str) {
    metrics::counter!("phoenix_cluster_forwarded_total", "result" => result).increment(1);
}

/// The middleware: serve here, forward to the owner, or answer 503.
pub(super) async fn route(node: Arc<Node>, req: Request, next: Next) -> Response {
    let Some(tenant) = tenant_of(&node.service.tenants, &req) else {
        return next.run(req).await;
    };
    // Unknown tenants are refused by the handlers here, with their own error.
    if node.table.serves(&tenant) || node.tenants.get(&tenant).is_none() {
        return next.run(req).await;
    }
    if req.headers().contains_key(FORWARDED) {
        return ApiError::Unavailable(format!(
            "tenant {tenant} is moving between nodes; retry shortly"
        ))
        .into_response();
    }
    match owner_elsewhere(&node, &tenant).await {
        Some(owner) => forward(&node, &tenant, &owner, req).await,
        None => {
            counted("no_owner");
            ApiError::Unavailable(format!(
                "tenant {tenant} has no owner node right now (failover in progress); retry shortly"
            ))
            .into_response()
        }
    }
}

/// The node other than this one that owns `tenant`: the lease table's, or when it does not
/// know (or names this node, which does not run it), the bucket's. `None`: no owner now.
pub(super) async fn owner_elsewhere(node: &Node, tenant: &str) -> Option<String> {
    let owner = node
        .table
        .owners
        .read()
        .expect("table")
        .get(tenant)
        .cloned();
    let owner = match owner {
        Some(o) if o != node.id => Some(o),
        _ => match node.leases.get() {
            Some(l) => l.owner(tenant).await.ok().flatten().map(|(o, _)| o),
            None => None,
        },
    };
    owner.filter(|o| *o != node.id)
}

async fn forward(node: &Node, tenant: &str, owner: &str, req: Request) -> Response {
    let Ok(_permit) = node.outbound.clone().try_acquire_owned() else {
        counted("refused");
        return ApiError::Unavailable("too many requests in flight to other nodes".into())
            .into_response();
    };
    let gauge = metrics::gauge!("phoenix_cluster_forwards_in_flight");
    gauge.increment(1.0);
    let result = send(node, tenant, owner, req).await;
    gauge.decrement(1.0);
    match result {
        Ok(resp) => {
            counted("ok");
            resp
        }
        Err(resp) => resp,
    }
}

async fn send(node: &Node, tenant: &str, owner: &str, req: Request) -> Result<Response, Response> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge.into_response())?;
    let mut headers = head_fields(&parts.headers);
    headers.push((FORWARDED.into(), node.id.clone()));
    let head = RequestHead {
        method: parts.method.as_str().to_owned(),
        uri: parts.uri.to_string(),
        headers,
    };
    let payload = frame(&head, &body);
    let msg = match exchange(node, tenant, owner, payload.clone()).await {
        Err(Failure::NoResponders) => {
            // Nobody listens on the owner's subject: it died or lost NATS. The table is as
            // old as the last lease scan; the bucket says whether the tenant moved since.
            match moved_from(node, tenant, owner).await {
                Some(next) => exchange(node, tenant, &next, payload)
                    .await
                    .map_err(|f| f.response(tenant, &next))?,
                None => return Err(Failure::NoResponders.response(tenant, owner)),
            }
        }
        other => other.map_err(|f| f.response(tenant, owner))?,
    };
    let (head, body): (ResponseHead, Bytes) = unframe(&msg.payload).ok_or_else(|| {
        counted("unreachable");
        ApiError::Internal("undecodable forwarded response".into()).into_response()
    })?;
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (k, v) in head.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            resp.headers_mut().append(k, v);
        }
    }
    Ok(resp)
}

/// Why a forwarded request got no answer.
enum Failure {
    /// The lease table names another owner now: the owner died with the request in hand.
    Moved,
    /// Nobody subscribes to the owner's subject.
    NoResponders,
    TimedOut,
    Other,
}

impl Failure {
    /// The 503 the client gets (it retries), counted by result.
    fn response(self, tenant: &str, owner: &str) -> Response {
        let (result, message) = match self {
            Failure::Moved => (
                "unreachable",
                format!("tenant {tenant} moved away from node {owner} during the request; retry"),
            ),
            Failure::NoResponders => (
                "unreachable",
                format!("the node owning this tenant ({owner}) is unreachable; retry shortly"),
            ),
            Failure::TimedOut => (
                "timeout",
                format!("the node owning this tenant ({owner}) did not answer in time"),
            ),
            Failure::Other => ("unreachable", "forwarding to the owner node failed".into()),
        };
        counted(result);
        ApiError::Unavailable(message).into_response()
    }
}

/// The owner the lease bucket names for `tenant` when it is neither `dead` nor this node,
/// written into the lease table so that the next requests go there directly.
async fn moved_from(node: &Node, tenant: &str, dead: &str) -> Option<String> {
    let leases = node.leases.get()?;
    let (now, _) = leases.owner(tenant).await.ok().flatten()?;
    if now == dead || now == node.id {
        return None;
    }
    tracing::info!(tenant, dead, owner = %now, "forwarding to the tenant's new owner");
    node.table
        .owners
        .write()
        .expect("table")
        .insert(tenant.to_owned(), now.clone());
    Some(now)
}

/// One request/reply with `owner`'s router.
async fn exchange(
    node: &Node,
    tenant: &str,
    owner: &str,
    payload: Bytes,
) -> Result<async_nats::Message, Failure> {
    let timeout = Duration::from_millis(node.config.forward_timeout_ms);
    let request = async_nats::Request::new()
        .payload(payload)
        .timeout(Some(timeout));
    let reply = node.client.send_request(subject(owner), request);
    tokio::pin!(reply);
    let known = |n: &Node| n.table.owners.read().expect("table").get(tenant).cloned();
    let initial = known(node);
    // An owner that dies with the request in hand never answers: give up as soon as the
    // lease table shows another owner (the client's retry goes there).
    let reply = loop {
        tokio::select! {
            r = &mut reply => break r,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                let now = known(node);
                if now != initial && now.as_deref().is_some_and(|o| o != owner) {
                    return Err(Failure::Moved);
                }
            }
        }
    };
    reply.map_err(|e| match e.kind() {
        async_nats::RequestErrorKind::NoResponders => Failure::NoResponders,
        async_nats::RequestErrorKind::TimedOut => Failure::TimedOut,
        _ => {
            tracing::warn!(owner, error = %e, "forward failed");
            Failure::Other
        }
    })
}

/// The end-to-end header fields of `headers`, as text.
fn head_fields(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| !hop_by_hop(k.as_str()))
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "transfer-encoding" | "keep-alive" | "upgrade" | "content-length"
    )
}

fn frame<H: Serialize>(head: &H, body: &[u8]) -> Bytes {
    let head = serde_json::to_vec(head).expect("a head serialises");
    let mut out = Vec::with_capacity(4 + head.len() + body.len());
    out.extend_from_slice(&u32::try_from(head.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(body);
    Bytes::from(out)
}

fn unframe<H: for<'de> Deserialize<'de>>(payload: &Bytes) -> Option<(H, Bytes)> {
    let len = usize::try_from(u32::from_be_bytes(payload.get(..4)?.try_into().ok()?)).ok()?;
    let end = 4usize.checked_add(len)?;
    let head = serde_json::from_slice(payload.get(4..end)?).ok()?;
    Some((head, payload.slice(end..)))
}

fn to_request(payload: &Bytes) -> Option<Request> {
    let (head, body): (RequestHead, Bytes) = unframe(payload)?;
    let mut req = Request::builder()
        .method(head.method.as_str())
        .uri(head.uri)
        .body(Body::from(body))
        .ok()?;
    for (k, v) in head.headers {
        req.headers_mut().append(
            HeaderName::try_from(k).ok()?,
            HeaderValue::try_from(v).ok()?,
        );
    }
    Some(req)
}

/// Subscribe to `subject`, retrying every second until it works; `None` once `stop` is set.
pub(super) async fn subscribe(
    node: &Node,
    subject: String,
    stop: &mut watch::Receiver<bool>,
) -> Option<async_nats::Subscriber> {
    loop {
        match node.client.subscribe(subject.clone()).await {
            Ok(s) => return Some(s),
            Err(e) => tracing::warn!(%subject, error = %e, "cannot subscribe; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return None,
        }
    }
}

/// The next message on `sub` that wants a reply, with where to answer; `None` once `stop` is
/// set or the subscription ended.
pub(super) async fn next_request(
    sub: &mut async_nats::Subscriber,
    stop: &mut watch::Receiver<bool>,
) -> Option<(async_nats::Message, async_nats::Subject)> {
    loop {
        let m = tokio::select! {
            m = sub.next() => m?,
            _ = stop.changed() => return None,
        };
        if let Some(reply) = m.reply.clone() {
            return Some((m, reply));
        }
    }
}

/// Answer requests forwarded to this node through `router`, at most
/// `max_forwards_in_flight` at once.
pub(super) async fn respond(node: Arc<Node>, router: Router, mut stop: watch::Receiver<bool>) {
    let Some(mut sub) = subscribe(&node, subject(&node.id), &mut stop).await else {
        return;
    };
    while let Some((msg, reply)) = next_request(&mut sub, &mut stop).await {
        let Ok(permit) = node.inbound.clone().acquire_owned().await else {
            return;
        };
        let (router, client) = (router.clone(), node.client.clone());
        tokio::spawn(async move {
            let resp = match to_request(&msg.payload) {
                Some(req) => match router.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                },
                None => {
                    ApiError::Validation("undecodable forwarded request".into()).into_response()
                }
            };
            let (parts, body) = resp.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let head = ResponseHead {
                status: parts.status.as_u16(),
                headers: head_fields(&parts.headers),
            };
            if let Err(e) = client.publish(reply, frame(&head, &body)).await {
                tracing::warn!(error = %e, "reply to a forwarded request failed");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants() -> Vec<TenantConfig> {
        let c = crate::Config::from_toml(
            r#"operator_token = "operator-token"
[[tenants]]
id = "acme"
secret = "acme-secret-0123456789"
ninja_metrics = { client_id = "c1", app_id = "a1" }
"#,
        )
        .expect("config");
        c.tenants
    }

    fn req(method: &str, uri: &str, tenant: Option<&str>) -> Request {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = tenant {
            b = b.header("X-Tenant-Id", t);
        }
        b.body(Body::empty()).expect("request")
    }

    #[test]
    fn the_tenant_of_each_kind_of_request() {
        let t = tenants();
        let of = |m, u, h| tenant_of(&t, &req(m, u, h));
        assert_eq!(
            of("POST", "/v1/events", Some("acme")).as_deref(),
            Some("acme")
        );
        assert_eq!(
            of("GET", "/v1/leaderboards/x/standings?limit=3", Some("zed")).as_deref(),
            Some("zed")
        );
        assert_eq!(
            of("POST", "/v1/webhooks/gamemonitoring/acme", None).as_deref(),
            Some("acme")
        );
        assert_eq!(
            of("GET", "/v1/admin/tenants/acme/leaderboards", None).as_deref(),
            Some("acme")
        );
        assert_eq!(
            of("GET", "/v1/admin/tenants/acme/players/u1/wallet", None).as_deref(),
            Some("acme")
        );
        assert_eq!(
            of("POST", "/event?client_id=c1&app_id=a1&type=1", None).as_deref(),
            Some("acme")
        );
        // Served where they arrive: admin changes, probes, WebSocket, unknown apps.
        assert_eq!(of("POST", "/v1/admin/tenants/acme/suspend", None), None);
        assert_eq!(of("GET", "/ready", None), None);
        assert_eq!(of("GET", "/v1/ws", Some("acme")), None);
        assert_eq!(of("POST", "/event?client_id=c1&app_id=nope", None), None);
    }

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let head = ResponseHead {
            status: 202,
            headers: vec![("content-type".into(), "application/json".into())],
        };
        let f = frame(&head, b"{\"ok\":1}");
        let (h, body): (ResponseHead, Bytes) = unframe(&f).expect("decodes");
        assert_eq!(h.status, 202);
        assert_eq!(&body[..], b"{\"ok\":1}");
        assert!(unframe::<ResponseHead>(&Bytes::from_static(b"\x00\x00\x00\xffab")).is_none());
        assert!(unframe::<ResponseHead>(&Bytes::from_static(b"\x00")).is_none());
    }
}
