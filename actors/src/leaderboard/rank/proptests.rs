//! Model-based property tests: the rank index against a naive sorted list.

use proptest::prelude::*;

use super::{Entry, RankIndex, SortOrder, Ties, INNER_CAP, LEAF_CAP};

/// Naive reference: unsorted rows, sorted on every query.
#[derive(Default)]
struct Model {
    rows: Vec<(String, f64, u64)>,
}

impl Model {
    fn sorted(&self, order: SortOrder) -> Vec<(String, f64, u64)> {
        let mut v = self.rows.clone();
        v.sort_by(|a, b| {
            let s = match order {
                SortOrder::Asc => a.1.total_cmp(&b.1),
                SortOrder::Desc => b.1.total_cmp(&a.1),
            };
            s.then(a.2.cmp(&b.2)).then_with(|| a.0.cmp(&b.0))
        });
        v
    }

    fn rank(&self, order: SortOrder, user: &str) -> Option<usize> {
        self.sorted(order)
            .iter()
            .position(|r| r.0 == user)
            .map(|p| p + 1)
    }

    fn range(&self, order: SortOrder, offset: usize, limit: usize) -> Vec<Entry> {
        self.sorted(order)
            .into_iter()
            .enumerate()
            .skip(offset)
            .take(limit)
            .map(|(i, (user_id, score, _))| Entry {
                rank: i + 1,
                user_id,
                score,
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// User, score, reached; `true`: through the user's kept [`RankId`] when there is one.
    Upsert(usize, f64, u64, bool),
    Remove(usize),
    Get(usize),
    Range(usize, usize),
    Around(usize, usize),
}

fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => (-3i32..4).prop_map(f64::from),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
        1 => Just(f64::NAN),
        2 => any::<f64>(),
    ]
}

fn ops(users: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        10 => (0..users, score(), 0u64..4, any::<bool>()).prop_map(|(u, s, r, id)| Op::Upsert(u, s, r, id)),
        3 => (0..users).prop_map(Op::Remove),
        2 => (0..users).prop_map(Op::Get),
        2 => (0..users + 5, 0usize..20).prop_map(|(o, l)| Op::Range(o, l)),
        2 => (0..users, 0usize..6).prop_map(|(u, r)| Op::Around(u, r)),
    ];
    proptest::collection::vec(op, 1..300)
}

fn run_model(order: SortOrder, caps: (usize, usize), ops: &[Op], check_every_op: bool) {
    let mut idx = RankIndex::with_caps(order, caps.0, caps.1);
    let mut model = Model::default();
    let name = |u: usize| format!("u{u}");
    // The ids kept from `upsert_keeping_id`, forgotten when their user is removed.
    let mut ids = std::collections::HashMap::new();
    for op in ops {
        match *op {
            Op::Upsert(u, s, r, by_id) => {
                let user = name(u);
                let expect = model.rank(order, &user);
                if !s.is_nan() {
                    let s = if s == 0.0 { 0.0 } else { s };
                    model.rows.retain(|row| row.0 != user);
                    model.rows.push((user.clone(), s, r));
                }
                match (by_id, ids.get(&user)) {
                    (true, Some(&id)) => assert_eq!(idx.upsert_id(id, s, r), expect, "{op:?}"),
                    (true, None) => {
                        if let Some(id) = idx.upsert_keeping_id(&user, s, r) {
                            ids.insert(user.clone(), id);
                        }
                        assert_eq!(idx.rank_of(&user), model.rank(order, &user), "{op:?}");
                    }
                    (false, _) => assert_eq!(idx.upsert(&user, s, r), expect, "{op:?}"),
                }
            }
            Op::Remove(u) => {
                let user = name(u);
                let expect = model.rank(order, &user);
                ids.remove(&user);
                model.rows.retain(|row| row.0 != user);
                assert_eq!(idx.remove(&user), expect, "{op:?}");
            }
            Op::Get(u) => {
                let user = name(u);
                let expect = model.rank(order, &user).map(|rank| {
                    let row = model.rows.iter().find(|row| row.0 == user).expect("row");
                    (rank, row.1, row.2)
                });
                assert_eq!(idx.get(&user), expect, "{op:?}");
            }
            Op::Range(o, l) => assert_eq!(idx.range(o, l), model.range(order, o, l), "{op:?}"),
            Op::Around(u, r) => {
                let user = name(u);
                let expect = model.rank(order, &user).map(|rank| {
                    let start = (rank - 1).saturating_sub(r);
                    model.range(order, start, rank + r - start)
                });
                assert_eq!(idx.around(&user, r), expect, "{op:?}");
            }
        }
        assert_eq!(idx.len(), model.rows.len());
        if check_every_op {
            idx.check();
        }
    }
    idx.check();
    let all: Vec<Entry> = idx.iter().map(|e| e.to_entry()).collect();
    assert_eq!(all, model.range(order, 0, usize::MAX));
}

