//! The browser page's HTTP server, in process on an ephemeral port: files, content types,
//! `config.json`, and refusals. The page itself runs in Chromium in `interop/browser`.

mod http;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;

/// The WebSocket port the page is pointed at; nothing needs to listen there.
const WS_PORT: u16 = 43_210;

/// Returns the address of a page server started on an ephemeral port.
async fn start_page() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(chat::serve_page(listener, WS_PORT));
    addr
}

#[tokio::test]
async fn page_and_its_files_are_served_with_their_content_types() {
    let page = start_page().await;
    let cases = [
        (
            "/",
            "text/html; charset=utf-8",
            "<script type=\"module\" src=\"chat.mjs\">",
        ),
        ("/style.css", "text/css; charset=utf-8", "#messages"),
        (
            "/chat.mjs",
            "text/javascript; charset=utf-8",
            "'room.room.join'",
        ),
        (
            "/pitaya.mjs",
            "text/javascript; charset=utf-8",
            "export class PitayaClient",
        ),
        (
            "/codec.mjs",
            "text/javascript; charset=utf-8",
            "export function decodeMessage",
        ),
    ];
    for (path, content_type, excerpt) in cases {
        let reply = http::request(page, "GET", path).await;
        assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
        assert_eq!(
            reply.header("content-type"),
            Some(content_type),
            "GET {path}"
        );
        assert!(reply.body.contains(excerpt), "GET {path} lacks {excerpt:?}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
}

#[tokio::test]
async fn every_file_the_page_loads_or_imports_is_served() {
    let page = start_page().await;
    let index = http::request(page, "GET", "/").await.body;
    let mut wanted: Vec<String> = references(&index, &["src=\"", "href=\""]);
    let mut checked = Vec::new();

    // Follow imports module by module, as the browser would.
    while let Some(file) = wanted.pop() {
        if checked.contains(&file) {
            continue;
        }
        let reply = http::request(page, "GET", &format!("/{file}")).await;
        assert_eq!(
            reply.status, 200,
            "{file} is referenced but answers {reply:?}"
        );
        if file.ends_with(".mjs") {
            wanted.extend(references(&reply.body, &["from './"]));
        }
        checked.push(file);
    }
    checked.sort();
    let expected = ["chat.mjs", "codec.mjs", "pitaya.mjs", "style.css"];
    assert_eq!(checked, expected);
}

#[tokio::test]
async fn config_json_points_the_page_at_the_websocket_port() {
    let page = start_page().await;
    let reply = http::request(page, "GET", "/config.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let config: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
    assert_eq!(config, json!({ "wsPort": WS_PORT }));
}

#[tokio::test]
async fn page_limits_what_it_loads_and_connects_to() {
    let page = start_page().await;
    let reply = http::request(page, "GET", "/").await;
    let policy = reply.header("content-security-policy").expect("a CSP");
    assert!(policy.contains("default-src 'self'"), "{policy}");
    assert!(policy.contains("connect-src 'self' ws: wss:"), "{policy}");
}

#[tokio::test]
async fn unknown_paths_are_not_found_and_other_methods_not_allowed() {
    let page = start_page().await;
    assert_eq!(http::request(page, "GET", "/missing.js").await.status, 404);
    assert_eq!(
        http::request(page, "GET", "/../Cargo.toml").await.status,
        404
    );
    assert_eq!(http::request(page, "POST", "/").await.status, 405);
}

/// Returns the relative file names that follow any of `markers` in `text`, up to a quote.
fn references(text: &str, markers: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for marker in markers {
        for (at, _) in text.match_indices(marker) {
            let rest = &text[at + marker.len()..];
            let end = rest.find(['"', '\'']).unwrap_or(rest.len());
            let name = &rest[..end];
            // Inline data (the icon) is no file.
            if !name.starts_with("data:") {
                found.push(name.to_owned());
            }
        }
    }
    found
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let page = start_page().await;
    let mut slow = tokio::net::TcpStream::connect(page).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: pa")
        .await
        .expect("send part of a head");
    // The server gives up on the head after its timeout (seconds) and closes.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), slow.read_to_end(&mut rest)).await;
    read.expect("closed by the server").expect("read");
    let answer = String::from_utf8_lossy(&rest);
    assert!(!answer.contains("<html"), "{answer}");

    // Others are still served.
    assert_eq!(http::request(page, "GET", "/").await.status, 200);
}
