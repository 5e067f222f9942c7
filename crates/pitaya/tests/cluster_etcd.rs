//! Service discovery against a real etcd started by `EtcdServer`.
#![cfg(feature = "etcd")]

use std::sync::Arc;
use std::time::Duration;

use pitaya::cluster::etcd_client::{Client, GetOptions, WatchOptions};
use pitaya::cluster::{
    DiscoveryError, DiscoveryEvent, EtcdDiscovery, ServerInfo, ServiceDiscovery,
};
use pitaya::config::EtcdSdConfig;
use pitaya_test_support::{init_tracing, EtcdServer};
use tokio::sync::broadcast;

/// Longest wait for any event; generous for a loaded CI machine.
const WAIT: Duration = Duration::from_secs(30);

fn config(etcd: &EtcdServer) -> EtcdSdConfig {
    let mut config = EtcdSdConfig::default();
    config.endpoints = vec![etcd.endpoint()];
    config.dial_timeout = Duration::from_secs(2);
    config.grant_lease.timeout = Duration::from_secs(5);
    config.grant_lease.retry_interval = Duration::from_millis(100);
    config.shutdown.delay = Duration::ZERO;
    config.startup_timeout = Duration::from_secs(20);
    config
}

async fn start(config: &EtcdSdConfig, info: ServerInfo) -> EtcdDiscovery {
    EtcdDiscovery::start(config.clone(), info).await.unwrap()
}

fn room(id: &str) -> ServerInfo {
    ServerInfo::new("room", false).with_id(id)
}

fn connector(id: &str) -> ServerInfo {
    ServerInfo::new("connector", true).with_id(id)
}

