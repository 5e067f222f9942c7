//! `chat`: runs the standalone chat room (see the library docs for the routes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pitaya::acceptor::{Acceptor, TcpAcceptor, TlsConfig, WsAcceptor};
use pitaya::config::Config;

/// Command line, each flag also settable from the environment.
#[derive(Debug, Parser)]
#[command(name = "chat", about = "Standalone pitaya-rs chat room")]
struct Args {
    /// TCP listen address.
    #[arg(long, env = "CHAT_TCP_ADDR", default_value = "127.0.0.1:3250")]
    tcp: SocketAddr,
    /// WebSocket listen address (any path is accepted).
    #[arg(long, env = "CHAT_WS_ADDR", default_value = "127.0.0.1:3251")]
    ws: SocketAddr,
    /// Heartbeat interval, Go duration syntax (`30s`, `500ms`); overrides the config.
    #[arg(long, env = "CHAT_HEARTBEAT")]
    heartbeat: Option<String>,
    /// Config file (TOML or YAML) with Pitaya keys under `pitaya`.
    #[arg(long, env = "CHAT_CONFIG")]
    config: Option<PathBuf>,
    /// PEM certificate: serve TLS on both acceptors (needs --tls-key).
    #[arg(long, env = "CHAT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CHAT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// HTTP listen address of the browser chat page; no page unless set.
    ///
    /// Not with TLS: the wss acceptor, as Go Pitaya's, refuses a page from another origin.
    #[arg(long, env = "CHAT_HTTP_ADDR", conflicts_with = "tls_cert")]
    http: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::load()?,
    };
    // Logs per RUST_LOG; spans over OTLP when pitaya.tracing or OTEL_* ask for it.
    let telemetry = pitaya::telemetry::init(&config.tracing, "chat")?;
    let served = serve(args, config).await;
    if let Err(e) = telemetry.shutdown().await {
        eprintln!("chat: {e}");
    }
    served
}

async fn serve(args: Args, mut config: Config) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(h) = &args.heartbeat {
        config.heartbeat.interval =
            pitaya::config::duration::parse(h).map_err(|e| format!("--heartbeat {h:?}: {e}"))?;
    }

    let mut tcp = TcpAcceptor::bind(args.tcp)
        .await
        .map_err(|e| format!("cannot listen on {} (tcp): {e}", args.tcp))?;
    let mut ws = WsAcceptor::bind(args.ws)
        .await
        .map_err(|e| format!("cannot listen on {} (websocket): {e}", args.ws))?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let tls = TlsConfig::from_pem_files(cert, key)?;
        tcp = tcp.with_tls(tls.clone());
        ws = ws.with_tls(tls);
    }

    if let Some(addr) = args.http {
        let page = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (http): {e}"))?;
        let url = format!("http://{}/", page.local_addr()?);
        let ws_port = ws.local_addr().port();
        tokio::spawn(async move {
            if let Err(e) = chat::serve_page(page, ws_port).await {
                tracing::error!(error = %e, "chat page stopped");
            }
        });
        tracing::info!(%url, "chat page served");
    }

    let app = chat::build(chat::builder(config).acceptor(tcp).acceptor(ws)).await?;
    app.run().await?;
    Ok(())
}
