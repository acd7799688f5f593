//! Schemas of the JSON bodies that handlers build as `serde_json::Value`: the shapes that
//! docs/ingestion.md, docs/leaderboards.md, docs/websocket.md, docs/gamemonitoring.md and
//! docs/ninja-metrics.md document. They exist only to describe the API in `/openapi.json`.
#![allow(dead_code)]

use serde_json::Value;
use utoipa::{IntoResponses, ToSchema};

/// The error envelope every error response uses (seed 000).
#[derive(ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// The body of the error envelope.
#[derive(ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// Human-readable; 5xx messages say nothing internal.
    pub message: String,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
}

/// Every `code` `ApiError::code` produces (SPEC §4 and `src/error.rs`).
#[derive(ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    ValidationError,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    Conflict,
    PayloadTooLarge,
    UriTooLong,
    UnsupportedMediaType,
    TooManyRequests,
    RequestHeaderFieldsTooLarge,
    InternalError,
    Unavailable,
}

/// `{"status": "ok"}` / `{"status": "ready"}`.
#[derive(ToSchema)]
pub struct StatusBody {
    #[schema(example = "ok")]
    pub status: String,
}

/// IngestionEventV1 (seed 000 §4).
#[derive(ToSchema)]
pub struct IngestionEventV1 {
    /// Set by the gateway from the signed tenant; any placeholder is accepted.
    pub tenant_id: Option<String>,
    /// Unique per tenant; duplicates inside the dedupe window are ignored.
    pub event_id: String,
    /// Logical event type, e.g. `match.completed`.
    #[schema(rename = "type")]
    pub r#type: String,
    pub actor: Actor,
    /// `{"type", "id", …}` describing the entity involved.
    #[schema(value_type = Option<Object>)]
    pub subject: Option<Value>,
    /// ISO 8601; at most 1 hour in the future.
    #[schema(format = DateTime)]
    pub occurred_at: String,
    /// Arbitrary key/value bag used by scopes, conditions and scoring expressions.
    #[schema(value_type = Option<Object>)]
    pub attrs: Option<Value>,
}

