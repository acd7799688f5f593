//! The [`WebhookOutbox`] contract.

use crate::outbox::fixtures::msg;
use crate::outbox::{Attempt, AttemptResult, Enqueued};
use crate::stores::WebhookOutbox;

fn attempt(n: u32, result: AttemptResult) -> Attempt {
    Attempt {
        delivery_id: String::new(),
        kind: "test.kind".into(),
        attempt: n,
        at_ms: 0,
        result,
        http_status: None,
        error: None,
        duration_ms: 0,
        next_attempt_ms: None,
    }
}

/// Entries are due in time order, stay until recorded without a next attempt, and are
/// bounded per tenant.
pub fn webhook_outbox(store: &dyn WebhookOutbox) {
    assert_eq!(store.depth(), 0);
    assert_eq!(
        store.enqueue(&msg("t", "d2", 20), 2).unwrap(),
        Enqueued::Queued
    );
    assert_eq!(
        store.enqueue(&msg("t", "d1", 10), 2).unwrap(),
        Enqueued::Queued
    );
    assert_eq!(
        store.enqueue(&msg("t", "d3", 5), 2).unwrap(),
        Enqueued::Full,
        "bounded"
    );
    assert_eq!(
        store.enqueue(&msg("u", "d4", 5), 2).unwrap(),
        Enqueued::Queued,
        "per tenant"
    );
    assert_eq!((store.pending("t").unwrap(), store.depth()), (2, 3));
    let due: Vec<String> = store
        .due(15, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.delivery_id)
        .collect();
    assert_eq!(due, ["d4", "d1"], "only what is due, earliest first");
    let d1 = store.due(15, 10).unwrap().remove(1);
    assert_eq!(d1.body, "{\"id\":\"d1\"}", "the body is kept as given");
    // A failed attempt keeps the entry, due later, with the attempt counted.
    store
        .record(&d1, &attempt(1, AttemptResult::Failed), Some(100))
        .unwrap();
    assert!(store
        .due(50, 10)
        .unwrap()
        .iter()
        .all(|e| e.delivery_id != "d1"));
    let again = store.due(100, 10).unwrap();
    let d1 = again
        .iter()
        .find(|e| e.delivery_id == "d1")
        .unwrap()
        .clone();
    assert_eq!(d1.attempts, 1);
    // Delivered: it leaves, and the tenant has room again.
    store
        .record(&d1, &attempt(2, AttemptResult::Delivered), None)
        .unwrap();
    store
        .record(&d1, &attempt(3, AttemptResult::Delivered), None)
        .unwrap();
    assert_eq!(
        store.pending("t").unwrap(),
        1,
        "a repeated record changes nothing"
    );
    assert_eq!(
        store.enqueue(&msg("t", "d5", 30), 2).unwrap(),
        Enqueued::Queued
    );
    let log = store.attempts("t", 10).unwrap();
    assert_eq!(
        log.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [2, 1],
        "attempts newest first; the no-op record is not logged"
    );
    assert!(store.attempts("u", 10).unwrap().is_empty());
}
