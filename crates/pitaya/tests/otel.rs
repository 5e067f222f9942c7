//! OpenTelemetry export end to end: a frontend and a backend in this process, over a
//! real NATS and etcd, export their spans to a collector run by this test.
//!
//! The global subscriber is process-wide, so this binary holds one test that walks
//! through the steps in order.
#![cfg(all(feature = "otel", feature = "nats", feature = "etcd"))]

mod cluster_support;

use std::net::SocketAddr;
use std::time::SystemTime;

use cluster_support::{Infra, Node, WAIT};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use pitaya::cluster::rpc::protos::{Msg, MsgType, Request, RpcType, Session};
use pitaya::cluster::rpc::{request_metadata, response_error, NatsRpcClient, OTEL_SPAN};
use pitaya::cluster::{RpcClient, ServerInfo};
use pitaya::telemetry::{Telemetry, TracingConfig};
use pitaya::{App, Builder, Component, Context, Error};
use pitaya_test_support::json;
use serde_json::{json, Value};
use tokio::sync::mpsc;

// ===== the collector =====

/// A span as the collector got it, with the service that sent it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    span: Span,
}

impl Received {
    fn attr(&self, key: &str) -> Option<String> {
        string_attr(&self.span.attributes, key)
    }

    fn is(&self, name: &str, server_id: &str) -> bool {
        self.span.name == name && self.attr("server_id").as_deref() == Some(server_id)
    }
}

fn string_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// An OTLP trace service that hands every span it receives to the test.
struct Collector(mpsc::UnboundedSender<Received>);

#[async_trait::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .and_then(|r| string_attr(&r.attributes, "service.name"))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                let service = service.clone();
                let _ = self.0.send(Received { service, span });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts the collector on a free port; returns its address and what it receives.
async fn collector() -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(Collector(tx)))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(server);
    (addr, rx)
}

/// Everything the collector got so far, and what it gets until `done` holds.
struct Spans {
    rx: mpsc::UnboundedReceiver<Received>,
    seen: Vec<Received>,
}

impl Spans {
    async fn until(&mut self, what: &str, done: impl Fn(&[Received]) -> bool) {
        while !done(&self.seen) {
            match tokio::time::timeout(WAIT, self.rx.recv()).await {
                Ok(Some(span)) => self.seen.push(span),
                _ => panic!("timed out waiting for {what}; got {:#?}", self.names()),
            }
        }
    }

    fn find(&self, f: impl Fn(&Received) -> bool) -> &Received {
        self.seen.iter().find(|r| f(r)).expect("span found")
    }

    fn names(&self) -> Vec<(String, Option<String>)> {
        let seen = self.seen.iter();
        seen.map(|r| (r.span.name.clone(), r.attr("route")))
            .collect()
    }
}

// ===== the cluster =====

fn room() -> Builder {
    let room = Component::new("room")
        .request("join", |ctx: Context, uid: String| async move {
            let s = ctx.session();
            s.bind(&uid)
                .await
                .map_err(|e| Error::internal(e.to_string()))?;
            Ok::<_, Error>(json!({ "joined": uid }))
        })
        .request("echo", |_: Context, arg: Value| async move {
            Ok::<_, Error>(arg)
        });
    App::builder("room").register(room)
}

/// Returns the exporting telemetry, sending to `collector` as service `otel-test`.
fn telemetry(collector: SocketAddr) -> Telemetry {
    let mut config = TracingConfig::default();
    config.enabled = true;
    // No scheme: plain http is assumed, as a user may well write it.
    config.endpoint = collector.to_string();
    config.service_name = "otel-test".into();
    let telemetry = pitaya::telemetry::init(&config, "unused").expect("telemetry starts");
    assert!(
        telemetry.is_exporting(),
        "export is off: is OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER set?"
    );
    telemetry
}

/// Returns an RPC client of the test's own, outside the cluster.
async fn tester(infra: &Infra) -> (NatsRpcClient, ServerInfo) {
    let me = ServerInfo::new("tester", false);
    let nats = &infra.config().cluster.rpc.client.nats;
    (NatsRpcClient::connect(nats, &me).await.unwrap(), me)
}

/// Sends a sys request for `room.room.echo` straight to `room` over NATS, with the
/// value `carrier` under `otel-span` (none if `None`); returns the answer's data.
async fn echo_with_carrier(
    (client, me): &(NatsRpcClient, ServerInfo),
    room: &Node,
    session_id: i64,
    carrier: Option<Value>,
) -> Value {
    let timeout = client.request_timeout();
    let route = "room.room.echo";
    let metadata = request_metadata(me, "req-1", route, SystemTime::now(), timeout);
    let mut metadata: serde_json::Map<String, Value> = serde_json::from_slice(&metadata).unwrap();
    if let Some(carrier) = carrier {
        metadata.insert(OTEL_SPAN.into(), carrier);
    }
    let req = Request {
        r#type: RpcType::Sys.into(),
        session: Some(Session {
            id: session_id,
            ..Session::default()
        }),
        msg: Some(Msg {
            id: 1,
            route: route.into(),
            data: json!({ "n": session_id }).to_string().into(),
            r#type: MsgType::MsgRequest.into(),
            ..Msg::default()
        }),
        frontend_id: "nobody".into(),
        metadata: Value::Object(metadata).to_string().into(),
    };
    let target = ServerInfo::new("room", false).with_id(room.id());
    let response = client.call(&target, req, timeout).await.unwrap();
    assert!(response_error(&response).is_none(), "{response:?}");
    serde_json::from_slice(&response.data).unwrap()
}

