//! The leaderboard actor's window closes: record a just-frozen window's close (top entries,
//! grants, webhook) exactly once, and put its stream event into the tenant's log.

use std::time::{Duration, Instant};

use chrono::Utc;
use ractor::ActorRef;

use super::{BoardActorState, LeaderboardMsg};
use crate::error::EngineError;
use crate::leaderboard::close::Closed;
use crate::leaderboard::state::Window;
use crate::leaderboard::window::{Timeframe, WindowKey};

/// Record the close of a just-frozen window (exactly once, see `close.rs`): final top
/// entries, grants, webhook delivery; then queue its stream event.
pub(super) fn close_window(
    state: &mut BoardActorState,
    tf: Timeframe,
    key: WindowKey,
    w: &Window,
) -> Result<(), EngineError> {
    use crate::leaderboard::close::{assign, ranks_needed, CloseRecord, ResultEntry};
    let def = &state.args.def;
    // The window's real end: local midnight for a board's time zone, the next firing of a
    // cron schedule, a fixed window's `end`.
    let Some(end) = def.calendar.end(key) else {
        return Ok(());
    };
    let settings = state.args.close;
    let grace_ms = i64::try_from(def.late_grace_seconds)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let closed_at_ms = end.timestamp_millis().saturating_add(grace_ms);
    let total = w.ranks.len() as u64;
    let rewarded = closed_at_ms >= state.epoch_ms;
    let needed = if rewarded {
        ranks_needed(&def.rewards, total)
    } else {
        0
    };
    let take = usize::try_from(needed)
        .unwrap_or(usize::MAX)
        .min(settings.max_grants)
        .max(settings.results_size);
    let entries: Vec<ResultEntry> = w
        .ranks
        .range(0, take)
        .into_iter()
        .map(|e| ResultEntry {
            rank: e.rank as u64,
            user_id: e.user_id,
            score: e.score,
        })
        .collect();
    let (grants, mut capped) = if rewarded {
        assign(&def.rewards, &entries, total, settings.max_grants)
    } else {
        (Vec::new(), 0)
    };
    capped += needed.saturating_sub(entries.len() as u64);
    let record = CloseRecord {
        leaderboard: def.id.clone(),
        timeframe: tf.as_str().to_owned(),
        window: key.to_string(),
        closed_at_ms,
        total,
        results: entries.into_iter().take(settings.results_size).collect(),
        grants,
        grants_capped: capped,
        rewarded,
        emitted: false,
        delivery_id: None,
    };
    let tenant = state.args.tenant.clone();
    let grants = record.grants.len() as u64;
    match state
        .closes
        .close(tf, key, record, settings.outbox_max_per_tenant)?
    {
        Closed::New { webhook_dropped } => {
            let result = if rewarded {
                "rewarded"
            } else {
                "before_definition"
            };
            metrics::counter!("phoenix_window_closes_total", "tenant" => tenant.clone(), "result" => result)
                .increment(1);
            metrics::counter!("phoenix_rewards_grants_total", "tenant" => tenant.clone(), "source" => "leaderboard")
                .increment(grants);
            if capped > 0 {
                metrics::counter!("phoenix_rewards_grants_capped_total", "tenant" => tenant.clone())
                    .increment(capped);
                tracing::warn!(tenant, board = %def.id, window = %key, capped, "reward tiers matched more users than close_max_grants; the rest got nothing");
            }
            if webhook_dropped {
                metrics::counter!("phoenix_webhook_outbox_dropped_total", "tenant" => tenant.clone())
                    .increment(1);
                tracing::warn!(tenant, board = %def.id, window = %key, "webhook outbox full; this close sends no webhook");
            }
            tracing::info!(tenant, board = %def.id, window = %key, grants, rewarded, "window closed");
            if rewarded {
                state.unemitted.insert((tf, key), false);
            }
        }
        Closed::Already(r) => {
            if r.rewarded && !r.emitted {
                state.unemitted.entry((tf, key)).or_insert(false);
            }
        }
    }
    Ok(())
}

/// Put the stream event of every unemitted close into the tenant's log (deterministic
/// event id, so a repeat after a crash is a duplicate), one call in flight per close.
pub(super) fn emit_closes(myself: &ActorRef<LeaderboardMsg>, state: &mut BoardActorState) {
    let Some(routes) = state.args.tenants.clone() else {
        return;
    };
    if state.unemitted.is_empty() || Instant::now() < state.emit_retry.0 {
        return;
    }
    let tenant = state.args.tenant.clone();
    let Some(actor) = routes.read().expect("routes").get(&tenant).cloned() else {
        return;
    };
    let timeout = state.args.close.emit_timeout;
    for ((tf, key), in_flight) in state.unemitted.iter_mut() {
        if *in_flight {
            continue;
        }
        let record = match state.closes.get(*tf, *key) {
            Ok(Some(r)) => r,
            _ => continue,
        };
        let event = match crate::event::Event::from_json(record.stream_event(), &tenant, Utc::now())
        {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(tenant, board = %state.args.def.id, error = %e, "window_closed event invalid; not emitted");
                continue;
            }
        };
        *in_flight = true;
        let (me, actor, tf, key) = (myself.clone(), actor.clone(), *tf, *key);
        tokio::spawn(async move {
            let r = actor
                .call(
                    |reply| crate::tenant::TenantMsg::Ingest {
                        events: vec![event],
                        reply,
                    },
                    Some(timeout),
                )
                .await;
            let ok = matches!(r, Ok(ractor::rpc::CallResult::Success(Ok(_))));
            let _ = me.cast(LeaderboardMsg::Emitted(tf, key, ok));
        });
    }
}

pub(super) fn emitted(
    state: &mut BoardActorState,
    tf: Timeframe,
    key: WindowKey,
    ok: bool,
) -> Result<(), EngineError> {
    if ok {
        state.closes.mark_emitted(tf, key)?;
        state.unemitted.remove(&(tf, key));
        state.emit_retry.1 = Duration::from_millis(500);
    } else {
        metrics::counter!("phoenix_window_close_emit_failures_total", "tenant" => state.args.tenant.clone())
            .increment(1);
        if let Some(f) = state.unemitted.get_mut(&(tf, key)) {
            *f = false;
        }
        // Back off (doubling, capped at 30 s) before the next attempt.
        let delay = state.emit_retry.1;
        state.emit_retry = (
            Instant::now() + delay,
            (delay * 2).min(Duration::from_secs(30)),
        );
    }
    Ok(())
}
