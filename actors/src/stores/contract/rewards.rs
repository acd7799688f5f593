//! The [`RewardLedger`] contract.

use crate::rewards::fixtures::vote;
use crate::rewards::{Applied, DeliveryStatus};
use crate::stores::RewardLedger;

fn balance(store: &dyn RewardLedger, user: &str) -> u64 {
    store.wallet(user).unwrap().map(|w| w.balance).unwrap_or(0)
}

/// Votes grant once, concurrently too; unclaimed votes are claimed once by a link.
pub fn reward_ledger(store: &dyn RewardLedger) {
    assert!(store.wallet("u1").unwrap().is_none());
    store.link("u1", "Player", 1).unwrap();
    let first = store.apply_vote(&vote("v1", "player", 10), 2).unwrap();
    assert!(matches!(first, Applied::New(ref d) if d.status == DeliveryStatus::Granted));
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let again = store.apply_vote(&vote("v1", "PLAYER", 10), 3).unwrap();
                assert!(matches!(again, Applied::Duplicate(_)), "{again:?}");
            });
        }
    });
    assert_eq!(balance(store, "u1"), 10, "a redelivery grants nothing");

    let waiting = store.apply_vote(&vote("v2", "Ghost", 5), 4).unwrap();
    assert!(matches!(waiting, Applied::New(ref d) if d.status == DeliveryStatus::Unclaimed));
    let granted = store.link("u2", "ghost", 5).unwrap();
    assert_eq!(granted.len(), 1);
    assert!(
        store.link("u3", "GHOST", 6).unwrap().is_empty(),
        "claimed once"
    );
    assert_eq!((balance(store, "u2"), balance(store, "u3")), (5, 0));
    let d = store.delivery("server.vote", "v2").unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Granted);

    let mut no_rule = vote("v3", "player", 1);
    no_rule.reward = None;
    let a = store.apply_vote(&no_rule, 7).unwrap();
    assert!(matches!(a, Applied::New(ref d) if d.status == DeliveryStatus::NoRule));
    assert_eq!(balance(store, "u1"), 10, "no rule, no grant");
    // A nickname nobody linked goes to the owner found elsewhere, when the caller has one.
    let mut fallback = vote("v4", "stranger", 3);
    fallback.fallback_user = Some("acct-1".into());
    let a = store.apply_vote(&fallback, 7).unwrap();
    assert!(matches!(a, Applied::New(ref d) if d.status == DeliveryStatus::Granted));
    assert_eq!(balance(store, "acct-1"), 3);
    assert!(matches!(
        store.record_ignored("server.other", "x", 8).unwrap(),
        Applied::New(_)
    ));
    assert!(matches!(
        store.record_ignored("server.other", "x", 9).unwrap(),
        Applied::Duplicate(_)
    ));
    let all = store.deliveries(None, 10).unwrap();
    assert_eq!(all.len(), 5, "one record per delivery");
    // Paging one at a time visits each delivery once, in the order of a full listing.
    let mut paged: Vec<(String, String)> = Vec::new();
    loop {
        let after = paged.last().map(|(t, id)| (t.as_str(), id.as_str()));
        let page = store.deliveries(after, 1).unwrap();
        let Some(d) = page.into_iter().next() else {
            break;
        };
        paged.push((d.event_type, d.event_id));
    }
    let listed: Vec<(String, String)> = all
        .into_iter()
        .map(|d| (d.event_type, d.event_id))
        .collect();
    assert_eq!(paged, listed);
    store.mark_emitted("server.vote", "v1").unwrap();
    assert!(
        store
            .delivery("server.vote", "v1")
            .unwrap()
            .unwrap()
            .emitted
    );
    let w = store.wallet("u1").unwrap().unwrap();
    assert_eq!(w.grants.len(), 1);
    assert_eq!(w.nicknames, vec!["Player".to_string()]);
}
