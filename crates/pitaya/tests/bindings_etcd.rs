//! The etcd binding storage against a real etcd: Pitaya's keys, the lease, and
//! frontends taking users over from each other.
#![cfg(feature = "etcd")]

use std::time::Duration;

use pitaya::cluster::bindings::{BindingError, BindingStorage, EtcdBindingStorage};
use pitaya::cluster::etcd_client::Client;
use pitaya::cluster::ServerInfo;
use pitaya::config::EtcdBindingStorageConfig;
use pitaya_test_support::EtcdServer;

/// Longest wait for etcd to show a change.
const WAIT: Duration = Duration::from_secs(30);

fn etcd() -> EtcdServer {
    pitaya_test_support::init_tracing();
    EtcdServer::start().expect("etcd starts")
}

fn config(etcd: &EtcdServer) -> EtcdBindingStorageConfig {
    let mut c = EtcdBindingStorageConfig::default();
    c.endpoints = vec![etcd.endpoint()];
    c.dial_timeout = Duration::from_secs(2);
    c
}

fn frontend(id: &str) -> ServerInfo {
    ServerInfo::new("connector", true).with_id(id)
}

async fn storage(etcd: &EtcdServer, id: &str) -> EtcdBindingStorage {
    EtcdBindingStorage::connect(&config(etcd), &frontend(id))
        .await
        .expect("binding storage connects")
}

async fn raw(etcd: &EtcdServer) -> Client {
    Client::connect([etcd.endpoint()], None).await.unwrap()
}

/// Returns the value and lease of `key`, if present.
async fn entry(etcd: &EtcdServer, key: &str) -> Option<(String, i64)> {
    let resp = raw(etcd).await.get(key, None).await.unwrap();
    let kv = resp.kvs().first()?;
    Some((kv.value_str().unwrap().to_owned(), kv.lease()))
}

