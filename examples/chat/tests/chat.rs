//! The chat room end to end, in process: real TCP and WebSocket clients on ephemeral ports.

mod support;

use pitaya::protocol::{MessageType, PacketType};
use pitaya_test_support::{json, RawClient};
use serde_json::json;
use support::{expect_error, expect_push, join, names, next, say, Chat, Via};

#[tokio::test]
async fn join_answers_success_and_lists_the_joiner() {
    let chat = Chat::start().await;
    let mut alice = chat.client(Via::Tcp).await;

    assert_eq!(join(&mut alice, 1, "alice").await, names(&["alice"]));
}

#[tokio::test]
async fn second_joiner_sees_both_members_and_the_first_hears_of_it() {
    let chat = Chat::start().await;
    let mut alice = chat.client(Via::Tcp).await;
    let mut bob = chat.client(Via::Tcp).await;

    join(&mut alice, 1, "alice").await;
    assert_eq!(join(&mut bob, 1, "bob").await, names(&["alice", "bob"]));
    expect_push(
        &mut alice,
        "onNewUser",
        json!({ "content": "New user: bob" }),
    )
    .await;
}

#[tokio::test]
async fn message_reaches_every_member_with_the_same_body() {
    let chat = Chat::start().await;
    let mut alice = chat.client(Via::Tcp).await;
    let mut bob = chat.client(Via::Tcp).await;
    let mut carol = chat.client(Via::Tcp).await;
    join(&mut alice, 1, "alice").await;
    join(&mut bob, 1, "bob").await;
    join(&mut carol, 1, "carol").await;
    expect_push(
        &mut alice,
        "onNewUser",
        json!({ "content": "New user: bob" }),
    )
    .await;
    expect_push(
        &mut alice,
        "onNewUser",
        json!({ "content": "New user: carol" }),
    )
    .await;
    expect_push(
        &mut bob,
        "onNewUser",
        json!({ "content": "New user: carol" }),
    )
    .await;

    let hello = json!({ "name": "bob", "content": "hello, ünïcode ✓" });
    say(&mut bob, &mut [&mut alice, &mut carol], hello).await;
    // Whatever the client puts in the body is relayed, not just the two known keys.
    let extra = json!({ "name": "carol", "content": "", "mood": 3 });
    say(&mut carol, &mut [&mut alice, &mut bob], extra).await;
}

#[tokio::test]
async fn join_without_a_usable_name_is_a_bad_request() {
    let chat = Chat::start().await;
    let mut client = chat.client(Via::Tcp).await;
    let bodies: [&[u8]; 13] = [
        br#"{}"#,
        br#"{"nick":"alice"}"#,
        br#"{"name":""}"#,
        br#"{"name":"   "}"#,
        br#"{"name":"\t\n"}"#,
        br#"{"name":42}"#,
        br#"{"name":null}"#,
        br#"{"name":true}"#,
        br#"{"name":["alice"]}"#,
        br#"{"name":{"first":"alice"}}"#,
        br#""alice""#,
        br#"[]"#,
        b"not json",
    ];

    for (id, body) in (1..).zip(bodies) {
        client.request(id, "room.room.join", body).await.unwrap();
        expect_error(&mut client, id, "PIT-400").await;
    }

    // Too long by one character is refused; the longest allowed nick is taken.
    let too_long = "é".repeat(chat::MAX_NICK_CHARS + 1);
    let body = json!({ "name": too_long }).to_string();
    client
        .request(50, "room.room.join", body.as_bytes())
        .await
        .unwrap();
    expect_error(&mut client, 50, "PIT-400").await;

    // None of the refused joins bound the connection or added anyone.
    assert_eq!(join(&mut client, 99, "alice").await, names(&["alice"]));
}

