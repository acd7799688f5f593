//! The contract suite of [`BoardStore`]: what any implementation (sled today, a replicated
//! backend later) must do. Compiled into the crate, not only its tests, so another backend's
//! tests can call [`run`]. Each check panics with a description on the first violation.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::BoardStore;
use crate::leaderboard::definition::Definition;
use crate::leaderboard::state::{BoardState, Window};
use crate::leaderboard::window::{Timeframe, WindowKey};

/// Runs every check, each on a fresh store from `make`.
pub fn run<S: BoardStore>(make: impl Fn() -> S) {
    checkpoints(&make());
    frozen_windows(&make());
    shared_ties(&make());
    windows_are_independent(&make());
    clear_drops_everything(&make());
}

/// A daily board (`ties` as given), a day's window frozen with `scores` in it.
fn frozen(ties: &str, day: &str, scores: &[(&str, f64)]) -> (Timeframe, WindowKey, Window) {
    let def = Definition::from_json(
        "b",
        &json!({"rules": [{"event_type": "*", "points_expression": "attrs.p"}],
                "timeframes": ["daily"], "late_grace_seconds": 0, "ties": ties}),
    )
    .expect("contract board definition");
    let mut s = BoardState::new(Arc::new(def));
    let at = format!("{day}T10:00:00Z");
    let accepted = at
        .parse::<DateTime<Utc>>()
        .expect("contract time")
        .timestamp_millis();
    for (seq, (user, p)) in (1..).zip(scores) {
        let e =
            json!({"type": "x", "actor": {"user_id": user}, "occurred_at": at, "attrs": {"p": p}});
        s.apply(seq, accepted, &e);
    }
    s.watermark_ms = accepted + 86_400_000;
    let (tf, key) = s.due_for_freeze()[0];
    let w = s.freeze(tf, key).expect("an open window");
    (tf, key, w)
}

fn ranks(store: &dyn BoardStore, tf: Timeframe, key: WindowKey) -> Vec<(usize, String, f64)> {
    let rows = store.window_range(tf, key, 0, 100).expect("range");
    rows.into_iter()
        .map(|e| (e.rank, e.user_id, e.score))
        .collect()
}

