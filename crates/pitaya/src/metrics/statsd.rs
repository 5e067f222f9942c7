//! The StatsD reporter: Go Pitaya's names and DogStatsD tags over UDP (spec 13.3).
//!
//! A metric goes out as `<prefix><name>:<value>|<type>|#serverType:<type>,...`: the
//! prefix is `pitaya.metrics.statsd.prefix`, the tags are the server type, then the
//! constant labels, then the report's labels. Counts are `c`, gauges `g`, summaries are
//! timings (`ms`) that carry the nanosecond value unchanged as Pitaya sends them, and
//! histograms are `h` (Pitaya v2; v3 sends none). Characters that would end a tag,
//! a field or the line are sent as `_` in tag names and values.

use std::borrow::Cow;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};

use cadence::prelude::*;
use cadence::{MetricBuilder, MetricError, StatsdClient, UdpMetricSink};

use super::{Label, ReportError, Reporter};
use crate::config::MetricsConfig;

/// Sends every report to a StatsD agent over UDP.
///
/// Built by the app when `pitaya.metrics.statsd.enabled` is set. A datagram that
/// cannot be sent is lost: StatsD over UDP has no delivery guarantee.
#[derive(Debug)]
pub struct StatsdReporter {
    client: StatsdClient,
    rate: f64,
}

impl StatsdReporter {
    /// Returns a reporter for a server of `server_type` that sends to
    /// `config.statsd.host` from an ephemeral local UDP port.
    ///
    /// # Errors
    ///
    /// When the host does not resolve or no local UDP socket can be had.
    pub fn new(server_type: &str, config: &MetricsConfig) -> Result<Self, MetricError> {
        let statsd = &config.statsd;
        let target = resolve(&statsd.host)?;
        // A socket of the target's family: an IPv4 one cannot send to `[::1]:8125`.
        let local: SocketAddr = if target.is_ipv6() {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        let sink = UdpMetricSink::from(target, socket)?;

        // cadence puts one `.` between prefix and name; Pitaya's prefix ends with it.
        let prefix = statsd.prefix.trim_end_matches('.');
        let mut builder =
            StatsdClient::builder(prefix, sink).with_tag("serverType", tag_text(server_type));
        for (k, v) in &config.const_labels {
            if k == "serverType" {
                // The tag is ours; a second one would leave the agent to pick.
                tracing::warn!(
                    value = %v,
                    "pitaya.metrics.constlabels.serverType ignored by statsd: the tag is the \
                     server type"
                );
                continue;
            }
            builder = builder.with_tag(tag_text(k), tag_text(v));
        }
        Ok(StatsdReporter {
            client: builder.build(),
            rate: statsd.rate,
        })
    }

    /// Returns whether this report is one of the sampled ones.
    fn sampled(&self) -> bool {
        self.rate >= 1.0 || fastrand::f64() < self.rate
    }

    fn send<T: cadence::Metric + From<String>>(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        builder: MetricBuilder<'_, '_, T>,
    ) -> Result<(), ReportError> {
        let tags: Vec<_> = labels
            .iter()
            .map(|(k, v)| (tag_text(k), tag_text(v)))
            .collect();
        let mut builder = tags.iter().fold(builder, |b, (k, v)| b.with_tag(k, v));
        if self.rate < 1.0 {
            builder = builder.with_sampling_rate(self.rate);
        }
        builder.try_send().map(drop).map_err(|e| ReportError::Send {
            metric: metric.into(),
            source: Box::new(e),
        })
    }
}

/// Returns the address `host` resolves to, IPv4 first when it has both, as Go's
/// resolver picks for Pitaya's StatsD client.
fn resolve(host: &str) -> io::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = host.to_socket_addrs()?.collect();
    let v4 = addrs.iter().find(|a| a.is_ipv4());
    v4.or(addrs.first()).copied().ok_or_else(|| {
        let msg = format!("statsd host {host:?} resolves to no address");
        io::Error::new(io::ErrorKind::NotFound, msg)
    })
}

/// Returns `text` fit for a DogStatsD tag: `,` ends a tag, `|` a field, `:` splits
/// name from value, and a line break ends the metric, so each becomes `_`.
fn tag_text(text: &str) -> Cow<'_, str> {
    let special = |c: char| matches!(c, ',' | '|' | ':' | '\n' | '\r');
    if text.contains(special) {
        Cow::Owned(text.replace(special, "_"))
    } else {
        Cow::Borrowed(text)
    }
}

impl Reporter for StatsdReporter {
    fn report_count(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        value: f64,
    ) -> Result<(), ReportError> {
        if !self.sampled() {
            return Ok(());
        }
        // StatsD counts are whole; Pitaya's client truncates too.
        let count = self.client.count_with_tags(metric, value as i64);
        self.send(metric, labels, count)
    }

