//! The StatsD workload both StatsD benchmarks send: DogStatsD lines of every type over `series`
//! distinct series, packed into datagrams the way client libraries buffer them.
#![allow(dead_code)] // each bench uses a different subset

/// One line per series, cycling through the types and tag shapes a web service sends.
pub fn lines(series: usize) -> Vec<String> {
    (0..series)
        .map(|i| {
            let endpoint = i / 5;
            match i % 5 {
                0 => format!(
                    "shop.orders:1|c|#service:shop,env:prod,endpoint:/api/v1/item/{endpoint}"
                ),
                1 => format!(
                    "shop.checkout.latency:{}.5|ms|@0.5|#service:shop,endpoint:/cart/{endpoint}",
                    20 + i % 300
                ),
                2 => format!(
                    "shop.queue.depth:{}|g|#service:shop,queue:q{endpoint}",
                    i % 97
                ),
                3 => format!(
                    "shop.users:user{}|s|#service:shop,page:p{endpoint}",
                    i % 1000
                ),
                _ => format!("api.requests.{endpoint}.status_200:1|c"),
            }
        })
        .collect()
}

/// Plain StatsD counters without tags (what every StatsD server parses): `load.N:1|c`. The sum of
/// the counters is the number of lines a receiver aggregated.
pub fn plain_counters(series: usize) -> Vec<String> {
    (0..series).map(|i| format!("load.{i}:1|c")).collect()
}

/// The lines packed into datagrams of at most `max_bytes` (at least one line each).
pub fn packets(lines: &[String], max_bytes: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::with_capacity(max_bytes);
    for l in lines {
        if !cur.is_empty() && cur.len() + 1 + l.len() > max_bytes {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(b'\n');
        }
        cur.extend_from_slice(l.as_bytes());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Lines in a datagram.
pub fn count_lines(packet: &[u8]) -> usize {
    packet
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
}
