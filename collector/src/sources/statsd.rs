//! The StatsD / DogStatsD receiver: UDP (default :8125) and optionally a Unix datagram socket.
//!
//! Threads: one receiver per socket (`recvmmsg` into batches) and one parser that owns the
//! [`Aggregator`] and flushes it every collector interval through the flush function it was given
//! (the store's ingest handle in the collector). See `parse` for the line format, `names` for the
//! Prometheus names, `mapping` for the mapping file and `aggregate` for series, TTL and limits.

pub mod aggregate;
pub mod config;
mod events;
pub mod mapping;
pub mod names;
pub mod parse;
pub mod receive;
pub mod sink;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use aggregate::{
    AggregateConfig, Aggregator, ContainerId, Containers, FamilyKind, FlushValue, NoContainers,
    SeriesId, SeriesView, Sink,
};
pub use config::StatsdConfig;
pub use mapping::Mapper;
pub use sink::StoreSink;

use receive::{Queue, ReceiveStats, Transport, POLL};

use crate::run::now_millis;
use crate::store::Millis;

/// The `source` label of this receiver's ingest metrics.
pub const SOURCE: &str = "statsd";

/// A validated receiver, ready to bind its sockets.
#[derive(Debug)]
pub struct Statsd {
    pub config: StatsdConfig,
    pub aggregate: AggregateConfig,
    pub mapper: Arc<Mapper>,
}

/// Called by the parser thread every interval with the aggregation state and the time: writes every
/// live series (see [`Aggregator::flush_starts`] and [`Aggregator::flush`]).
pub type FlushFn = Box<dyn FnMut(&mut Aggregator, Millis) + Send>;

/// Why the receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("StatsD: cannot listen on UDP {addr}: {source} (choose another address with --statsd-udp ADDR, or turn it off with --statsd-udp off)")]
    BindUdp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("StatsD: cannot listen on the Unix socket {path}: {source}")]
    BindUnix {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("StatsD: {0}")]
    Io(#[from] std::io::Error),
}

/// A running receiver. Dropping it stops its threads and removes its Unix socket file.
pub struct StatsdReceiver {
    udp_addr: Option<SocketAddr>,
    udp_inode: Option<u64>,
    unix_path: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl StatsdReceiver {
    /// The bound UDP address (with the real port when 0 was asked for).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_path.as_deref()
    }

    /// The kernel's drop count and queued bytes of the UDP socket (from /proc/self/net/udp).
    pub fn udp_kernel_counters(&self) -> Option<(u64, u64)> {
        self.udp_inode.and_then(receive::read_udp_counters)
    }
}

