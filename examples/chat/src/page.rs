//! The browser page: a small HTTP server for the chat's static files.
//!
//! The files live in `examples/chat/web/` and are compiled into the binary; the page
//! speaks the Pitaya protocol itself, over the WebSocket acceptor (see [`serve_page`]).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{self, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

const INDEX_HTML: &str = include_str!("../web/index.html");
const STYLE_CSS: &str = include_str!("../web/style.css");
const PITAYA_MJS: &str = include_str!("../web/pitaya.mjs");
const CODEC_MJS: &str = include_str!("../web/codec.mjs");
const CHAT_MJS: &str = include_str!("../web/chat.mjs");

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const JSON: &str = "application/json";

/// What the page may load and connect to: its own files, and WebSockets anywhere, since
/// the acceptor listens on another port (another origin) and `?ws=` may name any host.
/// Longest wait for a request head; a browser sends it at once, so a connection that
/// has not is closed rather than held.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections served at once; a browser opens about six per site.
const MAX_CONNECTIONS: usize = 64;

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
     img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'";

/// Serves the chat page on `listener`, pointing the page at WebSocket port `ws_port`.
///
/// | path | what it is |
/// |---|---|
/// | `/` | `index.html`, the chat page |
/// | `/style.css` | its style sheet |
/// | `/pitaya.mjs` | the Pitaya client module: handshake, heartbeats, requests, pushes |
/// | `/codec.mjs` | its codec: Pitaya packets and messages |
/// | `/chat.mjs` | the page's script: join, member list, messages |
/// | `/config.json` | `{"wsPort": <port>}`: where the page finds the WebSocket acceptor |
///
/// The page opens its WebSocket on the host it was loaded from, at `wsPort`; a `?ws=<url>`
/// query parameter on the page overrides that. Any other path answers 404.
///
/// Runs until the task is dropped: a failed accept is retried, not returned. Each
/// connection must send a whole request head within 5 seconds, and at most 64 are
/// served at once; more wait in the listen backlog.
///
/// # Errors
///
/// Returns the I/O error that stops the server, if one ever does.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3252").await?;
/// chat::serve_page(listener, 3251).await
/// # }
/// ```
pub async fn serve_page(listener: TcpListener, ws_port: u16) -> io::Result<()> {
    // We drive hyper rather than call `axum::serve`, which sets no timer and so no
    // header read timeout, and accepts without bound.
    let router = router(ws_port);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "page accept failed");
                // Out of file descriptors and the like: give the process time.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let conn = http.serve_connection(TokioIo::new(tcp), service);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "page connection closed");
            }
            drop(slot);
        });
    }
}

/// Returns the routes of the page's files and of its `config.json`.
fn router(ws_port: u16) -> Router {
    let config = serde_json::json!({ "wsPort": ws_port }).to_string();
    Router::new()
        .route("/", get(|| async { file(HTML, INDEX_HTML) }))
        .route("/style.css", get(|| async { file(CSS, STYLE_CSS) }))
        .route(
            "/pitaya.mjs",
            get(|| async { file(JAVASCRIPT, PITAYA_MJS) }),
        )
        .route("/codec.mjs", get(|| async { file(JAVASCRIPT, CODEC_MJS) }))
        .route("/chat.mjs", get(|| async { file(JAVASCRIPT, CHAT_MJS) }))
        .route(
            "/config.json",
            get(move || {
                let config = config.clone();
                async move { file(JSON, config) }
            }),
        )
}

/// Returns a 200 response carrying `body` as `content_type`.
fn file(content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Files change with every build of the binary: have browsers check each time.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}
