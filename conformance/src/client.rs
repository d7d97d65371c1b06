//! The test client: raw bytes out over a tokio `TcpStream`, decoded packets
//! in, every read bounded by a deadline so a hung broker fails the test
//! instead of hanging the suite.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::decode::{decode, DecodeError, Msg, Packet, Properties};
use crate::wire::{kind, Version};

/// Why a test did not pass.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A check failed; the text names the normative statement.
    #[error("{0}")]
    Spec(String),
    /// The broker declared (or the operator declared) that an optional
    /// feature the test needs is absent.
    #[error("not applicable: {0}")]
    NotApplicable(String),
    #[error("nothing received within {0:?} while waiting for {1}")]
    Timeout(Duration, String),
    #[error("broker closed the connection while waiting for {0}")]
    Closed(String),
    #[error("broker sent a malformed packet: {0}")]
    Decode(#[from] DecodeError),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Result of a test step.
pub type Step<T = ()> = Result<T, Failure>;

/// Fails the test with a formatted message unless the condition holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::client::Failure::Spec(format!($($arg)+)));
        }
    };
}

/// What a bounded wait observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Packet(Packet),
    /// The broker closed the connection (EOF or reset).
    Closed,
    /// Nothing arrived before the deadline.
    Quiet,
}

/// The fields of a CONNACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connack {
    pub session_present: bool,
    pub code: u8,
    pub props: Properties,
}

/// One connection to the broker under test.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    /// Decides whether properties are parsed in what the broker sends.
    version: Version,
    /// Bytes read but not yet decoded into a whole packet.
    buf: Vec<u8>,
    /// Packets read while waiting for another kind (e.g. a retained PUBLISH
    /// arriving before its SUBACK), handed out first by later reads.
    pending: VecDeque<Packet>,
    /// Deadline for each read that expects a packet.
    read_timeout: Duration,
    /// Set once EOF or a reset was seen: later reads report `Closed`.
    closed: bool,
}

