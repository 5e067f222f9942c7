//! The etcd group store (spec 11) against a real etcd started by `EtcdServer`.
#![cfg(feature = "etcd")]

use std::time::Duration;

use pitaya::cluster::etcd_client::{Client, GetOptions};
use pitaya::config::EtcdGroupsConfig;
use pitaya::groups::EtcdGroupStore;
use pitaya::{GroupError, GroupStore};
use pitaya_test_support::{init_tracing, EtcdServer};

/// Longest wait for etcd to expire a lease; leases expire up to a few seconds late.
const EXPIRY_WAIT: Duration = Duration::from_secs(60);

fn config(etcd: &EtcdServer) -> EtcdGroupsConfig {
    let mut config = EtcdGroupsConfig::default();
    config.endpoints = vec![etcd.endpoint()];
    config
}

async fn store(etcd: &EtcdServer) -> EtcdGroupStore {
    EtcdGroupStore::connect(&config(etcd)).await.unwrap()
}

/// Returns the etcd keys under `prefix` with their values and leases, in key order.
async fn raw_keys(etcd: &EtcdServer, prefix: &str) -> Vec<(String, String, i64)> {
    let mut client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let resp = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    resp.kvs()
        .iter()
        .map(|kv| {
            let key = kv.key_str().unwrap().to_owned();
            (key, kv.value_str().unwrap().to_owned(), kv.lease())
        })
        .collect()
}

#[tokio::test]
async fn members_can_be_added_listed_counted_and_removed() {
    init_tracing();
    let etcd = EtcdServer::start().unwrap();
    let store = store(&etcd).await;

    store.create("lobby").await.unwrap();
    for uid in ["carol", "alice", "bob"] {
        store.add_member("lobby", uid).await.unwrap();
    }
    // etcd lists keys in order, so members come sorted.
    assert_eq!(
        store.members("lobby").await.unwrap(),
        ["alice", "bob", "carol"]
    );
    assert_eq!(store.count_members("lobby").await.unwrap(), 3);
    assert!(store.contains_member("lobby", "bob").await.unwrap());
    assert!(!store.contains_member("lobby", "dave").await.unwrap());

    store.remove_member("lobby", "bob").await.unwrap();
    assert_eq!(store.members("lobby").await.unwrap(), ["alice", "carol"]);
    assert!(matches!(
        store.remove_member("lobby", "bob").await,
        Err(GroupError::MemberNotFound)
    ));

    store.remove_all("lobby").await.unwrap();
    assert!(store.members("lobby").await.unwrap().is_empty());
    assert_eq!(store.count_members("lobby").await.unwrap(), 0);

    store.add_member("lobby", "erin").await.unwrap();
    store.delete("lobby").await.unwrap();
    assert!(matches!(
        store.members("lobby").await,
        Err(GroupError::NotFound)
    ));
    assert!(raw_keys(&etcd, "pitaya/groups/").await.is_empty());
}

#[tokio::test]
async fn errors_follow_pitaya() {
    init_tracing();
    let etcd = EtcdServer::start().unwrap();
    let store = store(&etcd).await;

    store.create("g").await.unwrap();
    assert!(matches!(
        store.create("g").await,
        Err(GroupError::AlreadyExists)
    ));
    assert!(matches!(
        store.create_with_ttl("g", Duration::from_secs(30)).await,
        Err(GroupError::AlreadyExists)
    ));

    store.add_member("g", "a").await.unwrap();
    assert!(matches!(
        store.add_member("g", "a").await,
        Err(GroupError::MemberExists)
    ));
    assert!(matches!(
        store.add_member("g", "").await,
        Err(GroupError::EmptyUid)
    ));
    assert!(matches!(
        store.contains_member("g", "").await,
        Err(GroupError::EmptyUid)
    ));
    assert!(matches!(store.renew_ttl("g").await, Err(GroupError::NoTtl)));
    assert_eq!(store.members("g").await.unwrap(), ["a"]);

    let missing = "nope";
    assert!(matches!(
        store.members(missing).await,
        Err(GroupError::NotFound)
    ));
    assert!(matches!(
        store.add_member(missing, "a").await,
        Err(GroupError::NotFound)
    ));
    assert!(matches!(
        store.contains_member(missing, "a").await,
        Err(GroupError::NotFound)
    ));
    assert!(matches!(
        store.remove_all(missing).await,
        Err(GroupError::NotFound)
    ));
    assert!(matches!(
        store.renew_ttl(missing).await,
        Err(GroupError::NotFound)
    ));
    assert!(matches!(
        store.delete(missing).await,
        Err(GroupError::NotFound)
    ));
    // Pitaya's etcd store checks neither of these against the group key.
    assert_eq!(store.count_members(missing).await.unwrap(), 0);
    assert!(matches!(
        store.remove_member(missing, "a").await,
        Err(GroupError::MemberNotFound)
    ));
    assert!(matches!(
        store.create("a/uids/b").await,
        Err(GroupError::InvalidName(_))
    ));
}

