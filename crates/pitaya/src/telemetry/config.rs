//! Tracing settings: the `pitaya.tracing` keys and the standard `OTEL_*` variables.
//!
//! Go Pitaya v3 reads its tracing setup from `OTEL_*` variables alone (spec 12.5); we
//! read the same variables and add three keys so that a config file can turn export
//! on. Where both speak, the variable wins: it is the deployment's word, as
//! `PITAYA_*` variables win over a file.

use serde::{Deserialize, Serialize};

/// Turns all OpenTelemetry export off when `true`.
pub(crate) const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// Comma-separated exporter names; we serve `otlp` and `none`.
pub(crate) const TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
/// The OTLP endpoint of every signal.
pub(crate) const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The OTLP endpoint of traces, ahead of [`ENDPOINT`].
pub(crate) const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// The OTLP transport of every signal: `grpc`, `http/protobuf` or `http/json`.
pub(crate) const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// The OTLP transport of traces, ahead of [`PROTOCOL`].
pub(crate) const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
/// The `service.name` resource attribute.
pub(crate) const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// Resource attributes as `key=value` pairs separated by commas.
pub(crate) const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// The collector when nothing names one: the OTLP/gRPC default.
const DEFAULT_ENDPOINT: &str = "http://localhost:4317";
/// The config key of the endpoint, as [`OtlpPlan::origin`] names it.
const ENDPOINT_KEY: &str = "pitaya.tracing.endpoint";

/// Span export settings (key `pitaya.tracing`), a pitaya-rs addition.
///
/// Request spans exist whatever these say; these choose whether they also leave the
/// process over OTLP/gRPC, which needs the `otel` feature. The standard variables
/// `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`,
/// `OTEL_TRACES_SAMPLER_ARG`, `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_BSP_*` apply too.
/// `OTEL_EXPORTER_OTLP_PROTOCOL` other than `grpc` is logged as a warning at startup and
/// otherwise ignored: spans go over gRPC.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TracingConfig {
    /// Whether spans are exported. Key `pitaya.tracing.enabled`, default false.
    ///
    /// Export is also on when `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set or `OTEL_TRACES_EXPORTER` names
    /// `otlp`, and off, whatever this says, when `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none`.
    #[serde(deserialize_with = "crate::config::go_bool::deserialize")]
    pub enabled: bool,
    /// OTLP/gRPC collector address, such as `http://collector:4317`. Key
    /// `pitaya.tracing.endpoint`, default empty: the OTLP default,
    /// `http://localhost:4317`. `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` win over it.
    ///
    /// Plain `http` only: the exporter is built without TLS. So an address without
    /// a scheme, such as `collector:4317`, means `http://collector:4317` here, in
    /// the variables too, whatever `OTEL_EXPORTER_OTLP_INSECURE` says; `https://`
    /// or another scheme makes [`init`](super::init) fail.
    pub endpoint: String,
    /// The `service.name` of exported spans. Key `pitaya.tracing.servicename`,
    /// default empty: the name the app passes to [`init`](super::init).
    /// `OTEL_SERVICE_NAME`, or a `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, wins.
    #[serde(rename = "servicename")]
    pub service_name: String,
}

/// What [`TracingConfig`] and the environment decide together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Export {
    /// Spans stay in the process.
    Off,
    /// Spans go out over OTLP/gRPC.
    Otlp(OtlpPlan),
    /// `OTEL_TRACES_EXPORTER` names only exporters we do not have.
    Unsupported(String),
    /// Export is on, but its endpoint cannot be used.
    BadEndpoint {
        endpoint: String,
        origin: &'static str,
        reason: String,
    },
}

/// How to build the OTLP exporter; `None` leaves a setting to the SDK, which reads
/// the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OtlpPlan {
    /// The collector, with its scheme: where spans actually go.
    pub(crate) endpoint: String,
    /// What named it: a variable, the config key, or `default`.
    pub(crate) origin: &'static str,
    pub(crate) service_name: Option<String>,
    /// A protocol variable asking for other than gRPC, and its value: we export over
    /// gRPC anyway, and say so.
    pub(crate) ignored_protocol: Option<(&'static str, String)>,
}

