//! Protobuf sessions: typed protobuf requests, pushes and error payloads.

mod common;

use pitaya::acceptor::TcpAcceptor;
use pitaya::serialize::Proto;
use pitaya::{App, Component, Config, Context, Error};
use pitaya_client::{Client, ClientError, Serializer};

#[derive(Clone, PartialEq, prost::Message)]
struct Greet {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Greeting {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint32, tag = "2")]
    length: u32,
}

async fn greeter() -> (String, pitaya::AppHandle) {
    common::init_tracing();
    let hello = Component::new("hello").request(
        "greet",
        |ctx: Context, Proto(g): Proto<Greet>| async move {
            if g.name.is_empty() {
                return Err(Error::bad_request("no name").with_metadata("field", "name"));
            }
            let text = format!("hello, {}", g.name);
            let push = Greeting {
                text: text.clone(),
                length: 0,
            };
            ctx.session()
                .push("onGreet", Proto(push))
                .await
                .map_err(|e| Error::internal(e.to_string()))?;
            let length = text.len() as u32;
            Ok(Proto(Greeting { text, length }))
        },
    );
    let mut config = Config::default();
    config.serializer_type = 2;
    let app = App::builder("greeter")
        .config(config)
        .acceptor(TcpAcceptor::bind("127.0.0.1:0").await.unwrap())
        .register(hello)
        .build()
        .unwrap();
    let url = format!("tcp://{}", app.local_addrs()[0].1);
    let handle = app.handle();
    tokio::spawn(app.run_until(std::future::pending()));
    (url, handle)
}

#[tokio::test]
async fn protobuf_request_push_and_error_round_trip() {
    let (url, app) = greeter().await;
    let client = Client::connect(&url).await.unwrap();
    assert_eq!(
        client.session().unwrap().serializer(),
        &Serializer::Protobuf
    );
    let mut greets = client.pushes("onGreet");

    let reply: Greeting = client
        .request_proto("greeter.hello.greet", &Greet { name: "ann".into() })
        .await
        .unwrap();
    assert_eq!(reply.text, "hello, ann");
    assert_eq!(reply.length, 10);
    let push = greets.recv().await.unwrap();
    assert_eq!(push.proto::<Greeting>().unwrap().text, "hello, ann");

    let err = client
        .request_proto::<_, Greeting>("greeter.hello.greet", &Greet::default())
        .await
        .unwrap_err();
    match err {
        ClientError::Server {
            code,
            message,
            metadata,
        } => {
            assert_eq!((code.as_str(), message.as_str()), ("PIT-400", "no name"));
            assert_eq!(metadata.get("field").map(String::as_str), Some("name"));
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    app.shutdown();
}
