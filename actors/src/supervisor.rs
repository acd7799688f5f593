//! `Supervisor`: spawns one linked `TenantActor` per tenant and restarts any that fails,
//! rebuilding it from the log (its `pre_start` recovers position and dedupe window).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::tenant::{TenantActor, TenantArgs, TenantMsg};

/// Where the gateway finds each tenant's current actor (replaced on restart).
pub type Routes = Arc<RwLock<HashMap<String, ActorRef<TenantMsg>>>>;

#[derive(Debug)]
pub struct Supervisor;

pub struct SupervisorArgs {
    pub routes: Routes,
    pub tenants: Vec<TenantArgs>,
}

pub struct SupervisorState {
    routes: Routes,
    /// Arguments to respawn each tenant with, by the actor id of its current incarnation.
    children: HashMap<ActorId, TenantArgs>,
}

/// Messages to the supervisor.
pub enum SupervisorMsg {
    /// Start a tenant actor (no-op if the tenant already runs).
    AddTenant(TenantArgs, RpcReplyPort<()>),
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
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, err) = event {
            if let Some(args) = state.children.remove(&cell.get_id()) {
                tracing::error!(tenant = %args.tenant, error = %err, "tenant actor failed; restarting from the log");
                metrics::counter!("phoenix_actor_restarts_total", "actor" => "tenant").increment(1);
                let tenant = args.tenant.clone();
                if let Err(e) = spawn_tenant(&myself, state, args).await {
                    // Leave the tenant unrouted: its requests get 503 until the next start.
                    tracing::error!(tenant = %tenant, error = %e, "tenant actor could not restart");
                    state.routes.write().expect("routes").remove(&tenant);
                }
            }
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
    state.children.insert(actor.get_id(), args);
    state.routes.write().expect("routes").insert(tenant, actor);
    Ok(())
}