    fn report_gauge(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        value: f64,
    ) -> Result<(), ReportError> {
        if !self.sampled() {
            return Ok(());
        }
        self.send(metric, labels, self.client.gauge_with_tags(metric, value))
    }

    fn report_summary(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        value: f64,
    ) -> Result<(), ReportError> {
        if !self.sampled() {
            return Ok(());
        }
        let time = value.max(0.0).round() as u64;
        self.send(metric, labels, self.client.time_with_tags(metric, time))
    }

    fn report_histogram(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        value: f64,
    ) -> Result<(), ReportError> {
        if !self.sampled() {
            return Ok(());
        }
        self.send(
            metric,
            labels,
            self.client.histogram_with_tags(metric, value),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn receiver() -> (UdpSocket, MetricsConfig) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut config = MetricsConfig::default();
        config.statsd.host = socket.local_addr().unwrap().to_string();
        config.const_labels.insert("region".into(), "eu".into());
        (socket, config)
    }

    fn next_line(socket: &UdpSocket) -> String {
        let mut buf = [0; 1500];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn each_kind_goes_out_with_pitaya_name_type_and_tags() {
        let (socket, config) = receiver();
        let r = StatsdReporter::new("room", &config).unwrap();
        let labels = [("route", "room.room.join")];
        r.report_count("exceeded_rate_limiting", &[], 2.0).unwrap();
        r.report_gauge("connected_clients", &[], 3.5).unwrap();
        r.report_summary("response_time_ns", &labels, 1234.4)
            .unwrap();
        r.report_histogram("channel_capacity", &[("channel", "c")], 7.0)
            .unwrap();
        let tags = "serverType:room,region:eu";
        assert_eq!(
            next_line(&socket),
            format!("pitaya.exceeded_rate_limiting:2|c|#{tags}")
        );
        assert_eq!(
            next_line(&socket),
            format!("pitaya.connected_clients:3.5|g|#{tags}")
        );
        assert_eq!(
            next_line(&socket),
            format!("pitaya.response_time_ns:1234|ms|#{tags},route:room.room.join")
        );
        assert_eq!(
            next_line(&socket),
            format!("pitaya.channel_capacity:7|h|#{tags},channel:c")
        );
    }

    #[test]
    fn sampled_reports_carry_the_rate() {
        let (socket, mut config) = receiver();
        config.statsd.rate = 0.999_999;
        config.statsd.prefix = "game".into();
        let r = StatsdReporter::new("connector", &config).unwrap();
        // One in a million is skipped; send until one arrives.
        for _ in 0..10 {
            r.report_gauge("goroutines", &[], 1.0).unwrap();
        }
        let line = next_line(&socket);
        assert_eq!(
            line,
            "game.goroutines:1|g|@0.999999|#serverType:connector,region:eu"
        );
    }

    #[test]
    fn an_ipv6_host_gets_the_reports() {
        // Some build machines have no IPv6 loopback; nothing to test there.
        let Ok(socket) = UdpSocket::bind("[::1]:0") else {
            eprintln!("skipped: ::1 cannot be bound here");
            return;
        };
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut config = MetricsConfig::default();
        config.statsd.host = socket.local_addr().unwrap().to_string();
        assert!(config.statsd.host.starts_with("[::1]:"));

        let r = StatsdReporter::new("room", &config).unwrap();
        r.report_gauge("connected_clients", &[], 1.0).unwrap();
        assert_eq!(
            next_line(&socket),
            "pitaya.connected_clients:1|g|#serverType:room"
        );
    }

    #[test]
    fn tag_separators_in_names_and_values_are_replaced() {
        let (socket, mut config) = receiver();
        config.const_labels.insert("zone".into(), "a,b|c:d".into());
        let r = StatsdReporter::new("room", &config).unwrap();
        let labels = [("route", "x,y|z:w\nv"), ("k:1", "ok")];
        r.report_count("exceeded_rate_limiting", &labels, 1.0)
            .unwrap();
        assert_eq!(
            next_line(&socket),
            "pitaya.exceeded_rate_limiting:1|c|#serverType:room,region:eu,zone:a_b_c_d,\
             route:x_y_z_w_v,k_1:ok"
        );
    }

    #[test]
    fn a_constant_server_type_does_not_add_a_second_tag() {
        let (socket, mut config) = receiver();
        config
            .const_labels
            .insert("serverType".into(), "other".into());
        let r = StatsdReporter::new("room", &config).unwrap();
        r.report_gauge("goroutines", &[], 1.0).unwrap();
        assert_eq!(
            next_line(&socket),
            "pitaya.goroutines:1|g|#serverType:room,region:eu"
        );
    }
}
