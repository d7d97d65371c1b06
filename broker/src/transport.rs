//! Transports under the session logic: what the connection code needs from
//! a transport, the PROXY protocol header, and the pumps that carry TLS
//! and WebSocket streams to the connection.
//!
//! Plain TCP gives the connection the socket itself. TLS and
//! WebSocket connections are served over an in-memory pipe
//! (`tokio::io::duplex`) whose far end a pump task copies to and from the
//! real stream: the pump owns the flushing that TLS records and WebSocket
//! frames need, and the connection code stays one path for every
//! transport. The cost (one more copy, one more task) is paid only by
//! those transports.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Writing as the connection needs it: async writes, plus a write that
/// never waits (used right after handling input, and for the last words
/// to a slow consumer).
pub trait TransportWrite: AsyncWrite + Unpin + Send {
    /// Writes what the transport takes now; `WouldBlock` when nothing.
    fn try_write_now(&mut self, buf: &[u8]) -> io::Result<usize>;
}

impl TransportWrite for TcpStream {
    fn try_write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.try_write(buf)
    }
}

impl TransportWrite for DuplexStream {
    fn try_write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        // One poll with a no-op waker: if the pipe is full the connection's
        // next turn polls the write again with its real waker.
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(self).poll_write(&mut cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// Reading as the connection needs it: a read that takes room in the
/// buffer only once there is something to read, so an idle connection
/// holds no read buffer.
pub trait TransportRead: AsyncRead + Unpin + Send {
    /// Reads what is available into `buf`, first growing it by `chunk`
    /// when less than a quarter of that is free. `Ok(0)` is end of stream.
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        chunk: usize,
    ) -> Poll<io::Result<usize>>;
}

/// Bytes read on the stack by a connection that holds no read buffer.
const FIRST_READ: usize = 1024;

fn make_room(buf: &mut BytesMut, chunk: usize) {
    if buf.capacity() - buf.len() < chunk / 4 {
        buf.reserve(chunk);
    }
}

impl TransportRead for TcpStream {
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        chunk: usize,
    ) -> Poll<io::Result<usize>> {
        // Readiness first, room second: waiting costs no buffer. Readiness
        // can be stale (tokio clears it only on WouldBlock), so a
        // connection without a buffer reads into the stack first and takes
        // room only for bytes that actually came.
        loop {
            ready!(self.poll_read_ready(cx))?;
            let read = if buf.capacity() - buf.len() >= chunk / 4 {
                self.try_read_buf(buf)
            } else {
                let mut first = [0u8; FIRST_READ];
                self.try_read(&mut first).inspect(|&n| {
                    if n > 0 {
                        make_room(buf, chunk.max(n));
                        buf.extend_from_slice(&first[..n]);
                    }
                })
            };
            match read {
                // The readiness was stale (and is now cleared): wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }
}

impl TransportRead for DuplexStream {
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        chunk: usize,
    ) -> Poll<io::Result<usize>> {
        // A pipe has no readiness to wait on: the room is taken up front
        // (these transports already hold the pipe's own buffers).
        make_room(buf, chunk);
        std::pin::pin!(self.read_buf(buf)).poll(cx)
    }
}

/// Bytes buffered in each direction of the pipe between a pump and its
/// connection.
pub const PIPE_BYTES: usize = 64 * 1024;

/// Copies between a byte stream (TLS) and the connection's pipe until
/// either side ends.
pub async fn pump_stream<S>(mut stream: S, mut pipe: DuplexStream)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut pipe).await;
    let _ = stream.shutdown().await;
}

/// Carries MQTT bytes between WebSocket binary messages and the
/// connection's pipe. MQTT packets need not align with messages
/// [MQTT-6.0.0-2]; text messages are a protocol error [MQTT-6.0.0-1] and
/// close the connection.
pub async fn pump_websocket<S>(ws: WebSocketStream<S>, pipe: DuplexStream)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut pipe_rd, mut pipe_wr) = tokio::io::split(pipe);
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        tokio::select! {
            msg = ws_rx.next() => match msg {
                Some(Ok(Message::Binary(data))) => {
                    if pipe_wr.write_all(&data).await.is_err() {
                        break;
                    }
                }
                // Pings are answered by the WebSocket layer.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_) | Message::Close(_))) | Some(Err(_)) | None => break,
            },
            read = pipe_rd.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let data = buf.split().freeze();
                    if ws_tx.send(Message::Binary(data)).await.is_err() {
                        break;
                    }
                    if buf.capacity() < 1024 {
                        buf.reserve(8 * 1024);
                    }
                }
            },
        }
    }
    // Tell the connection the client is gone, and the client we are done.
    let _ = pipe_wr.shutdown().await;
    let _ = ws_tx.send(Message::Close(None)).await;
    let _ = ws_tx.close().await;
}

