//! Loopback load generator for the StatsD receiver: sends DogStatsD datagrams over real UDP sockets
//! at fixed rates (and as fast as one sender thread can), and reports for each run the lines parsed,
//! the receiver threads' CPU time (so lines per CPU-second = lines/s per core), and what was lost:
//! the kernel's drop count of the socket (/proc/net/udp) and lines sent but never parsed.
//!
//! Baselines in the same run: a bare receiver (the same recvmmsg thread and queue, whose consumer only
//! counts newlines), i.e. what the socket path alone costs before any parsing; and with `--collectd`,
//! collectd's statsd plugin (C, from Debian's collectd-core) receiving the same datagrams. collectd
//! does not parse DogStatsD tags, so `--collectd` sends plain counters (`load.N:1|c`, 1000 series)
//! to all three; collectd's count is the sum of its counters, written by its csv plugin.
//!
//!   cargo bench -p plimsoll-collector --bench statsd_load -- [--seconds 5]
//!       [--rates max,250000,500000,1000000] [--packet-bytes 1432,0] [--collectd]
//!   cargo bench -p plimsoll-collector --bench statsd_load -- --memory 100000
//!   cargo bench -p plimsoll-collector --bench statsd_load -- --send 127.0.0.1:8125 --series 10000
//!       [--seconds 900] [--rss-of PID]
//! `--send` feeds an external receiver (e.g. `plimsoll collect`): every series of the workload once a
//! second, printing the receiver's RSS (`--rss-of`) every minute.
//! `--packet-bytes 0` sends one line per datagram.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plimsoll_collector::sources::statsd::receive::{self, Queue, ReceiveStats, Transport};
use plimsoll_collector::sources::statsd::{NoContainers, StatsdConfig};

#[path = "statsd_workload.rs"]
mod workload;

#[path = "common/load.rs"]
mod load;
use load::{arg, threads_cpu};

/// Sends `packets` round-robin to `to` at `rate` lines/s (None: as fast as possible) for `secs`.
/// Returns the lines sent.
fn send(
    to: SocketAddr,
    packets: &[Vec<u8>],
    lines_per: &[usize],
    rate: Option<f64>,
    secs: f64,
) -> u64 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(to).unwrap();
    const BATCH: usize = 32;
    let start = Instant::now();
    let mut sent_lines = 0u64;
    let mut i = 0;
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= secs {
            break;
        }
        if let Some(r) = rate {
            if sent_lines as f64 >= r * elapsed {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
        }
        let mut batch_lines = 0;
        for k in 0..BATCH {
            let p = &packets[(i + k) % packets.len()];
            iov[k] = libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
            msgs[k].msg_hdr.msg_iov = &mut iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
            batch_lines += lines_per[(i + k) % packets.len()];
        }
        // SAFETY: the headers point at live packet buffers for the duration of the call.
        let n = unsafe { libc::sendmmsg(s.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n == BATCH as i32 {
            sent_lines += batch_lines as u64;
            i += BATCH;
        } else if n > 0 {
            sent_lines += (0..n as usize)
                .map(|k| lines_per[(i + k) % packets.len()])
                .sum::<usize>() as u64;
            i += n as usize;
        }
    }
    sent_lines
}

/// Waits until `counter` has not moved for 300 ms (the parser drained its queue).
fn settle(counter: &AtomicU64) {
    let mut last = counter.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = counter.load(Ordering::Relaxed);
        if now == last || Instant::now() > deadline {
            return;
        }
        last = now;
    }
}

struct Run {
    sent: u64,
    done: u64,
    cpu: f64,
    kernel_drops: u64,
}

fn run_receiver(packets: &[Vec<u8>], lines_per: &[usize], rate: Option<f64>, secs: f64) -> Run {
    let lines = Arc::new(AtomicU64::new(0));
    let counted = lines.clone();
    let r = StatsdConfig {
        udp: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    }
    .validate()
    .unwrap()
    .start(
        Duration::from_millis(100),
        Arc::new(NoContainers),
        Box::new(move |agg, now| {
            struct Null;
            impl plimsoll_collector::sources::statsd::Sink for Null {
                fn write(
                    &mut self,
                    _: plimsoll_collector::sources::statsd::SeriesId,
                    _: &plimsoll_collector::sources::statsd::SeriesView<'_>,
                    _: plimsoll_collector::sources::statsd::FlushValue<'_>,
                ) {
                }
            }
            agg.flush_starts(&mut Null);
            agg.flush(now, &mut Null);
            counted.fetch_add(agg.take_counts().lines, Ordering::Relaxed);
        }),
    )
    .unwrap();
    let to = r.udp_addr().unwrap();
    let cpu0 = threads_cpu("plimsoll-statsd");
    let sent = send(to, packets, lines_per, rate, secs);
    settle(&lines);
    let cpu = threads_cpu("plimsoll-statsd") - cpu0;
    let kernel_drops = r.udp_kernel_counters().map_or(0, |(d, _)| d);
    drop(r);
    Run {
        sent,
        done: lines.load(Ordering::Relaxed),
        cpu,
        kernel_drops,
    }
}

