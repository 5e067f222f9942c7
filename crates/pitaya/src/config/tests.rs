use std::time::Duration;

use figment::Jail;

use super::*;

/// Runs `f` in a figment jail with no `PITAYA_*` variables from the host, so
/// env changes stay inside the jail and the host cannot skew results.
// figment's Jail fixes the closure's error type; we cannot box it.
#[allow(clippy::result_large_err)]
fn jailed(f: impl FnOnce(&mut Jail) -> Result<(), String>) {
    Jail::expect_with(|jail| {
        for (key, _) in std::env::vars() {
            if key.to_ascii_uppercase().starts_with("PITAYA_") {
                // set_env records the old value so the jail restores it.
                jail.set_env(&key, "");
                std::env::remove_var(&key);
            }
        }
        f(jail).map_err(figment::Error::from)
    });
}

fn load_err(f: &Figment) -> String {
    Config::from_figment(f).unwrap_err().to_string()
}

#[test]
fn defaults_match_pitaya() {
    let c = Config::default();
    assert_eq!(c.serializer_type, 1);
    assert_eq!(c.heartbeat.interval, Duration::from_secs(30));
    assert!(c.handler.messages.compression);
    assert!(c.handler.dictionary.is_empty());
    assert_eq!(c.buffer.agent.messages, 100);
    assert_eq!(c.buffer.agent.conn_timeout, Duration::from_secs(10));
    assert_eq!(c.buffer.handler.local_process, 20);
    assert_eq!(c.buffer.handler.remote_process, 20);
    assert_eq!(c.concurrency.handler.dispatch, 25);
    assert_eq!(c.conn.handshake_timeout, Duration::from_secs(15));
    assert_eq!(c.conn.max_packet_size, 16_777_215);
    assert_eq!(c.conn.rate_limiting.limit, 20);
    assert_eq!(c.conn.rate_limiting.interval, Duration::from_secs(1));
    assert!(!c.conn.rate_limiting.force_disable);
    assert!(!c.conn.rate_limiting.enabled);
    assert!(!c.acceptor.proxy_protocol);
    assert_eq!(c.acceptor.max_connections, 0);
    assert!(c.session.unique);
    assert!(!c.session.drain.enabled);
    assert_eq!(c.session.drain.timeout, Duration::from_secs(6 * 3600));
    assert_eq!(c.session.drain.period, Duration::from_secs(5));
    assert_eq!(c.groups.memory.tick_duration, Duration::from_secs(30));
    assert_eq!(c.groups.etcd.endpoints, ["localhost:2379"]);
    assert_eq!(c.groups.etcd.prefix, "pitaya/");
    assert_eq!(c.groups.etcd.dial_timeout, Duration::from_secs(5));
    assert_eq!(c.groups.etcd.transaction_timeout, Duration::from_secs(5));
    assert_eq!(c.shutdown.timeout, Duration::from_secs(10));
}

#[test]
fn load_without_env_returns_defaults() {
    jailed(|_| {
        assert_eq!(
            Config::load().map_err(|e| e.to_string())?,
            Config::default()
        );
        Ok(())
    });
}

#[test]
fn figment_without_pitaya_key_yields_defaults() {
    let f = Figment::from(Serialized::default("other", 5));
    assert_eq!(Config::from_figment(&f).unwrap(), Config::default());
}

#[test]
fn toml_file_overrides_some_keys() {
    jailed(|jail| {
        jail.create_file(
            "pitaya.toml",
            r#"
            [pitaya]
            serializertype = 2
            [pitaya.heartbeat]
            interval = "10s"
            [pitaya.buffer.agent]
            conntimeout = "1m30s"
            [pitaya.conn.ratelimiting]
            forcedisable = true
            [pitaya.handler.dictionary]
            "room.join" = 1
            [pitaya.cluster.rpc.client.nats]
            connect = "nats://nats:4222"
            "#,
        )
        .map_err(|e| e.to_string())?;
        let c = Config::from_file("pitaya.toml").map_err(|e| e.to_string())?;
        assert_eq!(c.serializer_type, 2);
        assert_eq!(c.heartbeat.interval, Duration::from_secs(10));
        assert_eq!(c.buffer.agent.conn_timeout, Duration::from_secs(90));
        assert!(c.conn.rate_limiting.force_disable);
        assert_eq!(c.handler.dictionary.get("room.join"), Some(&1));
        // Keys left out keep their defaults.
        assert_eq!(c.buffer.agent.messages, 100);
        assert_eq!(c.session.drain.timeout, Duration::from_secs(6 * 3600));
        Ok(())
    });
}

