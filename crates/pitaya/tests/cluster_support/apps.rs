//! The apps of the cluster tests: a `connector` frontend and a `room` backend.

use std::time::Duration;

use pitaya::cluster::rpc::protos::Push;
use pitaya::{App, Builder, Component, Context, Error, Remote, RemoteContext};
use pitaya_test_support::{json, RawClient};
use serde_json::{json, Value};

/// The backend of these tests: type `room`, handlers that exercise the session copy.
pub(crate) fn room() -> Builder {
    let room = Component::new("room")
        .request("echo", |ctx: Context, arg: Value| async move {
            let s = ctx.session();
            Ok::<_, Error>(json!({
                "echo": arg,
                "server": ctx.app().server_id(),
                "frontend": s.frontend_id(),
                "uid": s.uid(),
                "data": s.data(),
            }))
        })
        .request("fail", |_: Context, _: Value| async move {
            Err::<Value, _>(Error::new("GAME-1", "room is full").with_metadata("room", "7"))
        })
        .request("join", |ctx: Context, arg: Value| async move {
            let uid = arg["uid"].as_str().unwrap_or_default().to_owned();
            let s = ctx.session();
            s.bind(&uid)
                .await
                .map_err(|e| Error::internal(e.to_string()))?;
            s.push("onJoined", json!({ "uid": uid }))
                .await
                .map_err(|e| Error::internal(e.to_string()))?;
            Ok::<_, Error>(json!({ "joined": uid }))
        })
        .request("setdata", |ctx: Context, arg: Value| async move {
            let s = ctx.session();
            s.set(arg["key"].as_str().unwrap_or("k"), arg["value"].clone())
                .map_err(|e| Error::internal(e.to_string()))?;
            s.push_to_front()
                .await
                .map_err(|e| Error::internal(e.to_string()))?;
            Ok::<_, Error>(json!("ok"))
        })
        .request("kickme", |ctx: Context, _: Value| async move {
            ctx.session()
                .kick()
                .await
                .map_err(|e| Error::internal(e.to_string()))?;
            Ok::<_, Error>(json!("kicked"))
        })
        .request("byekick", |ctx: Context, _: Value| async move {
            let s = ctx.session();
            for n in 0..5 {
                s.push("onBye", json!(n))
                    .await
                    .map_err(|e| Error::internal(e.to_string()))?;
            }
            s.kick().await.map_err(|e| Error::internal(e.to_string()))?;
            Ok::<_, Error>(json!("kicked"))
        })
        .request("slow", |_: Context, _: Value| async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok::<_, Error>(json!("late"))
        })
        .request("onclose", |ctx: Context, _: Value| async move {
            let refused = ctx.session().on_close(|| {}).unwrap_err();
            Ok::<_, Error>(json!(refused.to_string()))
        })
        .notify("note", |ctx: Context, arg: Value| async move {
            let uid = ctx.session().uid().unwrap_or_default();
            let failed = ctx
                .app()
                .push_to_users("onNote", &arg, &[uid], "connector")
                .await?;
            assert!(failed.is_empty());
            Ok(())
        });
    let stats = Remote::new("stats").method("ping", |ctx: RemoteContext, arg: Push| async move {
        Ok::<_, Error>(Push {
            route: "pong".into(),
            uid: ctx.app().server_id().to_owned(),
            data: arg.data,
        })
    });
    App::builder("room").register(room).register_remote(stats)
}

/// The frontend of these tests: type `connector`, reads its session data.
pub(crate) fn connector() -> Builder {
    let conn = Component::new("conn").request("get", |ctx: Context, key: String| async move {
        Ok::<_, Error>(ctx.session().get::<Value>(&key).unwrap_or(Value::Null))
    });
    App::builder("connector").register(conn)
}

pub(crate) async fn request(c: &mut RawClient, id: u64, route: &str, body: Value) -> (bool, Value) {
    c.request(id, route, body.to_string().as_bytes())
        .await
        .unwrap();
    let resp = c.recv_response().await.unwrap();
    assert_eq!(resp.id, id);
    (resp.error, json(&resp))
}

pub(crate) async fn ok(c: &mut RawClient, id: u64, route: &str, body: Value) -> Value {
    let (error, value) = request(c, id, route, body).await;
    assert!(!error, "{route} failed: {value}");
    value
}
