//! Which containers ask to be scraped, and how: a pure function of what discovery knows of a
//! container (its labels and addresses) and the defaults.
//!
//! A container asks with `plimsoll.scrape.port=PORT`, or with the common
//! `prometheus.io/scrape=true` and `prometheus.io/port=PORT`. Optional: `plimsoll.scrape.path` (or
//! `prometheus.io/path`, default `/metrics`), `plimsoll.scrape.interval`, `plimsoll.scrape.timeout`
//! and `plimsoll.scrape.network` (which network's address to scrape when the container is on
//! several; without it a Swarm task's `docker_gwbridge` address, else the first by name other than
//! Swarm's `ingress`). A container on the host network is scraped at 127.0.0.1.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::config::Defaults;
use crate::config::{MAX_INTERVAL, MIN_INTERVAL};
use crate::sources::docker::{ContainerInfo, GATEWAY_BRIDGE};

pub const PORT: &str = "plimsoll.scrape.port";
pub const PATH: &str = "plimsoll.scrape.path";
pub const INTERVAL: &str = "plimsoll.scrape.interval";
pub const TIMEOUT: &str = "plimsoll.scrape.timeout";
pub const NETWORK: &str = "plimsoll.scrape.network";
pub const PROM_SCRAPE: &str = "prometheus.io/scrape";
pub const PROM_PORT: &str = "prometheus.io/port";
pub const PROM_PATH: &str = "prometheus.io/path";
pub const PROM_SCHEME: &str = "prometheus.io/scheme";

/// A container to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Full container id: every series of the target is attributed to it.
    pub container: String,
    pub addr: SocketAddr,
    /// Path and query, starting with `/`.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// `name`, `service`, `task`, `slot` (as the container's cgroup series carry them) and
    /// `instance` (address:port).
    pub labels: Vec<(&'static str, String)>,
}

impl Target {
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }

    /// Where in its interval the target is scraped: spread over the interval by a hash of the
    /// container and address, so that targets do not all fire at once (as Prometheus does).
    pub fn offset(&self) -> Duration {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.container.hash(&mut h);
        self.addr.hash(&mut h);
        let nanos = self.interval.as_nanos().max(1) as u64;
        Duration::from_nanos(h.finish() % nanos)
    }
}

/// The target a container asks for: `Ok(None)` when it asks for none, `Err` with every problem of
/// its labels when it asks but cannot be scraped as asked.
pub fn target_of(info: &ContainerInfo, defaults: &Defaults) -> Result<Option<Target>, Vec<String>> {
    let label = |k: &str| {
        info.labels
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let port = label(PORT);
    let prom = label(PROM_SCRAPE).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if port.is_none() && !prom {
        return Ok(None);
    }
    let mut errs = Vec::new();
    let port = match port
        .map(|p| (PORT, p))
        .or(label(PROM_PORT).map(|p| (PROM_PORT, p)))
    {
        Some((k, p)) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                errs.push(format!("{k}={p:?} is not a port number"));
                None
            }
        },
        None => {
            errs.push(format!(
                "{PROM_SCRAPE}=true without {PROM_PORT} (or {PORT})"
            ));
            None
        }
    };
    let path = match label(PATH)
        .map(|p| (PATH, p))
        .or(label(PROM_PATH).map(|p| (PROM_PATH, p)))
    {
        Some((k, p))
            if !p.starts_with('/') || p.contains(|c: char| c.is_whitespace() || c == '#') =>
        {
            errs.push(format!(
                "{k}={p:?} must start with / and hold no spaces or #"
            ));
            String::new()
        }
        Some((_, p)) => p.to_string(),
        None => "/metrics".to_string(),
    };
    if let Some(scheme) = label(PROM_SCHEME).filter(|s| !s.eq_ignore_ascii_case("http")) {
        errs.push(format!("{PROM_SCHEME}={scheme:?}: only http is scraped"));
    }
    let duration = |k: &str, errs: &mut Vec<String>| {
        let v = label(k)?;
        match humantime::parse_duration(v) {
            Ok(d) => Some(d),
            Err(e) => {
                errs.push(format!("{k}={v:?}: {e}"));
                None
            }
        }
    };
    let interval = duration(INTERVAL, &mut errs).unwrap_or(defaults.interval);
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        errs.push(format!(
            "{INTERVAL} {} is outside {}..={}",
            humantime::format_duration(interval),
            humantime::format_duration(MIN_INTERVAL),
            humantime::format_duration(MAX_INTERVAL)
        ));
    }
    let timeout = match duration(TIMEOUT, &mut errs) {
        Some(t) if t > interval || t < Duration::from_millis(10) => {
            errs.push(format!(
                "{TIMEOUT} {} must be at least 10ms and at most the interval {}",
                humantime::format_duration(t),
                humantime::format_duration(interval)
            ));
            t
        }
        Some(t) => t,
        None => defaults.timeout_for(interval),
    };
    let ip = address(info, label(NETWORK)).map_err(|e| errs.push(e)).ok();
    let (Some(port), Some(ip), true) = (port, ip, errs.is_empty()) else {
        return Err(errs);
    };
    let addr = SocketAddr::new(ip, port);
    let mut labels: Vec<(&'static str, String)> = vec![("name", info.name.clone())];
    for (k, v) in [
        ("service", &info.service),
        ("task", &info.swarm_task_id),
        ("slot", &info.swarm_slot),
    ] {
        if let Some(v) = v {
            labels.push((k, v.clone()));
        }
    }
    labels.push(("instance", addr.to_string()));
    Ok(Some(Target {
        container: info.id.clone(),
        addr,
        path,
        interval,
        timeout,
        labels,
    }))
}

