//! The contract suite of [`CloseLedger`]: what any implementation (sled, JetStream KV) must
//! do. Compiled into the crate, not only its tests, so another backend's tests can call
//! [`run`]. Each check panics with a description on the first violation.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{assign, parse_rewards, CloseLedger, CloseRecord, Closed, ResultEntry, RewardTier};
use crate::leaderboard::window::{Timeframe, WindowKey};
use crate::stores::{RewardLedger, WebhookOutbox};

/// Three tiers: rank 1 → 1000 coins and a cup, ranks 2-3 → 300, the top half → 50.
pub fn tiers() -> Vec<RewardTier> {
    parse_rewards(&json!([
        {"ranks": [1, 1], "coins": 1000, "items": ["gold-cup"]},
        {"ranks": [2, 3], "coins": 300},
        {"top_percent": 50, "coins": 50}
    ]))
    .expect("contract tiers")
}

/// Users `u1..=un` at ranks 1..=n.
pub fn entries(n: u64) -> Vec<ResultEntry> {
    (1..=n)
        .map(|r| ResultEntry {
            rank: r,
            user_id: format!("u{r}"),
            score: (100 - r) as f64,
        })
        .collect()
}

/// The close of hourly window `window` of board `b`: four users, [`tiers`] → u1 1000,
/// u2 300, u3 300, u4 nothing.
pub fn record(window: &str, rewarded: bool) -> CloseRecord {
    let results = entries(4);
    let (grants, grants_capped) = if rewarded {
        assign(&tiers(), &results, 4, 100)
    } else {
        (Vec::new(), 0)
    };
    CloseRecord {
        leaderboard: "b".into(),
        timeframe: "hourly".into(),
        window: window.into(),
        closed_at_ms: 1_763_470_800_000,
        total: 4,
        results,
        grants,
        grants_capped,
        rewarded,
        emitted: false,
        delivery_id: None,
    }
}

/// The hourly window key of `window`.
pub fn hour(window: &str) -> WindowKey {
    WindowKey::parse(Timeframe::Hourly, window).expect("contract window")
}

fn balance(rewards: &dyn RewardLedger, user: &str) -> u64 {
    rewards
        .wallet(user)
        .expect("wallet")
        .map(|w| w.balance)
        .unwrap_or(0)
}

/// Ledger lines of `user` from the close of `window`.
fn lines(rewards: &dyn RewardLedger, user: &str, window: &str) -> usize {
    let id = record(window, true).grant_id();
    rewards
        .wallet(user)
        .expect("wallet")
        .map(|w| w.grants.iter().filter(|g| g.vote_id == id).count())
        .unwrap_or(0)
}

