//! Receiving datagrams: a thread per socket drains the kernel buffer with `recvmmsg` into batches and
//! hands them to the parser thread through a queue bounded in bytes, so a burst waits in memory
//! instead of being dropped by the kernel while lines are parsed. When the queue is full the receiver
//! waits and the kernel's buffer (made large) takes the rest; what the kernel then drops is read from
//! `/proc/self/net/udp` and exported.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Datagrams received by one `recvmmsg` call at most.
pub const BATCH_DATAGRAMS: usize = 32;

/// How often a blocked receiver or parser wakes up to look at the stop flag.
pub const POLL: Duration = Duration::from_millis(100);

/// Datagrams received together: their bytes back to back, and where each ends and who sent it.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    packets: Vec<(usize, Option<IpAddr>)>,
}

impl Batch {
    pub fn push(&mut self, datagram: &[u8], peer: Option<IpAddr>) {
        self.data.extend_from_slice(datagram);
        self.packets.push((self.data.len(), peer));
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.packets.clear();
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Each datagram with its sender.
    pub fn packets(&self) -> impl Iterator<Item = (&[u8], Option<IpAddr>)> {
        let mut start = 0;
        self.packets.iter().map(move |&(end, peer)| {
            let p = &self.data[start..end];
            start = end;
            (p, peer)
        })
    }
}

/// A queue of batches bounded by the bytes it holds, with a pool of spent batches to reuse.
pub struct Queue {
    inner: Mutex<QueueInner>,
    not_empty: Condvar,
    not_full: Condvar,
    cap_bytes: usize,
}

struct QueueInner {
    batches: VecDeque<Batch>,
    bytes: usize,
    spare: Vec<Batch>,
}

impl Queue {
    pub fn new(cap_bytes: usize) -> Queue {
        Queue {
            inner: Mutex::new(QueueInner {
                batches: VecDeque::new(),
                bytes: 0,
                spare: Vec::new(),
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            cap_bytes,
        }
    }

    /// Bytes waiting to be parsed.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueInner> {
        // A panic while holding this lock leaves plain data behind; keep going with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty batch, reused when one is spare.
    pub fn spare(&self) -> Batch {
        self.lock().spare.pop().unwrap_or_default()
    }

    /// Gives a parsed batch back for reuse.
    pub fn recycle(&self, mut batch: Batch) {
        batch.clear();
        let mut q = self.lock();
        // Enough spares for a full queue of small batches; the rest is freed.
        if q.spare.len() < 64 {
            q.spare.push(batch);
        }
    }

    /// Enqueues a batch, waiting while the queue is full (a batch always fits in an empty queue).
    /// Returns the batch back when `stop` was raised while waiting.
    pub fn push(&self, batch: Batch, stop: &AtomicBool) -> Result<(), Batch> {
        let mut q = self.lock();
        while q.bytes > 0 && q.bytes + batch.bytes() > self.cap_bytes {
            if stop.load(Ordering::Relaxed) {
                return Err(batch);
            }
            q = self
                .not_full
                .wait_timeout(q, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        q.bytes += batch.bytes();
        q.batches.push_back(batch);
        drop(q);
        self.not_empty.notify_one();
        Ok(())
    }

    /// The oldest batch, waiting up to `timeout` for one.
    pub fn pop(&self, timeout: Duration) -> Option<Batch> {
        let mut q = self.lock();
        if q.batches.is_empty() && !timeout.is_zero() {
            q = self
                .not_empty
                .wait_timeout_while(q, timeout, |q| q.batches.is_empty())
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let b = q.batches.pop_front()?;
        q.bytes -= b.bytes();
        drop(q);
        self.not_full.notify_all();
        Some(b)
    }
}

/// What the receiver threads count, read by the parser thread at each flush.
#[derive(Debug, Default)]
pub struct ReceiveStats {
    pub udp_packets: AtomicU64,
    pub unix_packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Datagrams longer than the receive buffer: dropped whole, as their last line is cut.
    pub truncated: AtomicU64,
    pub receive_errors: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Unix,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Unix => "unix",
        }
    }
}

/// Asks for a receive buffer of `bytes`: SO_RCVBUFFORCE when privileged (it may exceed
/// `net.core.rmem_max`), else SO_RCVBUF (capped by it). Returns the size the kernel granted.
pub fn set_receive_buffer(fd: RawFd, bytes: usize) -> io::Result<usize> {
    let want = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let set = |opt| {
        // SAFETY: a c_int option value of the right size for SOL_SOCKET buffer options.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&want as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    set(libc::SO_RCVBUFFORCE).or_else(|_| set(libc::SO_RCVBUF))?;
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `got` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // The kernel reports twice the payload it keeps (bookkeeping overhead included).
    Ok(got as usize)
}

/// The inode of a socket, as /proc/net/udp lists it.
pub fn socket_inode(fd: &impl AsRawFd) -> io::Result<u64> {
    // SAFETY: fstat fills a zeroed stat struct for a valid descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    if rc == 0 {
        Ok(st.st_ino)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The `drops` and `rx_queue` (bytes waiting) columns of the socket with `inode` in the text of
/// /proc/net/udp or /proc/net/udp6.
pub fn udp_socket_counters(table: &str, inode: u64) -> Option<(u64, u64)> {
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        if cols.len() < 13 || cols[9].parse::<u64>().ok() != Some(inode) {
            continue;
        }
        let rx_queue = cols[4]
            .split_once(':')
            .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())?;
        let drops = cols[12].parse().ok()?;
        return Some((drops, rx_queue));
    }
    None
}

/// Reads the kernel's counters of our UDP socket from /proc/self/net (our network namespace).
pub fn read_udp_counters(inode: u64) -> Option<(u64, u64)> {
    ["/proc/self/net/udp", "/proc/self/net/udp6"]
        .iter()
        .find_map(|p| udp_socket_counters(&std::fs::read_to_string(p).ok()?, inode))
}

fn peer_ip(ss: &libc::sockaddr_storage) -> Option<IpAddr> {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: ss_family says the storage holds a sockaddr_in, which it is large enough for.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4))
        }
        _ => None,
    }
}