#[tokio::test]
async fn member_whose_connection_closes_leaves_the_room() {
    for via in [Via::Tcp, Via::Ws] {
        let mut chat = Chat::start().await;
        let mut alice = chat.client(Via::Tcp).await;
        let mut bob = chat.client(via).await;
        join(&mut alice, 1, "alice").await;
        join(&mut bob, 1, "bob").await;
        expect_push(
            &mut alice,
            "onNewUser",
            json!({ "content": "New user: bob" }),
        )
        .await;

        drop(bob);
        chat.closed("bob").await;

        let mut carol = chat.client(Via::Tcp).await;
        assert_eq!(
            join(&mut carol, 1, "carol").await,
            names(&["alice", "carol"])
        );
        expect_push(
            &mut alice,
            "onNewUser",
            json!({ "content": "New user: carol" }),
        )
        .await;
        // bob is gone, so a message reaches the two left and nobody else.
        say(
            &mut alice,
            &mut [&mut carol],
            json!({ "name": "alice", "content": "hi" }),
        )
        .await;
    }
}

#[tokio::test]
async fn websocket_and_tcp_clients_share_one_room() {
    let chat = Chat::start().await;
    let mut alice = chat.client(Via::Ws).await;
    let mut bob = chat.client(Via::Tcp).await;
    let mut carol = chat.client(Via::Ws).await;

    assert_eq!(join(&mut alice, 1, "alice").await, names(&["alice"]));
    assert_eq!(join(&mut bob, 1, "bob").await, names(&["alice", "bob"]));
    expect_push(
        &mut alice,
        "onNewUser",
        json!({ "content": "New user: bob" }),
    )
    .await;
    assert_eq!(
        join(&mut carol, 7, "carol").await,
        names(&["alice", "bob", "carol"])
    );
    expect_push(
        &mut alice,
        "onNewUser",
        json!({ "content": "New user: carol" }),
    )
    .await;
    expect_push(
        &mut bob,
        "onNewUser",
        json!({ "content": "New user: carol" }),
    )
    .await;

    say(
        &mut alice,
        &mut [&mut bob, &mut carol],
        json!({ "name": "alice", "content": "ws" }),
    )
    .await;
    say(
        &mut bob,
        &mut [&mut alice, &mut carol],
        json!({ "name": "bob", "content": "tcp" }),
    )
    .await;
}

#[tokio::test]
async fn rejoining_nick_replaces_its_old_connection_and_stays_one_member() {
    let mut chat = Chat::start().await;
    let mut old = chat.client(Via::Tcp).await;
    let mut bob = chat.client(Via::Tcp).await;
    join(&mut old, 1, "alice").await;
    join(&mut bob, 1, "bob").await;
    expect_push(&mut old, "onNewUser", json!({ "content": "New user: bob" })).await;

    let mut new = chat.client(Via::Ws).await;
    assert_eq!(join(&mut new, 1, "alice").await, names(&["alice", "bob"]));
    old.expect_closed()
        .await
        .expect("the old connection is closed");
    expect_push(
        &mut bob,
        "onNewUser",
        json!({ "content": "New user: alice" }),
    )
    .await;

    // Once the old session's close hooks have run, alice must still be in the room.
    chat.closed("alice").await;
    let mut dave = chat.client(Via::Tcp).await;
    assert_eq!(
        join(&mut dave, 1, "dave").await,
        names(&["alice", "bob", "dave"])
    );
    expect_push(
        &mut new,
        "onNewUser",
        json!({ "content": "New user: dave" }),
    )
    .await;
    expect_push(
        &mut bob,
        "onNewUser",
        json!({ "content": "New user: dave" }),
    )
    .await;

    // Two messages in a row: a duplicate of the first would arrive in place of the second.
    for n in 1..=2 {
        let body = json!({ "name": "alice", "content": format!("back {n}") });
        say(&mut new, &mut [&mut bob, &mut dave], body).await;
    }
}