/// Runs every check. `open` gives a store of board `b` of tenant `t`, each call a new
/// instance on the same (initially empty) backend (a restarted actor, another node);
/// `rewards` and `outbox` are tenant `t`'s reward ledger and the outbox those stores write.
pub fn run(
    open: &(dyn Fn() -> Arc<dyn CloseLedger> + Sync),
    rewards: &dyn RewardLedger,
    outbox: &dyn WebhookOutbox,
) {
    let tf = Timeframe::Hourly;
    let s = open();
    let (a, w_a) = ("2025-11-18T12", hour("2025-11-18T12"));
    assert!(s.get(tf, w_a).unwrap().is_none(), "nothing closed yet");
    assert_eq!(
        s.close(tf, w_a, record(a, true), 10).unwrap(),
        Closed::New {
            webhook_dropped: false
        },
        "first close"
    );
    assert!(
        matches!(s.close(tf, w_a, record(a, true), 10).unwrap(), Closed::Already(ref r) if r.window == a),
        "a second close finds the record"
    );
    let bal = |u: &str| balance(rewards, u);
    assert_eq!(
        (bal("u1"), bal("u2"), bal("u3"), bal("u4")),
        (1000, 300, 300, 0),
        "every grant once, rank 4 nothing"
    );
    let w1 = rewards.wallet("u1").unwrap().unwrap();
    assert_eq!(w1.grants.len(), 1);
    assert_eq!(w1.grants[0].vote_id, "lb:b:hourly:2025-11-18T12");
    assert_eq!(w1.grants[0].source.as_deref(), Some("leaderboard"));
    assert_eq!(w1.grants[0].reward.items, vec!["gold-cup".to_string()]);
    assert_eq!(outbox.pending("t").unwrap(), 1, "one webhook");
    let due = outbox.due(i64::MAX - 1, 10).unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].delivery_id, "window-closed:b:hourly:2025-11-18T12");
    let body: Value = serde_json::from_str(&due[0].body).unwrap();
    assert_eq!(
        (&body["type"], &body["grants"][0]["user_id"]),
        (&json!(super::WINDOW_CLOSED), &json!("u1"))
    );
    let stored = s.get(tf, w_a).unwrap().expect("the record");
    assert_eq!(stored.delivery_id, Some(due[0].delivery_id.clone()));
    assert_eq!(stored.grants, record(a, true).grants);

    // Another instance (a restarted actor, a new owner) sees the close and grants nothing.
    let again = open();
    assert!(matches!(
        again.close(tf, w_a, record(a, true), 10).unwrap(),
        Closed::Already(_)
    ));
    assert_eq!(again.get(tf, w_a).unwrap().as_ref(), Some(&stored));
    assert_eq!((bal("u1"), outbox.pending("t").unwrap()), (1000, 1));
    assert_eq!(again.unemitted().unwrap().len(), 1);
    again.mark_emitted(tf, w_a).unwrap();
    assert!(
        s.unemitted().unwrap().is_empty(),
        "emitted, on every instance"
    );
    assert!(s.get(tf, w_a).unwrap().unwrap().emitted);

    // A close recorded without rewards: no grant, no webhook, not to be emitted.
    let (b, w_b) = ("2025-11-18T13", hour("2025-11-18T13"));
    s.close(tf, w_b, record(b, false), 10).unwrap();
    assert_eq!((bal("u1"), outbox.pending("t").unwrap()), (1000, 1));
    assert!(s.unemitted().unwrap().is_empty());

    // A full outbox: granted anyway, no webhook, and the record says so.
    let (c, w_c) = ("2025-11-18T14", hour("2025-11-18T14"));
    assert_eq!(
        s.close(tf, w_c, record(c, true), 1).unwrap(),
        Closed::New {
            webhook_dropped: true
        }
    );
    assert_eq!((bal("u1"), outbox.pending("t").unwrap()), (2000, 1));
    assert_eq!(s.get(tf, w_c).unwrap().unwrap().delivery_id, None);

    // Four closers at once, each its own instance: one records, every grant lands once.
    let (d, w_d) = ("2025-11-18T15", hour("2025-11-18T15"));
    let news = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                sc.spawn(|| {
                    let mine = open();
                    matches!(
                        mine.close(tf, w_d, record(d, true), 10).unwrap(),
                        Closed::New { .. }
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a closer panicked"))
            .filter(|new| *new)
            .count()
    });
    assert_eq!(news, 1, "exactly one closer records the window");
    assert_eq!(
        (
            bal("u1"),
            bal("u3"),
            lines(rewards, "u1", d),
            lines(rewards, "u3", d)
        ),
        (3000, 900, 1, 1),
        "concurrent closers grant once"
    );
    assert_eq!(
        outbox.pending("t").unwrap(),
        2,
        "concurrent closers enqueue once"
    );

    // Listing: newest window first, bounded; other timeframes apart.
    let listed: Vec<String> = s
        .list(tf, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.window)
        .collect();
    assert_eq!(listed, [d, c, b, a]);
    assert_eq!(s.list(tf, 2).unwrap().len(), 2);
    assert!(s.list(Timeframe::Daily, 10).unwrap().is_empty());

    // Retention drops a close.
    s.drop_window(tf, w_b).unwrap();
    assert!(s.get(tf, w_b).unwrap().is_none());
    assert_eq!(s.list(tf, 10).unwrap().len(), 3);

    // Epoch: first sight stores now; the same definition keeps it; another resets it.
    assert_eq!(s.epoch("{}", 5).unwrap(), 5);
    assert_eq!(open().epoch("{}", 9).unwrap(), 5, "kept, on every instance");
    assert_eq!(s.epoch("{\"x\":1}", 9).unwrap(), 9);
}
