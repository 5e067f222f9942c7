//! Label names the reporter refuses, because the scrape they make is invalid.
//!
//! The `prometheus` crate checks each name's characters, but not that a constant label
//! and a variable label of one family differ (it keeps them apart internally, then
//! prints both), nor the names Prometheus reserves: `__*` for itself, `le` on histogram
//! buckets, `quantile` on summaries. Every built-in set has histograms and summaries,
//! so we refuse the last two everywhere.

use std::collections::HashMap;

use prometheus::Error;

use crate::config::MetricsConfig;

/// Constant labels set by the reporter itself, not by `constlabels`.
const OWN: [&str; 2] = ["game", "serverType"];

/// Refuses `constlabels` and `additionallabels` keys that cannot be used on every family.
pub(super) fn check_config(config: &MetricsConfig) -> Result<(), Error> {
    for key in config.const_labels.keys() {
        let at = "pitaya.metrics.constlabels";
        if OWN.contains(&key.as_str()) {
            return Err(refused(
                at,
                key,
                "is set by the reporter (game from pitaya.metrics.game, serverType from the \
                 server type)",
            ));
        }
        reserved(at, key)?;
    }
    for key in config.additional_labels.keys() {
        let at = "pitaya.metrics.additionallabels";
        reserved(at, key)?;
        if OWN.contains(&key.as_str()) || config.const_labels.contains_key(key) {
            return Err(refused(at, key, "is also a constant label"));
        }
    }
    Ok(())
}

/// Refuses variable labels of `family` that are reserved or equal a constant label.
pub(super) fn check_family(
    family: &str,
    labels: &[String],
    const_labels: &HashMap<String, String>,
) -> Result<(), Error> {
    for label in labels {
        let at = format!("label of {family}");
        reserved(&at, label)?;
        if const_labels.contains_key(label) {
            let why = if OWN.contains(&label.as_str()) {
                "is also a constant label set by the reporter".to_owned()
            } else {
                format!("is also a constant label (pitaya.metrics.constlabels.{label})")
            };
            return Err(refused(&at, label, &why));
        }
    }
    Ok(())
}

fn reserved(at: &str, key: &str) -> Result<(), Error> {
    if key.starts_with("__") {
        return Err(refused(
            at,
            key,
            "is reserved by Prometheus (names starting with __)",
        ));
    }
    if key == "le" || key == "quantile" {
        return Err(refused(
            at,
            key,
            "is reserved by Prometheus for histogram buckets and summary quantiles",
        ));
    }
    Ok(())
}

fn refused(at: &str, key: &str, why: &str) -> Error {
    Error::Msg(format!("{at} {key:?} {why}"))
}