impl TracingConfig {
    /// Returns the export decision for this config under the environment `env`.
    ///
    /// `env` returns a variable's value; empty values count as unset, as the
    /// OpenTelemetry specification asks.
    pub(crate) fn export(
        &self,
        fallback_service: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Export {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());

        if var(SDK_DISABLED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Export::Off;
        }
        let mut enabled = self.enabled;
        if let Some(list) = var(TRACES_EXPORTER) {
            let names: Vec<String> = list
                .split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .collect();
            if names.iter().any(|n| n == "otlp") {
                enabled = true;
            } else if names.iter().all(|n| n == "none" || n.is_empty()) {
                return Export::Off;
            } else {
                return Export::Unsupported(list);
            }
        }
        let endpoint_from_env = var(TRACES_ENDPOINT).is_some() || var(ENDPOINT).is_some();
        if !(enabled || endpoint_from_env) {
            return Export::Off;
        }

        // We name the endpoint to the exporter ourselves, so that the log can say
        // where spans go and a schemeless address gets our reading, not the SDK's.
        let config_endpoint = Some(self.endpoint.clone()).filter(|e| !e.trim().is_empty());
        let (raw, origin) = [
            (var(TRACES_ENDPOINT), TRACES_ENDPOINT),
            (var(ENDPOINT), ENDPOINT),
            (config_endpoint, ENDPOINT_KEY),
        ]
        .into_iter()
        .find_map(|(value, origin)| value.map(|v| (v, origin)))
        .unwrap_or_else(|| (DEFAULT_ENDPOINT.to_owned(), "default"));
        let endpoint = match with_scheme(&raw) {
            Ok(endpoint) => endpoint,
            Err(reason) => {
                return Export::BadEndpoint {
                    endpoint: raw,
                    origin,
                    reason,
                }
            }
        };
        let name_from_env = var(SERVICE_NAME).is_some()
            || var(RESOURCE_ATTRIBUTES).is_some_and(|attrs| {
                attrs.split(',').any(|kv| {
                    kv.split_once('=')
                        .is_some_and(|(k, _)| k.trim() == "service.name")
                })
            });
        let service_name = if name_from_env {
            None
        } else if !self.service_name.is_empty() {
            Some(self.service_name.clone())
        } else {
            Some(fallback_service.to_owned()).filter(|s| !s.is_empty())
        };
        // The traces variable wins, as for the endpoint; only the one in force counts.
        let protocol = [TRACES_PROTOCOL, PROTOCOL]
            .into_iter()
            .find_map(|name| var(name).map(|v| (name, v.trim().to_owned())));
        let ignored_protocol = protocol.filter(|(_, v)| !v.eq_ignore_ascii_case("grpc"));
        Export::Otlp(OtlpPlan {
            endpoint,
            origin,
            service_name,
            ignored_protocol,
        })
    }
}

