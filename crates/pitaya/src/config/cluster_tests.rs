use std::time::Duration;

use figment::providers::Serialized;
use figment::{Figment, Jail};

use super::*;

/// Runs `f` in a figment jail with the host's `PITAYA_*` variables cleared.
// figment's Jail fixes the closure's error type; we cannot box it.
#[allow(clippy::result_large_err)]
fn jailed(f: impl FnOnce(&mut Jail) -> Result<(), String>) {
    Jail::expect_with(|jail| {
        for (key, _) in std::env::vars() {
            if key.to_ascii_uppercase().starts_with("PITAYA_") {
                jail.set_env(&key, "");
                std::env::remove_var(&key);
            }
        }
        f(jail).map_err(figment::Error::from)
    });
}

fn invalid(config: &Config) -> String {
    config.validate().unwrap_err().to_string()
}

#[test]
fn cluster_defaults_match_pitaya() {
    let c = Config::default().cluster;
    assert_eq!(c.info.region, "");
    assert_eq!(c.rpc.client.grpc.dial_timeout, Duration::from_secs(5));
    assert_eq!(c.rpc.client.grpc.request_timeout, Duration::from_secs(5));
    assert!(!c.rpc.client.grpc.lazy_connection);
    assert_eq!(c.rpc.server.grpc.port, 3434);
    assert_eq!(c.rpc.server.grpc.host, "");
    assert_eq!(c.rpc.transport, TransportKind::Nats);

    let nats = &c.rpc.client.nats;
    assert_eq!(nats.connection.connect, "nats://localhost:4222");
    assert_eq!(nats.request_timeout, Duration::from_secs(5));
    assert_eq!(nats.connection.connection_timeout, Duration::from_secs(2));
    assert_eq!(nats.connection.max_reconnection_retries, 15);
    assert!(nats.connection.websocket_compression);
    assert_eq!(nats.connection.reconnect_jitter, Duration::from_millis(100));
    assert_eq!(nats.connection.reconnect_jitter_tls, Duration::from_secs(1));
    assert_eq!(nats.connection.reconnect_wait, Duration::from_secs(1));
    assert_eq!(nats.connection.ping_interval, Duration::from_secs(120));
    assert_eq!(nats.connection.max_pings_outstanding, 3);
    let server = &c.rpc.server.nats;
    assert_eq!(server.connection, NatsConnectionConfig::default());
    assert_eq!(server.buffer.messages, 75);
    assert_eq!(server.buffer.push, 100);
    assert_eq!(server.services, 30);

    let etcd = &c.sd.etcd;
    assert_eq!(etcd.endpoints, ["localhost:2379"]);
    assert_eq!((etcd.user.as_str(), etcd.pass.as_str()), ("", ""));
    assert_eq!(etcd.dial_timeout, Duration::from_secs(5));
    assert_eq!(etcd.prefix, "pitaya/");
    assert_eq!(etcd.heartbeat.ttl, Duration::from_secs(60));
    assert!(!etcd.heartbeat.log);
    assert_eq!(etcd.sync_servers.interval, Duration::from_secs(120));
    assert_eq!(etcd.sync_servers.parallelism, 10);
    assert_eq!(etcd.revoke.timeout, Duration::from_secs(5));
    assert_eq!(etcd.grant_lease.timeout, Duration::from_secs(60));
    assert_eq!(etcd.grant_lease.max_retries, 15);
    assert_eq!(etcd.grant_lease.retry_interval, Duration::from_secs(5));
    assert_eq!(etcd.shutdown.delay, Duration::from_millis(300));
    assert!(etcd.server_types_blacklist.is_empty());
    assert_eq!(etcd.startup_timeout, Duration::from_secs(30));

    let bindings = Config::default().modules.binding_storage.etcd;
    assert_eq!(bindings.endpoints, ["localhost:2379"]);
    assert_eq!(bindings.prefix, "pitaya/");
    assert_eq!(bindings.dial_timeout, Duration::from_secs(5));
    assert_eq!(bindings.lease_ttl, Duration::from_secs(5 * 3600));
    Config::default().validate().unwrap();
}

