//! `AppHandle`: what handlers and the outside world use to reach a running app.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use pitaya_protocol::{HandshakeRequest, Message};
use pitaya_protos::Push;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

use super::cluster::ClusterLink;
use crate::cluster::ServerInfo;
use crate::config::Config;
use crate::groups::GroupStore;
use crate::handler::{Registry, RemoteRegistry};
use crate::module::{Module, Modules};
use crate::pipeline::Pipeline;
use crate::serialize::IntoBody;
use crate::session::{Pool, Session};
use crate::Error;

/// A handshake validator: refuses a client by returning an error.
pub type Validator = Arc<dyn Fn(&HandshakeRequest) -> Result<(), Error> + Send + Sync>;

pub(crate) struct Shared {
    pub(crate) info: Arc<ServerInfo>,
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    pub(crate) remotes: RemoteRegistry,
    pub(crate) modules: Modules,
    /// Why the app is stopping, when it stops on an error.
    pub(crate) fatal: std::sync::Mutex<Option<String>>,
    /// Cluster mode's transport and discovery; `None` standalone.
    pub(crate) cluster: Option<ClusterLink>,
    pub(crate) pipeline: Pipeline,
    pub(crate) pool: Arc<Pool>,
    pub(crate) groups: Arc<dyn GroupStore>,
    pub(crate) validators: BTreeMap<String, Validator>,
    pub(crate) handshake_ok: Bytes,
    pub(crate) handshake_refused: Bytes,
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when a drain is asked for (spec 14.6); shutdown follows it.
    pub(crate) drain: CancellationToken,
    /// Handler tasks in flight, waited for at shutdown.
    pub(crate) tasks: TaskTracker,
    /// Connection tasks, waited for at shutdown so close callbacks finish.
    pub(crate) conns: TaskTracker,
    /// Reporters, health state and their listeners.
    pub(crate) metrics: crate::metrics::AppMetrics,
}

/// A cheap handle on the app: sessions, groups, pushes, shutdown.
#[derive(Clone)]
pub struct AppHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppHandle")
            .field("server_type", &self.shared.info.server_type)
            .field("server_id", &self.shared.info.id)
            .finish_non_exhaustive()
    }
}

impl AppHandle {
    /// Returns this server's type, the first segment of its routes.
    pub fn server_type(&self) -> &str {
        &self.shared.info.server_type
    }

    /// Returns this server's id, a random UUID per process start unless set.
    pub fn server_id(&self) -> &str {
        &self.shared.info.id
    }

    /// Returns the config the app runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Returns the group store.
    pub fn groups(&self) -> &Arc<dyn GroupStore> {
        &self.shared.groups
    }

    /// Returns the live session with this id.
    pub fn session_by_id(&self, id: u64) -> Option<Session> {
        self.shared.pool.by_id(id)
    }

    /// Returns the live session bound to `uid`.
    pub fn session_by_uid(&self, uid: &str) -> Option<Session> {
        self.shared.pool.by_uid(uid)
    }

    /// Returns how many client sessions are open.
    pub fn session_count(&self) -> usize {
        self.shared.pool.len()
    }

    /// Returns how many sessions are bound to a uid.
    pub fn bound_session_count(&self) -> usize {
        self.shared.pool.bound_count()
    }

    /// Pushes `value` on `route` to every listed user; returns the uids it failed for.
    ///
    /// The body is encoded once for all of them. `frontend_type` names the server type
    /// holding the users' connections; empty means this server, which must then be a
    /// frontend. Users connected here get the push directly; in cluster mode the others
    /// get it through the frontends of `frontend_type` that hold them, with no delivery
    /// confirmation (spec 6.7). In standalone mode users not connected here cannot be
    /// reached and come back in the failed list.
    ///
    /// This never waits on a local recipient: one whose write queue is full
    /// (`pitaya.buffer.agent.messages` packets not yet written) is closed as too slow
    /// and listed as failed, so one stalled client cannot hold up a whole room.
    ///
    /// # Errors
    ///
    /// When the value cannot be encoded, or a backend names no frontend type.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped half way, some users got the push and others not.
    pub async fn push_to_users(
        &self,
        route: &str,
        value: impl IntoBody,
        uids: &[String],
        frontend_type: &str,
    ) -> Result<Vec<String>, Error> {
        let wire = self.shared.pool.wire();
        let body = value.into_body(&*wire.serializer)?;
        let frontend = self.shared.info.frontend;
        if frontend_type.is_empty() && !frontend {
            return Err(Error::internal(
                "a backend must name the frontend type to push to",
            ));
        }
        let local = frontend && (frontend_type.is_empty() || frontend_type == self.server_type());
        let frontend_type = if frontend_type.is_empty() {
            self.server_type()
        } else {
            frontend_type
        };
        let packet = wire
            .data_packet(&Message::push(route, body.clone()))
            .map_err(|e| Error::internal(e.to_string()))?;
        let mut failed = Vec::new();
        let mut remote = Vec::new();
        for uid in uids {
            if let Some(session) = local.then(|| self.shared.pool.by_uid(uid)).flatten() {
                if session.send_packet_nowait(packet.clone()).is_err() {
                    failed.push(uid.clone());
                }
                continue;
            }
            remote.push(Push {
                route: route.to_owned(),
                uid: uid.clone(),
                data: body.clone(),
            });
        }
        if remote.is_empty() {
            return Ok(failed);
        }
        match self.cluster_link() {
            Ok(link) => failed.extend(link.publish_pushes(frontend_type, remote).await),
            Err(_) => failed.extend(remote.into_iter().map(|p| p.uid)),
        }
        Ok(failed)
    }

