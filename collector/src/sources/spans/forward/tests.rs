//! The forwarding shell against real sockets: a healthy peer (an HTTP server taking the halves) and
//! one that hangs (a listener that accepts and never answers).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::run::now_millis;
use crate::sources::spans::tests::{rs, s, CLIENT};
use crate::sources::spans::{EdgeHalf, SpansConfig};
use crate::store::Ingest;

/// Accepts connections and holds them without ever answering; counts them.
async fn hanging_peer() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let n = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = l.accept().await {
            n.fetch_add(1, Ordering::SeqCst);
            held.push(c);
        }
    });
    (addr, accepted)
}

/// A collector's halves endpoint that sends what it gets to the returned channel.
async fn healthy_peer() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<EdgeHalf>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/api/v1/spans/halves",
        axum::routing::post(move |axum::Json(h): axum::Json<Vec<EdgeHalf>>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(h);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(l, app).await });
    (addr, rx)
}

/// This collector (`me`: a port of this host nobody else uses), its spans component and its
/// forwarding to `peers`, started and waited for until they are resolved.
struct Collector {
    me: SocketAddr,
    spans: Spans,
    forward: tokio::task::JoinHandle<()>,
    _port: TcpListener,
}

impl Collector {
    async fn start(peers: &[SocketAddr], timeout: Duration) -> Collector {
        let port = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let me = port.local_addr().unwrap();
        let ingest = Ingest::new(Duration::from_secs(600));
        let spans = Spans::new(&SpansConfig::default(), &ingest, Duration::from_secs(1)).unwrap();
        let mut live = vec![me];
        live.extend_from_slice(peers);
        let settings = Settings {
            timeout,
            send_every: Duration::from_millis(20),
            ..Settings::new(me.port(), 100)
        };
        let forward = tokio::spawn(run(
            spans.clone(),
            Peers::Static(live),
            settings,
            now_millis,
        ));
        let c = Collector {
            me,
            spans,
            forward,
            _port: port,
        };
        // Halves consumed before the peers are resolved are paired here.
        until("the peers resolved", || {
            c.spans.up_peers().len() == peers.len() + 1
        })
        .await;
        c
    }

