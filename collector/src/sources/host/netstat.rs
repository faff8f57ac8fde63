//! node_exporter's `vmstat`, `netstat` and `sockstat` collectors: `node_vmstat_<field>`,
//! `node_netstat_<Proto>_<Field>` and `node_sockstat_<PROTO>_<field>`, with node_exporter's default
//! field filters. node_exporter exposes vmstat and netstat untyped; the store has no untyped kind, so
//! they are gauges (PromQL's `rate()` and `increase()` read them the same).

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use regex::Regex;

use crate::sources::procfile::{fields, parse_u64};
use crate::store::{FamilyDesc, FamilyId, Kind, Scale, Writer};

/// node_exporter's default `--collector.vmstat.fields`.
pub const VMSTAT_FIELDS: &str = "^(oom_kill|pgpg|pswp|pg.*fault).*";
/// node_exporter's default `--collector.netstat.fields`.
pub const NETSTAT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

/// `/proc/vmstat` lines (`name value`).
pub fn vmstat(s: &[u8]) -> impl Iterator<Item = (&str, u64)> {
    s.split(|c| *c == b'\n').filter_map(|line| {
        let mut f = fields(line);
        let name = std::str::from_utf8(f.next()?).ok()?;
        let (v, _) = parse_u64(f.next()?)?;
        Some((name, v))
    })
}

/// `/proc/net/netstat` and `/proc/net/snmp`: pairs of lines, `Proto: names...` then `Proto: values...`;
/// calls `f(proto, field, value)` (values can be negative: `Tcp MaxConn -1`).
pub fn proto_pairs(s: &[u8], mut f: impl FnMut(&str, &str, i64)) {
    let mut lines = s.split(|c| *c == b'\n');
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some(np), Some(vp)) = (split_proto(names), split_proto(values)) else {
            continue;
        };
        if np.0 != vp.0 {
            continue;
        }
        for (n, v) in fields(np.1).zip(fields(vp.1)) {
            let (Ok(n), Some(v)) = (std::str::from_utf8(n), parse_i64(v)) else {
                continue;
            };
            f(np.0, n, v);
        }
    }
}

/// `/proc/net/snmp6`: `Ip6InOctets  123` lines as ("Ip6", "InOctets", 123), split after the first `6`
/// as node_exporter does.
pub fn snmp6(s: &[u8], mut f: impl FnMut(&str, &str, i64)) {
    for line in s.split(|c| *c == b'\n') {
        let mut it = fields(line);
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let (Ok(k), Some(v)) = (std::str::from_utf8(k), parse_i64(v)) else {
            continue;
        };
        if let Some(i) = k.find('6') {
            f(&k[..=i], &k[i + 1..], v);
        }
    }
}

/// `/proc/net/sockstat`: `TCP: inuse 5 orphan 0 ...` as (proto, field, value).
pub fn sockstat(s: &[u8], mut f: impl FnMut(&str, &str, u64)) {
    for line in s.split(|c| *c == b'\n') {
        let Some((proto, rest)) = split_proto(line) else {
            continue;
        };
        let mut it = fields(rest);
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            if let (Ok(k), Some((v, _))) = (std::str::from_utf8(k), parse_u64(v)) {
                f(proto, k, v);
            }
        }
    }
}

fn split_proto(line: &[u8]) -> Option<(&str, &[u8])> {
    let colon = line.iter().position(|c| *c == b':')?;
    Some((
        std::str::from_utf8(&line[..colon]).ok()?,
        &line[colon + 1..],
    ))
}

fn parse_i64(s: &[u8]) -> Option<i64> {
    match s.strip_prefix(b"-") {
        Some(rest) => parse_u64(rest)
            .filter(|(_, r)| r.is_empty())
            .and_then(|(v, _)| i64::try_from(v).ok())
            .map(|v| -v),
        None => parse_u64(s)
            .filter(|(_, r)| r.is_empty())
            .and_then(|(v, _)| i64::try_from(v).ok()),
    }
}

/// Families met while reading, by full name; None remembers a name the filter rejects.
#[derive(Debug)]
pub struct Families {
    by_name: HashMap<String, Option<FamilyId>>,
    vmstat: Regex,
    netstat: Regex,
    scratch: String,
    page_size: i64,
}

impl Default for Families {
    fn default() -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Self {
            by_name: HashMap::new(),
            vmstat: Regex::new(VMSTAT_FIELDS).expect("constant pattern"),
            netstat: Regex::new(NETSTAT_FIELDS).expect("constant pattern"),
            scratch: String::new(),
            page_size: if page > 0 { page as i64 } else { 4096 },
        }
    }
}

#[derive(Clone, Copy)]
enum Area {
    Vmstat,
    Netstat,
    Sockstat,
}

impl Families {
    /// The family `node_<area>_<a>[_<b>]`, registered on first use; None when filtered out.
    fn get(&mut self, w: &mut Writer<'_, '_>, area: Area, a: &str, b: &str) -> Option<FamilyId> {
        let s = &mut self.scratch;
        s.clear();
        s.push_str(match area {
            Area::Vmstat => "node_vmstat_",
            Area::Netstat => "node_netstat_",
            Area::Sockstat => "node_sockstat_",
        });
        let short = s.len();
        s.push_str(a);
        if !b.is_empty() {
            s.push('_');
            s.push_str(b);
        }
        if let Some(id) = self.by_name.get(s.as_str()) {
            return *id;
        }
        let keep = match area {
            Area::Vmstat => self.vmstat.is_match(&s[short..]),
            Area::Netstat => self.netstat.is_match(&s[short..]),
            Area::Sockstat => true,
        };
        let id = keep
            .then(|| {
                let help = match area {
                    Area::Vmstat => format!("/proc/vmstat information field {}.", &s[short..]),
                    Area::Netstat => format!("Statistic {a}{b}."),
                    Area::Sockstat => format!("Number of {a} sockets in state {b}."),
                };
                w.batch()
                    .family(FamilyDesc::int(s, &help, Kind::Gauge, Scale::One))
                    .ok()
            })
            .flatten();
        self.by_name.insert(s.clone(), id);
        id
    }

    pub fn write_vmstat(&mut self, w: &mut Writer<'_, '_>, text: &[u8]) {
        for (name, v) in vmstat(text) {
            if let Some(id) = self.get(w, Area::Vmstat, name, "") {
                w.put(id, &[], v as i64);
            }
        }
    }

    pub fn write_netstat(&mut self, w: &mut Writer<'_, '_>, text: &[u8], six: bool) {
        let mut put = |proto: &str, field: &str, v: i64| {
            if let Some(id) = self.get(w, Area::Netstat, proto, field) {
                w.put(id, &[], v);
            }
        };
        if six {
            snmp6(text, &mut put);
        } else {
            proto_pairs(text, &mut put);
        }
    }

    /// Also `<PROTO>_mem_bytes` for each `mem` (in pages), as node_exporter does.
    pub fn write_sockstat(&mut self, w: &mut Writer<'_, '_>, text: &[u8]) {
        let page = self.page_size;
        sockstat(text, |proto, field, v| {
            let v = v as i64;
            if let Some(id) = self.get(w, Area::Sockstat, proto, field) {
                w.put(id, &[], v);
            }
            if field == "mem" {
                if let Some(id) = self.get(w, Area::Sockstat, proto, "mem_bytes") {
                    w.put(id, &[], v.saturating_mul(page));
                }
            }
        });
    }
}
