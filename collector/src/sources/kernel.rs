//! Parsers for kernel formats that both the host and the containers expose: /proc/net/dev and PSI
//! pressure files.

use crate::sources::procfile::{fields, parse_u64};
use crate::store::{FamilyDesc, FamilyId, Ingest, IngestError, Kind, Scale};

/// Registers the PSI families, a (waiting, stalled) pair per resource (cpu, memory, io), named
/// `<prefix>_pressure_<resource>_{waiting,stalled}_seconds_total` as node_exporter and cAdvisor do;
/// `who` says whose tasks stall, for the help text.
pub fn register_pressure(
    ingest: &Ingest,
    prefix: &str,
    who: &str,
) -> Result<[(FamilyId, FamilyId); 3], IngestError> {
    let pair = |res: &str| {
        let waiting = FamilyDesc::int(
            &format!("{prefix}_pressure_{res}_waiting_seconds_total"),
            &format!("Total time in seconds that tasks of {who} waited for {res}."),
            Kind::Counter,
            Scale::Div(1e6),
        );
        let stalled = FamilyDesc::int(
            &format!("{prefix}_pressure_{res}_stalled_seconds_total"),
            &format!(
                "Total time in seconds no task of {who} could make progress for lack of {res}."
            ),
            Kind::Counter,
            Scale::Div(1e6),
        );
        Ok((ingest.family(waiting)?, ingest.family(stalled)?))
    };
    Ok([pair("cpu")?, pair("memory")?, pair("io")?])
}

/// Counters of one interface from /proc/net/dev.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
    /// The rest of the line, which only the host exposes (node_exporter's netdev).
    pub rx_fifo: u64,
    pub rx_frame: u64,
    pub rx_compressed: u64,
    pub rx_multicast: u64,
    pub tx_fifo: u64,
    pub tx_colls: u64,
    pub tx_carrier: u64,
    pub tx_compressed: u64,
}

/// Iterates the interfaces of a /proc/net/dev file; malformed lines are skipped.
pub fn net_dev(s: &[u8]) -> impl Iterator<Item = (&str, NetCounters)> {
    s.split(|c| *c == b'\n').filter_map(|line| {
        let colon = line.iter().position(|c| *c == b':')?;
        let name = std::str::from_utf8(&line[..colon]).ok()?.trim();
        let mut v = [0u64; 16];
        let mut n = 0;
        for f in fields(&line[colon + 1..]) {
            if n == 16 {
                break;
            }
            v[n] = parse_u64(f)?.0;
            n += 1;
        }
        (n == 16).then_some((
            name,
            NetCounters {
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errs: v[2],
                rx_drop: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errs: v[10],
                tx_drop: v[11],
                rx_fifo: v[4],
                rx_frame: v[5],
                rx_compressed: v[6],
                rx_multicast: v[7],
                tx_fifo: v[12],
                tx_colls: v[13],
                tx_carrier: v[14],
                tx_compressed: v[15],
            },
        ))
    })
}

/// Stall totals of one PSI file, in microseconds; `full` is absent for CPU on older kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pressure {
    pub some_us: Option<u64>,
    pub full_us: Option<u64>,
}

pub fn pressure(s: &[u8]) -> Pressure {
    let mut p = Pressure::default();
    for line in s.split(|c| *c == b'\n') {
        let total = fields(line)
            .find_map(|f| f.strip_prefix(b"total="))
            .and_then(parse_u64)
            .map(|(v, _)| v);
        if line.starts_with(b"some ") {
            p.some_us = total;
        } else if line.starts_with(b"full ") {
            p.full_us = total;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_net_dev() {
        let s = b"Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:  1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  eth0: 5 6 7 8 0 0 0 0 9 10 11 12 0 0 0 0\n broken: 1 2\n";
        let got: Vec<_> = net_dev(s).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "lo");
        assert_eq!(
            got[1],
            (
                "eth0",
                NetCounters {
                    rx_bytes: 5,
                    rx_packets: 6,
                    rx_errs: 7,
                    rx_drop: 8,
                    tx_bytes: 9,
                    tx_packets: 10,
                    tx_errs: 11,
                    tx_drop: 12,
                    ..Default::default()
                }
            )
        );
    }

    #[test]
    fn parses_pressure() {
        let p = pressure(b"some avg10=0.00 avg60=0.50 avg300=0.38 total=1865882\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n");
        assert_eq!(
            p,
            Pressure {
                some_us: Some(1865882),
                full_us: Some(7)
            }
        );
        assert_eq!(pressure(b"some avg10=0.00 total=3\n").full_us, None);
    }
}