/// Returns once `key` holds `value` (`None`: is absent); panics after [`WAIT`].
async fn until(etcd: &EtcdServer, key: &str, value: Option<&str>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = entry(etcd, key).await.map(|(v, _)| v);
        if now.as_deref() == value {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} is {now:?}, waited for {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_bind_is_stored_under_pitayas_key_on_a_lease_of_the_configured_ttl() {
    let etcd = etcd();
    let f1 = storage(&etcd, "f1").await;

    assert_eq!(f1.put("alice").await.unwrap(), None);
    let key = "pitaya/bindings/connector/alice";
    assert_eq!(f1.key("connector", "alice"), key);
    let (value, lease) = entry(&etcd, key).await.expect("binding stored");
    assert_eq!(value, "f1");
    let ttl = raw(&etcd).await.lease_time_to_live(lease, None).await;
    assert_eq!(ttl.unwrap().granted_ttl(), 5 * 3600);

    assert_eq!(
        f1.frontend_id("alice", "connector")
            .await
            .unwrap()
            .as_deref(),
        Some("f1")
    );
    assert_eq!(f1.frontend_id("alice", "gate").await.unwrap(), None);
    assert_eq!(f1.frontend_id("bob", "connector").await.unwrap(), None);

    f1.remove("alice").await.unwrap();
    assert_eq!(entry(&etcd, key).await, None);
}

#[tokio::test]
async fn a_frontend_taking_a_user_over_learns_the_old_one_which_cannot_erase_it() {
    let etcd = etcd();
    let f1 = storage(&etcd, "f1").await;
    let f2 = storage(&etcd, "f2").await;

    assert_eq!(f1.put("carol").await.unwrap(), None);
    assert_eq!(f2.put("carol").await.unwrap().as_deref(), Some("f1"));
    // Binding again on the same frontend names no other one.
    assert_eq!(f2.put("carol").await.unwrap(), None);

    // The old frontend's session closing removes only its own binding.
    f1.remove("carol").await.unwrap();
    let key = f1.key("connector", "carol");
    assert_eq!(entry(&etcd, &key).await.map(|e| e.0).as_deref(), Some("f2"));
}

#[tokio::test]
async fn shutdown_revokes_the_lease_and_with_it_every_binding_of_the_frontend() {
    let etcd = etcd();
    let f1 = storage(&etcd, "f1").await;
    let f2 = storage(&etcd, "f2").await;
    for uid in ["a", "b"] {
        f1.put(uid).await.unwrap();
    }
    f2.put("c").await.unwrap();

    f1.shutdown().await;
    assert_eq!(f2.frontend_id("a", "connector").await.unwrap(), None);
    assert_eq!(f2.frontend_id("b", "connector").await.unwrap(), None);
    assert_eq!(
        f2.frontend_id("c", "connector").await.unwrap().as_deref(),
        Some("f2")
    );
}

#[tokio::test]
async fn a_lost_lease_is_replaced_and_the_bindings_are_put_back() {
    let etcd = etcd();
    let mut cfg = config(&etcd);
    // Renewals every second, so the loss is noticed quickly.
    cfg.lease_ttl = Duration::from_secs(3);
    let f1 = EtcdBindingStorage::connect(&cfg, &frontend("f1"))
        .await
        .unwrap();
    let f2 = storage(&etcd, "f2").await;
    f1.put("dana").await.unwrap();
    f1.put("erin").await.unwrap();
    let dana = f1.key("connector", "dana");
    let erin = f1.key("connector", "erin");
    let (_, lease) = entry(&etcd, &dana).await.unwrap();

    // etcd forgets the lease, as after losing its data; meanwhile another
    // frontend takes one of the users.
    raw(&etcd).await.lease_revoke(lease).await.unwrap();
    until(&etcd, &dana, None).await;
    f2.put("erin").await.unwrap();

    until(&etcd, &dana, Some("f1")).await;
    let (_, new_lease) = entry(&etcd, &dana).await.unwrap();
    assert_ne!(new_lease, lease);
    assert_eq!(entry(&etcd, &erin).await.unwrap().0, "f2");
}

#[tokio::test]
async fn a_bind_after_the_lease_is_gone_gets_a_new_lease_at_once() {
    let etcd = etcd();
    let f1 = storage(&etcd, "f1").await;
    f1.put("finn").await.unwrap();
    let key = f1.key("connector", "finn");
    let (_, lease) = entry(&etcd, &key).await.unwrap();
    raw(&etcd).await.lease_revoke(lease).await.unwrap();

    // The 5h lease would not be renewed for over an hour: the put itself recovers.
    assert_eq!(f1.put("gail").await.unwrap(), None);
    let gail = f1.key("connector", "gail");
    let (value, new_lease) = entry(&etcd, &gail).await.unwrap();
    assert_eq!((value.as_str(), new_lease == lease), ("f1", false));
    assert_eq!(entry(&etcd, &key).await.unwrap().0, "f1", "finn put back");
}

#[tokio::test]
async fn a_lost_long_lease_is_replaced_without_waiting_for_a_third_of_its_ttl() {
    let etcd = etcd();
    // The default 5 h TTL: renewing at a third of it would take 1 h 40 min.
    let f1 = storage(&etcd, "f1").await;
    f1.put("hana").await.unwrap();
    let key = f1.key("connector", "hana");
    let (_, lease) = entry(&etcd, &key).await.unwrap();

    raw(&etcd).await.lease_revoke(lease).await.unwrap();
    until(&etcd, &key, None).await;

    until(&etcd, &key, Some("f1")).await;
    let (_, new_lease) = entry(&etcd, &key).await.unwrap();
    assert_ne!(new_lease, lease);
    let ttl = raw(&etcd).await.lease_time_to_live(new_lease, None).await;
    assert_eq!(ttl.unwrap().granted_ttl(), 5 * 3600);
}

#[tokio::test]
async fn an_unreachable_etcd_fails_connect_within_the_dial_timeout() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = EtcdBindingStorageConfig::default();
    cfg.endpoints = vec![closed.local_addr().unwrap().to_string()];
    drop(closed);
    cfg.dial_timeout = Duration::from_millis(500);
    let err = EtcdBindingStorage::connect(&cfg, &frontend("f1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BindingError::Backend { op: "connect", .. }
                | BindingError::Timeout { op: "connect", .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn many_users_are_looked_up_at_once_across_frontends_and_transactions() {
    let etcd = etcd();
    let (f1, f2) = (storage(&etcd, "f1").await, storage(&etcd, "f2").await);
    // More users than one etcd transaction takes, on two frontends.
    let uids: Vec<String> = (0..300).map(|n| format!("u{n}")).collect();
    for (n, uid) in uids.iter().enumerate() {
        let holder = if n % 3 == 0 { &f2 } else { &f1 };
        holder.put(uid).await.unwrap();
    }
    let mut asked = uids.clone();
    asked.push("nobody".into());

    let found = f1.frontend_ids(&asked, "connector").await.unwrap();
    assert_eq!(
        found.len(),
        uids.len(),
        "the user without binding is left out"
    );
    for (n, uid) in uids.iter().enumerate() {
        let expected = if n % 3 == 0 { "f2" } else { "f1" };
        assert_eq!(found.get(uid).map(String::as_str), Some(expected), "{uid}");
    }
    assert!(f1.frontend_ids(&asked, "gate").await.unwrap().is_empty());
    f1.shutdown().await;
    f2.shutdown().await;
}
