//! The container directory: the running containers discovery knows (id, name, image, service,
//! Compose project, Swarm task/slot/node, labels, addresses on every network, pid, health, start
//! time, limits), looked up by full or short id and by IP address on a Docker network, so that
//! receivers can attribute what they get (DogStatsD's container field, OTLP's `container.id`, the
//! sender address of a datagram or request, a scrape target) to a replica.
//!
//! Discovery writes it (upsert on start/update, remove on stop) before the sampling thread hears of
//! the change; receivers read it. Lookups are hash map reads under a read lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use super::docker::ContainerInfo;
use super::statsd::{ContainerId, Containers};

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<ContainerId, Arc<ContainerInfo>>,
    by_ip: HashMap<IpAddr, ContainerId>,
    /// Containers removed so far.
    removals: u64,
}

/// Shared, cheap to clone.
#[derive(Debug, Default, Clone)]
pub struct ContainerDirectory {
    inner: Arc<RwLock<Inner>>,
}

/// Short ids shorter than this are ambiguous in practice (`docker ps` shows 12).
pub const MIN_SHORT_ID: usize = 12;

impl ContainerDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a container or replaces what is known of it. An address another container held is
    /// moved to this one (the other one is gone and its address was reused).
    pub fn upsert(&self, info: ContainerInfo) {
        let mut d = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let id: ContainerId = d
            .by_id
            .get_key_value(info.id.as_str())
            .map_or_else(|| Arc::from(info.id.as_str()), |(k, _)| k.clone());
        let info = Arc::new(info);
        if let Some(old) = d.by_id.insert(id.clone(), info.clone()) {
            for ip in old.ips() {
                if d.by_ip.get(&ip) == Some(&id) {
                    d.by_ip.remove(&ip);
                }
            }
        }
        for ip in info.ips() {
            d.by_ip.insert(ip, id.clone());
        }
    }

    /// Forgets a container (by full id).
    pub fn remove(&self, id: &str) {
        let mut d = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some((id, info)) = d.by_id.remove_entry(id) {
            d.removals += 1;
            for ip in info.ips() {
                if d.by_ip.get(&ip) == Some(&id) {
                    d.by_ip.remove(&ip);
                }
            }
        }
    }

    /// What discovery knows of a container, by full id.
    pub fn get(&self, id: &str) -> Option<Arc<ContainerInfo>> {
        let d = self.inner.read().unwrap_or_else(|e| e.into_inner());
        d.by_id.get(id).cloned()
    }

    /// Every running container, in no particular order.
    pub fn all(&self) -> Vec<Arc<ContainerInfo>> {
        let d = self.inner.read().unwrap_or_else(|e| e.into_inner());
        d.by_id.values().cloned().collect()
    }

    /// How many containers were removed so far: receivers that keep state per container look for
    /// what is gone only when this moved.
    pub fn removals(&self) -> u64 {
        self.inner.read().map_or(0, |d| d.removals)
    }

    pub fn len(&self) -> usize {
        self.inner.read().map_or(0, |d| d.by_id.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Containers for ContainerDirectory {
    fn by_ip(&self, ip: IpAddr) -> Option<ContainerId> {
        let d = self.inner.read().ok()?;
        d.by_ip.get(&ip).cloned()
    }

    /// A full id, or a prefix of at least 12 characters that names exactly one container.
    fn by_id(&self, id: &str) -> Option<ContainerId> {
        let d = self.inner.read().ok()?;
        if let Some((k, _)) = d.by_id.get_key_value(id) {
            return Some(k.clone());
        }
        if id.len() < MIN_SHORT_ID {
            return None;
        }
        let mut found = d.by_id.keys().filter(|k| k.starts_with(id));
        match (found.next(), found.next()) {
            (Some(k), None) => Some(k.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    use crate::testutil::container_info as info;

    #[test]
    fn looks_up_by_id_prefix_and_address() {
        let d = ContainerDirectory::new();
        let a = "a".repeat(64);
        let b = format!("{}{}", "a".repeat(12), "b".repeat(52));
        d.upsert(info(&a, &[ip("172.18.0.2"), ip("10.0.1.5")]));
        d.upsert(info(&b, &[ip("172.18.0.3")]));
        assert_eq!(d.by_ip(ip("10.0.1.5")).as_deref(), Some(a.as_str()));
        assert_eq!(d.by_ip(ip("172.18.0.3")).as_deref(), Some(b.as_str()));
        assert_eq!(d.by_ip(ip("172.18.0.9")), None);
        assert_eq!(d.by_id(&a).as_deref(), Some(a.as_str()));
        assert_eq!(d.by_id(&"b".repeat(12)), None, "not a prefix of any id");
        assert_eq!(d.by_id(&"a".repeat(13)).as_deref(), Some(a.as_str()));
        assert_eq!(d.by_id(&"a".repeat(12)), None, "ambiguous");
        assert_eq!(d.by_id("aaaa"), None, "too short");
        assert_eq!(d.len(), 2);
        assert_eq!(d.get(&a).unwrap().name, "c-aaaa");
        assert_eq!(d.all().len(), 2);
    }

    #[test]
    fn addresses_follow_updates_removals_and_reuse() {
        let d = ContainerDirectory::new();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        d.upsert(info(&a, &[ip("172.18.0.2")]));
        d.upsert(info(&a, &[ip("172.18.0.4")]));
        assert_eq!(d.by_ip(ip("172.18.0.2")), None);
        // `a` is gone without an event yet and `b` got its address: `b` owns it.
        d.upsert(info(&b, &[ip("172.18.0.4")]));
        assert_eq!(d.by_ip(ip("172.18.0.4")).as_deref(), Some(b.as_str()));
        // Removing `a` later does not take the address from `b`.
        d.remove(&a);
        assert_eq!(d.by_ip(ip("172.18.0.4")).as_deref(), Some(b.as_str()));
        d.remove(&b);
        assert!(d.is_empty());
        assert_eq!(d.by_ip(ip("172.18.0.4")), None);
    }
}
