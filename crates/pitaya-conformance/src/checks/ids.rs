//! Message ids and stream framing (spec 1.4 and 4.4): ids echoed, pipelined requests,
//! packets split over writes or coalesced into one.

use std::collections::BTreeMap;

use bytes::Bytes;
use pitaya_protocol::{Message, MessageType, PacketType, RouteDict};

use super::{check, CheckDef};
use crate::chat::{decode_answer, expect_error, ping, Answer, JOIN, UNKNOWN};
use crate::conn::{data_packet, deadline_in, default_handshake, packet, Conn, Via};
use crate::ctx::{ensure, fail, within, Ctx, Failure, Verdict};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![
        check(
            "ids.echo",
            "each response carries its request's id, from 1 up to 2^40 (varints of 1 to 6 bytes)",
            |ctx| Box::pin(echo(ctx)),
        ),
        check(
            "ids.pipelining",
            "60 requests sent without waiting are each answered once, matched by id",
            |ctx| Box::pin(pipelining(ctx)),
        ),
        check(
            "ids.zero",
            "a request with id 0 is not answered (id 0 is notify mode in Pitaya)",
            |ctx| Box::pin(zero(ctx)),
        ),
        check(
            "framing.split",
            "TCP: packets written a few bytes at a time, headers cut in half, are understood",
            |ctx| Box::pin(split(ctx)),
        ),
        check(
            "framing.coalesced",
            "TCP: handshake, ack and three requests in one write are all answered",
            |ctx| Box::pin(coalesced(ctx)),
        ),
    ]
}

/// Returns the encoded request for route `route` with a JSON body.
fn request(id: u64, route: &str, body: &str, dict: &RouteDict) -> Result<Bytes, Failure> {
    let msg = Message::request(id, route, Bytes::copy_from_slice(body.as_bytes()));
    data_packet(&msg, dict)
}

/// Reads one response per id of `expected` (id to error code), in any order.
async fn answers(conn: &mut Conn, expected: &BTreeMap<u64, &str>) -> Result<(), Failure> {
    let mut left = expected.clone();
    let deadline = deadline_in(conn.wait());
    while !left.is_empty() {
        let what = format!("{} answers still due", left.len());
        let (msg, _) = conn.message_by(deadline, &what).await?;
        if msg.kind == MessageType::Push {
            continue;
        }
        ensure!(
            msg.kind == MessageType::Response,
            "got a {:?} message",
            msg.kind
        );
        let Some(code) = left.remove(&msg.id) else {
            if expected.contains_key(&msg.id) {
                fail!("request {} was answered twice", msg.id);
            }
            fail!("got a response for id {}, which no request used", msg.id);
        };
        match decode_answer(&msg, "answer")? {
            Answer::Err(e) if e.code == code => {}
            Answer::Err(e) => fail!("request {} answered {} (expected {code})", msg.id, e.code),
            Answer::Ok(v) => fail!("request {} answered success {v} (expected {code})", msg.id),
        }
    }
    Ok(())
}

async fn echo(ctx: Ctx) -> Verdict {
    let ids: [u64; 10] = [
        1,
        127,
        128,
        300,
        16_383,
        16_384,
        2_097_152,
        1 << 31,
        (1 << 32) + 5,
        1 << 40,
    ];
    let mut conn = ctx.client(ctx.primary()).await?;
    for id in ids {
        // One at a time, so a wrong id cannot hide behind another request's answer.
        conn.request(id, UNKNOWN, b"{}").await?;
        expect_error(&mut conn, id, "PIT-404", &format!("answer to request {id}")).await?;
    }
    Ok(None)
}