fn is_close(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

impl Client {
    /// Opens a TCP connection (bounded by `read_timeout`).
    pub async fn open(addr: &str, version: Version, read_timeout: Duration) -> Step<Client> {
        let stream = timeout(read_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Failure::Timeout(read_timeout, format!("TCP connect to {addr}")))??;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            version,
            buf: Vec::new(),
            pending: VecDeque::new(),
            read_timeout,
            closed: false,
        })
    }

    /// The version this client decodes with.
    pub fn version(&self) -> Version {
        self.version
    }

    /// True when no packet read earlier is waiting to be handed out.
    pub fn pending_is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Sends bytes. A broker that already closed may make this fail; that
    /// is reported as [`Failure::Closed`].
    pub async fn send(&mut self, bytes: &[u8]) -> Step {
        match timeout(self.read_timeout, self.stream.write_all(bytes)).await {
            Err(_) => Err(Failure::Timeout(self.read_timeout, "a write".into())),
            Ok(Err(e)) if is_close(&e) => Err(Failure::Closed("a write to complete".into())),
            Ok(r) => Ok(r?),
        }
    }

    /// Sends bytes, ignoring an error caused by the broker having closed
    /// (used by malformed-input tests, where closing early is correct).
    pub async fn send_lenient(&mut self, bytes: &[u8]) -> Step {
        match self.send(bytes).await {
            Err(Failure::Closed(_)) => Ok(()),
            r => r,
        }
    }

    /// Waits at most `d` for the next packet, a close, or nothing.
    pub async fn next_event(&mut self, d: Duration) -> Step<Event> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(Event::Packet(p));
        }
        let deadline = Instant::now() + d;
        loop {
            if let Some((p, n)) = decode(self.version, &self.buf)? {
                self.buf.drain(..n);
                return Ok(Event::Packet(p));
            }
            if self.closed {
                return Ok(Event::Closed);
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Ok(Event::Quiet),
                Ok(Ok(0)) => self.closed = true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) if is_close(&e) => self.closed = true,
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// The next packet, within the read deadline.
    pub async fn recv(&mut self, what: &str) -> Step<Packet> {
        match self.next_event(self.read_timeout).await? {
            Event::Packet(p) => Ok(p),
            Event::Closed => Err(Failure::Closed(what.into())),
            Event::Quiet => Err(Failure::Timeout(self.read_timeout, what.into())),
        }
    }

    /// Reads until `want` extracts a value from a packet. PUBLISH packets
    /// it does not want are kept for later reads; any other packet fails.
    pub async fn recv_where<T>(
        &mut self,
        what: &str,
        want: impl Fn(&Packet) -> Option<T>,
    ) -> Step<T> {
        let mut stash = Vec::new();
        let found = loop {
            let p = match self.recv(what).await {
                Ok(p) => p,
                Err(e) => {
                    self.pending.extend(stash);
                    return Err(e);
                }
            };
            if let Some(v) = want(&p) {
                break v;
            }
            if matches!(p, Packet::Publish(_)) {
                stash.push(p);
                continue;
            }
            self.pending.extend(stash);
            return Err(Failure::Spec(format!(
                "received {} while waiting for {what}: {p:?}",
                p.name()
            )));
        };
        // Keep the stashed packets ahead of anything not yet read.
        for p in stash.into_iter().rev() {
            self.pending.push_front(p);
        }
        Ok(found)
    }

    /// PINGREQ and wait for its PINGRESP: once it arrives, the broker has
    /// handled every packet this client sent before it (packets of one
    /// connection are processed in order). QoS 0 publishes are otherwise
    /// unacknowledged, so a test that depends on them having been routed
    /// must call this first.
    pub async fn ping(&mut self) -> Step {
        self.send(&crate::wire::pingreq()).await?;
        self.recv_where("PINGRESP", |p| matches!(p, Packet::Pingresp).then_some(()))
            .await
    }

    /// Waits for CONNACK, which must be the first packet [MQTT-3.2.0-1].
    pub async fn connack(&mut self) -> Step<Connack> {
        match self.recv("CONNACK").await? {
            Packet::Connack {
                session_present,
                code,
                props,
            } => Ok(Connack {
                session_present,
                code,
                props,
            }),
            other => Err(Failure::Spec(format!(
                "first packet from the server is {} not CONNACK [MQTT-3.2.0-1]",
                other.name()
            ))),
        }
    }

    /// Waits for a SUBACK for `pid` and returns its codes; it must carry the
    /// same packet identifier [MQTT-3.8.4-2].
    pub async fn suback(&mut self, pid: u16) -> Step<Vec<u8>> {
        let (got, codes) = self
            .recv_where("SUBACK", |p| match p {
                Packet::Suback { pid, codes, .. } => Some((*pid, codes.clone())),
                _ => None,
            })
            .await?;
        check!(
            got == pid,
            "SUBACK packet identifier {got} differs from SUBSCRIBE's {pid} [MQTT-3.8.4-2]"
        );
        Ok(codes)
    }

    /// Waits for UNSUBACK for `pid` [MQTT-3.10.4-4]; returns 5.0 codes.
    pub async fn unsuback(&mut self, pid: u16) -> Step<Vec<u8>> {
        let (got, codes) = self
            .recv_where("UNSUBACK", |p| match p {
                Packet::Unsuback { pid, codes, .. } => Some((*pid, codes.clone())),
                _ => None,
            })
            .await?;
        check!(
            got == pid,
            "UNSUBACK packet identifier {got} differs from UNSUBSCRIBE's {pid} [MQTT-3.10.4-4]"
        );
        Ok(codes)
    }

    /// Waits for an acknowledgement of type `k` (from [`kind`]) and returns
    /// (packet id, reason code).
    pub async fn ack(&mut self, k: u8) -> Step<(u16, u8)> {
        let name = match k {
            kind::PUBACK => "PUBACK",
            kind::PUBREC => "PUBREC",
            kind::PUBREL => "PUBREL",
            _ => "PUBCOMP",
        };
        self.recv_where(name, |p| match p {
            Packet::Ack {
                kind, pid, code, ..
            } if *kind == k => Some((*pid, *code)),
            _ => None,
        })
        .await
    }

    /// Waits for a PUBLISH.
    pub async fn publish(&mut self) -> Step<Msg> {
        match self.recv("PUBLISH").await? {
            Packet::Publish(m) => Ok(m),
            other => Err(Failure::Spec(format!(
                "received {} while waiting for PUBLISH: {other:?}",
                other.name()
            ))),
        }
    }

    /// Collects PUBLISH packets until nothing arrives for `d`. The
    /// connection must stay open and send nothing else.
    pub async fn drain(&mut self, d: Duration) -> Step<Vec<Msg>> {
        let mut out = Vec::new();
        loop {
            match self.next_event(d).await? {
                Event::Quiet => return Ok(out),
                Event::Closed => {
                    return Err(Failure::Closed(format!(
                        "more PUBLISH packets (after {} received)",
                        out.len()
                    )))
                }
                Event::Packet(Packet::Publish(m)) => out.push(m),
                Event::Packet(p) => {
                    return Err(Failure::Spec(format!(
                        "unexpected {} while collecting PUBLISH packets: {p:?}",
                        p.name()
                    )))
                }
            }
        }
    }

    /// Checks that nothing arrives for `d` (and the connection stays open).
    pub async fn quiet(&mut self, d: Duration, why: &str) -> Step {
        match self.next_event(d).await? {
            Event::Quiet => Ok(()),
            Event::Closed => Err(Failure::Spec(format!(
                "broker closed the connection; expected it to stay open: {why}"
            ))),
            Event::Packet(p) => Err(Failure::Spec(format!(
                "unexpected {}: {why}: {p:?}",
                p.name()
            ))),
        }
    }

    /// Waits up to `d` for the broker to close the connection and returns
    /// the packets it sent before closing.
    pub async fn closed_within(&mut self, d: Duration) -> Step<Vec<Packet>> {
        let deadline = Instant::now() + d;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Ok(Event::Closed) => return Ok(seen),
                Ok(Event::Quiet) => {
                    return Err(Failure::Spec(format!(
                        "connection still open {d:?} later (packets seen: {})",
                        names(&seen)
                    )))
                }
                Ok(Event::Packet(p)) => seen.push(p),
                // Garbage after a close is no excuse to keep the socket
                // open, but we only accept a decode error if the close
                // follows; report it as received-garbage otherwise.
                Err(e) => return Err(e),
            }
        }
    }

    /// Raw bytes received until the broker closes (within `d`), for replies
    /// whose format the suite cannot know in advance.
    pub async fn bytes_until_close(&mut self, d: Duration) -> Step<Vec<u8>> {
        let deadline = Instant::now() + d;
        let mut out = std::mem::take(&mut self.buf);
        while !self.closed {
            let mut chunk = [0u8; 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => {
                    return Err(Failure::Spec(format!(
                        "connection still open {d:?} later (received {out:02x?})"
                    )))
                }
                Ok(Ok(0)) => self.closed = true,
                Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) if is_close(&e) => self.closed = true,
                Ok(Err(e)) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Sends a normal DISCONNECT and shuts the write side.
    pub async fn disconnect(mut self) -> Step {
        let bytes = crate::wire::disconnect(self.version, 0, &crate::wire::Props::new());
        self.send_lenient(&bytes).await?;
        let _ = self.stream.shutdown().await;
        Ok(())
    }

    /// Drops the TCP connection without DISCONNECT (an abnormal close, so
    /// the will is published).
    pub fn abort(self) {
        // Linger 0 would make this a reset; a plain drop sends FIN, which is
        // still "closed without DISCONNECT" [MQTT-3.1.2-8].
        drop(self);
    }
}

/// Packet names for messages.
pub fn names(ps: &[Packet]) -> String {
    if ps.is_empty() {
        return "none".into();
    }
    ps.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
}
