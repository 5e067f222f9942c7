//! Handshake checks (spec 2): the answer's shape, its compression, leniency, repeats.

use pitaya_protocol::{inflate, is_compressed, PacketType, MAX_BODY_LEN};
use serde_json::Value;

use super::{check, CheckDef};
use crate::chat::ping;
use crate::conn::{default_handshake, show, Via};
use crate::ctx::{ensure, fail, within, Ctx, Failure, Verdict};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![
        check(
            "handshake.tcp",
            "TCP handshake: code 200 with dict, heartbeat and serializer json; body plain or zlib",
            |ctx| Box::pin(accepted(ctx, Via::Tcp)),
        ),
        check(
            "handshake.ws",
            "WebSocket handshake, the same; every server packet is one binary message",
            |ctx| Box::pin(accepted(ctx, Via::Ws)),
        ),
        check(
            "handshake.compressed",
            "a zlib handshake answer inflates to JSON and is shorter than it (skipped if plain)",
            |ctx| Box::pin(compressed(ctx)),
        ),
        check(
            "handshake.lenient",
            "handshakes with user data, unknown keys, or no keys at all are accepted",
            |ctx| Box::pin(lenient(ctx)),
        ),
        check(
            "handshake.again",
            "a second handshake on a working connection is answered again and needs a new ack",
            |ctx| Box::pin(again(ctx)),
        ),
    ]
}

/// Returns the JSON of a handshake answer body, inflated first when it is zlib or gzip.
fn answer_json(body: &[u8]) -> Result<Value, Failure> {
    let inflated;
    let json = if is_compressed(body) {
        inflated = match inflate(body, MAX_BODY_LEN) {
            Ok(j) => j,
            Err(e) => fail!("the compressed handshake answer does not inflate: {e}"),
        };
        &inflated[..]
    } else {
        body
    };
    match serde_json::from_slice(json) {
        Ok(v) => Ok(v),
        Err(e) => fail!("the handshake answer is not JSON: {e}"),
    }
}

async fn accepted(ctx: Ctx, via: Via) -> Verdict {
    let mut conn = ctx.connect(via).await?;
    let p = conn.handshake_raw(&default_handshake()).await?;
    let json = answer_json(&p.body)?;

    // Clients read these four fields; each must be there with its JSON type (spec 2.2).
    ensure!(
        json["code"] == 200,
        "code is {} (expected 200)",
        json["code"]
    );
    let sys = &json["sys"];
    ensure!(sys["dict"].is_object(), "sys.dict is not an object: {sys}");
    ensure!(
        sys["heartbeat"].is_number(),
        "sys.heartbeat is not a number: {sys}"
    );
    ensure!(
        sys["serializer"] == "json",
        "sys.serializer is {} (the chat contract's bodies are JSON)",
        sys["serializer"]
    );
    let heartbeat = sys["heartbeat"].as_f64().unwrap_or_default();
    let positive = heartbeat > 0.0;
    ensure!(
        positive,
        "sys.heartbeat is {heartbeat}: clients would never send heartbeats"
    );

    let hello = conn.take_hello(&p)?;
    conn.send_packet(PacketType::HandshakeAck, &[]).await?;
    within("request after the handshake", ping(&mut conn, 1).await)?;
    let form = if is_compressed(&p.body) {
        "zlib"
    } else {
        "plain JSON"
    };
    Ok(Some(format!(
        "{form}, heartbeat {}, {} dictionary routes",
        show(hello.sys.heartbeat),
        hello.sys.dict.len()
    )))
}

async fn compressed(ctx: Ctx) -> Verdict {
    let mut conn = ctx.connect(ctx.primary()).await?;
    let p = conn.handshake_raw(&default_handshake()).await?;
    if !is_compressed(&p.body) {
        return Err(Failure::Skipped(
            "the server sent plain JSON (Pitaya compresses only when shorter)".into(),
        ));
    }
    let json = answer_json(&p.body)?;
    ensure!(
        json["code"] == 200,
        "code is {} (expected 200)",
        json["code"]
    );
    let plain_len = serde_json::to_vec(&json).map(|j| j.len()).unwrap_or(0);
    // Pitaya sends the compressed form only when it is strictly shorter (spec 2.2).
    ensure!(
        p.body.len() < plain_len,
        "{} compressed bytes for {plain_len} bytes of JSON",
        p.body.len()
    );
    conn.take_hello(&p)?;
    conn.send_packet(PacketType::HandshakeAck, &[]).await?;
    within("request after the handshake", ping(&mut conn, 1).await)?;
    Ok(Some("zlib, shorter than its JSON".into()))
}

async fn lenient(ctx: Ctx) -> Verdict {
    let bodies: [&[u8]; 3] = [
        br#"{"sys":{"platform":"android","libVersion":"9.9","clientBuildNumber":"7",
            "clientVersion":"2.0","futureKey":true},"user":{"token":"abc","level":3},
            "topLevelExtra":[1,2]}"#,
        br#"{"sys":{}}"#,
        b"{}",
    ];
    for (n, body) in bodies.iter().enumerate() {
        let what = format!("handshake {}", n + 1);
        let mut conn = ctx.connect(ctx.primary()).await?;
        let p = within(&what, conn.handshake_raw(body).await)?;
        let json = within(&what, answer_json(&p.body))?;
        ensure!(json["code"] == 200, "{what}: code {}", json["code"]);
        conn.send_packet(PacketType::HandshakeAck, &[]).await?;
        within(&what, ping(&mut conn, 1).await)?;
    }
    Ok(None)
}

async fn again(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    ping(&mut conn, 1).await?;

    let p = within(
        "second handshake",
        conn.handshake_raw(&default_handshake()).await,
    )?;
    let json = within("second handshake", answer_json(&p.body))?;
    ensure!(
        json["code"] == 200,
        "second handshake: code {}",
        json["code"]
    );
    conn.send_packet(PacketType::HandshakeAck, &[]).await?;
    within("request after the second ack", ping(&mut conn, 2).await)?;
    Ok(None)
}