async fn pipelining(ctx: Ctx) -> Verdict {
    for via in ctx.transports() {
        let mut conn = ctx.client(via).await?;
        let mut expected = BTreeMap::new();
        let mut burst = Vec::new();
        for id in 1..=60u64 {
            // Two kinds of failure, so an answer sent to the wrong id shows.
            let (route, body, code) = if id % 2 == 0 {
                (JOIN, r#"{"name":""}"#, "PIT-400")
            } else {
                (UNKNOWN, "{}", "PIT-404")
            };
            expected.insert(id, code);
            burst.push(request(id, route, body, conn.dict())?);
        }
        match via {
            // One write holding every packet.
            Via::Tcp => conn.send(&burst.concat()).await?,
            // One message per packet (spec 1.6), all sent before reading any answer.
            Via::Ws => {
                for p in &burst {
                    conn.send(p).await?;
                }
            }
        }
        within(via.name(), answers(&mut conn, &expected).await)?;
    }
    Ok(None)
}

async fn zero(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    conn.request(0, UNKNOWN, b"{}").await?;
    conn.request(7, UNKNOWN, b"{}").await?;
    let deadline = deadline_in(conn.wait());
    loop {
        let (msg, _) = conn
            .message_by(deadline, "answer to the request after it")
            .await?;
        match (msg.kind, msg.id) {
            (MessageType::Response, 7) => return Ok(None),
            (MessageType::Response, 0) => fail!("the request with id 0 was answered"),
            (MessageType::Response, id) => fail!("got a response for id {id}"),
            _ => {}
        }
    }
}

async fn split(ctx: Ctx) -> Verdict {
    let mut conn = ctx.connect(Via::Tcp).await?;

    let hello = packet(PacketType::Handshake, &default_handshake())?;
    conn.send_in_pieces(&hello, 1).await?;
    let deadline = deadline_in(conn.wait());
    let answer = conn.packet_by(deadline, "handshake answer").await?;
    ensure!(
        answer.kind == PacketType::Handshake,
        "handshake answer: got a {:?} packet",
        answer.kind
    );
    conn.take_hello(&answer)?;
    conn.send_in_pieces(&packet(PacketType::HandshakeAck, &[])?, 1)
        .await?;

    // The header cut after two bytes, then the body three bytes at a time.
    let one = request(1, UNKNOWN, "{}", conn.dict())?;
    conn.send_in_pieces(&one[..2], 2).await?;
    conn.send_in_pieces(&one[2..], 3).await?;
    within(
        "request in pieces",
        answers(&mut conn, &one_answer(1)).await,
    )?;

    // Two packets cut so that every write straddles them differently.
    let two = [
        request(2, UNKNOWN, "{}", conn.dict())?,
        request(3, UNKNOWN, "{}", conn.dict())?,
    ]
    .concat();
    conn.send_in_pieces(&two, 5).await?;
    let mut both = one_answer(2);
    both.insert(3, "PIT-404");
    within("two requests in pieces", answers(&mut conn, &both).await)?;
    Ok(None)
}

fn one_answer(id: u64) -> BTreeMap<u64, &'static str> {
    BTreeMap::from([(id, "PIT-404")])
}

async fn coalesced(ctx: Ctx) -> Verdict {
    let mut conn = ctx.connect(Via::Tcp).await?;
    // Routes go as strings: the dictionary is not known before the handshake answer.
    let dict = RouteDict::empty();
    let mut burst = vec![
        packet(PacketType::Handshake, &default_handshake())?,
        packet(PacketType::HandshakeAck, &[])?,
    ];
    for id in 1..=3 {
        burst.push(request(id, UNKNOWN, "{}", &dict)?);
    }
    conn.send(&burst.concat()).await?;

    let deadline = deadline_in(conn.wait());
    let answer = conn.packet_by(deadline, "handshake answer").await?;
    ensure!(
        answer.kind == PacketType::Handshake,
        "the first answer is a {:?} packet, not the handshake",
        answer.kind
    );
    conn.take_hello(&answer)?;
    let expected = BTreeMap::from([(1, "PIT-404"), (2, "PIT-404"), (3, "PIT-404")]);
    answers(&mut conn, &expected).await?;
    within("request afterwards", ping(&mut conn, 4).await)?;
    Ok(None)
}