/// The baseline: the same receive thread and queue, and a consumer that only counts newlines.
fn run_bare(packets: &[Vec<u8>], lines_per: &[usize], rate: Option<f64>, secs: f64) -> Run {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(receive::POLL)).unwrap();
    receive::set_receive_buffer(sock.as_raw_fd(), 8 << 20).unwrap();
    let inode = receive::socket_inode(&sock).unwrap();
    let to = sock.local_addr().unwrap();
    let queue = Arc::new(Queue::new(32 << 20));
    let stats = Arc::new(ReceiveStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let lines = Arc::new(AtomicU64::new(0));
    let rx = {
        let (queue, stats, stop) = (queue.clone(), stats.clone(), stop.clone());
        std::thread::Builder::new()
            .name("bare-recv".into())
            .spawn(move || {
                receive::receive_loop(
                    sock.as_raw_fd(),
                    Transport::Udp,
                    65_535,
                    &queue,
                    &stats,
                    &stop,
                )
            })
            .unwrap()
    };
    let consumer = {
        let (queue, stop, lines) = (queue.clone(), stop.clone(), lines.clone());
        std::thread::Builder::new()
            .name("bare-count".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(b) = queue.pop(receive::POLL) {
                        let n: usize = b.packets().map(|(p, _)| memchr_count(p) + 1).sum();
                        lines.fetch_add(n as u64, Ordering::Relaxed);
                        queue.recycle(b);
                    }
                }
            })
            .unwrap()
    };
    let cpu0 = threads_cpu("bare-");
    let sent = send(to, packets, lines_per, rate, secs);
    settle(&lines);
    let cpu = threads_cpu("bare-") - cpu0;
    let kernel_drops = receive::read_udp_counters(inode).map_or(0, |(d, _)| d);
    stop.store(true, Ordering::Relaxed);
    rx.join().unwrap();
    consumer.join().unwrap();
    Run {
        sent,
        done: lines.load(Ordering::Relaxed),
        cpu,
        kernel_drops,
    }
}

