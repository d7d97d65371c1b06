//! The broker's security state: the loaded password file and ACL (swapped
//! whole on reload), the failed-login limiter, and which username owns
//! which client id.
//!
//! Login, in order:
//! 1. an address over its failed-login limit is refused unchecked;
//! 2. a TLS client certificate whose CN is used as the username logs in
//!    without a password;
//! 3. with a password file, a username and its password are required and
//!    checked (on the blocking pool, a few at a time: hashing is CPU- and
//!    memory-hard on purpose);
//! 4. without one, a client is let in when its listener allows anonymous
//!    clients (its username, if any, is taken as given, for the ACL);
//! 5. the client id must not belong to another username's live or stored
//!    session.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::Semaphore;

use crate::acl::Acl;
use crate::auth::{AuthError, LoginLimiter, PasswordFile};
use crate::config::AuthConfig;

/// Password verifications running at once.
const HASHING_PERMITS: usize = 4;

/// Where a connection came from, as its listener saw it.
#[derive(Debug, Clone)]
pub struct ClientOrigin {
    /// The client's address (from the PROXY header when there is one).
    pub peer: SocketAddr,
    /// Whether this listener lets clients in without credentials.
    pub allow_anonymous: bool,
    /// The username established by the transport (TLS client-certificate
    /// CN), which replaces the one in CONNECT.
    pub cert_username: Option<Arc<str>>,
    /// The listener's kind, for logs (`tcp`, `tls`, `ws`, `wss`).
    pub transport: &'static str,
}

/// Why a login failed; each maps to a CONNACK code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown user or wrong password (0x86 / 4).
    BadCredentials,
    /// No credentials where they are needed, or a client id owned by
    /// another user (0x87 / 5).
    NotAuthorized,
    /// Too many failed logins from this address (0x9F / 5).
    RateLimited,
}

/// The files, as last loaded successfully.
#[derive(Debug, Default)]
struct Loaded {
    passwords: Option<Arc<PasswordFile>>,
    acl: Option<Arc<Acl>>,
}

/// The security state of a broker.
#[derive(Debug)]
pub struct Security {
    config: AuthConfig,
    /// Replaced whole by [`Security::reload`]; readers clone the `Arc`s.
    loaded: RwLock<Loaded>,
    limiter: LoginLimiter,
    /// Bounds concurrent password hashing.
    hashing: Arc<Semaphore>,
    /// Bumped by every successful reload, so connections can cache the ACL
    /// and notice a new one with one relaxed load.
    generation: AtomicU64,
}

impl Security {
    /// The state for `config`, with nothing loaded yet: call
    /// [`Security::reload`] before serving (the server does).
    pub fn new(config: &AuthConfig) -> Security {
        Security {
            config: config.clone(),
            loaded: RwLock::new(Loaded::default()),
            limiter: LoginLimiter::new(
                config.max_failed_logins_per_minute,
                Duration::from_secs(60),
            ),
            hashing: Arc::new(Semaphore::new(HASHING_PERMITS)),
            generation: AtomicU64::new(0),
        }
    }