/// Returns `endpoint` with `http://` added when it has no scheme, or why it cannot
/// be used.
///
/// The OTLP rule would add `https://` unless told the collector is insecure, but
/// we have no TLS to speak it with; plain http is the only reading that can work.
fn with_scheme(endpoint: &str) -> Result<String, String> {
    let endpoint = endpoint.trim();
    // A scheme is what comes before `://`, if no path, query or fragment does.
    let scheme = endpoint
        .split_once("://")
        .filter(|(scheme, _)| !scheme.contains(['/', '?', '#']));
    match scheme {
        None => Ok(format!("http://{endpoint}")),
        Some((_, "")) => Err("no host after the scheme".into()),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => Ok(endpoint.to_owned()),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => Err(
            "https needs TLS, which pitaya's OTLP exporter is built without; \
             use http:// to a collector or agent on a trusted network"
                .into(),
        ),
        Some((scheme, _)) => Err(format!("scheme {scheme:?} not supported, only http")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn export(config: &TracingConfig, vars: &[(&str, &str)]) -> Export {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        config.export("room", |name| vars.get(name).cloned())
    }

    fn enabled() -> TracingConfig {
        TracingConfig {
            enabled: true,
            ..TracingConfig::default()
        }
    }

    fn otlp(endpoint: (&str, &'static str), service_name: Option<&str>) -> Export {
        Export::Otlp(OtlpPlan {
            endpoint: endpoint.0.to_owned(),
            origin: endpoint.1,
            service_name: service_name.map(str::to_owned),
            ignored_protocol: None,
        })
    }

    const DEFAULT: (&str, &str) = (DEFAULT_ENDPOINT, "default");

    // figment's Jail fixes the closure's error type; we cannot box it.
    #[allow(clippy::result_large_err)]
    #[test]
    fn keys_load_from_a_file_and_pitaya_variables() {
        figment::Jail::expect_with(|jail| {
            let file = "[pitaya.tracing]\nenabled = true\nservicename = \"lobby\"\n";
            jail.create_file("pitaya.toml", file)?;
            jail.set_env("PITAYA_TRACING_ENDPOINT", "http://collector:4317");
            let config = crate::Config::from_file("pitaya.toml")
                .map_err(|e| figment::Error::from(e.to_string()))?;
            let expected = TracingConfig {
                enabled: true,
                endpoint: "http://collector:4317".into(),
                service_name: "lobby".into(),
            };
            assert_eq!(config.tracing, expected);
            Ok(())
        });
    }

    #[test]
    fn export_is_off_by_default() {
        assert_eq!(export(&TracingConfig::default(), &[]), Export::Off);
    }

    #[test]
    fn config_alone_turns_export_on_with_the_fallback_service_name() {
        assert_eq!(export(&enabled(), &[]), otlp(DEFAULT, Some("room")));
    }

    #[test]
    fn an_endpoint_variable_turns_export_on_and_wins_over_the_config() {
        let config = TracingConfig {
            endpoint: "http://from-config:4317".into(),
            ..TracingConfig::default()
        };
        for var in [ENDPOINT, TRACES_ENDPOINT] {
            let got = export(&config, &[(var, "http://collector:4317")]);
            assert_eq!(got, otlp(("http://collector:4317", var), Some("room")));
        }
        let both = [
            (ENDPOINT, "http://all:4317"),
            (TRACES_ENDPOINT, "traces:4317"),
        ];
        let got = export(&config, &both);
        assert_eq!(
            got,
            otlp(("http://traces:4317", TRACES_ENDPOINT), Some("room"))
        );
    }

    #[test]
    fn an_endpoint_without_a_scheme_is_plain_http() {
        let config = TracingConfig {
            endpoint: "localhost:4317".into(),
            ..enabled()
        };
        let want = otlp(("http://localhost:4317", ENDPOINT_KEY), Some("room"));
        assert_eq!(export(&config, &[]), want);
        let got = export(&enabled(), &[(ENDPOINT, " 10.0.0.7:4317 ")]);
        assert_eq!(got, otlp(("http://10.0.0.7:4317", ENDPOINT), Some("room")));
    }

    #[test]
    fn endpoints_we_cannot_speak_to_are_refused_with_the_reason() {
        for (endpoint, reason) in [
            ("https://collector:4317", "https needs TLS"),
            ("unix:///run/otel.sock", "\"unix\" not supported"),
            ("http://", "no host"),
        ] {
            let config = TracingConfig {
                endpoint: endpoint.into(),
                ..enabled()
            };
            match export(&config, &[]) {
                Export::BadEndpoint {
                    endpoint: got,
                    origin,
                    reason: why,
                } => {
                    assert_eq!((got.as_str(), origin), (endpoint, ENDPOINT_KEY));
                    assert!(why.contains(reason), "{endpoint}: {why}");
                }
                other => panic!("{endpoint} accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn config_endpoint_applies_when_no_variable_names_one() {
        let config = TracingConfig {
            endpoint: "http://from-config:4317".into(),
            ..enabled()
        };
        assert_eq!(
            export(&config, &[(ENDPOINT, "  ")]),
            otlp(("http://from-config:4317", ENDPOINT_KEY), Some("room"))
        );
    }

    #[test]
    fn sdk_disabled_wins_over_everything() {
        let vars = [(SDK_DISABLED, "TRUE"), (ENDPOINT, "http://c:4317")];
        assert_eq!(export(&enabled(), &vars), Export::Off);
        assert_eq!(
            export(&enabled(), &[(SDK_DISABLED, "false")]),
            otlp(DEFAULT, Some("room"))
        );
    }

    #[test]
    fn traces_exporter_none_turns_export_off_and_otlp_on() {
        assert_eq!(
            export(&enabled(), &[(TRACES_EXPORTER, "none")]),
            Export::Off
        );
        let on = export(
            &TracingConfig::default(),
            &[(TRACES_EXPORTER, "console, otlp")],
        );
        assert_eq!(on, otlp(DEFAULT, Some("room")));
    }

    #[test]
    fn traces_exporter_without_otlp_is_unsupported() {
        assert_eq!(
            export(&enabled(), &[(TRACES_EXPORTER, "zipkin")]),
            Export::Unsupported("zipkin".into())
        );
    }

    #[test]
    fn service_name_comes_from_env_then_config_then_fallback() {
        let named = TracingConfig {
            service_name: "lobby".into(),
            ..enabled()
        };
        assert_eq!(export(&named, &[]), otlp(DEFAULT, Some("lobby")));
        assert_eq!(
            export(&named, &[(SERVICE_NAME, "env")]),
            otlp(DEFAULT, None)
        );
        let attrs = [(RESOURCE_ATTRIBUTES, "team=games, service.name=env")];
        assert_eq!(export(&named, &attrs), otlp(DEFAULT, None));
        let other_attrs = [(RESOURCE_ATTRIBUTES, "team=games")];
        assert_eq!(export(&named, &other_attrs), otlp(DEFAULT, Some("lobby")));
    }

    #[test]
    fn a_protocol_other_than_grpc_is_noted_and_grpc_used() {
        let grpc = [(ENDPOINT, "http://c:4317"), (PROTOCOL, "grpc")];
        assert_eq!(
            export(&TracingConfig::default(), &grpc),
            otlp(("http://c:4317", ENDPOINT), Some("room"))
        );

        let vars = [(PROTOCOL, "grpc"), (TRACES_PROTOCOL, "http/protobuf")];
        let Export::Otlp(plan) = export(&enabled(), &vars) else {
            panic!("export stays on");
        };
        assert_eq!(plan.endpoint, DEFAULT_ENDPOINT);
        let ignored = Some((TRACES_PROTOCOL, "http/protobuf".to_owned()));
        assert_eq!(plan.ignored_protocol, ignored);

        let Export::Otlp(plan) = export(&enabled(), &[(PROTOCOL, "http/json")]) else {
            panic!("export stays on");
        };
        assert_eq!(
            plan.ignored_protocol,
            Some((PROTOCOL, "http/json".to_owned()))
        );
    }
}