/// collectd with only its statsd plugin (and csv to read the counters back) on a free port. Its CPU
/// is every thread but the csv writers'; its drops are its socket's in /proc/PID/net/udp.
fn run_collectd(
    packets: &[Vec<u8>],
    lines_per: &[usize],
    rate: Option<f64>,
    secs: f64,
) -> Option<Run> {
    let port = UdpSocket::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = std::env::temp_dir().join(format!(
        "plimsoll-bench-collectd-{}-{port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).ok()?;
    let conf = dir.join("collectd.conf");
    std::fs::write(
        &conf,
        format!(
            "Interval 1\nFQDNLookup false\nHostname \"bench\"\nLoadPlugin statsd\nLoadPlugin csv\n\
             <Plugin statsd>\n  Host \"127.0.0.1\"\n  Port \"{port}\"\n</Plugin>\n\
             <Plugin csv>\n  DataDir \"{}\"\n  StoreRates false\n</Plugin>\n",
            dir.join("csv").display()
        ),
    )
    .ok()?;
    let mut child = std::process::Command::new("collectd")
        .args(["-f", "-C"])
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id();
    let counted = || -> u64 {
        let Ok(files) = std::fs::read_dir(dir.join("csv/bench/statsd")) else {
            return 0;
        };
        files
            .filter_map(|f| std::fs::read_to_string(f.ok()?.path()).ok())
            .filter_map(|t| t.lines().last()?.split_once(',')?.1.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let cpu = || -> f64 {
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return 0.0;
        };
        tasks
            .filter_map(|t| {
                let d = t.ok()?.path();
                let comm = std::fs::read_to_string(d.join("comm")).ok()?;
                if comm.starts_with("writer") {
                    return None;
                }
                let stat = std::fs::read_to_string(d.join("stat")).ok()?;
                let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                Some((f[11].parse::<f64>().ok()? + f[12].parse::<f64>().ok()?) / ticks)
            })
            .sum()
    };
    let drops = || -> u64 {
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/udp")).unwrap_or_default();
        let local = format!("0100007F:{port:04X}");
        table
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|c| c.len() > 12 && c[1] == local)
            .and_then(|c| c[12].parse().ok())
            .unwrap_or(0)
    };
    // Ready when its socket is listed.
    let ready = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{pid}/net/udp"))
        .map_or(true, |t| !t.contains(&format!(":{port:04X} ")))
        && Instant::now() < ready
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let cpu0 = cpu();
    let sent = send(
        SocketAddr::from(([127, 0, 0, 1], port)),
        packets,
        lines_per,
        rate,
        secs,
    );
    // Its counters reach the csv files at the next 1 s interval: wait until two reads agree.
    let mut last = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(2200));
        let now = counted();
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let run = Run {
        sent,
        done: counted(),
        cpu: cpu() - cpu0,
        kernel_drops: drops(),
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Some(run)
}

fn memchr_count(p: &[u8]) -> usize {
    p.iter().filter(|&&b| b == b'\n').count()
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    rss_of("self")
}

/// Resident memory of a process (`self` or a pid), in bytes.
fn rss_of(pid: &str) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Bytes of aggregation state per active series: RSS growth while `n` series of the DogStatsD
/// workload are created (and flushed once), divided by `n`.
fn memory_per_series(n: usize) {
    use plimsoll_collector::sources::statsd::{AggregateConfig, Aggregator, Mapper};
    let packets = workload::packets(&workload::lines(n), 1432);
    let mut a = Aggregator::new(
        AggregateConfig {
            ttl: Duration::from_secs(300),
            buckets: Arc::from(&plimsoll_collector::sources::statsd::config::DEFAULT_BUCKETS[..]),
            max_series: n,
            max_series_per_family: n,
            max_set_members: 100_000,
        },
        Arc::new(Mapper::default()),
    );
    let before = rss();
    for p in &packets {
        a.observe_packet(p, None, &NoContainers, 0);
    }
    let after = rss();
    println!(
        "{} series: {:.0} bytes of StatsD aggregation state per series (RSS {:.1} -> {:.1} MiB; a fifth are histograms of 11 buckets)",
        a.len(),
        (after - before) as f64 / a.len() as f64,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
}

/// `--send`: every series of the workload once a second to an external receiver, in one-minute steps,
/// with the receiver's RSS after each.
fn feed(args: &[String]) {
    let to: SocketAddr = arg(args, "--send", "").parse().expect("--send ADDR");
    let n: usize = arg(args, "--series", "10000").parse().expect("--series");
    let secs: f64 = arg(args, "--seconds", "900").parse().expect("--seconds");
    let pid = arg(args, "--rss-of", "");
    let packets = workload::packets(&workload::lines(n), 1432);
    let lines_per: Vec<usize> = packets.iter().map(|p| workload::count_lines(p)).collect();
    let mib = |b: u64| b as f64 / 1048576.0;
    if !pid.is_empty() {
        println!("{:>6.0} s  receiver RSS {:.1} MiB", 0.0, mib(rss_of(&pid)));
    }
    let mut done = 0.0;
    while done < secs {
        let step = (secs - done).min(60.0);
        let sent = send(to, &packets, &lines_per, Some(n as f64), step);
        done += step;
        if pid.is_empty() {
            println!("{done:>6.0} s  {sent} lines sent");
        } else {
            println!(
                "{done:>6.0} s  {sent} lines sent, receiver RSS {:.1} MiB",
                mib(rss_of(&pid))
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench` asks benches to list themselves
    }
    if let Some(i) = args.iter().position(|a| a == "--memory") {
        let n = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(100_000);
        memory_per_series(n);
        return;
    }
    if args.iter().any(|a| a == "--send") {
        feed(&args);
        return;
    }
    let secs: f64 = arg(&args, "--seconds", "5").parse().expect("--seconds");
    let rates: Vec<Option<f64>> = arg(&args, "--rates", "max,250000,500000,1000000")
        .split(',')
        .map(|r| (r != "max").then(|| r.parse().expect("--rates")))
        .collect();
    let sizes: Vec<usize> = arg(&args, "--packet-bytes", "1432,0")
        .split(',')
        .map(|s| s.parse().expect("--packet-bytes"))
        .collect();
    let collectd = args.iter().any(|a| a == "--collectd");
    let lines = if collectd {
        workload::plain_counters(1000)
    } else {
        workload::lines(1000)
    };
    println!(
        "{:<10} {:>6} {:>10} | {:>12} {:>12} {:>8} {:>12} {:>10} {:>10}",
        "receiver",
        "bytes",
        "target/s",
        "sent/s",
        "parsed/s",
        "cpu s",
        "lines/cpu-s",
        "kernel drop",
        "lost"
    );
    for &size in &sizes {
        let packets = if size == 0 {
            lines.iter().map(|l| l.as_bytes().to_vec()).collect()
        } else {
            workload::packets(&lines, size)
        };
        let lines_per: Vec<usize> = packets.iter().map(|p| workload::count_lines(p)).collect();
        for &rate in &rates {
            let mut runs = vec![
                ("bare", Some(run_bare(&packets, &lines_per, rate, secs))),
                (
                    "plimsoll",
                    Some(run_receiver(&packets, &lines_per, rate, secs)),
                ),
            ];
            if collectd {
                runs.push(("collectd", run_collectd(&packets, &lines_per, rate, secs)));
            }
            for (name, r) in runs {
                let Some(r) = r else {
                    println!("{name}: could not run (is collectd installed?)");
                    continue;
                };
                let target = rate.map_or("max".to_string(), |r| format!("{r:.0}"));
                let line = format!(
                    "{:<10} {:>6} {:>10} | {:>12.0} {:>12.0} {:>8.2} {:>12.0} {:>10} {:>10}",
                    name,
                    if size == 0 {
                        "1 line".to_string()
                    } else {
                        size.to_string()
                    },
                    target,
                    r.sent as f64 / secs,
                    r.done as f64 / secs,
                    r.cpu,
                    r.done as f64 / r.cpu.max(1e-9),
                    r.kernel_drops,
                    r.sent.saturating_sub(r.done),
                );
                println!("{line}");
            }
        }
    }
}