#[tokio::test]
async fn keys_use_pitaya_layout_and_members_share_the_group_lease() {
    init_tracing();
    let etcd = EtcdServer::start().unwrap();
    let mut cfg = config(&etcd);
    cfg.prefix = "game/".into();
    let store = EtcdGroupStore::connect(&cfg).await.unwrap();

    store.create("plain").await.unwrap();
    store.add_member("plain", "u1").await.unwrap();
    store
        .create_with_ttl("timed", Duration::from_secs(300))
        .await
        .unwrap();
    store.add_member("timed", "u2").await.unwrap();
    store.renew_ttl("timed").await.unwrap();

    let keys = raw_keys(&etcd, "game/groups/").await;
    let names: Vec<&str> = keys.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "game/groups/plain",
            "game/groups/plain/uids/u1",
            "game/groups/timed",
            "game/groups/timed/uids/u2",
        ]
    );
    assert!(keys.iter().all(|(_, value, _)| value.is_empty()));
    let leases: Vec<i64> = keys.iter().map(|(_, _, lease)| *lease).collect();
    assert_eq!(leases[..2], [0, 0]);
    assert_ne!(leases[2], 0);
    assert_eq!(leases[3], leases[2]);
}

#[tokio::test]
async fn group_with_ttl_expires_with_its_members() {
    init_tracing();
    let etcd = EtcdServer::start().unwrap();
    let store = store(&etcd).await;

    store
        .create_with_ttl("short", Duration::from_secs(1))
        .await
        .unwrap();
    store.add_member("short", "a").await.unwrap();
    store.create("kept").await.unwrap();

    let expired = async {
        loop {
            match store.members("short").await {
                Err(GroupError::NotFound) => break,
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
    };
    tokio::time::timeout(EXPIRY_WAIT, expired)
        .await
        .expect("the TTL group expires");
    assert!(raw_keys(&etcd, "pitaya/groups/short").await.is_empty());
    assert!(store.members("kept").await.unwrap().is_empty());
}

#[tokio::test]
async fn two_stores_on_one_etcd_see_the_same_groups() {
    init_tracing();
    let etcd = EtcdServer::start().unwrap();
    let (front, back) = (store(&etcd).await, store(&etcd).await);

    front.create("match-7").await.unwrap();
    front.add_member("match-7", "alice").await.unwrap();
    back.add_member("match-7", "bob").await.unwrap();
    assert_eq!(back.members("match-7").await.unwrap(), ["alice", "bob"]);
    assert!(matches!(
        back.add_member("match-7", "alice").await,
        Err(GroupError::MemberExists)
    ));
    assert!(matches!(
        back.create("match-7").await,
        Err(GroupError::AlreadyExists)
    ));

    back.remove_member("match-7", "alice").await.unwrap();
    assert_eq!(front.members("match-7").await.unwrap(), ["bob"]);

    back.delete("match-7").await.unwrap();
    assert!(matches!(
        front.members("match-7").await,
        Err(GroupError::NotFound)
    ));
    front.create("match-7").await.unwrap();
    assert_eq!(back.count_members("match-7").await.unwrap(), 0);
}

#[tokio::test]
async fn connecting_to_no_etcd_is_a_backend_error() {
    init_tracing();
    let mut cfg = EtcdGroupsConfig::default();
    // A port we bound and released: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg.endpoints = vec![format!("127.0.0.1:{port}")];
    cfg.dial_timeout = Duration::from_secs(2);
    let result = EtcdGroupStore::connect(&cfg).await;
    assert!(matches!(result, Err(GroupError::Backend(_))));
}
