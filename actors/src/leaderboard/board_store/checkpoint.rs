//! The checkpoint format: the bytes a [`super::BoardStore`] keeps for a board, whatever the
//! backend. A checkpoint frame is `def_len:u32 | definition JSON | state`, where the state is
//! [`BoardState::encode`]'s form:
//!
//! `version:u8 | applied:u64 | watermark_ms:i64 | frozen windows | open windows [| members]`
//!
//! (big-endian numbers; a window is its timeframe's byte form and its 8 sortable key bytes).
//! Version 1 (no members) still loads.

use std::sync::Arc;

use thiserror::Error;

use crate::leaderboard::definition::Definition;
use crate::leaderboard::state::{Acc, BoardState, Window};
use crate::leaderboard::window::{KeyBytesError, Timeframe, WindowKey};

/// Why a checkpoint's state does not decode (the board then rebuilds from the log).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CheckpointError {
    #[error("unknown checkpoint version {0}")]
    Version(u8),
    #[error("truncated checkpoint")]
    Truncated,
    #[error("checkpoint window: {0}")]
    Window(#[from] KeyBytesError),
    #[error("checkpoint user id: {0}")]
    UserId(#[from] std::str::Utf8Error),
}

/// A board's checkpoint as stored: the definition it was taken under and the encoded state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The definition's canonical JSON ([`Definition::to_json`]); a checkpoint taken under
    /// another definition is not used.
    pub definition: Vec<u8>,
    /// [`BoardState::encode`]'s bytes.
    pub state: Vec<u8>,
}

impl Checkpoint {
    /// The stored frame: `def_len:u32 | definition | state`.
    pub fn to_frame(definition: &str, state: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(4 + definition.len() + state.len());
        let len = u32::try_from(definition.len()).expect("a definition is far below 4 GiB");
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(definition.as_bytes());
        buf.extend_from_slice(state);
        buf
    }

    /// Splits a stored frame; `None` when it is too short to hold its definition.
    pub fn from_frame(frame: &[u8]) -> Option<Checkpoint> {
        let len = u32::from_be_bytes(frame.get(..4)?.try_into().expect("4")) as usize;
        let definition = frame.get(4..4usize.checked_add(len)?)?;
        Some(Checkpoint {
            definition: definition.to_vec(),
            state: frame[4 + len..].to_vec(),
        })
    }

    /// The log position a stored frame has applied, read without decoding it (0 when the
    /// frame is unreadable): after the definition come the version byte and `applied`.
    pub fn applied_in_frame(frame: &[u8]) -> u64 {
        let def_len = frame
            .get(..4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4")) as usize)
            .unwrap_or(usize::MAX);
        let at = def_len.saturating_add(5);
        frame
            .get(at..at.saturating_add(8))
            .map(|b| u64::from_be_bytes(b.try_into().expect("8")))
            .unwrap_or(0)
    }

    /// The board state, if this checkpoint was taken under `def` and decodes.
    pub fn state_for(&self, def: &Arc<Definition>) -> Option<Result<BoardState, CheckpointError>> {
        (self.definition == def.to_json().to_string().as_bytes())
            .then(|| BoardState::decode(def.clone(), &self.state))
    }
}

impl BoardState {
    /// Serialise for a checkpoint (see [`BoardState::decode`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.open_entries() * 64);
        b.push(CKPT_VERSION);
        b.extend_from_slice(&self.applied.to_be_bytes());
        b.extend_from_slice(&self.watermark_ms.to_be_bytes());
        b.extend_from_slice(&(self.frozen.len() as u32).to_be_bytes());
        for (tf, k) in &self.frozen {
            tf.encode(&mut b);
            b.extend_from_slice(&k.to_sortable_bytes());
        }
        b.extend_from_slice(&(self.open.len() as u32).to_be_bytes());
        for ((tf, k), w) in &self.open {
            tf.encode(&mut b);
            b.extend_from_slice(&k.to_sortable_bytes());
            b.extend_from_slice(&(w.accs.len() as u32).to_be_bytes());
            for (user, c) in &w.accs {
                let a = &c.acc;
                let reached = w.reached(c);
                b.extend_from_slice(&(user.len() as u16).to_be_bytes());
                b.extend_from_slice(user.as_bytes());
                for x in [
                    a.sum.to_bits(),
                    a.count,
                    a.min.to_bits(),
                    a.max.to_bits(),
                    reached,
                ] {
                    b.extend_from_slice(&x.to_be_bytes());
                }
            }
        }
        // Version 2: the members follow.
        b.extend_from_slice(&(self.members.len() as u32).to_be_bytes());
        for (user, seq) in self.members.iter() {
            b.extend_from_slice(&(user.len() as u16).to_be_bytes());
            b.extend_from_slice(user.as_bytes());
            b.extend_from_slice(&seq.to_be_bytes());
        }
        b
    }

    /// Rebuild a state from [`BoardState::encode`] output.
    pub fn decode(def: Arc<Definition>, buf: &[u8]) -> Result<BoardState, CheckpointError> {
        let mut r = Reader { buf, at: 0 };
        let version = r.u8()?;
        if !(1..=CKPT_VERSION).contains(&version) {
            return Err(CheckpointError::Version(version));
        }
        let mut s = BoardState::new(def);
        s.applied = r.u64()?;
        s.watermark_ms = r.u64()? as i64;
        for _ in 0..r.u32()? {
            let tf = r.timeframe()?;
            let key = WindowKey::from_sortable_bytes(tf, r.take(8)?)?;
            s.frozen.insert((tf, key));
        }
        let (agg, order, ties) = (s.def.aggregation, s.def.sort_order, s.def.ties);
        for _ in 0..r.u32()? {
            let tf = r.timeframe()?;
            let key = WindowKey::from_sortable_bytes(tf, r.take(8)?)?;
            let mut w = Window::new(order, ties);
            for _ in 0..r.u32()? {
                let len = r.u16()? as usize;
                let user = std::str::from_utf8(r.take(len)?)?;
                let a = Acc {
                    sum: f64::from_bits(r.u64()?),
                    count: r.u64()?,
                    min: f64::from_bits(r.u64()?),
                    max: f64::from_bits(r.u64()?),
                };
                let reached = r.u64()?;
                w.load(user, a, a.score(agg), reached);
            }
            s.open.insert((tf, key), w);
        }
        if version >= 2 {
            for _ in 0..r.u32()? {
                let len = r.u16()? as usize;
                let user = std::str::from_utf8(r.take(len)?)?;
                let seq = r.u64()?;
                s.members.restore(user, seq);
            }
        }
        Ok(s)
    }
}

/// 1: windows; 2: windows then members (version 1 still loads, with no members).
const CKPT_VERSION: u8 = 2;

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        let s = self
            .buf
            .get(self.at..self.at + n)
            .ok_or(CheckpointError::Truncated)?;
        self.at += n;
        Ok(s)
    }
    fn timeframe(&mut self) -> Result<Timeframe, CheckpointError> {
        let (tf, used) = Timeframe::decode(&self.buf[self.at.min(self.buf.len())..])?;
        self.at += used;
        Ok(tf)
    }
    fn u8(&mut self) -> Result<u8, CheckpointError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, CheckpointError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, CheckpointError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, CheckpointError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
}
