//! A wrapper that drops a connection's packets over a rate (spec 1.8).
//!
//! Pitaya counts every packet a client sends, handshakes and heartbeats included, and
//! remembers when it accepted the last `limit` of them. A packet is accepted while fewer
//! than `limit` are remembered, or when the oldest remembered one is at least
//! `interval` old (it then takes that one's place). Any other packet is dropped without
//! a word to the client, whose connection stays open.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{future, FutureExt, StreamExt};
use tokio::time::Instant;

use super::{Acceptor, Incoming, PacketStream};
use crate::config::RateLimitingConfig;

/// An acceptor whose connections drop packets arriving faster than a set rate.
///
/// Like Pitaya's rate-limiting wrapper it is opt-in: wrap an acceptor to use it, or set
/// `pitaya.conn.ratelimiting.enabled` for the app to wrap all of its acceptors. With
/// `force_disable` set in the config it passes connections through untouched. Every
/// dropped packet is counted (Pitaya's `exceeded_rate_limiting` counter, read with
/// [`exceeded`](Self::exceeded)), but only the first drop of a burst is logged as a
/// warning; the rest of the burst is summed up in one line when the connection is let
/// through again, closes, or at most once per `interval` while the burst lasts.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use pitaya::acceptor::{RateLimitingAcceptor, TcpAcceptor};
/// use pitaya::Config;
///
/// let config = Config::load().expect("valid config");
/// let tcp = TcpAcceptor::bind("0.0.0.0:3250").await?;
/// let acceptor = RateLimitingAcceptor::new(tcp, &config.conn.rate_limiting);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RateLimitingAcceptor<A> {
    inner: A,
    limit: usize,
    interval: Duration,
    enabled: bool,
    exceeded: ExceededCounter,
}

/// Returns `acceptor` wrapped in the limit of `config`, as `pitaya.conn.ratelimiting.enabled`
/// asks; one that limits its connections already is returned as it is.
pub(crate) fn rate_limited(
    acceptor: Arc<dyn Acceptor>,
    config: &RateLimitingConfig,
) -> Arc<dyn Acceptor> {
    if acceptor.rate_limit_drops().is_some() {
        return acceptor;
    }
    Arc::new(RateLimitingAcceptor::new(Dyn(acceptor), config))
}

/// An acceptor the app holds as a trait object, so that it can be wrapped.
#[derive(Debug)]
struct Dyn(Arc<dyn Acceptor>);

#[async_trait::async_trait]
impl Acceptor for Dyn {
    fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }

    fn transport(&self) -> &'static str {
        self.0.transport()
    }

    async fn accept(&self, max_packet_size: usize) -> io::Result<(Incoming, SocketAddr)> {
        self.0.accept(max_packet_size).await
    }

    fn enable_proxy_protocol(&self) -> bool {
        self.0.enable_proxy_protocol()
    }

    fn rate_limit_drops(&self) -> Option<ExceededCounter> {
        self.0.rate_limit_drops()
    }
}

/// A shared count of packets dropped for going over the rate.
#[derive(Debug, Clone, Default)]
pub struct ExceededCounter(Arc<AtomicU64>);

impl ExceededCounter {
    /// Returns how many packets were dropped so far, over every connection.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn increment(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

// ===== impl RateLimitingAcceptor =====

impl<A: Acceptor> RateLimitingAcceptor<A> {
    /// Returns `inner` with the limit of `config` on each of its connections.
    ///
    /// A `limit` of zero, which [`Config::validate`](crate::Config::validate) refuses,
    /// is taken as one so that no connection is left unable to send anything.
    pub fn new(inner: A, config: &RateLimitingConfig) -> Self {
        RateLimitingAcceptor {
            inner,
            limit: (config.limit as usize).max(1),
            interval: config.interval,
            enabled: !config.force_disable,
            exceeded: ExceededCounter::default(),
        }
    }

    /// Returns the count of dropped packets, shared with this acceptor.
    pub fn exceeded(&self) -> ExceededCounter {
        self.exceeded.clone()
    }