    /// A client span of `trace` (its trace id is 16 times that byte), span id `id`.
    fn client_span(&self, trace: u8, id: u8) {
        self.spans
            .consume(&[rs("front", &[s(trace, id, 0, CLIENT, 5)])], now_millis());
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

/// Waits up to 10 s for `cond`, failing the test with `what` otherwise.
async fn until(what: &str, cond: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

/// The next batch a peer got, within 10 s.
async fn next(got: &mut mpsc::UnboundedReceiver<Vec<EdgeHalf>>, what: &str) -> Vec<EdgeHalf> {
    tokio::time::timeout(Duration::from_secs(10), got.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{what}"))
}

/// A trace id byte whose trace `want` owns among `live` and, when given, `then` among `up`.
fn trace_of(
    want: SocketAddr,
    live: &[SocketAddr],
    then: Option<(SocketAddr, &[SocketAddr])>,
) -> u8 {
    (1..=255u8)
        .find(|t| {
            cluster::owner(&[*t; 16], live) == Some(want)
                && then.is_none_or(|(to, up)| cluster::owner(&[*t; 16], up) == Some(to))
        })
        .expect("some trace of each peer")
}

#[tokio::test]
async fn a_hanging_peer_does_not_delay_a_healthy_one() {
    let (hung, accepted) = hanging_peer().await;
    let (ok, mut got) = healthy_peer().await;
    // A timeout longer than this test waits: the healthy peer must not wait for the hanging one.
    let c = Collector::start(&[hung, ok], Duration::from_secs(60)).await;
    let live = [c.me, hung, ok];
    let (to_hung, to_ok) = (trace_of(hung, &live, None), trace_of(ok, &live, None));
    // The hanging peer's half first: forwarding one peer after another would wait on it.
    c.client_span(to_hung, 1);
    until("its batch in flight", || {
        accepted.load(Ordering::SeqCst) == 1
    })
    .await;
    c.client_span(to_hung, 2);
    c.client_span(to_ok, 3);
    let halves = next(
        &mut got,
        "the healthy peer got its half while the other hangs",
    )
    .await;
    assert_eq!(halves.len(), 1);
    assert_eq!(halves[0].trace_id, [to_ok; 16]);
    assert_eq!(
        c.spans.queued(),
        1,
        "the second half for the hanging peer waits for its batch"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one batch in flight a peer"
    );
}

#[tokio::test]
async fn a_peer_that_times_out_is_down_and_its_traces_pair_elsewhere_while_retries_fail() {
    let (hung, accepted) = hanging_peer().await;
    let (ok, mut got) = healthy_peer().await;
    let c = Collector::start(&[hung, ok], Duration::from_millis(300)).await;
    let (me, spans) = (c.me, &c.spans);
    let live = [me, hung, ok];
    let up = [me, ok];
    c.client_span(trace_of(hung, &live, None), 1);
    until("the peer that timed out marked down", || {
        spans.up_peers().len() == 2
    })
    .await;
    let mut want = vec![me, ok];
    want.sort();
    assert_eq!(spans.up_peers(), want);
    // Its traces now go to their owner among the peers that are up: here, or the healthy peer.
    let (moved_here, moved_ok) = (
        trace_of(hung, &live, Some((me, &up))),
        trace_of(hung, &live, Some((ok, &up))),
    );
    c.client_span(moved_here, 2);
    assert_eq!(
        spans.queued(),
        0,
        "paired here, nothing queued for the peer that is down"
    );
    let to_ok = trace_of(ok, &live, None);
    c.client_span(moved_ok, 3);
    c.client_span(to_ok, 4);
    let mut traces = Vec::new();
    while traces.len() < 2 {
        let h = next(
            &mut got,
            "the healthy peer gets its traces and those that moved to it",
        )
        .await;
        traces.extend(h.iter().map(|h| h.trace_id[0]));
    }
    traces.sort();
    let mut want = vec![moved_ok, to_ok];
    want.sort();
    assert_eq!(traces, want);
    // After its backoff it is retried with an empty batch, which hangs too: it stays down, and
    // its traces keep pairing elsewhere.
    let before = accepted.load(Ordering::SeqCst);
    until("the retry reaches the peer", || {
        accepted.load(Ordering::SeqCst) > before
    })
    .await;
    c.client_span(moved_here, 5);
    assert_eq!(spans.queued(), 0);
    assert_eq!(spans.up_peers().len(), 2);
}

#[tokio::test]
async fn a_peer_that_failed_is_up_again_once_its_retry_goes_through() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flaky = l.local_addr().unwrap();
    let (tx, mut got) = mpsc::unbounded_channel();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/api/v1/spans/halves",
        axum::routing::post(move |axum::Json(h): axum::Json<Vec<EdgeHalf>>| {
            let (tx, calls) = (tx.clone(), calls.clone());
            async move {
                // The first batch is refused, as by a collector that is restarting.
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let _ = tx.send(h);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(l, app).await });
    let c = Collector::start(&[flaky], Duration::from_secs(5)).await;
    let to_flaky = trace_of(flaky, &[c.me, flaky], None);
    c.client_span(to_flaky, 1);
    until("the peer that refused marked down", || {
        c.spans.up_peers().len() == 1
    })
    .await;
    c.client_span(to_flaky, 2);
    assert_eq!(c.spans.queued(), 0, "paired here while it is down");
    // The retry, an empty batch, goes through: it owns its traces again.
    let retry = next(&mut got, "retried after its backoff").await;
    assert!(retry.is_empty());
    until("the peer up again", || c.spans.up_peers().len() == 2).await;
    c.client_span(to_flaky, 3);
    let halves = next(&mut got, "its halves go to it again").await;
    assert_eq!(halves.len(), 1);
    assert_eq!(halves[0].span_id, Some([3; 8]));
}
