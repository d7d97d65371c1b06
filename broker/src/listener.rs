//! Configured listeners (`[[listeners]]`): TCP, TLS, WebSocket and
//! WebSocket over TLS, each optionally behind a PROXY protocol header.
//!
//! Lifecycle of a connection on such a listener, before MQTT begins (all
//! of it within `connect_timeout_secs`, in the connection's own task so a
//! slow handshake never holds up accepting):
//! 1. PROXY header, when the listener expects one: the client address is
//!    taken from it;
//! 2. TLS handshake (tls, wss), verifying a client certificate when a CA is
//!    configured; its Common Name becomes the username when
//!    `use_identity_as_username` is set;
//! 3. WebSocket upgrade (ws, wss): the path must match and the client must
//!    offer the `mqtt` subprotocol [MQTT-6.0.0-3];
//! 4. the connection proper ([`crate::connection`]), over the socket itself
//!    (tcp) or over a pipe to a pump task (the others, see
//!    [`crate::transport`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::debug;

use crate::broker::ConnSlot;
use crate::config::{AuthConfig, ListenerConfig};
use crate::security::{ClientOrigin, Security};
use crate::stats::Stats;
use crate::transport::{self, PIPE_BYTES};

/// How long a pump may take to pass on the last bytes after its
/// connection ended.
const PUMP_DRAIN: Duration = Duration::from_secs(2);

/// A listener that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS listener on {addr}: {path}: {why}")]
    Pem {
        addr: SocketAddr,
        path: PathBuf,
        why: String,
    },
    #[error("TLS listener on {addr}: {why}")]
    Tls { addr: SocketAddr, why: String },
}

/// What every connection of a listener shares.
pub struct ListenerCtx {
    pub config: ListenerConfig,
    /// Set for tls and wss; replaced whole by [`ListenerCtx::reload_tls`]
    /// (a handshake in progress keeps the acceptor it started with).
    tls: Option<RwLock<TlsAcceptor>>,
    /// Whether clients without credentials are let in here.
    allow_anonymous: bool,
}

impl std::fmt::Debug for ListenerCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerCtx")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .field("allow_anonymous", &self.allow_anonymous)
            .finish()
    }
}

/// A bound listener.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    pub ctx: Arc<ListenerCtx>,
}

impl Listener {
    /// Loads certificates and binds the address.
    pub async fn bind(
        config: &ListenerConfig,
        auth: &AuthConfig,
    ) -> Result<Listener, ListenerError> {
        let tls = if config.kind.is_tls() {
            Some(RwLock::new(tls_acceptor(config)?))
        } else {
            None
        };
        let tcp = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ListenerError::Bind {
                addr: config.listen,
                source,
            })?;
        let bound = tcp.local_addr().unwrap_or(config.listen);
        let allow_anonymous = Security::anonymous_default(auth, bound, config.allow_anonymous);
        Ok(Listener {
            tcp,
            ctx: Arc::new(ListenerCtx {
                config: config.clone(),
                tls,
                allow_anonymous,
            }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Accepts from whichever listener has a connection ready; returns its
/// index. Never completes for an empty slice.
pub fn accept_any(
    listeners: &[Listener],
) -> impl Future<Output = (usize, std::io::Result<(TcpStream, SocketAddr)>)> + '_ {
    std::future::poll_fn(move |cx| {
        for (i, l) in listeners.iter().enumerate() {
            if let Poll::Ready(r) = l.tcp.poll_accept(cx) {
                return Poll::Ready((i, r));
            }
        }
        Poll::Pending
    })
}

/// The transport a handshake produced.
enum Io {
    Tcp(TcpStream),
    /// The connection's end of a pipe, and the pump serving the other end.
    Piped(tokio::io::DuplexStream, JoinHandle<()>),
}

/// Runs the handshakes of one accepted connection, then the connection.
pub async fn serve(ctx: Arc<ListenerCtx>, broker: ConnSlot, stream: TcpStream, peer: SocketAddr) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "set_nodelay failed");
    }
    let timeout = Duration::from_secs(broker.config.limits.connect_timeout_secs);
    let max_packet = broker.config.limits.max_packet_size_bytes as usize;
    let (io, origin) =
        match tokio::time::timeout(timeout, ctx.handshake(stream, peer, max_packet)).await {
            Ok(Ok(x)) => x,
            Ok(Err(why)) => {
                debug!(%peer, transport = ctx.config.kind.as_str(), %why, "handshake failed");
                Stats::inc(&broker.stats.handshakes_failed);
                return;
            }
            Err(_) => {
                Stats::inc(&broker.stats.connect_timeouts);
                return;
            }
        };
    match io {
        Io::Tcp(stream) => crate::connection::serve(broker, stream, origin).await,
        Io::Piped(pipe, mut pump) => {
            crate::connection::serve_io(broker, pipe, origin).await;
            if tokio::time::timeout(PUMP_DRAIN, &mut pump).await.is_err() {
                pump.abort();
            }
        }
    }
}