    /// Returns the wrapped acceptor.
    pub fn into_inner(self) -> A {
        self.inner
    }
}

#[async_trait::async_trait]
impl<A: Acceptor> Acceptor for RateLimitingAcceptor<A> {
    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    fn transport(&self) -> &'static str {
        self.inner.transport()
    }

    async fn accept(&self, max_packet_size: usize) -> io::Result<(Incoming, SocketAddr)> {
        let (incoming, remote) = self.inner.accept(max_packet_size).await?;
        if !self.enabled {
            return Ok((incoming, remote));
        }
        let mut window = Window::new(self.limit, self.interval);
        let exceeded = self.exceeded.clone();
        let log = DropLog::new(remote, self.interval);
        let limit = move |stream| limit_stream(stream, move || window.admit(), exceeded, log);
        let limited = incoming.map(move |conn| conn.map(|conn| conn.map_stream(limit)));
        Ok((Box::pin(limited), remote))
    }

    fn enable_proxy_protocol(&self) -> bool {
        self.inner.enable_proxy_protocol()
    }

    fn rate_limit_drops(&self) -> Option<ExceededCounter> {
        Some(self.exceeded())
    }
}

/// Returns `stream` without the packets `admit` refuses; read errors pass untouched.
fn limit_stream(
    stream: PacketStream,
    mut admit: impl FnMut() -> bool + Send + 'static,
    exceeded: ExceededCounter,
    mut log: DropLog,
) -> PacketStream {
    Box::pin(stream.filter(move |item| {
        let keep = item.is_err() || admit();
        if keep {
            log.admitted();
        } else {
            exceeded.increment();
            log.dropped(item.as_ref().ok().map(|p| p.kind));
        }
        future::ready(keep)
    }))
}

/// What one connection has said in the log about its dropped packets.
///
/// A flooding client can send thousands of packets in a few milliseconds; a warning per
/// packet would let it fill the server's disk, so we warn once per burst and sum up the
/// rest.
#[derive(Debug)]
struct DropLog {
    remote: SocketAddr,
    interval: Duration,
    /// Drops not yet reported in a summary line.
    unreported: u64,
    /// When the last line about this burst was written; `None` outside a burst.
    last_line: Option<Instant>,
}

impl DropLog {
    fn new(remote: SocketAddr, interval: Duration) -> Self {
        DropLog {
            remote,
            interval,
            unreported: 0,
            last_line: None,
        }
    }

    /// Notes a dropped packet: warns if it starts a burst, else counts it.
    fn dropped(&mut self, packet: Option<pitaya_protocol::PacketType>) {
        let now = Instant::now();
        match self.last_line {
            None => {
                self.last_line = Some(now);
                tracing::warn!(
                    remote = %self.remote,
                    ?packet,
                    "rate limit exceeded; dropping packets until the rate falls"
                );
            }
            Some(last) => {
                self.unreported += 1;
                if now.duration_since(last) >= self.interval {
                    self.last_line = Some(now);
                    self.summarize("still exceeding the rate limit");
                }
            }
        }
    }

    /// Notes an accepted packet, which ends any burst.
    fn admitted(&mut self) {
        if self.last_line.take().is_some() {
            self.summarize("rate limit burst over");
        }
    }

    fn summarize(&mut self, what: &str) {
        if self.unreported > 0 {
            tracing::warn!(remote = %self.remote, dropped = self.unreported, "{what}");
            self.unreported = 0;
        }
    }
}

impl Drop for DropLog {
    fn drop(&mut self) {
        self.summarize("connection closed during a rate limit burst");
    }
}

/// The times of the last accepted packets of one connection.
#[derive(Debug)]
struct Window {
    limit: usize,
    interval: Duration,
    /// Oldest first; never more than `limit`.
    accepted: VecDeque<Instant>,
}

impl Window {
    fn new(limit: usize, interval: Duration) -> Self {
        Window {
            limit,
            interval,
            accepted: VecDeque::with_capacity(limit),
        }
    }