#[tokio::test]
async fn garbage_from_one_client_does_not_disturb_the_others() {
    let chat = Chat::start().await;
    let mut alice = chat.client(Via::Tcp).await;
    let mut bob = chat.client(Via::Ws).await;
    join(&mut alice, 1, "alice").await;
    join(&mut bob, 1, "bob").await;
    expect_push(
        &mut alice,
        "onNewUser",
        json!({ "content": "New user: bob" }),
    )
    .await;

    // An unknown packet type closes that connection.
    let mut bad = chat.raw(Via::Tcp).await;
    bad.send_raw(&[0x09, 0, 0, 0]).await.unwrap();
    bad.expect_closed().await.unwrap();
    chat_round(&mut alice, &mut bob, 1).await;

    // Data before any handshake closes that connection.
    let mut bad = chat.raw(Via::Tcp).await;
    let notify = bad.data_packet(&support_notify(), false);
    bad.send_raw(&notify).await.unwrap();
    bad.expect_closed().await.unwrap();
    chat_round(&mut alice, &mut bob, 2).await;

    // A handshake that is not JSON is refused with code 400, then closed.
    let mut bad = chat.raw(Via::Ws).await;
    bad.send_packet(PacketType::Handshake, b"{sys:")
        .await
        .unwrap();
    let seen = bad.expect_closed().await.unwrap();
    let refusal = seen.first().expect("a handshake answer before the close");
    assert_eq!(refusal.kind, PacketType::Handshake);
    let answer = pitaya::protocol::HandshakeResponse::decode(&refusal.body).unwrap();
    assert_eq!(answer.code, 400);
    chat_round(&mut alice, &mut bob, 3).await;

    // A message type that does not exist (7) closes that connection.
    let mut bad = chat.client(Via::Tcp).await;
    bad.send_packet(PacketType::Data, &[0x0E, 0x01, b'a'])
        .await
        .unwrap();
    bad.expect_closed().await.unwrap();
    chat_round(&mut alice, &mut bob, 4).await;

    // Two packets in one WebSocket message are refused (spec 1.6).
    let mut bad = chat.client(Via::Ws).await;
    bad.send_raw(&[3, 0, 0, 0, 3, 0, 0, 0]).await.unwrap();
    bad.expect_closed().await.unwrap();
    chat_round(&mut alice, &mut bob, 5).await;

    // A header promising more than ever comes, then the connection drops.
    let mut bad = chat.client(Via::Tcp).await;
    bad.send_raw(&[4, 0, 0, 100, 0x00, 0x01]).await.unwrap();
    drop(bad);
    chat_round(&mut alice, &mut bob, 6).await;

    // A stranger's unknown route and unreadable message body reach nobody.
    let mut stranger = chat.client(Via::Tcp).await;
    stranger.request(5, "room.room.nope", b"{}").await.unwrap();
    expect_error(&mut stranger, 5, "PIT-404").await;
    stranger
        .notify("room.room.message", b"\xff\xfe not json")
        .await
        .unwrap();
    chat_round(&mut alice, &mut bob, 7).await;

    // The stranger's connection survived both and can still join.
    assert_eq!(
        join(&mut stranger, 6, "stranger").await,
        names(&["alice", "bob", "stranger"])
    );
    for member in [&mut alice, &mut bob] {
        let msg = next(member).await;
        assert_eq!(
            (msg.kind, msg.route.as_str()),
            (MessageType::Push, "onNewUser")
        );
        assert_eq!(json(&msg), json!({ "content": "New user: stranger" }));
    }
}

/// Has alice say something numbered `n` and checks both members get it next.
async fn chat_round(alice: &mut RawClient, bob: &mut RawClient, n: u32) {
    let body = json!({ "name": "alice", "content": format!("round {n}") });
    say(alice, &mut [bob], body).await;
}

/// Returns a well-formed chat message, to be sent where it is not allowed.
fn support_notify() -> pitaya::protocol::Message {
    let body = json!({ "name": "x", "content": "early" }).to_string();
    pitaya::protocol::Message::notify("room.room.message", body.into_bytes())
}
