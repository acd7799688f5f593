//! The leaderboard actor's answers: standings, a user's place, the windows listing, and the
//! entries of a live view — from the open windows in memory or from the board store.

use super::{labels, BoardActorState};
use crate::error::EngineError;
use crate::leaderboard::definition::Definition;
use crate::leaderboard::query::{
    QueryError, Standings, Subscription, UserStanding, WindowInfo, WindowSel, WindowState,
};
use crate::leaderboard::rank::Entry;
use crate::leaderboard::views::{View, ViewKey, ViewKind};
use crate::leaderboard::window::{Timeframe, WindowKey};

fn resolve(
    state: &BoardActorState,
    tf: Timeframe,
    sel: WindowSel,
) -> Result<WindowKey, QueryError> {
    check_timeframe(&state.board.def, tf)?;
    match sel {
        WindowSel::Current => current_window(state, tf),
        WindowSel::Key(k) => Ok(k),
    }
}

/// A built-in timeframe the board does not keep is a 404; a name that is neither built-in nor
/// one of the board's schedules is a 400.
fn check_timeframe(def: &Definition, tf: Timeframe) -> Result<(), QueryError> {
    if def.has_timeframe(tf) {
        Ok(())
    } else if tf.is_builtin() {
        Err(QueryError::NoTimeframe(tf.as_str().to_owned()))
    } else {
        Err(QueryError::Invalid(format!(
            "timeframe: unknown timeframe {:?} (expected hourly, daily, weekly, monthly, all_time or one of this board's schedules)",
            tf.as_str()
        )))
    }
}

/// The window of `tf` holding the server's now; outside a fixed schedule there is none (404).
fn current_window(state: &BoardActorState, tf: Timeframe) -> Result<WindowKey, QueryError> {
    let now = (state.args.clock)();
    state
        .board
        .def
        .calendar
        .window_of(tf, now)
        .ok_or_else(|| QueryError::NoWindow(format!("current ({tf} has no window open now)")))
}

fn percentile(rank: usize, total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let share = rank.saturating_sub(1) as f64 / total as f64 * 100.0;
    (share * 100.0).round() / 100.0
}

pub(super) fn standings(
    state: &BoardActorState,
    tf: Timeframe,
    sel: WindowSel,
    offset: usize,
    limit: usize,
) -> Result<Standings, QueryError> {
    let current = matches!(sel, WindowSel::Current);
    let window = resolve(state, tf, sel)?;
    if let Some(w) = state.board.window(tf, window) {
        return Ok(Standings {
            window,
            total: w.ranks.len(),
            entries: w.ranks.range(offset, limit),
        });
    }
    if let Some(total) = state.store.window_total(tf, window)? {
        return Ok(Standings {
            window,
            total,
            entries: state.store.window_range(tf, window, offset, limit)?,
        });
    }
    if current {
        // The current window simply has no scores yet.
        return Ok(Standings {
            window,
            total: 0,
            entries: Vec::new(),
        });
    }
    Err(QueryError::NoWindow(window.to_string()))
}

pub(super) fn user_standing(
    state: &BoardActorState,
    tf: Timeframe,
    sel: WindowSel,
    user: &str,
    around: usize,
) -> Result<UserStanding, QueryError> {
    let window = resolve(state, tf, sel)?;
    let none = || QueryError::NoUser(user.to_owned(), window.to_string());
    let (rank, score, entries, total) = match state.board.window(tf, window) {
        Some(w) => {
            let (rank, score, _) = w.ranks.get(user).ok_or_else(none)?;
            let entries = w.ranks.around(user, around).unwrap_or_default();
            (rank, score, entries, w.ranks.len())
        }
        None => {
            let (rank, score, entries) = state
                .store
                .window_around(tf, window, user, around)?
                .ok_or_else(none)?;
            let total = state.store.window_total(tf, window)?.unwrap_or(0);
            (rank, score, entries, total)
        }
    };
    Ok(UserStanding {
        window,
        rank,
        score,
        total,
        percentile: percentile(rank, total),
        entries,
    })
}