// ===== the test =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_request_is_one_trace_and_bad_carriers_start_new_ones() {
    let (addr, rx) = collector().await;
    let telemetry = telemetry(addr);
    let mut spans = Spans {
        rx,
        seen: Vec::new(),
    };
    let infra = Infra::start();
    let front = Node::frontend(App::builder("connector"), infra.config()).await;
    let back = Node::backend(room(), infra.config()).await;
    front.sees("room", 1).await;
    back.sees("connector", 1).await;

    // The client's join goes to the room, which binds the uid through the frontend's
    // sys.bindsession remote: three servers' worth of spans, one trace.
    let mut client = front.client().await;
    client
        .request(1, "room.room.join", br#""alice""#)
        .await
        .unwrap();
    let answer = client.recv_response().await.unwrap();
    assert!(!answer.error, "{}", json(&answer));

    let (f, b) = (front.id(), back.id());
    let client_span =
        |r: &Received, route: &str| r.span.name == route && r.span.kind == SpanKind::Client as i32;
    spans
        .until("the join's spans", |seen| {
            let has = |f: &dyn Fn(&Received) -> bool| seen.iter().any(f);
            has(&|r| r.is("room.room.join", &f))
                && has(&|r| client_span(r, "room.room.join"))
                && has(&|r| r.is("room.room.join", &b))
                && has(&|r| client_span(r, "sys.bindsession"))
                && has(&|r| r.is("sys.bindsession", &f))
        })
        .await;
    let frontend = spans.find(|r| r.is("room.room.join", &f));
    let forward = spans.find(|r| client_span(r, "room.room.join"));
    let backend = spans.find(|r| r.is("room.room.join", &b));
    let bind_call = spans.find(|r| client_span(r, "sys.bindsession"));
    let bind = spans.find(|r| r.is("sys.bindsession", &f));

    assert_eq!(frontend.service, "otel-test");
    assert_eq!(frontend.span.kind, SpanKind::Server as i32);
    assert!(
        frontend.span.parent_span_id.is_empty(),
        "a client request starts a trace"
    );
    assert_eq!(frontend.attr("route").as_deref(), Some("room.room.join"));
    assert_eq!(frontend.attr("uid").as_deref(), Some("alice"));
    assert!(frontend.attr("session_id").is_some());

    // frontend request -> forward -> backend request -> bind call -> frontend remote
    let trace = &frontend.span.trace_id;
    let chain = [frontend, forward, backend, bind_call, bind];
    for pair in chain.windows(2) {
        let (parent, child) = (&pair[0].span, &pair[1].span);
        assert_eq!(&child.trace_id, trace, "{} is in the trace", child.name);
        assert_eq!(
            child.parent_span_id, parent.span_id,
            "{} has its parent",
            child.name
        );
    }
    assert_eq!(forward.attr("peer_id"), Some(b.clone()));
    assert_eq!(bind_call.attr("peer_id"), Some(f.clone()));
    assert_eq!(backend.span.kind, SpanKind::Server as i32);
    assert_eq!(backend.attr("frontend_id"), Some(f.clone()));
    assert_eq!(backend.attr("session_id"), frontend.attr("session_id"));
    assert_eq!(bind.attr("peer_id"), Some(b.clone()));
    let join_trace = frontend.span.trace_id.clone();

    // A route nobody serves is the client's invention: every span of it is exported
    // as `unknown`, so that clients cannot grow the set of span names at will.
    let invented = format!("room.room.m{}", uuid::Uuid::new_v4().simple());
    client.request(2, &invented, b"{}").await.unwrap();
    let answer = client.recv_response().await.unwrap();
    assert!(answer.error, "{}", json(&answer));
    let of_invented = |r: &Received| r.attr("route").as_deref() == Some(invented.as_str());
    spans
        .until("the invented route's spans", |seen| {
            seen.iter().filter(|r| of_invented(r)).count() == 3
        })
        .await;
    let invented_spans: Vec<_> = spans.seen.iter().filter(|r| of_invented(r)).collect();
    for r in &invented_spans {
        assert_eq!(r.span.name, "unknown", "{:#?}", spans.names());
    }

    // Calls whose carrier is missing or unusable are served, each in a new trace.
    let carriers = [
        (91, None),
        (92, Some(json!("not an object"))),
        (93, Some(json!({ "traceparent": "00-garbage-01" }))),
        (94, Some(json!({ "traceparent": 7 }))),
    ];
    let tester = tester(&infra).await;
    for (session_id, carrier) in &carriers {
        let echoed = echo_with_carrier(&tester, &back, *session_id, carrier.clone()).await;
        assert_eq!(echoed, json!({ "n": session_id }));
    }
    let session = |r: &Received, id: i64| {
        r.is("room.room.echo", &b) && r.attr("session_id") == Some(id.to_string())
    };
    spans
        .until("the echo spans", |seen| {
            carriers
                .iter()
                .all(|(id, _)| seen.iter().any(|r| session(r, *id)))
        })
        .await;
    let mut traces = vec![join_trace];
    for (id, _) in &carriers {
        let echo = spans.find(|r| session(r, *id));
        assert!(echo.span.parent_span_id.is_empty(), "session {id}");
        assert!(!traces.contains(&echo.span.trace_id), "session {id}");
        traces.push(echo.span.trace_id.clone());
    }

    // Shutdown sends what is still waiting for the next batch.
    drop(client);
    front.stop().await;
    back.stop().await;
    drop(tracing::info_span!("last words"));
    telemetry.shutdown().await.expect("last spans sent");
    while let Ok(span) = spans.rx.try_recv() {
        spans.seen.push(span);
    }
    assert!(
        spans.seen.iter().any(|r| r.span.name == "last words"),
        "the span ended before shutdown was exported by it"
    );
}
