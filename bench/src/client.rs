//! One MQTT connection as the generator uses it: connect, subscribe, send
//! and receive whole packets over a tokio TCP stream with reusable buffers.
//!
//! It also defines the payload layout every scenario uses, so that the
//! receiver can measure latency and detect loss and duplicates without any
//! shared state with the sender: see [`Stamp`].

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::codec::{self, CodecError, Packet, Version};

/// Everything that can end a scenario early.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("decoding a packet from the broker: {0}")]
    Codec(#[from] CodecError),
    #[error("the broker refused CONNECT of {client_id} with code {code:#04x}")]
    Refused { client_id: String, code: u8 },
    #[error("the broker refused subscription {filter} (code {code:#04x})")]
    SubscribeRefused { filter: String, code: u8 },
    #[error("the broker closed the connection")]
    Closed,
    #[error("the broker sent DISCONNECT (reason {0:#04x})")]
    Disconnected(u8),
    #[error("unexpected packet while waiting for {waiting_for}: {got}")]
    Unexpected {
        waiting_for: &'static str,
        got: String,
    },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("a task failed: {0}")]
    Task(String),
    #[error("invalid parameter: {0}")]
    Param(String),
}

/// Bytes at the start of every payload the generator sends: send time in
/// nanoseconds (u64), publisher index (u32), sequence number (u32), all
/// big-endian. The rest of the payload is filler.
pub const STAMP_LEN: usize = 16;

/// The header of a benchmark payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// [`now_ns`] when the message was encoded.
    pub sent_ns: u64,
    /// Index of the publisher among the scenario's publishers.
    pub publisher: u32,
    /// 0, 1, 2, ... per publisher.
    pub seq: u32,
}

impl Stamp {
    pub fn write(&self, out: &mut [u8]) {
        let mut b = &mut out[..STAMP_LEN];
        b.put_u64(self.sent_ns);
        b.put_u32(self.publisher);
        b.put_u32(self.seq);
    }

    /// `None` for a payload too short to carry a stamp.
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let mut b = payload.get(..STAMP_LEN)?;
        Some(Stamp {
            sent_ns: b.get_u64(),
            publisher: b.get_u32(),
            seq: b.get_u32(),
        })
    }
}

/// Nanoseconds since the first call in this process: a monotonic clock
/// shared by every task, so send and receive times compare directly.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Connection parameters shared by every client of a scenario.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub version: Version,
    pub keep_alive_secs: u16,
}

/// An open MQTT connection (CONNACK received).
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    /// Bytes read but not yet decoded.
    pub rbuf: BytesMut,
    /// Packets encoded but not yet written.
    pub wbuf: BytesMut,
    pub version: Version,
    /// From CONNACK.
    pub session_present: bool,
}

/// Read buffer headroom kept before each read.
const READ_CHUNK: usize = 64 * 1024;

/// Longest wait for CONNACK or SUBACK: a broker that accepts TCP but never
/// answers must not hold a scenario forever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for DISCONNECT to be written at the end of a scenario.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

