//! Unit tests of the rank index: orders, ties, edges, growth and drain.

use super::key::{key_score, score_key};
use super::{RankIndex, SortOrder, Ties};

#[test]
fn shared_ties_skip_ranks() {
    let mut idx = RankIndex::with_ties(SortOrder::Desc, Ties::Shared);
    for (u, s, r) in [("a", 10.0, 1), ("b", 8.0, 2), ("c", 8.0, 3), ("d", 5.0, 4)] {
        idx.upsert(u, s, r);
    }
    let ranks: Vec<(usize, String)> = idx
        .range(0, 10)
        .into_iter()
        .map(|e| (e.rank, e.user_id))
        .collect();
    assert_eq!(
        ranks,
        [
            (1, "a".into()),
            (2, "b".into()),
            (2, "c".into()),
            (4, "d".into())
        ]
    );
    assert_eq!(idx.range(2, 1)[0].rank, 2, "a page starting inside the tie");
    assert_eq!(idx.rank_of("c"), Some(2));
    assert_eq!(idx.position_of("c"), Some(3));
    assert_eq!(idx.count_better(8.0), 1);
    assert_eq!(idx.count_better(9.0), 1);
    assert_eq!(idx.count_better(-1.0), 4);
    assert_eq!("shared".parse::<Ties>(), Ok(Ties::Shared));
    assert!("tied".parse::<Ties>().is_err());
}

#[test]
fn score_keys_follow_total_order() {
    let xs = [
        f64::NEG_INFINITY,
        -1e300,
        -1.0,
        -f64::MIN_POSITIVE,
        0.0,
        1e-300,
        1.0,
        2.5,
        f64::INFINITY,
    ];
    for w in xs.windows(2) {
        assert!(score_key(w[0], SortOrder::Asc) < score_key(w[1], SortOrder::Asc));
        assert!(score_key(w[0], SortOrder::Desc) > score_key(w[1], SortOrder::Desc));
    }
    for x in xs {
        for o in [SortOrder::Asc, SortOrder::Desc] {
            assert_eq!(key_score(score_key(x, o), o).to_bits(), x.to_bits());
        }
    }
}

#[test]
fn ties_break_on_reached_at_then_user_id() {
    let mut idx = RankIndex::new(SortOrder::Desc);
    assert_eq!(idx.upsert("carol", 10.0, 5), None);
    assert_eq!(idx.upsert("bob", 10.0, 5), None);
    assert_eq!(idx.upsert("alice", 10.0, 7), None);
    assert_eq!(idx.upsert("dave", 11.0, 9), None);
    let order: Vec<String> = idx.iter().map(|e| e.user_id.to_owned()).collect();
    assert_eq!(order, ["dave", "bob", "carol", "alice"]);
    // alice moves up: previous rank returned, new rank visible.
    assert_eq!(idx.upsert("alice", 12.0, 8), Some(4));
    assert_eq!(idx.get("alice"), Some((1, 12.0, 8)));
    assert_eq!(idx.rank_of("bob"), Some(3));
}

#[test]
fn asc_order_ranks_lowest_first() {
    let mut idx = RankIndex::new(SortOrder::Asc);
    idx.upsert("slow", 93.5, 1);
    idx.upsert("fast", 61.2, 2);
    assert_eq!(idx.range(0, 10)[0].user_id, "fast");
    assert_eq!(idx.rank_of("slow"), Some(2));
}

#[test]
fn nan_is_ignored_and_negative_zero_ties_zero() {
    let mut idx = RankIndex::new(SortOrder::Desc);
    assert_eq!(idx.upsert("a", f64::NAN, 1), None);
    assert!(idx.is_empty());
    idx.upsert("a", 1.0, 1);
    assert_eq!(idx.upsert("a", f64::NAN, 2), Some(1));
    assert_eq!(idx.get("a"), Some((1, 1.0, 1)));
    idx.upsert("b", -0.0, 3);
    idx.upsert("c", 0.0, 3);
    assert_eq!(idx.get("b"), Some((2, 0.0, 3)));
    assert_eq!(idx.get("b").map(|g| g.1.is_sign_positive()), Some(true));
    assert_eq!(idx.rank_of("c"), Some(3));
}

