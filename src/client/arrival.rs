//! When a frame reached the socket, as the kernel saw it.
//!
//! A client that reads a frame late, because its thread was busy with
//! other sockets, would otherwise count its own wait as the server's
//! latency. The load generator reads a thousand reps' sockets on one
//! thread, and its wait depends on how much else it has to read: a
//! latency taken when a frame is read measures the generator too
//! (docs/performance-rounds.md, round 42).
//!
//! On Linux a TCP socket with `SO_TIMESTAMPNS` hands each `recvmsg` the
//! time its last segment entered the receive path (`SCM_TIMESTAMPNS`,
//! `CLOCK_REALTIME`). [`Transport`] reads that way when asked and keeps the
//! stamp of its latest read in an [`Arrivals`] handle. A frame is complete
//! only once its last byte is read, so the stamp of the read that
//! completed it is never earlier than its arrival, and is later only when
//! one read also carried later segments: the figure errs towards slow,
//! never fast. Elsewhere, and for sockets not asked, nothing is stamped.
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The kernel's receive time of a socket's latest read, shared between
/// the socket and whoever decodes its frames.
#[derive(Debug, Clone, Default)]
pub struct Arrivals {
    /// Nanoseconds since the Unix epoch; 0 when the latest read carried no
    /// stamp, so a frame is never given an older read's time.
    latest: Arc<AtomicU64>,
}

impl Arrivals {
    /// When the bytes of the latest read reached the socket, if the kernel
    /// said.
    pub fn latest(&self) -> Option<SystemTime> {
        match self.latest.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(UNIX_EPOCH + Duration::from_nanos(ns)),
        }
    }

    fn set(&self, ns: u64) {
        self.latest.store(ns, Ordering::Relaxed);
    }
}

/// A client's TCP connection, read with the kernel's receive stamps when
/// [`Transport::stamped`] made it.
#[derive(Debug)]
pub struct Transport {
    tcp: TcpStream,
    arrivals: Option<Arrivals>,
}

impl Transport {
    /// Reads as a plain socket does; nothing is stamped.
    pub fn plain(tcp: TcpStream) -> Self {
        Transport {
            tcp,
            arrivals: None,
        }
    }

    /// Asks the kernel to stamp what this socket receives. Where it cannot
    /// (not Linux), the transport reads plainly and [`Transport::arrivals`]
    /// is `None`.
    pub fn stamped(tcp: TcpStream) -> io::Result<Self> {
        let arrivals = enable_stamps(&tcp)?.then(Arrivals::default);
        Ok(Transport { tcp, arrivals })
    }

    /// The handle the reads update, if this transport is stamped.
    pub fn arrivals(&self) -> Option<Arrivals> {
        self.arrivals.clone()
    }
}

#[cfg(target_os = "linux")]
fn enable_stamps(tcp: &TcpStream) -> io::Result<bool> {
    super::turn_on(tcp, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS).map(|()| true)
}

#[cfg(not(target_os = "linux"))]
fn enable_stamps(_: &TcpStream) -> io::Result<bool> {
    Ok(false)
}

/// One `recvmsg` into `buf`: the bytes read and the receive stamp the
/// kernel attached (nanoseconds since the Unix epoch; 0 when none).
#[cfg(target_os = "linux")]
fn recv_stamped(
    tcp: &TcpStream,
    buf: &mut [std::mem::MaybeUninit<u8>],
) -> io::Result<(usize, u64)> {
    use std::os::fd::AsRawFd;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one control message holding a timespec, 8-byte aligned.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; all-zero is its empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov`, which covers `buf`'s spare capacity,
    // and at `control`; all three outlive the call. The kernel writes at
    // most `iov_len` bytes into `buf` and `msg_controllen` into `control`.
    let n = unsafe { libc::recvmsg(tcp.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = 0;
    // SAFETY: the CMSG_* walk stays within `msg.msg_controllen`, which the
    // kernel set to what it wrote into `control`; the timespec is read
    // unaligned, as CMSG_DATA does not promise its alignment.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = (ts.tv_sec as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.tv_nsec as u64);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        #[cfg(target_os = "linux")]
        if let Some(arrivals) = &this.arrivals {
            loop {
                std::task::ready!(this.tcp.poll_read_ready(cx))?;
                // SAFETY: only the kernel writes into the unfilled part, and
                // only the `n` bytes it reports are marked filled.
                let unfilled = unsafe { buf.unfilled_mut() };
                match this.tcp.try_io(tokio::io::Interest::READABLE, || {
                    recv_stamped(&this.tcp, unfilled)
                }) {
                    Ok((n, stamp)) => {
                        // SAFETY: recvmsg initialised these `n` bytes.
                        unsafe { buf.assume_init(n) };
                        buf.advance(n);
                        arrivals.set(stamp);
                        return Poll::Ready(Ok(()));
                    }
                    // Readiness was stale; try_io cleared it, so wait again.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bytes written at a known time are read later, and the stamp says
    /// when they arrived, not when they were read.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_read_carries_when_its_bytes_arrived_not_when_they_were_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let mut transport = Transport::stamped(client.unwrap()).unwrap();
        let arrivals = transport.arrivals().expect("Linux stamps");
        assert_eq!(arrivals.latest(), None, "nothing read yet");
        let (mut server, _) = accepted.unwrap();
        // The first socket to ask turns the kernel's stamping on through a
        // work queue, a moment later; what arrives before is not stamped.
        // On a loaded machine that took more than the 100 ms this test
        // once slept, so probe until a read is stamped.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            server.write_all(b".").await.unwrap();
            let mut probe = [0u8; 1];
            transport.read_exact(&mut probe).await.unwrap();
            if arrivals.latest().is_some() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the kernel stamped no read in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let before = SystemTime::now();
        server.write_all(b"hello").await.unwrap();
        let after = SystemTime::now();
        // The reader is late by far more than the write took.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut buf = [0u8; 16];
        let n = transport.read(&mut buf).await.unwrap();
        let read_at = SystemTime::now();

        assert_eq!(&buf[..n], b"hello");
        let arrived = arrivals.latest().expect("the read was stamped");
        assert!(
            before <= arrived && arrived <= after,
            "arrived {arrived:?} outside the write's {before:?}..{after:?}"
        );
        assert!(read_at.duration_since(arrived).unwrap() >= Duration::from_millis(200));

        // Writing still works through the transport.
        transport.write_all(b"back").await.unwrap();
        let mut back = [0u8; 4];
        server.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"back");
    }

    #[tokio::test]
    async fn a_plain_transport_stamps_nothing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let mut transport = Transport::plain(client.unwrap());
        assert!(transport.arrivals().is_none());
        let (mut server, _) = accepted.unwrap();
        server.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        transport.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
    }
}