    /// Pushes `value` on `route` to every member of group `group`; returns failed uids.
    ///
    /// # Errors
    ///
    /// When the group does not exist or the value cannot be encoded.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is pushed before the member list is read.
    pub async fn group_broadcast(
        &self,
        frontend_type: &str,
        group: &str,
        route: &str,
        value: impl IntoBody,
    ) -> Result<Vec<String>, Error> {
        let members = self.shared.groups.members(group).await?;
        self.push_to_users(route, value, &members, frontend_type)
            .await
    }

    /// Kicks every listed user; returns the uids it failed for.
    ///
    /// Users connected here are kicked directly; in cluster mode the others through the
    /// frontends of `frontend_type` (empty: this server's type), with no confirmation.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn kick_users(&self, uids: &[String], frontend_type: &str) -> Vec<String> {
        let frontend_type = if frontend_type.is_empty() {
            self.server_type()
        } else {
            frontend_type
        };
        let kicks = uids.iter().map(|uid| {
            let session = self.shared.pool.by_uid(uid);
            async move {
                let kicked = match session {
                    Some(s) => s.kick().await.is_ok(),
                    None => match self.cluster_link() {
                        Ok(link) => link.publish_kick(frontend_type, uid).await.is_ok(),
                        Err(_) => false,
                    },
                };
                (!kicked).then(|| uid.clone())
            }
        });
        join_all(kicks).await.into_iter().flatten().collect()
    }

    /// Returns the module registered as `name`, if it is an `M`.
    pub fn module<M: Module>(&self, name: &str) -> Option<Arc<M>> {
        self.shared.modules.get(name)
    }

    pub(crate) fn remotes(&self) -> &RemoteRegistry {
        &self.shared.remotes
    }

    /// Starts a graceful shutdown; `App::run` returns once it is done.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Starts a shutdown that first drains the sessions, as SIGTERM does.
    ///
    /// With `pitaya.session.drain.enabled`, the app closes its acceptors at once (new
    /// clients are refused), answers `/readyz` with 503, and keeps serving the clients
    /// already connected until none is left or `pitaya.session.drain.timeout` passes;
    /// then it shuts down as [`shutdown`](Self::shutdown) does, closing the clients
    /// still there. [`shutdown`](Self::shutdown) during the drain cuts it short.
    /// Without draining enabled this is [`shutdown`](Self::shutdown).
    pub fn drain(&self) {
        if self.shared.config.session.drain.enabled {
            self.shared.drain.cancel();
        } else {
            self.shutdown();
        }
    }

    /// Returns whether a drain was asked for and the app has not shut down yet.
    pub fn is_draining(&self) -> bool {
        self.shared.drain.is_cancelled() && !self.is_shutting_down()
    }

    /// Starts a shutdown after which `App::run` returns an error with `reason`.
    pub(crate) fn shutdown_on_error(&self, reason: &str) {
        let mut fatal = self.shared.fatal.lock().unwrap_or_else(|p| p.into_inner());
        fatal.get_or_insert_with(|| reason.to_owned());
        drop(fatal);
        self.shutdown();
    }

    /// Returns whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Completes once shutdown has started.
    // A plain function rather than an `async fn`: every connection keeps this future in
    // its read loop, and the wrapper would add to each.
    pub(crate) fn shutting_down(&self) -> WaitForCancellationFuture<'_> {
        self.shared.shutdown.cancelled()
    }

    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.shared.pool
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    pub(crate) fn pipeline(&self) -> &Pipeline {
        &self.shared.pipeline
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.shared.tasks
    }

    pub(crate) fn handshake_reply(&self, accepted: bool) -> Bytes {
        if accepted {
            self.shared.handshake_ok.clone()
        } else {
            self.shared.handshake_refused.clone()
        }
    }

    /// Runs every validator; the first error refuses the handshake.
    pub(crate) fn validate_handshake(&self, req: &HandshakeRequest) -> Result<(), String> {
        for (name, validator) in &self.shared.validators {
            validator(req).map_err(|e| format!("validator {name}: {e}"))?;
        }
        Ok(())
    }
}