    /// (Re)reads the password and ACL files. On error nothing changes: the
    /// broker keeps what it had.
    pub fn reload(&self) -> Result<(), AuthError> {
        let passwords = match &self.config.password_file {
            Some(p) => Some(Arc::new(PasswordFile::load(p)?)),
            None => None,
        };
        let acl = match &self.config.acl_file {
            Some(p) => Some(Arc::new(Acl::load(p)?)),
            None => None,
        };
        *self.loaded.write() = Loaded { passwords, acl };
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Changes with every reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The files this state reads.
    pub fn files(&self) -> Vec<PathBuf> {
        [&self.config.password_file, &self.config.acl_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Whether a listener lets anonymous clients in: an explicit setting
    /// wins; otherwise only loopback listeners, and never with a password
    /// file.
    pub fn anonymous_default(
        config: &AuthConfig,
        listener: SocketAddr,
        explicit: Option<bool>,
    ) -> bool {
        if config.password_file.is_some() {
            return false;
        }
        explicit
            .or(config.allow_anonymous)
            .unwrap_or_else(|| listener.ip().is_loopback())
    }

    /// Logs a client in; returns the username it acts as.
    pub async fn login(
        &self,
        origin: &ClientOrigin,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<Option<Arc<str>>, LoginError> {
        let ip = origin.peer.ip();
        if !self.limiter.allowed(ip) {
            return Err(LoginError::RateLimited);
        }
        if let Some(u) = &origin.cert_username {
            return Ok(Some(Arc::clone(u)));
        }
        let passwords = self.loaded.read().passwords.clone();
        let result = match (passwords, username) {
            (Some(file), Some(user)) => {
                let permit = Arc::clone(&self.hashing).acquire_owned().await;
                let user_owned = user.to_owned();
                let pw = password.unwrap_or_default().to_vec();
                let ok = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    file.verify(&user_owned, &pw)
                })
                .await
                .unwrap_or(false);
                if ok {
                    Ok(Some(Arc::from(user)))
                } else {
                    Err(LoginError::BadCredentials)
                }
            }
            (Some(_), None) => Err(LoginError::NotAuthorized),
            (None, user) if origin.allow_anonymous => Ok(user.map(Arc::from)),
            (None, _) => Err(LoginError::NotAuthorized),
        };
        match &result {
            Ok(_) => self.limiter.succeeded(ip),
            Err(_) => self.limiter.failed(ip),
        }
        result
    }

    /// Whether a client id belongs to the username that opened its session
    /// (`[auth] bind_client_id_to_username`); the connection checks it when
    /// it takes the session.
    pub fn binds_client_ids(&self) -> bool {
        self.config.bind_client_id_to_username
    }

    /// The ACL, when one is configured.
    pub fn acl(&self) -> Option<Arc<Acl>> {
        self.loaded.read().acl.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(anon: bool) -> ClientOrigin {
        ClientOrigin {
            peer: SocketAddr::from(([192, 0, 2, 1], 1000)),
            allow_anonymous: anon,
            cert_username: None,
            transport: "tcp",
        }
    }

    #[test]
    fn anonymous_default_is_loopback_only_and_off_with_a_password_file() {
        let mut c = AuthConfig::default();
        let lo = SocketAddr::from(([127, 0, 0, 1], 1883));
        let any = SocketAddr::from(([0, 0, 0, 0], 1883));
        assert!(Security::anonymous_default(&c, lo, None));
        assert!(!Security::anonymous_default(&c, any, None));
        assert!(Security::anonymous_default(&c, any, Some(true)));
        c.allow_anonymous = Some(true);
        assert!(Security::anonymous_default(&c, any, None));
        c.password_file = Some("pw".into());
        assert!(!Security::anonymous_default(&c, lo, Some(true)));
    }

    #[tokio::test]
    async fn no_password_file_follows_the_listener() {
        let s = Security::new(&AuthConfig::default());
        s.reload().expect("nothing to load");
        assert_eq!(s.login(&origin(true), None, None).await, Ok(None));
        assert_eq!(
            s.login(&origin(true), Some("u"), None).await,
            Ok(Some(Arc::from("u")))
        );
        assert_eq!(
            s.login(&origin(false), Some("u"), None).await,
            Err(LoginError::NotAuthorized)
        );
    }

    #[tokio::test]
    async fn password_file_logins_and_rate_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        crate::auth::passwd(
            &path,
            &crate::auth::PasswdOp::Set {
                user: "alice".into(),
                password: "right".into(),
            },
            true,
        )
        .expect("passwd");
        let config = AuthConfig {
            password_file: Some(path),
            max_failed_logins_per_minute: 2,
            ..AuthConfig::default()
        };
        let s = Security::new(&config);
        s.reload().expect("loads");
        let o = origin(false);
        assert_eq!(
            s.login(&o, Some("alice"), Some(b"right")).await,
            Ok(Some(Arc::from("alice")))
        );
        assert_eq!(
            s.login(&o, None, None).await,
            Err(LoginError::NotAuthorized)
        );
        assert_eq!(
            s.login(&o, Some("alice"), Some(b"wrong")).await,
            Err(LoginError::BadCredentials)
        );
        assert_eq!(
            s.login(&o, Some("alice"), Some(b"right")).await,
            Err(LoginError::RateLimited),
            "two failures within the minute: refused even with the right password"
        );
    }
}