    /// Returns whether a packet arriving now is accepted, and remembers it if so.
    fn admit(&mut self) -> bool {
        let now = Instant::now();
        if self.accepted.len() >= self.limit {
            match self.accepted.front() {
                Some(&oldest) if now.duration_since(oldest) >= self.interval => {
                    self.accepted.pop_front();
                }
                _ => return false,
            }
        }
        self.accepted.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;
    use futures_util::stream;
    use pitaya_protocol::{Packet, PacketType};

    use super::*;

    /// Log lines written while a test runs, for asserting on what was logged.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        /// Installs a subscriber writing here for this thread, until the guard drops.
        fn install(&self) -> tracing::subscriber::DefaultGuard {
            let sink = self.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || sink.clone())
                .finish();
            tracing::subscriber::set_default(subscriber)
        }

        fn warn_lines(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().expect("not poisoned").clone());
            let text = text.expect("log lines are UTF-8");
            text.lines()
                .filter(|l| l.contains("WARN"))
                .map(str::to_owned)
                .collect()
        }
    }

    fn notifies(n: usize) -> PacketStream {
        let packet = Packet {
            kind: PacketType::Data,
            body: Bytes::from_static(b"flood"),
        };
        Box::pin(stream::iter((0..n).map(move |_| Ok(packet.clone()))))
    }

    fn limited(packets: PacketStream, limit: usize) -> PacketStream {
        let mut window = Window::new(limit, Duration::from_secs(1));
        let remote: SocketAddr = "192.0.2.7:4321".parse().expect("valid address");
        let log = DropLog::new(remote, Duration::from_secs(1));
        limit_stream(
            packets,
            move || window.admit(),
            ExceededCounter::default(),
            log,
        )
    }

    // Time is paused and nothing advances it, so the whole flood is one burst.
    #[tokio::test(start_paused = true)]
    async fn flood_logs_one_warning_and_one_summary() {
        let logs = Captured::default();
        let _guard = logs.install();

        let mut stream = limited(notifies(5000), 2);
        let mut kept = 0;
        while let Some(item) = stream.next().await {
            item.expect("no read error");
            kept += 1;
        }
        assert_eq!(kept, 2);
        drop(stream);

        let warns = logs.warn_lines();
        assert_eq!(warns.len(), 2, "{warns:#?}");
        assert!(warns[0].contains("remote=192.0.2.7:4321"), "{}", warns[0]);
        assert!(warns[1].contains("dropped=4997"), "{}", warns[1]);
    }

    #[tokio::test(start_paused = true)]
    async fn long_burst_is_summed_up_once_per_interval() {
        let logs = Captured::default();
        let _guard = logs.install();
        let mut log = DropLog::new(
            "192.0.2.7:4321".parse().expect("valid"),
            Duration::from_secs(1),
        );

        log.dropped(None);
        for _ in 0..100 {
            log.dropped(None);
        }
        assert_eq!(logs.warn_lines().len(), 1);

        tokio::time::advance(Duration::from_secs(1)).await;
        log.dropped(None);
        assert_eq!(logs.warn_lines().len(), 2);
        assert!(logs.warn_lines()[1].contains("dropped=101"));

        log.dropped(None);
        log.admitted();
        let warns = logs.warn_lines();
        assert_eq!(warns.len(), 3);
        assert!(warns[2].contains("burst over") && warns[2].contains("dropped=1"));

        // A new burst warns again; closing with nothing unreported writes nothing more.
        log.dropped(None);
        drop(log);
        assert_eq!(logs.warn_lines().len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn window_accepts_limit_packets_then_one_per_freed_slot() {
        let mut window = Window::new(3, Duration::from_secs(1));
        assert!(window.admit());
        tokio::time::advance(Duration::from_millis(400)).await;
        assert!(window.admit());
        assert!(window.admit());
        assert!(!window.admit());

        // The first packet is a second old now: its slot is free, the others are not.
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(window.admit());
        assert!(!window.admit());

        // 400 ms later the two packets of that moment are a second old.
        tokio::time::advance(Duration::from_millis(400)).await;
        assert!(window.admit());
        assert!(window.admit());
        assert!(!window.admit());
    }

    #[tokio::test(start_paused = true)]
    async fn refused_packets_do_not_take_a_slot() {
        let mut window = Window::new(1, Duration::from_secs(1));
        assert!(window.admit());
        for _ in 0..10 {
            tokio::time::advance(Duration::from_millis(90)).await;
            assert!(!window.admit());
        }
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(window.admit());
    }
}
