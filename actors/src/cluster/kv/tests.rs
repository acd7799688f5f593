//! The state stores on JetStream KV against a real 3-server cluster (testkit): the same
//! contract suites as the sled stores, cross-node reads and races, and a lost quorum.
//! Without nats-server these fail, unless PHOENIX_SKIP_NATS=1.

use std::time::{Duration, Instant};

use super::*;
use crate::cluster::testkit::{cluster_or_skip, NatsCluster};
use crate::leaderboard::board_store::{self, BoardStore};
use crate::outbox::{Attempt, AttemptResult};
use crate::rewards::fixtures::vote;
use crate::rewards::Applied;
use crate::stores::{
    contract, DefinitionStore, DimChange, DimKind, DimensionStore, RewardLedger, StoreError,
    TenantRegistry, WebhookOutbox,
};

fn config(prefix: &str) -> KvConfig {
    KvConfig {
        prefix: prefix.into(),
        replicas: 3,
        request_timeout: Duration::from_secs(3),
        // Small, so the contract's checkpoints and windows span several chunks.
        chunk_bytes: 1024,
        ..Default::default()
    }
}

fn stores(cluster: &NatsCluster, prefix: &str) -> KvStores {
    KvStores::connect(&cluster.urls(), config(prefix)).expect("open the KV stores")
}

/// A node connected to one server only (so two "nodes" really go through different servers).
fn node(cluster: &NatsCluster, i: usize, prefix: &str) -> KvStores {
    KvStores::connect(&[cluster.url(i)], config(prefix)).expect("open the KV stores")
}

pub(super) fn delivered(n: u32) -> Attempt {
    Attempt {
        delivery_id: "d1".into(),
        kind: "test.kind".into(),
        attempt: n,
        at_ms: 0,
        result: AttemptResult::Delivered,
        http_status: Some(200),
        error: None,
        duration_ms: 1,
        next_attempt_ms: None,
    }
}

/// A checkpoint state of `n` bytes (several 1 KiB chunks) that has applied `applied`.
fn ckpt_state(applied: u64, n: u32) -> Vec<u8> {
    [2u8]
        .into_iter()
        .chain(applied.to_be_bytes())
        .chain((0..n).map(|i| (i % 251) as u8))
        .collect()
}

/// Poll `check` every 200 ms until it holds or `within` passes.
fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kv_stores_keep_the_contracts() {
    let Some(cluster) = cluster_or_skip("kv_stores_keep_the_contracts") else {
        return;
    };
    let s = stores(&cluster, "CONTRACT");
    contract::tenant_registry(&KvTenants::new(s.tenants.clone()));
    contract::definition_store(&KvDefinitions::new(s.defs.clone()));
    contract::dimension_store(&KvDimensions::new(s.dims.clone(), "t"));
    let other = KvDimensions::new(s.dims.clone(), "u");
    assert!(!crate::stores::DimensionStore::applied(&other, "e1").unwrap());
    contract::reward_ledger(&KvRewards::open(s.rewards.clone(), "t").unwrap());
    contract::webhook_outbox(&KvOutbox::new(s.outbox.clone()));
    let n = std::cell::Cell::new(0);
    board_store::contract::run(|| {
        n.set(n.get() + 1);
        KvBoardStore::new(s.boards.clone(), "t", &format!("b{}", n.get()), 1024)
    });
}