#[test]
fn yaml_file_overrides_some_keys() {
    jailed(|jail| {
        let yaml = r#"
pitaya:
  heartbeat:
    interval: 500ms
  session:
    unique: false
    drain:
      enabled: true
      period: 2s
  acceptor:
    proxyprotocol: true
"#;
        jail.create_file("pitaya.yml", yaml)
            .map_err(|e| e.to_string())?;
        let c = Config::from_file("pitaya.yml").map_err(|e| e.to_string())?;
        assert_eq!(c.heartbeat.interval, Duration::from_millis(500));
        assert!(!c.session.unique);
        assert!(c.session.drain.enabled);
        assert_eq!(c.session.drain.period, Duration::from_secs(2));
        assert!(c.acceptor.proxy_protocol);
        assert_eq!(c.session.drain.timeout, Duration::from_secs(6 * 3600));
        Ok(())
    });
}

#[test]
fn env_overrides_the_file() {
    jailed(|jail| {
        jail.create_file("p.toml", "[pitaya.heartbeat]\ninterval = \"10s\"\n")
            .map_err(|e| e.to_string())?;
        jail.set_env("PITAYA_HEARTBEAT_INTERVAL", "3s");
        jail.set_env("PITAYA_BUFFER_HANDLER_LOCALPROCESS", "7");
        jail.set_env("PITAYA_GROUPS_MEMORY_TICKDURATION", "1000");
        let c = Config::from_file("p.toml").map_err(|e| e.to_string())?;
        assert_eq!(c.heartbeat.interval, Duration::from_secs(3));
        assert_eq!(c.buffer.handler.local_process, 7);
        // A bare integer is nanoseconds, as Viper reads it.
        assert_eq!(c.groups.memory.tick_duration, Duration::from_nanos(1000));
        Ok(())
    });
}

#[test]
fn env_applies_without_a_file_and_ignores_unknown_keys() {
    jailed(|jail| {
        jail.set_env("PITAYA_SESSION_DRAIN_TIMEOUT", "1h30m");
        jail.set_env("PITAYA_CLUSTER_SD_ETCD_ENDPOINTS", "etcd1:2379,etcd2:2379");
        jail.set_env("NOT_PITAYA_HEARTBEAT_INTERVAL", "bogus");
        jail.set_env("HEARTBEAT_INTERVAL", "bogus");
        let c = Config::load().map_err(|e| e.to_string())?;
        assert_eq!(c.session.drain.timeout, Duration::from_secs(5400));
        assert_eq!(c.heartbeat.interval, Duration::from_secs(30));
        Ok(())
    });
}

#[test]
fn apps_can_merge_their_own_providers() {
    jailed(|_| {
        let f = Config::figment(None).merge(Toml::string("[pitaya.conn]\nmaxpacketsize = 1024"));
        assert_eq!(
            Config::from_figment(&f)
                .map_err(|e| e.to_string())?
                .conn
                .max_packet_size,
            1024
        );
        Ok(())
    });
}

#[test]
fn missing_file_is_an_error() {
    jailed(|_| {
        let err = Config::from_file("absent.toml").unwrap_err();
        assert!(matches!(err, ConfigError::Load(_)), "{err}");
        Ok(())
    });
}

#[test]
fn bad_duration_in_file_names_the_key() {
    jailed(|jail| {
        jail.create_file(
            "bad.toml",
            "[pitaya.session.drain]\nperiod = \"5 parsecs\"\n",
        )
        .map_err(|e| e.to_string())?;
        let err = Config::from_file("bad.toml").unwrap_err().to_string();
        assert!(err.contains("pitaya.session.drain.period"), "{err}");
        assert!(err.contains("5 parsecs"), "{err}");
        Ok(())
    });
}

#[test]
fn bad_duration_in_env_names_the_variable() {
    jailed(|jail| {
        jail.set_env("PITAYA_HEARTBEAT_INTERVAL", "10x");
        let err = Config::load().unwrap_err().to_string();
        assert!(err.contains("`pitaya.heartbeat.interval`"), "{err}");
        assert!(err.contains("$PITAYA_HEARTBEAT_INTERVAL"), "{err}");
        assert!(err.contains("\"10x\""), "{err}");
        Ok(())
    });
}

#[test]
fn wrong_type_names_the_key() {
    let f = Figment::from(Toml::string("[pitaya.buffer.agent]\nmessages = \"many\""));
    let err = load_err(&f);
    assert!(err.contains("pitaya.buffer.agent.messages"), "{err}");
}

