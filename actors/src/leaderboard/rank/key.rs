//! Key encoding: a score becomes a `u64` whose unsigned order is rank order, so nodes compare
//! integers; an entry's full sort key adds `reached_at` and the user slot.

use super::SortOrder;

/// Maps a score to a `u64` whose unsigned order is `f64::total_cmp` order (ascending).
pub(super) fn asc_bits(score: f64) -> u64 {
    let bits = score.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

pub(super) fn score_from_asc_bits(k: u64) -> f64 {
    if k >> 63 == 1 {
        f64::from_bits(k & !(1 << 63))
    } else {
        f64::from_bits(!k)
    }
}

pub(super) fn score_key(score: f64, order: SortOrder) -> u64 {
    match order {
        SortOrder::Asc => asc_bits(score),
        SortOrder::Desc => !asc_bits(score),
    }
}

pub(super) fn key_score(skey: u64, order: SortOrder) -> f64 {
    match order {
        SortOrder::Asc => score_from_asc_bits(skey),
        SortOrder::Desc => score_from_asc_bits(!skey),
    }
}

/// Sort key of one entry. Ordered by `(skey, reached, name of uid)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Key {
    pub(super) skey: u64,
    pub(super) reached: u64,
    pub(super) uid: u32,
}
