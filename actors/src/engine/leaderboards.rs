//! The engine's leaderboard API: definitions (in the bundle's [`DefinitionStore`], one actor
//! each), standings
//! queries routed to the board's actor, and tournament membership (joins and leaves are logged
//! events the board decides in log order).

use std::sync::Arc;

use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};
use serde_json::Value;

use super::Engine;
use crate::error::EngineError;
use crate::event::Event;
use crate::leaderboard::actor::{BoardArgs, LeaderboardMsg};
use crate::leaderboard::definition::Definition;
use crate::leaderboard::members::{Decision, JoinOutcome, MEMBER_JOINED, MEMBER_LEFT};
use crate::leaderboard::query::{
    MemberStatus, QueryError, Standings, UserStanding, WindowInfo, WindowSel,
};
use crate::leaderboard::window::Timeframe;
use crate::stores::DefinitionStore;
use crate::supervisor::SupervisorMsg;
use crate::tenant::Outcome;

/// The membership event `ty` for `user` on `board`. Its id is a function of the board, the
/// action, the user and the board's applied position when asked, so a request repeated before
/// anything changed is deduplicated, while a later join after a leave is a new event.
fn member_event(
    ty: &str,
    tenant: &str,
    board: &str,
    user: &str,
    applied: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Event, QueryError> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(user.as_bytes());
    let user_hash: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let json = serde_json::json!({
        "event_id": format!("{ty}:{board}:{user_hash}:{applied}"),
        "type": ty,
        "actor": {"user_id": user},
        "occurred_at": now.to_rfc3339(),
        "attrs": {"leaderboard": board},
    });
    Event::from_json(json, tenant, now).map_err(|e| QueryError::Invalid(e.to_string()))
}

impl Engine {
    fn defs(&self) -> &dyn DefinitionStore {
        self.inner.bundle.definitions.as_ref()
    }

    fn board_args(&self, tenant: &str, def: Arc<Definition>) -> Result<BoardArgs, EngineError> {
        let head = self
            .durable_head(tenant)
            .ok_or_else(|| EngineError::UnknownTenant(tenant.to_owned()))?;
        let feed = self
            .feed(tenant)
            .ok_or_else(|| EngineError::UnknownTenant(tenant.to_owned()))?;
        Ok(BoardArgs {
            clock: self.inner.config.clock.clone(),
            tenant: tenant.to_owned(),
            def,
            log: self.inner.log.clone(),
            closes: self.inner.bundle.closes.clone(),
            board_store: self.inner.bundle.boards.clone(),
            head,
            feed,
            checkpoint_interval: self.inner.config.checkpoint_interval,
            history_retention: self.inner.config.history_retention,
            push_interval: self.inner.config.push_interval,
            close: self.inner.config.close,
            tenants: Some(self.inner.routes.clone()),
            committer: Some(self.inner.committer.clone()),
        })
    }

