//! Leaderboards: definitions, scoring, event-time windows, the rank index, board state, the
//! board store (checkpoint and frozen-window history), the query results, and the
//! `LeaderboardActor` that consumes a tenant's log.

pub mod actor;
pub mod board_store;
pub mod clock;
pub mod close;
pub mod definition;
pub mod expr;
pub mod matcher;
pub mod members;
pub mod query;
pub mod rank;
pub mod schedule;
pub mod state;
pub mod views;
pub mod window;
