//! [`KvCloses`] against a real 3-server cluster (testkit): the close-ledger contract with
//! the stores of two "nodes" (connections to different servers) taking turns, and closes
//! left half done by a "crash" finished once. Without nats-server these fail, unless
//! PHOENIX_SKIP_NATS=1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::cluster::kv::KvConfig;
use crate::cluster::testkit::{cluster_or_skip, NatsCluster};
use crate::leaderboard::close::contract::{hour, record};
use crate::stores::RewardLedger;

fn node(cluster: &NatsCluster, i: usize, prefix: &str) -> KvStores {
    let config = KvConfig {
        prefix: prefix.into(),
        replicas: 3,
        request_timeout: Duration::from_secs(3),
        ..Default::default()
    };
    KvStores::connect(&[cluster.url(i)], config).expect("open the KV stores")
}

fn balances(rewards: &KvRewards) -> Vec<(u64, usize)> {
    ["u1", "u2", "u3", "u4"]
        .iter()
        .map(|u| {
            rewards
                .wallet(u)
                .unwrap()
                .map(|w| (w.balance, w.grants.len()))
                .unwrap_or((0, 0))
        })
        .collect()
}

#[test]
fn kv_closes_keep_the_contract_across_nodes() {
    let Some(cluster) = cluster_or_skip("kv_closes_keep_the_contract_across_nodes") else {
        return;
    };
    let nodes = [node(&cluster, 0, "CLOSES"), node(&cluster, 1, "CLOSES")];
    let turn = AtomicUsize::new(0);
    let open = || {
        let kv = &nodes[turn.fetch_add(1, Ordering::SeqCst) % 2];
        Arc::new(KvCloses::new(kv, "t", "b")) as Arc<dyn CloseLedger>
    };
    crate::leaderboard::close::contract::run(
        &open,
        &KvRewards::open(nodes[0].rewards.clone(), "t").unwrap(),
        &KvOutbox::new(nodes[1].outbox.clone()),
    );
}

/// A close stopped after its record (step 1) is finished by the next close of the window
/// on another node; one stopped after its credits and webhook, whose webhook was delivered
/// meanwhile, is finished by a board starting there, without a second credit or delivery.
#[test]
fn kv_closes_left_pending_are_finished_once() {
    let Some(cluster) = cluster_or_skip("kv_closes_left_pending_are_finished_once") else {
        return;
    };
    let (a, b) = (node(&cluster, 0, "PENDING"), node(&cluster, 2, "PENDING"));
    let tf = Timeframe::Hourly;
    let rewards = KvRewards::open(b.rewards.clone(), "t").unwrap();
    let outbox = KvOutbox::new(b.outbox.clone());

    // Crash 1: only the record was written.
    let crashed = KvCloses::new(&a, "t", "b");
    let (w1, k1) = (
        "2025-11-18T12",
        crashed.record_key(tf, hour("2025-11-18T12")),
    );
    assert_eq!(
        crashed.begin(&k1, record(w1, true), 10).unwrap(),
        Some(false)
    );
    let left = crashed.read(&k1).unwrap().unwrap();
    assert!(left.pending && left.outbox_id.is_some(), "{left:?}");
    assert_eq!(balances(&rewards), [(0, 0); 4], "nothing credited yet");
    assert_eq!(outbox.pending("t").unwrap(), 0);
    assert_eq!(
        crashed.begin(&k1, record(w1, true), 10).unwrap(),
        None,
        "created once"
    );

    let next = KvCloses::new(&b, "t", "b");
    assert!(matches!(
        next.close(tf, hour(w1), record(w1, true), 10).unwrap(),
        Closed::Already(_)
    ));
    let credited = vec![(1000, 1), (300, 1), (300, 1), (0, 0)];
    assert_eq!(balances(&rewards), credited);
    assert_eq!(outbox.pending("t").unwrap(), 1);
    assert!(!next.read(&k1).unwrap().unwrap().pending, "finished");
    next.close(tf, hour(w1), record(w1, true), 10).unwrap();
    assert_eq!(
        (balances(&rewards), outbox.pending("t").unwrap()),
        (credited.clone(), 1)
    );

    // Deliver that webhook: the entry leaves the outbox.
    let entry = outbox.due(i64::MAX - 1, 10).unwrap().remove(0);
    let delivered = crate::cluster::kv::tests::delivered(1);
    outbox.record(&entry, &delivered, None).unwrap();

    // Crash 2: record, credits and webhook written, then delivered, `pending` not cleared.
    let (w2, k2) = (
        "2025-11-18T13",
        crashed.record_key(tf, hour("2025-11-18T13")),
    );
    crashed.begin(&k2, record(w2, true), 10).unwrap();
    let left = crashed.read(&k2).unwrap().unwrap();
    for g in left.record.ledger_grants() {
        crashed.rewards.credit(&g).unwrap();
    }
    let msg = left.record.webhook_message("t").unwrap();
    assert!(crashed
        .outbox
        .insert_once(left.outbox_id.unwrap(), &msg)
        .unwrap());
    let entry = outbox.due(i64::MAX - 1, 10).unwrap().remove(0);
    assert_eq!(entry.delivery_id, "window-closed:b:hourly:2025-11-18T13");
    outbox.record(&entry, &delivered, None).unwrap();
    assert!(crashed.read(&k2).unwrap().unwrap().pending);

    // A board starting on the other node finishes it: no second credit, no second entry.
    let started = KvCloses::new(&b, "t", "b");
    let unemitted = started.unemitted().unwrap();
    assert_eq!(
        unemitted.len(),
        2,
        "both closes still owe their stream event"
    );
    assert!(!started.read(&k2).unwrap().unwrap().pending);
    assert_eq!(
        balances(&rewards),
        [(2000, 2), (600, 2), (600, 2), (0, 0)],
        "each close credited once"
    );
    assert_eq!(
        outbox.pending("t").unwrap(),
        0,
        "the delivered webhook is not enqueued again"
    );
}