#[test]
fn empty_and_edges() {
    let mut idx = RankIndex::new(SortOrder::Desc);
    assert_eq!(idx.range(0, 10), vec![]);
    assert_eq!(idx.around("x", 3), None);
    assert_eq!(idx.remove("x"), None);
    assert_eq!(idx.iter().next(), None);
    for i in 0..10 {
        idx.upsert(&format!("u{i}"), f64::from(i), 0);
    }
    assert_eq!(idx.range(10, 5), vec![]);
    assert_eq!(idx.range(8, usize::MAX).len(), 2);
    let top = idx.around("u9", 2).expect("present");
    assert_eq!(top.iter().map(|e| e.rank).collect::<Vec<_>>(), [1, 2, 3]);
    let bottom = idx.around("u0", usize::MAX).expect("present");
    assert_eq!(bottom.len(), 10);
    let mid = idx.around("u5", 1).expect("present");
    assert_eq!(
        mid.iter().map(|e| e.user_id.as_str()).collect::<Vec<_>>(),
        ["u6", "u5", "u4"]
    );
    assert_eq!(
        idx.iter_from(7).map(|e| e.rank).collect::<Vec<_>>(),
        [8, 9, 10]
    );
    assert_eq!(idx.iter_from(3).len(), 7);
}

/// Grows to several levels at production fan-out, then drains (every merge path), and
/// exercises name-arena compaction and slot reuse.
#[test]
fn bulk_grow_and_drain() {
    let mut idx = RankIndex::new(SortOrder::Desc);
    let n = 20_000u32;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        idx.upsert(
            &format!("player-{i:06}"),
            f64::from((x % 5000) as u32),
            u64::from(i),
        );
    }
    assert!(idx.tree.height >= 2);
    idx.check();
    for i in (0..n).step_by(2) {
        assert!(idx.remove(&format!("player-{i:06}")).is_some());
    }
    idx.check();
    for i in 0..n / 2 {
        idx.upsert(&format!("again-{i}"), f64::from(i), 1);
    }
    idx.check();
    for e in idx.iter().map(|e| e.user_id.to_owned()).collect::<Vec<_>>() {
        idx.remove(&e);
    }
    assert!(idx.is_empty());
    assert_eq!(idx.tree.height, 0);
    idx.check();
}

#[test]
fn sort_order_serde() {
    assert_eq!(
        serde_json::to_string(&SortOrder::Desc).ok().as_deref(),
        Some("\"desc\"")
    );
    assert_eq!(
        serde_json::from_str::<SortOrder>("\"asc\"").ok(),
        Some(SortOrder::Asc)
    );
    assert_eq!("asc".parse::<SortOrder>(), Ok(SortOrder::Asc));
    assert!("up".parse::<SortOrder>().is_err());
}

/// Timing and memory at 1,000,000 users. Run in release:
/// `cargo test --release -- --ignored --nocapture bench_one_million`
#[test]
#[ignore]
fn bench_one_million() {
    use std::time::Instant;
    const N: u64 = 1_000_000;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let name = |i: u64| format!("user-{i:07}");
    let mut idx = RankIndex::new(SortOrder::Desc);
    let t0 = Instant::now();
    for i in 0..N {
        let s = (rnd() % 1_000_000) as f64;
        idx.upsert(&name(i), s, i);
    }
    let build = t0.elapsed();
    let median = |mut v: Vec<u128>| {
        v.sort_unstable();
        (v[v.len() / 2], v[v.len() * 99 / 100])
    };
    let samples = 200_000;
    let names: Vec<String> = (0..samples).map(|_| name(rnd() % N)).collect();
    let mut up = Vec::with_capacity(samples);
    for (j, user) in names.iter().enumerate() {
        let s = (rnd() % 1_000_000) as f64;
        let t = Instant::now();
        std::hint::black_box(idx.upsert(user, s, N + j as u64));
        up.push(t.elapsed().as_nanos());
    }
    let mut rq = Vec::with_capacity(samples);
    for user in &names {
        let t = Instant::now();
        std::hint::black_box(idx.rank_of(user));
        rq.push(t.elapsed().as_nanos());
    }
    let mut find = Vec::with_capacity(samples);
    for user in &names {
        let t = Instant::now();
        std::hint::black_box(idx.users.find(user));
        find.push(t.elapsed().as_nanos());
    }
    let mut top = Vec::new();
    let mut near = Vec::new();
    for user in names.iter().take(20_000) {
        let t = Instant::now();
        std::hint::black_box(idx.range(0, 100));
        top.push(t.elapsed().as_nanos());
        let t = Instant::now();
        std::hint::black_box(idx.around(user, 5));
        near.push(t.elapsed().as_nanos());
    }
    let bytes = idx.approx_heap_bytes();
    println!(
        "users: {}  height: {}  build: {:?}",
        idx.len(),
        idx.tree.height,
        build
    );
    println!("upsert   median/p99 ns: {:?}", median(up));
    println!("rank_of  median/p99 ns: {:?}", median(rq));
    println!("  of which id lookup median/p99 ns: {:?}", median(find));
    println!("top-100  median/p99 ns: {:?}", median(top));
    println!("around-5 median/p99 ns: {:?}", median(near));
    println!(
        "heap: {bytes} bytes = {:.1} bytes/entry",
        bytes as f64 / idx.len() as f64
    );
}
