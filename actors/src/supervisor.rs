//! `Supervisor`: spawns one linked `TenantActor` per tenant and one linked
//! `LeaderboardActor` per leaderboard, and restarts any that fails — a tenant from the log
//! (position + dedupe window), a board from its checkpoint plus the rest of the log.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::leaderboard::actor::{BoardArgs, LeaderboardActor, LeaderboardMsg};
use crate::tenant::{TenantActor, TenantArgs, TenantMsg};

/// Where the edge finds each tenant's current actor (replaced on restart).
pub type Routes = Arc<RwLock<HashMap<String, ActorRef<TenantMsg>>>>;
/// Each board's current actor, by (tenant, board id).
pub type BoardRoutes = Arc<RwLock<HashMap<(String, String), ActorRef<LeaderboardMsg>>>>;

#[derive(Debug)]
pub struct Supervisor;

pub struct SupervisorArgs {
    pub routes: Routes,
    pub boards: BoardRoutes,
    pub tenants: Vec<TenantArgs>,
}

/// How to respawn a child.
enum Child {
    Tenant(TenantArgs),
    Board(BoardArgs),
}

pub struct SupervisorState {
    routes: Routes,
    boards: BoardRoutes,
    /// Arguments to respawn each child with, by the actor id of its current incarnation.
    children: HashMap<ActorId, Child>,
}

/// Messages to the supervisor.
pub enum SupervisorMsg {
    /// Start a tenant actor (no-op if the tenant already runs).
    AddTenant(TenantArgs, RpcReplyPort<()>),
    /// Start (or replace) a board's actor.
    StartBoard(BoardArgs, RpcReplyPort<Result<(), String>>),
    /// Stop a board's actor and wait until it has stopped.
    StopBoard(String, String, RpcReplyPort<()>),
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            routes: args.routes,
            boards: args.boards,
            children: HashMap::new(),
        };
        for t in args.tenants {
            spawn_tenant(&myself, &mut state, t).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::AddTenant(args, reply) => {
                let exists = state
                    .routes
                    .read()
                    .expect("routes")
                    .contains_key(&args.tenant);
                if !exists {
                    spawn_tenant(&myself, state, args).await?;
                }
                let _ = reply.send(());
            }
            SupervisorMsg::StartBoard(args, reply) => {
                stop_board(state, &args.tenant, &args.def.id).await;
                let result = spawn_board(&myself, state, args)
                    .await
                    .map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
            SupervisorMsg::StopBoard(tenant, id, reply) => {
                stop_board(state, &tenant, &id).await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, err) = event else {
            return Ok(());
        };
        match state.children.remove(&cell.get_id()) {
            Some(Child::Tenant(args)) => {
                tracing::error!(tenant = %args.tenant, error = %err, "tenant actor failed; restarting from the log");
                metrics::counter!("phoenix_actor_restarts_total", "actor" => "tenant").increment(1);
                let tenant = args.tenant.clone();
                if let Err(e) = spawn_tenant(&myself, state, args).await {
                    // Leave the tenant unrouted: its requests get 503 until the next start.
                    tracing::error!(tenant = %tenant, error = %e, "tenant actor could not restart");
                    state.routes.write().expect("routes").remove(&tenant);
                }
            }
            Some(Child::Board(args)) => {
                tracing::error!(tenant = %args.tenant, board = %args.def.id, error = %err, "leaderboard actor failed; restarting from its checkpoint");
                metrics::counter!("phoenix_actor_restarts_total", "actor" => "leaderboard")
                    .increment(1);
                let key = (args.tenant.clone(), args.def.id.clone());
                if let Err(e) = spawn_board(&myself, state, args).await {
                    tracing::error!(board = %key.1, error = %e, "leaderboard actor could not restart");
                    state.boards.write().expect("boards").remove(&key);
                }
            }
            None => {}
        }
        Ok(())
    }
}

async fn spawn_tenant(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    args: TenantArgs,
) -> Result<(), ActorProcessingErr> {
    let tenant = args.tenant.clone();
    let (actor, _) =
        Actor::spawn_linked(None, TenantActor, args.clone(), myself.get_cell()).await?;
    state.children.insert(actor.get_id(), Child::Tenant(args));
    state.routes.write().expect("routes").insert(tenant, actor);
    Ok(())
}

async fn spawn_board(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    args: BoardArgs,
) -> Result<(), ActorProcessingErr> {
    let key = (args.tenant.clone(), args.def.id.clone());
    let (actor, _) =
        Actor::spawn_linked(None, LeaderboardActor, args.clone(), myself.get_cell()).await?;
    state.children.insert(actor.get_id(), Child::Board(args));
    state.boards.write().expect("boards").insert(key, actor);
    Ok(())
}

async fn stop_board(state: &mut SupervisorState, tenant: &str, id: &str) {
    let old = state
        .boards
        .write()
        .expect("boards")
        .remove(&(tenant.to_owned(), id.to_owned()));
    if let Some(actor) = old {
        state.children.remove(&actor.get_id());
        let _ = actor
            .stop_and_wait(
                Some("definition replaced or deleted".into()),
                Some(Duration::from_secs(10)),
            )
            .await;
    }
}