impl Conn {
    /// Opens TCP, sends CONNECT and waits for a successful CONNACK, all
    /// within [`HANDSHAKE_TIMEOUT`].
    pub async fn connect(
        target: &Target,
        client_id: &str,
        clean: bool,
        session_expiry_secs: u32,
    ) -> Result<Conn, BenchError> {
        tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            Self::connect_unbounded(target, client_id, clean, session_expiry_secs),
        )
        .await
        .map_err(|_| BenchError::Timeout("CONNACK"))?
    }

    async fn connect_unbounded(
        target: &Target,
        client_id: &str,
        clean: bool,
        session_expiry_secs: u32,
    ) -> Result<Conn, BenchError> {
        let stream = TcpStream::connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(1024),
            version: target.version,
            session_present: false,
        };
        codec::encode_connect(
            &mut conn.wbuf,
            target.version,
            client_id,
            clean,
            target.keep_alive_secs,
            session_expiry_secs,
        );
        conn.flush().await?;
        match conn.recv().await? {
            Packet::ConnAck {
                session_present,
                code: 0,
            } => {
                conn.session_present = session_present;
                Ok(conn)
            }
            Packet::ConnAck { code, .. } => Err(BenchError::Refused {
                client_id: client_id.to_owned(),
                code,
            }),
            other => Err(BenchError::Unexpected {
                waiting_for: "CONNACK",
                got: format!("{other:?}"),
            }),
        }
    }

    /// Subscribes and waits for the SUBACK, within [`HANDSHAKE_TIMEOUT`].
    /// PUBLISH packets that arrive first (a resumed session's queue) are
    /// acknowledged and dropped.
    pub async fn subscribe(
        &mut self,
        packet_id: u16,
        filters: &[(String, u8)],
    ) -> Result<(), BenchError> {
        tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            self.subscribe_unbounded(packet_id, filters),
        )
        .await
        .map_err(|_| BenchError::Timeout("SUBACK"))?
    }

    async fn subscribe_unbounded(
        &mut self,
        packet_id: u16,
        filters: &[(String, u8)],
    ) -> Result<(), BenchError> {
        codec::encode_subscribe(&mut self.wbuf, self.version, packet_id, filters);
        self.flush().await?;
        loop {
            match self.recv().await? {
                Packet::SubAck { codes, .. } => {
                    for ((filter, _), code) in filters.iter().zip(codes) {
                        if code >= 0x80 {
                            return Err(BenchError::SubscribeRefused {
                                filter: filter.clone(),
                                code,
                            });
                        }
                    }
                    return Ok(());
                }
                Packet::Publish(p) => {
                    if let (1, Some(id)) = (p.qos, p.packet_id) {
                        codec::encode_puback(&mut self.wbuf, id);
                        self.flush().await?;
                    }
                }
                other => {
                    return Err(BenchError::Unexpected {
                        waiting_for: "SUBACK",
                        got: format!("{other:?}"),
                    })
                }
            }
        }
    }

    /// Writes everything in `wbuf`.
    pub async fn flush(&mut self) -> Result<(), BenchError> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Reads more bytes into `rbuf`; `Err(Closed)` at end of stream.
    pub async fn fill(&mut self) -> Result<usize, BenchError> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 2 {
            self.rbuf.reserve(READ_CHUNK);
        }
        let n = self.stream.read_buf(&mut self.rbuf).await?;
        if n == 0 {
            return Err(BenchError::Closed);
        }
        Ok(n)
    }

    /// The next whole packet; a DISCONNECT from the broker is an error.
    pub async fn recv(&mut self) -> Result<Packet, BenchError> {
        loop {
            if let Some(p) = codec::decode(&mut self.rbuf, self.version)? {
                if let Packet::Disconnect { reason } = p {
                    return Err(BenchError::Disconnected(reason));
                }
                return Ok(p);
            }
            self.fill().await?;
        }
    }

    /// Like [`Conn::recv`] with a deadline.
    pub async fn recv_timeout(
        &mut self,
        limit: Duration,
        what: &'static str,
    ) -> Result<Packet, BenchError> {
        tokio::time::timeout(limit, self.recv())
            .await
            .map_err(|_| BenchError::Timeout(what))?
    }

    /// Sends DISCONNECT and closes, giving up after a second; errors are
    /// ignored because the measurement is over by then.
    pub async fn disconnect(mut self) {
        codec::encode(&mut self.wbuf, &Packet::Disconnect { reason: 0 });
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _ = self.flush().await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip() {
        let s = Stamp {
            sent_ns: 0x0102_0304_0506_0708,
            publisher: 9,
            seq: 77,
        };
        let mut payload = [0xaau8; 64];
        s.write(&mut payload);
        assert_eq!(Stamp::read(&payload), Some(s));
        assert_eq!(payload[STAMP_LEN], 0xaa, "filler is left alone");
        assert_eq!(Stamp::read(&payload[..15]), None);
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }
}