/// The listed users' entries in rank order; users without a score are left out.
pub(super) fn users_standings(
    state: &BoardActorState,
    tf: Timeframe,
    sel: WindowSel,
    users: &[String],
) -> Result<Standings, QueryError> {
    let window = resolve(state, tf, sel)?;
    let mut found: Vec<(usize, Entry)> = Vec::with_capacity(users.len());
    let (total, live) = match state.board.window(tf, window) {
        Some(w) => (w.ranks.len(), Some(w)),
        None => match state.store.window_total(tf, window)? {
            Some(total) => (total, None),
            None => (0, None),
        },
    };
    let mut seen = std::collections::HashSet::new();
    for user in users.iter().filter(|u| seen.insert(u.as_str())) {
        let hit = match live {
            Some(w) => w
                .ranks
                .position_of(user)
                .zip(w.ranks.get(user))
                .map(|(p, (rank, score, _))| (p, rank, score)),
            None => state.store.window_locate(tf, window, user)?,
        };
        if let Some((position, rank, score)) = hit {
            found.push((
                position,
                Entry {
                    rank,
                    user_id: user.clone(),
                    score,
                },
            ));
        }
    }
    found.sort_by_key(|(p, _)| *p);
    Ok(Standings {
        window,
        total,
        entries: found.into_iter().map(|(_, e)| e).collect(),
    })
}

/// The windows of `tf`, newest first: open ones, the current one (even without scores), and
/// frozen ones still in history.
pub(super) fn windows(
    state: &BoardActorState,
    tf: Timeframe,
    limit: usize,
) -> Result<Vec<WindowInfo>, QueryError> {
    check_timeframe(&state.board.def, tf)?;
    let now = (state.args.clock)();
    let (cal, grace) = (
        &state.board.def.calendar,
        state.board.def.late_grace_seconds,
    );
    let mut keys: std::collections::BTreeMap<WindowKey, (bool, usize)> = Default::default();
    for (k, w) in state.board.open_windows(tf).take(limit) {
        keys.insert(k, (false, w.accs.len()));
    }
    for k in state.board.frozen_windows(tf).take(limit) {
        keys.insert(k, (true, 0));
    }
    if let Some(k) = cal.window_of(tf, now) {
        keys.entry(k).or_insert((false, 0));
    }
    let mut out = Vec::with_capacity(limit);
    for (window, (frozen, users)) in keys.into_iter().rev().take(limit) {
        let span = cal.span(window);
        let closes_at = cal.close_time(window, grace);
        let state_now = if frozen || closes_at.is_some_and(|c| now >= c) {
            WindowState::Closed
        } else if span.is_some_and(|(_, end)| now >= end) {
            WindowState::Grace
        } else {
            WindowState::Open
        };
        let total = if frozen {
            state.store.window_total(tf, window)?.unwrap_or(0)
        } else {
            users
        };
        out.push(WindowInfo {
            window,
            start: span.map(|(s, _)| s),
            end: span.map(|(_, e)| e),
            closes_at,
            state: state_now,
            total,
        });
    }
    Ok(out)
}

/// The entries a view shows right now.
pub(super) fn view_entries(
    state: &BoardActorState,
    tf: Timeframe,
    window: WindowKey,
    kind: &ViewKind,
) -> Result<Vec<Entry>, EngineError> {
    if let Some(w) = state.board.window(tf, window) {
        return Ok(match kind {
            ViewKind::Top(n) => w.ranks.range(0, *n),
            ViewKind::Around { user, radius } => w.ranks.around(user, *radius).unwrap_or_default(),
        });
    }
    match kind {
        ViewKind::Top(n) => state.store.window_range(tf, window, 0, *n),
        ViewKind::Around { user, radius } => Ok(state
            .store
            .window_around(tf, window, user, *radius)?
            .map(|(_, _, entries)| entries)
            .unwrap_or_default()),
    }
}

/// The window a view shows now; `None` for a current view of a fixed schedule outside its span.
pub(super) fn view_window(state: &BoardActorState, key: &ViewKey) -> Option<WindowKey> {
    key.window.or_else(|| {
        state
            .board
            .def
            .calendar
            .window_of(key.tf, (state.args.clock)())
    })
}

pub(super) fn subscribe(
    state: &mut BoardActorState,
    key: ViewKey,
) -> Result<Subscription, QueryError> {
    check_timeframe(&state.board.def, key.tf)?;
    if let Some(view) = state.views.get(&key) {
        // Same view already live: share it. Its snapshot is current as of the last publish;
        // anything newer is still pending and arrives as an update.
        return Ok((view.snapshot(), view.tx.subscribe()));
    }
    let window = match view_window(state, &key) {
        Some(w) => w,
        None => current_window(state, key.tf)?,
    };
    let entries = view_entries(state, key.tf, window, &key.kind)?;
    let view = View::new(window, entries);
    let sub = (view.snapshot(), view.tx.subscribe());
    state.views.insert(key, view);
    metrics::gauge!("phoenix_ws_views", &labels(state)).set(state.views.len() as f64);
    Ok(sub)
}