/// A malformed or missing PROXY protocol header.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
    #[error("invalid PROXY header: {0}")]
    Invalid(&'static str),
}

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included.
const V1_MAX: usize = 107;
/// The longest v2 address block accepted (addresses and TLVs).
const V2_MAX: usize = 1024;

/// Reads a PROXY protocol v1 or v2 header from the start of `stream`,
/// consuming exactly the header. Returns the client address it carries,
/// or `None` for a LOCAL / UNKNOWN header (keep the socket's own peer).
pub async fn read_proxy_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, ProxyError> {
    // Both versions are at least 15 bytes long.
    let mut head = [0u8; 16];
    stream.read_exact(&mut head[..8]).await?;
    if head.starts_with(b"PROXY ") {
        let mut line = head[..8].to_vec();
        // Byte by byte, so nothing after the header is consumed.
        while !line.ends_with(b"\r\n") {
            if line.len() >= V1_MAX {
                return Err(ProxyError::Invalid("v1 header longer than 107 bytes"));
            }
            line.push(stream.read_u8().await?);
        }
        let text = std::str::from_utf8(&line).map_err(|_| ProxyError::Invalid("not ASCII"))?;
        return parse_v1(text);
    }
    stream.read_exact(&mut head[8..]).await?;
    if head[..12] != V2_SIGNATURE {
        return Err(ProxyError::Invalid("no PROXY header"));
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > V2_MAX {
        return Err(ProxyError::Invalid("v2 address block too long"));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    parse_v2(&head, &body)
}

/// Parses a v1 line (`PROXY TCP4 src dst sport dport\r\n`).
pub fn parse_v1(line: &str) -> Result<Option<SocketAddr>, ProxyError> {
    let line = line
        .strip_suffix("\r\n")
        .ok_or(ProxyError::Invalid("v1 header without CRLF"))?;
    let mut parts = line.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(ProxyError::Invalid("v1 header does not start with PROXY"));
    }
    let family = parts
        .next()
        .ok_or(ProxyError::Invalid("v1 family missing"))?;
    if family == "UNKNOWN" {
        return Ok(None);
    }
    let fields: Vec<&str> = parts.collect();
    let [src, _dst, sport, _dport] = fields[..] else {
        return Err(ProxyError::Invalid("v1 header needs 4 address fields"));
    };
    let ip: IpAddr = match family {
        "TCP4" => src
            .parse::<Ipv4Addr>()
            .map_err(|_| ProxyError::Invalid("v1 source is not IPv4"))?
            .into(),
        "TCP6" => src
            .parse::<Ipv6Addr>()
            .map_err(|_| ProxyError::Invalid("v1 source is not IPv6"))?
            .into(),
        _ => {
            return Err(ProxyError::Invalid(
                "v1 family is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    let port: u16 = sport
        .parse()
        .map_err(|_| ProxyError::Invalid("v1 source port"))?;
    Ok(Some(SocketAddr::new(ip, port)))
}

/// Parses a v2 header (16 bytes) and its address block.
pub fn parse_v2(head: &[u8; 16], body: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    if head[12] >> 4 != 2 {
        return Err(ProxyError::Invalid("v2 version is not 2"));
    }
    match head[12] & 0x0F {
        // LOCAL: a health check from the proxy itself.
        0 => return Ok(None),
        1 => {}
        _ => return Err(ProxyError::Invalid("v2 command is neither LOCAL nor PROXY")),
    }
    match head[13] {
        // TCP over IPv4.
        0x11 => {
            let b: &[u8; 12] = body
                .get(..12)
                .and_then(|s| s.try_into().ok())
                .ok_or(ProxyError::Invalid("v2 IPv4 block too short"))?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([b[8], b[9]]),
            )))
        }
        // TCP over IPv6.
        0x21 => {
            let b: &[u8; 36] = body
                .get(..36)
                .and_then(|s| s.try_into().ok())
                .ok_or(ProxyError::Invalid("v2 IPv6 block too short"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[..16]);
            let ip = Ipv6Addr::from(octets);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([b[32], b[33]]),
            )))
        }
        // Unspecified, UDP or Unix: no usable client address.
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_headers() {
        let a = parse_v1("PROXY TCP4 192.0.2.7 198.51.100.1 40000 1883\r\n").expect("valid");
        assert_eq!(a, Some("192.0.2.7:40000".parse().expect("addr")));
        let a = parse_v1("PROXY TCP6 2001:db8::1 2001:db8::2 5 6\r\n").expect("valid");
        assert_eq!(a, Some("[2001:db8::1]:5".parse().expect("addr")));
        assert_eq!(parse_v1("PROXY UNKNOWN\r\n").expect("valid"), None);
        assert!(parse_v1("PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n").is_err());
        assert!(parse_v1("PROXY TCP4 ::1 ::1 1 2\r\n").is_err());
        assert!(parse_v1("PROXY TCP4 1.2.3.4 1.2.3.4 99999 2\r\n").is_err());
        assert!(parse_v1("PROXY TCP4 1.2.3.4 1.2.3.4 1 2").is_err());
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | cmd);
        out.push(fam);
        out.extend((body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn v2_headers_consume_exactly_the_header() {
        let mut body = vec![192, 0, 2, 9, 10, 0, 0, 1];
        body.extend(1234u16.to_be_bytes());
        body.extend(1883u16.to_be_bytes());
        body.extend([0x04, 0, 1, 0xAA]); // a TLV, skipped
        let mut bytes = v2(1, 0x11, &body);
        bytes.extend(b"\x10MQTT");
        let mut input: &[u8] = &bytes;
        let addr = read_proxy_header(&mut input).await.expect("valid");
        assert_eq!(addr, Some("192.0.2.9:1234".parse().expect("addr")));
        assert_eq!(input, b"\x10MQTT", "what follows the header is left unread");

        let mut body6 = vec![0u8; 36];
        body6[15] = 1;
        body6[32..34].copy_from_slice(&7u16.to_be_bytes());
        let bytes = v2(1, 0x21, &body6);
        let addr = read_proxy_header(&mut &bytes[..]).await.expect("valid");
        assert_eq!(addr, Some("[::1]:7".parse().expect("addr")));

        let local = v2(0, 0x00, &[]);
        assert_eq!(
            read_proxy_header(&mut &local[..]).await.expect("valid"),
            None
        );
        let short = v2(1, 0x11, &[1, 2, 3]);
        assert!(read_proxy_header(&mut &short[..]).await.is_err());
    }

    #[tokio::test]
    async fn a_tcp_read_takes_room_only_for_bytes_that_came() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (mut rd, _) = listener.accept().await.expect("accept");
        let mut buf = BytesMut::new();
        client.write_all(b"0123456789").await.expect("write");
        let n = std::future::poll_fn(|cx| rd.poll_read_some(cx, &mut buf, 4096))
            .await
            .expect("read");
        assert_eq!(&buf[..n], b"0123456789");
        // Idle again, with the readiness still set from the read above: the
        // stale readiness is found out without taking a buffer.
        buf = BytesMut::new();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(rd.poll_read_some(&mut cx, &mut buf, 4096).is_pending());
        assert_eq!(buf.capacity(), 0, "no buffer while nothing is there");
        // More than the first stack read: all of it arrives, in order.
        let big: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        client.write_all(&big).await.expect("write");
        while buf.len() < big.len() {
            let n = std::future::poll_fn(|cx| rd.poll_read_some(cx, &mut buf, 4096))
                .await
                .expect("read");
            assert!(n > 0);
        }
        assert_eq!(&buf[..], &big[..]);
        drop(client);
        let n = std::future::poll_fn(|cx| rd.poll_read_some(cx, &mut buf, 4096))
            .await
            .expect("read");
        assert_eq!(n, 0, "end of stream");
    }

    #[tokio::test]
    async fn v1_over_a_stream_and_garbage() {
        let bytes = b"PROXY TCP4 203.0.113.5 203.0.113.6 1 2\r\n\x10rest";
        let mut input: &[u8] = bytes;
        let addr = read_proxy_header(&mut input).await.expect("valid");
        assert_eq!(addr, Some("203.0.113.5:1".parse().expect("addr")));
        assert_eq!(input, b"\x10rest");
        // An MQTT CONNECT where a header is required.
        let connect = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd";
        assert!(read_proxy_header(&mut &connect[..]).await.is_err());
        let long = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
        assert!(read_proxy_header(&mut &long[..]).await.is_err());
    }
}