/// The player receiving points.
#[derive(ToSchema)]
pub struct Actor {
    pub user_id: String,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// `POST /v1/events/bulk` body: 1 to 100 events.
#[derive(ToSchema)]
pub struct BulkRequest {
    #[schema(min_items = 1, max_items = 100)]
    pub events: Vec<IngestionEventV1>,
}

/// The answer for one event.
#[derive(ToSchema)]
pub struct EventAck {
    /// The event's `event_id` as sent (null when it had none).
    #[schema(value_type = Option<String>)]
    pub event_id: Value,
    /// `accepted`, `duplicate` or (bulk only) `failed`.
    #[schema(example = "accepted")]
    pub status: String,
    /// Why the event failed (bulk only).
    pub error: Option<String>,
}

/// `POST /v1/events/bulk` answer.
#[derive(ToSchema)]
pub struct BulkAck {
    /// `accepted`, `partial` or `failed`.
    pub status: String,
    pub total: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub failed: u64,
    pub results: Vec<EventAck>,
}

/// `GET /v1/events` answer: a page of the durable log.
#[derive(ToSchema)]
pub struct LogPage {
    pub events: Vec<LogEntry>,
    /// Oldest retained position.
    pub first: u64,
    /// The `from` of the next page.
    pub next: u64,
    /// Highest durable position.
    pub head: u64,
}

/// One durable log entry.
#[derive(ToSchema)]
pub struct LogEntry {
    pub seq: u64,
    #[schema(format = DateTime)]
    pub accepted_at: Option<String>,
    #[schema(value_type = Object)]
    pub event: Value,
}

/// `POST /v1/tokens` answer.
#[derive(ToSchema)]
pub struct ClientToken {
    /// `pxt1.…`: present as `Authorization: Bearer` or `?token=` on `/v1/ws`.
    pub token: String,
    pub tenant: String,
    pub user_id: String,
    /// The boards it may read; null for all.
    pub leaderboards: Option<Vec<String>>,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// A scoring rule of a leaderboard.
#[derive(ToSchema)]
pub struct Rule {
    /// An event type, `*` wildcards allowed at the end.
    pub event_type: String,
    /// `{"attrs.path": {"eq"|"ne"|"gt"|…: value}}`.
    #[schema(value_type = Option<Object>)]
    pub conditions: Option<Value>,
    /// Arithmetic over `attrs.*`, `min`, `max`, `abs`.
    pub points_expression: String,
}

/// A leaderboard definition (`PUT` body and the answer of `GET`/`PUT`).
#[derive(ToSchema)]
pub struct LeaderboardDefinition {
    /// Set from the path.
    pub id: Option<String>,
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub scope: Option<Value>,
    #[schema(min_items = 1)]
    pub rules: Vec<Rule>,
    /// `sum`, `max`, `min`, `count`, `last`.
    pub aggregation: Option<String>,
    /// `all_time`, `daily`, `weekly`, `monthly`.
    pub timeframes: Option<Vec<String>>,
    /// `desc` or `asc`.
    pub sort_order: Option<String>,
    pub late_grace_seconds: Option<u64>,
    /// In `PUT` answers when the board is new or changed: the log position it was rebuilt from.
    pub rebuilt_from: Option<u64>,
}

/// `GET /v1/leaderboards` answer (also the dashboard's per-tenant list).
#[derive(ToSchema)]
pub struct LeaderboardList {
    pub leaderboards: Vec<LeaderboardDefinition>,
}

/// One ranked row.
#[derive(ToSchema)]
pub struct Standing {
    /// 1-based.
    pub rank: u64,
    pub user_id: String,
    pub score: f64,
}

/// `GET /v1/leaderboards/{id}/standings` answer.
#[derive(ToSchema)]
pub struct Standings {
    pub leaderboard: String,
    pub timeframe: String,
    pub window: String,
    pub total: u64,
    pub entries: Vec<Standing>,
}

/// `GET /v1/leaderboards/{id}/users/{user_id}` answer.
#[derive(ToSchema)]
pub struct UserStanding {
    pub leaderboard: String,
    pub timeframe: String,
    pub window: String,
    pub user_id: String,
    /// 1-based (a user not on the board is a 404).
    pub rank: u64,
    pub score: f64,
    /// The neighbours, `around` on each side.
    pub entries: Vec<Standing>,
}

/// A tenant as the admin API shows it.
#[derive(ToSchema)]
pub struct TenantView {
    pub id: String,
    /// `active` or `suspended`.
    pub status: String,
    #[schema(format = DateTime)]
    pub previous_secret_valid_until: Option<String>,
    /// Only in the answers of create and rotate, once.
    pub secret: Option<String>,
}

/// `GET /v1/admin/tenants` answer.
#[derive(ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
}

/// `POST /v1/admin/tenants/{id}/token` answer: a one-hour read-only client token.
#[derive(ToSchema)]
pub struct DashboardToken {
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// `POST /event` answer (Ninja Metrics): one payload → `{"event_id", "type", "status"}`;
/// an array → the bulk counts with per-payload `results` (`index`, `status`, `error`).
#[derive(ToSchema)]
pub struct NinjaAck {
    pub event_id: Option<String>,
    /// The Phoenix event type the payload became.
    #[schema(rename = "type")]
    pub r#type: Option<String>,
    /// `accepted`, `duplicate`; for arrays also `partial`, `failed`.
    pub status: String,
    pub total: Option<u64>,
    pub accepted: Option<u64>,
    pub duplicates: Option<u64>,
    pub failed: Option<u64>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub results: Option<Vec<Value>>,
}

/// A Ninja Metrics dimension record (account, character, shard, item) or a currency.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub struct NinjaRecord(pub Value);

/// `GET /v1/ninja/clients` answer.
#[derive(ToSchema)]
pub struct NinjaClients {
    #[schema(value_type = Vec<Object>)]
    pub clients: Vec<Value>,
}

/// A vote-reward grant.
#[derive(ToSchema)]
pub struct Grant {
    pub vote_id: String,
    pub server_id: Option<String>,
    pub nickname: String,
    pub gm_user_id: Option<String>,
    pub coins: u64,
    pub items: Vec<String>,
    pub role: Option<String>,
    pub vip_days: Option<u32>,
    #[schema(format = DateTime)]
    pub granted_at: Option<String>,
}

/// `PUT /v1/players/{user_id}` body.
#[derive(ToSchema)]
pub struct LinkRequest {
    /// The GAMEMONITORING nickname, at most 64 bytes.
    pub nickname: String,
}

/// `PUT /v1/players/{user_id}` answer.
#[derive(ToSchema)]
pub struct LinkAnswer {
    pub user_id: String,
    pub nickname: String,
    pub balance: i64,
    /// Grants made now for earlier votes under that nickname.
    pub claimed: Vec<Grant>,
}

/// `GET /v1/players/{user_id}/wallet` answer.
#[derive(ToSchema)]
pub struct Wallet {
    pub user_id: String,
    pub nicknames: Vec<String>,
    pub balance: i64,
    pub grants: Vec<Grant>,
}

/// One recorded webhook delivery.
#[derive(ToSchema)]
pub struct Delivery {
    pub event_type: String,
    pub event_id: String,
    pub status: String,
    #[schema(format = DateTime)]
    pub received_at: Option<String>,
    pub user_id: Option<String>,
    pub emitted: bool,
}

/// `GET /v1/gamemonitoring/deliveries` answer.
#[derive(ToSchema)]
pub struct Deliveries {
    pub deliveries: Vec<Delivery>,
}

/// The GAMEMONITORING webhook body (seed 004): a JSON object signed with the tenant's webhook
/// token (`signature`); `event_type` `server.vote` with an `event_id` grants a reward.
#[derive(ToSchema)]
pub struct GmWebhook {
    pub event_type: String,
    #[schema(value_type = Option<String>)]
    pub event_id: Option<Value>,
    /// Test deliveries are answered 204 and change nothing.
    pub is_test: Option<bool>,
    /// HMAC-SHA256 hex over every other key, sorted, `key=value` joined by `&`.
    pub signature: String,
}

/// One window of a timeframe (`GET /v1/leaderboards/{id}/windows`).
#[derive(ToSchema)]
pub struct WindowRow {
    /// The window key (`2026-12-01`, `2026-W49`, a schedule's UTC start …).
    pub window: String,
    /// `open`, `grace` (ended, still taking late events) or `closed`.
    pub state: String,
    #[schema(format = DateTime)]
    pub start: Option<String>,
    #[schema(format = DateTime)]
    pub end: Option<String>,
    /// End + `late_grace_seconds`: when the window freezes (and rewards are granted).
    #[schema(format = DateTime)]
    pub closes_at: Option<String>,
    pub total: u64,
}

/// `GET /v1/leaderboards/{id}/windows` answer.
#[derive(ToSchema)]
pub struct WindowList {
    pub leaderboard: String,
    pub timeframe: String,
    pub windows: Vec<WindowRow>,
}

/// One grant of a window close.
#[derive(ToSchema)]
pub struct CloseGrant {
    pub user_id: String,
    pub rank: u64,
    /// Index of the matching tier in the definition's `rewards`.
    pub tier: u64,
    pub coins: u64,
    pub items: Vec<String>,
}

/// The final standings and grants of a closed window.
#[derive(ToSchema)]
pub struct WindowClose {
    pub leaderboard: String,
    pub timeframe: String,
    pub window: String,
    /// Always `closed`.
    pub state: String,
    #[schema(format = DateTime)]
    pub closed_at: Option<String>,
    pub total: u64,
    pub results: Vec<Standing>,
    pub grants: Vec<CloseGrant>,
    /// Users who matched a tier past `close_max_grants` (not granted).
    pub grants_capped: u64,
    /// False for windows that closed before the board's rewards were defined.
    pub rewarded: bool,
    /// The outbound webhook delivery id of this close (`X-Phoenix-Delivery`).
    pub delivery_id: Option<String>,
}

/// `GET /v1/leaderboards/{id}/results` answer: closed windows, newest first.
#[derive(ToSchema)]
pub struct WindowCloses {
    pub leaderboard: String,
    pub timeframe: String,
    pub closes: Vec<WindowClose>,
}

/// `POST /v1/leaderboards/{id}/standings/users` body.
#[derive(ToSchema)]
pub struct UsersStandingsRequest {
    pub timeframe: Option<String>,
    pub window: Option<String>,
    /// At most 100 user ids; users without a score are left out of the answer.
    pub user_ids: Vec<String>,
}

/// A join's answer.
#[derive(ToSchema)]
pub struct Membership {
    pub leaderboard: String,
    pub user_id: String,
    pub member: bool,
}

/// One member.
#[derive(ToSchema)]
pub struct Member {
    pub user_id: String,
    /// Log position of the join.
    pub joined_at: u64,
}

/// `GET /v1/leaderboards/{id}/members` answer.
#[derive(ToSchema)]
pub struct MemberList {
    pub leaderboard: String,
    pub total: u64,
    pub members: Vec<Member>,
    /// Pass as `after` for the next page; null at the end.
    pub next: Option<String>,
}

/// One outbound webhook delivery attempt.
#[derive(ToSchema)]
pub struct WebhookAttempt {
    /// `X-Phoenix-Delivery`: the same on every retry of one delivery.
    pub delivery_id: String,
    /// What was delivered (`leaderboard.window_closed`).
    pub kind: String,
    pub attempt: u32,
    #[schema(format = DateTime)]
    pub at: Option<String>,
    /// `delivered`, `failed` (retried), `gave_up` or `no_endpoint`.
    pub result: String,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: Option<u64>,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
}

/// `GET /v1/webhooks/deliveries` answer.
#[derive(ToSchema)]
pub struct WebhookDeliveries {
    /// Deliveries still waiting in the outbox.
    pub pending: u64,
    pub deliveries: Vec<WebhookAttempt>,
}

/// `PUT /v1/admin/tenants/{id}/webhook` body.
#[derive(ToSchema)]
pub struct WebhookSetting {
    /// `http://` or `https://` URL; `null` removes the webhook.
    pub url: Option<String>,
}

/// The errors of a tenant-signed call.
#[derive(IntoResponses)]
pub enum TenantErrors {
    /// `VALIDATION_ERROR`: malformed JSON, a bad field or query.
    #[response(status = 400)]
    BadRequest(ErrorEnvelope),
    /// `UNAUTHORIZED`: missing or bad signature, stale timestamp, unknown tenant.
    #[response(status = 401)]
    Unauthorized(ErrorEnvelope),
    /// `FORBIDDEN`: the tenant is suspended (or the token may not read that board).
    #[response(status = 403)]
    Forbidden(ErrorEnvelope),
    /// `PAYLOAD_TOO_LARGE`: the body exceeds 1 MB.
    #[response(status = 413)]
    PayloadTooLarge(ErrorEnvelope),
    /// `INTERNAL_ERROR`: transient; retry.
    #[response(status = 500)]
    Internal(ErrorEnvelope),
    /// `UNAVAILABLE`: persistence unavailable or disk low; retry.
    #[response(status = 503)]
    Unavailable(ErrorEnvelope),
}

/// The errors of an operator call.
#[derive(IntoResponses)]
pub enum OperatorErrors {
    /// `VALIDATION_ERROR`: a bad body.
    #[response(status = 400)]
    BadRequest(ErrorEnvelope),
    /// `UNAUTHORIZED`: operator token missing or wrong.
    #[response(status = 401)]
    Unauthorized(ErrorEnvelope),
    /// `NOT_FOUND`: no such tenant.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
    /// `UNAVAILABLE`: persistence unavailable; retry.
    #[response(status = 503)]
    Unavailable(ErrorEnvelope),
}

/// `NOT_FOUND`: the named resource does not exist (or the integration is off for the tenant).
#[derive(IntoResponses)]
#[response(status = 404)]
#[allow(dead_code)]
pub struct NotFound(ErrorEnvelope);
