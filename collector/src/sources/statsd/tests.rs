//! The receiver with real sockets: datagrams in, flushed series out.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::sync::Mutex;

use super::*;
use proptest::prelude::*;

type Seen = Arc<Mutex<BTreeMap<String, f64>>>;

/// Records the latest counter/gauge value (or histogram count) per `family{labels}`.
struct Recorder(Seen);

impl Sink for Recorder {
    fn write(&mut self, _: SeriesId, s: &SeriesView<'_>, v: FlushValue<'_>) {
        let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let key = format!("{}{{{}}}", s.family, labels.join(","));
        let x = match v {
            FlushValue::Counter(x) | FlushValue::Gauge(x) => x,
            FlushValue::Histogram { count, .. } => count,
        };
        self.0.lock().unwrap().insert(key, x);
    }
}

fn start(config: StatsdConfig) -> (StatsdReceiver, Seen) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let r = config
        .validate()
        .unwrap()
        .start(
            Duration::from_millis(50),
            Arc::new(NoContainers),
            Box::new(move |agg, now| agg.flush(now, &mut Recorder(sink.clone()))),
        )
        .unwrap();
    (r, seen)
}

fn loopback() -> StatsdConfig {
    StatsdConfig {
        udp: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    }
}

fn wait_for(seen: &Seen, key: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = seen.lock().unwrap().get(key).copied();
        if got == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key}: got {got:?}, want {want}; seen {:?}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn udp_datagrams_become_flushed_series() {
    let (r, seen) = start(loopback());
    let addr = r.udp_addr().unwrap();
    assert_ne!(addr.port(), 0);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..10 {
        tx.send_to(b"orders:1|c|#service:shop\nqueue:7|g\nlat:12|ms", addr)
            .unwrap();
    }
    wait_for(&seen, "orders_total{service=shop}", 10.0);
    wait_for(&seen, "queue{}", 7.0);
    wait_for(&seen, "lat_seconds{}", 10.0);
}

#[test]
fn unix_datagrams_are_received_and_the_socket_file_removed_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsd.socket");
    // A stale socket file from an earlier run is replaced.
    drop(UnixDatagram::bind(&path).unwrap());
    let (r, seen) = start(StatsdConfig {
        udp: None,
        unix: Some(path.clone()),
        ..Default::default()
    });
    assert_eq!(r.unix_path(), Some(path.as_path()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o722);
    let tx = UnixDatagram::unbound().unwrap();
    tx.send_to(b"jobs:3|c|#queue:a", &path).unwrap();
    wait_for(&seen, "jobs_total{queue=a}", 3.0);
    drop(r);
    assert!(!path.exists());
}

fn start_error(config: StatsdConfig) -> String {
    config
        .validate()
        .unwrap()
        .start(
            Duration::from_secs(1),
            Arc::new(NoContainers),
            Box::new(|_, _| {}),
        )
        .err()
        .expect("start should fail")
        .to_string()
}

#[test]
fn a_taken_port_or_live_socket_is_a_clear_start_error() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let text = start_error(StatsdConfig {
        udp: Some(addr),
        ..Default::default()
    });
    assert!(
        text.contains(&format!("cannot listen on UDP {addr}")),
        "{text}"
    );
    assert!(text.contains("--statsd-udp off"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.socket");
    let _live = UnixDatagram::bind(&path).unwrap();
    let text = start_error(StatsdConfig {
        udp: None,
        unix: Some(path.clone()),
        ..Default::default()
    });
    assert!(text.contains("another process listens on it"), "{text}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Garbage over a real socket: the receiver survives it and keeps counting valid lines.
    #[test]
    fn arbitrary_datagrams_never_stop_the_receiver(
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1500), 1..30),
    ) {
        let (r, seen) = start(loopback());
        let addr = r.udp_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for g in &garbage {
            tx.send_to(g, addr).unwrap();
        }
        tx.send_to(b"alive:1|c", addr).unwrap();
        wait_for(&seen, "alive_total{}", 1.0);
    }
}
