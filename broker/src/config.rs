//! Configuration: one serde tree, read from a TOML file, overridden by
//! `HERALD_*` environment variables and command-line flags, and validated
//! before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The plain-TCP MQTT listener's address (always bound; loopback by
    /// default).
    pub listen: SocketAddr,
    /// More listeners: TCP, TLS, WebSocket, WebSocket over TLS.
    pub listeners: Vec<ListenerConfig>,
    /// Directory for durable state; created if missing and locked so that
    /// two brokers never share it.
    pub data_dir: PathBuf,
    pub limits: Limits,
    pub mqtt: MqttConfig,
    pub admin: AdminConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
}

/// The transport of a listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// MQTT over plain TCP.
    #[default]
    Tcp,
    /// MQTT over TLS.
    Tls,
    /// MQTT over WebSocket (subprotocol `mqtt`).
    Ws,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl ListenerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "tcp",
            ListenerKind::Tls => "tls",
            ListenerKind::Ws => "ws",
            ListenerKind::Wss => "wss",
        }
    }

    pub fn is_tls(self) -> bool {
        matches!(self, ListenerKind::Tls | ListenerKind::Wss)
    }

    pub fn is_websocket(self) -> bool {
        matches!(self, ListenerKind::Ws | ListenerKind::Wss)
    }
}

/// One entry of `[[listeners]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// `tcp`, `tls`, `ws` or `wss`.
    #[serde(default)]
    pub kind: ListenerKind,
    /// PEM certificate chain (tls, wss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key (tls, wss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates that client certificates are verified against;
    /// set, clients may present a certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// Refuse clients without a valid certificate (needs `client_ca_file`).
    #[serde(default)]
    pub require_client_cert: bool,
    /// The client certificate's Common Name is the username; no password
    /// is asked (needs `require_client_cert`).
    #[serde(default)]
    pub use_identity_as_username: bool,
    /// WebSocket path (ws, wss).
    #[serde(default = "default_ws_path")]
    pub path: String,
    /// Expect a PROXY protocol v1 or v2 header before anything else and
    /// take the client address from it.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Clients without credentials on this listener; overrides
    /// `auth.allow_anonymous` (never with a password file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_anonymous: Option<bool>,
}

fn default_ws_path() -> String {
    "/mqtt".to_owned()
}

impl ListenerConfig {
    /// A plain listener of `kind` on `listen`, everything else default.
    pub fn new(kind: ListenerKind, listen: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            listen,
            kind,
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            require_client_cert: false,
            use_identity_as_username: false,
            path: default_ws_path(),
            proxy_protocol: false,
            allow_anonymous: None,
        }
    }
}

/// Authentication and authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Password file (`username:hash` lines, Mosquitto-compatible); when
    /// set, every client must log in with a username and password.
    pub password_file: Option<PathBuf>,
    /// ACL file (Mosquitto format); when set, whatever it does not allow
    /// is denied.
    pub acl_file: Option<PathBuf>,
    /// Clients without a username. Unset: allowed only when there is no
    /// password file, and only on loopback listeners. `true` with a
    /// password file is refused.
    pub allow_anonymous: Option<bool>,
    /// Failed logins allowed per source address per minute; further
    /// attempts are refused unchecked until the minute is over. 0: no limit.
    pub max_failed_logins_per_minute: u32,
    /// A client id whose session exists belongs to the username that
    /// created it: another username (or an anonymous client) cannot take
    /// it over.
    pub bind_client_id_to_username: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            password_file: None,
            acl_file: None,
            allow_anonymous: None,
            max_failed_logins_per_minute: 10,
            bind_client_id_to_username: true,
        }
    }
}

/// The admin HTTP listener and `$SYS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve `/metrics`, `/health/live` and `/health/ready`.
    pub enabled: bool,
    /// Admin HTTP address (its own port; loopback by default).
    pub listen: SocketAddr,
    /// Interval of the `$SYS/broker/...` topics; 0 turns them off.
    pub sys_interval_secs: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9883)),
            sys_interval_secs: 10,
        }
    }
}

/// The durable store (RocksDB under `<data_dir>/db`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Sync every group write to disk before acknowledging (PUBACK, PUBREC,
    /// CONNACK of a persistent session). `false` acknowledges once the
    /// write reached the operating system: it survives the broker being
    /// killed, but not a power loss or a kernel crash.
    pub sync: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { sync: true }
    }
}

