//! How a rank index orders scores and ties: the board's `sort_order` and `ties`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Which end of the score range ranks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Highest score is rank 1.
    #[default]
    Desc,
    /// Lowest score is rank 1.
    Asc,
}

/// How equal scores rank (SPEC §12 `ties`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ties {
    /// Distinct ranks; whoever reached the score first ranks higher (1, 2, 3, 4).
    #[default]
    FirstToReach,
    /// Equal scores share a rank and the next rank skips (1, 2, 2, 4); the order inside a
    /// tie stays first-to-reach.
    Shared,
}

/// A `sort_order` or `ties` name that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {kind} {name:?} (expected {})", Expected(self.names))]
pub struct UnknownName {
    /// What was being named (`"sort order"`, `"ties"`).
    pub kind: &'static str,
    /// The name as given.
    pub name: String,
    names: &'static [&'static str],
}

/// Renders `["a", "b"]` as `"a" or "b"`.
struct Expected(&'static [&'static str]);

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" or ")?;
            }
            write!(f, "{name:?}")?;
        }
        Ok(())
    }
}

/// The wire names of a small enum, in one table that printing and parsing both read.
trait WireName: Copy + PartialEq + 'static {
    /// What a name of this enum names, for errors.
    const KIND: &'static str;
    const NAMES: &'static [&'static str];
    const VALUES: &'static [Self];

    fn wire_name(self) -> &'static str {
        let i = Self::VALUES.iter().position(|v| *v == self);
        Self::NAMES[i.expect("every value has a name")]
    }

    fn from_wire_name(s: &str) -> Result<Self, UnknownName> {
        match Self::NAMES.iter().position(|n| *n == s) {
            Some(i) => Ok(Self::VALUES[i]),
            None => Err(UnknownName {
                kind: Self::KIND,
                name: s.to_owned(),
                names: Self::NAMES,
            }),
        }
    }
}

impl WireName for SortOrder {
    const KIND: &'static str = "sort order";
    const NAMES: &'static [&'static str] = &["desc", "asc"];
    const VALUES: &'static [Self] = &[SortOrder::Desc, SortOrder::Asc];
}

impl WireName for Ties {
    const KIND: &'static str = "ties";
    const NAMES: &'static [&'static str] = &["first_to_reach", "shared"];
    const VALUES: &'static [Self] = &[Ties::FirstToReach, Ties::Shared];
}

impl SortOrder {
    /// The wire name (`"desc"` / `"asc"`).
    pub fn as_str(self) -> &'static str {
        self.wire_name()
    }
}

impl Ties {
    /// The wire name (`"first_to_reach"` / `"shared"`).
    pub fn as_str(self) -> &'static str {
        self.wire_name()
    }
}

impl FromStr for SortOrder {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_wire_name(s)
    }
}

impl FromStr for Ties {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_wire_name(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_say_what_is_expected() {
        for o in [SortOrder::Desc, SortOrder::Asc] {
            assert_eq!(o.as_str().parse::<SortOrder>(), Ok(o));
        }
        for t in [Ties::FirstToReach, Ties::Shared] {
            assert_eq!(t.as_str().parse::<Ties>(), Ok(t));
        }
        let e = "up".parse::<SortOrder>().expect_err("unknown");
        assert_eq!(
            e.to_string(),
            r#"unknown sort order "up" (expected "desc" or "asc")"#
        );
        let e = "tied".parse::<Ties>().expect_err("unknown");
        assert_eq!(
            e.to_string(),
            r#"unknown ties "tied" (expected "first_to_reach" or "shared")"#
        );
    }
}