/// What node 1 writes, node 2 reads; two nodes granting the same vote grant once; two
/// nodes linking one nickname claim its votes once.
#[test]
fn kv_stores_are_shared_across_nodes() {
    let Some(cluster) = cluster_or_skip("kv_stores_are_shared_across_nodes") else {
        return;
    };
    let (a, b) = (node(&cluster, 0, "SHARED"), node(&cluster, 1, "SHARED"));
    let rec = crate::stores::TenantRecord {
        secret: "s".repeat(16),
        status: crate::stores::TenantState::Active,
        previous: None,
        webhook: None,
    };
    KvTenants::new(a.tenants.clone()).put("acme", &rec).unwrap();
    assert_eq!(
        KvTenants::new(b.tenants.clone()).list().unwrap(),
        vec![("acme".to_string(), rec)]
    );
    KvDefinitions::new(a.defs.clone())
        .put("acme", "daily", b"{\"id\":\"daily\"}")
        .unwrap();
    assert_eq!(
        KvDefinitions::new(b.defs.clone())
            .get("acme", "daily")
            .unwrap()
            .as_deref(),
        Some(b"{\"id\":\"daily\"}".as_slice())
    );
    // A checkpoint several chunks long, written on one node, loaded on the other.
    let state = ckpt_state(77, 10_000);
    KvBoardStore::new(a.boards.clone(), "acme", "daily", 1024)
        .save_checkpoint("{}", &state)
        .unwrap();
    let on_b = KvBoardStore::new(b.boards.clone(), "acme", "daily", 1024);
    assert_eq!(on_b.checkpointed_seq().unwrap(), 77);
    assert_eq!(on_b.load_checkpoint().unwrap().unwrap().state, state);

    // Dimensions: applied on one node, applied (and readable) on the other; client counts
    // from both nodes at once all count.
    let (da, db) = (
        KvDimensions::new(a.dims.clone(), "acme"),
        KvDimensions::new(b.dims.clone(), "acme"),
    );
    let record = serde_json::json!({"account_id": "a1"});
    let change = DimChange::Put {
        kind: DimKind::Accounts,
        id: "a1".into(),
        record: record.as_object().unwrap().clone(),
    };
    da.apply(&change, "ev1").unwrap();
    assert!(db.applied("ev1").unwrap());
    assert_eq!(
        db.get(DimKind::Accounts, "a1").unwrap().unwrap()["deleted"],
        serde_json::json!(false)
    );
    std::thread::scope(|s| {
        for d in [&da, &db] {
            s.spawn(move || {
                for _ in 0..5 {
                    d.record_client("sdk", "ua", "t").unwrap();
                }
            });
        }
    });
    assert_eq!(da.clients().unwrap()[0]["requests"], 10, "no count lost");

    // Outbox: enqueued on one node, due on the other; both nodes recording the delivery
    // at once remove it once and log one attempt.
    let (oa, ob) = (
        KvOutbox::new(a.outbox.clone()),
        KvOutbox::new(b.outbox.clone()),
    );
    oa.enqueue(&crate::outbox::fixtures::msg("acme", "d1", 10), 10)
        .unwrap();
    let due = ob.due(100, 10).unwrap();
    assert_eq!(due.len(), 1);
    std::thread::scope(|s| {
        s.spawn(|| oa.record(&due[0], &delivered(1), None).unwrap());
        s.spawn(|| ob.record(&due[0], &delivered(1), None).unwrap());
    });
    assert_eq!((oa.pending("acme").unwrap(), ob.depth()), (0, 0));
    assert_eq!(oa.attempts("acme", 10).unwrap().len(), 1, "recorded once");

    let (ra, rb) = (
        KvRewards::open(a.rewards.clone(), "acme").unwrap(),
        KvRewards::open(b.rewards.clone(), "acme").unwrap(),
    );
    ra.link("u1", "Hero", 1).unwrap();
    for round in 0..5 {
        let id = format!("race-{round}");
        let (x, y) = std::thread::scope(|s| {
            let x = s.spawn(|| ra.apply_vote(&vote(&id, "hero", 10), 2).unwrap());
            let y = s.spawn(|| rb.apply_vote(&vote(&id, "HERO", 10), 2).unwrap());
            (x.join().unwrap(), y.join().unwrap())
        });
        let news = [&x, &y]
            .iter()
            .filter(|r| matches!(r, Applied::New(_)))
            .count();
        assert_eq!(news, 1, "exactly one node grants {id}: {x:?} / {y:?}");
    }
    let w = rb.wallet("u1").unwrap().unwrap();
    assert_eq!(
        (w.balance, w.grants.len()),
        (50, 5),
        "five votes, once each"
    );

    // Unclaimed votes, two nodes linking the nickname to different users: claimed once.
    for i in 0..3 {
        ra.apply_vote(&vote(&format!("g-{i}"), "Ghost", 5), 3)
            .unwrap();
    }
    let (ga, gb) = std::thread::scope(|s| {
        let ga = s.spawn(|| ra.link("ua", "ghost", 4).unwrap());
        let gb = s.spawn(|| rb.link("ub", "GHOST", 4).unwrap());
        (ga.join().unwrap(), gb.join().unwrap())
    });
    assert_eq!(ga.len() + gb.len(), 3, "{ga:?} {gb:?}");
    let balance = |u: &str| ra.wallet(u).unwrap().map_or(0, |w| w.balance);
    assert_eq!(
        balance("ua") + balance("ub"),
        15,
        "each unclaimed vote granted once"
    );
}