    async fn supervise<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> SupervisorMsg,
    ) -> Result<T, EngineError> {
        match self
            .inner
            .supervisor
            .call(msg, Some(self.inner.config.call_timeout))
            .await
        {
            Ok(CallResult::Success(t)) => Ok(t),
            Ok(CallResult::Timeout) => {
                Err(EngineError::ActorUnavailable("supervisor timed out".into()))
            }
            Ok(CallResult::SenderError) | Err(_) => {
                Err(EngineError::ActorUnavailable("supervisor stopped".into()))
            }
        }
    }

    /// The lowest log position every board of `tenant` has durably checkpointed past
    /// (`u64::MAX` without boards: nothing holds the log back).
    pub(super) fn min_checkpointed(&self, tenant: &str) -> Result<u64, EngineError> {
        let mut min = u64::MAX;
        for (id, _) in self.defs().list(tenant)? {
            min = min.min(self.board_store(tenant, &id)?.checkpointed_seq()?);
        }
        Ok(min)
    }

    /// How many leaderboards `tenant` has; also sets `phoenix_tenant_leaderboards`.
    pub(super) fn count_boards(&self, tenant: &str) -> Result<usize, EngineError> {
        let n = self.defs().list(tenant)?.len();
        metrics::gauge!("phoenix_tenant_leaderboards", "tenant" => tenant.to_owned()).set(n as f64);
        metrics::counter!("phoenix_leaderboards_rejected_total", "tenant" => tenant.to_owned(), "reason" => "limit")
            .increment(0);
        Ok(n)
    }

    /// Start an actor for every stored definition of a running tenant.
    pub(super) async fn start_stored_boards(&self) -> Result<(), EngineError> {
        for (tenant, id, v) in self.defs().all()? {
            let (tenant, id) = (tenant.as_str(), id.as_str());
            if self.durable_head(tenant).is_none() {
                continue;
            }
            let json: Value = serde_json::from_slice(&v).map_err(|e| EngineError::Corrupt {
                tenant: tenant.to_owned(),
                seq: 0,
                reason: format!("definition {id}: {e}"),
            })?;
            match Definition::from_json(id, &json) {
                Ok(def) => {
                    let args = self.board_args(tenant, Arc::new(def))?;
                    self.supervise(|r| SupervisorMsg::StartBoard(args, r))
                        .await??;
                }
                Err(e) => {
                    tracing::error!(tenant, board = id, error = %e, "stored definition no longer valid; not started")
                }
            }
        }
        Ok(())
    }

    /// Create or replace a leaderboard. A changed definition is rebuilt from the retained log;
    /// an identical one is left running. Returns the stored definition and whether it was new.
    pub async fn put_leaderboard(
        &self,
        tenant: &str,
        id: &str,
        json: &Value,
    ) -> Result<(Value, bool), QueryError> {
        let def =
            Definition::from_json(id, json).map_err(|e| QueryError::Invalid(e.to_string()))?;
        let canonical = def.to_json();
        let bytes = canonical.to_string();
        let defs = self.defs();
        let _serial = self.inner.defs_lock.lock().await;
        let existing = defs.get(tenant, id).map_err(EngineError::from)?;
        let created = existing.is_none();
        let max = self.inner.config.max_leaderboards_per_tenant;
        if created && self.count_boards(tenant)? >= max {
            metrics::counter!("phoenix_leaderboards_rejected_total", "tenant" => tenant.to_owned(), "reason" => "limit")
                .increment(1);
            return Err(QueryError::Invalid(format!(
                "tenant {tenant} already has {max} leaderboards, the most allowed \
                 (max_leaderboards_per_tenant); delete one or replace an existing id"
            )));
        }
        if existing.as_deref() == Some(bytes.as_bytes()) && self.board(tenant, id).is_some() {
            return Ok((canonical, false));
        }
        let args = self.board_args(tenant, Arc::new(def))?;
        defs.put(tenant, id, bytes.as_bytes())
            .map_err(EngineError::from)?;
        self.count_boards(tenant)?;
        self.supervise(|r| SupervisorMsg::StartBoard(args, r))
            .await?
            .map_err(QueryError::Engine)?;
        // Acknowledge only once the definition (and the new board's reset) is durable.
        self.persist().await?;
        Ok((canonical, created))
    }

    pub fn get_leaderboard(&self, tenant: &str, id: &str) -> Result<Option<Value>, EngineError> {
        Ok(self
            .defs()
            .get(tenant, id)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    pub fn list_leaderboards(&self, tenant: &str) -> Result<Vec<Value>, EngineError> {
        let mut out = Vec::new();
        for (_, v) in self.defs().list(tenant)? {
            if let Ok(v) = serde_json::from_slice(&v) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Delete a leaderboard, its checkpoint and its history. `false` if it did not exist.
    pub async fn delete_leaderboard(&self, tenant: &str, id: &str) -> Result<bool, EngineError> {
        let _serial = self.inner.defs_lock.lock().await;
        if !self.defs().remove(tenant, id)? {
            return Ok(false);
        }
        self.count_boards(tenant)?;
        let (t, i) = (tenant.to_owned(), id.to_owned());
        self.supervise(|r| SupervisorMsg::StopBoard(t, i, r))
            .await?;
        self.board_store(tenant, id)?.clear()?;
        self.persist().await?;
        Ok(true)
    }

    pub(crate) fn board(&self, tenant: &str, id: &str) -> Option<ActorRef<LeaderboardMsg>> {
        self.inner
            .boards
            .read()
            .expect("boards")
            .get(&(tenant.to_owned(), id.to_owned()))
            .cloned()
    }

    async fn ask<T: Send + 'static>(
        &self,
        tenant: &str,
        id: &str,
        msg: impl FnOnce(RpcReplyPort<T>) -> LeaderboardMsg,
    ) -> Result<T, QueryError> {
        let board = self
            .board(tenant, id)
            .ok_or_else(|| QueryError::NoBoard(id.to_owned()))?;
        match board.call(msg, Some(self.inner.config.call_timeout)).await {
            Ok(CallResult::Success(t)) => Ok(t),
            Ok(CallResult::Timeout) => Err(QueryError::Engine(EngineError::ActorUnavailable(
                format!("leaderboard {id} timed out"),
            ))),
            Ok(CallResult::SenderError) | Err(_) => Err(QueryError::Engine(
                EngineError::ActorUnavailable(format!("leaderboard {id} stopped mid-call")),
            )),
        }
    }

    /// A page of standings.
    pub async fn standings(
        &self,
        tenant: &str,
        id: &str,
        tf: Timeframe,
        window: WindowSel,
        offset: usize,
        limit: usize,
    ) -> Result<Standings, QueryError> {
        self.ask(tenant, id, |reply| LeaderboardMsg::Standings {
            tf,
            window,
            offset,
            limit,
            reply,
        })
        .await?
    }

    /// A user's rank, score and neighbourhood.
    pub async fn user_standing(
        &self,
        tenant: &str,
        id: &str,
        tf: Timeframe,
        window: WindowSel,
        user: &str,
        around: usize,
    ) -> Result<UserStanding, QueryError> {
        let user = user.to_owned();
        self.ask(tenant, id, |reply| LeaderboardMsg::User {
            tf,
            window,
            user,
            around,
            reply,
        })
        .await?
    }

    /// Watch a live view of a board: its snapshot now and a stream of later frames.
    pub async fn subscribe_view(
        &self,
        tenant: &str,
        id: &str,
        key: crate::leaderboard::views::ViewKey,
    ) -> Result<crate::leaderboard::query::Subscription, QueryError> {
        self.ask(tenant, id, |reply| LeaderboardMsg::Subscribe { key, reply })
            .await?
    }

    /// The listed users' entries in rank order (a friends or clan board).
    pub async fn users_standings(
        &self,
        tenant: &str,
        id: &str,
        tf: Timeframe,
        window: WindowSel,
        users: Vec<String>,
    ) -> Result<Standings, QueryError> {
        self.ask(tenant, id, |reply| LeaderboardMsg::Users {
            tf,
            window,
            users,
            reply,
        })
        .await?
    }

    /// The windows of a timeframe with their state, newest first.
    pub async fn windows(
        &self,
        tenant: &str,
        id: &str,
        tf: Timeframe,
        limit: usize,
    ) -> Result<Vec<WindowInfo>, QueryError> {
        self.ask(tenant, id, |reply| LeaderboardMsg::Windows {
            tf,
            limit,
            reply,
        })
        .await?
    }

    /// A page of a tournament's members after `after`, and how many there are.
    pub async fn members(
        &self,
        tenant: &str,
        id: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<crate::leaderboard::query::MemberPage, QueryError> {
        self.ask(tenant, id, |reply| LeaderboardMsg::Members {
            after,
            limit,
            reply,
        })
        .await?
    }

    /// Log a membership event and wait for the board to decide it (in log order).
    async fn change_membership(
        &self,
        tenant: &str,
        id: &str,
        user: &str,
        ty: &str,
        applied: u64,
    ) -> Result<(Decision, bool), QueryError> {
        let now = (self.inner.config.clock)();
        let event = member_event(ty, tenant, id, user, applied, now)?;
        let outcome = self.ingest(tenant, vec![event]).await?;
        let (seq, duplicate) = match outcome.first() {
            Some(Outcome::Accepted { seq }) => (*seq, false),
            Some(Outcome::Duplicate { seq }) => (*seq, true),
            None => {
                return Err(QueryError::Engine(EngineError::ActorUnavailable(
                    "no ingest outcome".into(),
                )))
            }
        };
        let user = user.to_owned();
        let d = self
            .ask(tenant, id, |reply| LeaderboardMsg::MemberDecision {
                seq,
                user,
                reply,
            })
            .await??;
        Ok((d, duplicate))
    }

    /// `user`'s membership of board `id`; a board without `entry.join_required` is invalid
    /// for joins and leaves.
    async fn tournament_status(
        &self,
        tenant: &str,
        id: &str,
        user: &str,
    ) -> Result<MemberStatus, QueryError> {
        let u = user.to_owned();
        let status = self
            .ask(tenant, id, |reply| LeaderboardMsg::Membership {
                user: u,
                reply,
            })
            .await?;
        if !status.join_required {
            return Err(QueryError::Invalid(
                "entry.join_required is not set on this leaderboard".into(),
            ));
        }
        Ok(status)
    }

    /// Join a tournament (`entry.join_required`). A full board is `QueryError::Conflict`.
    pub async fn join_member(
        &self,
        tenant: &str,
        id: &str,
        user: &str,
    ) -> Result<JoinOutcome, QueryError> {
        let status = self.tournament_status(tenant, id, user).await?;
        if status.member {
            return Ok(JoinOutcome::AlreadyMember);
        }
        match self
            .change_membership(tenant, id, user, MEMBER_JOINED, status.applied)
            .await?
        {
            (Decision::Joined, false) => Ok(JoinOutcome::Joined),
            (Decision::Joined | Decision::AlreadyMember, _) => Ok(JoinOutcome::AlreadyMember),
            _ => Err(QueryError::Conflict(format!(
                "leaderboard {id} is full (entry.max_members reached)"
            ))),
        }
    }

    /// Leave a tournament; `false` if the user was not a member.
    pub async fn leave_member(
        &self,
        tenant: &str,
        id: &str,
        user: &str,
    ) -> Result<bool, QueryError> {
        let status = self.tournament_status(tenant, id, user).await?;
        if !status.member {
            return Ok(false);
        }
        let (d, _) = self
            .change_membership(tenant, id, user, MEMBER_LEFT, status.applied)
            .await?;
        Ok(d == Decision::Left)
    }

    /// The last log position a board has applied.
    pub async fn board_applied(&self, tenant: &str, id: &str) -> Result<u64, QueryError> {
        self.ask(tenant, id, LeaderboardMsg::Applied).await
    }
}
