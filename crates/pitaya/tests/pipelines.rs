//! Handler hooks: a before hook rewriting the body or rejecting the request, an after
//! hook replacing the reply.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::{builder, call, call_ok, error_of, Server};
use pitaya::{Component, Context, Error};
use serde_json::{json, Value};

/// Returns an app whose hooks act on `svc.echo` (rewrite), `hooks.guarded` (reject) and
/// `hooks.after` (reply replaced); `runs` counts the guarded handler's runs.
fn app_with_hooks(runs: Arc<AtomicUsize>) -> pitaya::Builder {
    let hooks = Component::new("hooks")
        .request("guarded", move |_: Context, _: Value| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Error>("ran")
            }
        })
        .request("after", |_: Context, _: Value| async move {
            Ok::<_, Error>("original")
        });
    builder()
        .register(hooks)
        .before_handler(|ctx: Context, body: Bytes| async move {
            match ctx.route().to_string().as_str() {
                "connector.svc.echo" => Ok(Bytes::from_static(b"{\"rewritten\":true}")),
                "connector.hooks.guarded" => {
                    Err(Error::new("AUTH-1", "not allowed").with_metadata("why", "test"))
                }
                _ => Ok(body),
            }
        })
        .after_handler(|ctx: Context, res: Result<Bytes, Error>| async move {
            if ctx.route().method() == "after" {
                assert_eq!(res.as_deref().ok(), Some(&b"\"original\""[..]));
                return Ok(Bytes::from_static(b"\"replaced\""));
            }
            res
        })
}

#[tokio::test]
async fn before_hook_rewrites_the_body() {
    let server = Server::start(app_with_hooks(Arc::default())).await;
    let mut client = server.client().await;

    let reply = call_ok(&mut client, 1, "svc.echo", json!({"original": true})).await;
    assert_eq!(reply, json!({"rewritten": true}));
}

#[tokio::test]
async fn before_hook_rejecting_answers_its_error_and_skips_the_handler() {
    let runs = Arc::new(AtomicUsize::new(0));
    let server = Server::start(app_with_hooks(runs.clone())).await;
    let mut client = server.client().await;

    let resp = call(&mut client, 1, "hooks.guarded", json!({})).await;
    let err = error_of(&resp);
    assert_eq!(
        (err.code.as_str(), err.msg.as_str()),
        ("AUTH-1", "not allowed")
    );
    assert_eq!(err.metadata.get("why").map(String::as_str), Some("test"));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn after_hook_replaces_the_reply() {
    let server = Server::start(app_with_hooks(Arc::default())).await;
    let mut client = server.client().await;

    assert_eq!(
        call_ok(&mut client, 1, "hooks.after", json!({})).await,
        json!("replaced")
    );
    // Other routes keep their own reply.
    assert_eq!(
        call_ok(&mut client, 2, "svc.typed", json!({"name": "b"})).await,
        json!("hello, b")
    );
}