#[test]
fn env_switches_to_grpc_and_sets_its_keys() {
    jailed(|jail| {
        jail.set_env("PITAYA_CLUSTER_RPC_TRANSPORT", "grpc");
        jail.set_env("PITAYA_CLUSTER_RPC_SERVER_GRPC_PORT", "0");
        jail.set_env("PITAYA_CLUSTER_RPC_SERVER_GRPC_HOST", "10.0.0.7");
        jail.set_env("PITAYA_CLUSTER_RPC_CLIENT_GRPC_REQUESTTIMEOUT", "750ms");
        jail.set_env(
            "PITAYA_MODULES_BINDINGSTORAGE_ETCD_ENDPOINTS",
            "e1:2379,e2:2379",
        );
        jail.set_env("PITAYA_MODULES_BINDINGSTORAGE_ETCD_LEASETTL", "1h");
        let c = Config::load().map_err(|e| e.to_string())?;
        let rpc = &c.cluster.rpc;
        assert_eq!(rpc.transport, TransportKind::Grpc);
        assert_eq!(rpc.server.grpc.port, 0);
        assert_eq!(rpc.server.grpc.host, "10.0.0.7");
        assert_eq!(rpc.client.grpc.request_timeout, Duration::from_millis(750));
        let bindings = &c.modules.binding_storage.etcd;
        assert_eq!(bindings.endpoints, ["e1:2379", "e2:2379"]);
        assert_eq!(bindings.lease_ttl, Duration::from_secs(3600));
        Ok(())
    });
}

#[test]
fn an_unknown_transport_is_refused_naming_the_key() {
    jailed(|jail| {
        jail.set_env("PITAYA_CLUSTER_RPC_TRANSPORT", "carrier-pigeon");
        let err = Config::load().unwrap_err().to_string();
        assert!(err.contains("pitaya.cluster.rpc.transport"), "{err}");
        Ok(())
    });
}

#[test]
fn toml_file_sets_cluster_keys_by_pitaya_names() {
    jailed(|jail| {
        let toml = r#"
            [pitaya.cluster.info]
            region = "eu"
            [pitaya.cluster.rpc.client.nats]
            connect = "nats://nats:4222"
            requesttimeout = "2s"
            maxreconnectionretries = 3
            [pitaya.cluster.rpc.server.nats]
            connect = "nats://other:4222"
            services = 4
            [pitaya.cluster.rpc.server.nats.buffer]
            push = 7
            [pitaya.cluster.sd.etcd]
            endpoints = ["e1:2379", "e2:2379"]
            prefix = "game/"
            servertypesblacklist = ["metagame"]
            [pitaya.cluster.sd.etcd.heartbeat]
            ttl = "10s"
            [pitaya.cluster.sd.etcd.grantlease]
            retryinterval = "250ms"
        "#;
        jail.create_file("p.toml", toml)
            .map_err(|e| e.to_string())?;
        let c = Config::from_file("p.toml")
            .map_err(|e| e.to_string())?
            .cluster;
        assert_eq!(c.info.region, "eu");
        assert_eq!(c.rpc.client.nats.connection.connect, "nats://nats:4222");
        assert_eq!(c.rpc.client.nats.request_timeout, Duration::from_secs(2));
        assert_eq!(c.rpc.client.nats.connection.max_reconnection_retries, 3);
        assert_eq!(c.rpc.server.nats.connection.connect, "nats://other:4222");
        assert_eq!(c.rpc.server.nats.services, 4);
        assert_eq!(c.rpc.server.nats.buffer.push, 7);
        assert_eq!(c.rpc.server.nats.buffer.messages, 75);
        assert_eq!(c.sd.etcd.endpoints, ["e1:2379", "e2:2379"]);
        assert_eq!(c.sd.etcd.prefix, "game/");
        assert_eq!(c.sd.etcd.server_types_blacklist, ["metagame"]);
        assert_eq!(c.sd.etcd.heartbeat.ttl, Duration::from_secs(10));
        assert_eq!(
            c.sd.etcd.grant_lease.retry_interval,
            Duration::from_millis(250)
        );
        Ok(())
    });
}

