//! Remotes: methods other servers call by user RPC (spec 6.5).
//!
//! Arguments and replies of remotes are protobuf messages whatever the client
//! serializer, as in Pitaya, so servers written in other languages can call them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use super::{valid_name, RegisterError};
use crate::route::Route;
use crate::{AppHandle, Error};

type BoxRemote =
    Arc<dyn Fn(RemoteContext, Bytes) -> BoxFuture<'static, Result<Bytes, Error>> + Send + Sync>;

/// What a remote method knows about the call it serves.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct RemoteContext {
    inner: Arc<Inner>,
}

struct Inner {
    app: AppHandle,
    route: Route,
    metadata: Map<String, Value>,
}

impl std::fmt::Debug for RemoteContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteContext")
            .field("route", &self.inner.route.to_string())
            .field("caller", &self.caller_id())
            .finish()
    }
}

impl RemoteContext {
    pub(crate) fn new(app: AppHandle, route: Route, metadata: Map<String, Value>) -> Self {
        RemoteContext {
            inner: Arc::new(Inner {
                app,
                route,
                metadata,
            }),
        }
    }

    /// Returns the app serving the call.
    pub fn app(&self) -> &AppHandle {
        &self.inner.app
    }

    /// Returns the route being served.
    pub fn route(&self) -> &Route {
        &self.inner.route
    }

    /// Returns the id of the calling server (`peer.id`), when it sent one.
    pub fn caller_id(&self) -> Option<&str> {
        self.inner
            .metadata
            .get(crate::cluster::rpc::PEER_ID)?
            .as_str()
    }

    /// Returns the call's propagated context (spec 6.3): `peer.id`, `request.id`,
    /// values the caller added.
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.inner.metadata
    }
}

/// A named group of remote methods, reached as `serverType.remote.method`.
///
/// # Examples
///
/// ```
/// use pitaya::handler::{Remote, RemoteContext};
/// use pitaya::cluster::rpc::protos::KickAnswer;
/// use pitaya::Error;
///
/// let stats = Remote::new("stats").method("alive", |_ctx: RemoteContext, _: KickAnswer| async {
///     Ok::<_, Error>(KickAnswer { kicked: true })
/// });
/// assert_eq!(stats.name(), "stats");
/// ```
pub struct Remote {
    name: String,
    methods: Vec<(String, BoxRemote)>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let methods: Vec<&str> = self.methods.iter().map(|(m, _)| m.as_str()).collect();
        f.debug_struct("Remote")
            .field("name", &self.name)
            .field("methods", &methods)
            .finish()
    }
}

impl Remote {
    /// Returns an empty remote service named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Remote {
            name: name.into(),
            methods: Vec::new(),
        }
    }

    /// Returns the service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the service with a method taking and returning protobuf messages.
    ///
    /// An argument that does not decode answers `PIT-400`.
    pub fn method<A, R, F, Fut>(self, method: impl Into<String>, f: F) -> Self
    where
        A: prost::Message + Default + 'static,
        R: prost::Message + 'static,
        F: Fn(RemoteContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, Error>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.raw_method(method, move |ctx, body: Bytes| {
            let f = f.clone();
            async move {
                let arg = A::decode(body).map_err(|e| {
                    Error::bad_request(format!("remote argument is not the expected message: {e}"))
                })?;
                let reply = f(ctx, arg).await?;
                Ok(Bytes::from(reply.encode_to_vec()))
            }
        })
    }

    /// Returns the service with a method that sees the raw argument bytes.
    pub fn raw_method<F, Fut>(mut self, method: impl Into<String>, f: F) -> Self
    where
        F: Fn(RemoteContext, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, Error>> + Send + 'static,
    {
        let call: BoxRemote = Arc::new(move |ctx, body| Box::pin(f(ctx, body)));
        self.methods.push((method.into(), call));
        self
    }
}

/// Every remote method of the app, by `service.method`.
#[derive(Clone, Default)]
pub(crate) struct RemoteRegistry {
    methods: HashMap<String, BoxRemote>,
    services: Vec<String>,
}

impl std::fmt::Debug for RemoteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRegistry")
            .field("routes", &self.routes())
            .finish()
    }
}

impl RemoteRegistry {
    pub(crate) fn register(&mut self, remote: Remote) -> Result<(), RegisterError> {
        if !valid_name(&remote.name) {
            return Err(RegisterError::InvalidName(remote.name));
        }
        // `sys` is where frontends answer the session calls of backends (spec 6.6).
        if remote.name == "sys" || self.services.contains(&remote.name) {
            return Err(RegisterError::DuplicateComponent(remote.name));
        }
        if let Some((m, _)) = remote.methods.iter().find(|(m, _)| !valid_name(m)) {
            return Err(RegisterError::InvalidName(m.clone()));
        }
        for (method, call) in remote.methods {
            self.methods
                .insert(format!("{}.{}", remote.name, method), call);
        }
        self.services.push(remote.name);
        Ok(())
    }

    /// Returns the result of calling remote `route` with `body`; `PIT-404` if unknown.
    pub(crate) async fn call(&self, ctx: RemoteContext, body: Bytes) -> Result<Bytes, Error> {
        let key = ctx.route().short();
        let Some(call) = self.methods.get(&key).cloned() else {
            return Err(Error::not_found(format!(
                "pitaya/remote: {} not found",
                ctx.route()
            )));
        };
        call(ctx, body).await
    }

    /// Returns whether a remote answers `short_route` (`service.method`).
    pub(crate) fn contains(&self, short_route: &str) -> bool {
        self.methods.contains_key(short_route)
    }

    pub(crate) fn routes(&self) -> Vec<String> {
        let mut routes: Vec<String> = self.methods.keys().cloned().collect();
        routes.sort();
        routes
    }
}
