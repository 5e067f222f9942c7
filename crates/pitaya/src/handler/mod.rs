//! Handlers: the methods clients call, grouped in components.
//!
//! A [`Component`] is a named service; each method is a request handler (answers with
//! a reply or an error) or a notify handler (answers nothing). Clients reach them as
//! `serverType.component.method`. Arguments and replies are typed: the body is decoded
//! with the session's serializer through [`FromBody`], and the reply encoded through
//! [`IntoBody`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::serialize::{FromBody, IntoBody};
use crate::Error;

mod context;
pub(crate) mod dispatch;
mod remote;

pub use context::Context;
pub(crate) use remote::RemoteRegistry;
pub use remote::{Remote, RemoteContext};

type BoxHandler =
    Arc<dyn Fn(Context, Bytes) -> BoxFuture<'static, Result<Bytes, Error>> + Send + Sync>;

/// Whether a handler answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandlerKind {
    Request,
    Notify,
}

#[derive(Clone)]
pub(crate) struct Handler {
    pub(crate) kind: HandlerKind,
    pub(crate) call: BoxHandler,
}

/// A named group of handler methods.
///
/// # Examples
///
/// ```
/// use pitaya::{Component, Context, Error};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Hello { name: String }
///
/// let greeter = Component::new("greeter")
///     .request("hello", |_ctx: Context, arg: Hello| async move {
///         Ok::<_, Error>(format!("hello, {}", arg.name))
///     })
///     .notify("ping", |_ctx: Context, _arg: ()| async move { Ok(()) });
/// assert_eq!(greeter.name(), "greeter");
/// ```
pub struct Component {
    name: String,
    methods: Vec<(String, Handler)>,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let methods: Vec<&str> = self.methods.iter().map(|(m, _)| m.as_str()).collect();
        f.debug_struct("Component")
            .field("name", &self.name)
            .field("methods", &methods)
            .finish()
    }
}

impl Component {
    /// Returns an empty component named `name` (the route's service segment).
    pub fn new(name: impl Into<String>) -> Self {
        Component {
            name: name.into(),
            methods: Vec::new(),
        }
    }

    /// Returns the component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the component with a request handler added as `method`.
    pub fn request<A, R, F, Fut>(mut self, method: impl Into<String>, f: F) -> Self
    where
        A: FromBody,
        R: IntoBody + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, Error>> + Send + 'static,
    {
        let f = Arc::new(f);
        let call: BoxHandler = Arc::new(move |ctx: Context, body: Bytes| {
            let f = f.clone();
            Box::pin(async move {
                let arg = A::from_body(ctx.serializer(), body)
                    .map_err(|e| Error::bad_request(e.to_string()))?;
                let reply = f(ctx.clone(), arg).await?;
                reply
                    .into_body(ctx.serializer())
                    .map_err(|e| Error::internal(e.to_string()))
            })
        });
        let kind = HandlerKind::Request;
        self.methods.push((method.into(), Handler { kind, call }));
        self
    }

    /// Returns the component with a notify handler added as `method`.
    ///
    /// A notify handler's error is logged; nothing goes back to the client.
    pub fn notify<A, F, Fut>(mut self, method: impl Into<String>, f: F) -> Self
    where
        A: FromBody,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        let f = Arc::new(f);
        let call: BoxHandler = Arc::new(move |ctx: Context, body: Bytes| {
            let f = f.clone();
            Box::pin(async move {
                let arg = A::from_body(ctx.serializer(), body)
                    .map_err(|e| Error::bad_request(e.to_string()))?;
                f(ctx, arg).await?;
                Ok(Bytes::new())
            })
        });
        let kind = HandlerKind::Notify;
        self.methods.push((method.into(), Handler { kind, call }));
        self
    }
}

/// Why a component could not be registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// Two components share a name.
    #[error("duplicate component name: {0}")]
    DuplicateComponent(String),
    /// A component or method name is empty or contains a dot.
    #[error("invalid handler name: {0:?}")]
    InvalidName(String),
}

/// Every handler of the app, by `service.method`.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    handlers: HashMap<String, Handler>,
    components: Vec<String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut routes: Vec<&String> = self.handlers.keys().collect();
        routes.sort();
        f.debug_struct("Registry").field("routes", &routes).finish()
    }
}

fn valid_name(name: &str) -> bool {
    !name.trim().is_empty() && !name.contains('.')
}

impl Registry {
    pub(crate) fn register(&mut self, component: Component) -> Result<(), RegisterError> {
        if !valid_name(&component.name) {
            return Err(RegisterError::InvalidName(component.name));
        }
        if self.components.contains(&component.name) {
            return Err(RegisterError::DuplicateComponent(component.name));
        }
        for (method, _) in &component.methods {
            if !valid_name(method) {
                return Err(RegisterError::InvalidName(method.clone()));
            }
        }
        for (method, handler) in component.methods {
            self.handlers
                .insert(format!("{}.{}", component.name, method), handler);
        }
        self.components.push(component.name);
        Ok(())
    }

    pub(crate) fn get(&self, short_route: &str) -> Option<&Handler> {
        self.handlers.get(short_route)
    }

    /// Returns every `service.method` registered, sorted.
    pub(crate) fn routes(&self) -> Vec<String> {
        let mut routes: Vec<String> = self.handlers.keys().cloned().collect();
        routes.sort();
        routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> Component {
        Component::new("room").notify("leave", |_: Context, _: ()| async { Ok(()) })
    }

    #[test]
    fn duplicate_components_are_refused() {
        let mut reg = Registry::default();
        reg.register(noop()).unwrap();
        let err = reg.register(noop()).unwrap_err();
        assert!(matches!(err, RegisterError::DuplicateComponent(n) if n == "room"));
    }

    #[test]
    fn names_with_dots_are_refused() {
        let mut reg = Registry::default();
        let c = Component::new("a.b").notify("x", |_: Context, _: ()| async { Ok(()) });
        assert!(matches!(
            reg.register(c),
            Err(RegisterError::InvalidName(_))
        ));
        let c = Component::new("a").notify("x.y", |_: Context, _: ()| async { Ok(()) });
        assert!(matches!(
            reg.register(c),
            Err(RegisterError::InvalidName(_))
        ));
    }

    #[test]
    fn handlers_are_found_by_service_and_method() {
        let mut reg = Registry::default();
        reg.register(noop()).unwrap();
        assert_eq!(
            reg.get("room.leave").map(|h| h.kind),
            Some(HandlerKind::Notify)
        );
        assert!(reg.get("room.join").is_none());
        assert_eq!(reg.routes(), vec!["room.leave".to_string()]);
    }
}