/// No checkpoint reads as none and as position 0; a saved one reads back exactly and
/// reports its `applied`; a second save replaces the first whole.
pub fn checkpoints(store: &dyn BoardStore) {
    assert_eq!(store.load_checkpoint().expect("load"), None, "fresh store");
    assert_eq!(store.checkpointed_seq().expect("seq"), 0, "fresh store");
    let def = r#"{"id":"b"}"#;
    let mut state = vec![2u8];
    state.extend_from_slice(&41u64.to_be_bytes());
    state.extend_from_slice(&[7; 20]);
    store.save_checkpoint(def, &state).expect("save");
    let c = store.load_checkpoint().expect("load").expect("saved");
    assert_eq!(c.definition, def.as_bytes(), "definition read back");
    assert_eq!(c.state, state, "state read back");
    assert_eq!(store.checkpointed_seq().expect("seq"), 41);
    let mut later = vec![2u8];
    later.extend_from_slice(&42u64.to_be_bytes());
    store
        .save_checkpoint(r#"{"id":"b2"}"#, &later)
        .expect("save");
    let c = store.load_checkpoint().expect("load").expect("saved");
    assert_eq!(
        (c.definition.as_slice(), c.state.as_slice()),
        (br#"{"id":"b2"}"#.as_slice(), later.as_slice()),
        "replaced whole"
    );
    assert_eq!(store.checkpointed_seq().expect("seq"), 42);
}

/// A frozen window reads back page by page and user by user, clipped at its ends, and can
/// be dropped.
pub fn frozen_windows(store: &dyn BoardStore) {
    let scores = [("a", 5.0), ("b", 9.0), ("c", 1.0), ("d", 7.0)];
    let (tf, key, w) = frozen("first_to_reach", "2025-11-18", &scores);
    assert_eq!(store.window_total(tf, key).expect("total"), None, "not yet");
    store.write_window(tf, key, &w).expect("write");
    assert_eq!(store.window_total(tf, key).expect("total"), Some(4));
    assert_eq!(
        ranks(store, tf, key),
        [
            (1, "b".into(), 9.0),
            (2, "d".into(), 7.0),
            (3, "a".into(), 5.0),
            (4, "c".into(), 1.0)
        ]
    );
    let page = store.window_range(tf, key, 2, 1).expect("range");
    assert_eq!(page.len(), 1);
    assert_eq!((page[0].rank, page[0].user_id.as_str()), (3, "a"));
    assert!(store
        .window_range(tf, key, 4, 10)
        .expect("range")
        .is_empty());
    assert!(store
        .window_range(tf, key, usize::MAX, usize::MAX)
        .expect("extremes")
        .is_empty());
    assert_eq!(
        store.window_user(tf, key, "d").expect("user"),
        Some((2, 7.0))
    );
    assert_eq!(store.window_user(tf, key, "zz").expect("user"), None);
    assert_eq!(
        store.window_locate(tf, key, "a").expect("locate"),
        Some((3, 3, 5.0))
    );
    let (rank, score, near) = store
        .window_around(tf, key, "a", 1)
        .expect("around")
        .expect("present");
    assert_eq!((rank, score), (3, 5.0));
    let near: Vec<&str> = near.iter().map(|e| e.user_id.as_str()).collect();
    assert_eq!(near, ["d", "a", "c"]);
    let (_, _, top) = store
        .window_around(tf, key, "b", 2)
        .expect("around")
        .expect("present");
    assert_eq!(top.len(), 3, "clipped at rank 1");
    let all = store
        .window_around(tf, key, "a", usize::MAX)
        .expect("around")
        .expect("present");
    assert_eq!(all.2.len(), 4, "a huge radius neither wraps nor panics");
    store.drop_window(tf, key).expect("drop");
    assert_eq!(store.window_total(tf, key).expect("total"), None, "dropped");
    assert!(ranks(store, tf, key).is_empty(), "dropped rows");
    assert_eq!(store.window_user(tf, key, "a").expect("user"), None);
}

/// Under shared ties the stored rank is the shared one; positions stay distinct.
pub fn shared_ties(store: &dyn BoardStore) {
    let scores = [("a", 10.0), ("b", 8.0), ("c", 8.0), ("d", 5.0)];
    let (tf, key, w) = frozen("shared", "2025-11-18", &scores);
    store.write_window(tf, key, &w).expect("write");
    let got: Vec<(usize, String)> = ranks(store, tf, key)
        .into_iter()
        .map(|(rank, user, _)| (rank, user))
        .collect();
    assert_eq!(
        got,
        [
            (1, "a".into()),
            (2, "b".into()),
            (2, "c".into()),
            (4, "d".into())
        ]
    );
    assert_eq!(
        store.window_locate(tf, key, "c").expect("locate"),
        Some((3, 2, 8.0))
    );
}

/// Two windows of one timeframe are stored and dropped apart.
pub fn windows_are_independent(store: &dyn BoardStore) {
    let (tf, day1, w1) = frozen("first_to_reach", "2025-11-18", &[("a", 1.0)]);
    let (_, day2, w2) = frozen("first_to_reach", "2025-11-19", &[("b", 2.0), ("c", 3.0)]);
    store.write_window(tf, day1, &w1).expect("write");
    store.write_window(tf, day2, &w2).expect("write");
    assert_eq!(store.window_total(tf, day1).expect("total"), Some(1));
    assert_eq!(store.window_total(tf, day2).expect("total"), Some(2));
    assert_eq!(store.window_user(tf, day1, "b").expect("user"), None);
    store.drop_window(tf, day1).expect("drop");
    assert_eq!(store.window_total(tf, day1).expect("total"), None);
    assert_eq!(
        ranks(store, tf, day2),
        [(1, "c".into(), 3.0), (2, "b".into(), 2.0)]
    );
}

/// `clear` drops the checkpoint and every frozen window.
pub fn clear_drops_everything(store: &dyn BoardStore) {
    let (tf, key, w) = frozen("first_to_reach", "2025-11-18", &[("a", 1.0)]);
    store.write_window(tf, key, &w).expect("write");
    let mut state = vec![2u8];
    state.extend_from_slice(&9u64.to_be_bytes());
    store.save_checkpoint("{}", &state).expect("save");
    store.clear().expect("clear");
    assert_eq!(store.load_checkpoint().expect("load"), None);
    assert_eq!(store.checkpointed_seq().expect("seq"), 0);
    assert_eq!(store.window_total(tf, key).expect("total"), None);
    assert!(ranks(store, tf, key).is_empty());
}
