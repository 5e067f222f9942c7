//! The clustered chat's metrics with one switch: `PITAYA_METRICS_PROMETHEUS_ENABLED`
//! on every process, `/metrics` on the port each one logs.

mod support;

use std::net::SocketAddr;

use pitaya_test_support::http_get;
use support::{field, join, wait_for, Connector, Infra, Proc};

/// The switch, with port 0 so that each process picks a free port and logs it.
const METRICS_ON: &[(&str, &str)] = &[
    ("PITAYA_METRICS_PROMETHEUS_ENABLED", "true"),
    ("PITAYA_METRICS_PROMETHEUS_PORT", "0"),
    ("PITAYA_METRICS_PERIOD", "100ms"),
];

/// Returns the loopback address of the `/metrics` listener `proc` logged.
fn metrics_addr(proc: &Proc) -> SocketAddr {
    let line = proc
        .logged(&["metrics and health endpoint listening"])
        .expect("the metrics listener is logged before the cluster is joined");
    let addr: SocketAddr = field(line, "addr").unwrap().parse().unwrap();
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

/// Returns the value of the one sample of `name` whose line contains every one of
/// `labels`; `None` when there is none or more than one.
async fn sample(addr: SocketAddr, name: &str, labels: &[&str]) -> Option<f64> {
    let (status, text) = http_get(addr, "/metrics").await.ok()?;
    assert_eq!(status, 200);
    let matching: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .collect();
    match matching[..] {
        [one] => one.rsplit(' ').next()?.parse().ok(),
        _ => None,
    }
}

#[tokio::test]
async fn connector_and_room_expose_metrics_with_one_switch() {
    let infra = Infra::start();
    let mut room = Proc::start_env(&infra, &["room"], METRICS_ON);
    room.joined().await;
    let connector = Connector::start_env(&infra, METRICS_ON).await;
    let (front, back) = (metrics_addr(&connector.proc), metrics_addr(&room));

    let servers = "pitaya_service_discovery_count_servers";
    wait_for("the connector to count the room", || async {
        sample(front, servers, &[r#"type="room""#]).await == Some(1.0)
    })
    .await;
    wait_for("the room to count the connector", || async {
        sample(back, servers, &[r#"type="connector""#]).await == Some(1.0)
    })
    .await;

    let mut client = connector.tcp_client().await;
    assert!(join(&mut client, 1, "metered").await.0);
    let clients = "pitaya_acceptor_connected_clients";
    assert_eq!(
        sample(front, clients, &[r#"serverType="connector""#]).await,
        Some(1.0)
    );
    let answers = "pitaya_handler_response_time_seconds_count";
    let join_route = r#"route="room.room.join""#;
    for kind in [r#"type="handler""#, r#"type="rpc""#] {
        wait_for("the join's answer and call to be counted", || async {
            sample(front, answers, &[join_route, kind, r#"status="ok""#]).await == Some(1.0)
        })
        .await;
    }

    let (code, body) = http_get(back, "/readyz").await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""registered":true"#), "{body}");
}