/// Resource limits. Every queue and buffer in the broker is bounded by one
/// of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections accepted at once; further ones are closed at accept.
    pub max_connections: usize,
    /// Largest packet accepted from a client (fixed header included); sent
    /// to 5.0 clients as Maximum Packet Size.
    pub max_packet_size_bytes: u32,
    /// Time a new connection has to send CONNECT.
    pub connect_timeout_secs: u64,
    /// QoS 1/2 messages in flight per direction per client; sent to 5.0
    /// clients as Receive Maximum.
    pub max_inflight_messages: u16,
    /// Messages in a persistent session's stored queue (online or offline);
    /// past this the newest is refused and counted.
    pub max_queued_messages: usize,
    /// Bytes of a persistent session's stored queue (topic + payload +
    /// properties).
    pub max_queued_bytes: usize,
    /// Bytes waiting to be written to one connection; a client that lets
    /// it fill up is disconnected as a slow consumer.
    pub max_outbound_bytes: usize,
    /// Bytes waiting to be written to one connection past which a QoS 1/2
    /// publisher sending to it pauses until it drains to half of this
    /// (backpressure: nothing acknowledged is dropped). It bounds how long
    /// a message waits behind others, i.e. delivery latency under overload.
    /// Capped at half of `max_outbound_bytes` (see [`Limits::high_water`]).
    pub backpressure_bytes: usize,
    /// A connection that keeps publishers paused this long is disconnected
    /// as a slow consumer.
    pub slow_consumer_timeout_secs: u64,
    /// Longest topic name or filter, in bytes.
    pub max_topic_length_bytes: usize,
    /// Most levels in a topic name or filter.
    pub max_topic_levels: usize,
    /// Most subscriptions one session may hold.
    pub max_subscriptions_per_client: usize,
}

/// Protocol settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Highest keep alive the server accepts; a 5.0 client asking for more
    /// (or for 0) is told this value as Server Keep Alive. 0 = no cap.
    pub keep_alive_max_secs: u16,
    /// Highest session expiry granted to a 5.0 client; `4294967295` never expires.
    pub session_expiry_max_secs: u32,
    /// Topic aliases a 5.0 client may use towards the server.
    pub topic_alias_maximum: u16,
    /// Accept MQTT 3.1 (`MQIsdp`) clients.
    pub allow_mqtt_3_1: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            listeners: Vec::new(),
            data_dir: PathBuf::from("./data"),
            limits: Limits::default(),
            mqtt: MqttConfig::default(),
            admin: AdminConfig::default(),
            storage: StorageConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

impl Limits {
    /// Where backpressure starts: `backpressure_bytes`, at most half of
    /// `max_outbound_bytes` so that a paused publisher never pushes a
    /// subscriber into the slow-consumer bound.
    pub fn high_water(&self) -> usize {
        self.backpressure_bytes.min(self.max_outbound_bytes / 2)
    }

    /// Where paused publishers resume: half of [`Limits::high_water`].
    pub fn low_water(&self) -> usize {
        self.high_water() / 2
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 100_000,
            max_packet_size_bytes: 1024 * 1024,
            connect_timeout_secs: 10,
            max_inflight_messages: 100,
            max_queued_messages: 10_000,
            max_queued_bytes: 64 * 1024 * 1024,
            max_outbound_bytes: 8 * 1024 * 1024,
            backpressure_bytes: 32 * 1024,
            slow_consumer_timeout_secs: 30,
            max_topic_length_bytes: 65_535,
            max_topic_levels: 128,
            max_subscriptions_per_client: 1_000,
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            keep_alive_max_secs: 0,
            session_expiry_max_secs: u32::MAX,
            topic_alias_maximum: 64,
            allow_mqtt_3_1: true,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid setting {field}: {why}")]
    Invalid { field: &'static str, why: String },
}

impl Config {
    /// Reads a TOML file; missing keys keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// The defaults as TOML.
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Config::default())
            .expect("the default config is plain data and always serialises")
    }