/// Returns the first event that matches, failing after [`WAIT`].
async fn next_event(
    events: &mut broadcast::Receiver<DiscoveryEvent>,
    matches: impl Fn(&DiscoveryEvent) -> bool,
) -> DiscoveryEvent {
    let wait = async {
        loop {
            let event = events.recv().await.expect("discovery events closed");
            if matches(&event) {
                return event;
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("no matching discovery event")
}

fn added(id: &'static str) -> impl Fn(&DiscoveryEvent) -> bool {
    move |e| matches!(e, DiscoveryEvent::Added(s) if s.id == id)
}

fn removed(id: &'static str) -> impl Fn(&DiscoveryEvent) -> bool {
    move |e| matches!(e, DiscoveryEvent::Removed(s) if s.id == id)
}

fn ids(servers: Vec<Arc<ServerInfo>>) -> Vec<String> {
    let mut ids: Vec<String> = servers.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    ids
}

async fn etcd_client(etcd: &EtcdServer) -> Client {
    Client::connect([etcd.endpoint()], None).await.unwrap()
}

/// Waits until every key in `keys` exists in etcd, following a watch.
async fn wait_for_keys(etcd: &EtcdServer, prefix: &str, keys: &[&str]) {
    let mut client = etcd_client(etcd).await;
    let listing = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let mut present: Vec<String> = listing
        .kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_owned())
        .collect();
    let revision = listing.header().unwrap().revision();
    let from = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut watch = client.watch(prefix, Some(from)).await.unwrap();
    let wait = async {
        while !keys.iter().all(|k| present.iter().any(|p| p == k)) {
            let response = watch.message().await.unwrap().expect("watch ended");
            for event in response.events() {
                if let Some(kv) = event.kv() {
                    present.push(kv.key_str().unwrap().to_owned());
                }
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("keys never appeared");
}

#[tokio::test]
async fn two_servers_see_each_other() {
    init_tracing();
    let etcd = EtcdServer::start().unwrap();
    let config = config(&etcd);

    let a = start(&config, connector("a")).await;
    let mut a_events = a.subscribe();
    let b = start(&config, room("b")).await;

    // B read A in its first sync; A learns of B through its watch.
    assert_eq!(ids(b.servers()), ["a", "b"]);
    next_event(&mut a_events, added("b")).await;
    assert_eq!(ids(a.servers_by_type("room")), ["b"]);
    assert_eq!(ids(a.servers_by_type("connector")), ["a"]);
    assert!(a.server("b").is_some_and(|s| !s.frontend));
    assert!(b.server("a").is_some_and(|s| s.frontend));
}

#[tokio::test]
async fn the_record_in_etcd_is_pitayas_json_under_a_lease() {
    init_tracing();
    let etcd = EtcdServer::start().unwrap();
    let info = room("r-1")
        .with_metadata("region", "eu")
        .with_metadata("grpcHost", "h");
    let hostname = info.hostname.clone();
    let discovery = start(&config(&etcd), info).await;
    assert_eq!(discovery.key(), "pitaya/servers/room/r-1");

    let mut client = etcd_client(&etcd).await;
    let found = client.get("pitaya/servers/room/r-1", None).await.unwrap();
    let kv = &found.kvs()[0];
    let want = format!(
        concat!(
            r#"{{"id":"r-1","type":"room","metadata":{{"grpcHost":"h","region":"eu"}},"#,
            r#""frontend":false,"hostname":"{}"}}"#
        ),
        hostname
    );
    assert_eq!(kv.value_str().unwrap(), want);
    assert_ne!(kv.lease(), 0, "the record must expire with its lease");

    let ttl = client.lease_time_to_live(kv.lease(), None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 60);
}

#[tokio::test]
async fn shutdown_revokes_the_lease_and_the_peer_removes_the_server() {
    init_tracing();
    let etcd = EtcdServer::start().unwrap();
    let config = config(&etcd);
    let a = start(&config, connector("a")).await;
    let mut a_events = a.subscribe();
    let b = start(&config, room("b")).await;
    next_event(&mut a_events, added("b")).await;

    b.shutdown().await.unwrap();
    next_event(&mut a_events, removed("b")).await;
    assert!(a.server("b").is_none());
    let mut client = etcd_client(&etcd).await;
    let found = client.get("pitaya/servers/room/b", None).await.unwrap();
    assert!(found.kvs().is_empty());
}

#[tokio::test]
async fn a_killed_server_disappears_when_its_lease_expires() {
    init_tracing();
    let etcd = EtcdServer::start().unwrap();
    let mut config = config(&etcd);
    let a = start(&config, connector("a")).await;
    let mut a_events = a.subscribe();

    config.heartbeat.ttl = Duration::from_secs(2);
    let b = start(&config, room("b")).await;
    next_event(&mut a_events, added("b")).await;

    // Dropping stops the renewals without revoking, as a crash would.
    drop(b);
    next_event(&mut a_events, removed("b")).await;
    let mut client = etcd_client(&etcd).await;
    assert!(client
        .get("pitaya/servers/room/b", None)
        .await
        .unwrap()
        .kvs()
        .is_empty());
}

#[tokio::test]
async fn servers_register_again_after_etcd_loses_its_data() {
    init_tracing();
    let mut etcd = EtcdServer::start().unwrap();
    let config = config(&etcd);
    let a = start(&config, connector("a")).await;
    let mut a_events = a.subscribe();
    let b = start(&config, room("b")).await;
    next_event(&mut a_events, added("b")).await;

    // While etcd is down, lookups keep answering from the cache.
    etcd.stop();
    assert_eq!(ids(a.servers()), ["a", "b"]);
    assert_eq!(ids(b.servers()), ["a", "b"]);

    etcd.restart_empty().unwrap();
    wait_for_keys(
        &etcd,
        "pitaya/servers/",
        &["pitaya/servers/connector/a", "pitaya/servers/room/b"],
    )
    .await;

    // Each side now sees the other through its new watch: a server started
    // after the restart reaches both.
    let mut b_events = b.subscribe();
    let _c = start(&config, room("c")).await;
    next_event(&mut a_events, added("c")).await;
    next_event(&mut b_events, added("c")).await;
    assert!(a.server("b").is_some());
    assert!(b.server("a").is_some());
}

#[tokio::test]
async fn watches_resume_after_etcd_restarts_with_its_data() {
    init_tracing();
    let mut etcd = EtcdServer::start().unwrap();
    let config = config(&etcd);
    let a = start(&config, connector("a")).await;
    let mut a_events = a.subscribe();

    etcd.restart().unwrap();
    let _b = start(&config, room("b")).await;
    next_event(&mut a_events, added("b")).await;
    assert_eq!(ids(a.servers()), ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_waits_for_an_etcd_that_comes_up_late() {
    init_tracing();
    let mut etcd = EtcdServer::start().unwrap();
    let config = config(&etcd);
    etcd.stop();

    let starting = tokio::spawn(EtcdDiscovery::start(config, room("late")));
    etcd.restart().unwrap();
    let discovery = tokio::time::timeout(WAIT, starting)
        .await
        .expect("start-up did not finish")
        .unwrap()
        .unwrap();
    assert_eq!(discovery.local().id, "late");
}

#[tokio::test]
async fn start_up_gives_up_at_the_deadline_naming_the_endpoints() {
    init_tracing();
    let mut etcd = EtcdServer::start().unwrap();
    let mut config = config(&etcd);
    etcd.stop();
    config.startup_timeout = Duration::from_secs(2);

    let err = EtcdDiscovery::start(config, room("r")).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&etcd.endpoint()), "{err}");
}

#[tokio::test]
async fn servers_ignore_other_prefixes_blacklisted_types_and_bad_records() {
    init_tracing();
    let etcd = EtcdServer::start().unwrap();
    let config = config(&etcd);
    let mut blacklisting = config.clone();
    blacklisting.server_types_blacklist = vec!["metagame".into()];
    let a = start(&blacklisting, connector("a")).await;
    let mut a_events = a.subscribe();

    let mut other = config.clone();
    other.prefix = "other/".into();
    let _elsewhere = start(&other, room("elsewhere")).await;
    let _meta = start(&config, ServerInfo::new("metagame", false).with_id("m")).await;
    let mut client = etcd_client(&etcd).await;
    client
        .put("pitaya/servers/room/bad", "not json", None)
        .await
        .unwrap();
    client
        .put("pitaya/servers/room/x/extra", room("x").to_json(), None)
        .await
        .unwrap();
    client
        .put("pitaya/servers/room/y", room("z").to_json(), None)
        .await
        .unwrap();

    // Events arrive in etcd's order, so the first one after all of the above
    // is the last server: nothing before it was taken.
    let _last = start(&config, room("last")).await;
    let first = next_event(&mut a_events, |_| true).await;
    assert_eq!(first, DiscoveryEvent::Added(a.server("last").unwrap()));
    assert_eq!(ids(a.servers()), ["a", "last"]);
}
