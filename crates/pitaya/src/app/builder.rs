//! `Builder`: assembles an [`App`] from config, acceptors, handlers and callbacks.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use pitaya_protocol::{
    HandshakeRequest, HandshakeResponse, HandshakeResponseSys, Packet, PacketType, RouteDict,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cluster::ClusterLink;
use super::handle::{Shared, Validator};
use super::{App, AppHandle};
use crate::acceptor::{self, Acceptor};
use crate::cluster::{DiscoveryBackend, RouteRequest, Router, RpcTransport, ServerInfo};
use crate::config::Config;
use crate::groups::{GroupStore, MemoryGroupStore};
use crate::handler::{Component, RegisterError, Registry, Remote, RemoteRegistry};
use crate::metrics::{AppMetrics, Reporter};
use crate::module::{self, Module, Modules};
use crate::pipeline::Pipeline;
use crate::serialize::{self, Serializer};
use crate::session::{Callbacks, Pool, Session, Wire};
use crate::{Context, Error};

/// Why an app could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A component could not be registered.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// `pitaya.serializertype` names a serializer that is not compiled in.
    #[error("unknown serializer type {0} (1 = json, 2 = protobuf)")]
    UnknownSerializer(u16),
    /// The route dictionary is invalid.
    #[error("invalid route dictionary: {0}")]
    Dictionary(#[from] pitaya_protocol::DictError),
    /// A frontend needs at least one acceptor.
    #[error("a frontend server needs at least one acceptor")]
    NoAcceptor,
    /// The config holds a value the server cannot run with.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Two handshake validators share a name.
    #[error("duplicate handshake validator: {0}")]
    DuplicateValidator(String),
    /// Two modules share a name.
    #[error("duplicate module name: {0}")]
    DuplicateModule(String),
    /// A backend server needs cluster mode: it only receives RPCs.
    #[error("a backend server needs cluster mode (Builder::cluster)")]
    BackendNeedsCluster,
    /// A backend server takes no client connections.
    #[error("a backend server cannot have acceptors")]
    BackendWithAcceptor,
    /// The cluster RPC transport could not be set up, such as its port bound.
    #[error("cluster rpc could not be prepared: {0}")]
    Rpc(#[from] crate::cluster::RpcError),
    /// A metrics reporter or the health endpoint could not be set up.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// Builds an [`App`]; every method takes and returns the builder.
pub struct Builder {
    server_type: String,
    config: Config,
    acceptors: Vec<Arc<dyn Acceptor>>,
    registry: Registry,
    errors: Vec<BuildError>,
    pipeline: Pipeline,
    callbacks: Callbacks,
    validators: BTreeMap<String, Validator>,
    serializer: Option<Arc<dyn Serializer>>,
    groups: Option<Arc<dyn GroupStore>>,
    frontend: bool,
    server_id: Option<String>,
    metadata: HashMap<String, String>,
    remotes: RemoteRegistry,
    cluster: Option<(Arc<dyn RpcTransport>, Arc<dyn DiscoveryBackend>)>,
    routers: HashMap<String, Router>,
    modules: Modules,
    reporters: Vec<Arc<dyn Reporter>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("server_type", &self.server_type)
            .field("acceptors", &self.acceptors)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Builder {
    pub(super) fn new(server_type: impl Into<String>) -> Self {
        Builder {
            server_type: server_type.into(),
            config: Config::default(),
            acceptors: Vec::new(),
            registry: Registry::default(),
            errors: Vec::new(),
            pipeline: Pipeline::default(),
            callbacks: Callbacks::default(),
            validators: BTreeMap::new(),
            serializer: None,
            groups: None,
            frontend: true,
            server_id: None,
            metadata: HashMap::new(),
            remotes: RemoteRegistry::default(),
            cluster: None,
            routers: HashMap::new(),
            modules: Modules::default(),
            reporters: Vec::new(),
        }
    }

    /// Returns the builder with a module started after those registered before it
    /// and stopped before them.
    pub fn module(self, name: impl Into<String>, module: impl Module) -> Self {
        self.add_module(name.into(), module, false)
    }

    /// Returns the builder with a module started before all others and stopped last.
    pub fn module_first(self, name: impl Into<String>, module: impl Module) -> Self {
        self.add_module(name.into(), module, true)
    }

    fn add_module(mut self, name: String, module: impl Module, first: bool) -> Self {
        if !self
            .modules
            .add(module::Entry::new(name.clone(), module), first)
        {
            self.errors.push(BuildError::DuplicateModule(name));
        }
        self
    }

    /// Returns the builder of a backend: a cluster server without acceptors that only
    /// receives RPCs (forwarded client messages and remote calls).
    pub fn backend(mut self) -> Self {
        self.frontend = false;
        self
    }

    /// Returns the builder with this server id instead of a random UUID.
    pub fn server_id(mut self, id: impl Into<String>) -> Self {
        self.server_id = Some(id.into());
        self
    }

    /// Returns the builder with a metadata entry published in service discovery.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Returns the builder in cluster mode: RPC over `transport`, servers found through
    /// `discovery`. Both start when the app runs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[cfg(all(feature = "nats", feature = "etcd"))]
    /// # fn f() -> Result<(), pitaya::BuildError> {
    /// use pitaya::cluster::{EtcdSd, NatsRpc};
    /// use pitaya::App;
    ///
    /// let room = App::builder("room").backend().cluster(NatsRpc, EtcdSd).build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn cluster(
        mut self,
        transport: impl RpcTransport,
        discovery: impl DiscoveryBackend,
    ) -> Self {
        self.cluster = Some((Arc::new(transport), Arc::new(discovery)));
        self
    }

    /// Returns the builder with a router choosing the server of `server_type` that
    /// forwarded client messages go to (default: a random one).
    pub fn router<F>(mut self, server_type: impl Into<String>, f: F) -> Self
    where
        F: Fn(&RouteRequest<'_>, &[Arc<ServerInfo>]) -> Option<Arc<ServerInfo>>
            + Send
            + Sync
            + 'static,
    {
        self.routers.insert(server_type.into(), Arc::new(f));
        self
    }

    /// Returns the builder with a remote service other servers call by user RPC.
    pub fn register_remote(mut self, remote: Remote) -> Self {
        if let Err(e) = self.remotes.register(remote) {
            self.errors.push(e.into());
        }
        self
    }

    /// Returns the builder with one more metrics reporter, called after the built-in
    /// ones that `pitaya.metrics.*` enables.
    pub fn reporter(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.reporters.push(reporter);
        self
    }

    /// Returns the builder with this config (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Returns the builder with one more acceptor (a bound listener).
    pub fn acceptor(mut self, acceptor: impl Acceptor) -> Self {
        self.acceptors.push(Arc::new(acceptor));
        self
    }

    /// Returns the builder with a component's handlers registered.
    pub fn register(mut self, component: Component) -> Self {
        if let Err(e) = self.registry.register(component) {
            self.errors.push(e.into());
        }
        self
    }

    /// Returns the builder with this serializer instead of the configured one.
    pub fn serializer(mut self, serializer: Arc<dyn Serializer>) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// Returns the builder with this group store (default: in memory).
    pub fn groups(mut self, groups: Arc<dyn GroupStore>) -> Self {
        self.groups = Some(groups);
        self
    }

    /// Returns the builder with a hook run before every handler.
    pub fn before_handler<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, Error>> + Send + 'static,
    {
        self.pipeline.push_before(f);
        self
    }

    /// Returns the builder with a hook run after every handler.
    pub fn after_handler<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Context, Result<Bytes, Error>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, Error>> + Send + 'static,
    {
        self.pipeline.push_after(f);
        self
    }

    /// Returns the builder with a callback run on every bind, before it is stored.
    ///
    /// An error refuses the bind.
    pub fn on_session_bind<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(AppHandle, Session) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.callbacks
            .on_bind
            .push(Arc::new(move |a, s| Box::pin(f(a, s))));
        self
    }

    /// Returns the builder with a callback run after every bind is stored.
    ///
    /// An error undoes the bind.
    pub fn after_session_bind<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(AppHandle, Session) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.callbacks
            .after_bind
            .push(Arc::new(move |a, s| Box::pin(f(a, s))));
        self
    }

    /// Returns the builder with a callback run once for every session that closes.
    pub fn on_session_close<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(AppHandle, Session) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks
            .on_close
            .push(Arc::new(move |a, s| Box::pin(f(a, s))));
        self
    }

    /// Returns the builder with a named handshake validator.
    pub fn handshake_validator<F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(&HandshakeRequest) -> Result<(), Error> + Send + Sync + 'static,
    {
        match self.validators.entry(name.into()) {
            Entry::Occupied(e) => self
                .errors
                .push(BuildError::DuplicateValidator(e.key().clone())),
            Entry::Vacant(e) => {
                e.insert(Arc::new(f));
            }
        }
        self
    }

    /// Returns the app, ready to run.
    ///
    /// # Errors
    ///
    /// Any registration error collected on the way, an unknown serializer, a bad route
    /// dictionary, no acceptor, or a cluster transport that cannot be prepared (such as
    /// a gRPC port already in use).
    pub fn build(mut self) -> Result<App, BuildError> {
        if let Some(e) = self.errors.drain(..).next() {
            return Err(e);
        }
        match (self.frontend, self.acceptors.is_empty()) {
            (true, true) => return Err(BuildError::NoAcceptor),
            (false, false) => return Err(BuildError::BackendWithAcceptor),
            _ => {}
        }
        if !self.frontend && self.cluster.is_none() {
            return Err(BuildError::BackendNeedsCluster);
        }
        let cfg = self.config;
        cfg.validate()?;
        if cfg.conn.rate_limiting.enabled {
            let limits = &cfg.conn.rate_limiting;
            self.acceptors = self
                .acceptors
                .into_iter()
                .map(|a| acceptor::rate_limited(a, limits))
                .collect();
        }
        if cfg.acceptor.proxy_protocol {
            for acceptor in &self.acceptors {
                if !acceptor.enable_proxy_protocol() {
                    let transport = acceptor.transport();
                    tracing::debug!(transport, "PROXY protocol does not apply to this acceptor");
                }
            }
        }
        let serializer = match self.serializer {
            Some(s) => s,
            None => serialize::by_type(cfg.serializer_type)
                .ok_or(BuildError::UnknownSerializer(cfg.serializer_type))?,
        };
        let dict = RouteDict::new(cfg.handler.dictionary.clone())?;

        let sys = HandshakeResponseSys {
            dict: dict.to_map(),
            heartbeat: cfg.heartbeat.interval,
            serializer: serializer.name().to_owned(),
        };
        let compress = cfg.handler.messages.compression;
        let handshake_ok = handshake_packet(HandshakeResponse::accepted(sys.clone()), compress);
        let handshake_refused = handshake_packet(HandshakeResponse::rejected(sys), compress);

        let wire = Arc::new(Wire {
            dict,
            compress,
            serializer,
            send_timeout: cfg.buffer.agent.conn_timeout,
        });
        let metrics = AppMetrics::build(&cfg, &self.server_type, self.reporters)?;
        let memory_groups = Arc::new(MemoryGroupStore::new());
        let groups = self.groups.unwrap_or_else(|| memory_groups.clone());
        let callbacks = self.callbacks;
        let mut info = ServerInfo::new(self.server_type, self.frontend);
        if let Some(id) = self.server_id {
            info = info.with_id(id);
        }
        info.metadata = self.metadata;
        if let Some((transport, _)) = &self.cluster {
            transport.prepare(&cfg, &mut info)?;
        }
        let routers = self.routers;
        let cluster = self.cluster.map(|(transport, discovery)| {
            let timeout = transport.request_timeout(&cfg);
            ClusterLink::new(transport, discovery, routers, timeout)
        });
        let shared = Arc::new_cyclic(|app| Shared {
            info: Arc::new(info),
            pool: Pool::new(wire, callbacks, app.clone()),
            config: cfg,
            registry: self.registry,
            remotes: self.remotes,
            modules: self.modules,
            fatal: std::sync::Mutex::new(None),
            cluster,
            pipeline: self.pipeline,
            groups,
            validators: self.validators,
            handshake_ok,
            handshake_refused,
            shutdown: CancellationToken::new(),
            drain: CancellationToken::new(),
            tasks: TaskTracker::new(),
            conns: TaskTracker::new(),
            metrics,
        });
        Ok(App {
            handle: AppHandle { shared },
            acceptors: self.acceptors,
            memory_groups,
        })
    }
}

fn handshake_packet(resp: HandshakeResponse, compress: bool) -> Bytes {
    // A handshake body is a few hundred bytes plus the dictionary, far below the
    // 16 MiB packet limit; a dictionary that large would need 500k routes.
    Packet::new(PacketType::Handshake, resp.encode(compress))
        .to_bytes()
        .unwrap_or_default()
}