/// The address to scrape: on the named network, else on `docker_gwbridge` (a Swarm task: its
/// overlay addresses are not routed on the host), else the only one, else the first by name that
/// is not Swarm's routing mesh (`ingress`); 127.0.0.1 on the host network. IPv4 before IPv6.
fn address(info: &ContainerInfo, network: Option<&str>) -> Result<IpAddr, String> {
    if info.host_network {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let pick = |ips: &[IpAddr]| ips.iter().find(|ip| ip.is_ipv4()).or(ips.first()).copied();
    match network {
        Some(n) => match info.networks.get(n) {
            Some(ips) => pick(ips).ok_or_else(|| format!("{NETWORK}={n:?}: no address there")),
            None => Err(format!(
                "{NETWORK}={n:?}: the container is not on that network (it is on {})",
                names(info)
            )),
        },
        None => info
            .networks
            .get(GATEWAY_BRIDGE)
            .and_then(|ips| pick(ips))
            .into_iter()
            .chain(
                info.networks
                    .iter()
                    .filter(|(n, _)| info.networks.len() == 1 || n.as_str() != "ingress")
                    .filter_map(|(_, ips)| pick(ips)),
            )
            .next()
            .ok_or_else(|| "the container has no address on any network".to_string()),
    }
}

fn names(info: &ContainerInfo) -> String {
    let v: Vec<&str> = info.networks.keys().map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Names a scraped label takes so that it does not clash with the target's labels or the others
/// of its series: `exported_<name>` (again while that is taken), as Prometheus does with
/// `honor_labels: false`. Target labels come first.
pub fn merge_labels<'a>(
    target: &'a [(&'static str, String)],
    scraped: &'a [(String, String)],
) -> Vec<(std::borrow::Cow<'a, str>, &'a str)> {
    use std::borrow::Cow;
    let mut out: Vec<(Cow<'a, str>, &'a str)> = target
        .iter()
        .map(|(k, v)| (Cow::Borrowed(*k), v.as_str()))
        .collect();
    let taken = |name: &str, out: &[(Cow<'_, str>, &str)]| {
        target.iter().any(|(k, _)| *k == name)
            || scraped.iter().any(|(k, _)| k == name)
            || out.iter().any(|(k, _)| k == name)
    };
    for (k, v) in scraped {
        if target.iter().any(|(t, _)| *t == k.as_str()) {
            let mut name = format!("exported_{k}");
            while taken(&name, &out) {
                name.insert_str(0, "exported_");
            }
            out.push((Cow::Owned(name), v.as_str()));
        } else {
            out.push((Cow::Borrowed(k.as_str()), v.as_str()));
        }
    }
    out
}