#[test]
fn env_sets_lists_as_comma_separated_strings() {
    jailed(|jail| {
        jail.set_env("PITAYA_CLUSTER_SD_ETCD_ENDPOINTS", "etcd1:2379, etcd2:2379");
        jail.set_env("PITAYA_CLUSTER_SD_ETCD_HEARTBEAT_TTL", "15s");
        jail.set_env("PITAYA_CLUSTER_SD_ETCD_USER", "root");
        jail.set_env("PITAYA_CLUSTER_RPC_CLIENT_NATS_CONNECT", "nats://nats:4222");
        let c = Config::load().map_err(|e| e.to_string())?.cluster;
        assert_eq!(c.sd.etcd.endpoints, ["etcd1:2379", "etcd2:2379"]);
        assert_eq!(c.sd.etcd.heartbeat.ttl, Duration::from_secs(15));
        assert_eq!(c.sd.etcd.user, "root");
        assert_eq!(c.rpc.client.nats.connection.connect, "nats://nats:4222");
        Ok(())
    });
}

#[test]
fn cluster_values_out_of_range_are_refused_by_key() {
    let mut c = Config::default();
    c.cluster.sd.etcd.heartbeat.ttl = Duration::from_millis(500);
    assert!(invalid(&c).contains("pitaya.cluster.sd.etcd.heartbeat.ttl"));

    let mut c = Config::default();
    c.cluster.sd.etcd.endpoints.clear();
    assert!(invalid(&c).contains("pitaya.cluster.sd.etcd.endpoints"));

    let mut c = Config::default();
    c.cluster.sd.etcd.sync_servers.interval = Duration::ZERO;
    assert!(invalid(&c).contains("pitaya.cluster.sd.etcd.syncservers.interval"));

    let mut c = Config::default();
    c.cluster.rpc.client.nats.request_timeout = Duration::ZERO;
    assert!(invalid(&c).contains("pitaya.cluster.rpc.client.nats.requesttimeout"));

    let mut c = Config::default();
    c.cluster.rpc.server.nats.buffer.messages = 0;
    assert!(invalid(&c).contains("pitaya.cluster.rpc.server.nats.buffer.messages"));

    let mut c = Config::default();
    c.cluster.rpc.client.grpc.request_timeout = Duration::ZERO;
    assert!(invalid(&c).contains("pitaya.cluster.rpc.client.grpc.requesttimeout"));

    let mut c = Config::default();
    c.modules.binding_storage.etcd.lease_ttl = Duration::from_millis(10);
    assert!(invalid(&c).contains("pitaya.modules.bindingstorage.etcd.leasettl"));

    let mut c = Config::default();
    c.modules.binding_storage.etcd.endpoints.clear();
    assert!(invalid(&c).contains("pitaya.modules.bindingstorage.etcd.endpoints"));
}

#[test]
fn figment_with_a_bad_cluster_value_names_the_key() {
    let f = Figment::from(Serialized::default(
        "pitaya.cluster.sd.etcd.heartbeat.ttl",
        "soon",
    ));
    let err = Config::from_figment(&f).unwrap_err().to_string();
    assert!(
        err.contains("pitaya.cluster.sd.etcd.heartbeat.ttl"),
        "{err}"
    );
}

#[test]
fn debug_output_hides_the_etcd_password() {
    let etcd = EtcdSdConfig {
        user: "root".into(),
        pass: "hunter2".into(),
        ..EtcdSdConfig::default()
    };
    let text = format!("{etcd:?}");
    assert!(text.contains("root"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}