/// Two of three servers stopped: writes fail with a typed error within the request
/// timeout, and change nothing; once the servers are back, the same calls succeed, and a
/// vote retried after a failed attempt is granted exactly once.
#[test]
fn kv_stores_without_quorum_fail_then_recover() {
    let Some(mut cluster) = cluster_or_skip("kv_stores_without_quorum_fail_then_recover") else {
        return;
    };
    let s = node(&cluster, 0, "QUORUM");
    let tenants = KvTenants::new(s.tenants.clone());
    let rewards = KvRewards::open(s.rewards.clone(), "t").unwrap();
    let rec = |secret: &str| crate::stores::TenantRecord {
        secret: secret.into(),
        status: crate::stores::TenantState::Active,
        previous: None,
        webhook: None,
    };
    let board = KvBoardStore::new(s.boards.clone(), "t", "b", 1024);
    let dims = KvDimensions::new(s.dims.clone(), "t");
    tenants.put("t", &rec("before-0000000000")).unwrap();
    rewards.link("u1", "hero", 1).unwrap();
    let (old, new) = (ckpt_state(10, 5_000), ckpt_state(20, 5_000));
    board.save_checkpoint("{}", &old).unwrap();
    cluster.stop(1).unwrap();
    cluster.stop(2).unwrap();
    let started = Instant::now();
    let err = tenants
        .put("t", &rec("during-0000000000"))
        .expect_err("no quorum, no write");
    assert!(
        matches!(err, crate::stores::StoreError::Cluster(_)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15), "bounded");
    let err = rewards
        .apply_vote(&vote("v1", "hero", 10), 2)
        .expect_err("no quorum, no grant");
    assert!(
        matches!(err, crate::rewards::RewardError::Cluster(_)),
        "{err:?}"
    );
    assert!(
        board.save_checkpoint("{}", &new).is_err(),
        "no quorum, no checkpoint"
    );
    assert!(matches!(
        dims.apply(&DimChange::None, "ev-q"),
        Err(StoreError::Cluster(_))
    ));
    eprintln!(
        "write without quorum failed after {:?}: {err}",
        started.elapsed()
    );

    cluster.restart(1).unwrap();
    cluster.restart(2).unwrap();
    cluster.wait_ready(Duration::from_secs(60)).unwrap();
    // Each bucket is a stream of its own: each elects its leader again in its own time
    // (reads answer 503 "temporarily unavailable" meanwhile), after the meta group.
    eventually(
        "every bucket has a leader again",
        Duration::from_secs(30),
        || {
            [
                &s.tenants, &s.defs, &s.dims, &s.rewards, &s.outbox, &s.boards,
            ]
            .iter()
            .all(|b| b.get("probe").is_ok())
        },
    );
    // Nothing of the failed put is there (or, if the leader stored it before losing the
    // quorum, all of it): never a mix.
    let secret = tenants.list().unwrap()[0].1.secret.clone();
    assert!(
        secret == "before-0000000000" || secret == "during-0000000000",
        "{secret}"
    );
    // The checkpoint reads back whole: the old one or (if its manifest got stored before
    // the quorum went) the new one, never chunks of both.
    let loaded = board.load_checkpoint().unwrap().unwrap().state;
    assert!(loaded == old || loaded == new, "a mixed checkpoint");
    eventually("a retried vote applies", Duration::from_secs(30), || {
        rewards.apply_vote(&vote("v1", "hero", 10), 3).is_ok()
    });
    assert!(matches!(
        rewards.apply_vote(&vote("v1", "hero", 10), 4).unwrap(),
        Applied::Duplicate(_)
    ));
    let w = rewards.wallet("u1").unwrap().unwrap();
    assert_eq!((w.balance, w.grants.len()), (10, 1), "granted exactly once");
    eventually("a write after recovery", Duration::from_secs(30), || {
        tenants.put("t", &rec("after-00000000000")).is_ok()
    });
    assert_eq!(tenants.list().unwrap()[0].1.secret, "after-00000000000");
}

