//! The listener: accepts connections within the connection limit and runs
//! each on its own task; shuts down when the caller's future completes.

use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use herald_storage::{OpenError, QueueLimits, Store};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::broker::{Broker, ConnSlot};
use crate::config::Config;
use crate::listener::{accept_any, Listener, ListenerCtx};
use crate::security::{ClientOrigin, Security};
use crate::stats::Stats;

/// Logged for a listener where no client can log in.
const NOBODY: &str = "no client can log in here: anonymous access is off on a \
    non-loopback listener and there is no password file (set --password-file, or \
    auth.allow_anonymous = true)";

/// How long shutdown waits for connections to send their DISCONNECT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Listener(#[from] crate::listener::ListenerError),
    #[error("data directory {0} is in use by another herald process")]
    DataDirLocked(String),
    #[error("cannot listen on {addr} (admin HTTP): {source}")]
    BindAdmin {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The store under `<data_dir>/db` cannot be used (the message names
    /// the database and the cause).
    #[error(transparent)]
    Store(#[from] OpenError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Reloads, on request (the binary: on SIGHUP), the files a running server
/// reads: the password and ACL files, and every TLS listener's certificate,
/// key and client CA. Each part that fails to load keeps what it had.
#[derive(Debug, Clone)]
pub struct Reloader {
    broker: Arc<Broker>,
    listeners: Vec<Arc<ListenerCtx>>,
}

/// One part of a reload that failed (the rest was reloaded).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("password or ACL file: {0}")]
    Security(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Tls(#[from] crate::listener::ListenerError),
}

impl Reloader {
    /// Reloads everything; returns what failed. Logs each reloaded file.
    pub fn reload(&self) -> Vec<ReloadError> {
        let mut failed = Vec::new();
        match self.broker.security.reload() {
            Ok(()) => {
                let files = self.broker.security.files();
                if !files.is_empty() {
                    info!(?files, "reloaded the password and ACL files");
                }
            }
            Err(e) => failed.push(e.into()),
        }
        for ctx in &self.listeners {
            match ctx.reload_tls() {
                Ok(true) => info!(
                    listener = %ctx.config.listen,
                    cert_file = ?ctx.config.cert_file,
                    "reloaded the TLS certificate"
                ),
                Ok(false) => {}
                Err(e) => failed.push(e.into()),
            }
        }
        failed
    }
}

/// A bound, not yet running, server.
#[derive(Debug)]
pub struct Server {
    broker: Arc<Broker>,
    listener: TcpListener,
    /// `[[listeners]]`, in config order.
    listeners: Vec<Listener>,
    /// The admin HTTP listener, when enabled.
    admin: Option<TcpListener>,
    /// Held for the server's life: an exclusive lock on the data directory.
    _lock: File,
}

impl Server {
    /// Validates the config, locks the data directory, opens and loads the
    /// store (`<data_dir>/db`) and binds the listener. A store that cannot
    /// be opened is an error: the broker never starts empty over data.
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        config.validate()?;
        // The recorder must exist before the store and the broker create
        // their histograms. With the admin listener off nothing is exported,
        // and no recorder is installed: recording then costs nothing.
        if config.admin.enabled {
            crate::metrics::install();
        }
        let lock = lock_data_dir(&config.data_dir)?;
        let limits = QueueLimits {
            max_messages: config.limits.max_queued_messages,
            max_bytes: config.limits.max_queued_bytes,
        };
        // Loading blocks this thread for a moment; nothing else runs yet.
        let store = Store::open(&config.data_dir.join("db"), limits, config.storage.sync)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            listeners.push(Listener::bind(l, &config.auth).await?);
        }
        let admin = if config.admin.enabled {
            let addr = config.admin.listen;
            Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::BindAdmin { addr, source })?,
            )
        } else {
            None
        };
        let broker = Broker::new(config, store);
        broker.security.reload()?;
        Ok(Server {
            broker,
            listener,
            listeners,
            admin,
            _lock: lock,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The addresses of `[[listeners]]`, in config order.
    pub fn listener_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The admin HTTP address actually bound, when enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn broker(&self) -> Arc<Broker> {
        Arc::clone(&self.broker)
    }

    /// What reloads this server's files while it runs.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            broker: Arc::clone(&self.broker),
            listeners: self.listeners.iter().map(|l| Arc::clone(&l.ctx)).collect(),
        }
    }

    /// Serves until `shutdown` completes, then closes every connection
    /// (5.0 clients get DISCONNECT 0x8B) and returns once they are closed,
    /// or after a grace of 5 s; a connection still in a TLS or WebSocket
    /// handshake then ends on its own, by its CONNECT timeout at the latest.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let broker = self.broker;
        let mut background = JoinSet::new();
        if let Some(admin) = self.admin {
            let mut stop = broker.shutdown.subscribe();
            info!(addr = %admin.local_addr().map(|a| a.to_string()).unwrap_or_default(), "admin HTTP listening");
            background.spawn(crate::admin::serve(
                admin,
                Arc::clone(&broker),
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            ));
        }
        background.spawn(keep_alive_sweep(Arc::clone(&broker)));
        if broker.config.admin.sys_interval_secs > 0 {
            let every = Duration::from_secs(broker.config.admin.sys_interval_secs);
            background.spawn(crate::sys::run(Arc::clone(&broker), every));
        }
        let listen = self.listener.local_addr().unwrap_or(broker.config.listen);
        let allow_anonymous = Security::anonymous_default(&broker.config.auth, listen, None);
        info!(addr = %listen, allow_anonymous, "listening");
        let no_passwords = broker.config.auth.password_file.is_none();
        if !allow_anonymous && no_passwords {
            warn!(addr = %listen, "{NOBODY}");
        }
        for l in &self.listeners {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            info!(addr = %addr, kind = l.ctx.config.kind.as_str(), proxy_protocol = l.ctx.config.proxy_protocol, "listening");
            if no_passwords && l.ctx.refuses_everyone() {
                warn!(addr = %addr, "{NOBODY}");
            }
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            // Out of file descriptors and the like: back off briefly.
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Some(slot) = ConnSlot::take(&broker) else {
                        Stats::inc(&broker.stats.connections_refused_limit);
                        drop(stream);
                        continue;
                    };
                    Stats::inc(&broker.stats.connections_accepted);
                    let origin = ClientOrigin {
                        peer,
                        allow_anonymous,
                        cert_username: None,
                        transport: "tcp",
                    };
                    // Spawned as made, not inside an async block: a block
                    // would hold the connection's future twice (captured,
                    // then moved to be awaited), doubling every connection's
                    // task. Not kept in a JoinSet either (56 bytes a
                    // connection): shutdown waits on the connection count.
                    tokio::spawn(crate::connection::serve(slot, stream, origin));
                }
                (i, accepted) = accept_any(&self.listeners), if !self.listeners.is_empty() => {
                    let (stream, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Some(slot) = ConnSlot::take(&broker) else {
                        Stats::inc(&broker.stats.connections_refused_limit);
                        drop(stream);
                        continue;
                    };
                    Stats::inc(&broker.stats.connections_accepted);
                    let ctx = Arc::clone(&self.listeners[i].ctx);
                    tokio::spawn(crate::listener::serve(ctx, slot, stream, peer));
                }
            }
        }
        info!("shutting down");
        drop(self.listener);
        drop(self.listeners);
        broker.begin_shutdown();
        // Every connection was kicked (one still before CONNECT sees the
        // flag): each closes within its CLOSE_FLUSH; one in a TLS or
        // WebSocket handshake ends with its CONNECT timeout at the latest.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, broker.connections_closed()).await;
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while background.join_next().await.is_some() {}
        })
        .await;
        background.abort_all();
        info!("stopped");
    }
}

/// How often the broker looks for clients silent past their keep alive:
/// a connection is closed at most this long after its deadline.
const KEEP_ALIVE_SWEEP: Duration = Duration::from_millis(250);

/// Closes connections whose clients have been silent for 1.5 × their keep
/// alive [MQTT-3.1.2-24], every [`KEEP_ALIVE_SWEEP`], until shutdown. One
/// sweep over the sessions replaces a timer per connection (112 bytes of
/// every connection's task, and a timer-wheel update on every read).
async fn keep_alive_sweep(broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown.subscribe();
    let mut tick = tokio::time::interval(KEEP_ALIVE_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => broker.sweep_keep_alives(),
            _ = shutdown.changed() => return,
        }
    }
}

/// Creates the data directory if needed and takes an exclusive lock on it.
fn lock_data_dir(dir: &Path) -> Result<File, StartError> {
    let shown = dir.display().to_string();
    std::fs::create_dir_all(dir).map_err(|source| StartError::DataDir {
        path: shown.clone(),
        source,
    })?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .map_err(|source| StartError::DataDir {
            path: shown.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::DataDirLocked(shown)),
        Err(std::fs::TryLockError::Error(source)) => Err(StartError::DataDir {
            path: shown,
            source,
        }),
    }
}