#[test]
fn out_of_range_values_are_invalid_and_name_the_key() {
    let cases = [
        ("[pitaya]\nserializertype = 3", "pitaya.serializertype"),
        (
            "[pitaya.heartbeat]\ninterval = \"0s\"",
            "pitaya.heartbeat.interval",
        ),
        (
            "[pitaya.buffer.agent]\nmessages = 0",
            "pitaya.buffer.agent.messages",
        ),
        (
            "[pitaya.buffer.handler]\nlocalprocess = 0",
            "pitaya.buffer.handler.localprocess",
        ),
        (
            "[pitaya.buffer.handler]\nremoteprocess = 0",
            "pitaya.buffer.handler.remoteprocess",
        ),
        (
            "[pitaya.concurrency.handler]\ndispatch = 0",
            "pitaya.concurrency.handler.dispatch",
        ),
        (
            "[pitaya.conn]\nmaxpacketsize = 0",
            "pitaya.conn.maxpacketsize",
        ),
        (
            "[pitaya.conn]\nmaxpacketsize = 16777216",
            "pitaya.conn.maxpacketsize",
        ),
        (
            "[pitaya.groups.memory]\ntickduration = 0",
            "pitaya.groups.memory.tickduration",
        ),
        (
            "[pitaya.conn.ratelimiting]\nlimit = 0",
            "pitaya.conn.ratelimiting.limit",
        ),
    ];
    for (toml, key) in cases {
        let f = Figment::from(Toml::string(toml));
        let err = Config::from_figment(&f).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid(m) if m.contains(key)),
            "{toml}: {err}"
        );
    }
}

#[test]
fn largest_packet_size_is_accepted() {
    let f = Figment::from(Toml::string("[pitaya.conn]\nmaxpacketsize = 16777215"));
    assert_eq!(
        Config::from_figment(&f).unwrap().conn.max_packet_size,
        MAX_PACKET_SIZE
    );
}

#[test]
fn defaults_survive_a_serialize_round_trip() {
    let f = Figment::from(Serialized::default(ROOT_KEY, Config::default()));
    assert_eq!(Config::from_figment(&f).unwrap(), Config::default());
}

#[test]
fn yaml_extension_is_detected_case_insensitively() {
    assert!(is_yaml(Path::new("a/b.yaml")));
    assert!(is_yaml(Path::new("b.YML")));
    assert!(!is_yaml(Path::new("b.toml")));
    assert!(!is_yaml(Path::new("yaml")));
}

#[test]
fn validate_checks_configs_built_in_code() {
    let mut c = Config::default();
    assert!(c.validate().is_ok());
    c.heartbeat.interval = Duration::ZERO;
    let err = c.validate().unwrap_err();
    assert!(
        err.to_string().contains("pitaya.heartbeat.interval"),
        "{err}"
    );
}

#[test]
fn acceptor_keys_come_from_the_environment() {
    jailed(|jail| {
        jail.set_env("PITAYA_ACCEPTOR_PROXYPROTOCOL", "true");
        jail.set_env("PITAYA_ACCEPTOR_MAXCONNECTIONS", "5000");
        jail.set_env("PITAYA_CONN_RATELIMITING_ENABLED", "true");
        jail.set_env("PITAYA_CONN_RATELIMITING_LIMIT", "7");
        let c = Config::load().map_err(|e| e.to_string())?;
        assert!(c.acceptor.proxy_protocol);
        assert_eq!(c.acceptor.max_connections, 5000);
        assert!(c.conn.rate_limiting.enabled);
        assert_eq!(c.conn.rate_limiting.limit, 7);
        Ok(())
    });
}

#[test]
fn groups_etcd_keys_come_from_the_environment() {
    jailed(|jail| {
        jail.set_env("PITAYA_GROUPS_ETCD_ENDPOINTS", "etcd1:2379,etcd2:2379");
        jail.set_env("PITAYA_GROUPS_ETCD_PREFIX", "game/");
        jail.set_env("PITAYA_GROUPS_ETCD_TRANSACTIONTIMEOUT", "2s");
        let c = Config::load().map_err(|e| e.to_string())?;
        assert_eq!(c.groups.etcd.endpoints, ["etcd1:2379", "etcd2:2379"]);
        assert_eq!(c.groups.etcd.prefix, "game/");
        assert_eq!(c.groups.etcd.transaction_timeout, Duration::from_secs(2));
        Ok(())
    });
}
