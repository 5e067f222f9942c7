//! Pipelines: hooks that run before and after every handler.
//!
//! Hooks see the request [`Context`] and the raw body, so one hook serves every
//! handler whatever its argument type. A before hook may rewrite the body or stop the
//! request with an error (the client gets that error); after hooks all run, in order,
//! each free to replace the reply or the error.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::{Context, Error};

/// A hook run before the handler.
pub type BeforeHook =
    Arc<dyn Fn(Context, Bytes) -> BoxFuture<'static, Result<Bytes, Error>> + Send + Sync>;

/// A hook run after the handler, with its reply body or error.
pub type AfterHook = Arc<
    dyn Fn(Context, Result<Bytes, Error>) -> BoxFuture<'static, Result<Bytes, Error>> + Send + Sync,
>;

/// The before and after chains of handler hooks.
#[derive(Clone, Default)]
pub struct Pipeline {
    before: Vec<BeforeHook>,
    after: Vec<AfterHook>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("before", &self.before.len())
            .field("after", &self.after.len())
            .finish()
    }
}

impl Pipeline {
    /// Appends a before hook.
    pub fn push_before<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, Error>> + Send + 'static,
    {
        self.before
            .push(Arc::new(move |ctx, body| Box::pin(f(ctx, body))));
        self
    }

    /// Appends an after hook.
    pub fn push_after<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Context, Result<Bytes, Error>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, Error>> + Send + 'static,
    {
        self.after
            .push(Arc::new(move |ctx, res| Box::pin(f(ctx, res))));
        self
    }

    /// Removes every hook.
    pub fn clear(&mut self) {
        self.before.clear();
        self.after.clear();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }

    pub(crate) async fn run_before(&self, ctx: &Context, mut body: Bytes) -> Result<Bytes, Error> {
        for hook in &self.before {
            body = hook(ctx.clone(), body).await?;
        }
        Ok(body)
    }

    pub(crate) async fn run_after(
        &self,
        ctx: &Context,
        mut res: Result<Bytes, Error>,
    ) -> Result<Bytes, Error> {
        for hook in &self.after {
            res = hook(ctx.clone(), res).await;
        }
        res
    }
}
