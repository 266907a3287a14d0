//! One accepted connection as tonic sees it: the TLS stream, with the HTTP/2 client preface
//! already read (and replayed), its places in the connection counts, and for a connection
//! without a client certificate an idle limit.
//!
//! Why at this layer: hyper waits for the preface with no deadline and has no idle timeout for
//! HTTP/2, so a client that completes the handshake and then says nothing, or opens a
//! connection and never uses it, would keep a descriptor forever. Terminals are never closed
//! for being idle (the fleet keeps its connections for hours); the gateway's HTTP/2 PINGs,
//! configured on the server, close those that stop answering.
//!
//! Idle means no HEADERS, DATA or CONTINUATION frame in either direction: PINGs, SETTINGS and
//! WINDOW_UPDATEs do not count, or a client could keep a connection by pinging it. The frame
//! headers are read from the plaintext as it passes; nothing is buffered.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use crate::limits::ConnectionPermit;

/// What every HTTP/2 connection starts with (RFC 9113, section 3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads the client preface from `tls` within `timeout`; `None` when it does not come in time
/// or is not the HTTP/2 preface.
pub async fn read_preface(tls: &mut TlsStream<TcpStream>, timeout: Duration) -> Option<()> {
    let mut preface = [0u8; 24];
    match tokio::time::timeout(timeout, tls.read_exact(&mut preface)).await {
        Ok(Ok(_)) if &preface == PREFACE => Some(()),
        _ => None,
    }
}

/// An established connection handed to tonic.
pub struct Conn {
    inner: TlsStream<TcpStream>,
    /// How much of [`PREFACE`] is still to be replayed to hyper.
    preface_left: usize,
    idle: Option<IdleWatch>,
    _permit: ConnectionPermit,
}

impl Conn {
    /// Wraps a stream whose preface was read; `idle` closes it after that long without a
    /// request or response (anonymous connections only).
    pub fn new(
        inner: TlsStream<TcpStream>,
        permit: ConnectionPermit,
        idle: Option<Duration>,
    ) -> Self {
        Conn {
            inner,
            preface_left: PREFACE.len(),
            idle: idle.map(IdleWatch::new),
            _permit: permit,
        }
    }

    /// Fails once the connection has been idle too long (and arms the timer otherwise).
    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match &mut self.idle {
            Some(idle) => idle.poll_expired(cx),
            None => Ok(()),
        }
    }
}

impl Connected for Conn {
    type ConnectInfo = TlsConnectInfo<TcpConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.check_idle(cx)?;
        if this.preface_left > 0 {
            let start = PREFACE.len() - this.preface_left;
            let n = this.preface_left.min(buf.remaining());
            buf.put_slice(&PREFACE[start..start + n]);
            this.preface_left -= n;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(idle)) = (&polled, &mut this.idle) {
            idle.saw_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check_idle(cx)?;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(idle)) = (&polled, &mut this.idle) {
            idle.saw_written(&buf[..*n]);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check_idle(cx)?;
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let (Poll::Ready(Ok(n)), Some(idle)) = (&polled, &mut this.idle) {
            let mut left = *n;
            for slice in bufs {
                let take = left.min(slice.len());
                idle.saw_written(&slice[..take]);
                left -= take;
                if left == 0 {
                    break;
                }
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_idle(cx)?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The idle limit of one connection.
struct IdleWatch {
    timeout: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
    from_client: FrameScanner,
    to_client: FrameScanner,
}

impl IdleWatch {
    fn new(timeout: Duration) -> Self {
        let now = Instant::now();
        IdleWatch {
            timeout,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + timeout)),
            from_client: FrameScanner::default(),
            to_client: FrameScanner::default(),
        }
    }

    /// Re-arms the timer for the last activity; an error once it has passed. hyper always
    /// keeps a read pending on an HTTP/2 connection, so the timer's wake-up reaches a poll
    /// here even when nothing else happens.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            let deadline = self.last_activity + self.timeout;
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Ok(()),
                // Activity may have moved the deadline since the timer was set.
                Poll::Ready(()) if self.last_activity + self.timeout > Instant::now() => continue,
                Poll::Ready(()) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "anonymous connection idle",
                    ));
                }
            }
        }
    }

    fn saw_read(&mut self, bytes: &[u8]) {
        if self.from_client.scan(bytes) {
            self.last_activity = Instant::now();
        }
    }

    fn saw_written(&mut self, bytes: &[u8]) {
        if self.to_client.scan(bytes) {
            self.last_activity = Instant::now();
        }
    }
}

/// Follows HTTP/2 frame boundaries in one direction of a connection (after the preface):
/// a 9-byte header (24-bit length, type, flags, stream id), then `length` bytes of payload.
#[derive(Default)]
struct FrameScanner {
    header: [u8; 9],
    filled: usize,
    payload_left: u32,
}

/// Frame types that carry a request or a response: DATA, HEADERS, CONTINUATION.
fn carries_a_call(frame_type: u8) -> bool {
    matches!(frame_type, 0x0 | 0x1 | 0x9)
}

impl FrameScanner {
    /// Consumes `bytes`; true when a frame header of a call was among them.
    fn scan(&mut self, mut bytes: &[u8]) -> bool {
        let mut call = false;
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skip = bytes.len().min(self.payload_left as usize);
                self.payload_left -= skip as u32;
                bytes = &bytes[skip..];
                continue;
            }
            let take = bytes.len().min(9 - self.filled);
            self.header[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled == 9 {
                let [a, b, c, frame_type, ..] = self.header;
                self.payload_left = u32::from_be_bytes([0, a, b, c]);
                call |= carries_a_call(frame_type);
                self.filled = 0;
            }
        }
        call
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(frame_type: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], frame_type, 0, 0, 0, 0, 1];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn pings_and_settings_are_not_calls_but_headers_are() {
        let mut scanner = FrameScanner::default();
        let ping = frame(0x6, &[0; 8]);
        let settings = frame(0x4, &[0; 12]);
        assert!(!scanner.scan(&[ping.clone(), settings].concat()));
        // A HEADERS frame split across reads, after a payload that looks like a header.
        let headers = frame(0x1, &[0x1; 20]);
        let all = [ping, headers].concat();
        assert!(!scanner.scan(&all[..14]));
        assert!(scanner.scan(&all[14..]));
        assert!(!scanner.scan(&frame(0x8, &[0; 4])));
    }
}
