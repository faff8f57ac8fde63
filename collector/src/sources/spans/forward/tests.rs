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

/// This collector (`me`: a port of this host nobody else uses) and its spans component.
async fn collector() -> (SocketAddr, TcpListener, Spans) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ingest = Ingest::new(Duration::from_secs(600));
    let spans = Spans::new(&SpansConfig::default(), &ingest, Duration::from_secs(1)).unwrap();
    (l.local_addr().unwrap(), l, spans)
}

/// A trace id byte whose trace `want` owns among `live`.
fn trace_of(want: SocketAddr, live: &[SocketAddr]) -> u8 {
    (1..=255u8)
        .find(|t| cluster::owner(&[*t; 16], live) == Some(want))
        .expect("some trace of each peer")
}

fn client_span(spans: &Spans, trace: u8, id: u8) {
    spans.consume(&[rs("front", &[s(trace, id, 0, CLIENT, 5)])], now_millis());
}

fn settings(me: SocketAddr, timeout: Duration) -> Settings {
    Settings {
        timeout,
        send_every: Duration::from_millis(20),
        ..Settings::new(me.port(), 100)
    }
}

#[tokio::test]
async fn a_hanging_peer_does_not_delay_a_healthy_one() {
    let (me, _l, spans) = collector().await;
    let (hung, accepted) = hanging_peer().await;
    let (ok, mut got) = healthy_peer().await;
    let live = [me, hung, ok];
    let forward = tokio::spawn(run(
        spans.clone(),
        Peers::Static(live.to_vec()),
        // Longer than this test waits: the healthy peer must not wait for the hanging one.
        settings(me, Duration::from_secs(60)),
        now_millis,
    ));
    let (to_hung, to_ok) = (trace_of(hung, &live), trace_of(ok, &live));
    // The peers are resolved at once; halves consumed before are paired here.
    while spans.up_peers().len() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The hanging peer's half first: forwarding one peer after another would wait on it.
    client_span(&spans, to_hung, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "its batch is in flight");
    client_span(&spans, to_hung, 2);
    client_span(&spans, to_ok, 3);
    let halves = tokio::time::timeout(Duration::from_secs(10), got.recv())
        .await
        .expect("the healthy peer got its half while the other hangs")
        .unwrap();
    assert_eq!(halves.len(), 1);
    assert_eq!(halves[0].trace_id, [to_ok; 16]);
    assert_eq!(
        spans.queued(),
        1,
        "the second half for the hanging peer waits for its batch"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one batch in flight a peer"
    );
    forward.abort();
}

#[tokio::test]
async fn a_peer_that_times_out_is_down_and_its_traces_pair_here_until_it_is_retried() {
    let (me, _l, spans) = collector().await;
    let (hung, accepted) = hanging_peer().await;
    let (ok, mut got) = healthy_peer().await;
    let live = [me, hung, ok];
    let forward = tokio::spawn(run(
        spans.clone(),
        Peers::Static(live.to_vec()),
        settings(me, Duration::from_millis(300)),
        now_millis,
    ));
    let (to_hung, to_ok) = (trace_of(hung, &live), trace_of(ok, &live));
    while spans.up_peers().len() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client_span(&spans, to_hung, 1);
    // Its batch times out: it is marked down (2 s ±20% at first).
    tokio::time::timeout(Duration::from_secs(10), async {
        while spans.up_peers().len() == 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the peer that timed out is marked down");
    assert_eq!(spans.up_peers(), {
        let mut v = vec![me, ok];
        v.sort();
        v
    });
    // Its traces now pair among the others (the owner among the peers that are up).
    let moved = |to: SocketAddr| {
        (1..=255u8)
            .find(|t| {
                cluster::owner(&[*t; 16], &live) == Some(hung)
                    && cluster::owner(&[*t; 16], &[me, ok]) == Some(to)
            })
            .unwrap()
    };
    let (moved_ok, moved_here) = (moved(ok), moved(me));
    client_span(&spans, moved_here, 2);
    assert_eq!(
        spans.queued(),
        0,
        "paired here, nothing queued for the peer that is down"
    );
    client_span(&spans, moved_ok, 3);
    client_span(&spans, to_ok, 4);
    let mut traces = Vec::new();
    while traces.len() < 2 {
        let h = tokio::time::timeout(Duration::from_secs(10), got.recv())
            .await
            .expect("the healthy peer gets its own traces and those that moved to it")
            .unwrap();
        traces.extend(h.iter().map(|h| h.trace_id[0]));
    }
    traces.sort();
    let mut want = vec![moved_ok, to_ok];
    want.sort();
    assert_eq!(traces, want);
    // After its backoff it is retried with an empty batch, which hangs too: it stays down, and its
    // traces keep pairing elsewhere.
    let before = accepted.load(Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), async {
        while accepted.load(Ordering::SeqCst) == before {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the retry reaches the peer");
    client_span(&spans, moved_here, 5);
    assert_eq!(spans.queued(), 0);
    assert_eq!(spans.up_peers().len(), 2);
    forward.abort();
}

#[tokio::test]
async fn a_peer_that_failed_is_up_again_once_its_retry_goes_through() {
    let (me, _l, spans) = collector().await;
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
    let live = [me, flaky];
    let forward = tokio::spawn(run(
        spans.clone(),
        Peers::Static(live.to_vec()),
        settings(me, Duration::from_secs(5)),
        now_millis,
    ));
    let to_flaky = trace_of(flaky, &live);
    while spans.up_peers().len() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client_span(&spans, to_flaky, 1);
    while spans.up_peers().len() == 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client_span(&spans, to_flaky, 2);
    assert_eq!(spans.queued(), 0, "paired here while it is down");
    // The retry, an empty batch, goes through: it owns its traces again.
    let retry = tokio::time::timeout(Duration::from_secs(10), got.recv())
        .await
        .expect("retried after its backoff")
        .unwrap();
    assert!(retry.is_empty());
    while spans.up_peers().len() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client_span(&spans, to_flaky, 3);
    let halves = tokio::time::timeout(Duration::from_secs(10), got.recv())
        .await
        .expect("its halves go to it again")
        .unwrap();
    assert_eq!(halves.len(), 1);
    assert_eq!(halves[0].span_id, Some([3; 8]));
    forward.abort();
}