async fn all_time(engine: &crate::Engine, board: &str) -> Vec<(String, f64)> {
    use crate::leaderboard::query::WindowSel;
    use crate::leaderboard::window::Timeframe;
    let s = engine
        .standings(
            "acme",
            board,
            Timeframe::AllTime,
            WindowSel::Current,
            0,
            100,
        )
        .await;
    s.map(|s| {
        s.entries
            .into_iter()
            .map(|e| (e.user_id, e.score))
            .collect()
    })
    .unwrap_or_default()
}

async fn start_node(
    cluster: &NatsCluster,
    i: usize,
    state: &std::path::Path,
) -> (crate::Engine, KvStores) {
    use crate::cluster::{JetStreamLog, JetStreamLogConfig};
    let log = JetStreamLog::open(JetStreamLogConfig {
        urls: vec![cluster.url(i)],
        replicas: 3,
        ..Default::default()
    })
    .unwrap();
    let kv = node(cluster, i, "ENGINE");
    let config = crate::EngineConfig {
        checkpoint_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let engine = crate::Engine::start_with_stores(
        std::sync::Arc::new(log),
        crate::stores::SledStore::open(state, 1 << 20).unwrap(),
        crate::EngineStores::kv(kv.clone()),
        &["acme".into()],
        config,
    )
    .await
    .unwrap();
    (engine, kv)
}

/// The engine seam: an engine on the KV bundle keeps its definitions and checkpoints in the
/// buckets, so another node's engine (its own empty local state) starts the same board
/// from them and shows the same standings; a delete on it clears the board everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_share_definitions_and_checkpoints_through_kv() {
    let Some(cluster) = cluster_or_skip("engines_share_definitions_and_checkpoints_through_kv")
    else {
        return;
    };
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (one, kv) = start_node(&cluster, 0, d1.path()).await;
    let def = serde_json::json!({"rules": [{"event_type": "*", "points_expression": "attrs.p"}]});
    one.put_leaderboard("acme", "b", &def).await.unwrap();
    let events = (1..=5)
        .map(|i| {
            let v = serde_json::json!({"event_id": format!("e{i}"), "type": "x",
                "actor": {"user_id": format!("u{}", i % 2)},
                "occurred_at": "2025-11-18T12:00:00Z", "attrs": {"p": i}});
            crate::Event::from_json(v, "acme", chrono::Utc::now()).unwrap()
        })
        .collect();
    one.ingest("acme", events).await.unwrap();
    let want = vec![("u1".to_string(), 9.0), ("u0".to_string(), 6.0)];
    let board = KvBoardStore::new(kv.boards.clone(), "acme", "b", 1024);
    let deadline = Instant::now() + Duration::from_secs(20);
    while all_time(&one, "b").await != want || board.checkpointed_seq().unwrap() < 5 {
        assert!(
            Instant::now() < deadline,
            "no standings or checkpoint in KV"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    one.shutdown().await;
    drop(one);

    let (two, kv2) = start_node(&cluster, 1, d2.path()).await;
    assert!(
        two.get_leaderboard("acme", "b").unwrap().is_some(),
        "the definition came from KV"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while all_time(&two, "b").await != want {
        assert!(
            Instant::now() < deadline,
            "node 2 never showed the standings"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(two.delete_leaderboard("acme", "b").await.unwrap());
    assert_eq!(
        KvDefinitions::new(kv2.defs.clone())
            .get("acme", "b")
            .unwrap(),
        None
    );
    assert_eq!(
        board.checkpointed_seq().unwrap(),
        0,
        "the checkpoint is gone"
    );
    two.shutdown().await;
}

/// Compare-and-set under contention from two nodes: every increment of one counter counts.
/// (nats-server before 2.9.21 checks `Nats-Expected-Last-Subject-Sequence` before the Raft
/// proposal only, so two concurrent updates on the same revision can both be stored —
/// nats-server #4320; [`Bucket`] adds a `Nats-Msg-Id` of key and revision to make the loser
/// a duplicate.)
#[test]
fn kv_compare_and_set_loses_no_update_under_contention() {
    let Some(cluster) = cluster_or_skip("kv_compare_and_set_loses_no_update_under_contention")
    else {
        return;
    };
    let (a, b) = (node(&cluster, 0, "CAS"), node(&cluster, 1, "CAS"));
    let bump = |bucket: &Bucket| {
        bucket
            .modify("n", |old| {
                let n: u64 = old
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                    .unwrap_or(0);
                Ok::<_, ClusterError>((Some((n + 1).to_string().into_bytes()), ()))
            })
            .unwrap()
    };
    std::thread::scope(|s| {
        for bucket in [&a.outbox, &b.outbox, &a.outbox, &b.outbox] {
            s.spawn(move || (0..25).for_each(|_| bump(bucket)));
        }
    });
    let (v, _) = a.outbox.get("n").unwrap().unwrap();
    assert_eq!(
        std::str::from_utf8(&v).unwrap(),
        "100",
        "an update was lost"
    );
}

/// A node that died between creating a vote's delivery (granted, pending) and crediting
/// the wallet: the next open of the ledger, or the vote site's retry on any node, finishes
/// the grant exactly once.
#[test]
fn kv_rewards_finish_a_grant_left_pending_by_a_crash() {
    let Some(cluster) = cluster_or_skip("kv_rewards_finish_a_grant_left_pending_by_a_crash") else {
        return;
    };
    let s = node(&cluster, 0, "PENDING");
    let ledger = KvRewards::open(s.rewards.clone(), "t").unwrap();
    ledger.link("u1", "hero", 1).unwrap();
    // What the crashed node had written: the delivery, granted to u1, still pending.
    let Applied::New(granted) = ledger.apply_vote(&vote("v0", "hero", 7), 2).unwrap() else {
        panic!("a new vote");
    };
    for (id, key) in [
        ("v1", "t.d.server=2Evote.v1"),
        ("v2", "t.d.server=2Evote.v2"),
    ] {
        let mut d = granted.clone();
        d.event_id = id.into();
        if let Some(g) = d.grant.as_mut() {
            g.vote_id = id.into();
        }
        let mut v = serde_json::to_value(&d).unwrap();
        v["pending"] = serde_json::json!(true);
        s.rewards.put(key, serde_json::to_vec(&v).unwrap()).unwrap();
    }
    assert_eq!(
        ledger.wallet("u1").unwrap().unwrap().balance,
        7,
        "not credited yet"
    );
    // The vote site retries v1 on another node: a duplicate, and the grant is finished.
    let other = KvRewards::open(node(&cluster, 1, "PENDING").rewards.clone(), "t").unwrap();
    assert!(matches!(
        other.apply_vote(&vote("v1", "hero", 7), 3).unwrap(),
        Applied::Duplicate(_)
    ));
    // Opening the ledger (a restarted node) finished v2 as well; retries change nothing.
    for _ in 0..2 {
        let again = KvRewards::open(s.rewards.clone(), "t").unwrap();
        assert!(matches!(
            again.apply_vote(&vote("v2", "hero", 7), 4).unwrap(),
            Applied::Duplicate(_)
        ));
    }
    let w = ledger.wallet("u1").unwrap().unwrap();
    assert_eq!(
        (w.balance, w.grants.len()),
        (21, 3),
        "each vote credited once"
    );
}