impl ListenerCtx {
    /// Reads the certificate, key and client CA files of a TLS listener
    /// again, for the connections accepted from now on; connections already
    /// up keep their session. Returns false for a listener without TLS. On
    /// error the listener keeps what it had.
    pub fn reload_tls(&self) -> Result<bool, ListenerError> {
        let Some(slot) = &self.tls else {
            return Ok(false);
        };
        let fresh = tls_acceptor(&self.config)?;
        *slot.write() = fresh;
        Ok(true)
    }

    /// Whether no client can log in without a password file: no anonymous
    /// access and no certificate usernames.
    pub fn refuses_everyone(&self) -> bool {
        !self.allow_anonymous && !self.config.use_identity_as_username
    }

    async fn handshake(
        &self,
        mut stream: TcpStream,
        mut peer: SocketAddr,
        max_packet: usize,
    ) -> Result<(Io, ClientOrigin), String> {
        if self.config.proxy_protocol {
            if let Some(addr) = transport::read_proxy_header(&mut stream)
                .await
                .map_err(|e| e.to_string())?
            {
                peer = addr;
            }
        }
        let mut origin = ClientOrigin {
            peer,
            allow_anonymous: self.allow_anonymous,
            cert_username: None,
            transport: self.config.kind.as_str(),
        };
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(max_packet + 16))
            .max_frame_size(Some(max_packet + 16));
        let acceptor = self.tls.as_ref().map(|t| t.read().clone());
        let Some(acceptor) = acceptor else {
            if !self.config.kind.is_websocket() {
                return Ok((Io::Tcp(stream), origin));
            }
            let ws = tokio_tungstenite::accept_hdr_async_with_config(
                stream,
                ws_check(self.config.path.clone()),
                Some(ws_config),
            )
            .await
            .map_err(|e| format!("websocket: {e}"))?;
            let (near, far) = tokio::io::duplex(PIPE_BYTES);
            let pump = tokio::spawn(transport::pump_websocket(ws, far));
            return Ok((Io::Piped(near, pump), origin));
        };
        let tls = acceptor
            .accept(stream)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        if self.config.use_identity_as_username {
            let cn = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|c| common_name(c.as_ref()))
                .ok_or("the client certificate has no Common Name")?;
            origin.cert_username = Some(Arc::from(cn.as_str()));
        }
        let (near, far) = tokio::io::duplex(PIPE_BYTES);
        let pump = if self.config.kind.is_websocket() {
            let ws = tokio_tungstenite::accept_hdr_async_with_config(
                tls,
                ws_check(self.config.path.clone()),
                Some(ws_config),
            )
            .await
            .map_err(|e| format!("websocket: {e}"))?;
            tokio::spawn(transport::pump_websocket(ws, far))
        } else {
            tokio::spawn(transport::pump_stream(tls, far))
        };
        Ok((Io::Piped(near, pump), origin))
    }
}

/// The WebSocket upgrade check: the configured path, and the `mqtt`
/// subprotocol (or the older `mqttv3.1`) offered by the client and echoed.
#[allow(clippy::result_large_err)] // the error type is tungstenite's
fn ws_check(path: String) -> impl FnOnce(&Request, Response) -> Result<Response, ErrorResponse> {
    move |req: &Request, mut resp: Response| {
        let refuse = |status: StatusCode, why: &str| {
            let mut r = ErrorResponse::new(Some(why.to_owned()));
            *r.status_mut() = status;
            r
        };
        if req.uri().path() != path {
            return Err(refuse(StatusCode::NOT_FOUND, "no MQTT endpoint here"));
        }
        let offered: Vec<String> = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_owned())
            .collect();
        let chosen = ["mqtt", "mqttv3.1"]
            .into_iter()
            .find(|p| offered.iter().any(|o| o == p))
            .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "the mqtt subprotocol is required"))?;
        resp.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(chosen));
        Ok(resp)
    }
}

/// The first Common Name of a DER certificate's subject.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

fn read_certs(
    addr: SocketAddr,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ListenerError> {
    let pem = |why: String| ListenerError::Pem {
        addr,
        path: path.to_owned(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no certificate in the file".into()));
    }
    Ok(certs)
}

fn tls_acceptor(config: &ListenerConfig) -> Result<TlsAcceptor, ListenerError> {
    use tokio_rustls::rustls;
    let addr = config.listen;
    let tls_err = |why: String| ListenerError::Tls { addr, why };
    let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) else {
        return Err(tls_err("needs cert_file and key_file".into()));
    };
    let certs = read_certs(addr, cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| ListenerError::Pem {
        addr,
        path: key_file.clone(),
        why: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let builder = match &config.client_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(addr, ca)? {
                roots
                    .add(c)
                    .map_err(|e| tls_err(format!("client CA: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if config.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| tls_err(e.to_string()))?)
        }
        None => builder.with_no_client_auth(),
    };
    let server = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_err(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}