fn order() -> impl Strategy<Value = SortOrder> {
    prop_oneof![Just(SortOrder::Desc), Just(SortOrder::Asc)]
}

/// Shared ties against the naive definition: rank = 1 + users with a strictly better score;
/// pages (which may start inside a tie) and `around` agree with it; order stays first-to-reach.
fn check_shared(order: SortOrder, caps: (usize, usize), rows: &[(usize, i32, u64)]) {
    let mut idx = RankIndex::with_caps(order, caps.0, caps.1);
    idx.ties = Ties::Shared;
    let mut model = Model::default();
    for &(u, s, r) in rows {
        let user = format!("u{u}");
        let s = f64::from(s);
        model.rows.retain(|row| row.0 != user);
        model.rows.push((user.clone(), s, r));
        idx.upsert(&user, s, r);
    }
    let better = |s: f64| {
        model
            .rows
            .iter()
            .filter(|row| match order {
                SortOrder::Desc => row.1 > s,
                SortOrder::Asc => row.1 < s,
            })
            .count()
    };
    let sorted = model.sorted(order);
    let want: Vec<Entry> = sorted
        .iter()
        .map(|(u, s, _)| Entry {
            rank: better(*s) + 1,
            user_id: u.clone(),
            score: *s,
        })
        .collect();
    for offset in 0..=want.len() {
        for limit in [1, 2, 5] {
            let end = (offset + limit).min(want.len());
            assert_eq!(
                idx.range(offset, limit),
                want[offset..end].to_vec(),
                "page {offset}+{limit}"
            );
        }
    }
    for (i, (u, s, r)) in sorted.iter().enumerate() {
        assert_eq!(idx.get(u), Some((better(*s) + 1, *s, *r)), "{u}");
        assert_eq!(idx.position_of(u), Some(i + 1));
        assert_eq!(idx.count_better(*s), better(*s));
        let start = i.saturating_sub(1);
        let end = (i + 2).min(want.len());
        assert_eq!(idx.around(u, 1), Some(want[start..end].to_vec()));
    }
    for probe in -4..5 {
        assert_eq!(
            idx.count_better(f64::from(probe)),
            better(f64::from(probe)),
            "{probe}"
        );
    }
    let positions: Vec<usize> = idx.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=want.len()).collect::<Vec<_>>());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn shared_ties_match_the_model(
        order in order(),
        rows in proptest::collection::vec((0usize..60, -3i32..4, 0u64..1000), 1..150),
    ) {
        check_shared(order, (3, 4), &rows);
        check_shared(order, (LEAF_CAP, INNER_CAP), &rows);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Tiny fan-out: a few dozen users already split and merge nodes on several levels.
    #[test]
    fn model_small_fanout(order in order(), ops in ops(40)) {
        run_model(order, (3, 4), &ops, true);
    }

    #[test]
    fn model_mid_fanout(order in order(), ops in ops(60)) {
        run_model(order, (5, 5), &ops, true);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Production fan-out with more users than one leaf holds.
    #[test]
    fn model_production_fanout(order in order(), ops in ops(200)) {
        run_model(order, (LEAF_CAP, INNER_CAP), &ops, false);
    }
}

/// Score steps of users already ranked (`users` of them, `spread` points apart, so a small step
/// mostly stays inside one leaf, which [`super::tree::Tree::move_entry`] serves in place, and a
/// large one lands in another leaf). Every step against the model, with the full invariant
/// check; returns how many steps moved in place and how many between two leaves. A step's
/// third field picks its `reached_at`: 0 a new log position, 1 the old one, 2 the shared
/// position 1 (equal score and position: the name breaks the tie).
fn run_steps(
    order: SortOrder,
    caps: (usize, usize),
    (users, spread): (usize, u32),
    steps: &[(usize, i32, u8)],
) -> (usize, usize) {
    let mut idx = RankIndex::with_caps(order, caps.0, caps.1);
    let mut model = Model::default();
    let mut seq = 1;
    for u in 0..users {
        seq += 1;
        let user = format!("u{u}");
        let s = f64::from(u32::try_from(u).expect("few users") * spread);
        model.rows.push((user.clone(), s, seq));
        idx.upsert(&user, s, seq);
    }
    for &(u, delta, reached) in steps {
        let user = format!("u{}", u % users);
        let expect = model.rank(order, &user);
        let row = model.rows.iter_mut().find(|r| r.0 == user).expect("ranked");
        row.1 += f64::from(delta);
        match reached {
            0 => {
                seq += 1;
                row.2 = seq;
            }
            1 => {}
            _ => row.2 = 1,
        }
        let (s, r) = (row.1, row.2);
        assert_eq!(
            idx.upsert(&user, s, r),
            expect,
            "step {user} {delta} {reached}"
        );
        idx.check();
    }
    let all: Vec<Entry> = idx.iter().map(|e| e.to_entry()).collect();
    assert_eq!(all, model.range(order, 0, usize::MAX));
    (idx.tree.moves_in_place, idx.tree.moves_between_leaves)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn small_steps_match_the_model(
        order in order(),
        users in (1usize..120, 0u32..6),
        steps in proptest::collection::vec((0usize..120, -3i32..4, 0u8..3), 1..200),
    ) {
        run_steps(order, (3, 4), users, &steps);
        run_steps(order, (5, 5), users, &steps);
        run_steps(order, (LEAF_CAP, INNER_CAP), users, &steps);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Jumps anywhere in the standings: most land in another leaf.
    #[test]
    fn jumps_match_the_model(
        order in order(),
        users in (1usize..300, 1u32..4),
        steps in proptest::collection::vec((0usize..300, -900i32..900, 0u8..3), 1..300),
    ) {
        run_steps(order, (3, 4), users, &steps);
        run_steps(order, (8, 6), users, &steps);
        run_steps(order, (LEAF_CAP, INNER_CAP), users, &steps);
    }
}

#[test]
fn jumps_mostly_move_between_leaves_without_restructuring() {
    let mut rng = crate::xorshift::XorShift(7);
    let steps: Vec<(usize, i32, u8)> = (0..2000)
        .map(|_| {
            let user = (rng.next_u64() % 3000) as usize;
            let delta = (rng.next_u64() % 60_000) as i32 - 30_000;
            (user, delta, 0)
        })
        .collect();
    let (in_place, between) = run_steps(SortOrder::Desc, (LEAF_CAP, INNER_CAP), (3000, 10), &steps);
    assert!(
        between >= 1500,
        "only {between} of 2000 jumps moved between two leaves ({in_place} in place)"
    );
}

#[test]
fn small_steps_mostly_move_in_place() {
    let steps: Vec<(usize, i32, u8)> = (0..400)
        .map(|i| ((i * 37) % 300, [1, -1, 2, -2][i % 4], (i % 3) as u8))
        .collect();
    for (caps, least) in [((5, 5), 100), ((LEAF_CAP, INNER_CAP), 300)] {
        let (moved, _) = run_steps(SortOrder::Desc, caps, (300, 10), &steps);
        assert!(
            moved >= least,
            "{caps:?}: only {moved} of 400 steps moved in place"
        );
    }
}
