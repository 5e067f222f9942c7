use super::*;
use crate::config::CustomMetric;
use crate::metrics::{CHANNEL_CAPACITY, CONNECTED_CLIENTS, COUNT_SERVERS};

fn config() -> MetricsConfig {
    MetricsConfig {
        game: "tetris".into(),
        const_labels: [("region".to_owned(), "eu".to_owned())].into(),
        ..MetricsConfig::default()
    }
}

/// Returns the lines of `text` that start with `prefix`.
fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn every_pitaya_family_is_declared_with_its_type() {
    let r = PrometheusReporter::new("room", &config()).unwrap();
    // Families without series print nothing; give each one a value.
    for decl in BUILT_IN {
        let labels: Vec<Label<'_>> = decl.labels.iter().map(|l| (*l, "x")).collect();
        let reported = match decl.kind {
            Kind::Counter => r.report_count(decl.name, &labels, 1.0),
            Kind::Gauge => r.report_gauge(decl.name, &labels, 1.0),
            Kind::Summary => r.report_summary(decl.name, &labels, 1.0),
            Kind::Histogram(_) => r.report_histogram(decl.name, &labels, 1.0),
        };
        reported.unwrap();
    }
    let text = r.render();
    for (name, kind) in [
        ("pitaya_handler_response_time_ns", "summary"),
        ("pitaya_handler_response_time_seconds", "histogram"),
        ("pitaya_handler_handler_delay_ns", "summary"),
        ("pitaya_acceptor_connected_clients", "gauge"),
        ("pitaya_acceptor_exceeded_rate_limiting", "counter"),
        ("pitaya_service_discovery_count_servers", "gauge"),
        ("pitaya_channel_channel_capacity", "histogram"),
        ("pitaya_rpc_server_dropped_messages", "gauge"),
        ("pitaya_worker_pool_busy_workers", "gauge"),
        ("pitaya_worker_pool_total_workers", "gauge"),
        ("pitaya_sys_goroutines", "gauge"),
        ("pitaya_sys_heapsize", "gauge"),
        ("pitaya_sys_heapobjects", "gauge"),
        ("pitaya_worker_worker_jobs_total", "gauge"),
        ("pitaya_worker_worker_jobs_retry_total", "gauge"),
        ("pitaya_worker_worker_queue_size", "gauge"),
    ] {
        let line = format!("# TYPE {name} {kind}");
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[test]
fn constant_labels_and_label_values_are_exposed() {
    let r = PrometheusReporter::new("room", &config()).unwrap();
    r.report_gauge(COUNT_SERVERS, &[("type", "connector")], 2.0)
        .unwrap();
    assert_eq!(
        lines(&r.render(), "pitaya_service_discovery_count_servers"),
        [concat!(
            r#"pitaya_service_discovery_count_servers{game="tetris",region="eu","#,
            r#"serverType="room",type="connector"} 2"#
        )]
    );
}

#[test]
fn response_time_feeds_the_summary_and_the_histogram() {
    let r = PrometheusReporter::new("connector", &config()).unwrap();
    let labels = [
        ("route", "room.room.join"),
        ("status", "ok"),
        ("type", "handler"),
        ("code", ""),
    ];
    r.report_summary(RESPONSE_TIME, &labels, 2e6).unwrap();
    r.report_summary(RESPONSE_TIME, &labels, 4e6).unwrap();
    let text = r.render();
    let count = lines(&text, "pitaya_handler_response_time_ns_count");
    assert_eq!(count.len(), 1);
    assert!(count[0].ends_with(" 2"), "{count:?}");
    let sum = lines(&text, "pitaya_handler_response_time_ns_sum");
    assert!(sum[0].ends_with(" 6000000"), "{sum:?}");
    let buckets = lines(&text, "pitaya_handler_response_time_seconds_bucket");
    let at = |le: &str| {
        let needle = format!("le=\"{le}\"");
        let line = buckets.iter().find(|l| l.contains(&needle)).unwrap();
        line.rsplit(' ').next().unwrap().to_owned()
    };
    assert_eq!(
        (at("0.001"), at("0.005"), at("+Inf")),
        ("0".into(), "2".into(), "2".into())
    );
    let quantiles = lines(&text, "pitaya_handler_response_time_ns{");
    assert_eq!(quantiles.len(), 3, "{quantiles:?}");
    assert!(quantiles[0].contains(r#"quantile="0.7""#), "{quantiles:?}");
}

#[test]
fn additional_labels_take_their_default_unless_reported() {
    let mut c = config();
    c.additional_labels.insert("shard".into(), "none".into());
    let r = PrometheusReporter::new("room", &c).unwrap();
    r.report_gauge(CONNECTED_CLIENTS, &[], 1.0).unwrap();
    r.report_histogram(CHANNEL_CAPACITY, &[("channel", "c"), ("shard", "7")], 3.0)
        .unwrap();
    let text = r.render();
    let clients = lines(&text, "pitaya_acceptor_connected_clients{");
    assert!(clients[0].contains(r#"shard="none""#), "{clients:?}");
    let capacity = lines(&text, "pitaya_channel_channel_capacity_count{");
    assert!(capacity[0].contains(r#"shard="7""#), "{capacity:?}");
}

#[test]
fn unknown_metrics_undeclared_labels_and_negative_counts_are_refused() {
    let r = PrometheusReporter::new("room", &config()).unwrap();
    let err = r.report_gauge("nope", &[], 1.0).unwrap_err();
    assert!(
        matches!(err, ReportError::UnknownMetric(ref m) if m == "nope"),
        "{err}"
    );
    let err = r
        .report_gauge(CONNECTED_CLIENTS, &[("color", "red")], 1.0)
        .unwrap_err();
    assert!(err.to_string().contains("\"color\""), "{err}");
    let err = r
        .report_count(crate::metrics::EXCEEDED_RATE_LIMITING, &[], -1.0)
        .unwrap_err();
    assert!(matches!(err, ReportError::Invalid { .. }), "{err}");
    // A summary name is not a gauge.
    assert!(r.report_gauge(RESPONSE_TIME, &[], 1.0).is_err());
}

/// Returns the metrics config of a YAML document, as a Pitaya config file holds it.
fn from_yaml(yaml: &str) -> MetricsConfig {
    use figment::providers::{Format, Yaml};
    let figment = crate::Config::figment(None).merge(Yaml::string(yaml));
    crate::Config::from_figment(&figment).unwrap().metrics
}

#[test]
fn custom_metrics_from_a_config_file_are_registered_and_reportable() {
    let c = from_yaml(
        r#"
pitaya:
  metrics:
    custom:
      summaries:
        - subsystem: game
          name: match_length
          labels: [mode]
          objectives: { 0.5: 0.05 }
      counters:
        - { subsystem: game, name: matches, help: Matches started. }
      histograms:
        - { subsystem: game, name: scores, help: Scores., buckets: [10, 100] }
"#,
    );
    let r = PrometheusReporter::new("room", &c).unwrap();
    r.report_summary("match_length", &[("mode", "ranked")], 30.0)
        .unwrap();
    r.report_count("matches", &[], 2.0).unwrap();
    r.report_histogram("scores", &[], 50.0).unwrap();
    let text = r.render();
    assert!(
        text.contains("# HELP pitaya_game_matches Matches started."),
        "{text}"
    );
    assert!(
        text.contains("# TYPE pitaya_game_match_length summary"),
        "{text}"
    );
    let q = lines(&text, "pitaya_game_match_length{");
    assert_eq!(q.len(), 1, "one objective, one quantile: {q:?}");
    assert!(q[0].contains(r#"quantile="0.5""#) && q[0].contains(r#"mode="ranked""#));
    assert!(lines(&text, "pitaya_game_matches{")[0].ends_with(" 2"));
    let le100 = lines(&text, "pitaya_game_scores_bucket{");
    assert!(
        le100
            .iter()
            .any(|l| l.contains(r#"le="100""#) && l.ends_with(" 1")),
        "{le100:?}"
    );
}

#[test]
fn a_custom_metric_clashing_with_pitaya_is_an_error() {
    let mut c = config();
    c.custom.gauges.push(CustomMetric {
        subsystem: "acceptor".into(),
        name: "connected_clients".into(),
        ..CustomMetric::default()
    });
    assert!(PrometheusReporter::new("room", &c).is_err());
}

/// Returns the error of a reporter built from `c`, which must fail.
fn refused(c: &MetricsConfig) -> String {
    PrometheusReporter::new("room", c).unwrap_err().to_string()
}

#[test]
fn a_constant_label_named_like_a_metric_label_is_refused() {
    for label in ["route", "status", "type", "code"] {
        let mut c = config();
        c.const_labels.insert(label.into(), "x".into());
        let e = refused(&c);
        assert!(e.contains(&format!("{label:?}")), "{e}");
        assert!(e.contains("pitaya.metrics.constlabels"), "{e}");
    }
}

#[test]
fn constant_labels_the_reporter_sets_are_refused() {
    for label in ["game", "serverType"] {
        let mut c = config();
        c.const_labels.insert(label.into(), "x".into());
        let e = refused(&c);
        assert!(
            e.contains(&format!("pitaya.metrics.constlabels {label:?}")),
            "{e}"
        );
    }
}

#[test]
fn an_additional_label_equal_to_a_constant_label_is_refused() {
    for label in ["game", "serverType", "region"] {
        let mut c = config();
        c.additional_labels.insert(label.into(), "x".into());
        let e = refused(&c);
        assert!(
            e.contains(&format!("pitaya.metrics.additionallabels {label:?}")),
            "{e}"
        );
    }
}

#[test]
fn label_names_prometheus_reserves_are_refused() {
    for label in ["__name__", "__x", "le", "quantile"] {
        let mut c = config();
        c.const_labels.insert(label.into(), "x".into());
        assert!(refused(&c).contains(&format!("{label:?}")));

        let mut c = config();
        c.additional_labels.insert(label.into(), "x".into());
        assert!(refused(&c).contains(&format!("{label:?}")));
    }
}

#[test]
fn a_custom_metric_label_equal_to_a_constant_label_is_refused() {
    let mut c = config();
    c.custom.counters.push(CustomMetric {
        subsystem: "shop".into(),
        name: "sales".into(),
        labels: vec!["region".into()],
        ..CustomMetric::default()
    });
    let e = refused(&c);
    assert!(
        e.contains("pitaya_shop_sales") && e.contains("\"region\""),
        "{e}"
    );
}

#[test]
fn labels_that_clash_with_nothing_are_accepted_and_scraped_once() {
    let mut c = config();
    c.additional_labels.insert("shard".into(), "1".into());
    let r = PrometheusReporter::new("room", &c).unwrap();
    r.report_gauge(CONNECTED_CLIENTS, &[], 1.0).unwrap();
    let text = r.render();
    let line = lines(&text, "pitaya_acceptor_connected_clients{")[0];
    for label in ["game=", "serverType=", "region=", "shard="] {
        assert_eq!(line.matches(label).count(), 1, "{line}");
    }
}