impl Drop for StatsdReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Statsd {
    /// Binds the sockets (a bind failure is returned, not logged) and starts the receiver and parser
    /// threads; `flush` runs every `interval` on the parser thread.
    pub fn start(
        self,
        interval: Duration,
        containers: Arc<dyn Containers + Send + Sync>,
        flush: FlushFn,
    ) -> Result<StatsdReceiver, StartError> {
        let cfg = &self.config;
        let udp = match cfg.udp {
            Some(addr) => {
                let s =
                    UdpSocket::bind(addr).map_err(|source| StartError::BindUdp { addr, source })?;
                s.set_read_timeout(Some(POLL))?;
                let granted = receive::set_receive_buffer(s.as_raw_fd(), cfg.receive_buffer_bytes)?;
                let local = s.local_addr()?;
                tracing::info!(listen = %local, receive_buffer = granted, "StatsD receiver listening on UDP");
                Some((s, local))
            }
            None => None,
        };
        let unix = match &cfg.unix {
            Some(path) => {
                let s = bind_unix(path).map_err(|source| StartError::BindUnix {
                    path: path.clone(),
                    source,
                })?;
                s.set_read_timeout(Some(POLL))?;
                receive::set_receive_buffer(s.as_raw_fd(), cfg.receive_buffer_bytes)?;
                tracing::info!(path = %path.display(), "StatsD receiver listening on a Unix datagram socket");
                Some(s)
            }
            None => None,
        };
        let udp_inode = match &udp {
            Some((s, _)) => Some(receive::socket_inode(s)?),
            None => None,
        };
        let queue = Arc::new(Queue::new(cfg.queue_bytes));
        let stats = Arc::new(ReceiveStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let max_packet = cfg.max_packet_bytes;
        let mut threads = Vec::new();
        let udp_addr = udp.as_ref().map(|(_, a)| *a);
        let spawn_receiver = |name: &str, fd: Box<dyn AsRawFd + Send>, transport| {
            let (queue, stats, stop) = (queue.clone(), stats.clone(), stop.clone());
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    receive::receive_loop(
                        fd.as_raw_fd(),
                        transport,
                        max_packet,
                        &queue,
                        &stats,
                        &stop,
                    )
                })
        };
        if let Some((s, _)) = udp {
            threads.push(spawn_receiver(
                "plimsoll-statsd-udp",
                Box::new(s),
                Transport::Udp,
            )?);
        }
        if let Some(s) = unix {
            threads.push(spawn_receiver(
                "plimsoll-statsd-unix",
                Box::new(s),
                Transport::Unix,
            )?);
        }
        events::register();
        let aggregator = Aggregator::new(self.aggregate, self.mapper);
        let parser = Parser {
            aggregator,
            queue,
            stats,
            stop: stop.clone(),
            interval,
            containers,
            flush,
            udp_inode,
        };
        threads.push(
            std::thread::Builder::new()
                .name("plimsoll-statsd-parse".into())
                .spawn(move || parser.run())?,
        );
        Ok(StatsdReceiver {
            udp_addr,
            udp_inode,
            unix_path: cfg.unix.clone(),
            stop,
            threads,
        })
    }
}

/// Binds a Unix datagram socket, replacing a stale socket file that nothing listens on. The socket
/// is writable by every user, as the Datadog agent's is, so that clients in containers can send.
fn bind_unix(path: &Path) -> std::io::Result<UnixDatagram> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            ));
        }
        let probe = UnixDatagram::unbound()?;
        match probe.connect(path) {
            Ok(()) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another process listens on it",
                ))
            }
            Err(_) => std::fs::remove_file(path)?,
        }
    }
    let s = UnixDatagram::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o722))?;
    Ok(s)
}

/// The parser thread: batches from the queue into the aggregator, a flush every interval.
struct Parser {
    aggregator: Aggregator,
    queue: Arc<Queue>,
    stats: Arc<ReceiveStats>,
    stop: Arc<AtomicBool>,
    interval: Duration,
    containers: Arc<dyn Containers + Send + Sync>,
    flush: FlushFn,
    udp_inode: Option<u64>,
}

impl Parser {
    fn run(mut self) {
        let mut next = Instant::now() + self.interval;
        loop {
            let wait = next.saturating_duration_since(Instant::now()).min(POLL);
            if let Some(batch) = self.queue.pop(wait) {
                let now = now_millis();
                // Consecutive datagrams mostly come from the same sender: look it up once.
                let mut last: Option<(IpAddr, Option<ContainerId>)> = None;
                for (packet, peer) in batch.packets() {
                    let container = match peer {
                        Some(ip) => match &last {
                            Some((lip, c)) if *lip == ip => c.clone(),
                            _ => {
                                let c = self.containers.by_ip(ip);
                                last = Some((ip, c.clone()));
                                c
                            }
                        },
                        None => None,
                    };
                    self.aggregator.observe_packet(
                        packet,
                        container.as_ref(),
                        &*self.containers,
                        now,
                    );
                }
                self.queue.recycle(batch);
            }
            let stopping = self.stop.load(Ordering::Relaxed);
            if Instant::now() >= next || stopping {
                (self.flush)(&mut self.aggregator, now_millis());
                events::Flushed {
                    counts: self.aggregator.take_counts(),
                    series: self.aggregator.len(),
                    receive: &self.stats,
                    queue_bytes: self.queue.bytes(),
                    kernel: self.udp_inode.and_then(receive::read_udp_counters),
                }
                .emit();
                next += self.interval;
                let now = Instant::now();
                if next < now {
                    next = now + self.interval;
                }
            }
            if stopping {
                break;
            }
        }
    }
}
