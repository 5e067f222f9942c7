//! Modules: parts of an app with a lifecycle of their own (spec 14.5).
//!
//! A [`Module`] is registered on the builder under a unique name. When the app runs,
//! every module's [`init`](Module::init) runs in registration order (an error stops the
//! start), then every [`after_init`](Module::after_init). At shutdown, once the sessions
//! are closed, [`before_shutdown`](Module::before_shutdown) runs on all of them in
//! reverse order, then [`shutdown`](Module::shutdown) in reverse order. In cluster mode
//! modules start after the RPC transport and before service discovery, so a server is
//! published only once its modules are up.
//!
//! Built in: [`BinaryModule`], a child process run beside the server.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::cluster::BoxError;
use crate::AppHandle;

mod binary;

pub use binary::BinaryModule;

/// A part of the app started and stopped with it.
///
/// Every method has a default that does nothing.
#[async_trait]
pub trait Module: Send + Sync + 'static {
    /// Starts the module; an error stops the app from starting.
    ///
    /// # Errors
    ///
    /// Whatever keeps the module from working.
    async fn init(&self, _app: &AppHandle) -> Result<(), BoxError> {
        Ok(())
    }

    /// Runs once every module is initialised.
    async fn after_init(&self, _app: &AppHandle) {}

    /// Runs at shutdown, before any module is shut down.
    async fn before_shutdown(&self, _app: &AppHandle) {}

    /// Stops the module; an error is logged.
    ///
    /// # Errors
    ///
    /// Whatever went wrong while stopping.
    async fn shutdown(&self, _app: &AppHandle) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A module as the app keeps it: its name, its lifecycle, and itself for lookups.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) module: Arc<dyn Module>,
    any: Arc<dyn Any + Send + Sync>,
}

impl Entry {
    pub(crate) fn new<M: Module>(name: String, module: M) -> Entry {
        let module = Arc::new(module);
        Entry {
            name,
            module: module.clone(),
            any: module,
        }
    }
}

/// The app's modules, in start order.
#[derive(Default)]
pub(crate) struct Modules {
    entries: Vec<Entry>,
    /// How many modules' `init` succeeded: only those are stopped.
    started: AtomicUsize,
}

impl std::fmt::Debug for Modules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.name))
            .finish()
    }
}

/// Why a module could not start.
#[derive(Debug, thiserror::Error)]
#[error("module {name} could not start: {source}")]
pub struct ModuleError {
    /// The module's name.
    pub name: String,
    /// What its `init` returned.
    #[source]
    pub source: BoxError,
}

impl Modules {
    /// Adds `entry` last, or first; false if the name is taken.
    pub(crate) fn add(&mut self, entry: Entry, first: bool) -> bool {
        if self.entries.iter().any(|e| e.name == entry.name) {
            return false;
        }
        if first {
            self.entries.insert(0, entry);
        } else {
            self.entries.push(entry);
        }
        true
    }

    /// Returns the module named `name` if it is a `M`.
    pub(crate) fn get<M: Module>(&self, name: &str) -> Option<Arc<M>> {
        let entry = self.entries.iter().find(|e| e.name == name)?;
        entry.any.clone().downcast::<M>().ok()
    }

    /// Runs every `init`, then every `after_init`.
    pub(crate) async fn start(&self, app: &AppHandle) -> Result<(), ModuleError> {
        for e in &self.entries {
            e.module.init(app).await.map_err(|source| ModuleError {
                name: e.name.clone(),
                source,
            })?;
            self.started.fetch_add(1, Ordering::SeqCst);
            tracing::info!(module = %e.name, "module started");
        }
        for e in &self.entries {
            e.module.after_init(app).await;
        }
        Ok(())
    }

    /// Runs every `before_shutdown`, then every `shutdown`, in reverse order, on the
    /// modules that started.
    pub(crate) async fn stop(&self, app: &AppHandle) {
        let started = &self.entries[..self.started.swap(0, Ordering::SeqCst)];
        for e in started.iter().rev() {
            e.module.before_shutdown(app).await;
        }
        for e in started.iter().rev() {
            match e.module.shutdown(app).await {
                Ok(()) => tracing::info!(module = %e.name, "module stopped"),
                Err(err) => tracing::warn!(module = %e.name, error = %err, "module stop failed"),
            }
        }
    }
}
