//! What a leaderboard answers: the result types of its queries and [`QueryError`], why a
//! query has no answer.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::broadcast;

use super::rank::Entry;
use super::views::{Published, ViewFrame};
use super::window::WindowKey;
use crate::error::EngineError;

/// A view subscription: the current snapshot and the stream of later frames.
pub type Subscription = (ViewFrame, broadcast::Receiver<Arc<Published>>);

/// Which window of a timeframe a query means.
#[derive(Debug, Clone)]
pub enum WindowSel {
    /// The window containing the server's current time (follows rollover).
    Current,
    Key(WindowKey),
}

/// A page of standings.
#[derive(Debug, Clone)]
pub struct Standings {
    pub window: WindowKey,
    pub total: usize,
    pub entries: Vec<Entry>,
}

/// One user's place and neighbourhood.
#[derive(Debug, Clone)]
pub struct UserStanding {
    pub window: WindowKey,
    pub rank: usize,
    pub score: f64,
    /// Users in the window.
    pub total: usize,
    /// Share of users ranked strictly better, 0–100 (two decimals).
    pub percentile: f64,
    pub entries: Vec<Entry>,
}

/// Where a window is in its life (SPEC §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// Before its end.
    Open,
    /// Past its end, still taking late events until end + `late_grace_seconds`.
    Grace,
    /// Frozen into history (or past its close, about to be).
    Closed,
}

impl WindowState {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowState::Open => "open",
            WindowState::Grace => "grace",
            WindowState::Closed => "closed",
        }
    }
}

/// One row of the windows listing.
#[derive(Debug, Clone)]
pub struct WindowInfo {
    pub window: WindowKey,
    /// Real start and end (`None` for `all_time`).
    pub start: Option<chrono::DateTime<Utc>>,
    pub end: Option<chrono::DateTime<Utc>>,
    /// End + `late_grace_seconds`: when it stops taking events and freezes.
    pub closes_at: Option<chrono::DateTime<Utc>>,
    pub state: WindowState,
    /// Users with a score in it.
    pub total: usize,
}

/// A page of members (user id, join position) and the member count.
pub type MemberPage = (Vec<(String, u64)>, usize);

/// What a board says about one user's membership.
#[derive(Debug, Clone, Copy)]
pub struct MemberStatus {
    pub join_required: bool,
    pub member: bool,
    /// The board's applied log position when it answered.
    pub applied: u64,
}

/// Why a leaderboard call has no answer: 400s, 404s and faults.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    /// The definition or a parameter is invalid (the message names the field).
    #[error("{0}")]
    Invalid(String),
    #[error("leaderboard {0} not found")]
    NoBoard(String),
    #[error("this leaderboard has no {0} timeframe")]
    NoTimeframe(String),
    /// A join past `entry.max_members`.
    #[error("{0}")]
    Conflict(String),
    #[error("no standings for window {0}")]
    NoWindow(String),
    #[error("user {0} has no score in window {1}")]
    NoUser(String, String),
    /// The board is replaying its log after a (re)start: retry shortly (503).
    #[error("{0}")]
    Replaying(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}
