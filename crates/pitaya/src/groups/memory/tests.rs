use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;

const TTL: Duration = Duration::from_secs(10);

async fn store_with(name: &str, uids: &[&str]) -> MemoryGroupStore {
    let store = MemoryGroupStore::new();
    store.create(name).await.unwrap();
    for uid in uids {
        store.add_member(name, uid).await.unwrap();
    }
    store
}

#[tokio::test]
async fn create_rejects_a_taken_name() {
    let store = MemoryGroupStore::new();
    store.create("g").await.unwrap();
    assert!(matches!(
        store.create("g").await,
        Err(GroupError::AlreadyExists)
    ));
    assert!(matches!(
        store.create_with_ttl("g", TTL).await,
        Err(GroupError::AlreadyExists)
    ));
}

#[tokio::test]
async fn create_with_ttl_rejects_a_taken_name() {
    let store = MemoryGroupStore::new();
    store.create_with_ttl("g", TTL).await.unwrap();
    assert!(matches!(
        store.create("g").await,
        Err(GroupError::AlreadyExists)
    ));
}

#[tokio::test]
async fn new_group_is_empty() {
    let store = store_with("g", &[]).await;
    assert_eq!(store.members("g").await.unwrap(), Vec::<String>::new());
    assert_eq!(store.count_members("g").await.unwrap(), 0);
}

#[tokio::test]
async fn members_are_listed_in_insertion_order() {
    let store = store_with("g", &["c", "a", "b"]).await;
    assert_eq!(store.members("g").await.unwrap(), ["c", "a", "b"]);
    assert_eq!(store.count_members("g").await.unwrap(), 3);
}

#[tokio::test]
async fn add_member_rejects_duplicates_and_empty_uids() {
    let store = store_with("g", &["a"]).await;
    assert!(matches!(
        store.add_member("g", "a").await,
        Err(GroupError::MemberExists)
    ));
    assert!(matches!(
        store.add_member("g", "").await,
        Err(GroupError::EmptyUid)
    ));
    assert!(matches!(
        store.add_member("nope", "").await,
        Err(GroupError::EmptyUid)
    ));
    assert_eq!(store.count_members("g").await.unwrap(), 1);
}

#[tokio::test]
async fn contains_member_reports_membership() {
    let store = store_with("g", &["a"]).await;
    assert!(store.contains_member("g", "a").await.unwrap());
    assert!(!store.contains_member("g", "b").await.unwrap());
    assert!(matches!(
        store.contains_member("g", "").await,
        Err(GroupError::EmptyUid)
    ));
}

#[tokio::test]
async fn remove_member_swaps_in_the_last_member() {
    let store = store_with("g", &["a", "b", "c", "d"]).await;
    store.remove_member("g", "b").await.unwrap();
    assert_eq!(store.members("g").await.unwrap(), ["a", "d", "c"]);

    // The moved member's position is tracked, so it can be removed in turn.
    store.remove_member("g", "d").await.unwrap();
    assert_eq!(store.members("g").await.unwrap(), ["a", "c"]);
    store.remove_member("g", "c").await.unwrap();
    assert_eq!(store.members("g").await.unwrap(), ["a"]);
    assert!(!store.contains_member("g", "d").await.unwrap());
}

#[tokio::test]
async fn remove_member_rejects_non_members() {
    let store = store_with("g", &["a"]).await;
    assert!(matches!(
        store.remove_member("g", "b").await,
        Err(GroupError::MemberNotFound)
    ));
    assert!(matches!(
        store.remove_member("g", "").await,
        Err(GroupError::MemberNotFound)
    ));
    store.remove_member("g", "a").await.unwrap();
    assert!(matches!(
        store.remove_member("g", "a").await,
        Err(GroupError::MemberNotFound)
    ));
}

#[tokio::test]
async fn removed_member_can_be_added_again() {
    let store = store_with("g", &["a", "b"]).await;
    store.remove_member("g", "a").await.unwrap();
    store.add_member("g", "a").await.unwrap();
    assert_eq!(store.members("g").await.unwrap(), ["b", "a"]);
}

#[tokio::test]
async fn remove_all_empties_but_keeps_the_group() {
    let store = store_with("g", &["a", "b"]).await;
    store.remove_all("g").await.unwrap();
    assert_eq!(store.count_members("g").await.unwrap(), 0);
    assert!(!store.contains_member("g", "a").await.unwrap());
    store.add_member("g", "a").await.unwrap();
    assert_eq!(store.members("g").await.unwrap(), ["a"]);
}

#[tokio::test]
async fn delete_removes_the_group_and_its_members() {
    let store = store_with("g", &["a"]).await;
    store.delete("g").await.unwrap();
    assert!(matches!(
        store.members("g").await,
        Err(GroupError::NotFound)
    ));
    assert!(matches!(store.delete("g").await, Err(GroupError::NotFound)));

    // The name is free again and the new group starts empty.
    store.create("g").await.unwrap();
    assert_eq!(store.count_members("g").await.unwrap(), 0);
}