    /// Checks every value before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let invalid = |field: &'static str, why: &str| {
            Err(ConfigError::Invalid {
                field,
                why: why.to_owned(),
            })
        };
        if l.max_connections == 0 {
            return invalid("limits.max_connections", "must be at least 1");
        }
        if !(64..=268_435_460).contains(&l.max_packet_size_bytes) {
            return invalid(
                "limits.max_packet_size_bytes",
                "must be between 64 and 268435460",
            );
        }
        if l.connect_timeout_secs == 0 {
            return invalid("limits.connect_timeout_secs", "must be at least 1");
        }
        if l.max_inflight_messages == 0 {
            return invalid("limits.max_inflight_messages", "must be at least 1");
        }
        if l.max_queued_messages == 0 || l.max_queued_bytes == 0 {
            return invalid(
                "limits.max_queued_messages",
                "queue limits must be at least 1",
            );
        }
        if l.slow_consumer_timeout_secs == 0 {
            return invalid("limits.slow_consumer_timeout_secs", "must be at least 1");
        }
        if l.max_outbound_bytes < 1024 {
            return invalid("limits.max_outbound_bytes", "must be at least 1024");
        }
        if l.backpressure_bytes < 512 {
            return invalid("limits.backpressure_bytes", "must be at least 512");
        }
        if l.max_topic_length_bytes == 0 || l.max_topic_length_bytes > 65_535 {
            return invalid(
                "limits.max_topic_length_bytes",
                "must be between 1 and 65535",
            );
        }
        if l.max_topic_levels == 0 {
            return invalid("limits.max_topic_levels", "must be at least 1");
        }
        if l.max_subscriptions_per_client == 0 {
            return invalid("limits.max_subscriptions_per_client", "must be at least 1");
        }
        for l in &self.listeners {
            let invalid = |why: &str| {
                Err(ConfigError::Invalid {
                    field: "listeners",
                    why: format!("{} listener on {}: {why}", l.kind.as_str(), l.listen),
                })
            };
            if l.kind.is_tls() && (l.cert_file.is_none() || l.key_file.is_none()) {
                return invalid("needs cert_file and key_file");
            }
            if !l.kind.is_tls()
                && (l.cert_file.is_some() || l.key_file.is_some() || l.client_ca_file.is_some())
            {
                return invalid("certificates are for tls and wss listeners");
            }
            if l.require_client_cert && l.client_ca_file.is_none() {
                return invalid("require_client_cert needs client_ca_file");
            }
            if l.use_identity_as_username && !l.require_client_cert {
                return invalid("use_identity_as_username needs require_client_cert");
            }
            if l.kind.is_websocket() && !l.path.starts_with('/') {
                return invalid("path must start with /");
            }
            if self.auth.password_file.is_some() && l.allow_anonymous == Some(true) {
                return invalid(
                    "anonymous access is always off when a password file is configured",
                );
            }
        }
        if self.auth.password_file.is_some() && self.auth.allow_anonymous == Some(true) {
            return invalid(
                "auth.allow_anonymous",
                "anonymous access is always off when a password file is configured",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_through_toml_and_is_valid() {
        let text = Config::default_toml();
        let parsed: Config = toml::from_str(&text).expect("default TOML parses");
        assert_eq!(parsed, Config::default());
        parsed.validate().expect("defaults are valid");
    }

    #[test]
    fn storage_syncs_unless_told_otherwise() {
        assert!(Config::default().storage.sync);
        let c: Config = toml::from_str("[storage]\nsync = false\n").expect("parses");
        assert!(!c.storage.sync);
        assert!(toml::from_str::<Config>("[storage]\nfsync = false\n").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<Config>("listen = \"127.0.0.1:1\"\nlisten_typo = 1\n");
        assert!(err.is_err());
    }

    #[test]
    fn listeners_parse_and_are_validated() {
        let text = "[[listeners]]\nlisten = \"0.0.0.0:8883\"\nkind = \"tls\"\n\
                    cert_file = \"c.pem\"\nkey_file = \"k.pem\"\n\
                    [[listeners]]\nlisten = \"0.0.0.0:8080\"\nkind = \"ws\"\nproxy_protocol = true\n";
        let c: Config = toml::from_str(text).expect("parses");
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[1].path, "/mqtt");
        assert!(c.listeners[1].proxy_protocol);
        c.validate().expect("valid");
        let mut bad = c.clone();
        bad.listeners[0].key_file = None;
        assert!(bad.validate().is_err());
        let mut bad = c.clone();
        bad.listeners[0].use_identity_as_username = true;
        assert!(bad.validate().is_err());
        let mut bad = c;
        bad.listeners[1].path = "mqtt".into();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn invalid_values_are_refused() {
        let mut c = Config::default();
        c.limits.max_inflight_messages = 0;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.limits.max_packet_size_bytes = 10;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.limits.backpressure_bytes = 100;
        assert!(c.validate().is_err());
    }

    #[test]
    fn backpressure_starts_at_most_at_half_the_outbound_bound() {
        let mut l = Limits::default();
        assert_eq!((l.high_water(), l.low_water()), (32 * 1024, 16 * 1024));
        l.max_outbound_bytes = 16 * 1024;
        assert_eq!((l.high_water(), l.low_water()), (8 * 1024, 4 * 1024));
    }
}
