//! Order-statistic rank index for one leaderboard window: user → (score, reached_at), rank ↔ user.
//!
//! Layout (measured ≈ 78 bytes per entry at 1,000,000 users, user ids included):
//! - a counted B+tree (`Tree`, fan-out 64): leaves hold sorted 20-byte rows `(score key, reached_at,
//!   user slot)` as struct-of-arrays, so a search reads the 8-byte score column (one probe per cache
//!   line, then one line scanned; the other columns only on equal scores); inner nodes
//!   hold, per child, the exact minimum key of its subtree and its entry count. Rank lookup,
//!   select-by-rank, insert and remove each descend once (O(log n)); leaves are chained, so top-N
//!   and around-a-user are one descent plus O(k). Nodes live in `Vec<Box<_>>` arenas by `u32` id.
//!   An upsert walks the old and the new key's paths side by side and then reads every cache
//!   line of both leaves with independent loads (their misses overlap). When neither key is or
//!   becomes its leaf's first row, the row moves inside its leaf, or from one leaf to the other
//!   if the old leaf stays minimally full and the new one has room: only the counts along the
//!   two paths change. Otherwise it is a remove and an insert, which find both paths in cache.
//! - a user table (`Users`): every user id is stored once in a shared string arena and addressed by a
//!   `u32` slot; an open-addressing hash table of slot numbers maps id → slot without a second copy.
//!
//! Order: score in [`SortOrder`] (by `f64::total_cmp`, so `-inf` and `+inf` rank sanely), then the
//! earlier `reached_at` (log position at which the user reached that score), then `user_id` ascending
//! (byte order). `NaN` scores are ignored by [`RankIndex::upsert`]; `-0.0` is stored as `0.0`.
//!
//! Limits (panics, far beyond one window's realistic size): at most `u32::MAX - 1` users and 4 GiB
//! of user-id bytes per index. Freed nodes and user slots are reused, not returned to the allocator.

mod index;
mod key;
mod node;
mod order;
mod tree;
mod users;

pub use index::{Entry, EntryRef, Iter, RankId, RankIndex};
pub use order::{SortOrder, Ties, UnknownName};

/// "No node / no slot" marker in `u32` links.
const NIL: u32 = u32::MAX;
/// Physical key capacity of a leaf (production fan-out).
const LEAF_CAP: usize = 64;
/// Physical child capacity of an inner node (production fan-out).
const INNER_CAP: usize = 64;

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("rank index exceeds u32 range")
}

#[cfg(test)]
mod check;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