#[tokio::test]
async fn calls_on_a_missing_group_return_not_found() {
    let s = MemoryGroupStore::new();
    let not_found = |r: Result<(), GroupError>| matches!(r, Err(GroupError::NotFound));
    assert!(matches!(s.members("x").await, Err(GroupError::NotFound)));
    assert!(matches!(
        s.contains_member("x", "a").await,
        Err(GroupError::NotFound)
    ));
    assert!(matches!(
        s.count_members("x").await,
        Err(GroupError::NotFound)
    ));
    assert!(not_found(s.add_member("x", "a").await));
    assert!(not_found(s.remove_member("x", "a").await));
    assert!(not_found(s.remove_all("x").await));
    assert!(not_found(s.renew_ttl("x").await));
    assert!(not_found(s.delete("x").await));
}

#[tokio::test]
async fn renew_ttl_needs_a_ttl_group() {
    let store = store_with("g", &[]).await;
    assert!(matches!(store.renew_ttl("g").await, Err(GroupError::NoTtl)));
    store.create_with_ttl("t", TTL).await.unwrap();
    store.renew_ttl("t").await.unwrap();
}

#[test]
fn error_messages_match_pitaya() {
    assert_eq!(
        GroupError::AlreadyExists.to_string(),
        "group already exists"
    );
    assert_eq!(GroupError::NotFound.to_string(), "group not found");
    assert_eq!(GroupError::EmptyUid.to_string(), "empty uid");
    assert_eq!(
        GroupError::MemberExists.to_string(),
        "member already exists in group"
    );
    assert_eq!(
        GroupError::MemberNotFound.to_string(),
        "member not found in the group"
    );
    assert_eq!(GroupError::NoTtl.to_string(), "group has no ttl");
    let backend = GroupError::Backend("etcd unavailable".into());
    assert_eq!(backend.to_string(), "group backend: etcd unavailable");
}

#[tokio::test(start_paused = true)]
async fn ttl_group_expires_after_its_ttl() {
    let store = MemoryGroupStore::new();
    store.create_with_ttl("t", TTL).await.unwrap();
    store.add_member("t", "a").await.unwrap();

    // Expiry needs strictly more than the TTL, as in Pitaya.
    tokio::time::advance(TTL).await;
    assert_eq!(store.sweep_expired(), 0);
    assert!(store.contains_member("t", "a").await.unwrap());

    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(store.sweep_expired(), 1);
    assert!(matches!(
        store.members("t").await,
        Err(GroupError::NotFound)
    ));
}

#[tokio::test(start_paused = true)]
async fn renewed_ttl_group_outlives_its_first_deadline() {
    let store = MemoryGroupStore::new();
    store.create_with_ttl("t", TTL).await.unwrap();

    tokio::time::advance(TTL - Duration::from_secs(1)).await;
    store.renew_ttl("t").await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(store.sweep_expired(), 0);
    assert_eq!(store.count_members("t").await.unwrap(), 0);

    tokio::time::advance(TTL).await;
    assert_eq!(store.sweep_expired(), 1);
}

#[tokio::test(start_paused = true)]
async fn group_without_ttl_never_expires() {
    let store = store_with("g", &["a"]).await;
    store.create_with_ttl("t", TTL).await.unwrap();
    tokio::time::advance(Duration::from_secs(365 * 86_400)).await;
    assert_eq!(store.sweep_expired(), 1);
    assert_eq!(store.members("g").await.unwrap(), ["a"]);
}

#[tokio::test(start_paused = true)]
async fn sweeper_deletes_expired_groups_on_its_tick() {
    let store = Arc::new(MemoryGroupStore::new());
    store.create_with_ttl("t", TTL).await.unwrap();
    store.create("g").await.unwrap();
    let shutdown = CancellationToken::new();
    let task = store.spawn_sweeper(Duration::from_secs(30), shutdown.clone());

    // With time paused, this sleep returns only after the sweeper's first
    // tick at 30s has run, since the runtime advances to the earliest timer.
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert!(matches!(
        store.count_members("t").await,
        Err(GroupError::NotFound)
    ));
    assert_eq!(store.count_members("g").await.unwrap(), 0);

    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn sweeper_stops_on_cancel() {
    let store = Arc::new(MemoryGroupStore::new());
    let shutdown = CancellationToken::new();
    let task = store.spawn_sweeper(Duration::from_secs(30), shutdown.clone());
    shutdown.cancel();
    task.await.unwrap();
    // The task kept no strong reference.
    assert_eq!(Arc::strong_count(&store), 1);
}

#[tokio::test(start_paused = true)]
async fn sweeper_stops_once_the_store_is_dropped() {
    let store = Arc::new(MemoryGroupStore::new());
    let task = store.spawn_sweeper(Duration::ZERO, CancellationToken::new());
    drop(store);
    task.await.unwrap();
}
