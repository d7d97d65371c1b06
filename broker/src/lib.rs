//! Herald: a highly-available MQTT 3.1 / 3.1.1 / 5.0 broker.
//!
//! Module map:
//! - [`codec`] — the MQTT packet types, decoder and encoder.
//! - [`topic`] — topic name and filter validation, shared-subscription names.
//! - [`trie`] — the subscription index (a topic trie with wildcard slots).
//! - [`retained`] — retained messages by topic, matched by filter.
//! - [`session`] — sessions as the router sees them, and deliveries.
//! - [`broker`] — shared state and the router.
//! - [`connection`] — one client connection, CONNECT to close.
//! - [`server`] — the listeners, connection limit and shutdown.
//! - [`listener`] — configured listeners: TCP, TLS, WebSocket, PROXY protocol.
//! - [`transport`] — what connections need of a transport; PROXY headers; pumps.
//! - [`config`] — the configuration tree.
//! - [`auth`] — the password file, password hashes, the failed-login limiter.
//! - [`acl`] — the ACL file (Mosquitto format) and its checks.
//! - [`security`] — login and authorization state, reloaded on SIGHUP.
//! - [`admin`] — the admin HTTP listener: metrics and health.
//! - [`metrics`] — Prometheus metric definitions and export.
//! - [`sys`] — the `$SYS` topics.
//! - [`stats`] — counters.
pub mod acl;
pub mod admin;
pub mod auth;
pub mod broker;
pub mod codec;
pub mod config;
pub mod connection;
pub mod listener;
pub mod metrics;
pub mod registry;
pub mod retained;
pub mod security;
pub mod server;
pub mod session;
pub mod stats;
pub mod sys;
pub mod topic;
pub mod transport;
pub mod trie;
