//! Booleans as Go Pitaya reads them.
//!
//! Pitaya reads its settings through Viper, which turns a string into a boolean with
//! Go's `strconv.ParseBool`: `1 t T TRUE true True` and `0 f F FALSE false False`.
//! Configs written for Pitaya use these forms, in files and in `PITAYA_*` variables,
//! so every boolean key here accepts them, plus the integers 0 and 1 (a file's
//! `enabled = 1`, or a variable `=1`, which figment reads as a number).

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// The strings Go's `strconv.ParseBool` accepts, with their value.
const WORDS: &[(&str, bool)] = &[
    ("1", true),
    ("t", true),
    ("T", true),
    ("TRUE", true),
    ("true", true),
    ("True", true),
    ("0", false),
    ("f", false),
    ("F", false),
    ("FALSE", false),
    ("false", false),
    ("False", false),
];

/// Returns the boolean Go's `strconv.ParseBool` reads in `s`, if any.
pub(crate) fn parse(s: &str) -> Option<bool> {
    WORDS.iter().find(|(w, _)| *w == s).map(|(_, b)| *b)
}

/// Deserializes a boolean from a boolean, 0 or 1, or a `strconv.ParseBool` string.
///
/// # Errors
///
/// When the value is none of these; the message lists what is accepted.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    d.deserialize_any(GoBool)
}

struct GoBool;

impl Visitor<'_> for GoBool {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean: true, false, 1, 0, t, f, T, F, TRUE, FALSE, True or False")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(E::invalid_value(Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        parse(v).ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
    }
}

#[cfg(test)]
mod tests {
    use figment::Jail;

    use super::parse;
    use crate::config::{Config, ConfigError};

    #[test]
    fn every_strconv_parse_bool_word_is_read() {
        for w in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse(w), Some(true), "{w}");
        }
        for w in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse(w), Some(false), "{w}");
        }
        for w in ["yes", "on", "tRUE", "2", "", " true"] {
            assert_eq!(parse(w), None, "{w}");
        }
    }

    // figment's Jail fixes the closure's error type; we cannot box it.
    #[allow(clippy::result_large_err)]
    #[test]
    fn pitaya_variables_take_go_booleans() {
        let cases = [
            ("1", true),
            ("t", true),
            ("T", true),
            ("TRUE", true),
            ("true", true),
            ("True", true),
            ("0", false),
            ("f", false),
            ("F", false),
            ("FALSE", false),
            ("false", false),
            ("False", false),
        ];
        for (word, want) in cases {
            Jail::expect_with(|jail| {
                jail.set_env("PITAYA_METRICS_PROMETHEUS_ENABLED", word);
                jail.set_env("PITAYA_SESSION_UNIQUE", word);
                jail.set_env("PITAYA_TRACING_ENABLED", word);
                jail.set_env("PITAYA_CLUSTER_RPC_CLIENT_GRPC_LAZYCONNECTION", word);
                let c = Config::load().map_err(|e| e.to_string())?;
                assert_eq!(c.metrics.prometheus.enabled, want, "{word}");
                assert_eq!(c.session.unique, want, "{word}");
                assert_eq!(c.tracing.enabled, want, "{word}");
                assert_eq!(c.cluster.rpc.client.grpc.lazy_connection, want, "{word}");
                Ok(())
            });
        }
    }

    #[allow(clippy::result_large_err)]
    #[test]
    fn files_take_go_booleans() {
        Jail::expect_with(|jail| {
            let yaml = "pitaya:\n  metrics:\n    prometheus:\n      enabled: T\n  \
                        health:\n    enabled: 1\n  heartbeat:\n    interval: 5s\n  \
                        session:\n    unique: FALSE\n";
            jail.create_file("pitaya.yaml", yaml)?;
            let c = Config::from_file("pitaya.yaml").map_err(|e| e.to_string())?;
            assert!(c.metrics.prometheus.enabled && c.health.enabled);
            assert!(!c.session.unique);

            let toml = "[pitaya.metrics.statsd]\nenabled = \"t\"\n\
                        [pitaya.acceptor]\nproxyprotocol = 1\n";
            jail.create_file("pitaya.toml", toml)?;
            let c = Config::from_file("pitaya.toml").map_err(|e| e.to_string())?;
            assert!(c.metrics.statsd.enabled && c.acceptor.proxy_protocol);
            Ok(())
        });
    }

    #[allow(clippy::result_large_err)]
    #[test]
    fn other_words_are_refused_naming_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("PITAYA_METRICS_PROMETHEUS_ENABLED", "yes");
            let err = Config::load().unwrap_err();
            assert!(matches!(err, ConfigError::Load(_)), "{err}");
            let text = err.to_string();
            assert!(
                text.contains("pitaya.metrics.prometheus.enabled") && text.contains("\"yes\""),
                "{text}"
            );
            Ok(())
        });
    }
}