/// Receives datagrams on `fd` until `stop` is raised. The socket must have a read timeout (the
/// thread looks at `stop` each time it expires).
pub fn receive_loop(
    fd: RawFd,
    transport: Transport,
    max_packet: usize,
    queue: &Queue,
    stats: &ReceiveStats,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; BATCH_DATAGRAMS * max_packet];
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut addrs: [libc::sockaddr_storage; BATCH_DATAGRAMS] = unsafe { std::mem::zeroed() };
    let mut iovecs: [libc::iovec; BATCH_DATAGRAMS] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH_DATAGRAMS] = unsafe { std::mem::zeroed() };
    let packets = match transport {
        Transport::Udp => &stats.udp_packets,
        Transport::Unix => &stats.unix_packets,
    };
    while !stop.load(Ordering::Relaxed) {
        for i in 0..BATCH_DATAGRAMS {
            iovecs[i] = libc::iovec {
                iov_base: buf[i * max_packet..].as_mut_ptr().cast(),
                iov_len: max_packet,
            };
            let h = &mut msgs[i].msg_hdr;
            h.msg_iov = &mut iovecs[i];
            h.msg_iovlen = 1;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_flags = 0;
            msgs[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers of the stated lengths for this call. With
        // MSG_WAITFORONE the call blocks (up to the socket's read timeout) for the first datagram
        // only, then takes whatever else is already queued.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH_DATAGRAMS as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => {}
                _ => {
                    stats.receive_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, transport = transport.as_str(), "StatsD: receive failed");
                    std::thread::sleep(POLL);
                }
            }
            continue;
        }
        let n = n as usize;
        let mut batch = queue.spare();
        let mut bytes = 0;
        for i in 0..n {
            let len = msgs[i].msg_len as usize;
            if msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                stats.truncated.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            bytes += len;
            let peer = match transport {
                Transport::Udp => peer_ip(&addrs[i]),
                Transport::Unix => None,
            };
            batch.push(&buf[i * max_packet..i * max_packet + len], peer);
        }
        packets.fetch_add(n as u64, Ordering::Relaxed);
        stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if !batch.is_empty() && queue.push(batch, stop).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_drops_and_queue_of_our_socket() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 00000000:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0
  456: 0100007F:A1B2 00000000:0000 07 00000000:00001F00 00:00000000 00000000     0        0 777 2 0000000000000000 1234
";
        assert_eq!(udp_socket_counters(table, 777), Some((1234, 0x1f00)));
        assert_eq!(udp_socket_counters(table, 4242), Some((0, 0)));
        assert_eq!(udp_socket_counters(table, 1), None);
        assert_eq!(udp_socket_counters("garbage\nmore garbage", 1), None);
    }

    #[test]
    fn a_real_socket_is_found_in_proc() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(&s).unwrap();
        let (drops, _) = read_udp_counters(inode).expect("our socket is listed");
        assert_eq!(drops, 0);
    }

    #[test]
    fn queue_is_bounded_in_bytes_and_keeps_order() {
        let q = Queue::new(10);
        let stop = AtomicBool::new(false);
        let mut a = Batch::default();
        a.push(b"0123456", None);
        let mut b = Batch::default();
        b.push(b"789", Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        q.push(a, &stop).unwrap();
        q.push(b, &stop).unwrap();
        assert_eq!(q.bytes(), 10);
        // Full: a further push waits, and gives its batch back when asked to stop.
        let mut c = Batch::default();
        c.push(b"x", None);
        stop.store(true, Ordering::Relaxed);
        assert!(q.push(c, &stop).is_err());
        let first = q.pop(Duration::ZERO).unwrap();
        assert_eq!(first.packets().next().unwrap().0, b"0123456");
        let second = q.pop(Duration::ZERO).unwrap();
        let v: Vec<_> = second.packets().collect();
        assert_eq!(
            v,
            vec![(&b"789"[..], Some(IpAddr::V4(Ipv4Addr::LOCALHOST)))]
        );
        assert!(q.pop(Duration::from_millis(1)).is_none());
        // A batch larger than the whole queue still goes through an empty queue.
        let stop = AtomicBool::new(false);
        let mut big = Batch::default();
        big.push(&[b'a'; 50], None);
        q.push(big, &stop).unwrap();
        assert_eq!(q.pop(Duration::ZERO).unwrap().bytes(), 50);
    }

    #[test]
    fn peers_are_read_from_v4_and_mapped_v6_addresses() {
        let s = std::net::UdpSocket::bind("[::]:0");
        let Ok(s) = s else { return }; // no IPv6 on this machine
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let port = s.local_addr().unwrap().port();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"a:1|c", ("127.0.0.1", port)).unwrap();
        let q = Queue::new(1 << 20);
        let stats = ReceiveStats::default();
        let stop = AtomicBool::new(false);
        std::thread::scope(|sc| {
            sc.spawn(|| receive_loop(s.as_raw_fd(), Transport::Udp, 1024, &q, &stats, &stop));
            let b = q.pop(Duration::from_secs(5)).expect("a datagram");
            stop.store(true, Ordering::Relaxed);
            let v: Vec<_> = b.packets().collect();
            assert_eq!(
                v,
                vec![(&b"a:1|c"[..], Some(IpAddr::V4(Ipv4Addr::LOCALHOST)))]
            );
        });
        assert_eq!(stats.udp_packets.load(Ordering::Relaxed), 1);
    }
}
